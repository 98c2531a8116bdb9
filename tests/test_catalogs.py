"""The shipped catalogs (checks/<system>.yaml + alert_rules/<system>.yaml) load and are well formed.

Each system is loaded through a throwaway main file, with every variable the files require
set to a plausible value, exactly as a deployment would provide them.
"""

from __future__ import annotations

import os
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
