"""The shipped catalogs (checks/<system>.yaml + alert_rules/<system>.yaml) load and are well formed.

Each system is loaded through a throwaway main file, with every variable the files require
set to a plausible value, exactly as a deployment would provide them.
"""

from __future__ import annotations

import os
import time
from typing import Any
import re
from pathlib import Path

import pytest

from monitor.config.errors import ConfigError
from monitor.config.loader import Config, load_config

ROOT = Path(__file__).resolve().parent.parent
SYSTEMS = ["echo", "echopilot", "echo_ai", "sleek_coach", "pulse_ai_studio"]
REQUIRED_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*)\}")
DEFAULTED_VAR = re.compile(r"\$\{([A-Z_][A-Z0-9_]*):-")
# Names that hold credentials: they must never fall back to a default written in the file.
SECRET_NAME = re.compile(r"(KEY|SECRET|TOKEN|PASSWORD|DATABASE_URL|REDIS_URL|DSN)")
SEVERITIES = {"critical", "error", "warning", "info"}


def catalog_files(system: str) -> list[Path]:
    return [ROOT / "checks" / f"{system}.yaml", ROOT / "alert_rules" / f"{system}.yaml"]


def required_vars(*files: Path) -> set[str]:
    return {name for f in files for name in REQUIRED_VAR.findall(f.read_text(encoding="utf-8"))}


def plausible(name: str) -> str:
    if name.endswith("DATABASE_URL"):
        return "postgresql://monitor:not-a-real-password@db.example.test:5432/app"
    if name.endswith("REDIS_URL"):
        return "redis://:not-a-real-password@redis.example.test:6379/0"
    if name.endswith("_URL"):
        return "https://service.example.test"
    if name.endswith("_BYTES"):
        return "1073741824"
    if name.endswith("_AWS_REGION"):
        return "eu-central-1"
    return "test-value-0123456789"


@pytest.fixture(autouse=True)
def _clean_monitor_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # MONITOR_LISTEN and friends override the file; a developer's shell must not leak in.
    for name in list(os.environ):
        if name.startswith("MONITOR_"):
            monkeypatch.delenv(name)


def load_system(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, skip: str | None = None) -> Config:
    checks, rules = catalog_files(system)
    for name in required_vars(checks, rules):
        if name == skip:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, plausible(name))
    main = tmp_path / "monitor.yaml"
    main.write_text(f"check_files: [{str(checks)!r}]\nrule_files: [{str(rules)!r}]\n", encoding="utf-8")
    return load_config(main)


