"""Keeping database passwords out of messages: libpq quotes a malformed DSN back whole."""

from __future__ import annotations

import re

import psycopg
from psycopg.conninfo import conninfo_to_dict

from monitor.core.results import redact

_URI_PASSWORD = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@?#]*:([^@/?#]*)@")
_KV_PASSWORD = re.compile(r"\bpassword\s*=\s*('(?:[^'\\]|\\.)*'|[^\s']+)")


def dsn_secrets(dsn: str) -> list[str]:
    """The password as written in the DSN (raw and decoded), longest first."""
    found = [m.group(1).strip("'") for p in (_URI_PASSWORD, _KV_PASSWORD) for m in p.finditer(dsn)]
    try:
        password = conninfo_to_dict(dsn).get("password")
    except psycopg.Error:
        password = None
    if isinstance(password, str):
        found.append(password)
    # Longest first, so a password that contains another's text is replaced whole.
    return sorted({s for s in found if s}, key=len, reverse=True)


def without_secrets(message: str, secrets: list[str]) -> str:
    message = redact(message)
    for secret in secrets:
        message = message.replace(secret, "***")
    return message
