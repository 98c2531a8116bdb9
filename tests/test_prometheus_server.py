"""The test helper that runs the real Prometheus (tests/prometheus_server.py) works: it starts,
scrapes a target, answers queries, and stops by its PID."""

from __future__ import annotations

import os
from collections.abc import Callable

from tests.prometheus_server import PrometheusServer


def test_prometheus_scrapes_a_target_and_answers_queries(
        prometheus_server: Callable[..., PrometheusServer]) -> None:
    # Prometheus scraping itself: a target that is certainly up.
    other = prometheus_server(targets=["self"], job="self")
    other.wait_for_scrapes(count=1)
    result = other.query('up{job="self"}')
    assert result["resultType"] == "vector"
    assert [float(s["value"][1]) for s in result["result"]] == [1.0]
    pid = other.pid
    assert pid is not None
    other.stop()
    assert other.proc is not None and other.proc.poll() is not None
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
