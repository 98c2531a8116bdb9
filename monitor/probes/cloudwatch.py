"""``kind: cloudwatch`` — the latest datapoint of a CloudWatch metric, or of metric math over
several.

One metric (``namespace``, ``metric``, ``dimensions``, ``statistic``): ``GetMetricStatistics``
over the last ``window`` at ``period`` resolution, with ``Statistics`` for the five standard
statistics and ``ExtendedStatistics`` for percentiles (``p95``, ``p99.9``).

Metric math (``expression`` over the named ``metrics``): ``GetMetricData`` with one query per
named metric (not returned) and the expression as the one returned series, so "ALB 5xx
count / request count × 100" is one check. An ``expression`` without ``metrics`` is sent as
it is (a ``SEARCH(...)`` or a Metrics Insights ``SELECT``).

value: the newest datapoint in the window. detail: ``timestamp`` (its start, RFC 3339),
``age`` (seconds since then), ``datapoints`` (how many the window held), and for one metric
its ``unit``. CloudWatch publishes with a delay of a minute or more and leaves out periods
with no data (an ALB with no 5xx has no ``HTTPCode_Target_5XX_Count`` datapoints at all):
``missing`` says what a window without datapoints is.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from monitor.aws.calls import call
from monitor.aws.model import AwsError
from monitor.core.durations import Duration, format_duration
from monitor.core.model import Model
from monitor.core.results import Result
from monitor.core.timestamps import rfc3339
from monitor.probes.aws_common import AwsCheck, failed, time_left, when
from monitor.probes.base import ProbeEnv

STANDARD_STATISTICS = ("Average", "Sum", "Minimum", "Maximum", "SampleCount")
_PERCENTILE = re.compile(r"^p(\d{1,2}(\.\d{1,10})?|100(\.0{1,10})?)$")
# GetMetricData query ids: a lower-case letter first (CloudWatch's rule).
_METRIC_ID = re.compile(r"^[a-z][a-zA-Z0-9_]{0,254}$")
EXPRESSION_ID = "monitor_expression"  # the returned series of a metric-math check
MAX_DATAPOINTS = 1440  # per GetMetricStatistics call: window / period may not exceed it
HIGH_RESOLUTION_PERIODS = (1.0, 5.0, 10.0, 30.0)
MAX_DIMENSIONS = 30


def _statistic(value: str) -> str:
    if value not in STANDARD_STATISTICS and not _PERCENTILE.fullmatch(value):
        raise ValueError(f"statistic must be one of {', '.join(STANDARD_STATISTICS)} or a percentile "
                         f"such as p95 or p99.9, got {value!r}")
    return value


def _dimensions(value: dict[str, str]) -> dict[str, str]:
    if len(value) > MAX_DIMENSIONS:
        raise ValueError(f"at most {MAX_DIMENSIONS} dimensions")
    for name, item in value.items():
        if not name or not item:
            raise ValueError("dimension names and values must not be empty")
    return value


class MetricQuery(Model):
    """One named metric of a metric-math check."""

    namespace: str = Field(min_length=1, max_length=255)
    metric: str = Field(min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str = "Average"

    _check_statistic = field_validator("statistic")(_statistic)
    _check_dimensions = field_validator("dimensions")(_dimensions)

    def as_query(self, query_id: str, period: int) -> dict[str, Any]:
        return {"Id": query_id, "ReturnData": False, "MetricStat": {
            "Metric": {"Namespace": self.namespace, "MetricName": self.metric,
                       "Dimensions": _dimension_list(self.dimensions)},
            "Period": period, "Stat": self.statistic}}


class CloudwatchCheck(AwsCheck):
    kind: Literal["cloudwatch"]
    namespace: str | None = Field(default=None, min_length=1, max_length=255)
    metric: str | None = Field(default=None, min_length=1, max_length=255)
    dimensions: dict[str, str] = Field(default_factory=dict)
    statistic: str = "Average"
    period: Duration = 60.0
    window: Duration | None = None  # default: 5 periods, at least 10 minutes
    expression: str | None = Field(default=None, min_length=1, max_length=2048)
    metrics: dict[str, MetricQuery] = Field(default_factory=dict)
    missing: Literal["empty", "zero", "down"] = "empty"

    _check_statistic = field_validator("statistic")(_statistic)
    _check_dimensions = field_validator("dimensions")(_dimensions)

    @field_validator("period")
    @classmethod
    def _period(cls, period: float) -> float:
        if period not in HIGH_RESOLUTION_PERIODS and (period < 60 or period % 60):
            raise ValueError(f"period must be 1s, 5s, 10s, 30s or a multiple of 60s, got {format_duration(period)}")
        return period

    @field_validator("metrics")
    @classmethod
    def _metric_ids(cls, metrics: dict[str, MetricQuery]) -> dict[str, MetricQuery]:
        for name in metrics:
            if not _METRIC_ID.fullmatch(name):
                raise ValueError(f"metric name {name!r} must start with a lower-case letter and hold only "
                                 "letters, digits and _ (it is the id the expression uses)")
            if name == EXPRESSION_ID:
                raise ValueError(f"metric name {EXPRESSION_ID!r} is reserved")
        if len(metrics) > 100:
            raise ValueError("at most 100 metrics")
        return metrics

    @model_validator(mode="after")
    def _one_shape(self) -> CloudwatchCheck:
        single = {"namespace", "metric", "dimensions", "statistic"} & self.model_fields_set
        if self.expression is None:
            if self.metrics:
                raise ValueError("metrics are used by an expression: give `expression` too")
            if self.namespace is None or self.metric is None:
                raise ValueError("give `namespace` and `metric` (one metric), or `expression` with `metrics`")
        elif single:
            raise ValueError(f"{', '.join(sorted(single))} cannot be used with `expression`: "
                             "put them on each entry of `metrics`")
        if self.window_seconds < self.period:
            raise ValueError("window must be at least one period")
        if self.window_seconds / self.period > MAX_DATAPOINTS:
            raise ValueError(f"window / period must not exceed {MAX_DATAPOINTS} datapoints")
        return self

    @property
    def window_seconds(self) -> float:
        return self.window if self.window is not None else max(5 * self.period, 600.0)


async def probe(check: CloudwatchCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    end = env.clock.time()
    start = end - check.window_seconds
    try:
        if check.expression is None:
            latest, count, unit = await _one_metric(check, start, end, deadline)
        else:
            latest, count = await _math(check, start, end, deadline)
            unit = None
    except AwsError as err:
        return failed(err, started)
    detail: dict[str, Any] = {"datapoints": count}
    if unit is not None:
        detail["unit"] = unit
    latency = time.perf_counter() - started
    if latest is None:
        detail.update(timestamp=None, age=None)
        if check.missing == "down":
            return Result.failed(f"no datapoints in the last {format_duration(check.window_seconds)}", latency,
                                 detail=detail)
        return Result(up=True, value=0.0 if check.missing == "zero" else None, latency=latency, detail=detail)
    at, value = latest
    detail.update(timestamp=rfc3339(at), age=round(max(end - at, 0.0), 3))
    return Result(up=True, value=value, latency=latency, detail=detail)


async def _one_metric(check: CloudwatchCheck, start: float, end: float,
                      deadline: float) -> tuple[tuple[float, float] | None, int, str | None]:
    statistic = check.statistic
    which = {"Statistics": [statistic]} if statistic in STANDARD_STATISTICS else {"ExtendedStatistics": [statistic]}
    answer = await call(check.target("cloudwatch"), "get_metric_statistics", time_left(deadline),
                        Namespace=check.namespace, MetricName=check.metric,
                        Dimensions=_dimension_list(check.dimensions), StartTime=_datetime(start),
                        EndTime=_datetime(end), Period=int(check.period), **which)
    points: list[tuple[float, float, str | None]] = []
    for point in answer.get("Datapoints") or []:
        at = when(point.get("Timestamp"))
        found = point.get(statistic) if statistic in STANDARD_STATISTICS else \
            (point.get("ExtendedStatistics") or {}).get(statistic)
        if at is not None and isinstance(found, (int, float)):
            points.append((at, float(found), point.get("Unit")))
    if not points:
        return None, 0, None
    at, value, unit = max(points, key=lambda item: item[0])
    return (at, value), len(points), unit


async def _math(check: CloudwatchCheck, start: float, end: float,
                deadline: float) -> tuple[tuple[float, float] | None, int]:
    period = int(check.period)
    queries = [metric.as_query(name, period) for name, metric in check.metrics.items()]
    queries.append({"Id": EXPRESSION_ID, "Expression": check.expression, "Period": period, "ReturnData": True,
                    "Label": check.name})
    answer = await call(check.target("cloudwatch"), "get_metric_data", time_left(deadline),
                        MetricDataQueries=queries, StartTime=_datetime(start), EndTime=_datetime(end),
                        ScanBy="TimestampDescending")
    result = next((item for item in answer.get("MetricDataResults") or [] if item.get("Id") == EXPRESSION_ID), None)
    if result is None:
        raise AwsError("MalformedAnswer", "GetMetricData returned no series for the expression",
                       operation="GetMetricData")
    status = result.get("StatusCode")
    if status in ("InternalError", "Forbidden"):
        messages = "; ".join(str(item.get("Value", "")) for item in result.get("Messages") or []) or "no message"
        raise AwsError(str(status), messages, operation="GetMetricData", permanent=status == "Forbidden")
    points = [(at, float(value)) for at, value in zip(
        (when(item) for item in result.get("Timestamps") or []), result.get("Values") or [], strict=False)
        if at is not None and isinstance(value, (int, float))]
    if not points:
        return None, 0
    return max(points, key=lambda item: item[0]), len(points)


def _dimension_list(dimensions: dict[str, str]) -> list[dict[str, str]]:
    return [{"Name": name, "Value": value} for name, value in dimensions.items()]


def _datetime(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)
