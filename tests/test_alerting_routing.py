"""Alertmanager-compatible matchers, time intervals, config sections and the routing tree.

The point of these modules is that an existing alertmanager.yml means the same thing here,
so most expectations below are Alertmanager's documented behaviour, not our choices.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from monitor.alerting.config import AlertingConfig, AlertingConfigError, RouteConfig
from monitor.alerting.matchers import Matcher, from_legacy, parse_matcher, parse_matchers
from monitor.alerting.routing import (
    DEFAULT_GROUP_INTERVAL,
    DEFAULT_GROUP_WAIT,
    DEFAULT_REPEAT_INTERVAL,
    RoutingTree,
    build_route,
    group_key,
    group_labels,
)
from monitor.alerting.time_intervals import TimeInterval, TimeIntervalSpec
from monitor.config.errors import ConfigError
from monitor.config.loader import load_config
from tests.test_http_api import write_config

UTC = timezone.utc
BERLIN = ZoneInfo("Europe/Berlin")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: Any = UTC) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=tz).timestamp()


def interval(**spec: Any) -> TimeInterval:
    return TimeInterval.model_validate({"name": "t", "time_intervals": [spec]})


# --------------------------------------------------------------------------- matchers


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        ('severity="critical"', {"severity": "critical"}, True),
        ('severity="critical"', {"severity": "warning"}, False),
        ('severity!="critical"', {"severity": "warning"}, True),
        ('severity!="critical"', {"severity": "critical"}, False),
        ('severity=~"critical|page"', {"severity": "page"}, True),
        ('severity=~"critical|page"', {"severity": "info"}, False),
        ('severity!~"info|debug"', {"severity": "critical"}, True),
        ('severity!~"info|debug"', {"severity": "debug"}, False),
    ],
)
def test_each_operator(text: str, labels: dict[str, str], expected: bool) -> None:
    assert parse_matcher(text).matches(labels) is expected


def test_regex_is_anchored_at_both_ends() -> None:
    # Alertmanager wraps regexes in ^(?:...)$; a substring hit must not route a page.
    crit = parse_matcher('severity=~"crit"')
    assert not crit.matches({"severity": "critical"})
    assert not crit.matches({"severity": "subcrit"})
    assert crit.matches({"severity": "crit"})
    # The group matters: without (?:) the anchors would bind only to the outer alternatives.
    alt = parse_matcher('env=~"prod|staging"')
    assert not alt.matches({"env": "production"})
    assert not alt.matches({"env": "prestaging"})


def test_missing_label_is_the_empty_string() -> None:
    assert parse_matcher('team=""').matches({})
    assert not parse_matcher('team!=""').matches({})
    assert parse_matcher('team=~".*"').matches({})
    assert not parse_matcher('team=~".+"').matches({})


def test_bad_regex_is_a_value_error_naming_it() -> None:
    with pytest.raises(ValueError, match=r"invalid regex '\(unclosed'"):
        parse_matcher('job=~"(unclosed"')


def test_unquoted_values_braces_and_several_per_line() -> None:
    found = parse_matchers('{service="api", severity=~"critical|page",env=prod , team!~ db.* }')
    assert [str(m) for m in found] == [
        'service="api"',
        'severity=~"critical|page"',
        'env="prod"',
        'team!~"db.*"',
    ]
    # A list as written under `matchers:`; each entry may itself hold several.
    assert len(parse_matchers(['alertname="A"', 'a="1", b="2"'])) == 3
    assert parse_matchers("{}") == [] and parse_matchers("") == []


def test_quoted_values_keep_commas_and_escapes() -> None:
    matcher = parse_matcher(r'msg="a, \"b\"\n"')
    assert matcher.value == 'a, "b"\n'
    assert str(matcher) == r'msg="a, \"b\"\n"'


@pytest.mark.parametrize("text", ['severity', '="x"', 'a=="x"', 'a="x" b="y"', 'a="x', '{a="x"', 'a="x\\q"', "a=x\"y"])
def test_malformed_matchers_are_rejected(text: str) -> None:
    with pytest.raises(ValueError, match="matcher"):
        parse_matchers(text)


@given(
    name=st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,10}", fullmatch=True),
    op=st.sampled_from(["=", "!="]),
    value=st.text(max_size=20),
)
def test_printing_and_parsing_round_trip(name: str, op: Any, value: str) -> None:
    # Route keys and the silence API print matchers; reading them back must give the same one.
    matcher = Matcher(name, op, value)
    assert parse_matcher(str(matcher)) == matcher


def test_legacy_match_maps_become_sorted_matchers() -> None:
    found = from_legacy({"team": "db", "env": "prod"}, {"severity": "crit.*"})
    assert [str(m) for m in found] == ['env="prod"', 'severity=~"crit.*"', 'team="db"']
    assert not found[1].matches({"severity": "xcritical"})  # legacy regexes are anchored too


# --------------------------------------------------------------------------- time intervals


def test_sunday_maintenance_window_utc() -> None:
    # The runbooks' "Sundays 02:00-04:00 UTC" window. 2026-03-01 is a Sunday.
    window = interval(weekdays=["sunday"], times=[{"start_time": "02:00", "end_time": "04:00"}])
    assert not window.active(at(2026, 3, 1, 1, 59))
    assert window.active(at(2026, 3, 1, 2, 0))  # start inclusive
    assert window.active(at(2026, 3, 1, 3, 59) + 59)
    assert not window.active(at(2026, 3, 1, 4, 0))  # end exclusive
    assert not window.active(at(2026, 3, 2, 3, 0))  # Monday


def test_weekday_hours_in_berlin_follow_the_march_dst_change() -> None:
    # Clocks in Berlin go 02:00 CET -> 03:00 CEST on 2026-03-29: "09:00" is 08:00 UTC the Friday
    # before and 07:00 UTC the Monday after. A UTC-offset implementation gets one of them wrong.
    office = interval(
        weekdays=["monday:friday"], times=[{"start_time": "09:00", "end_time": "17:00"}], location="Europe/Berlin"
    )
    assert not office.active(at(2026, 3, 27, 7, 30))  # Friday 08:30 CET
    assert office.active(at(2026, 3, 27, 8, 0))  # Friday 09:00 CET
    assert office.active(at(2026, 3, 27, 15, 59))  # Friday 16:59 CET
    assert not office.active(at(2026, 3, 27, 16, 0))  # Friday 17:00 CET
    assert office.active(at(2026, 3, 30, 7, 0))  # Monday 09:00 CEST
    assert not office.active(at(2026, 3, 30, 15, 0))  # Monday 17:00 CEST
    assert not office.active(at(2026, 3, 29, 10, 0))  # the Sunday itself
    # The skipped hour never happens on the wall clock, so a window inside it never opens.
    skipped = interval(times=[{"start_time": "02:00", "end_time": "03:00"}], location="Europe/Berlin")
    day = at(2026, 3, 29, 0, 0, tz=BERLIN)
    assert not any(skipped.active(day + minute * 60) for minute in range(24 * 60))


def test_end_time_24_00_covers_the_last_minute() -> None:
    late = interval(times=[{"start_time": "22:00", "end_time": "24:00"}])
    assert late.active(at(2026, 1, 1, 23, 59))
    assert not late.active(at(2026, 1, 2, 0, 0))


def test_negative_days_of_month_count_from_the_end() -> None:
    last = interval(days_of_month=["-1"])
    assert last.active(at(2026, 1, 31, 12))
    assert last.active(at(2026, 2, 28, 12))  # 2026 is not a leap year
    assert not last.active(at(2028, 2, 28, 12)) and last.active(at(2028, 2, 29, 12))
    last_three = interval(days_of_month=["-3:-1"])
    assert last_three.active(at(2026, 4, 28)) and not last_three.active(at(2026, 4, 27))
    # "30:31" does not exist in February and must not spill into March.
    month_end = interval(days_of_month=["30:31"])
    assert not any(month_end.active(at(2026, 2, day)) for day in range(1, 29))
    assert not month_end.active(at(2026, 3, 1))


def test_months_and_years() -> None:
    quarter = interval(months=["january:march", "december"], years=["2026:2030"])
    assert quarter.active(at(2026, 2, 10))
    assert quarter.active(at(2030, 12, 31))
    assert not quarter.active(at(2026, 4, 1))
    assert not quarter.active(at(2031, 1, 1))
    numeric = interval(months=["1:3"], years=[2026])  # YAML integers are fine
    assert numeric.active(at(2026, 3, 31)) and not numeric.active(at(2027, 3, 31))


def test_fields_combine_with_and_entries_with_or() -> None:
    named = TimeInterval.model_validate(
        {
            "name": "weekends-or-nights",
            "time_intervals": [
                {"weekdays": ["saturday", "sunday"]},
                {"times": [{"start_time": "00:00", "end_time": "06:00"}]},
            ],
        }
    )
    assert named.active(at(2026, 3, 7, 12))  # Saturday noon
    assert named.active(at(2026, 3, 4, 3))  # Wednesday 03:00
    assert not named.active(at(2026, 3, 4, 12))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"times": [{"start_time": "04:00", "end_time": "02:00"}]}, "must be before end_time"),
        ({"times": [{"start_time": "24:00", "end_time": "24:00"}]}, "invalid time"),
        ({"times": [{"start_time": "2:00", "end_time": "04:00"}]}, "expected HH:MM"),
        ({"weekdays": ["funday"]}, "invalid weekday"),
        ({"weekdays": ["saturday:sunday"]}, "start day cannot be after end day"),
        ({"days_of_month": ["0"]}, "out of range"),
        ({"days_of_month": ["-1:5"]}, "start day cannot be after end day"),
        ({"months": ["march:january"]}, "start month cannot be after end month"),
        ({"years": ["2030:2026"]}, "start year cannot be after end year"),
        ({"location": "Mars/Olympus"}, "unknown time zone"),
        ({"wekdays": ["monday"]}, "Extra inputs"),  # a typo is an error, not "always"
    ],
)
def test_time_interval_validation(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        TimeIntervalSpec.model_validate(spec)


# --------------------------------------------------------------------------- routing

TREE = """
receivers:
  - name: default
  - name: db-pager
  - name: db-slack
  - name: audit
  - name: frontend
