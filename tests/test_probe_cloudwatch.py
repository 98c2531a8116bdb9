"""``kind: cloudwatch``: standard statistics against moto in server mode; percentiles and
metric math (which moto does not compute) against a local endpoint speaking CloudWatch's
JSON protocol, which also shows exactly what the probe asks for."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from monitor.aws.calls import call
from monitor.aws.model import AwsTarget
from monitor.core.clock import FakeClock
from monitor.core.results import Outcome

from tests.aws_checks import REGION, aws_check, run, unique
from tests.aws_fake import FakeAws, aws_json_error

NOW = 1_700_000_000.0


async def _put(cw: AwsTarget, namespace: str, values: list[float], at: datetime) -> None:
    await call(cw, "put_metric_data", 30, Namespace=namespace, MetricData=[
        {"MetricName": "CPUUtilization", "Value": value, "Timestamp": at,
         "Dimensions": [{"Name": "ServiceName", "Value": "api"}]} for value in values])


async def test_standard_statistics_follow_new_datapoints(moto_endpoint: str) -> None:
    cw = AwsTarget("cloudwatch", REGION, moto_endpoint)
    namespace = unique("Test/ECS")
    minute = datetime.fromtimestamp(time.time() // 60 * 60, tz=UTC)
    check = aws_check("cloudwatch", moto_endpoint, namespace=namespace, metric="CPUUtilization",
                      dimensions={"ServiceName": "api"}, statistic="Average", period="1m")

    nothing = await run(check)
    assert nothing.up and nothing.value is None and nothing.detail["datapoints"] == 0, nothing

    await _put(cw, namespace, [40.0, 60.0], minute - timedelta(minutes=3))
    first = await run(check)
    assert first.up and first.value == 50.0, first
    assert first.detail["timestamp"] == (minute - timedelta(minutes=3)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert first.detail["datapoints"] == 1 and first.detail["age"] >= 180

    await _put(cw, namespace, [90.0], minute - timedelta(minutes=1))
    newer = await run(check)
    assert newer.value == 90.0 and newer.detail["datapoints"] == 2, newer

    maximum = await run(aws_check("cloudwatch", moto_endpoint, namespace=namespace, metric="CPUUtilization",
                                  dimensions={"ServiceName": "api"}, statistic="Maximum", period="5m", window="30m"))
    assert maximum.value == 90.0, maximum


async def test_missing_data_policies(moto_endpoint: str) -> None:
    fields: dict[str, Any] = {"namespace": unique("Test/Empty"), "metric": "HTTPCode_Target_5XX_Count",
                              "statistic": "Sum"}
    zero = await run(aws_check("cloudwatch", moto_endpoint, missing="zero", **fields))
    assert zero.up and zero.value == 0.0
    down = await run(aws_check("cloudwatch", moto_endpoint, missing="down", **fields))
    assert not down.up and down.error == "no datapoints in the last 10m", down


def _stats_reply(fake: FakeAws, datapoints: list[dict[str, Any]]) -> None:
    fake.reply("GetMetricStatistics", (200, {"Label": "TargetResponseTime", "Datapoints": datapoints}))


async def test_percentile_uses_extended_statistics(fake_aws: FakeAws) -> None:
    _stats_reply(fake_aws, [
        {"Timestamp": NOW - 300, "ExtendedStatistics": {"p99.9": 2.5}, "Unit": "Seconds"},
        {"Timestamp": NOW - 120, "ExtendedStatistics": {"p99.9": 1.25}, "Unit": "Seconds"},
    ])
    check = aws_check("cloudwatch", fake_aws.url, namespace="AWS/ApplicationELB", metric="TargetResponseTime",
                      dimensions={"LoadBalancer": "app/web/1234"}, statistic="p99.9", period="1m", window="15m")
    result = await run(check, FakeClock(start=NOW))
    assert result.up and result.value == 1.25, result
    assert result.detail == {"datapoints": 2, "unit": "Seconds", "timestamp": "2023-11-14T22:11:20Z", "age": 120.0}
    (request,) = fake_aws.seen
    assert request.body == {
        "Namespace": "AWS/ApplicationELB", "MetricName": "TargetResponseTime",
        "Dimensions": [{"Name": "LoadBalancer", "Value": "app/web/1234"}],
        "StartTime": NOW - 900, "EndTime": NOW, "Period": 60, "ExtendedStatistics": ["p99.9"]}


def _math_reply(body: dict[str, Any], values: list[float], timestamps: list[float]) -> tuple[int, Any]:
    ids = [query["Id"] for query in body["MetricDataQueries"]]
    return 200, {"MetricDataResults": [{"Id": ids[-1], "Label": "alb_5xx_rate", "Timestamps": timestamps,
                                        "Values": values, "StatusCode": "Complete"}], "Messages": []}


async def test_metric_math_5xx_rate_in_one_check(fake_aws: FakeAws) -> None:
    answers = iter([([2.5, 1.0], [NOW - 300, NOW - 600]), ([7.5, 2.5, 1.0], [NOW, NOW - 300, NOW - 600])])
    fake_aws.reply("GetMetricData", lambda body: _math_reply(body, *next(answers)))
    lb = {"LoadBalancer": "app/web/1234"}
    check = aws_check("cloudwatch", fake_aws.url, period="5m", window="30m",
                      expression="100 * FILL(errors, 0) / requests", metrics={
                          "errors": {"namespace": "AWS/ApplicationELB", "metric": "HTTPCode_Target_5XX_Count",
                                     "dimensions": lb, "statistic": "Sum"},
                          "requests": {"namespace": "AWS/ApplicationELB", "metric": "RequestCount",
                                       "dimensions": lb, "statistic": "Sum"}})
    clock = FakeClock(start=NOW)
    first = await run(check, clock)
    assert first.up and first.value == 2.5 and first.detail == {
        "datapoints": 2, "timestamp": "2023-11-14T22:08:20Z", "age": 300.0}, first
    clock.advance(60)
    followed = await run(check, clock)
    assert followed.value == 7.5 and followed.detail["datapoints"] == 3, followed

    body = fake_aws.seen[0].body
    assert body["ScanBy"] == "TimestampDescending" and body["EndTime"] - body["StartTime"] == 1800
    assert body["MetricDataQueries"] == [
        {"Id": "errors", "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": "HTTPCode_Target_5XX_Count",
            "Dimensions": [{"Name": "LoadBalancer", "Value": "app/web/1234"}]}, "Period": 300, "Stat": "Sum"}},
        {"Id": "requests", "ReturnData": False, "MetricStat": {"Metric": {
            "Namespace": "AWS/ApplicationELB", "MetricName": "RequestCount",
            "Dimensions": [{"Name": "LoadBalancer", "Value": "app/web/1234"}]}, "Period": 300, "Stat": "Sum"}},
        {"Id": "monitor_expression", "Expression": "100 * FILL(errors, 0) / requests", "Period": 300,
         "ReturnData": True, "Label": "cloudwatch_test"},
    ]


async def test_metric_math_errors(fake_aws: FakeAws) -> None:
    check = aws_check("cloudwatch", fake_aws.url, expression="a / b", metrics={
        "a": {"namespace": "N", "metric": "A"}, "b": {"namespace": "N", "metric": "B"}})
    fake_aws.reply("GetMetricData", aws_json_error("ValidationError", "Error in expression 'monitor_expression': "
                                                   "Unrecognized token"))
    bad = await run(check)
    assert not bad.up and bad.outcome is Outcome.FAILURE
    assert bad.error == "GetMetricData: ValidationError: Error in expression 'monitor_expression': Unrecognized token"

    fake_aws.reply("GetMetricData", lambda body: (200, {"MetricDataResults": [
        {"Id": "monitor_expression", "Timestamps": [], "Values": [], "StatusCode": "Forbidden",
         "Messages": [{"Code": "Forbidden", "Value": "not authorized for cloudwatch:GetMetricData on N"}]}]}))
    forbidden = await run(check)
    assert not forbidden.up and forbidden.error == \
        "GetMetricData: Forbidden: not authorized for cloudwatch:GetMetricData on N"


@pytest.mark.parametrize("fields, message", [
    ({"namespace": "N"}, "give `namespace` and `metric`"),
    ({"namespace": "N", "metric": "M", "statistic": "Median"}, "statistic must be one of"),
    ({"namespace": "N", "metric": "M", "statistic": "p100.5"}, "statistic must be one of"),
    ({"namespace": "N", "metric": "M", "period": "90s"}, "period must be 1s, 5s, 10s, 30s or a multiple of 60s"),
    ({"namespace": "N", "metric": "M", "period": "1m", "window": "2d"}, "window / period must not exceed 1440"),
    ({"namespace": "N", "metric": "M", "period": "5m", "window": "1m"}, "window must be at least one period"),
    ({"expression": "a", "metrics": {"A": {"namespace": "N", "metric": "M"}}}, "must start with a lower-case letter"),
    ({"expression": "a", "namespace": "N", "metrics": {"a": {"namespace": "N", "metric": "M"}}},
     "namespace cannot be used with `expression`"),
    ({"metrics": {"a": {"namespace": "N", "metric": "M"}}}, "give `expression` too"),
    ({"expression": "x", "metrics": {"monitor_expression": {"namespace": "N", "metric": "M"}}}, "is reserved"),
])
def test_config_errors(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        aws_check("cloudwatch", "http://127.0.0.1:1", **fields)


def test_default_window() -> None:
    check = aws_check("cloudwatch", "http://127.0.0.1:1", namespace="N", metric="M", period="1h")
    assert check.window_seconds == 5 * 3600  # type: ignore[attr-defined]
    assert aws_check("cloudwatch", "http://127.0.0.1:1", namespace="N", metric="M").window_seconds == 600  # type: ignore[attr-defined]
