"""Agreement with Alertmanager's own template tests and default templates.

No Go toolchain is assumed, so the expected strings are facts taken from Alertmanager's
test suite (template/template_test.go: expansions, functions, the data model) and from the
output its default templates produce, restated here for the same inputs.
"""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from monitor.alerting.model import Alert, Notification
from monitor.alerting.templating import HTML_PRINTER, TemplateSet, template_data
from monitor.alerting.templating.data import AlertData, Data, Pair, Pairs, sorted_pairs
from monitor.alerting.templating.gotime import GoTime
from monitor.alerting.templating.values import KV


def text(template: str, data: Any = None) -> str:
    return TemplateSet.defaults().render(template, data)


def html(template: str, data: Any = None) -> str:
    return TemplateSet.defaults().render(template, data, HTML_PRINTER)


def data(**fields: Any) -> Data:
    values: dict[str, Any] = {"receiver": "", "status": "", "alerts": [], "group_labels": {}, "common_labels": {},
                              "common_annotations": {}, "external_url": ""}
    values.update(fields)
    return Data(**values)


# ---- the data model (TestPairNames, TestPairValues, TestPairsString, TestKVSortedPairs, TestKVRemove)

def test_pairs_and_kv_methods() -> None:
    pairs = Pairs([Pair("name1", "value1"), Pair("name2", "value2")])
    assert text("{{ .Names }}|{{ .Values }}|{{ . }}", pairs) == "[name1 name2]|[value1 value2]|name1=value1, name2=value2"
    kv = KV({"d": "dVal", "b": "bVal", "c": "cVal", "alertname": "alert", "a": "aVal"})
    assert [p.Name for p in sorted_pairs(kv)] == ["alertname", "a", "b", "c", "d"]
    removed = KV({"key1": "val1", "key2": "val2", "key3": "val3", "key4": "val4"})
    assert text('{{ (.Remove (stringSlice "key2" "key4")).Names }}', removed) == "[key1 key3]"


def test_firing_and_resolved() -> None:
    alerts = [AlertData(status, KV(), KV(), GoTime.zero(), GoTime.zero(), "", "")
              for status in ("firing", "resolved", "firing", "resolved", "resolved")]
    assert text("{{ len .Alerts.Firing }} {{ len .Alerts.Resolved }}", data(alerts=alerts)) == "2 3"


def test_common_labels_and_annotations_are_what_every_alert_shares() -> None:
    """TestData: two alerts of job foo, one firing and one resolved."""
    notification = Notification(
        receiver="webhook", group_key="{}:{job=\"foo\"}", group_labels={"job": "foo"}, external_url="http://example.com/",
        alerts=[
            Alert("9266ef3da838ad95", {"severity": "warning", "job": "foo"},
                  {"description": "something happened", "runbook": "foo"}, starts_at=1.0),
            Alert("3b15fd163d36582e", {"severity": "critical", "job": "foo"},
                  {"description": "something else happened", "runbook": "foo"}, starts_at=1.0, ends_at=2.0),
        ])
    rendered = text("{{ .Receiver }}|{{ .Status }}|{{ .GroupLabels }}|{{ .CommonLabels }}|{{ .CommonAnnotations }}|"
                    "{{ .ExternalURL }}|{{ range .Alerts }}{{ .Status }}:{{ .Fingerprint }} {{ end }}",
                    template_data(notification))
    assert rendered == ("webhook|firing|job=foo|job=foo|runbook=foo|http://example.com/|"
                        "firing:9266ef3da838ad95 resolved:3b15fd163d36582e ")


def test_receiver_is_regex_quoted_as_alertmanager_does() -> None:
    notification = Notification("team.a+b", "k", {}, [Alert("f", {"alertname": "A"}, {}, 1.0)])
    assert text("{{ .Receiver }}", template_data(notification)) == "team\\.a\\+b"


# ---- TestTemplateExpansion and TestTemplateFuncs -------------------------------------------------

EXPANSIONS: list[tuple[str, Any, str]] = [
    ("abc", None, "abc"),
    ('{{ "abc" }}', None, "abc"),
    ('{{ "abc" | toUpper }}', None, "ABC"),
    ('{{ "ABC" | toLower }}', None, "abc"),
    ('{{ "abc" | title }}', None, "Abc"),
    ('{{ " a b c " | trimSpace }}', None, "a b c"),
    ('{{ if match "^a" "abc"}}abc{{ end }}', None, "abc"),
    ('{{ if match "abcd" "abc" }}abc{{ end }}', None, ""),
    ('{{ match "[a-z]+" "abc" }}', None, "true"),
    ('{{ . | join "," }}', ["a", "b", "c"], "a,b,c"),
    ('{{ "<b>" }}', None, "<b>"),
    ('{{ reReplaceAll "ab" "AB" "abcdabcda"}}', None, "ABcdABcda"),
    ('{{ "search?q=test%20foo" | urlUnescape }}', None, "search?q=test foo"),
    ('{{ "test" | toJson }}', None, '"test"'),
    ("{{ 42 | toJson }}", None, "42"),
    ("{{ true | toJson }}", None, "true"),
    ("{{ . | toJson }}", {"key": "value", "number": 123}, '{"key":"value","number":123}'),
    ("{{ . | toJson }}", ["a", "b", "c"], '["a","b","c"]'),
    ('{{ "test" | base64encode }}', None, "dGVzdA=="),
    ('{{ "flush>>" | base64encode }}', None, "Zmx1c2g-Pg=="),
    ('{{ "dGVzdA==" | base64decode }}', None, "test"),
    ("{{- $test := dict -}}{{ $test }}", None, "map[]"),
    ('{{- $test := dict "a" 1 "b" 2 "c" 3 -}}{{ $test }}', None, "map[a:1 b:2 c:3]"),
    ("{{- $test := list -}}{{ $test }}", None, "[]"),
    ('{{- $test := list "a" "b" "c" -}}{{ $test }}', None, "[a b c]"),
    ('{{- $test := list "a" "b" -}}{{ $test = append $test "c" "d" -}}{{ $test }}', None, "[a b c d]"),
]


