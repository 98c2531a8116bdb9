"""The functions a template can call: Go's builtins and Alertmanager's.

Go's: ``and or not len index slice print printf println eq ne lt le gt ge html js urlquery``.
Alertmanager's (its ``template.DefaultFuncs``): ``toUpper toLower title trimSpace join match
safeHtml safeUrl urlUnescape reReplaceAll stringSlice date tz since humanizeDuration toJson
now list dict append base64encode base64decode``.

Arguments are checked as Go checks them against the function's parameter types: a
``string`` parameter refuses an int ("wrong type for value; expected string; got int").
Regular expressions are RE2 (``monitor.core.regex``), Go's own syntax and linear time; the
text a regex runs over is capped at ``REGEX_INPUT_LIMIT``.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from monitor.alerting.templating import gotime
from monitor.alerting.templating.gofmt import sprintf
from monitor.alerting.templating.values import (
    HTML,
    KV,
    URL,
    ExecError,
    GoList,
    GoStruct,
    go_type,
    sorted_items,
    sprint,
    sprintln,
    truth,
)
from monitor.core.regex import compile_regex

REGEX_INPUT_LIMIT = 64 * 1024  # characters a regex function reads; more is an error


@dataclass(frozen=True)
class Function:
    """A template function: Go parameter types (``any``, ``string``, ``[]string``, ``int``,
    ``time``, ``float``) and an optional variadic one."""

    fn: Callable[..., Any]
    params: tuple[str, ...] = ()
    variadic: str | None = None

    def call(self, args: list[Any]) -> Any:
        fixed = len(self.params)
        if len(args) < fixed or (self.variadic is None and len(args) != fixed):
            want = f"at least {fixed}" if self.variadic is not None else str(fixed)
            raise ExecError(f"wrong number of args: want {want} got {len(args)}")
        converted = [_convert(kind, arg) for kind, arg in zip(self.params, args, strict=False)]
        if self.variadic is not None:
            converted += [_convert(self.variadic, arg) for arg in args[fixed:]]
        return self.fn(*converted)


_GO_PARAM = {"string": "string", "[]string": "[]string", "int": "int", "time": "time.Time",
             "float": "float64"}


def _convert(kind: str, value: Any) -> Any:
    if kind == "any":
        return value
    ok = {
        "string": lambda v: isinstance(v, str),
        "[]string": lambda v: isinstance(v, list) and all(isinstance(i, str) for i in v),
        "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "time": lambda v: isinstance(v, gotime.GoTime),
        "float": lambda v: isinstance(v, float),
    }[kind](value)
    if not ok:
        if value is None:
            raise ExecError(f"invalid value; expected {_GO_PARAM[kind]}")
        raise ExecError(f"wrong type for value; expected {_GO_PARAM[kind]}; got {go_type(value)}")
    return value


# ---- Go's builtins ------------------------------------------------------------------------------

def _not(value: Any) -> bool:
    return not truth(value)


def _len(value: Any) -> int:
    if isinstance(value, str):
        return len(value.encode("utf-8", "surrogatepass"))  # Go counts bytes
    if isinstance(value, (list, dict)):
        return len(value)
    if value is None:
        raise ExecError("len of nil pointer")
    raise ExecError(f"len of type {go_type(value)}")


def _index(item: Any, *keys: Any) -> Any:
    for key in keys:
        if item is None:
            raise ExecError("index of untyped nil")
        if isinstance(item, (list, str)):
            if not isinstance(key, int) or isinstance(key, bool):
                raise ExecError(f"cannot index slice/array with type {go_type(key)}")
            size = _len(item)
            if key < 0 or key >= size:
                raise ExecError(f"index out of range: {key}")
            item = item[key] if isinstance(item, list) else item.encode()[key]
        elif isinstance(item, dict):
            if not isinstance(key, str):
                raise ExecError(f"value has type {go_type(key)}; should be string")
            item = item.get(key, "" if isinstance(item, KV) else None)
        else:
            raise ExecError(f"can't index item of type {go_type(item)}")
    return item


def _slice(item: Any, *indexes: Any) -> Any:
    if item is None:
        raise ExecError("slice of untyped nil")
    if len(indexes) > 3:
        raise ExecError(f"too many slice indexes: {len(indexes)}")
    if isinstance(item, str):
        if len(indexes) == 3:
            raise ExecError("cannot 3-index slice a string")
        data = item.encode()
        size = len(data)
    elif isinstance(item, list):
        size = len(item)
    else:
        raise ExecError(f"can't slice item of type {go_type(item)}")
    bounds = [0, size]
    for position, index in enumerate(indexes[:2]):
        if not isinstance(index, int) or isinstance(index, bool):
            raise ExecError(f"cannot index slice/array with type {go_type(index)}")
        if index < 0 or index > size:
            raise ExecError(f"index out of range: {index}")
        bounds[position] = index
    if bounds[0] > bounds[1]:
        raise ExecError(f"invalid slice index: {bounds[0]} > {bounds[1]}")
    if isinstance(item, str):
        return data[bounds[0]:bounds[1]].decode("utf-8", "replace")
    result = item[bounds[0]:bounds[1]]
    return GoList(result, item.go_type) if isinstance(item, GoList) else result


def _basic_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float"
    if isinstance(value, str):
        return "string"
    return "other"


def _eq(first: Any, *others: Any) -> bool:
    if not others:
        raise ExecError("missing argument for comparison")
    kind = _basic_kind(first)
    for other in others:
        other_kind = _basic_kind(other)
        if kind != other_kind:
            if first is not None and other is not None:
                raise ExecError("incompatible types for comparison")
            if first is None and other is None:
                return True
            continue
        if kind == "other":
            if isinstance(first, (list, dict)) or isinstance(other, (list, dict)):
                raise ExecError(f"non-comparable type {go_type(first)}")
            if isinstance(first, GoStruct) and any(isinstance(first.field(f), (list, dict)) for f in first.FIELDS):
                raise ExecError(f"non-comparable type {go_type(first)}")
            if first == other:
                return True
        elif first == other:
            return True
    return False


def _ne(first: Any, second: Any) -> bool:
    return not _eq(first, second)


def _lt(first: Any, second: Any) -> bool:
    kind, other = _basic_kind(first), _basic_kind(second)
    if kind in ("bool", "other") or other in ("bool", "other"):
        raise ExecError("invalid type for comparison")
    if kind != other:
        raise ExecError("incompatible types for comparison")
    return bool(first < second)


def _le(first: Any, second: Any) -> bool:
    return _lt(first, second) or _eq(first, second)


def _gt(first: Any, second: Any) -> bool:
    return not _le(first, second)


def _ge(first: Any, second: Any) -> bool:
    return not _lt(first, second)


def _joined(args: Sequence[Any]) -> str:
    """Go's evalArgs for html/js/urlquery: one string as is, else fmt.Sprint of all."""
    if len(args) == 1 and isinstance(args[0], str):
        return args[0]
    return sprint(*args)


