"""The Alertmanager-format sections of ``monitor.yaml``: ``receivers``, ``route``,
``inhibit_rules`` and ``time_intervals`` (``docs/configuration.md``).

The promise is that these sections of a user's existing ``alertmanager.yml`` load unchanged.
So options Alertmanager documents but we do not act on (``opsgenie_configs``, Slack's
``color``...) are accepted, dropped and reported by :meth:`AlertingConfig.warnings`
- refusing them would break that promise, and silently ignoring them would hide that, say,
an email receiver will never send. Keys Alertmanager does not know either are still errors,
as everywhere else in our config: they are typos. Each integration's options, and the ones
it ignores, are declared in its module under ``monitor.alerting.receivers``.

Cross-references (receivers named by routes, time intervals named by routes, unique names,
a root route with a receiver and no matchers) are checked once the whole section is read,
and every integration is completed from Alertmanager's ``global:`` fields (SMTP server,
Slack URL, ``http_config``...); all problems are reported together in one
:class:`AlertingConfigError`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

from pydantic import BeforeValidator, Field, PrivateAttr, create_model, field_validator, model_validator

from monitor.alerting.matchers import Matcher, Matchers, from_legacy
from monitor.alerting.receivers import RECEIVERS
from monitor.alerting.receivers.defaults import ReceiverDefaults
from monitor.alerting.receivers.options import Lenient
from monitor.alerting.templating import TemplateSet, TemplateSyntaxError
from monitor.alerting.time_intervals import TimeInterval
from monitor.core.durations import Duration
from monitor.core.labels import is_label_name
from monitor.core.model import Model

Loc = tuple[str | int, ...]


@dataclass(frozen=True)
class ConfigWarning:
    """An accepted-but-ignored option; ``loc`` is its path in the YAML, for ``file:line``."""

    loc: Loc
    message: str

    def __str__(self) -> str:
        return f"{format_loc(self.loc)}: {self.message}"


def format_loc(loc: Loc) -> str:
    """``route.routes[1].receiver`` from ``("route", "routes", 1, "receiver")``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out or "(top level)"


