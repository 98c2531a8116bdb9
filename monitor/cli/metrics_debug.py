"""`monitor check NAME` on a `metrics` check: the series the scrape kept and the query's answer,
so a query can be debugged without a Prometheus UI.

One run is one scrape, and a range function (`rate(x[5m])`) needs samples of at least two
scrapes in its window. So when the query has a range selector, the check is run a second
time, ``min(interval, 5s)`` after the first, and the output says so; what the range
functions give is then over those few seconds, not over the daemon's history.
"""

from __future__ import annotations

import asyncio
from typing import Any

from monitor.core.results import Result, json_number
from monitor.probes.base import ProbeEnv
from monitor.probes.metrics import MetricsCheck, reads_ranges, target_of
from monitor.promql.store import is_stale
from monitor.scheduling.runner import run_check

SHOWN = 50  # series printed, at most (a count says how many more)
MAX_GAP = 5.0  # seconds between the two scrapes of a query with range selectors


async def describe(check: MetricsCheck, env: ProbeEnv, result: Result) -> tuple[Result, list[str], dict[str, Any]]:
    """Scrape again if the query needs it; the (last) result, text lines and JSON to add."""
    lines: list[str] = []
    out: dict[str, Any] = {"scrapes": 1}
    if result.up and reads_ranges(check):
        gap = min(check.interval, MAX_GAP)
        await asyncio.sleep(gap)
        result = await run_check(check, env)
        out.update(scrapes=2, gap_seconds=gap)
        lines.append(f"scrapes  2, {gap:g} s apart (range selectors need samples of more than one scrape; "
                     "range functions see only these two, not the daemon's history)")
    target = target_of(check, env)
    kept = target.store.all_series()
    lines.append(f"series   {len(kept)} kept for the query's selectors, of {target.scraped} samples in the last scrape")
    shown: list[dict[str, Any]] = []
    for series in kept[:SHOWN]:
        labels = dict(series.labels)
        name = labels.pop("__name__", "")
        last = series.values[-1] if len(series.values) else None
        value = "stale" if last is None or is_stale(last) else json_number(last)
        shown.append({"name": name, "labels": labels, "value": value})
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        lines.append(f"  {name}{{{inner}}} {value}")
    if len(kept) > SHOWN:
        lines.append(f"  … and {len(kept) - SHOWN} more")
    out["kept_series"] = {"count": len(kept), "shown": shown}
    if result.up:
        lines.extend(_answer(check, result))
    return result, lines, out


def _answer(check: MetricsCheck, result: Result) -> list[str]:
    if result.detail.get("result_type") == "scalar":
        return [f"query    scalar {result.value}"]
    series = result.detail.get("series", [])
    lines = [f"query    vector of {len(series)} series"]
    for item in series[:SHOWN]:
        inner = ",".join(f'{k}="{v}"' for k, v in item["labels"].items())
        lines.append(f"  {{{inner}}} {item['value']}")
    if len(series) > SHOWN:
        lines.append(f"  … and {len(series) - SHOWN} more")
    if not series and reads_ranges(check):
        lines.append("  (empty: a range function needs two samples inside its window; a counter that did not "
                     "move between the two scrapes still gives 0, a selector that matches nothing gives nothing)")
    return lines