@pytest.mark.parametrize(("template", "value", "expected"), EXPANSIONS)
def test_alertmanager_expansions(template: str, value: Any, expected: str) -> None:
    assert text(template, value) == expected


def test_html_escaping_and_safe_html() -> None:
    assert html('{{ "<b>" }}') == "&lt;b&gt;"
    assert html('{{ "<b>" | safeHtml }}') == "<b>"


def test_string_slice_with_remove() -> None:
    labels = data(group_labels={"key1": "key1", "key2": "key2", "key3": "key3", "key4": "key4"})
    template = '{{ with .GroupLabels }}{{ with .Remove (stringSlice "key1" "key3") }}{{ .SortedPairs.Values }}{{ end }}{{ end }}'
    assert text(template, labels) == "[key2 key4]"


def test_to_json_of_labels_and_alerts() -> None:
    assert text("{{ .CommonLabels | toJson }}", data(common_labels={"severity": "critical", "job": "foo"})) == \
        '{"job":"foo","severity":"critical"}'
    # Go's nil maps (an alert built with no annotations) encode as null.
    alerts = [AlertData("firing", KV({"alertname": "test"}), cast(KV, None), GoTime.zero(), GoTime.zero(), "", ""),
              AlertData("resolved", cast(KV, None), cast(KV, None), GoTime.zero(), GoTime.zero(), "", "")]
    expected = ('[{"status":"firing","labels":{"alertname":"test"},"annotations":null,'
                '"startsAt":"0001-01-01T00:00:00Z","endsAt":"0001-01-01T00:00:00Z","generatorURL":"","fingerprint":""}]')
    assert text("{{ .Alerts.Firing | toJson }}", data(alerts=alerts)) == expected


JAN_1 = GoTime.from_unix(1704096930)  # 2024-01-01 08:15:30 UTC


def test_date_and_tz() -> None:
    assert text('{{ . | date "2006-01-02" }}', JAN_1) == "2024-01-01"
    assert text('{{ . | tz "Europe/Paris" }}', JAN_1) == "2024-01-01 09:15:30 +0100 CET"
    assert text("{{ . }}", JAN_1) == "2024-01-01 08:15:30 +0000 UTC"
    assert text('{{ .Format "Mon Jan _2 15:04:05 MST 2006" }}|{{ .Format "3:04PM -07:00 Z07:00" }}', JAN_1) == \
        "Mon Jan  1 08:15:30 UTC 2024|8:15AM +00:00 Z"
    assert text('{{ (.Add 1500000000).Format "05.000 .999" }}|{{ .Unix }}|{{ .Month }}|{{ .Weekday }}', JAN_1) == \
        "31.500 .5|1704096930|January|Monday"


HUMANIZE = [
    ([0.0, 1.0, 60.0, 3600.0, 86400.0, 86400.0 + 3600.0, -(86400 * 2 + 3600 * 3 + 60 * 4 + 5.0), 899.99],
     "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:1d 1h 0m 0s:-2d 3h 4m 5s:14m 59s:"),
    (["0", "1", "60", "3600", "86400"], "0s:1s:1m 0s:1h 0m 0s:1d 0h 0m 0s:"),
    ([0.1, 0.0001, 0.12345, 60.1, 60.5, 1.2345, 12.345], "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"),
    ([".1", ".0001", ".12345", "60.1", "60.5", "1.2345", "12.345"], "100ms:100us:123.5ms:1m 0s:1m 0s:1.234s:12.35s:"),
    ([0, -1, 1, 1234567], "0s:-1s:1s:14d 6h 56m 7s:"),
]


@pytest.mark.parametrize(("values", "expected"), HUMANIZE)
def test_humanize_duration(values: list[Any], expected: str) -> None:
    assert text("{{ range . }}{{ humanizeDuration . }}:{{ end }}", values) == expected


def test_since() -> None:
    an_hour_ago = GoTime.from_unix(time.time() - 3600)
    assert text("{{ . | since | humanizeDuration }}", an_hour_ago) == "1h 0m 0s"
    assert text('{{ (now.Sub .).Round 60000000000 }}', an_hour_ago) == "1h0m0s"


