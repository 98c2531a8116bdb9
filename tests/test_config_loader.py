"""Main file + check files + rule files: every problem as file:line, all at once."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.config.errors import ConfigError
from monitor.config.loader import load_config

MAIN = """global:
  listen: 127.0.0.1:0
  default_interval: 20s
check_files: [checks/*.yaml]
rule_files: [rules/*.yaml]
"""

GOOD_CHECKS = """checks:
  - name: api_health
    kind: http
    url: http://127.0.0.1:1/health
    labels: {service: api, system: echo}
    expect:
      status: [200]
      cel: 'body.status == "healthy"'
  - name: db
    kind: postgres
    dsn: ${DATABASE_URL:-postgresql://postgres@127.0.0.1/test}
    interval: 5s
  - name: beat
    kind: heartbeat
    max_age: 15m
"""

GOOD_RULES = """groups:
  - name: g
    rules:
      - alert: ApiDown
        check: api_health
        expr: '!up'
        for: 2m
        keep_firing_for: 1m
        labels: {severity: critical}
      - alert: Slow
        check: {system: echo}
        expr: 'quantile_over_time(0.95, "latency", "5m") > 2.0'
"""


def tree(tmp_path: Path, checks: str = GOOD_CHECKS, rules: str = GOOD_RULES, main: str = MAIN) -> Path:
    (tmp_path / "checks").mkdir(exist_ok=True)
    (tmp_path / "rules").mkdir(exist_ok=True)
    (tmp_path / "checks" / "a.yaml").write_text(checks)
    (tmp_path / "rules" / "a.yaml").write_text(rules)
    (tmp_path / "monitor.yaml").write_text(main)
    return tmp_path / "monitor.yaml"


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config(path)
    return [str(p) for p in err.value.problems]


def test_good_tree_loads_with_defaults(tmp_path: Path) -> None:
    config = load_config(tree(tmp_path))
    names = [c.name for c in config.checks]
    assert names == ["api_health", "db", "beat"]
    api = config.check("api_health")
    assert api is not None and api.interval == 20 and api.timeout == 10  # global defaults
    db = config.check("db")
    assert db is not None and db.interval == 5 and db.timeout == 5  # timeout capped at interval
    assert [r.rule.alert for r in config.rules_for(api)] == ["ApiDown", "Slow"]
    assert config.rules[0].rule.for_ == 120 and config.rules[0].rule.keep_firing_for == 60
    assert config.check_locations["db"].line == 9


def test_all_problems_reported_with_file_and_line(tmp_path: Path) -> None:
    checks = """checks:
  - name: api_health
    kind: http
    url: ftp://nope
    intervall: 5s
  - name: api_health
    kind: redis
  - name: Bad-Name
    kind: disk
  - name: q
    kind: nosuch
  - name: t
    kind: tcp
    timeout: 1m
    address: localhost:80
"""
    found = problems(tree(tmp_path, checks=checks))
    file = str(tmp_path / "checks" / "a.yaml")
    assert f"{file}:4: api_health.url: url must be http:// or https:// with a host, got 'ftp://nope'" in found
    assert f"{file}:5: api_health.intervall: unknown field" in found
    assert f"{file}:8: Bad-Name.name: must match ^[a-z0-9_]+$ (lowercase letters, digits and _ for names)" in found
    assert any(p.startswith(f"{file}:10: q: unknown kind 'nosuch'") for p in found)
    assert any(p.startswith(f"{file}:12: t: timeout (60s) must not exceed interval (20s)") for p in found)


def test_duplicate_names_across_files(tmp_path: Path) -> None:
    path = tree(tmp_path)
    (tmp_path / "checks" / "b.yaml").write_text("checks:\n  - name: db\n    kind: disk\n")
    found = problems(path)
    assert found == [f"{tmp_path}/checks/b.yaml:2: duplicate check name 'db' (first defined at {tmp_path}/checks/a.yaml:9)"]


def test_rule_errors(tmp_path: Path) -> None:
    rules = """groups:
  - name: g
    rules:
      - alert: A
        check: nosuch
        expr: '!up'
      - alert: B
        check: db
        expr: 'up &&'
      - alert: C
        check: db
        expr: 'frobnicate("5m") > 1'
      - alert: D
        check: db
        expr: 'valu > 1'
      - alert: E
        check: db
        expr: '!up'
        for: soon
"""
    found = problems(tree(tmp_path, rules=rules))
    file = str(tmp_path / "rules" / "a.yaml")
    assert any(p.startswith(f"{file}:9: B.expr: invalid CEL expression") for p in found)
    assert any(p.startswith(f"{file}:12: C.expr: unknown function frobnicate") for p in found)
    assert any(p.startswith(f"{file}:15: D.expr: unknown variable valu") for p in found)
    assert any(p.startswith(f"{file}:19: E.for: invalid duration 'soon'") for p in found)


def test_rule_watching_nothing_is_an_error(tmp_path: Path) -> None:
    rules = "groups:\n  - name: g\n    rules:\n      - alert: A\n        check: {team: nobody}\n        expr: '!up'\n"
    found = problems(tree(tmp_path, rules=rules))
    assert found == [f"{tmp_path}/rules/a.yaml:4: rule A: there is no any check with labels {{'team': 'nobody'}}"]


def test_missing_literal_file_and_bad_main(tmp_path: Path) -> None:
    main = "global:\n  listen: nowhere\ncheck_files: [checks/none.yaml]\nbogus: 1\n"
    found = problems(tree(tmp_path, main=main))
    main_file = str(tmp_path / "monitor.yaml")
    assert any(p.startswith(f"{main_file}:2: global.listen: listen must be host:port") for p in found)
    assert f"{main_file}:4: bogus: unknown field" in found


def test_environment_overrides_global(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MONITOR_LISTEN", "127.0.0.1:9999")
    monkeypatch.setenv("MONITOR_LOG_FORMAT", "json")
    config = load_config(tree(tmp_path))
    assert config.settings.listen == "127.0.0.1:9999"
    assert config.settings.log_format == "json"
    assert config.settings.default_interval == 20  # from the file, untouched
    monkeypatch.setenv("MONITOR_LOG_LEVEL", "loud")
    assert any("MONITOR_LOG_LEVEL" in p for p in problems(tree(tmp_path)))


def test_api_token_empty_means_unset_and_is_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    main = MAIN.replace("global:\n", "global:\n  api_token: ${TOKEN:-}\n")
    assert load_config(tree(tmp_path, main=main)).settings.api_token is None
    monkeypatch.setenv("TOKEN", "s3cret")
    token = load_config(tree(tmp_path, main=main)).settings.api_token
    assert token is not None and token.get_secret_value() == "s3cret" and "s3cret" not in repr(token)


check_fields = st.dictionaries(
    st.sampled_from(["name", "kind", "url", "interval", "timeout", "labels", "dsn", "queue", "address", "max_age", "expect"]),
    st.one_of(st.none(), st.integers(-5, 10**6), st.text(max_size=30), st.lists(st.integers(), max_size=3),
              st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=2)),
    max_size=6,
)


@settings(max_examples=150, deadline=None)
@given(st.lists(check_fields, max_size=4))
def test_arbitrary_check_lists_never_crash(tmp_path_factory: pytest.TempPathFactory, items: list[dict[str, object]]) -> None:
    import yaml

    root = tmp_path_factory.mktemp("fuzz")
    path = tree(root, checks=yaml.safe_dump({"checks": items}), rules="groups: []\n")
    try:
        load_config(path)
    except ConfigError as err:
        for problem in err.problems:
            assert problem.file.endswith(".yaml") and problem.line >= 1 and problem.message


ALERTMANAGER_SECTIONS = """receivers:
  - name: oncall
    slack_configs: [{api_url: 'https://hooks.slack.invalid/services/T/B/x', channel: '#ops'}]
route:
  receiver: oncall
  routes:
    - matchers: ['severity="critical"']
      receiver: pager
      mute_time_intervals: [maint]
"""


def test_alertmanager_sections_are_validated_with_lines(tmp_path: Path) -> None:
    found = problems(tree(tmp_path, main=MAIN + ALERTMANAGER_SECTIONS))
    main_file = str(tmp_path / "monitor.yaml")
    assert f"{main_file}:13: undefined receiver 'pager' (receivers: oncall)" in found
    assert any(p.startswith(f"{main_file}:14: undefined time interval 'maint'") for p in found)


def test_alertmanager_sections_load(tmp_path: Path) -> None:
    fixed = ALERTMANAGER_SECTIONS.replace("receiver: pager", "receiver: oncall").replace(
        "      mute_time_intervals: [maint]\n", "")
    config = load_config(tree(tmp_path, main=MAIN + fixed))
    assert [r.name for r in config.alerting.receivers] == ["oncall"]
    assert config.alerting.route is not None and config.alerting.route.receiver == "oncall"
