"""Alertmanager's `global:` section beside the daemon's own settings, and what
`monitor validate` / `--strict` say about what loads but would not deliver."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.cli.main import main
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config

MAIN = """global:
  listen: 127.0.0.1:9464
  resolve_timeout: 10m
  smtp_smarthost: smtp.example.org:587
  smtp_from: monitor@example.org
  slack_api_url: https://hooks.slack.example.org/services/T0/B0/XXXXXXXXXXXXXXXXXXXXXXXX
  opsgenie_api_key: 0penG3nieKey
check_files: []
rule_files: []
receivers:
  - name: mail
    email_configs: [{to: oncall@example.org}]
  - name: chat
    slack_configs: [{channel: '#ops'}]
  - name: genie
    opsgenie_configs: [{api_key: x}]
route:
  receiver: mail
  routes: [{matchers: [team="x"], receiver: genie}, {matchers: [team="y"], receiver: chat}]
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "monitor.yaml"
    path.write_text(text)
    return path


def test_global_holds_both_and_every_warning_has_its_line(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, MAIN), environ={})
    assert config.settings.listen == "127.0.0.1:9464" and config.settings.resolve_timeout == 600.0
    assert config.alerting.global_.resolve_timeout == 600.0
    assert config.alerting.receivers[0].email_configs[0].smarthost == "smtp.example.org:587"
    slack = config.alerting.receivers[1].slack_configs[0]
    assert slack.api_url is not None and "hooks.slack.example.org" in slack.api_url.get_secret_value()
    assert [(w.line, w.message) for w in config.warnings] == [
        (7, "global.opsgenie_api_key: OpsGenie is not supported here; nothing uses this setting"),
        (16, "receiver 'genie': opsgenie_configs is not supported here and will not send"),
    ]


def test_validate_prints_warnings_and_strict_fails_on_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path, MAIN)
    assert main(["validate", "-c", str(path)]) == 0
    out = capsys.readouterr()
    assert f"{path}:16: warning: receiver 'genie': opsgenie_configs is not supported" in out.err
    assert "0penG3nieKey" not in out.err + out.out and ": ok (" in out.out
    assert main(["validate", "--strict", "-c", str(path)]) == 2
    out = capsys.readouterr()
    assert f"{path}: 2 warnings (--strict)" in out.err and ": ok (" not in out.out
    # Without the unsupported parts, --strict passes.
    clean = MAIN.replace("  opsgenie_api_key: 0penG3nieKey\n", "").replace(
        "  - name: genie\n    opsgenie_configs: [{api_key: x}]\n", "  - name: genie\n")
    assert main(["validate", "--strict", "-c", str(write(tmp_path, clean))]) == 0


@pytest.mark.parametrize(("edit", "line", "message"), [
    (("  smtp_smarthost: smtp.example.org:587\n", ""), 11, "no SMTP server: set smarthost here or global.smtp_smarthost"),
    (("  slack_api_url: https", "  slack_api_url_file: /nonexistent\n  x: https"), 6, "not a readable file"),
    (("  resolve_timeout: 10m", "  resolve_timeout: soon"), 3, "resolve_timeout"),
    (("  smtp_from: monitor@example.org", "  smtp_from: monitor@example.org\n  smtp_requre_tls: false"), 6,
     "unknown field"),
])
def test_global_problems_are_file_line_errors(tmp_path: Path, edit: tuple[str, str], line: int, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, MAIN.replace(*edit)), environ={})
    assert any(p.line == line and message in p.message for p in caught.value.problems), caught.value.problems


def test_the_older_top_level_mute_time_intervals_loads_and_mutes(tmp_path: Path) -> None:
    from datetime import datetime, timezone

    from monitor.alerting.routing import RoutingTree

    text = MAIN + """mute_time_intervals:
  - name: weekend
    time_intervals: [{weekdays: [saturday, sunday]}]
"""
    text = text.replace('{matchers: [team="y"], receiver: chat}',
                        '{matchers: [team="y"], receiver: chat, mute_time_intervals: [weekend]}')
    config = load_config(write(tmp_path, text), environ={})
    tree = RoutingTree.from_config(config.alerting)
    assert tree is not None
    (route,) = tree.match({"team": "y"})
    saturday = datetime(2026, 3, 7, 12, tzinfo=timezone.utc).timestamp()
    assert tree.time_muter(route).mutes({}, saturday) and not tree.time_muter(route).mutes({}, saturday - 86400)
    duplicate = text + "time_intervals: [{name: weekend, time_intervals: [{weekdays: [monday]}]}]\n"
    with pytest.raises(ConfigError, match="time interval name 'weekend' is not unique"):
        load_config(write(tmp_path, duplicate), environ={})
