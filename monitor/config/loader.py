"""Load the main file, its check files and rule files into one validated Config.

Every problem in every file is collected before giving up, so one `monitor validate`
run shows all of them, each as ``file:line: message``.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import structlog
from pydantic import BaseModel, TypeAdapter, ValidationError

from monitor.alerting.config import AlertingConfig, AlertingConfigError
from monitor.alerting.templating import TemplateLoadError, TemplateSet
from monitor.config.errors import ConfigError
from monitor.config.main import EnvSettings, GlobalConfig, MainConfig
from monitor.config.secret_values import secrets_in
from monitor.config.yaml_source import SourceMap, load_yaml
from monitor.core import secrets
from monitor.core.problems import Problem
from monitor.core.results import one_line
from monitor.core.secrets import MIN_SECRET_LENGTH, credential_name, mask_url_queries, redact
from monitor.probes import PROBES, CheckBase, CheckConfig
from monitor.rules.model import LoadedRule, Location, RuleFile

log = structlog.get_logger("monitor.config")
_CHECKS: TypeAdapter[list[CheckBase]] = TypeAdapter(list[CheckConfig])
_CHECK_MODELS = tuple(model for model, _ in PROBES.values())
# Fields whose value may be (or contain) a credential: a problem with one never quotes it.
_SENSITIVE_FIELDS = frozenset({"url", "api_url", "dsn", "state", "external_url", "headers", "body"})
M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True)
class Config:
    path: Path
    main: MainConfig
    checks: list[CheckBase]
    rules: list[LoadedRule]
    check_locations: dict[str, Location] = field(default_factory=dict)
    alerting: AlertingConfig = field(default_factory=AlertingConfig)
    # Accepted options that will have no effect (Alertmanager features we lack), as
    # `file:line` problems; logged at load, printed and failed on by `validate --strict`.
    warnings: list[Problem] = field(default_factory=list)

    @property
    def settings(self) -> GlobalConfig:
        return self.main.global_

    def check(self, name: str) -> CheckBase | None:
        return next((c for c in self.checks if c.name == name), None)

    def rules_for(self, check: CheckBase) -> list[LoadedRule]:
        return [r for r in self.rules if r.rule.selects(check.name, check.labels)]


def load_config(path: str | Path, environ: Mapping[str, str] | None = None, *, log_warnings: bool = True) -> Config:
    """Load and validate everything; raises ConfigError listing every problem found.

    The secret values found on the way are registered for redaction (monitor.core.secrets),
    even when loading fails: the problems are shown, and must not show what they are about.
    """
    try:
        config = _load_config(Path(path), os.environ if environ is None else environ)
    except ConfigError as err:
        raise ConfigError([Problem(p.file, p.line, secrets.scrub(p.message)) for p in err.problems]) from None
    secrets.register(secrets_in([config.main, config.alerting, config.checks]))
    if log_warnings:
        for warning in config.warnings:
            log.warning("config_option_ignored", where=f"{warning.file}:{warning.line}",
                        detail=secrets.scrub(warning.message))
    return config


def _load_config(path: Path, env: Mapping[str, str]) -> Config:
    # Unset variables of every file are collected, the files go on loading, and all of them
    # are reported together: setting one and running again must not reveal eight more. A
    # file with unset variables is not validated further (its unexpanded values would only
    # add noise), the others are.
    missing: list[Problem] = []
    data, source = load_yaml(path, env, missing=missing)
    secrets.register(secrets_in(data, (MainConfig, AlertingConfig)))
    if not isinstance(data, dict):
        raise ConfigError([Problem(source.file, 1, "the main file must be a mapping (global:, check_files:, ...)")])
    if missing:
        _report_missing(path, data, source, env, missing)
    main = _validate(MainConfig, data, source, None)
    alerting, warnings = _load_alerting(data, source)
    if main.tracing is not None:
        warnings.append(source.problem(data, ("tracing",), "tracing is not supported here; no traces are exported"))
    main = _apply_environment(main)
    base = path.parent
    problems: list[Problem] = []
    checks: list[CheckBase] = []
    locations: dict[str, Location] = {}
    context = {"default_interval": main.global_.default_interval, "default_timeout": main.global_.default_timeout}

    for file in _expand(main.check_files, base, source, data, "check_files", problems):
        try:
            for check, where in _load_checks(file, env, context, missing):
                if check.name in locations:
                    problems.append(Problem(where.file, where.line, f"duplicate check name {check.name!r} (first defined at {locations[check.name]})"))
                    continue
                locations[check.name] = where
                checks.append(check)
        except ConfigError as err:
            problems.extend(err.problems)

    problems.extend(_load_templates(main.templates, base, source, data, alerting))

    rules: list[LoadedRule] = []
    for file in _expand(main.rule_files, base, source, data, "rule_files", problems):
        try:
            rules.extend(_load_rules(file, env, missing))
        except ConfigError as err:
            problems.extend(err.problems)
    if not problems and not missing:  # with a broken check file, "no such check" would only be noise
        problems.extend(_unmatched_rules(rules, checks))
    if problems or missing:
        raise ConfigError(missing + problems)
    return Config(path=path, main=main, checks=checks, rules=rules, check_locations=locations, alerting=alerting,
                  warnings=sorted(warnings))


class _Unset(dict[str, str]):
    """An environment in which every variable is set (to ""), so reading one value of a
    main file does not need the secrets the rest of it names."""

    def get(self, key: str, default: object = None) -> str:
        return super().get(key, "")


def listen_address(path: str | Path, environ: Mapping[str, str] | None = None) -> str | None:
    """The ``global.listen`` a daemon started on ``path`` would use from its file (before
    ``MONITOR_LISTEN``), read without loading or validating the rest: how the CLI finds its
    daemon. None when the file cannot be read or does not say; a ``${VAR:-default}`` in it
    expands as the daemon expands it."""
    try:
        data, _ = load_yaml(Path(path), _Unset(os.environ if environ is None else environ))
    except ConfigError:
        return None
    settings = data.get("global") if isinstance(data, dict) else None
    listen = settings.get("listen") if isinstance(settings, dict) else None
    if not isinstance(listen, str):
        return None
    try:
        GlobalConfig.model_validate({"listen": listen})
    except ValidationError:
        return None
    return listen


def _report_missing(path: Path, data: dict[str, Any], source: SourceMap, env: Mapping[str, str],
                    missing: list[Problem]) -> NoReturn:
    """The main file names unset variables: report them with those of every check and rule
    file it lists (patterns that themselves name an unset variable cannot be followed)."""
    problems: list[Problem] = []
    for key, default in (("check_files", ["checks/*.yaml"]), ("rule_files", ["alert_rules/*.yaml"])):
        patterns = data.get(key, default)
        if not isinstance(patterns, list) or not all(isinstance(p, str) for p in patterns):
            continue
        known = [p for p in patterns if "${" not in p]
        for file in _expand(known, path.parent, source, {key: known}, key, problems):
            try:
                load_yaml(file, env, missing=missing)
            except ConfigError as err:
                problems.extend(err.problems)
    raise ConfigError(missing + problems)


def _load_alerting(data: dict[str, Any], source: SourceMap) -> tuple[AlertingConfig, list[Problem]]:
    """receivers/route/inhibit_rules/time_intervals, in Alertmanager's format; options we
    accept but do not act on are warnings, not errors, so an existing file loads."""
    try:
        alerting = AlertingConfig.from_document(data)
    except ValidationError as err:
        problems: list[Problem] = []
        for error in err.errors():
            cross = error.get("ctx", {}).get("error")
            if isinstance(cross, AlertingConfigError):
                problems.extend(source.problem(data, loc, message) for loc, message in cross.problems)
            else:
                problems.append(_problem(source, data, error))
        raise ConfigError(problems) from None
    return alerting, [source.problem(data, w.loc, w.message) for w in alerting.warnings()]


TEMPLATE_FILE_LIMIT = 1024 * 1024  # bytes of one template file


def _load_templates(patterns: list[str], base: Path, source: SourceMap, data: dict[str, Any],
                    alerting: AlertingConfig) -> list[Problem]:
    """Read the ``templates:`` files (globs relative to the main file, as Alertmanager) and
    check every templated receiver field against them. A template file's problems point at
    its own line and name the config line that lists it."""
    problems: list[Problem] = []
    sources: list[tuple[str, str]] = []
    listed: dict[str, int] = {}
    for index, pattern in enumerate(patterns):
        line = source.line_of(data, ("templates", index))
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(pattern):
            problems.append(Problem(source.file, line, f"templates: {pattern!r} not found"))
        for match in matches:
            file = Path(match)
            if str(file) in listed:
                continue
            listed[str(file)] = line
            try:
                if file.stat().st_size > TEMPLATE_FILE_LIMIT:
                    raise ValueError(f"larger than {TEMPLATE_FILE_LIMIT} bytes")
                sources.append((str(file), file.read_text(encoding="utf-8")))
            except (OSError, ValueError) as err:  # UnicodeDecodeError is a ValueError
                problems.append(Problem(str(file), 1, f"cannot read template file: {one_line(str(err))}"))
    try:
        templates = TemplateSet.from_sources(sources)
    except TemplateLoadError as err:
        return problems + [
            Problem(p.file, p.line, f"template: {p.message} (file listed in templates: at {source.file}:"
                                    f"{listed.get(p.file, 1)})")
            for p in err.problems
        ]
    problems.extend(source.problem(data, loc, message) for loc, message in alerting.use_templates(templates))
    return problems


def _apply_environment(main: MainConfig) -> MainConfig:
    """``MONITOR_LISTEN`` and friends win over the file: they describe where we run."""
    overrides = EnvSettings().overrides()
    if not overrides:
        return main
    merged: dict[str, Any] = {**main.global_.model_dump(exclude_unset=True), **overrides}
    if main.global_.api_token is not None:
        merged["api_token"] = main.global_.api_token.get_secret_value()
    try:
        settings = GlobalConfig.model_validate(merged)
    except ValidationError as err:
        raise ConfigError([
            Problem("<environment>", 0, f"MONITOR_{str(e['loc'][0]).upper()}: {_message(e)}") for e in err.errors()
        ]) from None
    return main.model_copy(update={"global_": settings})


def _expand(patterns: list[str], base: Path, source: SourceMap, data: Any, key: str, problems: list[Problem]) -> list[Path]:
    """Glob patterns relative to the main file; a literal name that is missing is an error."""
    files: list[Path] = []
    for i, pattern in enumerate(patterns):
        full = pattern if os.path.isabs(pattern) else str(base / pattern)
        matches = sorted(glob.glob(full))
        if not matches and not glob.has_magic(pattern):
            problems.append(source.problem(data, (key, i), f"{key}: {pattern!r} not found"))
        files.extend(Path(m) for m in matches if Path(m) not in files)
    return files


def _load_checks(file: Path, environ: Mapping[str, str], context: dict[str, float],
                 missing: list[Problem]) -> list[tuple[CheckBase, Location]]:
    before = len(missing)
    data, source = load_yaml(file, environ, missing=missing)
    if data == {} or len(missing) > before:  # unset variables: reported, the rest waits for them
        return []
    if not isinstance(data, dict) or not isinstance(data.get("checks", []), list) or set(data) - {"checks"}:
        raise ConfigError([Problem(source.file, 1, "a check file holds one key, `checks:`, with a list of checks")])
    items = data.get("checks") or []
    secrets.register(secrets_in(items, _CHECK_MODELS))
    try:
        checks: list[CheckBase] = _CHECKS.validate_python(items, context=context)
    except ValidationError as err:
        raise ConfigError([_problem(source, items, e, prefix="checks") for e in err.errors()]) from None
    return [(c, Location(source.file, source.line_of(data, ("checks", i)))) for i, c in enumerate(checks)]


def _load_rules(file: Path, environ: Mapping[str, str], missing: list[Problem]) -> list[LoadedRule]:
    before = len(missing)
    data, source = load_yaml(file, environ, missing=missing)
    if data == {} or len(missing) > before:
        return []
    parsed = _validate(RuleFile, data, source, None)
    return [
        LoadedRule(group.name, rule, Location(source.file, source.line_of(data, ("groups", g, "rules", r))))
        for g, group in enumerate(parsed.groups)
        for r, rule in enumerate(group.rules)
    ]


def _unmatched_rules(rules: list[LoadedRule], checks: list[CheckBase]) -> list[Problem]:
    # A rule that watches nothing would never fire; that is a config mistake, not a quiet night.
    problems = []
    for loaded in rules:
        if loaded.rule.uses_slo:
            without = [c.name for c in checks if loaded.rule.selects(c.name, c.labels) and c.slo is None]
            if without:
                problems.append(Problem(loaded.where.file, loaded.where.line,
                                        f"rule {loaded.rule.alert} reads the SLO of checks without `slo:`: {', '.join(without)}"))
        if not any(loaded.rule.selects(c.name, c.labels) for c in checks):
            target = loaded.rule.check
            what = f"check {target!r}" if isinstance(target, str) else f"any check with labels {target}"
            problems.append(Problem(loaded.where.file, loaded.where.line, f"rule {loaded.rule.alert}: there is no {what}"))
    return problems


def _validate(model: type[M], data: Any, source: SourceMap, context: dict[str, Any] | None) -> M:
    try:
        return model.model_validate(data, context=context)
    except ValidationError as err:
        raise ConfigError([_problem(source, data, e) for e in err.errors()]) from None


def _problem(source: SourceMap, data: Any, error: Any, prefix: str | None = None) -> Problem:
    loc = tuple(error["loc"])
    full = (prefix, *loc) if prefix else loc
    root = {prefix: data} if prefix else data
    return Problem(source.file, source.line_of(root, full), f"{_path(root, full)}: {_message(error)}")


def _path(data: Any, loc: tuple[Any, ...]) -> str:
    """`checks[2].expect.status`, or `api_health.expect.status` when the item has a name."""
    parts: list[str] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and part in node:
            node = node[part]
            parts.append(str(part))
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            node = node[part]
            name = (node.get("name") or node.get("alert")) if isinstance(node, dict) else None
            # A name is unique and is what the author searches for; an index is not.
            parts = [name] if isinstance(name, str) else [*parts[:-1], f"{parts[-1] if parts else ''}[{part}]"]
    return ".".join(parts) or "(top level)"


def _message(error: Any) -> str:
    return _without_input(_describe(error), error)


def _without_input(message: str, error: Any) -> str:
    """pydantic and our own validators quote the offending input back (a URL that is not
    http://, a DSN libpq cannot parse); for a field that can hold a secret, the quote is
    replaced: a URL by its masked form (scheme, host, path), anything else by ***."""
    value = error.get("input")
    names = [part for part in error["loc"] if isinstance(part, str)]
    if not isinstance(value, str) or not value or not (
            "://" in value or any(part in _SENSITIVE_FIELDS or credential_name(part) for part in names)):
        return message
    shown = mask_url_queries(redact(value)) if "://" in value else "***"
    parts = {part for part in secrets_in({names[-1] if names else "": value}) if len(part) >= MIN_SECRET_LENGTH}
    for part in sorted(parts | {value}, key=len, reverse=True):
        if part != shown:
            message = message.replace(part, shown if part == value else "***")
    return message


def _describe(error: Any) -> str:
    kind = error["type"]
    if kind == "missing":
        return f"missing required field {error['loc'][-1]!r}"
    if kind == "extra_forbidden":
        return "unknown field"
    if kind == "union_tag_invalid":
        return f"unknown kind {error['ctx']['tag']!r} (known kinds: {', '.join(PROBES)})"
    if kind == "union_tag_not_found":
        return f"missing `kind:` (one of: {', '.join(PROBES)})"
    if kind == "string_pattern_mismatch":
        return f"must match {error['ctx']['pattern']} (lowercase letters, digits and _ for names)"
    message: str = error["msg"]
    return message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