class AlertingConfigError(ValueError):
    """Every cross-reference problem at once, each with its YAML path (``problems``) so the
    loader can point at ``file:line``; the text alone is already a complete message."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{format_loc(loc)}: {message}" for loc, message in problems))


def _stringify(value: Any) -> Any:
    # `match: {code: 500}` is a label value "500" in Alertmanager (Go reads it into a string map).
    if isinstance(value, Mapping):
        return {key: _scalar_text(item) for key, item in value.items()}
    return value


def _scalar_text(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"  # YAML's spelling, which is what the author typed
    if isinstance(value, (int, float)):
        return str(value)
    return value


LabelMap = Annotated[dict[str, str], BeforeValidator(_stringify)]


# Alertmanager integrations we do not deliver to: accepted so the file loads, reported.
UNSUPPORTED_INTEGRATIONS = frozenset({
    "discord_configs", "jira_configs", "msteams_configs", "msteamsv2_configs",
    "opsgenie_configs", "pushover_configs", "rocketchat_configs",
    "telegram_configs", "victorops_configs", "webex_configs", "wechat_configs",
})  # fmt: skip


class ReceiverBase(Lenient):
    """What every ``receivers:`` entry has; :data:`ReceiverConfig` adds one list per
    integration kind in ``RECEIVERS``."""

    ignored_options: ClassVar[frozenset[str]] = UNSUPPORTED_INTEGRATIONS

    name: str = Field(min_length=1)

    def integrations(self) -> Iterator[tuple[str, int, Lenient]]:
        """``(kind, index, config)`` for every integration, e.g. ``("slack_configs", 0, ...)``."""
        for kind in RECEIVERS:
            configs: list[Lenient] = getattr(self, kind)
            for index, config in enumerate(configs):
                yield kind, index, config


# Built from the table, so a new integration needs no edit here. mypy cannot see fields made
# at run time, so to it every receiver is the typed base (name, integrations()).
if TYPE_CHECKING:
    ReceiverConfig = ReceiverBase
else:
    ReceiverConfig = create_model(
        "ReceiverConfig",
        __base__=ReceiverBase,
        **{key: (list[kind.model], Field(default_factory=list)) for key, kind in RECEIVERS.items()},
    )


def _label_names(names: list[str], field: str) -> list[str]:
    seen: set[str] = set()
    for name in names:
        if not is_label_name(name):
            raise ValueError(f"{field}: invalid label name {name!r}")
        if name in seen:
            raise ValueError(f"{field}: duplicated label {name!r}")
        seen.add(name)
    return names


class RouteConfig(Model):
    """One node of the routing tree, as written. Unset (None) options are inherited from the
    parent when the tree is built (see ``monitor.alerting.routing``)."""

    receiver: str | None = None
    group_by: list[str] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None
    matchers: Matchers = Field(default_factory=list)
    match: LabelMap = Field(default_factory=dict)  # deprecated in Alertmanager, still common
    match_re: LabelMap = Field(default_factory=dict)
    continue_: bool = Field(default=False, alias="continue")
    routes: list[RouteConfig] = Field(default_factory=list)
    mute_time_intervals: list[str] = Field(default_factory=list)
    active_time_intervals: list[str] = Field(default_factory=list)

    @field_validator("group_by")
    @classmethod
    def _group_by(cls, names: list[str] | None) -> list[str] | None:
        if names is None:
            return None
        if "..." in names:
            if len(names) != 1:
                raise ValueError("group_by: '...' (group by all labels) must be the only entry")
            return names
        return _label_names(names, "group_by")

    @field_validator("group_interval", "repeat_interval")
    @classmethod
    def _not_zero(cls, seconds: float | None) -> float | None:
        # Zero would resend a group in a tight loop; Alertmanager refuses it for the same reason.
        if seconds is not None and seconds <= 0:
            raise ValueError("must be greater than zero")
        return seconds

    @field_validator("match_re")
    @classmethod
    def _regexes(cls, patterns: dict[str, str]) -> dict[str, str]:
        from_legacy(match_re=patterns)  # raises ValueError naming a bad regex
        return patterns

    @field_validator("match")
    @classmethod
    def _names(cls, values: dict[str, str]) -> dict[str, str]:
        from_legacy(match=values)
        return values

    def all_matchers(self) -> list[Matcher]:
        """``matchers`` plus the legacy ``match`` / ``match_re`` maps as matchers."""
        return [*self.matchers, *from_legacy(self.match, self.match_re)]


class InhibitRuleConfig(Model):
    """Mute alerts matching the target while an alert matching the source fires, when both
    carry the same values for the ``equal`` labels."""

    source_matchers: Matchers = Field(default_factory=list)
    target_matchers: Matchers = Field(default_factory=list)
    equal: list[str] = Field(default_factory=list)
    source_match: LabelMap = Field(default_factory=dict)
    source_match_re: LabelMap = Field(default_factory=dict)
    target_match: LabelMap = Field(default_factory=dict)
    target_match_re: LabelMap = Field(default_factory=dict)

    @field_validator("equal")
    @classmethod
    def _equal(cls, names: list[str]) -> list[str]:
        return _label_names(names, "equal")

    @model_validator(mode="after")
    def _legacy(self) -> InhibitRuleConfig:
        from_legacy(self.source_match, self.source_match_re)  # raises on a bad regex or name
        from_legacy(self.target_match, self.target_match_re)
        return self

    @property
    def sources(self) -> list[Matcher]:
        return [*self.source_matchers, *from_legacy(self.source_match, self.source_match_re)]

    @property
    def targets(self) -> list[Matcher]:
        return [*self.target_matchers, *from_legacy(self.target_match, self.target_match_re)]


class AlertingConfig(Model):
    """The four Alertmanager sections and the Alertmanager fields of ``global:``, validated
    together."""

    global_: ReceiverDefaults = Field(default_factory=ReceiverDefaults, alias="global")
    receivers: list[ReceiverConfig] = Field(default_factory=list)
    # None: no routing tree; alerts show in the API and status page but notify nobody.
    route: RouteConfig | None = None
    inhibit_rules: list[InhibitRuleConfig] = Field(default_factory=list)
    time_intervals: list[TimeInterval] = Field(default_factory=list)
    # Alertmanager's older name for time_intervals (deprecated there, still loaded): the same
    # named intervals, usable by mute_time_intervals and active_time_intervals alike.
    mute_time_intervals: list[TimeInterval] = Field(default_factory=list)

    SECTIONS: ClassVar[tuple[str, ...]] = ("receivers", "route", "inhibit_rules", "time_intervals",
                                           "mute_time_intervals")
    _templates: TemplateSet | None = PrivateAttr(default=None)

    @property
    def templates(self) -> TemplateSet:
        """The default templates plus the ``templates:`` files (``use_templates``)."""
        return self._templates or TemplateSet.defaults()

    def use_templates(self, templates: TemplateSet) -> list[tuple[Loc, str]]:
        """Render receivers' templated fields with these templates; returns the fields whose
        template does not parse or calls a template that is not defined, with their paths."""
        self._templates = templates
        problems: list[tuple[Loc, str]] = []
        for r_index, receiver in enumerate(self.receivers):
            for kind, index, config in receiver.integrations():
                for name in config.templated_fields:
                    value = getattr(config, name)
                    texts = value.items() if isinstance(value, Mapping) else [(None, value)]
                    for key, text in texts:
                        if not isinstance(text, str) or "{{" not in text:
                            continue
                        loc: Loc = ("receivers", r_index, kind, index, name, *(() if key is None else (key,)))
                        try:
                            templates.compile(text)
                        except TemplateSyntaxError as err:
                            where = f" (line {err.line} of the template)" if "\n" in text.strip() else ""
                            problems.append((loc, f"{format_loc(loc)}: template: {err.message}{where}"))
        return problems

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> AlertingConfig:
        """The four sections of a parsed ``monitor.yaml`` or ``alertmanager.yml`` and the
        Alertmanager fields of its ``global:``; other keys (the daemon's own ``global:``
        fields, ``templates``, ``check_files``...) belong to someone else."""
        data = {key: document[key] for key in cls.SECTIONS if document.get(key) is not None}
        settings = document.get("global")
        if isinstance(settings, Mapping):
            data["global"] = {k: v for k, v in settings.items() if k in ReceiverDefaults.model_fields}
        return cls.model_validate(data)

    @model_validator(mode="wrap")
    @classmethod
    def _inherit_globals(cls, data: Any, handler: Any) -> AlertingConfig:
        """Every integration completed from ``global:`` (Alertmanager fills in the same
        fields the same way); an integration left without something it needs is an error."""
        config: AlertingConfig = handler(data)
        problems: list[tuple[Loc, str]] = []
        receivers: list[ReceiverBase] = []
        for r_index, receiver in enumerate(config.receivers):
            lists: dict[str, list[Lenient]] = {}
            for kind, index, entry in receiver.integrations():
                try:
                    entry = entry.with_defaults(config.global_)
                except ValueError as err:
                    problems.append((("receivers", r_index, kind, index), str(err)))
                lists.setdefault(kind, []).append(entry)
            receivers.append(receiver.model_copy(update=lists))
        if problems:
            raise AlertingConfigError(problems)
        return config.model_copy(update={"receivers": receivers})

    @model_validator(mode="after")
    def _cross_check(self) -> AlertingConfig:
        problems: list[tuple[Loc, str]] = []
        receivers = _unique([r.name for r in self.receivers], "receivers", "receiver", problems)
        intervals = _unique([t.name for t in self.time_intervals], "time_intervals", "time interval", problems)
        for index, interval in enumerate(self.mute_time_intervals):
            if interval.name in intervals:
                problems.append((("mute_time_intervals", index, "name"),
                                 f"time interval name {interval.name!r} is not unique"))
            intervals.add(interval.name)
        if self.route is not None:
            problems += _root_problems(self.route)
            for loc, node in _walk(self.route, ("route",)):
                if node.receiver and node.receiver not in receivers:
                    message = f"undefined receiver {node.receiver!r} (receivers: {_names(receivers)})"
                    problems.append(((*loc, "receiver"), message))
                for field in ("mute_time_intervals", "active_time_intervals"):
                    for index, name in enumerate(getattr(node, field)):
                        if name not in intervals:
                            message = f"undefined time interval {name!r} (time_intervals: {_names(intervals)})"
                            problems.append(((*loc, field, index), message))
        if problems:
            raise AlertingConfigError(problems)
        return self

    def warnings(self) -> list[ConfigWarning]:
        """Every Alertmanager option that loaded but will have no effect here."""
        out: list[ConfigWarning] = []
        for name, integration in self.global_.unsupported_set():
            message = f"global.{name}: {integration} is not supported here; nothing uses this setting"
            out.append(ConfigWarning(("global", name), message))
        for name in ("http_config", "smtp_tls_config"):
            block: Lenient | None = getattr(self.global_, name)
            for key in block.ignored_paths() if block is not None else []:
                message = f"global.{name} option {key} is not supported and is ignored"
                out.append(ConfigWarning(("global", name, *key.split(".")), message))
        for r_index, receiver in enumerate(self.receivers):
            who = f"receiver {receiver.name!r}"
            for key in receiver.ignored:
                message = f"{who}: {key} is not supported here and will not send"
                out.append(ConfigWarning(("receivers", r_index, key), message))
            for kind, index, config in receiver.integrations():
                inherited = getattr(config, "http_config", None) is self.global_.http_config
                for key in config.ignored_paths():
                    if inherited and key.startswith("http_config."):
                        continue  # reported once, at global.http_config
                    message = f"{who}: {kind} option {key} has no effect here and is ignored"
                    out.append(ConfigWarning(("receivers", r_index, kind, index, *key.split(".")), message))
        return out


def _unique(names: list[str], section: str, what: str, problems: list[tuple[Loc, str]]) -> set[str]:
    seen: set[str] = set()
    for index, name in enumerate(names):
        if name in seen:
            problems.append(((section, index, "name"), f"{what} name {name!r} is not unique"))
        seen.add(name)
    return seen


def _root_problems(root: RouteConfig) -> list[tuple[Loc, str]]:
    # Every alert enters at the root and falls back to it, so it must match everything and
    # always name someone; Alertmanager refuses the same configs.
    checks: list[tuple[bool, str, str]] = [
        (not root.receiver, "receiver", "the root route needs a receiver: alerts no sub-route matches go there"),
        (bool(root.all_matchers()), "matchers", "the root route must not have matchers: every alert enters there"),
        (root.continue_, "continue", "the root route cannot have continue"),
        (bool(root.mute_time_intervals), "mute_time_intervals", "the root route cannot have mute_time_intervals"),
        (bool(root.active_time_intervals), "active_time_intervals", "the root route cannot have active_time_intervals"),
    ]
    return [(("route", field), message) for failed, field, message in checks if failed]


def _names(names: set[str]) -> str:
    return ", ".join(sorted(names)) or "none defined"


def _walk(route: RouteConfig, loc: Loc) -> Iterator[tuple[Loc, RouteConfig]]:
    yield loc, route
    for index, child in enumerate(route.routes):
        yield from _walk(child, (*loc, "routes", index))
