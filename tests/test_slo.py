"""SLO tracking: error budget math, the workbook's burn-rate alerts, the ring, persistence.

Histories are built as per-minute counts and loaded in one go (a 30-day history is 43,200
minutes; recording each result would take seconds)."""

from __future__ import annotations

import random
import time
from collections import Counter
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from monitor.rules.functions import NoData
from monitor.rules.slo import BurnRateAlert, SloConfig, SloTracker, burn_rate_alerts
from monitor.core.records import MinuteCount

NOW_MINUTE = 28_333_333  # late 2023
NOW = NOW_MINUTE * 60 + 30.0  # half way through the open minute
DAY = 1440  # minutes
TOTAL = 10_000  # results per minute in synthetic histories: error ratios stay near exact

ErrorRatio = Callable[[int], float | None]  # minutes ago (0: the open minute) -> ratio; None: no traffic


def slo(objective: float = 99.9, window: str = "30d") -> SloConfig:
    return SloConfig.model_validate({"objective": objective, "window": window})


def history(error_ratio: ErrorRatio, days: int = 30, total: int = TOTAL) -> list[MinuteCount]:
    """Per-minute counts for ``days`` days ending with NOW's minute."""
    counts = []
    for ago in range(days * DAY):
        ratio = error_ratio(ago)
        if ratio is not None:
            bad = round(ratio * total)
            counts.append(MinuteCount(NOW_MINUTE - ago, total - bad, total))
    return counts


def tracker(error_ratio: ErrorRatio, objective: float = 99.9, days: int = 30) -> SloTracker:
    t = SloTracker(slo(objective))
    t.load(history(error_ratio, days))
    return t


def between(first_ago: int, last_ago: int, ratio: float, otherwise: float | None = 0.0) -> ErrorRatio:
    """``ratio`` errors from ``first_ago`` to ``last_ago`` minutes ago (inclusive)."""
    return lambda ago: ratio if first_ago <= ago <= last_ago else otherwise


def holds(alert: BurnRateAlert, t: SloTracker, now: float) -> bool:
    """Both windows burn faster than the factor; a window without results never fires
    (what the rule the engine builds for the alert evaluates)."""
    try:
        return t.burn_rate(alert.long_window, now) > alert.factor and t.burn_rate(alert.short_window, now) > alert.factor
    except NoData:
        return False


def nbytes(t: SloTracker) -> int:
    """Memory of the tracker's ring."""
    return t._good.itemsize * len(t._good) + t._total.itemsize * len(t._total)


def firing(t: SloTracker, now: float = NOW) -> set[str]:
    return {alert.name for alert in burn_rate_alerts(t.config) if holds(alert, t, now)}


# ---- config -----------------------------------------------------------------------------


def test_config_defaults_and_durations() -> None:
    config = SloConfig.model_validate({"objective": 99.9})
    assert config.window == 30 * 86400 and config.alerts is True
    assert slo(99.5, "7d").window == 7 * 86400
    assert SloTracker(config).objective_ratio == pytest.approx(0.999)


