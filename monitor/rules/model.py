"""Rule files, in Prometheus' rule-file shape with ``check:`` naming what a rule watches."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import Field, PrivateAttr, field_validator

from monitor.core.durations import Duration
from monitor.core.model import Model
from monitor.core.expressions import Expression, compile_expression
from monitor.core.labels import LABEL_NAME, is_label_name
from monitor.rules.compared import Comparison, compile_comparisons
from monitor.rules.templates import NO_CHECK, Template, compile_template
from monitor.rules.functions import SLO_FUNCTIONS, WINDOW_FUNCTIONS, dry_run

# What a rule's `expr` can read about the latest result of its check...
RULE_VARIABLES = ("up", "value", "latency", "status", "body", "detail", "labels", "error", "age",
                  "error_budget_remaining")
# ...and the window functions over the check's history (rules/functions.py).

# A PromQL range selector, `name[5m]`: not CEL, and a common first try.
_PROMQL_RANGE = re.compile(r"\w\[\d+[smhdwy]\]")


class Rule(Model):
    alert: str = Field(pattern=LABEL_NAME.pattern)  # it becomes the `alertname` label
    check: str | dict[str, str]
    expr: str
    for_: Duration = Field(default=0.0, alias="for")
    keep_firing_for: Duration = 0.0
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    _expression: Expression | None = PrivateAttr(default=None)
    _templates: dict[str, Template] = PrivateAttr(default_factory=dict)
    _comparisons: list[Comparison] = PrivateAttr(default_factory=list)

    @field_validator("expr")
    @classmethod
    def _compiles(cls, source: str) -> str:
        try:
            dry_run(compile_expression(source, RULE_VARIABLES, WINDOW_FUNCTIONS + SLO_FUNCTIONS).program)
        except ValueError as err:
            if _PROMQL_RANGE.search(source):  # `rate(x[5m])` from a Prometheus habit
                raise ValueError(f"{err} (rules are CEL: a window is a string argument,"
                                 ' e.g. rate("value", "5m"))') from None
            raise
        return source

    @field_validator("check")
    @classmethod
    def _selector(cls, check: str | dict[str, str]) -> str | dict[str, str]:
        if isinstance(check, dict):
            if not check:
                raise ValueError("a label selector needs at least one label")
            for name in check:
                if not is_label_name(name):
                    raise ValueError(f"invalid label name {name!r} in selector")
        return check

    @field_validator("annotations")
    @classmethod
    def _templates_compile(cls, annotations: dict[str, str]) -> dict[str, str]:
        for name, text in annotations.items():
            try:
                compile_template(text)
            except ValueError as err:
                raise ValueError(f"annotation {name!r}: {err}") from None
        return annotations

    @field_validator("labels")
    @classmethod
    def _label_names(cls, labels: dict[str, str]) -> dict[str, str]:
        for name in labels:
            if not is_label_name(name) or name.startswith("__"):
                raise ValueError(f"invalid label name {name!r}")
        return labels

    def model_post_init(self, __context: Any) -> None:
        self._expression = compile_expression(self.expr, RULE_VARIABLES, WINDOW_FUNCTIONS + SLO_FUNCTIONS)
        self._templates = {name: compile_template(text) for name, text in self.annotations.items()}
        self._comparisons = compile_comparisons(self.expr, RULE_VARIABLES, WINDOW_FUNCTIONS + SLO_FUNCTIONS)

    def render_annotations(self, labels: dict[str, str], value: float | None, external_url: str = "",
                           check: Mapping[str, Any] = NO_CHECK, value_text: str = "") -> dict[str, str]:
        """Annotations for one alert; rendering never raises (errors show in the text)."""
        return {name: template.render(labels, value, external_url, check, value_text)
                for name, template in self._templates.items()}

    @property
    def comparisons(self) -> list[Comparison]:
        """The comparisons ``$value`` is taken from (monitor/rules/compared.py)."""
        return self._comparisons

    @property
    def uses_slo(self) -> bool:
        program = self.expression.program
        return "error_budget_remaining" in program.variables() or bool(set(program.functions()) & set(SLO_FUNCTIONS))

    @property
    def expression(self) -> Expression:
        assert self._expression is not None
        return self._expression

    def selects(self, name: str, labels: dict[str, str]) -> bool:
        if isinstance(self.check, str):
            return self.check == name
        return all(labels.get(k) == v for k, v in self.check.items())


class RuleGroup(Model):
    name: str
    interval: Duration | None = None  # accepted for Prometheus compatibility; rules run per result
    rules: list[Rule] = Field(default_factory=list)


class RuleFile(Model):
    groups: list[RuleGroup] = Field(default_factory=list)


@dataclass(frozen=True)
class Location:
    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


@dataclass(frozen=True)
class LoadedRule:
    group: str
    rule: Rule
    where: Location