_HTML_ESCAPES = {"\0": "\ufffd", '"': "&#34;", "'": "&#39;", "&": "&amp;", "<": "&lt;", ">": "&gt;"}


def html_escape(text: str) -> str:
    """Go's ``template.HTMLEscapeString``."""
    return "".join(_HTML_ESCAPES.get(char, char) for char in text)


def _html(*args: Any) -> str:
    return html_escape(_joined(args))


_JS_ESCAPES = {"\\": "\\\\", "'": "\\'", '"': '\\"', "<": "\\u003C", ">": "\\u003E", "&": "\\u0026",
               "=": "\\u003D"}


def js_escape(text: str) -> str:
    """Go's ``template.JSEscapeString``."""
    out = []
    for char in text:
        if char in _JS_ESCAPES:
            out.append(_JS_ESCAPES[char])
        elif ord(char) < 0x20 or (ord(char) >= 0x80 and not char.isprintable()):
            out.append(f"\\u{ord(char):04X}")
        else:
            out.append(char)
    return "".join(out)


def _js(*args: Any) -> str:
    return js_escape(_joined(args))


def _urlquery(*args: Any) -> str:
    return urllib.parse.quote_plus(_joined(args), safe="")


def _printf(fmt: str, *args: Any) -> str:
    return sprintf(fmt, list(args))


# ---- Alertmanager's -----------------------------------------------------------------------------

# A word as Unicode word breaking sees one here: letters, digits and "_", joined across a
# single apostrophe or period ("they're", "v1.2", "foo_bar" are one word each).
_WORD = re.compile(r"\w+(?:['’.:]\w+)*")


def _title(text: str) -> str:
    """Alertmanager's ``title`` (golang.org/x/text cases.Title): each word's first letter
    upper case and the rest lower case; an apostrophe inside a word does not start one."""
    return _WORD.sub(lambda m: m[0][:1].upper() + m[0][1:].lower(), text)


def _join(sep: str, items: list[str]) -> str:
    return sep.join(items)


def _regex(pattern: str) -> Any:
    try:
        return compile_regex(pattern)
    except ValueError as err:
        raise ExecError(f"error parsing regexp: {err}") from None


