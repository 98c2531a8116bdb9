"""Finding the secret values in a config, for the redaction registry (``monitor.core.secrets``).

Run twice per load: on each file's raw YAML data before it is validated (so the problems a
broken file produces are already scrubbed of what it holds), and on the loaded models after
(the authoritative pass). What counts as a secret:

* every ``SecretStr`` field (receiver URLs and keys, the API token), and for a URL also its
  password, query values and long path segments (webhook tokens live in paths);
* DSN passwords (``monitor.core.dsn``);
* the password and credential-named query values (``?api_key=``) of every configured URL;
* values under a key that names a credential (a header ``Authorization``, ``X-Dash-Key``,
  ``Cookie``; ``password:``, ``token:``...), and the token after ``Bearer``/``Basic``.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from pydantic import BaseModel, SecretStr

from monitor.core.dsn import dsn_secrets
from monitor.core.secrets import credential_name

Models = tuple[type[BaseModel], ...]
# A path segment this long in a secret URL is taken for its token (Slack's is 24 characters);
# shorter ones are words like "services" or "hooks" that appear in ordinary text.
_TOKEN_SEGMENT = 16
_DSN_PASSWORD = re.compile(r"\bpassword\s*=")


def secrets_in(value: Any, models: Models = ()) -> set[str]:
    """The secret values in ``value``: loaded models, or raw YAML data described by
    ``models`` (the candidates for its top level; fields of theirs typed ``SecretStr`` are
    secret in the raw data too)."""
    found: set[str] = set()
    stack: list[tuple[Any, Models, str]] = [(value, models, "")]
    while stack:
        node, candidates, key = stack.pop()
        if isinstance(node, SecretStr):
            _secret(node.get_secret_value(), found)
        elif isinstance(node, BaseModel):
            stack.extend((getattr(node, name), (), name) for name in type(node).model_fields)
        elif isinstance(node, Mapping):
            for raw_key, item in node.items():
                name = str(raw_key)
                secret, inner = _field(candidates, name)
                if isinstance(item, str) and secret:
                    _secret(item, found)
                elif isinstance(item, str) and credential_name(name):
                    _credential(item, found)
                stack.append((item, inner, name))
        elif isinstance(node, (list, tuple, set, frozenset)):
            stack.extend((item, candidates, key) for item in node)
        elif isinstance(node, str):
            _string(key, node, found)
    return found


def _secret(value: str, found: set[str]) -> None:
    found.add(value)
    if "://" in value:
        _url_parts(value, found, every_query_value=True)


def _credential(value: str, found: set[str]) -> None:
    found.add(value)
    scheme, _, token = value.strip().partition(" ")
    if token and scheme.lower() in ("bearer", "basic", "token", "digest"):
        found.add(token.strip())


def _string(key: str, value: str, found: set[str]) -> None:
    if "://" in value:
        _url_parts(value, found, every_query_value=False)
    if key in ("dsn", "state") or value.startswith(("postgres://", "postgresql://")) or _DSN_PASSWORD.search(value):
        found.update(dsn_secrets(value))


def _url_parts(url: str, found: set[str], every_query_value: bool) -> None:
    try:
        parts = urlsplit(url.strip())
        password = parts.password
    except ValueError:
        return
    if password:
        found.update({password, unquote(password)})
    for name, item in parse_qsl(parts.query, keep_blank_values=False):
        if every_query_value or credential_name(name):
            found.add(item)
    if every_query_value:
        found.update(segment for segment in parts.path.split("/") if len(segment) >= _TOKEN_SEGMENT)


@functools.cache  # models are classes, names are few: asked once per key of 10,000 checks
def _field(models: Models, name: str) -> tuple[bool, Models]:
    """Is ``name`` a ``SecretStr`` field of any candidate model, and which models describe
    its value?"""
    secret = False
    inner: list[type[BaseModel]] = []
    for model in models:
        for field_name, field in model.model_fields.items():
            if name not in (field_name, field.alias):
                continue
            for kind in _types_in(field.annotation):
                if kind is SecretStr:
                    secret = True
                elif isinstance(kind, type) and issubclass(kind, BaseModel):
                    inner.append(kind)
    return secret, tuple(inner)


def _types_in(annotation: Any) -> Iterable[Any]:
    """Every type named in an annotation: ``list[A | None]`` gives list, A, NoneType."""
    stack = [annotation]
    while stack:
        kind = stack.pop()
        yield typing.get_origin(kind) or kind
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is not None:
            stack.extend(typing.get_args(kind))
