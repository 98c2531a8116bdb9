"""Regexes that come from outside (config, the silence API, the CLI, label values), checked
before they run.

Python's ``re`` backtracks where Go's RE2 (which Prometheus and Alertmanager use) does not, so
a pattern such as ``(a+)+$`` against a long label value can take exponential time and stall
the event loop. What is refused here:

- a repeated group that itself holds a quantifier or ``|`` (``(a+)+``, ``(x*)*y``,
  ``(a|aa)*``): the shapes that backtrack exponentially;
- backreferences and the ``(?x)`` flag (RE2 has neither, and the shape check cannot read them);
- syntax Python reads differently from RE2 (``re`` warns, e.g. POSIX classes ``[[:alpha:]]``);
- with :func:`guard_regex`, patterns longer than :data:`MAX_PATTERN_LENGTH`.

Every refusal is a ``ValueError`` with a one-line reason; callers add where the pattern
came from.
"""

from __future__ import annotations

import re
import warnings

MAX_PATTERN_LENGTH = 1024  # characters; no real label matcher comes close

_REGEX_TOKEN = re.compile(  # an escape, a class, a group opening with its (?...) head, a quantifier, a char
    r"\\.|\[\^?\]?(?:\\.|[^\]\\])*\]|\((?:\?(?:P<\w+>|P=|<[=!]|[:=!>(]|#[^)]*|[aiLmsux-]+:?))?"
    r"|[*+?][?+]?|\{(\d*)(,?)(\d*)\}[?+]?|.", re.S)


def regex_shape(p: str) -> tuple[int, int]:
    """(variable repetitions, two-way choices) in p; ValueError for shapes that explode.

    A repeated group holding a quantifier or `|` (`(a+)+`, `(a|a)*`) and backreferences backtrack
    exponentially, so they are refused. Anything else is polynomial: a failing search takes about
    len(text) ** (repetitions + 1) * 2 ** choices steps.
    """
    unsafe, reps, alts, after_unsafe_group = [False], 0, 0, False  # unsafe: per open group
    for m in _REGEX_TOKEN.finditer(p):
        tok, closed_unsafe = m[0], False
        if re.fullmatch(r"\\[1-9]|\(\?(P=|\(|[a-zA-Z-]*x)", tok):
            raise ValueError("regex backreferences and the (?x) flag are not supported")
        if tok[0] == "(":
            unsafe.append(False)
        elif tok == ")" and len(unsafe) > 1:
            closed_unsafe = unsafe.pop()
            unsafe[-1] |= closed_unsafe
        elif tok == "|":
            unsafe[-1], alts = True, alts + 1
        elif tok[0] in "*+?" or m[1] is not None and tok[:2] != "{}":  # m[1..3]: the {min,max} parts
            lo = {"*": 0, "+": 1, "?": 0}.get(tok[0], int(m[1] or 0))
            hi = {"*": -1, "+": -1, "?": 1}.get(tok[0], int(m[3]) if m[3] else -1 if m[2] else lo)  # -1: no max
            if after_unsafe_group and hi != 1:
                raise ValueError("regex repeats a group that itself repeats or alternates"
                                 " (exponential backtracking); flatten it")
            unsafe[-1] = True  # any quantifier makes the enclosing group unsafe to repeat
            if lo != hi:  # `?` is a two-way choice like `|`; a repetition multiplies by len(text)
                alts, reps = (alts + 1, reps) if hi == 1 else (alts, reps + 1)
        after_unsafe_group = closed_unsafe
    return reps, alts


def compile_regex(source: str) -> re.Pattern[str]:
    """``re.compile``, with ValueError (the reason only) for bad syntax and for RE2 syntax that
    Python would read differently (``re`` warns about those; here the warning is an error)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            return re.compile(source)
    except (re.error, FutureWarning) as err:
        raise ValueError(str(err)) from None


def guard_regex(source: str, max_length: int = MAX_PATTERN_LENGTH) -> re.Pattern[str]:
    """Check and compile a pattern from outside: length, shape, then syntax.

    ValueError with a one-line reason (without the pattern, which the caller names).
    """
    if len(source) > max_length:
        raise ValueError(f"regex is {len(source)} characters long, over the limit of {max_length}")
    regex_shape(source)
    return compile_regex(source)


def shown(source: str, limit: int = 60) -> str:
    """``repr`` of a pattern for an error line: escaped (so one line), cut if long."""
    return repr(source) if len(source) <= limit else f"{source[:limit]!r}..."
