"""The status page (`GET /`): what an on-call engineer opens first (docs/http-api.md, "Status page").

One HTML document, no script and no build step: it must load from a phone over a bad link
while things are on fire, and keep working when everything else is broken. Its order is the
order of questions: is anything wrong with the monitor itself (a reload that failed,
notifications stuck on their way out), what is alerting, what is silenced, then every check
grouped by the system it belongs to (its `system` label), down ones first, each with its
error, its value with its unit, a strip of its recent runs, a latency sparkline and its uptime
over 24 hours, 7 days and 30 days.

Nothing secret is shown: names, labels, results and annotations, every text through the
secret scrubbing, as the API (see docs/security.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from html import escape
from typing import Any

from monitor.check_status import CheckStatus
from monitor.core.durations import format_duration
from monitor.core.records import AlertRecord
from monitor.core.secrets import scrub
from monitor.core.timestamps import rfc3339
from monitor.core.units import format_quantity
from monitor.probes import value_unit

STRIP_RUNS = 40  # runs in the history strip and the sparkline
GROUP_LABEL = "system"
UNGROUPED = "other checks"


@dataclass
class PageData:
    """Everything the page shows, gathered by the server from the daemon."""

    statuses: list[CheckStatus]
    now: float
    alerts: list[AlertRecord] = field(default_factory=list)
    silences: list[dict[str, Any]] = field(default_factory=list)  # active ones, in the API's shape
    silenced: Callable[[Mapping[str, str]], bool] = lambda labels: False
    uptime: Callable[[str], Mapping[str, float | None]] = lambda name: {}
    waiting: list[tuple[str, int, str]] = field(default_factory=list)  # (receiver, count, last error)
    reload_failure: tuple[float, str] | None = None


def _value_text(status: CheckStatus) -> str:
    """The latest value in its kind's unit ("HTTP 200", "320 ms", "87.5%"), as messages show it."""
    last = status.last
    if last is not None and last.series and last.value is None:
        return f"{len(last.series)} series"  # a PromQL result of several series: the API lists them
    return format_quantity(last.value if last is not None else None, value_unit(status.check))


def _ago(now: float, at: float) -> str:
    return format_duration(round(max(now - at, 0))) + " ago"


# --- pieces ----------------------------------------------------------------------------------
def _banners(data: PageData) -> str:
    parts = []
    if data.reload_failure is not None:
        at, why = data.reload_failure
        parts.append(
            f'<div class="banner bad" role=alert><b>Config reload failed</b> {_ago(data.now, at)}: the daemon '
            f'still runs the previous config.<pre>{escape(scrub(why))}</pre></div>')
    if data.waiting:
        items = "".join(f"<li><b>{escape(target)}</b>: {count} waiting"
                        f"{' — ' + escape(scrub(error)) if error else ''}</li>"
                        for target, count, error in data.waiting)
        parts.append(f'<div class="banner warn" role=alert><b>Notifications not delivered yet</b><ul>{items}</ul></div>')
    return "".join(parts)


def _alerts(data: PageData) -> str:
    if not data.alerts:
        return '<p class=quiet>No alert is pending or firing.</p>'
    rows = []
    order = sorted(data.alerts, key=lambda a: (a.state != "firing", a.labels.get("severity") != "critical",
                                               a.alertname, a.check))
    for alert in order:
        severity = alert.labels.get("severity", "")
        muted = alert.state == "firing" and data.silenced(alert.labels)
        since = alert.fired_at if alert.state == "firing" and alert.fired_at else alert.active_at
        summary = scrub(alert.annotations.get("summary", ""))
        runbook = alert.annotations.get("runbook_url", "")
        link = (f' <a href="{escape(scrub(runbook))}" rel=noreferrer>runbook</a>'
                if runbook.startswith(("https://", "http://")) else "")
        extra = {k: v for k, v in alert.labels.items() if k not in {"alertname", "check", "severity"}}
        sev_badge = f'<span class="badge sev-{escape(severity)}">{escape(severity)}</span>' if severity else ""
        mute_badge = '<span class="badge muted">silenced</span>' if muted else ""
        rows.append(
            f'<li class="alert {alert.state}{" muted" if muted else ""}">'
            f'<span class="badge state-{alert.state}">{alert.state}</span>{sev_badge}{mute_badge}'
            f'<b>{escape(alert.alertname)}</b> <span class=quiet>on {escape(alert.check)} · '
            f'{alert.state} for {format_duration(round(max(data.now - since, 0)))}</span>'
            f'<div>{escape(summary)}{link}</div>'
            f'<div class="labels quiet">{escape(", ".join(f"{k}={v}" for k, v in sorted(extra.items())))}</div></li>')
    return f'<ul class=list>{"".join(rows)}</ul>'