route:
  receiver: default
  group_by: [alertname]
  group_wait: 10s
  routes:
    - matchers: ['team="db"']
      receiver: db-slack
      group_by: [alertname, instance]
      repeat_interval: 1h
      routes:
        - matchers: ['severity="critical"']
          receiver: db-pager
          group_wait: 0s
    - matchers: ['{severity=~"critical|warning"}']
      receiver: audit
      continue: true
      group_by: ['...']
    - match: {team: frontend}
      receiver: frontend
      group_by: []
"""


def tree_of(text: str = TREE) -> RoutingTree:
    tree = RoutingTree.from_config(AlertingConfig.model_validate(yaml.safe_load(text)))
    assert tree is not None
    return tree


def receivers(tree: RoutingTree, labels: dict[str, str]) -> list[str]:
    return [route.receiver for route in tree.match(labels)]


def test_unmatched_alerts_go_to_the_root_receiver() -> None:
    assert receivers(tree_of(), {"alertname": "X", "team": "payments"}) == ["default"]


def test_nested_routes_take_the_deepest_match() -> None:
    tree = tree_of()
    assert receivers(tree, {"team": "db", "severity": "critical"}) == ["db-pager"]
    # Matches the db route but none of its children: the db route itself takes it.
    assert receivers(tree, {"team": "db", "severity": "info"}) == ["db-slack"]


def test_first_match_wins_without_continue() -> None:
    # Critical db alert: the db branch matches first and has no `continue`, so the audit
    # route (which would also match) is never reached.
    assert receivers(tree_of(), {"team": "db", "severity": "critical"}) == ["db-pager"]


def test_continue_lets_later_siblings_match_too() -> None:
    assert receivers(tree_of(), {"team": "frontend", "severity": "warning"}) == ["audit", "frontend"]
    # `continue` and nothing else matches: the continue route alone, not the root as well.
    assert receivers(tree_of(), {"team": "x", "severity": "warning"}) == ["audit"]


def test_children_inherit_unset_options_and_root_gets_alertmanager_defaults() -> None:
    tree = tree_of()
    root = tree.root
    assert (root.group_wait, root.group_interval, root.repeat_interval) == (10.0, DEFAULT_GROUP_INTERVAL, DEFAULT_REPEAT_INTERVAL)
    [pager] = tree.match({"team": "db", "severity": "critical"})
    assert pager.group_wait == 0.0  # its own
    assert pager.repeat_interval == 3600.0  # from the db route
    assert pager.group_interval == DEFAULT_GROUP_INTERVAL  # from the root's default
    assert pager.group_by == ("alertname", "instance")  # from the db route
    bare = build_route(RouteConfig.model_validate({"receiver": "r", "routes": [{"matchers": ['a="b"']}]}))
    assert bare.group_wait == DEFAULT_GROUP_WAIT and bare.routes[0].receiver == "r"


def test_group_labels_by_list_all_and_none() -> None:
    tree = tree_of()
    labels = {"alertname": "DiskFull", "team": "db", "instance": "db1", "severity": "info"}
    [db] = tree.match(labels)
    assert group_labels(db, labels) == {"alertname": "DiskFull", "instance": "db1"}
    # A group_by label the alert lacks is left out rather than grouped under "".
    assert group_labels(db, {"alertname": "DiskFull", "team": "db"}) == {"alertname": "DiskFull"}
    audit, frontend = tree.match({"team": "frontend", "severity": "warning", "x": "1"})
    assert group_labels(audit, {"team": "frontend", "severity": "warning", "x": "1"}) == {
        "team": "frontend",
        "severity": "warning",
        "x": "1",
    }
    assert group_labels(frontend, {"team": "frontend", "alertname": "A"}) == {}  # `group_by: []`: one group


def test_group_keys_are_alertmanager_shaped_and_stable() -> None:
    labels = {"alertname": "DiskFull", "team": "db", "instance": "db1", "severity": "critical"}
    [pager] = tree_of().match(labels)
    key = group_key(pager, labels)
    assert key == '{}/{team="db"}/{severity="critical"}:{alertname="DiskFull", instance="db1"}'
    # Same config parsed again (a reload), labels in another order, extra non-group labels:
    # the same group.
    [again] = tree_of().match(dict(reversed(labels.items())))
    assert group_key(again, {**labels, "pod": "p-7"}) == key
    # Matcher order in the YAML does not change the key either.
    one = build_route(RouteConfig.model_validate({"receiver": "r", "routes": [{"matchers": ['b="2"', 'a="1"']}]}))
    two = build_route(RouteConfig.model_validate({"receiver": "r", "routes": [{"matchers": ['a="1", b="2"']}]}))
    assert one.routes[0].key == two.routes[0].key == '{}/{a="1",b="2"}'


def test_sibling_routes_with_identical_matchers_have_distinct_ids() -> None:
    # The common fan-out: same matchers, `continue`, two receivers. Their Alertmanager keys
    # coincide, so group state must be kept per route id.
    config = {
        "receivers": [{"name": "a"}, {"name": "b"}],
        "route": {
            "receiver": "a",
            "routes": [
                {"matchers": ['severity="critical"'], "receiver": "a", "continue": True},
                {"matchers": ['severity="critical"'], "receiver": "b"},
            ],
        },
    }
    tree = RoutingTree.from_config(AlertingConfig.model_validate(config))
    assert tree is not None
    first, second = tree.match({"severity": "critical"})
    assert first.key == second.key
    assert first.id != second.id


def test_mute_and_active_time_intervals() -> None:
    config = {
        "receivers": [{"name": "default"}, {"name": "ops"}, {"name": "office"}],
        "time_intervals": [
            {"name": "sunday-maintenance", "time_intervals": [{"weekdays": ["sunday"], "times": [{"start_time": "02:00", "end_time": "04:00"}]}]},
            {"name": "office-hours", "time_intervals": [{"weekdays": ["monday:friday"], "times": [{"start_time": "09:00", "end_time": "17:00"}], "location": "Europe/Berlin"}]},
        ],
        "route": {
            "receiver": "default",
            "routes": [
                {"matchers": ['team="ops"'], "receiver": "ops", "mute_time_intervals": ["sunday-maintenance"],
                 "routes": [{"matchers": ['severity="info"']}]},
                {"matchers": ['team="office"'], "receiver": "office", "active_time_intervals": ["office-hours"]},
            ],
        },
    }  # fmt: skip
    tree = RoutingTree.from_config(AlertingConfig.model_validate(config))
    assert tree is not None
    [ops] = tree.match({"team": "ops"})
    assert tree.time_muter(ops).mutes({}, at(2026, 3, 1, 3, 0))  # Sunday 03:00 UTC
    assert not tree.time_muter(ops).mutes({}, at(2026, 3, 2, 3, 0))  # Monday
    # Alertmanager does not inherit mute intervals into child routes.
    [ops_info] = tree.match({"team": "ops", "severity": "info"})
    assert ops_info.receiver == "ops" and not tree.time_muter(ops_info).mutes({}, at(2026, 3, 1, 3, 0))
    [office] = tree.match({"team": "office"})
    assert not tree.time_muter(office).mutes({}, at(2026, 3, 4, 10, 0))  # Wednesday 11:00 Berlin
    assert tree.time_muter(office).mutes({}, at(2026, 3, 4, 20, 0))  # Wednesday 21:00 Berlin
    assert not tree.time_muter(tree.root).mutes({}, at(2026, 3, 1, 3, 0))


# --------------------------------------------------------------------------- config validation


def problems_of(config: dict[str, Any]) -> list[str]:
    """The cross-reference problems, as `path: message` (the loader maps paths to file:line)."""
    with pytest.raises(ValidationError) as caught:
        AlertingConfig.model_validate(config)
    error = caught.value.errors()[0]["ctx"]["error"]
    assert isinstance(error, AlertingConfigError)
    return [f"{'.'.join(map(str, loc))}: {message}" for loc, message in error.problems]


def test_undefined_receiver_is_reported_with_its_route() -> None:
    found = problems_of(
        {"receivers": [{"name": "default"}], "route": {"receiver": "default", "routes": [{"receiver": "pager"}]}}
    )
    assert found == ["route.routes.0.receiver: undefined receiver 'pager' (receivers: default)"]


def test_root_route_needs_a_receiver_and_no_matchers() -> None:
    found = problems_of({"receivers": [{"name": "a"}], "route": {"matchers": ['a="b"'], "continue": True}})
    assert any("root route needs a receiver" in p for p in found)
    assert any("root route must not have matchers" in p for p in found)
    assert any("cannot have continue" in p for p in found)
    legacy = problems_of({"receivers": [{"name": "a"}], "route": {"receiver": "a", "match": {"x": "y"}}})
    assert legacy == ["route.matchers: the root route must not have matchers: every alert enters there"]


def test_receiver_names_must_be_unique() -> None:
    found = problems_of({"receivers": [{"name": "a"}, {"name": "a"}], "route": {"receiver": "a"}})
    assert found == ["receivers.1.name: receiver name 'a' is not unique"]


def test_undefined_time_interval_is_reported() -> None:
    found = problems_of(
        {
            "receivers": [{"name": "a"}],
            "route": {"receiver": "a", "routes": [{"receiver": "a", "mute_time_intervals": ["nights"]}]},
        }
    )
    assert found == ["route.routes.0.mute_time_intervals.0: undefined time interval 'nights' (time_intervals: none defined)"]


def test_all_problems_are_reported_together() -> None:
    found = problems_of({"receivers": [{"name": "a"}], "route": {"receiver": "x", "routes": [{"receiver": "y"}]}})
    assert len(found) == 2


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"receiver": "a", "group_by": ["...", "alertname"]}, "must be the only entry"),
        ({"receiver": "a", "group_by": ["alertname", "alertname"]}, "duplicated label"),
        ({"receiver": "a", "group_by": ["bad-name"]}, "invalid label name"),
        ({"receiver": "a", "group_interval": "0s"}, "greater than zero"),
        ({"receiver": "a", "repeat_interval": "soon"}, "invalid duration"),
        ({"receiver": "a", "routes": [{"match_re": {"job": "(x"}}]}, "invalid regex"),
        ({"receiver": "a", "routes": [{"matchers": ['job=~"(x"']}]}, "invalid regex"),
        ({"receiver": "a", "routes": [{"matchers": ['job=~"a(?=b)"']}]}, "lookahead"),
        ({"receiver": "a", "routes": [{"match_re": {"job": "(x)\\1"}}]}, "backreferences"),
        ({"receiver": "a", "routes": [{"matchers": [f'job=~"{"a" * 1025}"']}]}, "over the limit of 1024"),
        ({"receiver": "a", "recevier": "b"}, "Extra inputs"),
    ],
)
def test_route_field_errors(route: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertingConfig.model_validate({"receivers": [{"name": "a"}], "route": route})


def config_with_regexes(tmp_path: Path, route_regex: str, inhibit_regex: str) -> Path:
    """monitor.yaml with ``route_regex`` in a route matcher (line 11) and ``inhibit_regex`` in
    an inhibit rule's ``source_match_re`` (line 14), as written in YAML single quotes."""
    path = write_config(tmp_path)
    path.write_text(path.read_text() + (
        "receivers:\n"
        "  - name: oncall\n"
        "route:\n"
        "  receiver: oncall\n"
        "  routes:\n"
        f"    - matchers: ['job=~\"{route_regex}\"']\n"  # line 11
        "      receiver: oncall\n"
        "inhibit_rules:\n"
        f"  - source_match_re: {{job: '{inhibit_regex}'}}\n"  # line 14
        "    target_matchers: ['alertname=\"B\"']\n"
    ))
    return path