@pytest.mark.parametrize("system", SYSTEMS)
def test_catalog_loads(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_system(system, tmp_path, monkeypatch)
    assert len(config.checks) > 0
    assert len(config.rules) > 0
    for check in config.checks:
        assert check.labels.get("system") == system, check.name
        assert check.labels.get("service"), check.name
        assert check.labels.get("env"), check.name


@pytest.mark.parametrize("system", SYSTEMS)
def test_rules_have_severity_and_annotations(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_system(system, tmp_path, monkeypatch)
    for loaded in config.rules:
        rule = loaded.rule
        assert rule.labels.get("severity") in SEVERITIES, rule.alert
        for key in ("summary", "description", "runbook_url"):
            assert rule.annotations.get(key), f"{rule.alert} has no {key}"
        assert rule.annotations["runbook_url"].startswith("https://"), rule.alert


@pytest.mark.parametrize("system", SYSTEMS)
def test_uncovered_steps_are_listed(system: str) -> None:
    for f in catalog_files(system):
        assert "not yet covered:" in f.read_text(encoding="utf-8"), f


@pytest.mark.parametrize("system", SYSTEMS)
def test_secrets_have_no_defaults(system: str) -> None:
    for f in catalog_files(system):
        defaulted = set(DEFAULTED_VAR.findall(f.read_text(encoding="utf-8")))
        assert not {n for n in defaulted if SECRET_NAME.search(n)}, f


@pytest.mark.parametrize("system", SYSTEMS)
def test_missing_variable_is_named(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    name = sorted(required_vars(*catalog_files(system)))[0]
    with pytest.raises(ConfigError) as err:
        load_system(system, tmp_path, monkeypatch, skip=name)
    assert name in str(err.value)


def test_check_names_unique_across_catalogs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # One daemon may watch several systems at once (check_files: [checks/*.yaml]).
    files = [f for s in SYSTEMS for f in catalog_files(s)]
    for name in required_vars(*files):
        monkeypatch.setenv(name, plausible(name))
    main = tmp_path / "monitor.yaml"
    checks = [str(ROOT / "checks" / f"{s}.yaml") for s in SYSTEMS]
    rules = [str(ROOT / "alert_rules" / f"{s}.yaml") for s in SYSTEMS]
    main.write_text(f"check_files: {checks!r}\nrule_files: {rules!r}\n", encoding="utf-8")
    config = load_config(main)
    assert {c.labels["system"] for c in config.checks} == set(SYSTEMS)


@pytest.mark.parametrize("system", SYSTEMS)
def test_sidecar_main_file_loads_each_system(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # deploy/monitor.sidecar.yaml is what the image runs as a sidecar; it sits in /etc/monitor
    # beside checks/ and alert_rules/, so lay that out in a temp dir.
    sidecar = ROOT / "deploy" / "monitor.sidecar.yaml"
    monkeypatch.setenv("MONITOR_SYSTEM", system)
    for name in required_vars(sidecar, *catalog_files(system)) - {"MONITOR_SYSTEM"}:
        monkeypatch.setenv(name, plausible(name))
    config = load_config(_etc_monitor(sidecar, tmp_path))
    assert config.checks and config.rules
    assert config.main.global_.api_token is not None
    assert {c.labels["system"] for c in config.checks} == {system}


def _etc_monitor(sidecar: Path, tmp_path: Path) -> Path:
    etc = tmp_path / "etc-monitor"
    etc.mkdir()
    (etc / "sidecar.yaml").write_text(sidecar.read_text(encoding="utf-8"), encoding="utf-8")
    (etc / "checks").symlink_to(ROOT / "checks")
    (etc / "alert_rules").symlink_to(ROOT / "alert_rules")
    return etc / "sidecar.yaml"


def test_default_config_loads_with_empty_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("DATABASE_URL", "REDIS_URL", "MONITOR_API_TOKEN", "MONITOR_LISTEN", "MONITOR_DISK_PATH"):
        monkeypatch.delenv(name, raising=False)
    config = load_config(ROOT / "monitor.yaml", environ={})
    assert len(config.checks) > 0
    assert len(config.rules) > 0
    assert config.main.global_.api_token is None


# --- the deployment examples provide what the catalogs need -------------------------------


def test_ecs_sidecar_provides_every_required_variable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    task = json.loads((ROOT / "deploy" / "ecs" / "task-definition.json").read_text(encoding="utf-8"))
    monitor = next(c for c in task["containerDefinitions"] if c["name"] == "monitor")
    assert monitor["command"][:3] == ["run", "-c", "/etc/monitor/sidecar.yaml"]
    env = {e["name"]: e["value"] for e in monitor.get("environment", [])}
    secrets = {s["name"] for s in monitor.get("secrets", [])}
    assert all(s["valueFrom"].startswith("arn:aws:secretsmanager:") for s in monitor["secrets"])
    system = env["MONITOR_SYSTEM"]
    needed = required_vars(ROOT / "deploy" / "monitor.sidecar.yaml", *catalog_files(system))
    assert needed <= set(env) | secrets, f"not provided: {needed - set(env) - secrets}"
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    for name in secrets:
        monkeypatch.setenv(name, plausible(name))
    config = load_config(_etc_monitor(ROOT / "deploy" / "monitor.sidecar.yaml", tmp_path))
    assert {c.labels["system"] for c in config.checks} == {system}


def test_kubernetes_configmap_loads_with_the_pod_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import yaml

    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "sidecar.yaml").read_text(encoding="utf-8")))
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    monitor = next(c for c in pod["containers"] if c["name"] == "monitor")
    volume = next(v for v in pod["volumes"] if v.get("configMap", {}).get("name") == configmap["metadata"]["name"])
    etc = tmp_path / "etc-monitor"
    for item in volume["configMap"]["items"]:
        target = etc / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(configmap["data"][item["key"]], encoding="utf-8")
    provided = {e["name"] for e in monitor["env"]}
    needed = required_vars(*(p for p in etc.rglob("*.yaml")))
    assert needed <= provided, f"not provided: {needed - provided}"
    for entry in monitor["env"]:
        if "value" in entry:
            monkeypatch.setenv(entry["name"], entry["value"])
        else:
            monkeypatch.setenv(entry["name"], plausible(entry["name"]))
    config = load_config(etc / "monitor.yaml")
    assert config.checks and config.rules
    mounts = {m["mountPath"] for m in monitor["volumeMounts"]}
    assert {"/etc/monitor", "/var/lib/monitor"} <= mounts
    assert monitor["securityContext"]["readOnlyRootFilesystem"] is True


# --- AWS: one outage pages once; the checks read what the rules expect -------------------------

AWS_SYSTEMS = ["echo", "sleek_coach", "pulse_ai_studio"]


def _sidecar_config(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    sidecar = ROOT / "deploy" / "monitor.sidecar.yaml"
    monkeypatch.setenv("MONITOR_SYSTEM", system)
    for name in required_vars(sidecar, *catalog_files(system)) - {"MONITOR_SYSTEM"}:
        monkeypatch.setenv(name, plausible(name))
    return load_config(_etc_monitor(sidecar, tmp_path))


def _alerts(config: Config) -> list[dict[str, str]]:
    """The label set of every alert the catalog can raise (one per rule and selected check)."""
    from monitor.rules.engine import alert_labels

    return [alert_labels(loaded, check) for loaded in config.rules for check in config.checks
            if loaded.rule.selects(check.name, check.labels)]


@pytest.mark.parametrize("system", AWS_SYSTEMS)
def test_one_outage_pages_once(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # While a service is down (an outage="true" alert), every other alert of that service, and
    # every system-wide symptom (scope="system"), is muted by the sidecar's inhibit rules.
    from monitor.alerting.inhibition import InhibitRule, Inhibitor

    config = _sidecar_config(system, tmp_path, monkeypatch)
    inhibitor = Inhibitor([InhibitRule(r.sources, r.targets, r.equal) for r in config.alerting.inhibit_rules])
    alerts = _alerts(config)
    outages = [a for a in alerts if a.get("outage") == "true"]
    assert outages, f"{system}: no rule marks a service down"
    muted_somewhere = set()
    for outage in outages:
        stage = inhibitor.with_sources([outage])
        assert not stage.mutes(outage, 0.0)
        for other in alerts:
            if other.get("outage") == "true":
                continue
            if other["service"] == outage["service"] or other.get("scope") == "system":
                assert stage.mutes(other, 0.0), f"{other['alertname']} would page beside {outage['alertname']}"
                muted_somewhere.add(other["alertname"])
    # The AWS alerts of the service the outage is about are among those muted.
    expected = {"echo": {"EchoEcsTasksBelowDesired", "EchoEcsCpuHigh", "EchoEcsMemoryHigh"},
                "sleek_coach": {"SleekCoachApi5xxRate", "SleekCoachApiLatencyHigh", "SleekCoachEcsTasksBelowDesired",
                                "SleekCoachRdsCpuHigh", "SleekCoachRedisMemoryHigh"},
                "pulse_ai_studio": {"PulseAlb5xxErrors", "PulseEcsUnhealthyTasks", "PulseRdsCpuHigh",
                                    "PulseRedisCpuHigh"}}[system]
    assert expected <= muted_somewhere


@pytest.mark.parametrize("system", AWS_SYSTEMS)
def test_aws_lines_are_covered(system: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = load_system(system, tmp_path, monkeypatch)
    kinds = {c.kind for c in config.checks}
    assert {"ecs", "cloudwatch", "s3", "secretsmanager"} <= kinds
    if system == "pulse_ai_studio":
        assert "ses" in kinds
    for f in catalog_files(system):
        text = f.read_text(encoding="utf-8")
        header = text[: text.index("groups:\n" if "alert_rules" in str(f) else "checks:\n")]
        for line in ("ECS service/task status", "Secrets Manager SDK call", "SES sending status",
                     "RDS/Redis CPU", "ECS CPU > 85%"):
            assert line not in header, f"{f}: still lists {line!r} as not covered"


# Sleek Coach's AWS checks that moto answers: its ALB 5xx rate (metric math) and p95 (an
# extended statistic) are not computed by moto; the cloudwatch kind's tests cover both
# against a double that speaks CloudWatch's wire format.
SLEEK_ON_MOTO = ["sleek_coach_ecs_service", "sleek_coach_ecs_cpu", "sleek_coach_rds_cpu", "sleek_coach_redis_memory",
                 "sleek_coach_photos_bucket", "sleek_coach_secret"]


async def test_sleek_coach_aws_checks_read_moto_and_trip_their_rules(
        moto_endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uuid

    import boto3

    from monitor.aws import calls
    from monitor.check_status import CheckStatuses
    from monitor.core.clock import FakeClock
    from monitor.probes import ProbeEnv
    from monitor.scheduling.runner import run_check
    from tests.rule_setup import RulePipeline

    region, tag = "eu-central-1", uuid.uuid4().hex[:10]
    names = {
        "SLEEK_COACH_AWS_REGION": region, "SLEEK_COACH_ECS_CLUSTER": f"sleek-{tag}",
        "SLEEK_COACH_ECS_SERVICE": f"api-{tag}", "SLEEK_COACH_RDS_INSTANCE": f"db-{tag}",
        "SLEEK_COACH_REDIS_CLUSTER_ID": f"redis-{tag}", "SLEEK_COACH_PHOTOS_BUCKET": f"photos-{tag}",
        "SLEEK_COACH_SECRET_ID": f"sleek/{tag}/db", "SLEEK_COACH_ALB": f"app/alb-{tag}/0123456789abcdef",
    }

    def aws(service: str) -> Any:
        return boto3.client(service, region_name=region, endpoint_url=moto_endpoint)  # type: ignore[call-overload]

    ecs = aws("ecs")
    ecs.create_cluster(clusterName=names["SLEEK_COACH_ECS_CLUSTER"])
    ecs.register_task_definition(family=f"api-{tag}", containerDefinitions=[{"name": "api", "image": "api", "memory": 512}])
    ecs.create_service(cluster=names["SLEEK_COACH_ECS_CLUSTER"], serviceName=names["SLEEK_COACH_ECS_SERVICE"],
                       taskDefinition=f"api-{tag}", desiredCount=2)  # moto starts no task: 0 of 2 running
    metric_data = [
        ("AWS/ECS", "CPUUtilization", {"ClusterName": names["SLEEK_COACH_ECS_CLUSTER"],
                                       "ServiceName": names["SLEEK_COACH_ECS_SERVICE"]}, 91.5),
        ("AWS/RDS", "CPUUtilization", {"DBInstanceIdentifier": names["SLEEK_COACH_RDS_INSTANCE"]}, 42.0),
        ("AWS/ElastiCache", "DatabaseMemoryUsagePercentage", {"CacheClusterId": names["SLEEK_COACH_REDIS_CLUSTER_ID"]},
         85.0),
    ]
    cloudwatch = aws("cloudwatch")

    def publish_metrics(at: float) -> None:
        # A datapoint per run, stamped with the (fake) time, as CloudWatch has one per period.
        from datetime import UTC, datetime

        for namespace, metric, dimensions, value in metric_data:
            cloudwatch.put_metric_data(Namespace=namespace, MetricData=[{
                "MetricName": metric, "Value": value, "Timestamp": datetime.fromtimestamp(at - 30, UTC),
                "Dimensions": [{"Name": k, "Value": v} for k, v in dimensions.items()]}])

    aws("s3").create_bucket(Bucket=names["SLEEK_COACH_PHOTOS_BUCKET"],
                            CreateBucketConfiguration={"LocationConstraint": region})
    aws("secretsmanager").create_secret(Name=names["SLEEK_COACH_SECRET_ID"], SecretString="postgresql://x")

    # The catalog as shipped: no endpoint_url in it; AWS_ENDPOINT_URL sends the default chain's
    # clients to moto, as it would send them to any other endpoint.
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_endpoint)
    calls.reset()
    checks, rules = catalog_files("sleek_coach")
    for name in required_vars(checks, rules) - set(names):
        monkeypatch.setenv(name, plausible(name))
    for name, value in names.items():  # also the ones the catalog defaults to the runbook's names
        monkeypatch.setenv(name, value)
    main = tmp_path / "monitor.yaml"
    main.write_text(f"check_files: [{str(checks)!r}]\nrule_files: [{str(rules)!r}]\n", encoding="utf-8")
    config = load_config(main)
    on_moto = [c for c in config.checks if c.name in SLEEK_ON_MOTO]
    assert sorted(c.name for c in on_moto) == sorted(SLEEK_ON_MOTO)

    clock = FakeClock(time.time())
    statuses = CheckStatuses()
    statuses.configure(config.checks)
    pipeline = RulePipeline(statuses, clock)
    pipeline.configure(config.checks, config.rules)

    async def run_all() -> dict[str, Any]:
        publish_metrics(clock.time())
        env = ProbeEnv(clock=clock)
        try:
            results = {c.name: await run_check(c, env) for c in on_moto}
        finally:
            await env.close()
        for check in on_moto:
            statuses.record(check.name, results[check.name])
            pipeline.evaluate(check, results[check.name])
        return results

    def firing() -> set[str]:
        return {a.alertname for a in pipeline.alerts.values() if a.state == "firing"}

    try:
        results = await run_all()
        assert all(r.up for r in results.values()), {n: r.error for n, r in results.items()}
        ecs_result = results["sleek_coach_ecs_service"]
        assert (ecs_result.value, ecs_result.detail["desired"], ecs_result.detail["status"]) == (0.0, 2, "ACTIVE")
        assert results["sleek_coach_ecs_cpu"].value == 91.5
        assert results["sleek_coach_rds_cpu"].value == 42.0
        assert results["sleek_coach_redis_memory"].value == 85.0
        assert results["sleek_coach_photos_bucket"].value == 1.0
        assert results["sleek_coach_secret"].detail.get("rotation_enabled") is False

        # The runbook's durations: 5 minutes for the task count, 10 for CPU and memory.
        clock.advance(5 * 60)
        await run_all()
        assert firing() == {"SleekCoachEcsTasksBelowDesired"}
        clock.advance(5 * 60)
        await run_all()
        assert firing() == {"SleekCoachEcsTasksBelowDesired", "SleekCoachEcsCpuHigh", "SleekCoachRedisMemoryHigh"}

        # Then the world changes: the service is scaled to what runs, the bucket is deleted,
        # the secret is scheduled for deletion.
        ecs.update_service(cluster=names["SLEEK_COACH_ECS_CLUSTER"], service=names["SLEEK_COACH_ECS_SERVICE"],
                           desiredCount=0)
        aws("s3").delete_bucket(Bucket=names["SLEEK_COACH_PHOTOS_BUCKET"])
        aws("secretsmanager").delete_secret(SecretId=names["SLEEK_COACH_SECRET_ID"], RecoveryWindowInDays=7)
        clock.advance(60)
        results = await run_all()
        assert not results["sleek_coach_photos_bucket"].up and "NoSuchBucket" in (results["sleek_coach_photos_bucket"].error or "")
        assert not results["sleek_coach_secret"].up
        assert "SleekCoachEcsTasksBelowDesired" not in firing()
        clock.advance(5 * 60)
        await run_all()
        assert {"SleekCoachPhotosBucketUnreachable", "SleekCoachSecretUnreadable"} <= firing()
    finally:
        calls.reset()