def _silences(data: PageData) -> str:
    if not data.silences:
        return '<p class=quiet>No active silence.</p>'
    rows = []
    for silence in data.silences:
        matchers = ", ".join(
            f'{m.get("name")}{"=" if m.get("isEqual", True) else "!"}{"~" if m.get("isRegex") else ""}"{m.get("value")}"'
            for m in silence.get("matchers", []))
        rows.append(
            f'<li><span class="badge muted id" title="silence id">{escape(str(silence.get("id", ""))[:8])}</span>'
            f'<code>{escape(scrub(matchers))}</code> <span class=quiet>until {escape(str(silence.get("endsAt", "")))}'
            f' · by {escape(scrub(str(silence.get("createdBy", ""))))}</span>'
            f'<div>{escape(scrub(str(silence.get("comment", ""))))}</div></li>')
    return f'<ul class=list>{"".join(rows)}</ul>'


def _strip(status: CheckStatus) -> str:
    """One bar per recent run, green when up, red when down; the tooltip says when."""
    history = status.history
    if not len(history):
        return '<span class=quiet>no runs yet</span>'
    at = history.floats("at", 0.0)[-STRIP_RUNS:]
    ups = history.ups(at[0])[-len(at):]
    bars = "".join(f'<i class={"u" if up else "d"} title="{rfc3339(when)} {"up" if up else "down"}"></i>'
                   for when, up in zip(at, ups))
    return f'<span class=strip aria-label="last {len(at)} runs">{bars}</span>'


def _sparkline(status: CheckStatus) -> str:
    """Latency of the recent runs as an inline SVG line (no script, scales with the text)."""
    history = status.history
    if len(history) < 2:
        return ""
    at = history.floats("at", 0.0)[-STRIP_RUNS:]
    latencies = [x for x in history.floats("latency", at[0])[-len(at):] if math.isfinite(x)]
    if len(latencies) < 2:
        return ""
    top = max(latencies) or 1.0
    width, height = 100, 20
    step = width / (len(latencies) - 1)
    points = " ".join(f"{i * step:.1f},{height - 1 - (v / top) * (height - 2):.1f}" for i, v in enumerate(latencies))
    return (f'<svg class=spark viewBox="0 0 {width} {height}" preserveAspectRatio=none role=img '
            f'aria-label="latency, max {top * 1000:.0f} ms"><title>latency of the last {len(latencies)} runs, '
            f'max {top * 1000:.0f} ms</title><polyline points="{points}"/></svg>')


def _uptime(figures: Mapping[str, float | None]) -> str:
    cells = []
    for window, ratio in figures.items():
        if ratio is None:
            text, css = "–", "na"
        else:
            percent = ratio * 100
            text = f"{percent:.2f}%" if percent < 100 else "100%"
            css = "good" if percent >= 99.9 else "fair" if percent >= 99 else "poor"
        cells.append(f'<span class="up-{css}" title="uptime over {window}">{window} <b>{text}</b></span>')
    return f'<span class=uptime>{"".join(cells)}</span>'


def _check(status: CheckStatus, data: PageData) -> str:
    check, last = status.check, status.last
    if last is None:
        state, css, when, error = "pending", "pending", "not run yet", ""
    else:
        state, css = ("up", "up") if last.up else ("down", "down")
        when = _ago(data.now, last.at)
        error = scrub(last.error or "")
    # A failed run's latency is how long it took to fail, not how fast the target answers.
    latency = f"{last.latency * 1000:.0f} ms" if last is not None and last.up else ""
    value = _value_text(status)
    description = f'<div class=quiet>{escape(check.description)}</div>' if check.description else ""
    error_html = f'<div class=error>{escape(error)}</div>' if error else ""
    return (
        f'<li class="check {css}" id="check-{escape(check.name)}"><div class=head>'
        f'<span class="badge state-{css}">{state}</span><b class=name>{escape(check.name)}</b>'
        f'<span class=quiet>{escape(check.kind)} · {when}</span></div>{description}{error_html}'
        f'<div class=figures><span class=value title="latest value">{escape(value)}</span>'
        f'<span class=latency title="latest latency">{latency}</span>{_sparkline(status)}</div>'
        f'<div class=figures>{_strip(status)}{_uptime(data.uptime(check.name))}</div></li>')


def _systems(data: PageData) -> tuple[str, int]:
    groups: dict[str, list[CheckStatus]] = {}
    for status in data.statuses:
        groups.setdefault(status.check.labels.get(GROUP_LABEL, UNGROUPED), []).append(status)
    sections = []
    down_total = 0
    # Systems with something down first, then by name; the catch-all last.
    def key(item: tuple[str, list[CheckStatus]]) -> tuple[bool, bool, str]:
        name, members = item
        return (not any(s.last is not None and not s.last.up for s in members), name == UNGROUPED, name)
    for name, members in sorted(groups.items(), key=key):
        down = sum(1 for s in members if s.last is not None and not s.last.up)
        down_total += down
        members.sort(key=lambda s: (s.last is None or s.last.up, s.last is None, s.check.name))
        summary = f"{down} of {len(members)} down" if down else f"{len(members)} up" if all(
            s.last is not None for s in members) else f"{len(members)} checks"
        sections.append(
            f'<section class="system{" bad" if down else ""}"><h3>{escape(name)} <span class=quiet>{summary}</span></h3>'
            f'<ul class=list>{"".join(_check(s, data) for s in members)}</ul></section>')
    return "".join(sections), down_total


