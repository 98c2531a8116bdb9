"""What a rule expression can see: the latest result's variables and window functions
over the check's history (all windows are strings like "5m")."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from monitor.core.durations import parse_duration
from monitor.core.expressions import ExpressionError, NoValue, execute
from monitor.history import History
from monitor.core.results import Result

if TYPE_CHECKING:  # slo.py imports NoData from here
    from monitor.rules.slo import SloTracker

FIELDS = ("value", "latency", "up")
# The names rules can call; each is a method of WindowFunctions taking a window like "5m".
WINDOW_FUNCTIONS = (
    "avg_over_time", "max_over_time", "min_over_time", "quantile_over_time",
    "success_ratio", "changes", "rate", "count_over_time",
)
# Functions over the check's SLO counts (checks with `slo:` only).
SLO_FUNCTIONS = ("burn_rate",)


class NoData(NoValue):
    """A window with no samples: like an empty vector in PromQL, the rule does not fire."""


def _window(text: Any) -> float:
    if not isinstance(text, str):
        raise ValueError(f"a window must be a string like \"5m\", got {text!r}")
    seconds = parse_duration(text)
    if seconds <= 0:
        raise ValueError("a window must be longer than 0s")
    return seconds


def _field(name: Any) -> str:
    if name not in FIELDS:
        raise ValueError(f"unknown field {name!r} (use one of {', '.join(FIELDS)})")
    return str(name)


def _quantile(q: float, values: list[float]) -> float:
    """Prometheus' quantile_over_time: linear interpolation between closest ranks."""
    values.sort()
    rank = q * (len(values) - 1)
    low = math.floor(rank)
    high = min(low + 1, len(values) - 1)
    return values[low] + (values[high] - values[low]) * (rank - low)


class WindowFunctions:
    """The window functions, bound to one check's history at one moment."""

    def __init__(self, history: History, now: float) -> None:
        self._history = history
        self._now = now

    def _values(self, field: Any, window: Any) -> Sequence[float]:
        name, since = _field(field), self._now - _window(window)
        values: Sequence[float]
        if name == "up":
            values = [float(v) for v in self._history.ups(since)]
        else:
            column = self._history.floats(name, since)
            # NaN marks "no value"; rare, so filter only when the sum says one is there.
            values = [v for v in column if not math.isnan(v)] if math.isnan(math.fsum(column)) else column
        if not values:
            raise NoData(f"no samples in the last {window}")
        return values

    def avg_over_time(self, field: Any, window: Any) -> float:
        values = self._values(field, window)
        return math.fsum(values) / len(values)

    def max_over_time(self, field: Any, window: Any) -> float:
        return max(self._values(field, window))

    def min_over_time(self, field: Any, window: Any) -> float:
        return min(self._values(field, window))

    def quantile_over_time(self, q: Any, field: Any, window: Any) -> float:
        if not isinstance(q, (int, float)) or not 0 <= q <= 1:
            raise ValueError(f"quantile must be a number between 0 and 1, got {q!r}")
        return _quantile(float(q), list(self._values(field, window)))

    def success_ratio(self, window: Any) -> float:
        ups = self._history.ups(self._now - _window(window))
        if not ups:
            raise NoData(f"no samples in the last {window}")
        return ups.count(1) / len(ups)

    def count_over_time(self, window: Any) -> int:
        return len(self._history.floats("at", self._now - _window(window)))

    def changes(self, field: Any, window: Any) -> int:
        values = self._values(field, window)
        return sum(1 for a, b in zip(values, values[1:]) if a != b)

    def rate(self, field: Any, window: Any) -> float:
        """Per-second increase of a counter over the window; a drop counts as a reset."""
        since = self._now - _window(window)
        name = _field(field)
        at = self._history.floats("at", since)
        column: Sequence[float] = self._history.ups(since) if name == "up" else self._history.floats(name, since)
        points = [(t, float(v)) for t, v in zip(at, column) if not math.isnan(v)]
        if len(points) < 2:
            raise NoData(f"rate needs two samples in the last {window}")
        increase = 0.0
        for (_, previous), (_, current) in zip(points, points[1:]):
            increase += current - previous if current >= previous else current
        elapsed = points[-1][0] - points[0][0]
        if elapsed <= 0:
            raise NoData("samples share one timestamp")
        return increase / elapsed

    def bind(self, names: set[str]) -> dict[str, Callable[..., Any]]:
        return {name: getattr(self, name) for name in names}


class SloFunctions:
    """``burn_rate("1h")``: how fast the check spends its error budget (1 = exactly on budget)."""

    def __init__(self, tracker: SloTracker, now: float) -> None:
        self._tracker = tracker
        self._now = now

    def burn_rate(self, window: Any) -> float:
        return self._tracker.burn_rate(_window(window), self._now)


