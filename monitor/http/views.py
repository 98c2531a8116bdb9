"""How checks look from outside, as API JSON (the status page is `status_page.py`). No secrets leave here:
only names, labels and results are shown, never a check's URL, DSN or headers.

A result's ``detail`` is what rules read, so the probe keeps it whole; what an API caller
sees of it is decided here (see docs/security.md): the final URL as scheme, host, port and
path; response headers without credentials (``Set-Cookie``, ``Authorization``...); no
response body unless the check sets ``expose_body: true``; and every string through the
secret redaction.
"""

from __future__ import annotations

from html import escape
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from monitor.check_status import CheckStatus
from monitor.core.results import json_number
from monitor.core.secrets import credential_name, scrub, scrub_deep
from monitor.core.timestamps import rfc3339
from monitor.core.durations import format_duration
from monitor.core.records import AlertRecord
from monitor.probes.base import CheckBase
from monitor.probes.http import HttpCheck


def check_json(status: CheckStatus) -> dict[str, Any]:
    check, last = status.check, status.last
    out: dict[str, Any] = {
        "name": check.name,
        "kind": check.kind,
        "labels": check.labels,
        "interval": format_duration(check.interval),
        "timeout": format_duration(check.timeout),
        "runs": {outcome.value: count for outcome, count in status.runs.items()},
        "skipped_runs": status.skipped,
        "last": None,
    }
    if last is not None:
        out["last"] = {
            "at": rfc3339(last.at),
            "up": last.up,
            "value": None if last.value is None else json_number(last.value),
            "latency": round(last.latency, 6),
            "outcome": last.outcome.value,
            "error": scrub(last.error) if last.error else last.error,
            "detail": public_detail(check, last.detail),
        }
    return out


def public_detail(check: CheckBase, detail: dict[str, Any]) -> dict[str, Any]:
    shown = dict(detail)
    if isinstance(shown.get("final_url"), str):
        shown["final_url"] = _without_query(shown["final_url"])
    if isinstance(shown.get("headers"), dict):
        # Credentials by name: set-cookie, cookie, authorization, x-api-key, x-auth-token...
        # The WWW-/Proxy-Authenticate challenges stay: they name a scheme and realm, not a
        # credential, and they say why a target answered 401.
        shown["headers"] = {name: value for name, value in shown["headers"].items() if not credential_name(str(name))}
    if "body" in shown and not (isinstance(check, HttpCheck) and check.expose_body):
        del shown["body"]  # `body_bytes` tells its size
    shown_detail: dict[str, Any] = scrub_deep(shown)
    return shown_detail


def _without_query(url: str) -> str:
    """scheme://host:port/path: where the answer came from, without the query (often a
    token), fragment or user:password."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "<invalid url>"
    if ":" in host:
        host = f"[{host}]"
    return f"{parts.scheme}://{host}{f':{port}' if port is not None else ''}{parts.path}"


def alerts_json(alerts: Iterable[AlertRecord]) -> list[dict[str, Any]]:
    """Prometheus' /api/v1/alerts shape, so existing tools can read it."""
    return [
        {
            "labels": alert.labels,
            # Annotations are templates over a check's results: its error, its detail.
            "annotations": {name: scrub(text) for name, text in alert.annotations.items()},
            "state": alert.state,
            "activeAt": rfc3339(alert.active_at),
            "value": "" if alert.value is None else f"{alert.value:g}",
        }
        for alert in sorted(alerts, key=lambda a: (a.state != "firing", a.alertname, a.check))
    ]
