"""``kind: ecs`` — an ECS service's running tasks against what it wants.

value: ``runningCount``. detail: ``desired``, ``pending``, ``status`` (ACTIVE, DRAINING,
INACTIVE), ``rollout_state`` of the primary deployment (COMPLETED, IN_PROGRESS, FAILED) and
``deployments`` (how many are going on: more than one during a rollout). One
``DescribeServices``; down when the call fails, the service is missing or it is not ACTIVE.
"running < desired" is a rule on ``value`` and ``detail.desired``, not a failure of the
check: during a deploy it is normal for a while.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field

from monitor.aws.calls import call
from monitor.aws.model import AwsError
from monitor.core.results import Result
from monitor.probes.aws_common import AwsCheck, failed, time_left
from monitor.probes.base import ProbeEnv


class EcsCheck(AwsCheck):
    kind: Literal["ecs"]
    cluster: str = Field(min_length=1, max_length=2048)  # name or ARN
    service: str = Field(min_length=1, max_length=2048)  # name or ARN


async def probe(check: EcsCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    try:
        answer = await call(check.target("ecs"), "describe_services", time_left(deadline),
                            cluster=check.cluster, services=[check.service])
    except AwsError as err:
        return failed(err, started)
    services = answer.get("services") or []
    if not services:
        reasons = ", ".join(str(item.get("reason", "?")) for item in answer.get("failures") or []) or "no answer"
        return Result.failed(f"DescribeServices: ServiceNotFound: service {check.service} not in cluster "
                             f"{check.cluster} ({reasons})", time.perf_counter() - started)
    service = services[0]
    try:
        running = int(service["runningCount"])
        detail: dict[str, Any] = {
            "desired": int(service["desiredCount"]),
            "pending": int(service["pendingCount"]),
            "status": str(service["status"]),
        }
    except (KeyError, TypeError, ValueError):
        return Result.failed("malformed DescribeServices answer: a task count or the status is missing",
                             time.perf_counter() - started)
    deployments = service.get("deployments") or []
    primary = next((item for item in deployments if item.get("status") == "PRIMARY"), None)
    detail["rollout_state"] = primary.get("rolloutState") if primary else None
    detail["deployments"] = len(deployments)
    latency = time.perf_counter() - started
    if detail["status"] != "ACTIVE":
        return Result.failed(f"service {check.service} is {detail['status']}, not ACTIVE", latency,
                             detail=detail, value=float(running))
    return Result(up=True, value=float(running), latency=latency, detail=detail)
