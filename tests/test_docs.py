"""The reference in docs/ is checked against the code, so nothing the code accepts or exports
goes undocumented.

- docs/configuration.md: every field of every check kind (``monitor.probes.PROBES``), of the
  common check fields, of ``global:``, of rules, of the Alertmanager-format sections and of
  every receiver integration (``ReceiverConfig``'s ``*_configs`` lists), each in its own
  section; the ``MONITOR_*`` overrides; the names a rule expression can use; and every
  Alertmanager option that is accepted but ignored.
- docs/metrics.md: every metric family a configured daemon's ``/metrics`` renders.
- docs/http-api.md: every route the HTTP server registers.

A field counts as documented when a table row in its section starts with its name in
backticks (its alias, if it has one): ``| `max_body` | ...``; fields of nested models are
written dotted (``| `expect.status` |``), functions may show their arguments
(``| `rate(f, w)` |``). Metrics and endpoints likewise need a row in their page. The
accepted-but-ignored Alertmanager options need only be named, in backticks, in their
section. A section runs from its heading to the next heading of the same or a higher level
(headings inside fenced code blocks are ignored).
"""

from __future__ import annotations

import re
import types
import typing
from collections.abc import Iterator
from pathlib import Path

import pytest
from pydantic import BaseModel

from monitor.alerting.config import (
    InhibitRuleConfig,
    ReceiverConfig,
    RouteConfig,
)
from monitor.alerting.receivers.http_options import Authorization, BasicAuth, HttpConfig, TLSOptions
from monitor.alerting.time_intervals import TimeInterval, TimeIntervalSpec, TimeRange
from monitor.config.loader import load_config
from monitor.config.main import EnvSettings, GlobalConfig, MainConfig
from monitor.probes import PROBES, CheckBase
from monitor.rules.functions import SLO_FUNCTIONS, WINDOW_FUNCTIONS
from monitor.rules.model import RULE_VARIABLES, Rule, RuleFile, RuleGroup

DOCS = Path(__file__).resolve().parent.parent / "docs"
CONFIGURATION = "configuration.md"
METRICS = "metrics.md"
HTTP_API = "http-api.md"

COMMON_SECTION = "### Common fields"
GLOBAL_SECTION = "### `global`"
TOP_LEVEL_SECTION = "### Top-level keys"
ENVIRONMENT_SECTION = "### `MONITOR_*` environment variables"
RULE_FILES_SECTION = "### Rule files"
RULE_SECTION = "### Rule fields"
EXPR_SECTION = "### Inside `expr`"
RECEIVERS_SECTION = "### `receivers`"
IGNORED_SECTION = "### Accepted but ignored Alertmanager options"
ROUTE_SECTION = "### `route`"
INHIBIT_SECTION = "### `inhibit_rules`"
TIME_INTERVALS_SECTION = "### `time_intervals`"
HTTP_CONFIG_SECTION = "### `http_config`"
# Models documented once in a section of their own, wherever they are used: a field of one
# of these types needs a row where it is used, its inner fields only in that section.
OWN_SECTION: dict[type[BaseModel], str] = {HttpConfig: HTTP_CONFIG_SECTION, TLSOptions: HTTP_CONFIG_SECTION}


# ---- reading the docs ----------------------------------------------------------------------------

_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*$")


def _page(name: str) -> str:
    path = DOCS / name
    assert path.exists(), f"docs/{name} is missing"
    return path.read_text(encoding="utf-8")


def sections(name: str) -> dict[str, str]:
    """Heading line (e.g. "### `http`") -> the text under it, down to the next heading of the
    same or a higher level; subsections belong to their parent."""
    lines = _page(name).splitlines()
    headings: list[tuple[int, int, str]] = []  # (line index, level, heading as written)
    fenced = False
    for index, line in enumerate(lines):
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        found = None if fenced else _HEADING.match(line)
        if found:
            headings.append((index, len(found.group(1)), f"{found.group(1)} {found.group(2)}"))
    out: dict[str, str] = {}
    for position, (index, level, heading) in enumerate(headings):
        end = next((i for i, lvl, _ in headings[position + 1:] if lvl <= level), len(lines))
        assert heading not in out, f"docs/{name}: heading {heading!r} appears twice"
        out[heading] = "\n".join(lines[index + 1:end])
    return out


def section(name: str, heading: str) -> str:
    found = sections(name).get(heading)
    assert found is not None, f"docs/{name}: section {heading!r} is missing"
    return found


def has_row(text: str, name: str) -> bool:
    """Whether a table row in text starts with `name` (or, for a function, `name(...)`)."""
    return re.search(rf"^\|\s*`{re.escape(name)}(`|\()", text, re.MULTILINE) is not None