@pytest.mark.parametrize(
    "data",
    [
        {"objective": 0},
        {"objective": 100},
        {"objective": 100.5},
        {"objective": -1},
        {"objective": 99.9, "window": "59m"},
        {"objective": 99.9, "window": "soon"},
        {"objective": 99.9, "objectve": 99},  # a typo is an error, not a silent default
        {"window": "30d"},
    ],
)
def test_config_rejects(data: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        SloConfig.model_validate(data)


# ---- budget and burn-rate math ----------------------------------------------------------


@pytest.mark.parametrize(("bad_per_minute", "remaining"), [(0, 1.0), (50, 0.5), (100, 0.0), (200, -1.0)])
def test_error_budget_hand_computed(bad_per_minute: int, remaining: float) -> None:
    # 99% over 1h: 60 minutes x 1000 results = 60,000 results, a budget of 600 failures.
    t = SloTracker(slo(99, "1h"))
    t.load([MinuteCount(NOW_MINUTE - ago, 1000 - bad_per_minute // 10, 1000) for ago in range(60)])
    # 60 x bad/10 failures: 0, 300, 600, 1200 of the 600 allowed.
    assert t.error_budget_remaining(NOW) == pytest.approx(remaining, abs=1e-12)


def test_error_budget_counts_only_the_window() -> None:
    t = SloTracker(slo(99, "1h"))
    t.load([MinuteCount(NOW_MINUTE - 60, 0, 1000)])  # all failed, but one minute too old
    assert t.error_budget_remaining(NOW) == 1.0  # no traffic inside the window
    t.load([MinuteCount(NOW_MINUTE - 59, 990, 1000)])  # 10 failures of a 10-failure budget
    assert t.error_budget_remaining(NOW) == pytest.approx(0.0, abs=1e-12)
    assert t.error_budget_remaining(NOW + 60) == 1.0  # a minute later it has left the window


def test_error_budget_without_traffic_is_full() -> None:
    assert SloTracker(slo()).error_budget_remaining(NOW) == 1.0


def test_burn_rate_hand_computed() -> None:
    # 99.9%: 2% errors burn 20x; the last 5 minutes are clean.
    t = SloTracker(slo(99.9))
    t.load([MinuteCount(NOW_MINUTE - ago, 980 if ago >= 5 else 1000, 1000) for ago in range(60)])
    assert t.burn_rate(300, NOW) == 0.0
    assert t.burn_rate(3600, NOW) == pytest.approx(20 * 55 / 60)
    assert t.burn_rate(2 * 3600, NOW) == pytest.approx(20 * 55 / 60)  # no traffic before: not counted
    assert t.burn_rate(600, NOW) == pytest.approx(10.0)


def test_burn_rate_windows_include_the_open_minute() -> None:
    t = SloTracker(slo(99))
    t.record(NOW - 60, True)  # the previous minute
    assert t.burn_rate(60, NOW - 60) == 0.0
    with pytest.raises(NoData):
        t.burn_rate(60, NOW)  # 1m = just the open minute, which has nothing yet
    t.record(NOW, False)
    assert t.burn_rate(60, NOW) == pytest.approx(100.0)
    assert t.burn_rate(120, NOW) == pytest.approx(50.0)


def test_burn_rate_without_traffic_is_no_data() -> None:
    t = tracker(lambda ago: 0.5 if ago >= 5 else None)
    with pytest.raises(NoData):
        t.burn_rate(300, NOW)
    assert t.burn_rate(360, NOW) == pytest.approx(500.0)
    with pytest.raises(NoData):
        SloTracker(slo()).burn_rate(3600, NOW)


def test_burn_rate_window_longer_than_slo_is_an_error() -> None:
    with pytest.raises(ValueError, match="longer than the SLO window"):
        SloTracker(slo(99.9, "1h")).burn_rate(7200, NOW)


# ---- the alerts -------------------------------------------------------------------------


def test_alerts_for_a_30_day_slo_are_the_workbooks() -> None:
    assert burn_rate_alerts(slo()) == [
        BurnRateAlert("SLOBurnRateFast", "critical", 3600, 300, 14.4),
        BurnRateAlert("SLOBurnRateMedium", "critical", 6 * 3600, 1800, 6.0),
        BurnRateAlert("SLOBurnRateSlow", "warning", 3 * 86400, 6 * 3600, 1.0),
    ]
    assert burn_rate_alerts(slo())[0].labels == {"severity": "critical", "long_window": "1h", "short_window": "5m"}


def test_alert_windows_scale_with_the_slo_window() -> None:
    # 7d: long windows x 7/30 (1h -> 14m, 6h -> 84m, 3d -> 1008m), short = long / 12 in whole minutes.
    windows = [(a.long_window, a.short_window, a.factor) for a in burn_rate_alerts(slo(99.9, "7d"))]
    assert windows == [(14 * 60, 60, 14.4), (84 * 60, 7 * 60, 6.0), (1008 * 60, 84 * 60, 1.0)]
    # 1h: everything shrinks to the one-minute resolution.
    assert {(a.long_window, a.short_window) for a in burn_rate_alerts(slo(99.9, "1h"))} == {(60, 60), (360, 60)}


def test_alerts_can_be_switched_off() -> None:
    assert burn_rate_alerts(SloConfig.model_validate({"objective": 99.9, "alerts": False})) == []


def test_short_sharp_outage_trips_only_the_short_window() -> None:
    # 30 seconds fully down (half a minute of results) a minute ago, 30 clean days otherwise.
    t = tracker(between(1, 1, 0.5))
    assert t.burn_rate(300, NOW) == pytest.approx(100.0)  # 5m: far above 14.4...
    assert t.burn_rate(3600, NOW) == pytest.approx(500 / 60)  # ...but 1h: 8.3, below it
    assert firing(t) == set()


def test_sustained_two_percent_hour_pages() -> None:
    t = tracker(between(0, 59, 0.02))  # burn rate 20 for the last hour
    assert t.burn_rate(3600, NOW) == pytest.approx(20.0)
    assert firing(t) == {"SLOBurnRateFast"}  # 6h: 3.3 < 6; 3d: 0.28 < 1


def test_fast_page_resets_once_the_short_window_is_clean() -> None:
    t = tracker(between(10, 69, 0.02))  # the same hour, over for ten minutes
    assert t.burn_rate(3600, NOW) > 14.4  # the long window still remembers it
    assert firing(t) == set()


def test_six_hours_at_one_percent_pages_the_medium_alert() -> None:
    t = tracker(between(0, 6 * 60 - 1, 0.01))  # burn rate 10: below 14.4, above 6
    assert firing(t) == {"SLOBurnRateMedium"}  # 3d: 10 x 6h / 72h = 0.83 < 1


def test_slow_burn_over_days_is_only_a_ticket() -> None:
    t = tracker(between(0, 3 * DAY - 1, 0.002))  # 0.2% errors: burn rate 2 for three days
    assert t.burn_rate(3 * 86400, NOW) == pytest.approx(2.0)
    assert firing(t) == {"SLOBurnRateSlow"}
    assert t.error_budget_remaining(NOW) == pytest.approx(1 - 2 * 3 / 30)


@pytest.mark.parametrize("index", [0, 1, 2], ids=["fast", "medium", "slow"])
@pytest.mark.parametrize(
    ("short_times", "rest_times", "fires"),
    [
        (1.5, 1.5, True),  # both windows at 1.5x the factor
        (0.0, 2.0, False),  # long window 1.83x (11/12 of 2x), short clean
        (6.0, 0.0, False),  # short window 6x, long 6/12 = 0.5x
        (None, 2.0, False),  # long 2x, no traffic in the short window
        (None, None, False),  # no traffic at all in the long window
    ],
)
def test_each_alert_needs_both_windows_above_its_factor(
    index: int, short_times: float | None, rest_times: float | None, fires: bool
) -> None:
    alert = burn_rate_alerts(slo())[index]
    short, long = int(alert.short_window // 60), int(alert.long_window // 60)
    budget = 0.001

    def ratio(ago: int) -> float | None:
        times = short_times if ago < short else rest_times if ago < long else 0.0
        return None if times is None else times * alert.factor * budget

    t = tracker(ratio)
    assert holds(alert, t, NOW) is fires


def test_no_traffic_never_fires_even_after_a_bad_month() -> None:
    t = tracker(lambda ago: 1.0 if ago > 4 * DAY else None)  # all failed, then four silent days
    assert firing(t) == set()
    assert t.error_budget_remaining(NOW) == pytest.approx(1 - 1000)  # the month is still spent
    assert firing(SloTracker(slo())) == set()


# ---- the ring ---------------------------------------------------------------------------


def naive_sums(events: list[tuple[float, bool]], minutes: int, now: float) -> tuple[int, int]:
    """Good and total of the results in the ``minutes`` minutes ending with now's minute."""
    last = int(now // 60)
    inside = [up for at, up in events if last - minutes < int(at // 60) <= last]
    return sum(inside), len(inside)


def test_ring_wraps_around_after_more_than_a_window() -> None:
    t = SloTracker(slo(99, "1h"))
    size = nbytes(t)
    events: list[tuple[float, bool]] = []
    start = NOW_MINUTE * 60.0
    for i in range(150 * 6):  # 150 minutes at one result every 10 seconds
        at, up = start + 10 * i, (i // 6) % 7 != 0  # every seventh minute is down
        t.record(at, up)
        events.append((at, up))
    now = events[-1][0]
    for minutes in (1, 5, 17, 60):
        good, total = naive_sums(events, minutes, now)
        assert t.burn_rate(minutes * 60, now) == pytest.approx((1 - good / total) / 0.01)
    good, total = naive_sums(events, 60, now)
    assert t.error_budget_remaining(now) == pytest.approx(1 - (total - good) / (0.01 * total))
    assert nbytes(t) == size


def test_asking_about_an_earlier_moment_sees_only_what_the_ring_still_holds() -> None:
    # A result stamped a little ahead of the evaluation clock must not skew the answer.
    t = SloTracker(slo(99, "1h"))
    for ago in range(120):  # one result a minute for two hours; the older hour failed
        t.record(NOW - 60 * ago, ago < 60)
    # Ten minutes ago, the last hour reached back to minute 69, but the ring only holds
    # minutes 0..59 now: the 50 of them up to ten minutes ago, all good.
    assert t.burn_rate(3600, NOW - 600) == 0.0
    with pytest.raises(NoData):
        t.burn_rate(3600, NOW - 3600)


def test_ring_matches_a_naive_model_with_late_results_and_gaps() -> None:
    rng = random.Random(7)
    t = SloTracker(slo(99, "1h"))
    events: list[tuple[float, bool]] = []
    now = NOW
    for step in range(3000):
        now += rng.choice([1, 5, 20]) if step % 500 else 2 * 3600  # and two gaps longer than the window
        at = now - rng.choice([0, 0, 0, 30, 90, 200])  # some results are late
        up = rng.random() < 0.9
        t.record(at, up)
        events.append((at, up))
        if step % 97 == 0:
            for minutes in (1, 7, 60):
                good, total = naive_sums(events, minutes, now)
                if total == 0:
                    with pytest.raises(NoData):
                        t.burn_rate(minutes * 60, now)
                else:
                    assert t.burn_rate(minutes * 60, now) == pytest.approx((1 - good / total) / 0.01)


def test_memory_stays_fixed() -> None:
    t = SloTracker(slo())
    lengths, size = (len(t._good), len(t._total)), nbytes(t)
    assert lengths == (30 * DAY + 1,) * 2  # the window plus the base slot
    for i in range(100_000):  # a result a second for 28 hours, flushed as minutes end
        t.record(NOW + i, i % 100 != 0)
        if i % 60 == 0:
            t.pending_flush(NOW + i)
    t.record(NOW + 60 * 86400, True)  # and after a silence longer than the window
    assert (len(t._good), len(t._total)) == lengths and nbytes(t) == size
    t.pending_flush(NOW + 61 * 86400)
    assert t._late == {}


def test_burn_rate_is_fast_on_a_full_30_day_ring() -> None:
    t = tracker(lambda ago: 0.001)
    calls = 20_000
    started = time.perf_counter()
    for _ in range(calls):
        t.burn_rate(3 * 86400, NOW)
    per_call = (time.perf_counter() - started) / calls
    assert per_call < 100e-6  # measured about 3 µs; summing the minutes would be ~600 µs


# ---- persistence ------------------------------------------------------------------------


class FakeStore:
    """Store.add_counts / load_counts semantics: counts add into existing minutes."""

    def __init__(self) -> None:
        self.good: Counter[int] = Counter()
        self.total: Counter[int] = Counter()
        self.writes: list[MinuteCount] = []

    def add_counts(self, counts: list[MinuteCount]) -> None:
        for c in counts:
            self.good[c.minute] += c.good
            self.total[c.minute] += c.total
        self.writes.extend(counts)

    def load_counts(self, since_minute: int) -> list[MinuteCount]:
        return [MinuteCount(m, self.good[m], self.total[m]) for m in sorted(self.total) if m >= since_minute]


def test_pending_flush_returns_each_completed_minute_once_and_never_the_open_one() -> None:
    t, store = SloTracker(slo()), FakeStore()
    recorded: Counter[int] = Counter()
    at = NOW
    for i in range(600):  # ten minutes at one result a second, flushed every 7 seconds
        t.record(at, True)
        recorded[int(at // 60)] += 1
        if i % 7 == 0:
            flushed = t.pending_flush(at)
            assert all(c.minute < int(at // 60) for c in flushed)  # never the open minute
            store.add_counts(flushed)
        at += 1
    minutes = [c.minute for c in store.writes]
    assert len(minutes) == len(set(minutes)) and minutes == sorted(minutes)
    open_minute = int((at - 1) // 60)
    assert open_minute not in store.total
    assert store.total == Counter({m: n for m, n in recorded.items() if m != open_minute})
    store.add_counts(t.pending_flush(at + 60))  # once it completes, the open minute goes too
    assert store.total == recorded
    assert t.pending_flush(at + 3600) == []


def test_late_results_flush_only_their_increase() -> None:
    t, store = SloTracker(slo()), FakeStore()
    t.record(NOW, True)
    store.add_counts(t.pending_flush(NOW + 60))  # the minute of NOW is done and written
    t.record(NOW + 1, False)  # a probe that started in that minute finished after the flush
    assert t.pending_flush(NOW + 61) == [MinuteCount(NOW_MINUTE, 0, 1)]
    assert t.pending_flush(NOW + 62) == []
    assert t.burn_rate(120, NOW + 60) == pytest.approx(500.0)  # the ring has both results


def test_loaded_counts_are_not_flushed_again() -> None:
    t = SloTracker(slo())
    t.record(NOW - 120, False)  # recorded before the load, never flushed: written once
    t.load([MinuteCount(NOW_MINUTE - 2, 5, 5), MinuteCount(NOW_MINUTE - 1, 5, 5)])
    t.record(NOW - 60, True)  # after the load, into a minute the store already holds
    t.record(NOW, True)
    assert t.pending_flush(NOW + 60) == [
        MinuteCount(NOW_MINUTE - 2, 0, 1),
        MinuteCount(NOW_MINUTE - 1, 1, 1),
        MinuteCount(NOW_MINUTE, 1, 1),
    ]
    assert t.burn_rate(180, NOW) == pytest.approx((1 / 13) / 0.001)


def test_requeued_counts_come_back_once() -> None:
    t = SloTracker(slo())
    t.record(NOW, True)
    failed_write = t.pending_flush(NOW + 60)
    t.requeue(failed_write)
    assert t.pending_flush(NOW + 61) == failed_write
    assert t.pending_flush(NOW + 62) == []


def test_a_crash_loses_at_most_the_open_minute() -> None:
    rng = random.Random(3)
    t, store = SloTracker(slo()), FakeStore()
    at = NOW
    recorded: Counter[int] = Counter()
    for _ in range(2000):  # results every few seconds, flushed after each one
        at += rng.choice([1, 2, 10])
        t.record(at, rng.random() < 0.99)
        recorded[int(at // 60)] += 1
        store.add_counts(t.pending_flush(at))
    # kill -9 here; the restarted daemon reads the store back.
    restarted = SloTracker(slo())
    restarted.load(store.load_counts(int(at // 60) - 30 * DAY))
    assert store.total == Counter({m: n for m, n in recorded.items() if m != int(at // 60)})
    assert restarted.burn_rate(3600, at - 60) == pytest.approx(t.burn_rate(3600, at - 60))
    assert restarted.pending_flush(at + 60) == []  # nothing it loaded goes back to the store
