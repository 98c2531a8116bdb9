"""Alertmanager label matchers: ``name="value"``, ``name!="v"``, ``name=~"re"``, ``name!~"re"``.

One parser serves routes, inhibit rules and silences, so a matcher that works in one place
works the same everywhere. Semantics follow Alertmanager:

- a label the alert does not have matches as the empty string (``team=""`` matches alerts
  without ``team``; ``team!=""`` requires it);
- regular expressions are anchored at both ends (Alertmanager's ``^(?:re)$``; here the whole
  value must match), so ``severity=~"crit"`` does not match ``critical`` - the surprise
  Alertmanager users already know and rely on;
- a list entry may hold several comma-separated matchers, optionally in braces:
  ``{service="api", severity=~"critical|page"}``.

Every matcher regex comes from outside (config, the silence API, the CLI), so each one is
compiled by :func:`monitor.core.regex.compile_regex`: RE2, Go's syntax as in Alertmanager, and
matching in time linear in the label value whatever the pattern, so no silence can stall the
event loop; at most 1024 characters.

Silences use the same type: :meth:`Matcher.from_api` and :meth:`Matcher.to_api` translate to
and from API v2's ``{"name", "value", "isRegex", "isEqual"}``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from pydantic import BeforeValidator, GetCoreSchemaHandler
from pydantic_core import core_schema

from monitor.core.regex import Regex, compile_regex, shown

MatchType = Literal["=", "!=", "=~", "!~"]

# Longest operators first, so `=~` is not read as `=` followed by a value starting with `~`.
_OPERATORS: tuple[MatchType, ...] = ("=~", "!~", "!=", "=")
_NAME = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "r": "\r"}


class Matcher:
    """One label matcher. Immutable and hashable, so routes and silences can be compared."""

    __slots__ = ("name", "type", "value", "_regex")

    name: str
    type: MatchType
    value: str
    _regex: Regex | None

    def __init__(self, name: str, type: MatchType, value: str) -> None:
        if type not in _OPERATORS:
            raise ValueError(f"unknown matcher operator {type!r} (use =, !=, =~ or !~)")
        if not name:
            raise ValueError("a matcher needs a label name")
        regex: Regex | None = None
        if type in ("=~", "!~"):
            try:
                # Compiled once here: matchers run for every alert on every dispatch.
                regex = compile_regex(value)
            except ValueError as err:
                raise ValueError(f"invalid regex {shown(value)} in matcher {name}{type}: {err}") from None
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "type", type)
        object.__setattr__(self, "value", value)
        object.__setattr__(self, "_regex", regex)

    def __setattr__(self, key: str, value: object) -> None:
        raise AttributeError("Matcher is immutable")

    def matches(self, labels: Mapping[str, str]) -> bool:
        """Whether ``labels`` satisfy this matcher; a missing label counts as ``""``."""
        actual = labels.get(self.name, "")
        if self.type == "=":
            return actual == self.value
        if self.type == "!=":
            return actual != self.value
        assert self._regex is not None
        # Anchored like Alertmanager's ^(?:re)$: the whole value must match, not a substring
        # (and, as in Go, a value ending in a newline is not forgiven by the end anchor).
        found = self._regex.fullmatch(actual)
        return found if self.type == "=~" else not found

    @property
    def is_regex(self) -> bool:
        return self.type in ("=~", "!~")

    @property
    def is_equal(self) -> bool:
        return self.type in ("=", "=~")

    @staticmethod
    def from_api(name: str, value: str, is_regex: bool = False, is_equal: bool = True) -> Matcher:
        """From API v2's fields (``isRegex``, ``isEqual``), as silences are posted and stored."""
        return Matcher(name, api_operator(is_regex, is_equal), value)

    def to_api(self) -> dict[str, Any]:
        """API v2's ``{"name", "value", "isRegex", "isEqual"}`` (also the silence record format)."""
        return {"name": self.name, "value": self.value, "isRegex": self.is_regex, "isEqual": self.is_equal}

    def __str__(self) -> str:
        # Alertmanager's spelling (Go's %q of the value); also what route keys are built from.
        return f"{self.name}{self.type}{quote(self.value)}"

    def __repr__(self) -> str:
        return f"Matcher({self})"

    def _key(self) -> tuple[str, int, str]:
        return (self.name, _OPERATORS.index(self.type), self.value)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Matcher) and self._key() == other._key()

    def __lt__(self, other: Matcher) -> bool:
        return self._key() < other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    @classmethod
    def __get_pydantic_core_schema__(cls, source: Any, handler: GetCoreSchemaHandler) -> core_schema.CoreSchema:
        # In config a single matcher is written as text; it is stored parsed and written back as text.
        return core_schema.no_info_plain_validator_function(
            _one_matcher, serialization=core_schema.plain_serializer_function_ser_schema(str)
        )


def api_operator(is_regex: bool, is_equal: bool) -> MatchType:
    """The operator that API v2's ``isRegex`` / ``isEqual`` flags spell."""
    if is_equal:
        return "=~" if is_regex else "="
    return "!~" if is_regex else "!="


def quote(value: str) -> str:
    """``value`` in double quotes with ``\\``, ``"`` and control characters escaped."""
    out = value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    return f'"{out}"'