def undocumented(text: str, names: list[tuple[str, str]], rows: bool = True) -> list[str]:
    """Each (name, where it comes from) that has no table row in text (``rows``), or that
    does not appear in it in backticks at all (not ``rows``)."""
    if rows:
        return [f"`{name}` ({origin})" for name, origin in names if not has_row(text, name)]
    return [f"`{name}` ({origin})" for name, origin in names if f"`{name}`" not in text]


def assert_documented(page: str, heading: str, names: list[tuple[str, str]], rows: bool = True) -> None:
    missing = undocumented(section(page, heading), names, rows)
    what = "has no table row for" if rows else "does not mention"
    assert not missing, f"docs/{page}, section {heading!r} {what}: {', '.join(missing)}"


# ---- reading the models --------------------------------------------------------------------------

def _models_in(annotation: object) -> list[type[BaseModel]]:
    """The pydantic model an annotation holds directly (``M`` or ``M | None``), if any.
    Lists of models are not unwrapped: they are sections of their own (routes, receivers)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return [m for arg in typing.get_args(annotation) for m in _models_in(arg)]
    return []


def field_names(model: type[BaseModel], exclude: frozenset[str] = frozenset(),
                prefix: str = "", nested: bool = True) -> Iterator[tuple[str, str]]:
    """(documented name, model name) for every field: its alias when it has one, and (with
    ``nested``) the fields of a nested model dotted under it (``expect.status``)."""
    for name, info in model.model_fields.items():
        if name in exclude:
            continue
        spelled = f"{prefix}{info.alias or name}"
        yield spelled, model.__name__
        for inner in _models_in(info.annotation) if nested else []:
            if inner in OWN_SECTION:
                continue
            yield from field_names(inner, prefix=f"{spelled}.")


def integration_models() -> list[tuple[str, type[BaseModel]]]:
    """(``slack_configs``, SlackConfig), ...: every list-typed ``*_configs`` field of a receiver."""
    out = []
    for key, info in ReceiverConfig.model_fields.items():
        if not key.endswith("_configs") or typing.get_origin(info.annotation) is not list:
            continue
        (item,) = typing.get_args(info.annotation)
        assert isinstance(item, type) and issubclass(item, BaseModel), f"{key}: list item is not a model"
        out.append((key, item))
    return out


COMMON = frozenset(CheckBase.model_fields)


# ---- docs/configuration.md -----------------------------------------------------------------------

def test_common_check_fields() -> None:
    assert_documented(CONFIGURATION, COMMON_SECTION, list(field_names(CheckBase)))


@pytest.mark.parametrize("kind", sorted(PROBES))
def test_every_field_of_every_kind(kind: str) -> None:
    model = PROBES[kind][0]
    heading = f"### `{kind}`"
    names = list(field_names(model, exclude=COMMON))
    assert_documented(CONFIGURATION, heading, names)
    # Every kind says what its result means.
    assert_documented(CONFIGURATION, heading, [(word, "result") for word in ("up", "value", "detail")], rows=False)


@pytest.mark.parametrize("key", [key for key, _ in integration_models()])
def test_every_field_of_every_receiver_integration(key: str) -> None:
    model = dict(integration_models())[key]
    assert_documented(CONFIGURATION, f"### `{key}`", list(field_names(model)))


def test_integrations_are_found() -> None:
    # Guards the test itself: if ReceiverConfig's shape changed, the loop above would be empty.
    assert {"slack_configs", "pagerduty_configs", "webhook_configs"} <= {k for k, _ in integration_models()}


def test_receivers_section() -> None:
    assert_documented(CONFIGURATION, RECEIVERS_SECTION, list(field_names(ReceiverConfig)))


def test_accepted_but_ignored_options() -> None:
    names = [(key, "ReceiverConfig.ignored_options") for key in sorted(ReceiverConfig.ignored_options)]
    for key, model in integration_models():
        ignored = getattr(model, "ignored_options", frozenset())
        names += [(option, f"{key}") for option in sorted(ignored)]
    assert_documented(CONFIGURATION, IGNORED_SECTION, names, rows=False)


def test_http_config_fields() -> None:
    names = list(field_names(HttpConfig)) + [(f"tls_config.{n}", o) for n, o in field_names(TLSOptions)]
    assert_documented(CONFIGURATION, HTTP_CONFIG_SECTION, names)
    models = (HttpConfig, TLSOptions, BasicAuth, Authorization)
    ignored = [(key, model.__name__) for model in models for key in sorted(model.ignored_options)]
    assert_documented(CONFIGURATION, IGNORED_SECTION, ignored, rows=False)


def test_global_fields() -> None:
    assert_documented(CONFIGURATION, GLOBAL_SECTION, list(field_names(GlobalConfig)))


def test_top_level_keys() -> None:
    # `global:` has a section of its own (test_global_fields).
    assert_documented(CONFIGURATION, TOP_LEVEL_SECTION, list(field_names(MainConfig, nested=False)))


def test_environment_overrides() -> None:
    names = [(f"MONITOR_{name.upper()}", "EnvSettings") for name in EnvSettings.model_fields]
    assert_documented(CONFIGURATION, ENVIRONMENT_SECTION, names)


def test_rule_fields() -> None:
    assert_documented(CONFIGURATION, RULE_SECTION, list(field_names(Rule)))


def test_rule_file_fields() -> None:
    names = list(field_names(RuleFile)) + list(field_names(RuleGroup))
    assert_documented(CONFIGURATION, RULE_FILES_SECTION, names)


def test_expression_names() -> None:
    names = [(n, "RULE_VARIABLES") for n in RULE_VARIABLES]
    names += [(n, "WINDOW_FUNCTIONS") for n in WINDOW_FUNCTIONS]
    names += [(n, "SLO_FUNCTIONS") for n in SLO_FUNCTIONS]
    assert_documented(CONFIGURATION, EXPR_SECTION, names)


def test_alertmanager_sections() -> None:
    assert_documented(CONFIGURATION, ROUTE_SECTION, list(field_names(RouteConfig)))
    assert_documented(CONFIGURATION, INHIBIT_SECTION, list(field_names(InhibitRuleConfig)))
    interval_fields = [*field_names(TimeInterval), *field_names(TimeIntervalSpec), *field_names(TimeRange)]
    assert_documented(CONFIGURATION, TIME_INTERVALS_SECTION, interval_fields)


# ---- docs/metrics.md -----------------------------------------------------------------------------

CHECKS = """checks:
  - name: disk_root
    kind: disk
    interval: 30s
    labels: {service: host}
    slo: {objective: 99.9, window: 30d}
