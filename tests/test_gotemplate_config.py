"""``templates:`` files and templated receiver fields, from config load to what a receiver
gets: refused at load with ``file:line``, rendered as Alertmanager renders them, never sent
as literal ``{{ ... }}``."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import structlog

from monitor.alerting.integrations import build_targets
from monitor.alerting.model import Alert, Notification
from monitor.alerting.templating import FAILURES
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from tests.receiver_sink import ReceiverSink
from tests.test_cli import monitor

MYORG = ('{{ define "slack.myorg.title" }}[{{ .Status | toUpper }}{{ if eq .Status "firing" }}:'
         '{{ .Alerts.Firing | len }}{{ end }}] {{ .CommonLabels.alertname }}{{ end }}\n')


@pytest.fixture
def sink() -> Iterator[ReceiverSink]:
    with ReceiverSink() as server:
        yield server


def write_config(tmp_path: Path, sink_url: str, slack: str, templates: str = "[templates/*.tmpl]",
                 extra: str = "") -> Path:
    (tmp_path / "templates").mkdir(exist_ok=True)
    path = tmp_path / "monitor.yaml"
    path.write_text(
        f"templates: {templates}\n"
        "route: {receiver: team}\n"
        "receivers:\n"
        "  - name: team\n"
        "    slack_configs:\n"
        f"      - api_url: '{sink_url}'\n"
        f"{slack}"
        f"{extra}")
    return path


def group(status: str = "firing") -> Notification:
    ends = None if status == "firing" else 1700000300.0
    return Notification(
        receiver="team", group_key='{}:{alertname="ApiHealthFailing"}', group_labels={"alertname": "ApiHealthFailing"},
        external_url="http://127.0.0.1:9464",
        alerts=[Alert(f"f{i}", {"alertname": "ApiHealthFailing", "check": "api_health", "severity": "critical",
                                "instance": f"i{i}"}, {"summary": f"<down> {i}"}, 1700000000.0, ends)
                for i in range(2)])


def deliver(path: Path, notification: Notification) -> None:
    config = load_config(path, environ={})
    [target] = build_targets(config.alerting)["team"]

    async def send() -> None:
        async with httpx.AsyncClient() as client:
            await target.integration.notify(notification, client)

    asyncio.run(send())


def test_custom_slack_title_is_rendered_as_alertmanager_renders_it(tmp_path: Path, sink: ReceiverSink) -> None:
    path = write_config(tmp_path, sink.url("/slack"), "        title: '{{ template \"slack.myorg.title\" . }}'\n")
    (tmp_path / "templates" / "myorg.tmpl").write_text(MYORG)
    deliver(path, group())
    deliver(path, group("resolved"))
    firing, resolved = (r.json for r in sink.accepted("/slack"))
    assert firing["text"] == "[FIRING:2] ApiHealthFailing"
    assert firing["attachments"][0]["fallback"] == "[FIRING:2] ApiHealthFailing"
    assert "ApiHealthFailing" in firing["blocks"][0]["text"]["text"]  # the header, in our own layout
    assert resolved["text"] == "[RESOLVED] ApiHealthFailing"
    assert "{{" not in sink.received[0].body.decode() + sink.received[1].body.decode()


def test_slack_text_template_escapes_values_not_its_own_links(tmp_path: Path, sink: ReceiverSink) -> None:
    text = "'{{ range .Alerts }}*{{ .Annotations.summary }}* <{{ $.ExternalURL }}|open>{{ \"\\n\" }}{{ end }}'"
    path = write_config(tmp_path, sink.url("/slack"), f"        text: {text}\n        channel: '#{{{{ .CommonLabels.check }}}}'\n")
    deliver(path, group())
    payload = sink.accepted("/slack")[0].json
    section = payload["blocks"][1]["text"]["text"]
    assert section == "*&lt;down&gt; 0* <http://127.0.0.1:9464|open>\n*&lt;down&gt; 1* <http://127.0.0.1:9464|open>\n"
    assert payload["channel"] == "#api_health"


def test_a_template_that_fails_at_run_time_falls_back_and_is_counted(tmp_path: Path, sink: ReceiverSink) -> None:
    path = write_config(tmp_path, sink.url("/slack"), "        title: '{{ (index .Alerts 5).Status }}'\n")
    before = FAILURES[("team", "slack", "title")]
    with structlog.testing.capture_logs() as logs:
        deliver(path, group())
    assert sink.accepted("/slack")[0].json["text"] == "[FIRING:2] ApiHealthFailing"  # the default title
    assert FAILURES[("team", "slack", "title")] == before + 1
    [event] = [e for e in logs if e["event"] == "template_render_failed"]
    assert event["field"] == "title" and "index out of range: 5" in event["error"]


def test_pagerduty_fields_are_templates(tmp_path: Path, sink: ReceiverSink) -> None:
    path = tmp_path / "monitor.yaml"
    path.write_text(
        "route: {receiver: team}\n"
        "receivers:\n"
        "  - name: team\n"
        "    pagerduty_configs:\n"
        f"      - url: '{sink.url('/pd')}'\n"
        "        routing_key: rk-123456\n"
        "        description: '{{ template \"pagerduty.default.description\" . }}'\n"
        "        client: '{{ template \"pagerduty.default.client\" . }}'\n"
        "        client_url: '{{ template \"pagerduty.default.clientURL\" . }}'\n"
        "        details: {firing: '{{ template \"pagerduty.default.instances\" .Alerts.Firing }}', team: payments}\n")
    deliver(path, group())
    event = sink.accepted("/pd")[0].json
    assert event["payload"]["summary"] == "[FIRING:2] ApiHealthFailing (api_health critical)"
    assert event["client"] == "Alertmanager"
    assert event["client_url"] == "http://127.0.0.1:9464/#/alerts?receiver=team"
    assert event["payload"]["custom_details"]["firing"].startswith("Labels:\n - alertname = ApiHealthFailing\n")
    assert event["payload"]["custom_details"]["team"] == "payments"
    assert event["payload"]["custom_details"]["num_firing"] == 2  # our details stay beside theirs


def problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    return [str(p) for p in caught.value.problems]


def test_a_template_file_with_an_error_is_refused_at_its_line(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1/x", "        title: '{{ template \"slack.myorg.title\" . }}'\n")
    broken = tmp_path / "templates" / "myorg.tmpl"
    broken.write_text('{{ define "slack.myorg.title" }}\n[{{ .Status | toUpper }}]\n{{ if .Alerts }}x\n{{ end }')
    [problem] = problems(path)
    assert problem.startswith(f"{broken}:4: template: ")
    assert f"(file listed in templates: at {path}:1)" in problem


@pytest.mark.parametrize(("body", "line", "message"), [
    ('{{ define "a" }}\n{{ .Status | toupper }}{{ end }}', 2, 'function "toupper" not defined'),
    ('{{ define "a" }}ok{{ end }}\n\n{{ define "b" }}{{ template "a" . }}{{ template "c" . }}{{ end }}', 3,
     'no such template "c"'),
    ('{{ define "a" }}{{ $x }}{{ end }}', 1, 'undefined variable "$x"'),
])
def test_template_file_problems(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1/x", "")
    (tmp_path / "templates" / "t.tmpl").write_text(body)
    [problem] = problems(path)
    assert problem.startswith(f"{tmp_path / 'templates' / 't.tmpl'}:{line}: template: {message}")


def test_a_field_calling_an_undefined_template_is_refused_at_the_field(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1/x",
                        "        send_resolved: true\n        title: '{{ template \"slack.myorg.title\" . }}'\n")
    [problem] = problems(path)  # no file defines it: templates/ is empty
    assert problem == (f"{path}:8: receivers[0].slack_configs[0].title: template: no such template "
                       '"slack.myorg.title" (not defined in the default templates or any templates: file)')


def test_a_field_with_a_syntax_error_is_refused(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1/x", "        text: '{{ if .Alerts }}x'\n")
    assert problems(path) == [f"{path}:7: receivers[0].slack_configs[0].text: template: unexpected EOF"]


def test_missing_template_files(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1/x", "", templates="[nothing-matches/*.tmpl, missing.tmpl]")
    assert problems(path) == [f"{path}:1: templates: 'missing.tmpl' not found"]


def test_validate_prints_the_template_error(tmp_path: Path) -> None:
    path = write_config(tmp_path, "http://127.0.0.1:1/x", "        title: '{{ template \"slack.myorg.title\" . }}'\n")
    (tmp_path / "templates" / "myorg.tmpl").write_text(MYORG.replace("toUpper", "upper"))
    result = monitor("validate", "-c", str(path))
    assert result.returncode == 2
    assert f"{tmp_path / 'templates' / 'myorg.tmpl'}:1: template: function \"upper\" not defined" in result.stdout + result.stderr