def test_config_regexes_re2_refuses_are_reported_at_file_and_line(tmp_path: Path) -> None:
    path = config_with_regexes(tmp_path, "api(?=-prod)", "(x)\\1")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    found = [str(p) for p in caught.value.problems]
    assert found == [
        f"{path}:11: route.routes[0].matchers: invalid regex 'api(?=-prod)' in matcher job=~: lookahead (?=...)"
        " is not supported (RE2 syntax)",
        f"{path}:14: inhibit_rules[0]: invalid regex '(x)\\\\1' in matcher job=~: backreferences such as \\1"
        " are not supported (RE2 syntax)",
    ]


def test_config_regexes_the_old_guard_refused_now_load(tmp_path: Path) -> None:
    # `(a+)+$` and `(x*)*y` backtrack exponentially in Python's re; RE2 runs them in linear time.
    path = config_with_regexes(tmp_path, "(a+)+$", "(x*)*y")
    config = load_config(path)
    assert config.alerting.route is not None
    assert config.alerting.route.routes[0].matchers[0].matches({"job": "a" * 100_000})
    assert not config.alerting.inhibit_rules[0].sources[0].matches({"job": "x" * 100_000})


def test_alertmanager_options_we_do_not_support_load_with_warnings() -> None:
    config = AlertingConfig.model_validate(
        {
            "receivers": [
                {
                    "name": "team",
                    "opsgenie_configs": [{"api_key": "k"}],
                    "slack_configs": [{"api_url": "https://hooks.example.invalid/x", "color": "danger",
                                       "http_config": {"proxy_url": "http://p:3128", "oauth2": {"client_id": "c"}}}],
                    "webhook_configs": [{"url": "https://hook.example.invalid"}],
                }
            ],
            "route": {"receiver": "team"},
        }
    )  # fmt: skip
    found = {str(w) for w in config.warnings()}
    assert found == {
        "receivers[0].opsgenie_configs: receiver 'team': opsgenie_configs is not supported here and will not send",
        "receivers[0].slack_configs[0].color: receiver 'team': slack_configs option color has no effect here and is ignored",
        "receivers[0].slack_configs[0].http_config.oauth2: receiver 'team': slack_configs option http_config.oauth2 has no effect here and is ignored",
    }