"""
RULES = """groups:
  - name: host
    rules:
      - alert: DiskFull
        check: disk_root
        expr: value > 90.0
"""
MAIN = """global:
  listen: 127.0.0.1:9464
  state: sqlite:///{state}
check_files: [checks.yaml]
rule_files: [rules.yaml]
receivers:
  - name: hook
    webhook_configs: [{{url: 'http://127.0.0.1:9/hook'}}]
route: {{receiver: hook}}
"""


def exported_metric_names(tmp_path: Path) -> set[str]:
    """The metric families on a configured daemon's /metrics (text format, as Prometheus scrapes)."""
    from monitor.core.results import Result
    from monitor.daemon import Daemon

    (tmp_path / "checks.yaml").write_text(CHECKS)
    (tmp_path / "rules.yaml").write_text(RULES)
    (tmp_path / "monitor.yaml").write_text(MAIN.format(state=tmp_path / "state.db"))
    config = load_config(tmp_path / "monitor.yaml", environ={})
    daemon = Daemon(config)
    daemon.statuses.configure(config.checks)
    daemon.slos.configure(config.checks)
    daemon.engine.configure(config.checks, config.rules)
    result = Result(up=True, value=95.0, latency=0.01, at=daemon.now())
    daemon.statuses.record("disk_root", result)
    daemon.slos.record("disk_root", result)
    daemon.engine.evaluate("disk_root", result)
    body, _ = daemon.render_metrics("")
    return set(re.findall(r"^# TYPE (\S+) \S+$", body.decode(), re.MULTILINE))


def test_every_exported_metric_is_documented(tmp_path: Path) -> None:
    names = exported_metric_names(tmp_path)
    assert len(names) >= 10, f"too few metric families rendered to be a real /metrics: {sorted(names)}"
    text = _page(METRICS)
    missing = sorted(name for name in names if not has_row(text, name))
    assert not missing, f"docs/{METRICS} has no table row for these metrics: {', '.join(missing)}"


# ---- docs/http-api.md ----------------------------------------------------------------------------

def test_every_endpoint_is_documented() -> None:
    from monitor.http.server import build_app

    app = build_app(typing.cast(typing.Any, object()))  # routes only; no handler runs
    endpoints = sorted({
        f"{route.method} {route.resource.canonical}"
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    })
    assert endpoints, "no routes found"
    text = _page(HTTP_API)
    missing = [e for e in endpoints if not has_row(text, e)]
    assert not missing, f"docs/{HTTP_API} has no table row for these endpoints: {', '.join(missing)}"
