"""Annotation and label templates: a small, safe subset of Prometheus' Go templates.

Rules are copied from Prometheus, so syntax, variables, function names and number formatting
follow Prometheus. Failures differ on purpose: ``compile_template`` checks what it can when config
loads (ValueError), and ``Template.render`` never raises, since one odd label must not stop a
notification. Regexes are RE2 (:mod:`monitor.core.regex`), Go's own engine, so a pattern from a
template or a label runs in time linear in its input; the input is still capped at
``REGEX_INPUT_LIMIT``, which bounds the work and output of one ``reReplaceAll``.
"""

from __future__ import annotations

import functools
import json
import math
import re
import urllib.parse
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from monitor.core.regex import Regex, compile_regex

OUTPUT_LIMIT = 16 * 1024  # characters of rendered text; longer output is cut and marked
REGEX_INPUT_LIMIT = 4 * 1024  # most characters any regex scans
NO_VALUE = "<no value>"  # Go's rendering of nil: what `{{ $value }}` shows when value is None
MISSING_LABEL = ""  # Prometheus parses with missingkey=zero: a missing label is "", not "<no value>"
_TRUNCATED = "…[truncated]"
_MAX_NESTING = 32  # parentheses and if-blocks, so parsing and rendering recursion stay shallow
_WS = " \t\r\n"


_Val = str | float | int | bool | Regex | None  # Regex: a literal pattern, compiled at load


class _RenderError(Exception):
    """A problem with this render's data, shown in place as <error: ...>."""


def _g4(v: float) -> str:
    """Go's %.4g (the humanize functions' format), with Go's spelling of NaN and infinities."""
    if not math.isfinite(v):
        return "NaN" if math.isnan(v) else "+Inf" if v > 0 else "-Inf"
    return f"{v:.4g}"


def _go_float(v: float) -> str:
    """Go's %v of a float64: shortest digits; exponent below 1e-4 and from 1e6 (Python: 1e16)."""
    if not math.isfinite(v) or v == 0:
        return _g4(v)
    d = Decimal(repr(v))
    digits, exp = "".join(map(str, d.normalize().as_tuple().digits)), d.adjusted()
    if -4 <= exp < 6:
        return f"{v:.{max(len(digits) - 1 - exp, 0)}f}"
    mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{'-' if v < 0 else ''}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"


def _text(v: _Val) -> str:
    if v is None or isinstance(v, bool):
        return NO_VALUE if v is None else str(v).lower()
    return _go_float(v) if isinstance(v, float) else str(v)


def _go_type(v: _Val) -> str:
    return {str: "string", bool: "bool", int: "int", float: "float64"}.get(type(v), "<nil>")


def _num(v: _Val) -> float:
    """Prometheus' ConvertToFloat: numbers as they are, strings parsed like Go's ParseFloat."""
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return float(v)
    if isinstance(v, str) and v.isascii() and v == v.strip() and "_" not in v:
        try:
            return float(v)
        except ValueError:
            pass
    raise _RenderError(f"can't convert {_go_type(v)} {_text(v)[:40]!r} to a number")


def _truth(v: _Val) -> bool:
    return v is not None and v != "" and v != 0


# ---- functions -----------------------------------------------------------------------------------

def _humanize(v: float, base: int = 1000) -> str:
    """Prometheus' humanize/humanize1024: step by `base` towards [1, base), taking a prefix each step."""
    if v == 0 or not math.isfinite(v) or base == 1024 and abs(v) <= 1:
        return _g4(v)
    up, prefix = abs(v) < 1, ""
    prefixes = "m u n p f a z y" if up else "k M G T P E Z Y" if base == 1000 else "ki Mi Gi Ti Pi Ei Zi Yi"
    for p in prefixes.split():
        if (abs(v) >= 1) if up else (abs(v) < base):
            break
        prefix, v = p, v * base if up else v / base
    return _g4(v) + prefix