@pytest.mark.parametrize(
    ("receiver", "message"),
    [
        ({"name": "r", "slack_configs": [{"api_url": "https://x.invalid", "chanel": "#ops"}]}, "Extra inputs"),
        ({"name": "r", "smoke_signal_configs": [{}]}, "Extra inputs"),
        ({"name": "r", "slack_configs": [{"channel": "#ops"}]}, "api_url"),
        ({"name": "r", "webhook_configs": [{"url": "ftp://x"}]}, "http:// or https://"),
        ({"name": "r", "pagerduty_configs": [{"routing_key": "k", "severity": "urgent"}]}, "severity must be one of"),
        ({"name": "r", "webhook_configs": [{"url": "https://x.invalid", "max_alerts": -1}]}, "greater than or equal"),
    ],
)
def test_receiver_errors(receiver: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertingConfig.model_validate({"receivers": [receiver]})


def test_secrets_do_not_show_in_reprs_or_errors() -> None:
    config = AlertingConfig.model_validate(
        {
            "receivers": [
                {"name": "r", "pagerduty_configs": [{"routing_key": "R0UTING-KEY"}],
                 "webhook_configs": [{"url": "https://h.invalid/T0KEN", "hmac_secret": "S3CRET"}]}
            ]
        }
    )  # fmt: skip
    text = repr(config)
    assert "R0UTING-KEY" not in text and "T0KEN" not in text and "S3CRET" not in text
    with pytest.raises(ValidationError) as caught:
        AlertingConfig.model_validate({"receivers": [{"name": "r", "slack_configs": [{"api_url": "htps://T0KEN"}]}]})
    assert "T0KEN" not in str(caught.value).split("input_value")[0]


# --------------------------------------------------------------------------- a real alertmanager.yml

ALERTMANAGER_YML = """
global:
  resolve_timeout: 5m
templates: ['/etc/alertmanager/templates/*.tmpl']
route:
  receiver: slack-default
  group_by: ['alertname', 'system']
  group_wait: 30s
  group_interval: 5m
  repeat_interval: 12h
  routes:
    - receiver: pagerduty-critical
      matchers:
        - severity = "critical"
      continue: true
      mute_time_intervals: [sunday-maintenance]
    - receiver: slack-db
      match:
        system: echo-ai
      match_re:
        check: 'jobs_.*|postgres_.*'
      routes:
        - receiver: webhook-audit
          matchers: ['alertname=~"Jobs.*"', 'env!="staging"']
    - receiver: slack-default
      matchers: [severity="warning"]
      active_time_intervals: [office-hours]
receivers:
  - name: slack-default
    slack_configs:
      - api_url: https://hooks.slack.invalid/services/T000/B000/XXXX
        channel: '#alerts'
        send_resolved: true
        username: alertmanager
        icon_emoji: ':fire:'
        title: '{{ template "slack.title" . }}'
        text: '{{ template "slack.text" . }}'
        http_config:
          proxy_url: http://proxy.invalid:3128
  - name: slack-db
    slack_configs:
      - api_url: https://hooks.slack.invalid/services/T000/B001/YYYY
        channel: '#db'
  - name: pagerduty-critical
    pagerduty_configs:
      - routing_key: 0123456789abcdef0123456789abcdef
        severity: '{{ if .CommonLabels.severity }}{{ .CommonLabels.severity | toLower }}{{ else }}critical{{ end }}'
        description: '{{ .CommonAnnotations.summary }}'
        details:
          runbook: '{{ .CommonAnnotations.runbook_url }}'
  - name: webhook-audit
    webhook_configs:
      - url: https://audit.invalid/alertmanager
        max_alerts: 20
        send_resolved: false
        timeout: 10s
inhibit_rules:
  - source_matchers: [severity="critical"]
    target_matchers: [severity=~"warning|info"]
    equal: [alertname, system]
  - source_match:
      alertname: DatabaseDown
    target_match_re:
      alertname: 'Jobs.*|ApiHealthFailing'
    equal: [system]
time_intervals:
  - name: sunday-maintenance
    time_intervals:
      - weekdays: [sunday]
        times:
          - start_time: '02:00'
            end_time: '04:00'
  - name: office-hours
    time_intervals:
      - weekdays: ['monday:friday']
        times: [{start_time: '09:00', end_time: '17:00'}]
        location: Europe/Berlin
"""


def test_an_existing_alertmanager_yml_loads_unchanged() -> None:
    document = yaml.safe_load(ALERTMANAGER_YML)
    config = AlertingConfig.from_document(document)
    assert [r.name for r in config.receivers] == ["slack-default", "slack-db", "pagerduty-critical", "webhook-audit"]
    pagerduty = config.receivers[2].pagerduty_configs[0]
    assert pagerduty.severity is None  # the templated severity means "from the alerts' labels"
    assert pagerduty.url == "https://events.pagerduty.com/v2/enqueue"
    webhook = config.receivers[3].webhook_configs[0]
    assert (webhook.max_alerts, webhook.send_resolved, webhook.timeout) == (20, False, 10.0)
    assert config.receivers[1].slack_configs[0].send_resolved is True  # our default (docs/notifications.md)
    assert {w.loc[-1] for w in config.warnings()} == {"username", "icon_emoji"}
    assert config.receivers[0].slack_configs[0].http_config.proxy_url == "http://proxy.invalid:3128"  # honoured
    # PagerDuty's description and details are templates rendered per notification (docs/notifications.md).
    assert pagerduty.description == "{{ .CommonAnnotations.summary }}"
    assert pagerduty.details == {"runbook": "{{ .CommonAnnotations.runbook_url }}"}

    rule = config.inhibit_rules[1]
    assert [str(m) for m in rule.sources] == ['alertname="DatabaseDown"']
    assert rule.targets[0].matches({"alertname": "JobsStuck"}) and not rule.targets[0].matches({"alertname": "XJobs"})

    tree = RoutingTree.from_config(config)
    assert tree is not None
    stuck = {"alertname": "JobsStuck", "system": "echo-ai", "check": "jobs_stuck", "severity": "critical", "env": "prod"}
    routes = tree.match(stuck)
    assert [r.receiver for r in routes] == ["pagerduty-critical", "webhook-audit"]
    assert routes[1].repeat_interval == 12 * 3600.0 and routes[1].group_by == ("alertname", "system")
    assert group_key(routes[0], stuck) == '{}/{severity="critical"}:{alertname="JobsStuck", system="echo-ai"}'
    assert tree.time_muter(routes[0]).mutes({}, at(2026, 3, 1, 2, 30))
    assert not tree.time_muter(routes[1]).mutes({}, at(2026, 3, 1, 2, 30))
    assert [r.receiver for r in tree.match({**stuck, "env": "staging", "severity": "warning"})] == ["slack-db"]
    assert [r.receiver for r in tree.match({"alertname": "Other"})] == ["slack-default"]