def _capped(text: str) -> str:
    if len(text) > REGEX_INPUT_LIMIT:
        raise ExecError(f"text longer than {REGEX_INPUT_LIMIT} characters for a regex")
    return text


def _match(pattern: str, text: str) -> bool:
    return _regex(pattern).search(_capped(text)) is not None


_GO_TEMPLATE_REF = re.compile(r"\$\$|\$\{([A-Za-z0-9_]+)\}|\$([A-Za-z0-9_]+)")


def _re_replace_all(pattern: str, replacement: str, text: str) -> str:
    """Go's ``ReplaceAllString``: ``$1``/``${name}`` expand (``$1x`` is the group named
    "1x", which is empty), and an empty match right after a match is skipped."""
    regex = _regex(pattern)
    _capped(text)
    out: list[str] = []
    last = 0
    previous_end = -1
    for found in regex.finditer(text):
        start, end = found.start(), found.end()
        if start == end and start == previous_end:
            continue
        groups = found.groupdict()

        def expand(ref: re.Match[str], found: Any = found, groups: dict[str, Any] = groups) -> str:
            if ref[0] == "$$":
                return "$"
            name = ref[1] or ref[2]
            if name.isdigit():
                try:
                    return found[int(name)] or ""
                except IndexError:
                    return ""
            return groups.get(name) or ""

        out.append(text[last:start])
        out.append(_GO_TEMPLATE_REF.sub(expand, replacement))
        last = end
        previous_end = end
        if len(out) > REGEX_INPUT_LIMIT:
            raise ExecError("too many matches")
    out.append(text[last:])
    return "".join(out)


def _string_slice(*items: str) -> GoList:
    return GoList(items, "[]string")


def _url_unescape(text: str) -> str:
    """Go's ``url.QueryUnescape``: ``+`` is a space; a bad ``%`` escape is an error."""
    bad = re.search(r"%(?![0-9A-Fa-f]{2})", text)
    if bad:
        raise ExecError(f"invalid URL escape {text[bad.start():bad.start() + 3]!r}")
    return urllib.parse.unquote_plus(text, errors="replace")


def _date(layout: str, value: gotime.GoTime) -> str:
    return gotime.format_time(value, layout)


def _tz(name: str, value: gotime.GoTime) -> gotime.GoTime:
    return value.in_zone(gotime.load_zone(name))


def _since(value: gotime.GoTime) -> gotime.GoDuration:
    return gotime.GoDuration(time.time_ns() - value.total_nanos())


def _to_float(value: Any) -> float:
    """Prometheus' ConvertToFloat, which ``humanizeDuration`` reads its argument with."""
    if isinstance(value, gotime.GoDuration):
        return int(value) / 1e9
    if isinstance(value, bool):
        raise ExecError(f"can't convert {go_type(value)} to float")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            if value.strip() != value or "_" in value:
                raise ValueError
            return float(value)
        except ValueError:
            raise ExecError(f'strconv.ParseFloat: parsing "{value}": invalid syntax') from None
    raise ExecError(f"can't convert {go_type(value)} to float")


def humanize_duration(value: Any) -> str:
    """Prometheus' ``humanizeDuration``: ``1d 2h 3m 4s`` from a day down to a minute,
    ``1.234s`` with four significant digits below, ``100ms``, ``100us`` under a second."""
    seconds = _to_float(value)
    if math.isnan(seconds) or math.isinf(seconds):
        return _g4(seconds)
    if seconds == 0:
        return "0s"
    if abs(seconds) >= 1:
        sign = "-" if seconds < 0 else ""
        seconds = abs(seconds)
        whole = int(seconds)
        secs, minutes, hours, days = whole % 60, whole // 60 % 60, whole // 3600 % 24, whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {secs}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {secs}s"
        if minutes:
            return f"{sign}{minutes}m {secs}s"
        return f"{sign}{_g4(seconds)}s"
    prefix = ""
    for unit in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(seconds) >= 1:
            break
        prefix = unit
        seconds *= 1000
    return f"{_g4(seconds)}{prefix}s"


