"""`monitor status`: ask a running daemon for its checks, alerts and silences and print them.

Three tables, each what the person running it looks for first: checks (down ones first),
pending and firing alerts (firing first; "silenced" when a live silence mutes one), and the
live silences. Exit 0 when the daemon answered, 1 when it did not.
"""

from __future__ import annotations

import sys
import time
from typing import Any

import httpx

from monitor.alerting.silences import silence_matcher
from monitor.cli.silence import render as render_silences
from monitor.cli.terminal import cell, echo
from monitor.core.durations import format_duration
from monitor.core.timestamps import parse_rfc3339


def _get(url: str, path: str, timeout: float) -> Any:
    response = httpx.get(f"{url.rstrip('/')}{path}", timeout=timeout)
    response.raise_for_status()
    return response.json()


def fetch_checks(url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    data: list[dict[str, Any]] = _get(url, "/api/v1/checks", timeout)
    return data


def _table(rows: list[tuple[str, ...]]) -> str:
    # Everything here came over the network (and errors from the targets): escape it.
    shown = [tuple(cell(text) for text in row) for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    return "\n".join("  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in shown)


def render(checks: list[dict[str, Any]]) -> str:
    rows: list[tuple[str, ...]] = [("CHECK", "KIND", "STATE", "VALUE", "LATENCY", "ERROR")]
    # Down checks first: that is what the person running this is looking for.
    for check in sorted(checks, key=lambda c: (c["last"] is None or c["last"]["up"], c["name"])):
        last = check["last"]
        if last is None:
            rows.append((check["name"], check["kind"], "pending", "", "", ""))
            continue
        value = "" if last["value"] is None else f"{last['value']:g}"
        rows.append((check["name"], check["kind"], "UP" if last["up"] else "DOWN", value,
                     f"{last['latency'] * 1000:.1f}ms", (last["error"] or "")[:80]))
    return _table(rows)


def _mutes(silences: list[dict[str, Any]], labels: dict[str, str]) -> bool:
    for silence in silences:
        try:
            matchers = [silence_matcher(str(m["name"]), str(m["value"]), bool(m.get("isRegex")), bool(m.get("isEqual", True)))
                        for m in silence.get("matchers", [])]
        except (KeyError, TypeError, ValueError):
            continue  # the daemon only lists valid silences; one it could not have made mutes nothing
        if matchers and all(m.matches(labels) for m in matchers):
            return True
    return False


def render_alerts(alerts: list[dict[str, Any]], active_silences: list[dict[str, Any]], now: float) -> str:
    rows: list[tuple[str, ...]] = [("ALERT", "STATE", "SINCE", "VALUE", "LABELS")]
    for alert in sorted(alerts, key=lambda a: (a.get("state") != "firing", str(a.get("labels", {}).get("alertname", "")))):
        labels = {str(k): str(v) for k, v in (alert.get("labels") or {}).items()}
        state = str(alert.get("state", ""))
        if _mutes(active_silences, labels):
            state += " (silenced)"
        try:
            since = format_duration(round(max(now - parse_rfc3339(str(alert.get("activeAt", ""))), 0)))
        except ValueError:
            since = ""
        summary = " ".join(f"{k}={v}" for k, v in sorted(labels.items()) if k != "alertname")
        rows.append((labels.get("alertname", ""), state, since, str(alert.get("value", "")),
                     summary if len(summary) <= 100 else summary[:99] + "…"))
    return _table(rows)


def run_status_command(url: str) -> int:
    try:
        checks = fetch_checks(url)
        alerts: list[dict[str, Any]] = _get(url, "/api/v1/alerts", 5.0)["data"]["alerts"]
        silences: list[dict[str, Any]] = _get(url, "/api/v1/silences", 5.0)
    except httpx.HTTPStatusError as err:
        echo(f"monitor: {url} answered {err.response.status_code}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as err:
        echo(f"monitor: cannot reach a daemon at {url}: {err}", file=sys.stderr)
        return 1
    now = time.time()
    live = [s for s in silences if s.get("status", {}).get("state") in ("active", "pending")]
    active = [s for s in live if s.get("status", {}).get("state") == "active"]
    echo(render(checks))
    echo()
    echo(render_alerts(alerts, active, now) if alerts else "No pending or firing alerts.")
    echo()
    echo(render_silences(live) if live else "No active or pending silences.")
    down = sum(1 for c in checks if c["last"] is not None and not c["last"]["up"])
    firing = sum(1 for a in alerts if a.get("state") == "firing")
    echo(f"\n{len(checks)} checks, {down} down; {firing} alerts firing, {len(alerts) - firing} pending;"
         f" {len(active)} silences active")
    return 0