def format_matchers(matchers: Iterable[Matcher]) -> str:
    """``{a="b",c=~"d"}`` - Alertmanager's ``Matchers.String()``, used in route and group keys."""
    return "{" + ",".join(str(m) for m in matchers) + "}"


def parse_matchers(spec: str | Sequence[str | Matcher] | None) -> list[Matcher]:
    """Every matcher in ``spec``: one string (``'a="b", c=~"d"'`` or ``'{...}'``) or a list of
    them, as ``matchers:`` lists are written. Raises ValueError naming the bad part."""
    if spec is None:
        return []
    if isinstance(spec, str):
        return _parse_line(spec)
    out: list[Matcher] = []
    for item in spec:
        if isinstance(item, Matcher):
            out.append(item)
        elif isinstance(item, str):
            out.extend(_parse_line(item))
        else:
            raise ValueError(f"a matcher must be a string like 'severity=\"critical\"', not {type(item).__name__}")
    return out


def parse_matcher(text: str) -> Matcher:
    """Exactly one matcher; the form silences and single-matcher fields use."""
    found = _parse_line(text)
    if len(found) != 1:
        raise ValueError(f"expected exactly one matcher in {text!r}, found {len(found)}")
    return found[0]


def from_legacy(match: Mapping[str, str] | None = None, match_re: Mapping[str, str] | None = None) -> list[Matcher]:
    """The deprecated ``match:`` / ``match_re:`` maps (still common in existing alertmanager.yml
    files) as matchers: ``match`` entries are ``=``, ``match_re`` entries are anchored ``=~``.
    Sorted by name because the maps have no meaningful order and route keys must be stable."""
    out = [Matcher(name, "=", str(value)) for name, value in (match or {}).items()]
    out += [Matcher(name, "=~", str(value)) for name, value in (match_re or {}).items()]
    for matcher in out:
        if not _NAME.fullmatch(matcher.name):
            raise ValueError(f"invalid label name {matcher.name!r}")
    return sorted(out)


def _one_matcher(value: Any) -> Matcher:
    if isinstance(value, Matcher):
        return value
    if isinstance(value, str):
        return parse_matcher(value)
    raise ValueError(f"a matcher must be a string like 'severity=\"critical\"', not {type(value).__name__}")


def _matcher_list(value: Any) -> Any:
    # `matchers: 'a="b"'` (a bare string) is accepted as a one-line list, as Alertmanager's
    # silence API does; each list entry may itself carry several comma-separated matchers.
    if value is None:
        return []
    if isinstance(value, (str, list, tuple)):
        return parse_matchers(value)
    return value


# The pydantic field type for `matchers:` / `source_matchers:` / `target_matchers:`.
Matchers = Annotated[list[Matcher], BeforeValidator(_matcher_list)]


class _Reader:
    """A cursor over one line of matcher text; errors say what was expected and where."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, what: str) -> ValueError:
        return ValueError(f"invalid matcher {self.text!r}: {what} at position {self.pos + 1}")

    def skip_space(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos].isspace():
            self.pos += 1

    def at_end(self) -> bool:
        return self.pos >= len(self.text)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def quoted(self) -> str:
        assert self.text[self.pos] == '"'
        self.pos += 1
        out: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == '"':
                self.pos += 1
                return "".join(out)
            if char == "\\":
                nxt = self.text[self.pos + 1 : self.pos + 2]
                if nxt not in _ESCAPES:
                    raise self.fail(f"unknown escape \\{nxt}")
                out.append(_ESCAPES[nxt])
                self.pos += 2
                continue
            out.append(char)
            self.pos += 1
        raise self.fail("unterminated quoted string")

    def name(self) -> str:
        if self.peek() == '"':
            # Quoted label names (Alertmanager's UTF-8 matchers) are accepted as written.
            return self.quoted()
        found = _NAME.match(self.text, self.pos)
        if not found:
            raise self.fail("expected a label name")
        self.pos = found.end()
        return found.group()

    def operator(self) -> MatchType:
        for op in _OPERATORS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                return op
        raise self.fail("expected one of =, !=, =~, !~")

    def value(self) -> str:
        if self.peek() == '"':
            return self.quoted()
        # Unquoted: everything up to the next comma, trailing space dropped. (A regex with a
        # comma in it, such as `x{1,3}`, has to be quoted - the same rule Alertmanager has.)
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] != ",":
            if self.text[self.pos] == '"':
                raise self.fail("unexpected quote inside an unquoted value")
            self.pos += 1
        return self.text[start : self.pos].strip()


def _parse_line(text: str) -> list[Matcher]:
    body = text.strip()
    if body.startswith("{"):
        if not body.endswith("}"):
            raise ValueError(f"invalid matcher {text!r}: missing closing brace")
        body = body[1:-1]
    reader = _Reader(body)
    out: list[Matcher] = []
    reader.skip_space()
    while not reader.at_end():
        name = reader.name()
        reader.skip_space()
        op = reader.operator()
        reader.skip_space()
        value = reader.value()
        out.append(Matcher(name, op, value))
        reader.skip_space()
        if reader.at_end():
            break
        if reader.peek() != ",":
            raise reader.fail("expected ',' between matchers")
        reader.pos += 1
        reader.skip_space()  # a trailing comma is tolerated, as Alertmanager does
    return out