def _g4(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    text = f"{value:.4g}"
    mantissa, _, exponent = text.partition("e")
    return f"{mantissa}e{exponent[0]}{exponent[1:].zfill(2)}" if exponent else text


def to_json_value(value: Any) -> Any:
    """What Go's ``json.Marshal`` sees: structs by their JSON names, times as RFC 3339."""
    if isinstance(value, gotime.GoTime):
        return gotime.format_time(value, "2006-01-02T15:04:05.999999999Z07:00")
    if isinstance(value, GoStruct):
        names: Sequence[tuple[str, str]] = getattr(value, "JSON", [(f, f) for f in value.FIELDS])
        return {json_name: to_json_value(value.field(field)) for field, json_name in names}
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in sorted_items(value)}
    if isinstance(value, list):
        return [to_json_value(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        raise ExecError(f"json: unsupported value: {_g4(value)}")
    return value


def _to_json(value: Any) -> str:
    text = json.dumps(to_json_value(value), ensure_ascii=False, separators=(",", ":"))
    # Go's encoder escapes these so the output is safe inside HTML <script>.
    return (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))


def _list(*items: Any) -> list[Any]:
    return list(items)


def _append(items: Any, *more: Any) -> list[Any]:
    if not isinstance(items, list):
        raise ExecError(f"wrong type for value; expected []interface {{}}; got {go_type(items)}")
    return [*items, *more]


def _dict(*pairs: Any) -> dict[str, Any]:
    if len(pairs) % 2:
        raise ExecError("dict requires an even number of arguments")
    out: dict[str, Any] = {}
    for key, value in zip(pairs[::2], pairs[1::2], strict=True):
        if not isinstance(key, str):
            raise ExecError("dict keys must be strings")
        out[key] = value
    return out


def _b64encode(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode()


def _b64decode(text: str) -> str:
    try:
        return base64.b64decode(text.encode(), altchars=b"-_", validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        raise ExecError("illegal base64 data") from None


def _trim_space(text: str) -> str:
    # Go's strings.TrimSpace: Unicode white space (Python's str.strip also strips a few
    # separators Go keeps, e.g. U+001C..U+001F).
    return text.strip("".join(c for c in _UNICODE_SPACE))


_UNICODE_SPACE = "\t\n\v\f\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a" \
    "\u2028\u2029\u202f\u205f\u3000"


def _per_rune(convert: Callable[[str], str]) -> Callable[[str], str]:
    """Go maps case one rune to one rune: "ß" stays "ß" in upper case (Python gives "SS")."""
    def mapped(text: str) -> str:
        if text.isascii():
            return convert(text)
        return "".join(c if len(converted := convert(c)) != 1 else converted for c in text)
    return mapped


FUNCTIONS: dict[str, Function] = {
    # Go's builtins (and/or are evaluated lazily by the evaluator)
    "and": Function(lambda *a: a[-1], (), "any"),
    "or": Function(lambda *a: a[-1], (), "any"),
    "not": Function(_not, ("any",)),
    "len": Function(_len, ("any",)),
    "index": Function(_index, ("any",), "any"),
    "slice": Function(_slice, ("any",), "any"),
    "print": Function(sprint, (), "any"),
    "println": Function(sprintln, (), "any"),
    "printf": Function(_printf, ("string",), "any"),
    "eq": Function(_eq, ("any",), "any"),
    "ne": Function(_ne, ("any", "any")),
    "lt": Function(_lt, ("any", "any")),
    "le": Function(_le, ("any", "any")),
    "gt": Function(_gt, ("any", "any")),
    "ge": Function(_ge, ("any", "any")),
    "html": Function(_html, (), "any"),
    "js": Function(_js, (), "any"),
    "urlquery": Function(_urlquery, (), "any"),
    # Alertmanager's
    "toUpper": Function(_per_rune(str.upper), ("string",)),
    "toLower": Function(_per_rune(str.lower), ("string",)),
    "title": Function(_title, ("string",)),
    "trimSpace": Function(_trim_space, ("string",)),
    "join": Function(_join, ("string", "[]string")),
    "match": Function(_match, ("string", "string")),
    "safeHtml": Function(HTML, ("string",)),
    "safeUrl": Function(URL, ("string",)),
    "urlUnescape": Function(_url_unescape, ("string",)),
    "reReplaceAll": Function(_re_replace_all, ("string", "string", "string")),
    "stringSlice": Function(_string_slice, (), "string"),
    "date": Function(_date, ("string", "time")),
    "tz": Function(_tz, ("string", "time")),
    "now": Function(gotime.now),
    "since": Function(_since, ("time",)),
    "humanizeDuration": Function(humanize_duration, ("any",)),
    "toJson": Function(_to_json, ("any",)),
    "list": Function(_list, (), "any"),
    "append": Function(_append, ("any",), "any"),
    "dict": Function(_dict, (), "any"),
    "base64encode": Function(_b64encode, ("string",)),
    "base64decode": Function(_b64decode, ("string",)),
}
