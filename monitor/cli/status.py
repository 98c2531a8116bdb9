"""`monitor status`: ask a running daemon for its checks and print them as a table."""

from __future__ import annotations

import sys
from typing import Any

import httpx

from monitor.cli.terminal import cell, echo


def fetch_checks(url: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    response = httpx.get(f"{url.rstrip('/')}/api/v1/checks", timeout=timeout)
    response.raise_for_status()
    data: list[dict[str, Any]] = response.json()
    return data


def render(checks: list[dict[str, Any]]) -> str:
    rows = [("CHECK", "KIND", "STATE", "VALUE", "LATENCY", "ERROR")]
    # Down checks first: that is what the person running this is looking for.
    for check in sorted(checks, key=lambda c: (c["last"] is None or c["last"]["up"], c["name"])):
        last = check["last"]
        if last is None:
            rows.append((check["name"], check["kind"], "pending", "", "", ""))
            continue
        value = "" if last["value"] is None else f"{last['value']:g}"
        rows.append((check["name"], check["kind"], "UP" if last["up"] else "DOWN", value,
                     f"{last['latency'] * 1000:.1f}ms", (last["error"] or "")[:80]))
    # Everything here came over the network (and errors from the targets): escape it.
    shown = [tuple(cell(text) for text in row) for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    return "\n".join("  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in shown)


def run_status_command(url: str) -> int:
    try:
        checks = fetch_checks(url)
    except httpx.HTTPStatusError as err:
        echo(f"monitor: {url} answered {err.response.status_code}", file=sys.stderr)
        return 1
    except (httpx.HTTPError, ValueError) as err:
        echo(f"monitor: cannot reach a daemon at {url}: {err}", file=sys.stderr)
        return 1
    echo(render(checks))
    down = sum(1 for c in checks if c["last"] is not None and not c["last"]["up"])
    echo(f"\n{len(checks)} checks, {down} down")
    return 0
