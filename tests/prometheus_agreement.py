"""Compare the daemon's PromQL answers with a real Prometheus server's, on the same samples.

Prometheus scrapes ``tests/promql_app.py``. Its raw samples are read back through its own API
(``{job="app"}[10m]``) and fed, scrape by scrape, into the daemon's ``SeriesStore``; the
scrape times come from Prometheus' ``up`` series. A series missing from a scrape after being
in the previous one gets its staleness marker from the store, as Prometheus writes one. Then
each query of the corpus is asked of both at the same evaluation times and the answers
compared series by series.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections import defaultdict
from dataclasses import dataclass
from typing import Any

try:
    from monitor.promql import PromQLError, Sample, SeriesStore, compile_query, evaluate
except ImportError: pass

# Series Prometheus adds to every target itself; the target's exposition never holds them.
_SYNTHETIC = {"up", "scrape_duration_seconds", "scrape_samples_scraped",
              "scrape_samples_post_metric_relabeling", "scrape_series_added"}

Answer = float | dict[tuple[tuple[str, str], ...], float] | str  # scalar, vector, or an error


def _get(base: str, path: str, **params: str) -> Any:
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return json.load(response)
    except urllib.error.HTTPError as err:  # 422/400: a query error, with its JSON body
        return json.load(err)


def _number(text: str) -> float:
    return float(text)  # Go prints NaN, +Inf, -Inf; Python's float reads all three


@dataclass
class Scrapes:
    """Every scrape Prometheus made of the app: time (s) → samples of that scrape."""

    times: list[float]
    by_time: dict[float, list[tuple[str, dict[str, str], float]]]

    @property
    def series(self) -> int:
        return len({(name, tuple(sorted(labels.items()))) for samples in self.by_time.values()
                    for name, labels, _ in samples})

    def store_for(self, selectors: Any, retention: float) -> SeriesStore:
        store = SeriesStore(selectors, retention, max_series=10_000)
        for at in self.times:
            store.append_scrape(at, ((name, labels, value, None) for name, labels, value in self.by_time.get(at, [])))
        return store


def read_scrapes(prometheus: str, at: float) -> Scrapes:
    """The raw samples Prometheus stored for job "app", read at time ``at``."""
    up = _get(prometheus, "/api/v1/query", query='up{job="app"}[10m]', time=f"{at:.3f}")
    times = sorted(float(ts) for series in up["data"]["result"] for ts, _ in series["values"])
    raw = _get(prometheus, "/api/v1/query", query='{job="app"}[10m]', time=f"{at:.3f}")
    by_time: dict[float, list[tuple[str, dict[str, str], float]]] = defaultdict(list)
    for series in raw["data"]["result"]:
        labels = dict(series["metric"])
        name = labels.pop("__name__")
        if name in _SYNTHETIC:
            continue
        for ts, value in series["values"]:
            by_time[float(ts)].append((name, labels, _number(value)))
    return Scrapes(times, dict(by_time))


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def prometheus_answer(prometheus: str, query: str, at: float) -> Answer:
    body = _get(prometheus, "/api/v1/query", query=query, time=f"{at:.3f}")
    if body.get("status") != "success":
        return f"error: {body.get('error')}"
    data = body["data"]
    if data["resultType"] == "scalar":
        return _number(data["result"][1])
    return {_key(s["metric"]): _number(s["value"][1]) for s in data["result"]}


def own_answer(scrapes: Scrapes, query: str, at: float) -> Answer:
    try:
        compiled = compile_query(query)
        result = evaluate(compiled, scrapes.store_for(compiled.selectors, compiled.retention), at)
    except PromQLError as err:
        return f"error: {err}"
    if isinstance(result, float):
        return result
    return {_key(dict(s.labels)): s.value for s in result if isinstance(s, Sample)}


def difference(a: float, b: float) -> float:
    """Relative difference, 0 for equal values (NaN equals NaN, as both engines print it)."""
    if math.isnan(a) or math.isnan(b):
        return 0.0 if math.isnan(a) and math.isnan(b) else math.inf
    if a == b:
        return 0.0
    if math.isinf(a) or math.isinf(b):
        return math.inf
    return abs(a - b) / max(abs(a), abs(b), 1e-12)


def compare(theirs: Answer, ours: Answer) -> tuple[float, str]:
    """Worst relative difference between two answers and, if they disagree in shape, why."""
    if isinstance(theirs, str) or isinstance(ours, str):
        both_errors = isinstance(theirs, str) and isinstance(ours, str)
        return (0.0, "") if both_errors else (math.inf, f"prometheus: {theirs!r}, ours: {ours!r}")
    if isinstance(theirs, float) or isinstance(ours, float):
        if isinstance(theirs, float) and isinstance(ours, float):
            return difference(theirs, ours), ""
        return math.inf, f"result types differ: prometheus {theirs!r}, ours {ours!r}"
    if theirs.keys() != ours.keys():
        return math.inf, f"series differ: only prometheus {sorted(theirs.keys() - ours.keys())}, only ours {sorted(ours.keys() - theirs.keys())}"
    worst = max((difference(theirs[k], ours[k]) for k in theirs), default=0.0)
    return worst, ""