def variables(result: Result, labels: dict[str, str], now: float, stale_after: float | None = None,
              error_budget_remaining: float = 1.0) -> dict[str, Any]:
    """The instant variables a rule reads (docs/configuration.md, "Rules"), from one result.

    ``age`` is how long ago that result was taken. A check whose results stopped coming
    (``age`` past ``stale_after``) reads as down: silence must never look healthy.
    """
    age = max(now - result.at, 0.0)
    stale = stale_after is not None and age > stale_after
    up = result.up and not stale
    return {
        "up": up,
        # No value on a result that is up (an empty PromQL result, a NULL): None, and a rule
        # reading it does not hold (`lacks_value`), as PromQL's empty vector matches
        # nothing. On a result that is down: 0.0, so `!up || value > 5` still fires.
        "value": result.value if result.value is not None else (None if up else 0.0),
        "latency": result.latency,
        "status": _http_status(result.detail.get("status")),
        "body": result.detail.get("body", {}),
        "detail": result.detail,
        "labels": labels,
        "error": f"stale: no result for {age:.0f}s" if stale else (result.error or ""),
        "age": age,
        "error_budget_remaining": error_budget_remaining,
    }


def lacks_value(scope: dict[str, Any]) -> bool:
    """A rule whose scope has ``value`` None (see ``variables``): it does not hold."""
    return "value" in scope and scope["value"] is None


def _http_status(status: Any) -> int:
    """``status`` is the HTTP status; other kinds' ``detail.status`` (an ECS service's
    "ACTIVE") is not one and reads as 0, as an absent one does (``detail.status`` keeps it)."""
    if isinstance(status, bool):
        return 0
    if isinstance(status, int):
        return status
    if isinstance(status, str) and status.isdigit():
        return int(status)
    return 0


def rule_functions(names: Iterable[str], history: History, now: float,
                   tracker: SloTracker | None = None) -> dict[str, Callable[..., Any]]:
    """The functions among ``names`` bound to one check's history (and SLO tracker) at ``now``.

    The one place a rule's function scope is built: the engine, ``monitor check`` and the
    dry run at load all go through it, so what a rule can call cannot drift between them."""
    wanted = set(names)
    functions = WindowFunctions(history, now).bind(wanted & set(WINDOW_FUNCTIONS))
    if tracker is not None and "burn_rate" in wanted:
        functions["burn_rate"] = SloFunctions(tracker, now).burn_rate
    return functions


@dataclass(frozen=True)
class Reads:
    """The variables and functions one rule's expression reads, worked out once per config.

    Only those are handed to CEL: converting `body` and `detail` on every evaluation was
    most of the per-rule cost (bench/rules.py)."""

    variables: frozenset[str]
    functions: frozenset[str]

    @classmethod
    def of(cls, program: Any) -> Reads:
        return cls(frozenset(program.variables()), frozenset(program.functions()))

    def scope(self, base: dict[str, Any], functions: dict[str, Callable[..., Any]]) -> dict[str, Any]:
        """The mapping CEL runs on, from the instant variables and the bound functions."""
        scope = {name: base[name] for name in self.variables & base.keys()}
        scope.update((name, functions[name]) for name in self.functions & functions.keys())
        return scope


def _checked_burn_rate(window: Any) -> float:
    _window(window)
    return 1.0


def dry_run(program: Any) -> None:
    """Evaluate a compiled rule on typical data at config load, so that a bad window, an
    unknown field or a type error (CEL does not mix int and double: `value * 2`) is a
    config error rather than a rule that silently never fires. Data-dependent misses
    (a key absent from this dummy body) are not errors."""
    history = History(4)
    history.add(Result(up=True, value=1.0, latency=0.1, at=-1.0))
    history.add(Result(up=False, value=2.0, latency=0.2, at=0.0))
    reads = Reads.of(program)
    functions = rule_functions(reads.functions, history, now=0.0)
    if "burn_rate" in program.functions():  # no SLO counts exist at load: check the window only
        functions["burn_rate"] = _checked_burn_rate
    for up in (True, False):  # both, so `!up && ...` does not hide its right-hand side
        sample = Result(up=up, value=1.0, latency=0.1, at=0.0, detail={"status": 200, "body": {}})
        try:
            execute(program, reads.scope(variables(sample, {}, 0.0), functions))
        except NoValue:
            pass
        except ExpressionError as err:  # a key absent from this dummy body is data, not a mistake
            if not str(err).startswith("no such key") and "key" not in str(err).lower():
                raise ValueError(str(err)) from None