def _humanize_duration(v: float) -> str:
    if v == 0 or not math.isfinite(v):
        return _g4(v) + "s" * (v == 0)
    if abs(v) < 1:
        return _humanize(v) + "s"
    sign, whole = "-" if v < 0 else "", int(abs(v))
    units = [(whole // 86400, "d"), (whole // 3600 % 24, "h"), (whole // 60 % 60, "m")]
    first = next((i for i, (n, _) in enumerate(units) if n), None)
    if first is None:  # under a minute: seconds with 4 significant digits
        return f"{sign}{_g4(abs(v))}s"
    return sign + "".join(f"{n}{u} " for n, u in units[first:]) + f"{whole % 60}s"


def _humanize_timestamp(v: float) -> str:
    if not math.isfinite(v):
        return _g4(v)
    if abs(v * 1e9) >= 2**63:
        raise _RenderError(f"{_go_float(v)} overflows a nanosecond timestamp")
    ns = int(v * 1e9)
    ms = abs(ns) // 10**6 * (1 if ns >= 0 else -1)  # Prometheus keeps milliseconds, truncated toward 0
    t = datetime(1970, 1, 1, tzinfo=timezone.utc) + timedelta(milliseconds=ms)
    frac = f".{t.microsecond // 1000:03d}".rstrip("0").rstrip(".")
    return f"{t.year:04d}-{t:%m-%d %H:%M:%S}{frac} +0000 UTC"


_VERB = re.compile(r"%([-+# 0]*)(\d{0,3})(\.\d{0,3})?(.?)", re.S)  # 3 digits: no gigabyte-wide padding


def _printf(args: list[_Val]) -> str:
    """Go's fmt.Sprintf for the usual verbs; Python's C-style % has the same flags and widths."""
    rest = list(reversed(args[1:]))  # pop() takes the next argument

    def verb(m: re.Match[str]) -> str:
        flags, width, prec, verb = m.groups()
        if verb in ("%", "") or not rest:
            return {"%": "%", "": "%!(NOVERB)"}.get(verb, f"%!{verb}(MISSING)")
        arg, spec = rest.pop(), f"%{flags}{width}{prec or ''}"
        bad = f"%!{verb}({_go_type(arg)}={_text(arg)})"  # Go's complaint when verb and argument don't fit
        if verb in "svq":
            return (spec + "s") % (json.dumps(_text(arg), ensure_ascii=False) if verb == "q" else _text(arg))
        try:
            v = _num(arg)
        except _RenderError:
            return bad
        if verb not in "dxXoeEfFgG" or verb in "dxXo" and not v.is_integer():
            return bad
        if verb in "dxXo":  # lenient where Go is strict: a whole float prints as an integer
            return (spec + verb) % int(v)
        if not math.isfinite(v) or verb in "gG" and not prec:  # Go's NaN/Inf spelling and shortest %g
            return (spec + "s") % (_go_float(v).upper() if verb == "G" else _go_float(v))
        return (spec + verb) % v

    out = _VERB.sub(verb, _text(args[0]))
    extra = ", ".join(f"{_go_type(a)}={_text(a)}" for a in reversed(rest))
    return out + (f"%!(EXTRA {extra})" if extra else "")


# ---- regexes -------------------------------------------------------------------------------------

@functools.lru_cache(maxsize=256)  # a pattern from a label is compiled at render, once per label value
def _compile_regex(source: str) -> Regex:
    """Compile a pattern (RE2 syntax, as Go's templates read it); ValueError says why it is refused."""
    try:
        return compile_regex(source)
    except ValueError as err:
        raise ValueError(f"invalid regex {source!r}: {err}") from None


def _regex_args(pattern: _Val, subject: _Val) -> tuple[Regex, str]:
    """The pattern (compiled at load, or now when it comes from a label) and the text it may scan."""
    try:
        rx = pattern if isinstance(pattern, Regex) else _compile_regex(_text(pattern))
    except ValueError as err:
        raise _RenderError(str(err)) from None
    if len(s := _text(subject)) > REGEX_INPUT_LIMIT:
        raise _RenderError(f"regex input is {len(s)} characters, over the limit of {REGEX_INPUT_LIMIT}")
    return rx, s


_GO_REF = re.compile(r"\$(?:\$|\{(\w+)\}|(\w+))")  # $$, ${name}, $name; Go reads "$1x" as group "1x"


def _re_replace_all(pattern: _Val, repl: _Val, subject: _Val) -> str:
    """Go's ReplaceAllString: $1, ${1}, $name and $$ in `repl`; a group that doesn't exist is ""."""
    rx, s = _regex_args(pattern, subject)
    out, size, last = [], 0, 0
    for m in rx.finditer(s):
        if m.start() == m.end() == last > 0:
            continue  # Go skips an empty match right after the previous match; RE2's Python wrapper doesn't
        groups = {**{str(n): g for n, g in enumerate((m[0], *m.groups()))}, **m.groupdict()}
        expanded = _GO_REF.sub(lambda r: "$" if r[0] == "$$" else groups.get(r[1] or r[2]) or "", _text(repl))
        out.append(s[last : m.start()] + expanded)
        size, last = size + len(out[-1]), m.end()
        if size > OUTPUT_LIMIT:  # "" matches everywhere: 4 KiB of text times a long replacement
            raise _RenderError("reReplaceAll result too long")
    return "".join(out) + s[last:]


_FUNCS: dict[str, tuple[int, int | None, Callable[[list[_Val]], _Val]]] = {  # name: min, max args, code
    "humanize": (1, 1, lambda a: _humanize(_num(a[0]))),
    "humanize1024": (1, 1, lambda a: _humanize(_num(a[0]), 1024)),
    "humanizeDuration": (1, 1, lambda a: _humanize_duration(_num(a[0]))),
    "humanizePercentage": (1, 1, lambda a: _g4(_num(a[0]) * 100) + "%"),
    "humanizeTimestamp": (1, 1, lambda a: _humanize_timestamp(_num(a[0]))),
    "printf": (1, None, _printf),
    "toUpper": (1, 1, lambda a: _text(a[0]).upper()),
    "toLower": (1, 1, lambda a: _text(a[0]).lower()),
    # Go's strings.Title: upper-case each word's first letter and leave the rest alone.
    "title": (1, 1, lambda a: re.sub(r"(?<!\w)\w", lambda m: m[0].upper(), _text(a[0]))),
    "urlquery": (1, None, lambda a: urllib.parse.quote_plus("".join(map(_text, a)), safe="")),
    "match": (2, 2, lambda a: (r := _regex_args(a[0], a[1]))[0].search(r[1]) is not None),
    "reReplaceAll": (3, 3, lambda a: _re_replace_all(*a)),
}


# ---- compiled templates ----------------------------------------------------------------------------

# What `$check.NAME` can read of the check's latest result (docs/configuration.md,
# "Annotation templates"); `$check.detail.A.B` reads into the result's detail.
CHECK_FIELDS = ("name", "kind", "up", "value", "unit", "valueText", "latency", "error", "outcome", "status", "detail")
NO_CHECK: Mapping[str, Any] = {}


@dataclass(frozen=True)
class _Ctx:
    labels: Mapping[str, str]
    value: float | None
    external_url: str
    check: Mapping[str, Any] = field(default_factory=dict)
    value_text: str = ""


def _plain(value: Any) -> _Val:
    """A detail value as a template operand: scalars as they are, lists and maps as JSON."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)[:OUTPUT_LIMIT]
    except (TypeError, ValueError):
        return str(value)[:OUTPUT_LIMIT]


def _check_field(path: tuple[str, ...]) -> Callable[[_Ctx], _Val]:
    def get(c: _Ctx) -> _Val:
        if not c.check:
            return None  # rendered without a result (a rule's dry run): Go's nil, "<no value>"
        node: Any = c.check.get(path[0])
        for key in path[1:]:
            node = node.get(key) if isinstance(node, Mapping) else None
        return _plain(node)
    return get


_Get = Callable[[_Ctx], _Val]  # an operand: a literal, a variable or a parenthesised pipeline


@dataclass(frozen=True)
class _Lit:
    value: _Val

    def __call__(self, ctx: _Ctx) -> _Val:
        return self.value


@dataclass(frozen=True)
class _Pipe:
    cmds: tuple[tuple[str | None, tuple[_Get, ...]], ...]  # (function, or None for a plain operand; args)

    def __call__(self, ctx: _Ctx) -> _Val:
        val: _Val = None
        for n, (func, getters) in enumerate(self.cmds):
            args = [get(ctx) for get in getters] + ([val] if n else [])  # a piped value goes last
            val = _FUNCS[func][2](args) if func else args[0]
        return val


@dataclass(frozen=True)
class _If:
    cond: _Pipe
    then: tuple[_Node, ...]
    orelse: tuple[_Node, ...]


_Node = str | _Pipe | _If


def _emit(nodes: tuple[_Node, ...], ctx: _Ctx) -> Iterator[str]:
    for node in nodes:
        try:  # a failure inside an action stays inside that action
            val = node if isinstance(node, str) else node(ctx) if isinstance(node, _Pipe) else node.cond(ctx)
        except Exception as err:  # incl. odd label types and our own bugs: the notification still goes out
            yield f"<error: {str(err)[:200] or type(err).__name__}>"
            continue
        if isinstance(node, _If):
            yield from _emit(node.then if _truth(val) else node.orelse, ctx)
        else:
            yield _text(val)


@dataclass(frozen=True)
class Template:
    """A compiled template; ``render`` never raises."""

    source: str
    nodes: tuple[_Node, ...] = field(repr=False)

    def render(self, labels: Mapping[str, str], value: float | None, external_url: str = "",
               check: Mapping[str, Any] = NO_CHECK, value_text: str = "") -> str:
        """Text for one alert; failures show as <error: ...>; output stops at OUTPUT_LIMIT.

        ``check`` holds the check's latest result under CHECK_FIELDS (``$check.NAME``);
        ``value_text`` is ``value`` with its unit (``$valueText``)."""
        parts, size = [], 0
        try:
            for s in _emit(self.nodes, _Ctx(labels, value, external_url, check, value_text)):
                parts.append(s)
                if (size := size + len(s)) > OUTPUT_LIMIT:
                    break
        except Exception as err:  # defensive only: _emit already contains failures
            parts.append(f"<error: {type(err).__name__}>")
        text = "".join(parts)
        return text if len(text) <= OUTPUT_LIMIT else text[: OUTPUT_LIMIT - len(_TRUNCATED)] + _TRUNCATED


# ---- parsing ----------------------------------------------------------------------------------------

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+) | (?P<close>-?}}) | (?P<str>"(?:[^"\\\n]|\\.)*") | (?P<raw>`[^`]*`)
  | (?P<num>[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<var>\$\w*(?:\.\w+)*) | (?P<field>(?:\.[A-Za-z_]\w*)+|\.) | (?P<ident>[A-Za-z_]\w*) | (?P<punct>[|()])
""", re.X)
_Tok = re.Match[str]  # kind: .lastgroup, text: [0]
_VARS: dict[str, _Get] = {
    "$value": lambda c: c.value, ".Value": lambda c: c.value, "$externalURL": lambda c: c.external_url,
    "$valueText": lambda c: c.value_text or _text(c.value),
}


def _error(text: str, pos: int, message: str) -> ValueError:
    line, col = text.count("\n", 0, pos) + 1, pos - text.rfind("\n", 0, pos)
    return ValueError(f"{message} at " + (f"line {line}, column {col}" if "\n" in text else f"column {col}"))


class _Parser:
    """Recursive descent over one action's tokens: pipeline := command ('|' command)*."""

    def __init__(self, toks: list[_Tok], text: str) -> None:
        self.toks, self.text, self.i = toks, text, 0

    def fail(self, message: str, tok: _Tok | None = None) -> ValueError:
        return _error(self.text, (tok or self.toks[min(self.i, len(self.toks) - 1)]).start(), message)

    def at(self, *texts: str) -> bool:
        return self.i < len(self.toks) and self.toks[self.i][0] in texts

    def pipeline(self, depth: int = 0) -> _Pipe:
        if depth > _MAX_NESTING:
            raise self.fail("parentheses nested too deeply")
        cmds = [self.command(depth, piped=False)]
        while self.at("|"):
            self.i += 1
            cmds.append(self.command(depth, piped=True))
        if depth == 0 and self.i < len(self.toks):
            raise self.fail(f"unexpected {self.toks[self.i][0]!r}")
        return _Pipe(tuple(cmds))

    def command(self, depth: int, piped: bool) -> tuple[str | None, tuple[_Get, ...]]:
        if self.i == len(self.toks) or self.at("|", ")"):
            raise self.fail("missing function after '|'" if piped else "missing value")
        tok = self.toks[self.i]
        func = tok[0] if tok.lastgroup == "ident" and tok[0] not in ("true", "false") else None
        if func is not None and func not in _FUNCS:
            raise self.fail(f"unknown function {func!r}", tok)
        self.i += func is not None
        args: list[_Get] = []
        while self.i < len(self.toks) and not self.at("|", ")"):
            self.i += 1
            args.append(self.operand(self.toks[self.i - 1], depth))
        if func is None:
            if piped or len(args) > 1:
                raise self.fail("only a function can follow '|'" if piped else f"{tok[0]!r} is not a function", tok)
            return None, tuple(args)
        lo, hi, _ = _FUNCS[func]
        if not lo <= (n := len(args) + piped) <= (hi or n):
            raise self.fail(f"{func} takes {'' if lo == hi else 'at least '}{lo} argument(s), got {n}"
                            + " (counting the piped value)" * piped, tok)
        if func in ("match", "reReplaceAll") and isinstance(args[0], _Lit) and isinstance(args[0].value, str):
            try:  # compile a literal pattern now, so a bad one is a config error
                args[0] = _Lit(_compile_regex(args[0].value))
            except ValueError as err:
                raise self.fail(str(err), tok) from None
        return func, tuple(args)

    def operand(self, tok: _Tok, depth: int) -> _Get:
        kind, text = tok.lastgroup, tok[0]
        if text == "(":
            pipe = self.pipeline(depth + 1)
            if not self.at(")"):
                raise self.fail("unclosed '('", tok)
            self.i += 1
            return pipe
        if kind in ("str", "raw", "num") or text in ("true", "false"):
            return _Lit(self.literal(tok))
        if kind == "ident":
            raise self.fail(f"function {text!r} used as an argument needs parentheses: ({text} ...)", tok)
        if text in _VARS:
            return _VARS[text]
        head, _, name = (text if kind == "var" else text[1:]).partition(".")  # "$labels.x" / ".Labels.x"
        if head in ("$labels", "Labels") and name and "." not in name:
            return lambda c: c.labels.get(name, MISSING_LABEL)
        if head in ("$labels", "Labels") and not name:
            raise self.fail(f"{text} is a map; use {text}.NAME", tok)
        if head == "$check":
            path = tuple(name.split(".")) if name else ()
            if not path or path[0] not in CHECK_FIELDS or (len(path) > 1 and path[0] != "detail"):
                raise self.fail(f"unknown variable {text!r} (use $check.NAME with NAME one of "
                                f"{', '.join(CHECK_FIELDS)}, or $check.detail.KEY)", tok)
            if path == ("detail",):
                raise self.fail(f"{text} is a map; use {text}.KEY", tok)
            return _check_field(path)
        known = "$labels.NAME, $value, $valueText, $check.NAME, $externalURL, .Labels.NAME, .Value"
        raise self.fail(f"unknown variable {text!r} (known: {known})", tok)

    def literal(self, tok: _Tok) -> _Val:
        kind, text = tok.lastgroup, tok[0]
        if kind == "raw" or text in ("true", "false"):
            return text[1:-1] if kind == "raw" else text == "true"
        if kind == "str":
            try:  # Go's usual escapes (\" \\ \n \t \r \uXXXX) are JSON's too
                return str(json.loads(text, strict=False))
            except ValueError:
                raise self.fail(f"bad escape in {text} (write \\\\ for a backslash or use a `raw` string)", tok) from None
        is_int = re.fullmatch(r"[+-]?\d+", text) is not None
        number = int(text) if is_int and len(text) < 21 else float(text)
        if math.isinf(number) or is_int and not -(2**63) <= number < 2**63:  # Go's int is 64-bit
            raise self.fail(f"number {text} out of range", tok)
        return number


_Piece = tuple[str, int, str | _Pipe | None]  # kind (text, out, if, else if, else, end), position, payload


def _scan(text: str) -> Iterator[_Piece]:
    """The template's text and actions in order, after {{- -}} trimming and without comments."""
    pos, trim_next = 0, False
    while True:
        start = text.find("{{", pos)
        chunk, i = (text[pos:] if start < 0 else text[pos:start]), start + 2
        chunk = chunk.lstrip(_WS) if trim_next else chunk
        if start >= 0 and text[i : i + 1] == "-" and text[i + 1 : i + 2] in tuple(_WS):  # "{{- "
            chunk, i = chunk.rstrip(_WS), i + 2
        if chunk:
            yield "text", pos, chunk
        if start < 0:
            return
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            if (close := re.compile(r"(?:[ \t\r\n]-)?}}").match(text, end + 2) if end >= 0 else None) is None:
                raise _error(text, start, "unclosed comment: '{{/*' needs '*/}}'")
            pos, trim_next = close.end(), len(close[0]) > 2
            continue
        toks: list[_Tok] = []
        while (m := _TOKEN.match(text, i)) is not None and m.lastgroup != "close":
            toks += [m] if m.lastgroup != "ws" else []
            i = m.end()
        if m is None and text[i : i + 1] in ("\"", "`"):
            raise _error(text, i, "unterminated string")
        if m is None:
            if "}}" not in text[i:]:
                raise _error(text, start, "unclosed action: '{{' without '}}'")
            raise _error(text, i, f"unexpected character {text[i]!r}")
        pos, trim_next = m.end(), m[0][0] == "-"
        yield _action(text, start, toks)


def _action(text: str, pos: int, toks: list[_Tok]) -> _Piece:
    if not toks:
        raise _error(text, pos, "empty action '{{ }}'")
    head = toks[0][0] if toks[0].lastgroup == "ident" else ""
    if head in ("range", "with", "define", "template", "block", "break", "continue"):
        raise _error(text, pos, f"'{head}' is not supported")
    kind, rest = ("else if", toks[2:]) if head == "else" and toks[1:2] and toks[1][0] == "if" else (head, toks[1:])
    if kind not in ("if", "else if", "else", "end"):
        return "out", pos, _Parser(toks, text).pipeline()
    if kind.endswith("if") != bool(rest):
        raise _error(text, pos, f"unexpected {rest[0][0]!r} after '{kind}'" if rest else "'if' needs a condition")
    return kind, pos, _Parser(rest, text).pipeline() if rest else None


def _block(pieces: Iterator[_Piece], text: str, depth: int) -> tuple[list[_Node], _Piece | None]:
    """Nodes up to the {{ else }}, {{ else if }} or {{ end }} that closes this block, and that piece."""
    nodes: list[_Node] = []
    for piece in pieces:
        if piece[0] == "if":
            nodes.append(_if_block(pieces, text, piece, depth + 1))
        elif piece[0] in ("text", "out") and piece[2] is not None:
            nodes.append(piece[2])
        else:
            return nodes, piece
    return nodes, None


def _if_block(pieces: Iterator[_Piece], text: str, head: _Piece, depth: int) -> _If:
    _, pos, cond = head
    if depth > _MAX_NESTING:
        raise _error(text, pos, "'if' blocks nested too deeply")
    assert isinstance(cond, _Pipe)
    then, stop = _block(pieces, text, depth)
    if stop is not None and stop[0] == "else if":  # the chained if shares this block's {{ end }}
        return _If(cond, tuple(then), (_if_block(pieces, text, stop, depth + 1),))
    orelse, stop = _block(pieces, text, depth) if stop is not None and stop[0] == "else" else ([], stop)
    if stop is None:
        raise _error(text, pos, "'if' without matching '{{ end }}'")
    if stop[0] != "end":
        raise _error(text, stop[1], f"unexpected '{stop[0]}' after 'else'")
    return _If(cond, tuple(then), tuple(orelse))


def compile_template(text: str) -> Template:
    """Parse a template when config loads; ValueError names the problem and its column."""
    nodes, stray = _block(_scan(text), text, 0)
    if stray is not None:
        raise _error(text, stray[1], f"'{stray[0]}' without 'if'")
    return Template(text, tuple(nodes))
