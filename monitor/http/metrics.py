"""Prometheus metrics (listed in docs/metrics.md).

Per-check series are rendered at scrape time from CheckStatuses (exposition.py),
not kept in prometheus_client's labelled metrics: checks carry different label sets, and
updating a locked metric object on every run would cost the hot path for nothing. The
daemon's own metrics use prometheus_client. Rendering runs in a worker thread.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Gauge, Histogram, Info, disable_created_metrics
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.exposition import choose_encoder

from monitor import __version__
from monitor.alerting.templating import FAILURES as TEMPLATE_FAILURES
from monitor.check_status import CheckStatuses
from monitor.http.exposition import render_alerts, render_checks, render_slos
from monitor.rules.engine import RuleEngine
from monitor.rules.slo_counts import SloCounts
from monitor.store.writer import StateWriter


# `_created` series double the histogram's output and nobody alerts on them.
disable_created_metrics()  # type: ignore[no-untyped-call]

LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class DaemonMetrics:
    """The daemon's own metrics, in a registry of its own (no process-global state)."""

    def __init__(self, statuses: CheckStatuses, engine: RuleEngine, slos: SloCounts,
                 writer: StateWriter | None = None) -> None:
        self._statuses = statuses
        self._engine = engine
        self._slos = slos
        self.registry = CollectorRegistry(auto_describe=False)
        if writer is not None:
            self.registry.register(_StoreCollector(writer))
        self.registry.register(_TemplateCollector())
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

    def render(self, accept: str) -> tuple[bytes, str]:
        """The whole /metrics body for an Accept header; call it off the event loop."""
        encoder, content_type = choose_encoder(accept)
        openmetrics = content_type.startswith("application/openmetrics-text")
        rest = encoder(self.registry).decode()
        if openmetrics:  # the per-check families must come before the closing `# EOF`
            rest = rest.removesuffix("# EOF\n")
        checks = render_checks(self._statuses.all(), openmetrics)
        alerts = render_alerts(list(self._engine.alerts.values()), dict(self._engine.failures), openmetrics)
        slos = render_slos(dict(self._slos.trackers), time.time(), openmetrics)
        body = checks + alerts + slos + rest + ("# EOF\n" if openmetrics else "")
        return body.encode(), content_type


class _StoreCollector(Collector):
    """Whether the state store takes writes, read from the writer at scrape time."""

    def __init__(self, writer: StateWriter) -> None:
        self._writer = writer

    def collect(self) -> Iterable[Metric]:
        yield GaugeMetricFamily("monitor_state_store_up",
                                "1 while the state store takes writes; 0 from a failed commit until one succeeds.",
                                value=0.0 if self._writer.failing_since is not None else 1.0)
        yield CounterMetricFamily("monitor_state_commit_failures", "Failed attempts to commit a state change.",
                                  value=float(self._writer.failures))
        yield GaugeMetricFamily("monitor_state_changes_pending",
                                "State changes (alert states, notifications) not yet durable.",
                                value=float(self._writer.backlog))


class _TemplateCollector(Collector):
    """Notification templates that failed while rendering (each fell back to the default)."""

    def collect(self) -> Iterable[Metric]:
        family = CounterMetricFamily("monitor_notification_template_failures",
                                     "Templated receiver fields that failed to render and fell back to the default.",
                                     labels=["receiver", "integration", "field"])
        for (receiver, integration, field), count in sorted(TEMPLATE_FAILURES.items()):
            family.add_metric([receiver, integration, field], float(count))
        yield family