_STYLE = """
:root{--bad:#c62828;--warn:#ef6c00;--good:#2e7d32;--muted:#6b6b6b;--line:#e3e3e3;--bg:#fafafa}
*{box-sizing:border-box}body{font:15px/1.4 system-ui,-apple-system,Segoe UI,sans-serif;margin:0;background:var(--bg);color:#111}
header{padding:14px 18px;color:#fff;background:var(--good)}header.bad{background:var(--bad)}header.warn{background:var(--warn)}
header h1{margin:0;font-size:1.3em}header p{margin:4px 0 0}header a{color:#fff}
main{max-width:1100px;margin:0 auto;padding:8px 12px 40px}h2{font-size:1.1em;margin:22px 0 8px}h3{margin:0 0 6px;font-size:1.05em}
.banner{margin:12px 0;padding:8px 12px;border-left:5px solid;background:#fff}.banner.bad{border-color:var(--bad)}
.banner.warn{border-color:var(--warn)}.banner pre{white-space:pre-wrap;margin:6px 0 0;font-size:.85em}
.list{list-style:none;margin:0;padding:0}.list>li{background:#fff;border:1px solid var(--line);border-radius:6px;padding:8px 10px;margin:6px 0}
.system{margin:14px 0}.system.bad h3{color:var(--bad)}
.badge{display:inline-block;font-size:.75em;font-weight:600;text-transform:uppercase;padding:1px 6px;border-radius:4px;margin-right:6px;background:#ddd;color:#333}
.state-up{background:var(--good);color:#fff}.state-down,.state-firing{background:var(--bad);color:#fff}
.state-pending{background:#ffe0b2;color:#6d3b00}.sev-critical{background:#4a0000;color:#fff}.sev-warning{background:var(--warn);color:#fff}
.sev-info{background:#1565c0;color:#fff}.badge.muted{background:#e0e0e0;color:#444}.badge.id{text-transform:none;font-family:ui-monospace,monospace}li.muted{opacity:.7}
.quiet{color:var(--muted);font-size:.9em}.name{margin-right:8px}.error{color:var(--bad);font-family:ui-monospace,monospace;font-size:.88em;word-break:break-word}
.figures{display:flex;flex-wrap:wrap;align-items:center;gap:6px 14px;margin-top:4px}.value{font-weight:600}
.strip{display:inline-flex;gap:1px;height:16px;align-items:stretch}.strip i{display:block;width:5px;border-radius:1px}
.strip i.u{background:var(--good)}.strip i.d{background:var(--bad)}
.spark{width:100px;height:20px}.spark polyline{fill:none;stroke:#1565c0;stroke-width:1.5;vector-effect:non-scaling-stroke}
.uptime{display:inline-flex;gap:10px;font-size:.85em}.up-good b{color:var(--good)}.up-fair b{color:var(--warn)}.up-poor b{color:var(--bad)}.up-na b{color:var(--muted)}
code{font-size:.9em}footer{color:var(--muted);font-size:.85em;margin-top:24px}
@media (max-width:600px){body{font-size:14px}.strip i{width:3px}header h1{font-size:1.1em}.uptime{gap:6px}}
"""


def status_page(data: PageData) -> str:
    systems, down = _systems(data)
    firing = [a for a in data.alerts if a.state == "firing"]
    if down:
        title, css = f"{down} check{'s' if down != 1 else ''} down", "bad"
    elif firing:
        title, css = f"{len(firing)} alert{'s' if len(firing) != 1 else ''} firing", "warn"
    else:
        title, css = "All checks up", ""
    pending = sum(1 for a in data.alerts if a.state == "pending")
    return f"""<!doctype html><html lang=en><head><meta charset=utf-8>
<meta name=viewport content="width=device-width,initial-scale=1"><meta http-equiv=refresh content=30>
<title>monitor: {escape(title)}</title><style>{_STYLE}</style></head><body>
<header class="{css}"><h1>{escape(title)}</h1><p>{len(data.statuses)} checks · {len(firing)} firing · {pending} pending ·
{len(data.silences)} silence{"s" if len(data.silences) != 1 else ""} · <a href="/metrics">metrics</a> · <a href="/api/v1/checks">API</a></p></header>
<main>{_banners(data)}<h2>Alerts</h2>{_alerts(data)}<h2>Silences</h2>{_silences(data)}<h2>Checks</h2>{systems}
<footer>Rendered {escape(rfc3339(data.now))}; refreshes every 30 s.</footer></main></body></html>"""
