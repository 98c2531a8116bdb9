"""Regular expressions that users write, compiled with RE2.

Alertmanager and Prometheus match with Go's ``regexp``, which is RE2: the same syntax, and a
match takes time linear in the text whatever the pattern. Python's ``re`` backtracks, so a
pattern such as ``'.*' * 40 + 'X'`` or ``(a+)+$`` against a long label value can run for
hours and stall the event loop (and with it every probe and request). Every pattern that
comes from outside - config matchers, the silence API and CLI, template regex functions and
the label values handed to them - is compiled here; our own fixed patterns stay on ``re``.

What RE2 refuses (backreferences, lookaround, possessive quantifiers, atomic groups, the
``(?x)`` flag...) is a ``ValueError`` with a one-line reason naming the construct, because
RE2's own text ("invalid perl operator: (?=") does not tell a user what to change. Callers
add where the pattern came from; :func:`shown` quotes it for that line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Protocol

import re2

# Characters; no real label matcher comes close, and a cap keeps a hostile silence from
# handing RE2 a pattern that takes long to compile even though it then matches in linear time.
MAX_PATTERN_LENGTH = 1024

# RE2 logs every refused pattern to stderr by default; a refusal here is a user's typo that
# the caller reports, not a log line.
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False

# Python strings may hold lone surrogates (JSON "\ud800" decodes to one); RE2 matches UTF-8,
# which cannot encode them. Replacing each with U+FFFD keeps the length, so match offsets
# still index the caller's text.
_SURROGATE = re.compile("[\ud800-\udfff]")


class Match(Protocol):
    """The part of a match that callers use (Python's ``re.Match`` has the same shape)."""

    def __getitem__(self, group: int | str, /) -> str | None: ...

    def start(self, group: int = 0, /) -> int: ...

    def end(self, group: int = 0, /) -> int: ...

    def groups(self) -> tuple[str | None, ...]: ...

    def groupdict(self) -> Mapping[str, str | None]: ...


VERDICT_CACHE = 1024  # remembered fullmatch verdicts per pattern
VERDICT_KEY_MAX = 256  # characters; longer values are matched each time


class Regex:
    """A compiled user pattern.

    ``fullmatch`` is Alertmanager's anchored ``^(?:re)$`` (the whole value must match, and
    unlike ``re``'s ``$`` a trailing newline is not forgiven); ``search`` and ``finditer``
    are Go's unanchored ``MatchString`` / ``FindAllStringSubmatch``.
    """

    __slots__ = ("pattern", "_compiled", "_verdicts")

    def __init__(self, pattern: str, compiled: re2._Regexp[str]) -> None:
        self.pattern = pattern
        self._compiled = compiled
        # Label values repeat (the same alerts meet the same silences and routes on every
        # flush) and a call through the RE2 binding costs 5-20 µs where Python's re took under
        # 1 µs (bench/RESULTS.md, "regex"): remember recent verdicts, a bounded number.
        self._verdicts: dict[str, bool] = {}

    def fullmatch(self, text: str) -> bool:
        verdict = self._verdicts.get(text)
        if verdict is None:
            try:
                verdict = self._compiled.fullmatch(text) is not None
            except UnicodeEncodeError:
                verdict = self._compiled.fullmatch(_utf8_safe(text)) is not None
            if len(self._verdicts) >= VERDICT_CACHE or len(text) > VERDICT_KEY_MAX:
                if len(text) > VERDICT_KEY_MAX:
                    return verdict  # long values are rare and would bloat the cache
                self._verdicts.clear()
            self._verdicts[text] = verdict
        return verdict

    def search(self, text: str) -> Match | None:
        try:
            return self._compiled.search(text)
        except UnicodeEncodeError:
            return self._compiled.search(_utf8_safe(text))

    def finditer(self, text: str) -> Iterator[Match]:
        # The wrapper encodes lazily, on the first step, so the text is made safe up front.
        return iter(self._compiled.finditer(_utf8_safe(text)))

    def __repr__(self) -> str:
        return f"Regex({self.pattern!r})"


def compile_regex(source: str, max_length: int = MAX_PATTERN_LENGTH) -> Regex:
    """Compile a user's pattern with RE2's (Go's) syntax.

    ValueError with a one-line reason, without the pattern (the caller names it and says
    where it came from).
    """
    if len(source) > max_length:
        raise ValueError(f"regex is {len(source)} characters long, over the limit of {max_length}")
    try:
        return Regex(source, re2.compile(source, _OPTIONS))
    except UnicodeEncodeError:
        raise ValueError("regex holds a lone surrogate, which is not text RE2 can read") from None
    except re2.error as err:
        raise ValueError(_refusal(source, err)) from None


def shown(source: str, limit: int = 60) -> str:
    """``repr`` of a pattern for an error line: escaped (so one line), cut if long."""
    return repr(source) if len(source) <= limit else f"{source[:limit]!r}..."


# What RE2 leaves out on purpose (everything it cannot run in linear time), keyed by the
# fragment RE2 quotes after "invalid perl operator: ".
_GROUPS = {
    "(?=": "lookahead (?=...) is not supported",
    "(?!": "negative lookahead (?!...) is not supported",
    "(?<=": "lookbehind (?<=...) is not supported",
    "(?<!": "negative lookbehind (?<!...) is not supported",
    "(?#": "comments (?#...) are not supported",
    "(?>": "atomic groups (?>...) are not supported",
    "(?(": "conditionals (?(...)...) are not supported",
}
_SYNTAX = "is not supported (RE2 syntax)"
_ARE = "are not supported (RE2 syntax)"


def _refusal(source: str, err: re2.error) -> str:
    """One line naming what RE2 refused in ``source``, from the error RE2 raised."""
    raw = err.args[0] if err.args else ""
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    code, _, fragment = text.partition(": ")
    piece = _one_line(fragment)
    if code == "invalid escape sequence":
        if re.fullmatch(r"\\[1-9]\d*", fragment):
            return f"backreferences such as {piece} {_ARE}"
        hint = "; RE2 spells end of text \\z" if fragment == "\\Z" else ""
        return f"the escape {piece} {_SYNTAX}{hint}"
    if code == "invalid perl operator":
        return _perl_operator(source, fragment)
    if code == "bad repetition operator":
        if fragment.endswith("+") and len(fragment) > 1:
            return f"possessive quantifiers such as {piece} {_ARE}"
        return f"a quantifier cannot repeat another quantifier: {piece} (RE2 syntax)"
    if code in ("missing argument to repetition operator", "no argument for repetition operator"):
        return f"the quantifier {piece} has nothing to repeat"
    if code == "invalid repetition size":
        return f"repetition {piece} is too large or reversed (RE2 counts go up to 1000, nested ones multiplied)"
    if code == "missing )":
        return "missing ) to close a group"
    if code == "unexpected )":
        return "unmatched ) with no group to close"
    if code == "missing ]":
        return "missing ] to close a character class"
    if code == "invalid character class range":
        if fragment.startswith("[:"):
            return f"unknown POSIX class {piece}"
        if fragment.startswith(("\\p", "\\P")):
            return f"unknown Unicode class {piece}"
        return f"invalid character class range {piece}"
    if code == "invalid named capture group":
        return f"invalid group name in {piece}"
    if code == "trailing \\":
        return "the pattern ends in a lone backslash"
    if code.startswith("pattern too large"):
        return "regex is too large for RE2 to compile"
    return _one_line(text) or "refused by RE2"


def _perl_operator(source: str, fragment: str) -> str:
    for head, message in _GROUPS.items():
        if fragment.startswith(head):
            return f"{message} (RE2 syntax)"
    if fragment == "(?P":  # RE2 knows (?P<name>...) only; which other (?P... was it?
        if "(?P=" in source:
            return f"named backreferences (?P=name) {_ARE}"
        return f"group syntax (?P... other than (?P<name>...) {_SYNTAX}"
    flags = fragment[2:].replace("-", "")
    if "x" in flags:
        return f"the (?x) flag (verbose mode) {_SYNTAX}"
    if flags.isalpha():
        return f"the flag group {_one_line(fragment)}) {_SYNTAX}; RE2 knows the flags i, m, s and U"
    return f"the group {_one_line(fragment)} {_SYNTAX}"


def _one_line(fragment: str) -> str:
    # RE2 quotes the pattern's own text, which may hold newlines; an error line must not.
    return fragment if fragment.isprintable() else repr(fragment)


def _utf8_safe(text: str) -> str:
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", text)
    return text
