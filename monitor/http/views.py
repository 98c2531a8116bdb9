"""How checks look from outside: API JSON and the status page. No secrets leave here:
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


def _alert_rows(alerts: list[AlertRecord], silenced: Callable[[dict[str, str]], bool], now: float) -> str:
    rows = []
    for alert in sorted(alerts, key=lambda a: (a.state != "firing", a.labels.get("severity") != "critical", a.alertname)):
        state = "SILENCED" if silenced(alert.labels) else alert.state.upper()
        css = "silenced" if state == "SILENCED" else alert.state
        since = format_duration(round(max(now - alert.active_at, 0)))
        summary = scrub(alert.annotations.get("summary", ""))
        rows.append(
            f"<tr class={css}><td class=state>{state}</td><td>{escape(alert.alertname)}</td>"
            f"<td>{escape(alert.check)}</td><td>{escape(alert.labels.get('severity', ''))}</td>"
            f"<td>{since}</td><td>{escape(summary)}</td></tr>"
        )
    if not rows:
        return "<p>No pending or firing alerts.</p>"
    return ("<table><tr><th>state</th><th>alert</th><th>check</th><th>severity</th><th>for</th><th>summary</th></tr>"
            + "".join(rows) + "</table>")


def _waiting(waiting: list[tuple[str, int, str]]) -> str:
    """Notifications not yet taken by their receiver: the first thing to know when a page
    did not arrive."""
    if not waiting:
        return ""
    items = "".join(f"<li>{escape(target)}: {count} waiting{' — ' + escape(error) if error else ''}</li>"
                    for target, count, error in waiting)
    return f"<div class=warn><b>Notifications waiting for their receiver</b><ul>{items}</ul></div>"


def status_page(statuses: list[CheckStatus], now: float, alerts: list[AlertRecord] | None = None,
                silenced: Callable[[dict[str, str]], bool] = lambda labels: False,
                waiting: list[tuple[str, int, str]] | None = None) -> str:
    """What an on-call engineer opens first: notifications stuck on the way out, alerts
    (silenced ones marked), then every check, down ones first."""
    alerts = alerts or []
    rows = []
    for status in sorted(statuses, key=lambda s: (s.last is not None and s.last.up, s.check.name)):
        last = status.last
        if last is None:
            state, css, value, latency, age, err = "PENDING", "pending", "", "", "", ""
        else:
            state, css = ("UP", "up") if last.up else ("DOWN", "down")
            value = f"{len(last.series)} series" if last.series and last.value is None else (
                "" if last.value is None else f"{last.value:g}")
            latency = f"{last.latency * 1000:.1f} ms"
            age = format_duration(round(max(now - last.at, 0)))
            err = scrub(last.error or "")
        labels = ", ".join(f"{k}={v}" for k, v in sorted(status.check.labels.items()))
        rows.append(
            f"<tr class={css}><td>{escape(status.check.name)}</td><td>{escape(status.check.kind)}</td>"
            f"<td class=state>{state}</td><td>{escape(value)}</td><td>{latency}</td><td>{age} ago</td>"
            f"<td>{escape(labels)}</td><td>{escape(err)}</td></tr>"
        )
    down = sum(1 for s in statuses if s.last is not None and not s.last.up)
    title = f"{down} down" if down else "all up"
    return f"""<!doctype html><html><head><meta charset=utf-8><meta http-equiv=refresh content=15>
<title>monitor: {title}</title><style>
body{{font:14px system-ui,sans-serif;margin:2em}} table{{border-collapse:collapse;width:100%}}
td,th{{padding:4px 8px;border-bottom:1px solid #ddd;text-align:left}}
tr.down .state{{color:#fff;background:#c62828;font-weight:bold}} tr.up .state{{color:#2e7d32;font-weight:bold}}
tr.pending .state{{color:#777}} tr.firing .state{{color:#fff;background:#c62828;font-weight:bold}}
tr.silenced .state{{color:#555;background:#eee}} .warn{{background:#fff3e0;border-left:4px solid #ef6c00;padding:4px 12px}}
</style></head><body>
<h1>monitor — {title}</h1><p>{len(statuses)} checks · {len(alerts)} alerts · <a href="/metrics">metrics</a> ·
<a href="/api/v1/checks">checks API</a> · <a href="/api/v1/alerts">alerts API</a> · <a href="/api/v1/silences">silences</a></p>
{_waiting(waiting or [])}<h2>Alerts</h2>{_alert_rows(alerts, silenced, now)}<h2>Checks</h2>
<table><tr><th>check</th><th>kind</th><th>state</th><th>value</th><th>latency</th><th>last run</th><th>labels</th><th>error</th></tr>
{''.join(rows)}</table></body></html>"""
