"""Vector selectors: a metric name and label matchers, with Prometheus' matching rules.

Regexes are fully anchored (``=~"5.."`` matches ``500``, not ``1500``) and compiled with RE2
through monitor.core.regex, which is Go's regexp syntax as Prometheus uses. A label that a
series lacks matches as the empty string.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from monitor.core.regex import Regex, compile_regex, shown

from .errors import PromQLError

EQUAL = "="
NOT_EQUAL = "!="
REGEX = "=~"
NOT_REGEX = "!~"


@dataclass(frozen=True)
class Matcher:
    name: str
    op: str
    value: str
    regex: Regex | None = field(default=None, compare=False, repr=False)

    @staticmethod
    def create(name: str, op: str, value: str) -> Matcher:
        regex = None
        if op in (REGEX, NOT_REGEX):
            try:
                regex = compile_regex(value)
            except ValueError as err:
                raise PromQLError(f"invalid regex {shown(value)} for label {name}: {err}") from None
        return Matcher(name, op, value, regex)

    def matches(self, value: str) -> bool:
        if self.op == EQUAL:
            return value == self.value
        if self.op == NOT_EQUAL:
            return value != self.value
        assert self.regex is not None
        found = self.regex.fullmatch(value)
        return found if self.op == REGEX else not found

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value!r}"


@dataclass(frozen=True)
class Selector:
    """One vector selector of a query; ``matchers`` include ``__name__="name"`` when named."""

    name: str | None
    matchers: tuple[Matcher, ...]

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels.get(m.name, "")) for m in self.matchers)

    def matches_pairs(self, labels: tuple[tuple[str, str], ...]) -> bool:
        """The same test on the engine's sorted label tuple (see labels.py)."""
        return self.matches(dict(labels))

    def __str__(self) -> str:
        inner = ",".join(str(m) for m in self.matchers if not (m.name == "__name__" and m.op == EQUAL))
        return f"{self.name or ''}{{{inner}}}"
