"""Every routing tree we ship delivers what its comments promise, through the daemon's own
routing code (RoutingTree: what the dispatcher uses) on the file as shipped.

The bug this guards against: `continue: true` on a PagerDuty route "and Slack too" sends a
critical alert to PagerDuty only, because (as in Alertmanager) the root's receiver takes an
alert only when no route below matches. A new shipped file with a `route:` must get its
promises here too (test_every_shipped_route_is_covered).
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

import pytest
import yaml

from monitor.alerting.config import RouteConfig
from monitor.alerting.routing import RoutingTree, build_route
from monitor.alerting.time_intervals import TimeInterval
from monitor.config.loader import load_config
from tests.test_catalogs import SYSTEMS, catalog_files, plausible, required_vars
from tests.test_cli import MONITOR, ROOT, monitor

CODE_BLOCK = re.compile(r"^```ya?ml\n(.*?)^```", re.DOTALL | re.MULTILINE)


def receivers(tree: RoutingTree, **labels: str) -> list[str]:
    return [route.receiver for route in tree.match(labels)]


def fake_env(*files: Path) -> dict[str, str]:
    return {name: plausible(name) for name in required_vars(*files)}


def readme_routing_block() -> str:
    blocks = [b for b in CODE_BLOCK.findall((ROOT / "README.md").read_text(encoding="utf-8"))
              if re.search(r"^route:\n", b, re.MULTILINE) and "receivers:" in b]
    assert len(blocks) == 1, "expected one complete routing example in README.md"
    return str(blocks[0])


def _at(weekday_date: str, hour: int) -> float:
    return datetime.fromisoformat(weekday_date).replace(hour=hour, tzinfo=timezone.utc).timestamp()


SUNDAY, MONDAY, SATURDAY = "2026-03-01", "2026-03-02", "2026-02-28"


def test_readme_example_pages_and_posts_critical_alerts(tmp_path: Path) -> None:
    main = tmp_path / "monitor.yaml"
    main.write_text(f"global:\n  state: sqlite:///{tmp_path}/s.db\ncheck_files: []\nrule_files: []\n"
                    + readme_routing_block(), encoding="utf-8")
    config = load_config(main, environ=fake_env(main))
    tree = RoutingTree.from_config(config.alerting)
    assert tree is not None
    # "...and Slack too": critical goes to PagerDuty, then on to Slack.
    assert receivers(tree, alertname="ApiHealthFailing", severity="critical", env="prod") == ["pagerduty", "slack"]
    assert receivers(tree, alertname="SlowApi", severity="warning", env="prod") == ["slack"]
    assert receivers(tree, alertname="NoSeverity") == ["slack"]
    # The Sunday maintenance window holds back the page, not the Slack message.
    page, post = tree.match({"severity": "critical"})
    assert tree.time_muter(page).mutes({}, _at(SUNDAY, 3)) and not tree.time_muter(page).mutes({}, _at(MONDAY, 3))
    assert not tree.time_muter(post).mutes({}, _at(SUNDAY, 3))


def test_configuration_reference_example_pages_and_posts_critical_alerts() -> None:
    blocks = [b for b in CODE_BLOCK.findall((ROOT / "docs" / "configuration.md").read_text(encoding="utf-8"))
              if re.search(r"^route:\n", b, re.MULTILINE)]
    assert len(blocks) == 1
    tree = RoutingTree(build_route(RouteConfig.model_validate(yaml.safe_load(blocks[0])["route"])), {})
    assert receivers(tree, alertname="DatabaseDown", severity="critical") == ["pagerduty", "slack"]
    assert receivers(tree, alertname="DiskFilling", severity="warning") == ["slack"]


@pytest.mark.parametrize("system", SYSTEMS)
def test_sidecar_main_file_pages_and_posts_critical_alerts(system: str) -> None:
    # Loaded in place: deploy/checks and deploy/alert_rules give the repo the image's layout.
    sidecar = ROOT / "deploy" / "monitor.sidecar.yaml"
    env = {**fake_env(sidecar, *catalog_files(system)), "MONITOR_SYSTEM": system}
    config = load_config(sidecar, environ=env)
    tree = RoutingTree.from_config(config.alerting)
    assert tree is not None
    # "Everything to Slack; critical alerts also page." For every alert the catalog can raise:
    for loaded in config.rules:
        labels = {"alertname": loaded.rule.alert, "system": system, **loaded.rule.labels}
        expected = ["pagerduty", "slack"] if labels.get("severity") == "critical" else ["slack"]
        assert receivers(tree, **labels) == expected, loaded.rule.alert
    assert {loaded.rule.labels.get("severity") for loaded in config.rules} >= {"critical"}


def test_kubernetes_configmap_pages_and_posts_critical_alerts(tmp_path: Path) -> None:
    docs = list(yaml.safe_load_all((ROOT / "deploy" / "kubernetes" / "sidecar.yaml").read_text(encoding="utf-8")))
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    for key, text in configmap["data"].items():
        target = tmp_path / {"checks.yaml": "checks/app.yaml", "alert_rules.yaml": "alert_rules/app.yaml"}.get(key, key)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text, encoding="utf-8")
    config = load_config(tmp_path / "monitor.yaml", environ=fake_env(*tmp_path.rglob("*.yaml")))
    tree = RoutingTree.from_config(config.alerting)
    assert tree is not None
    assert receivers(tree, alertname="AppDown", severity="critical") == ["pagerduty", "slack"]
    assert receivers(tree, alertname="AppSlow", severity="warning") == ["slack"]


def test_alertmanager_example_pages_and_posts_critical_and_holds_warnings_at_night() -> None:
    document = yaml.safe_load((ROOT / "deploy" / "alertmanager" / "alertmanager.yml").read_text(encoding="utf-8"))
    # Alertmanager's own file: its receivers read secrets from files (*_file), which is
    # Alertmanager's business; the routing tree and time intervals are what is tested here.
    tree = RoutingTree(build_route(RouteConfig.model_validate(document["route"])),
                       {t["name"]: TimeInterval.model_validate(t) for t in document["time_intervals"]})
    # "Slack for all, PagerDuty for critical" (deploy/README.md).
    assert receivers(tree, alertname="MonitorDown", severity="critical") == ["pagerduty-monitoring", "slack-monitoring"]
    assert receivers(tree, alertname="MonitorChecksSkipping", severity="warning") == ["slack-monitoring"]
    assert receivers(tree, alertname="Other") == ["slack-monitoring"]
    # "warnings muted at night" (and weekends), criticals never.
    warning = tree.match({"severity": "warning"})[0]
    assert tree.time_muter(warning).mutes({}, _at(MONDAY, 22)) and tree.time_muter(warning).mutes({}, _at(SATURDAY, 12))
    assert not tree.time_muter(warning).mutes({}, _at(MONDAY, 12))
    for route in tree.match({"severity": "critical"}):
        assert not tree.time_muter(route).mutes({}, _at(SATURDAY, 3))


def test_every_shipped_route_is_covered() -> None:
    """The files above are all the shipped ones that route alerts."""
    covered = {"README.md", "docs/configuration.md", "deploy/monitor.sidecar.yaml", "deploy/kubernetes/sidecar.yaml",
               "deploy/alertmanager/alertmanager.yml"}
    found = set()
    for path in [ROOT / "README.md", ROOT / "monitor.yaml", *(ROOT / "docs").glob("*.md"),
                 *(p for d in ("deploy", "checks", "alert_rules") for p in (ROOT / d).rglob("*.y*ml")
                   if not p.relative_to(ROOT).parts[1] in ("checks", "alert_rules"))]:
        text = path.read_text(encoding="utf-8")
        blocks = CODE_BLOCK.findall(text) if path.suffix == ".md" else [text]
        if any(re.search(r"^\s*route:\s*\n", block, re.MULTILINE) for block in blocks):
            found.add(str(path.relative_to(ROOT)))
    assert found == covered


def test_deploy_readme_commands_work_as_printed() -> None:
    readme = (ROOT / "deploy" / "README.md").read_text(encoding="utf-8")
    validate = next(line for line in readme.splitlines() if "monitor validate -c deploy/monitor.sidecar.yaml" in line)
    routes = next(line for line in readme.splitlines() if "monitor routes test -c deploy/monitor.sidecar.yaml" in line)
    env_words, args = _split(validate.split("#")[0])
    assert env_words == {"MONITOR_SYSTEM": "echo_ai"}
    system_files = (ROOT / "deploy" / "monitor.sidecar.yaml", *catalog_files("echo_ai"))
    # As printed, with nothing else set: every variable to set, at once, each at its file:line.
    bare = {k: v for k, v in os.environ.items() if k not in required_vars(*system_files) and not k.startswith("MONITOR_")}
    listed = subprocess.run([*MONITOR, *args], capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={**bare, **env_words})
    assert listed.returncode == 2 and "Traceback" not in listed.stderr
    named = set(re.findall(r": environment variable (\w+) is not set", listed.stderr))
    assert named == required_vars(*system_files) - {"MONITOR_SYSTEM"}
    assert all(re.match(r"^deploy/\S+\.yaml:\d+: environment variable ", line) for line in listed.stderr.splitlines())
    # With them set, it loads; and the routing test prints what the comment says.
    env = {**fake_env(*system_files), **env_words}
    ok = monitor(*args, env=env)
    assert ok.returncode == 0, ok.stderr
    _, route_args = _split(routes.split("#")[0])
    routed = monitor(*route_args, env=env)
    assert (routed.returncode, routed.stdout) == (0, "pagerduty,slack\n"), routed.stderr
    assert "pagerduty,slack" in routes.split("#")[1]


def _split(command: str) -> tuple[Mapping[str, str], list[str]]:
    words = command.split()
    env = dict(w.split("=", 1) for w in words if re.match(r"^[A-Z_]+=", w))
    rest = [w for w in words if not re.match(r"^[A-Z_]+=", w)]
    assert rest[0] == "monitor"
    return env, rest[1:]
