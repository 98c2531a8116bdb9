"""History stays bounded and answers window queries; state changes log once."""

from __future__ import annotations

import structlog
from structlog.testing import capture_logs

from monitor.check_status import CheckStatuses
from monitor.history import History
from monitor.probes.disk import DiskCheck
from monitor.core.results import Outcome, Result


def result(at: float, up: bool = True, value: float = 1.0) -> Result:
    return Result(up=up, value=value, latency=0.01, at=at, outcome=Outcome.SUCCESS if up else Outcome.FAILURE)


def test_capacity_covers_the_window_within_the_cap() -> None:
    assert History.capacity_for(interval=1, window=3600, cap=10_000) == 3602
    assert History.capacity_for(interval=1, window=3600, cap=1000) == 1000
    assert History.capacity_for(interval=600, window=3600, cap=1000) == 16


def test_ring_buffer_is_bounded_and_windows_are_tails() -> None:
    history = History(capacity=100)
    for i in range(10_000):
        history.add(result(at=float(i), value=float(i)))
    assert len(history) == 100
    assert history.floats("value", since=9999.0)[-1] == 9999.0  # the latest
    assert list(history.floats("at", since=9990.0)) == [float(i) for i in range(9990, 10_000)]
    assert list(history.floats("at", since=20_000.0)) == []


def test_state_changes_log_once_not_per_run() -> None:
    check = DiskCheck.model_validate({"name": "d", "kind": "disk", "interval": 1, "timeout": 1})
    statuses = CheckStatuses()
    statuses.configure([check])
    structlog.reset_defaults()
    with capture_logs() as logs:
        for i, up in enumerate([True, True, False, False, False, True, True]):
            statuses.record("d", result(at=float(i), up=up))
    assert [entry["event"] for entry in logs] == ["check_up", "check_down", "check_up"]
    status = statuses.get("d")
    assert status is not None and status.runs[Outcome.FAILURE] == 3 and status.runs[Outcome.SUCCESS] == 4


def test_reconfigure_keeps_history_of_unchanged_checks() -> None:
    check = DiskCheck.model_validate({"name": "d", "kind": "disk", "interval": 1, "timeout": 1})
    statuses = CheckStatuses()
    statuses.configure([check])
    statuses.record("d", result(at=1.0))
    statuses.configure([check.model_copy(update={"labels": {"team": "x"}})])
    status = statuses.get("d")
    assert status is not None and len(status.history) == 1 and status.check.labels == {"team": "x"}
    statuses.record("gone", result(at=2.0))  # a run finishing after its check was removed
    assert statuses.get("gone") is None


def test_columns_match_the_samples_across_wrap_around() -> None:
    history = History(capacity=50)
    added: list[Result] = []
    for i in range(137):  # wraps the ring more than twice
        added.append(Result(up=i % 3 != 0, value=None if i % 11 == 0 else float(i), latency=i / 100, at=float(i)))
        history.add(added[-1])
    for since in (0.0, 90.0, 100.5, 130.0, 136.0, 137.0):
        samples = [r for r in added[-history.capacity:] if r.at >= since]  # what the ring still holds
        assert list(history.floats("at", since)) == [s.at for s in samples]
        assert list(history.floats("latency", since)) == [s.latency for s in samples]
        assert list(history.ups(since)) == [int(s.up) for s in samples]
        values = history.floats("value", since)
        assert [None if v != v else v for v in values] == [s.value for s in samples]