# ---- the default templates -----------------------------------------------------------------------

def notification(status: str = "firing", group_labels: dict[str, str] | None = None) -> Notification:
    ends = None if status == "firing" else 1700000600.0
    return Notification(
        receiver="team-x", group_key="{}:{alertname=\"ApiDown\"}", external_url="http://mon.example:9464",
        group_labels={"alertname": "ApiDown"} if group_labels is None else group_labels,
        alerts=[
            Alert("a1", {"alertname": "ApiDown", "job": "api", "severity": "critical", "instance": "a"},
                  {"summary": "API down", "runbook_url": "http://rb"}, 1700000000.0, ends, generator_url="http://gen/1"),
            Alert("a2", {"alertname": "ApiDown", "job": "api", "severity": "critical", "instance": "b"},
                  {"summary": "API down"}, 1700000000.0, None, generator_url="http://gen/2"),
        ])


def named(name: str, value: Notification, printer: Any = None) -> str:
    args = (printer,) if printer is not None else ()
    return TemplateSet.defaults().render_named(name, template_data(value), *args)


def test_subject() -> None:
    assert named("__subject", notification()) == "[FIRING:2] ApiDown (api critical)"
    # Without common labels beyond the group labels the subject keeps its trailing space.
    only_group = notification(group_labels={"alertname": "ApiDown", "job": "api", "severity": "critical"})
    assert named("__subject", only_group) == "[FIRING:2] ApiDown api critical "
    resolved = Notification("r", "k", {"alertname": "X"}, [Alert("f", {"alertname": "X"}, {}, 1.0, 2.0)])
    assert named("__subject", resolved) == "[RESOLVED] X "


def test_slack_and_pagerduty_defaults() -> None:
    value = notification()
    assert named("slack.default.title", value) == "[FIRING:2] ApiDown (api critical)"
    assert named("slack.default.titlelink", value) == "http://mon.example:9464/#/alerts?receiver=team-x"
    assert named("slack.default.fallback", value) == \
        "[FIRING:2] ApiDown (api critical) | http://mon.example:9464/#/alerts?receiver=team-x"
    assert named("slack.default.color", value) == "danger"
    assert named("slack.default.username", value) == "Alertmanager"
    assert named("slack.default.text", value) == ""
    assert named("pagerduty.default.description", value) == "[FIRING:2] ApiDown (api critical)"
    assert named("pagerduty.default.client", value) == "Alertmanager"
    assert named("pagerduty.default.clientURL", value) == "http://mon.example:9464/#/alerts?receiver=team-x"
    assert named("email.default.subject", value) == "[FIRING:2] ApiDown (api critical)"


FIRST_ALERT = (
    "Labels:\n - alertname = ApiDown\n - instance = a\n - job = api\n - severity = critical\n"
    "Annotations:\n - runbook_url = http://rb\n - summary = API down\nSource: http://gen/1\n"
)
SECOND_ALERT = (
    "Labels:\n - alertname = ApiDown\n - instance = b\n - job = api\n - severity = critical\n"
    "Annotations:\n - summary = API down\nSource: http://gen/2\n"
)


def test_text_alert_list() -> None:
    assert TemplateSet.defaults().render('{{ template "__text_alert_list" .Alerts }}', template_data(notification())) \
        == FIRST_ALERT + SECOND_ALERT
    assert TemplateSet.defaults().render('{{ template "pagerduty.default.instances" .Alerts.Firing }}',
                                         template_data(notification("resolved"))) == SECOND_ALERT


def test_sns_and_opsgenie_messages() -> None:
    value = notification("resolved")  # a1 resolved, a2 still firing
    firing, resolved = SECOND_ALERT, FIRST_ALERT
    assert named("sns.default.message", value) == \
        f"API down\n\nAlerts Firing:\n{firing}\n\n\nAlerts Resolved:\n{resolved}\n\n"
    assert named("opsgenie.default.description", value) == \
        f"API down\nAlerts Firing:\n{firing}\nAlerts Resolved:\n{resolved}"


def test_markdown_alert_list() -> None:
    one = Notification("r", "k", {}, [Alert("f", {"alertname": "X"}, {"summary": "s"}, 1.0, generator_url="g")])
    rendered = TemplateSet.defaults().render('{{ template "__text_alert_list_markdown" .Alerts }}', template_data(one))
    assert rendered == "\nLabels:\n  - alertname = X\n\nAnnotations:\n  - summary = s\n\nSource: g\n\n"


def test_email_html_escapes_values() -> None:
    value = Notification("r", "k", {"alertname": "<script>"},
                         [Alert("f", {"alertname": "<script>"}, {"summary": "a & b"}, 1.0, generator_url="http://g")])
    page = named("email.default.html", value, HTML_PRINTER)
    assert page.startswith("<!DOCTYPE html>")
    assert "alertname=&lt;script&gt;" in page and "<script>" not in page
    assert "summary = a &amp; b<br>" in page
    assert '<a href="http://g"' in page and "Firing: 1" in page
