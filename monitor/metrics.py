"""Prometheus metrics (CONTRACT §4).

Per-check series are produced at scrape time from CheckStatuses by a custom collector,
not kept in prometheus_client's labelled metrics: checks carry different label sets, and
updating a locked metric object on every run would cost the hot path for nothing.
Exposition runs in a worker thread (see http/server.py), never on the event loop.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.check_status import CheckStatuses
from monitor.results import Outcome


LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class CheckCollector(Collector):
    def __init__(self, statuses: CheckStatuses) -> None:
        self._statuses = statuses

    def collect(self) -> Iterator[Metric]:
        up = Metric("monitor_check_up", "1 if the check's last run succeeded, else 0.", "gauge")
        value = Metric("monitor_check_value", "The value of the check's last run (meaning depends on the kind).", "gauge")
        latency = Metric("monitor_check_latency_seconds", "Duration of the check's last run.", "gauge")
        runs = Metric("monitor_check_runs", "Check runs by result.", "counter")
        skipped = Metric("monitor_check_skipped_runs", "Runs skipped because the previous run was still in progress.", "counter")
        for status in self._statuses.all():
            labels = {**status.check.labels, "check": status.check.name}
            last = status.last
            if last is not None:
                up.add_sample("monitor_check_up", labels, 1.0 if last.up else 0.0)
                if last.value is not None:
                    value.add_sample("monitor_check_value", labels, last.value)
                latency.add_sample("monitor_check_latency_seconds", labels, last.latency)
            counts = dict(status.runs)  # one C-level copy: safe against concurrent updates
            for outcome in Outcome:
                runs.add_sample("monitor_check_runs_total", {**labels, "result": outcome.value}, float(counts.get(outcome, 0)))
            skipped.add_sample("monitor_check_skipped_runs_total", labels, float(status.skipped))
        yield from (up, value, latency, runs, skipped)


class DaemonMetrics:
    """The daemon's own metrics, in a registry of its own (no process-global state)."""

    def __init__(self, statuses: CheckStatuses) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(CheckCollector(statuses))
        self.scheduler_lag = Histogram(
            "monitor_scheduler_lag_seconds", "Actual start of a check run minus its planned start.",
            buckets=LAG_BUCKETS, registry=self.registry,
        )
        Info("monitor_build", "Version of the monitor daemon.", registry=self.registry).info({"version": __version__})
        self.reload_ok = Gauge(
            "monitor_config_last_reload_successful", "1 if the last config load succeeded.", registry=self.registry,
        )
        self.reload_time = Gauge(
            "monitor_config_last_reload_success_timestamp_seconds", "When config was last loaded successfully.",
            registry=self.registry,
        )
