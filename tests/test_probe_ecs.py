"""``kind: ecs`` against moto in server mode: running against desired, scaled, then deleted."""

from __future__ import annotations

from monitor.aws.calls import call
from monitor.aws.model import AwsTarget
from monitor.core.results import Outcome

from tests.aws_checks import REGION, aws_check, run, unique


async def _service(ecs: AwsTarget, cluster: str, name: str, desired: int) -> None:
    await call(ecs, "create_cluster", 30, clusterName=cluster)
    family = unique("api")
    await call(ecs, "register_task_definition", 30, family=family, containerDefinitions=[
        {"name": "api", "image": "example/api:1", "memory": 128}])
    await call(ecs, "create_service", 30, cluster=cluster, serviceName=name, taskDefinition=family,
               desiredCount=desired)


async def test_counts_follow_scaling_and_deletion(moto_endpoint: str) -> None:
    ecs = AwsTarget("ecs", REGION, moto_endpoint)
    cluster, name = unique("prod"), unique("api")
    await _service(ecs, cluster, name, desired=2)
    check = aws_check("ecs", moto_endpoint, cluster=cluster, service=name)

    first = await run(check)
    described = (await call(ecs, "describe_services", 30, cluster=cluster, services=[name]))["services"][0]
    assert first.up and first.value == described["runningCount"], (first, described)
    assert first.detail["desired"] == 2 and first.detail["status"] == "ACTIVE", first.detail
    assert first.detail["pending"] == described["pendingCount"]

    await call(ecs, "update_service", 30, cluster=cluster, service=name, desiredCount=5)
    scaled = await run(check)
    now = (await call(ecs, "describe_services", 30, cluster=cluster, services=[name]))["services"][0]
    assert scaled.up and scaled.detail["desired"] == 5, scaled.detail
    assert scaled.value == now["runningCount"] and scaled.detail["pending"] == now["pendingCount"], (scaled, now)
    assert scaled.value == 5  # moto starts a scaled service's tasks at once (a new service's stay pending)

    await call(ecs, "update_service", 30, cluster=cluster, service=name, desiredCount=0)
    await call(ecs, "delete_service", 30, cluster=cluster, service=name)
    deleted = await run(check)
    assert not deleted.up and deleted.outcome is Outcome.FAILURE, deleted
    assert deleted.error is not None and deleted.error.startswith(f"service {name} is ") or \
        "ServiceNotFound" in (deleted.error or ""), deleted


async def test_missing_service_and_cluster(moto_endpoint: str) -> None:
    ecs = AwsTarget("ecs", REGION, moto_endpoint)
    cluster = unique("empty")
    await call(ecs, "create_cluster", 30, clusterName=cluster)
    missing = await run(aws_check("ecs", moto_endpoint, cluster=cluster, service="nothing"))
    assert not missing.up
    assert missing.error == f"DescribeServices: ServiceNotFound: service nothing not in cluster {cluster} (MISSING)"

    no_cluster = await run(aws_check("ecs", moto_endpoint, cluster=unique("none"), service="nothing"))
    assert not no_cluster.up
    assert no_cluster.error is not None and no_cluster.error.startswith("DescribeServices: ClusterNotFoundException: ")
