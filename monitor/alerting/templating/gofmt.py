"""``printf``: Go's ``fmt.Sprintf`` for the verbs templates use.

Verbs: ``%v %s %q %d %f %F %e %E %g %G %x %X %o %b %c %t %U %%`` with the flags
``- + # 0 space``, a width and a precision (numbers, or ``*`` from the arguments). A verb
that does not fit its argument prints as Go does, ``%!d(string=abc)``; a missing argument
``%!d(MISSING)``; arguments left over ``%!(EXTRA int=1, string=a)``.
"""

from __future__ import annotations

import math
from typing import Any

from monitor.alerting.templating.values import GoStruct, go_float, go_type, sprint_value


def sprintf(fmt: str, args: list[Any]) -> str:
    out: list[str] = []
    arg_index = 0
    i = 0
    n = len(fmt)
    while i < n:
        char = fmt[i]
        if char != "%":
            j = fmt.find("%", i)
            j = n if j < 0 else j
            out.append(fmt[i:j])
            i = j
            continue
        i += 1
        if i >= n:
            out.append("%!(NOVERB)")
            break
        flags = ""
        while i < n and fmt[i] in "-+# 0":
            flags += fmt[i]
            i += 1
        width: int | None = None
        if i < n and fmt[i] == "*":
            i += 1
            if arg_index < len(args) and isinstance(args[arg_index], int) and abs(args[arg_index]) <= 1_000_000:
                width = args[arg_index]
                if width < 0:
                    flags += "-"
                    width = -width
            else:
                out.append("%!(BADWIDTH)")
            arg_index += 1
        else:
            start = i
            while i < n and fmt[i].isdigit():
                i += 1
            if i > start:
                width = int(fmt[start:i]) if i - start <= 6 else None  # Go ignores widths over 1e6
        precision: int | None = None
        if i < n and fmt[i] == ".":
            i += 1
            if i < n and fmt[i] == "*":
                i += 1
                if arg_index < len(args) and isinstance(args[arg_index], int) and args[arg_index] <= 1_000_000:
                    precision = max(args[arg_index], 0)
                else:
                    out.append("%!(BADPREC)")
                arg_index += 1
            else:
                start = i
                while i < n and fmt[i].isdigit():
                    i += 1
                precision = min(int(fmt[start:i][:7] or 0), 1_000_000) if i > start else 0
        if i >= n:
            out.append("%!(NOVERB)")
            break
        verb = fmt[i]
        i += 1
        if verb == "%":
            out.append("%")
            continue
        if arg_index >= len(args):
            out.append(f"%!{verb}(MISSING)")
            continue
        arg = args[arg_index]
        arg_index += 1
        out.append(_pad(format_one(verb, arg, flags, precision), width, flags, verb, arg))
    if arg_index < len(args):
        extra = ", ".join(f"{go_type(a)}={sprint_value(a)}" if a is not None else "<nil>" for a in args[arg_index:])
        out.append(f"%!(EXTRA {extra})")
    return "".join(out)


def _bad(verb: str, arg: Any) -> str:
    if arg is None:
        return f"%!{verb}(<nil>)"
    return f"%!{verb}({go_type(arg)}={sprint_value(arg)})"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def format_one(verb: str, arg: Any, flags: str = "", precision: int | None = None) -> str:
    """One verb applied to one argument, before padding to a width."""
    if isinstance(arg, list) and verb not in "vTs" and not (verb in "xXq" and all(isinstance(a, str) for a in arg)):
        return "[" + " ".join(format_one(verb, a, flags, precision) for a in arg) + "]"
    if verb == "T":
        return go_type(arg)
    if verb == "v":
        if isinstance(arg, float):
            return _sign(go_float(arg), flags) if precision is None else _float(arg, "g", flags, precision)
        if _is_int(arg):
            return _sign(sprint_value(arg), flags)
        if isinstance(arg, GoStruct) and "+" in flags:
            inner = " ".join(f"{name}:{sprint_value(arg.field(name), 1)}" for name in arg.FIELDS)
            return ("&" if arg.POINTER else "") + "{" + inner + "}"
        text = sprint_value(arg)
        return text[:precision] if precision is not None and isinstance(arg, str) else text
    if verb == "s":
        if isinstance(arg, (bool, int, float)) or arg is None:
            return _bad(verb, arg)
        text = sprint_value(arg)
        return text[:precision] if precision is not None else text
    if verb == "q":
        if isinstance(arg, str):
            return go_quote(arg)
        if _is_int(arg):
            return "'" + go_quote(chr(arg))[1:-1].replace("\\\"", "\"").replace("'", "\\'") + "'"
        if isinstance(arg, list):
            return "[" + " ".join(go_quote(a) for a in arg) + "]"
        return _bad(verb, arg)
    if verb == "t":
        return ("true" if arg else "false") if isinstance(arg, bool) else _bad(verb, arg)
    if verb in "dboxXcU":
        if _is_int(arg):
            return _integer(arg, verb, flags, precision)
        if verb in "xX" and isinstance(arg, str):
            text = arg.encode().hex()
            return text.upper() if verb == "X" else text
        return _bad(verb, arg)
    if verb in "eEfFgG":
        if isinstance(arg, float):
            return _float(arg, verb, flags, precision)
        return _bad(verb, arg)
    return _bad(verb, arg)


def _sign(text: str, flags: str) -> str:
    if text.startswith("-"):
        return text
    if "+" in flags:
        return "+" + text
    if " " in flags:
        return " " + text
    return text


def _integer(value: int, verb: str, flags: str, precision: int | None) -> str:
    if verb == "c":
        return chr(value) if 0 <= value <= 0x10FFFF else "\ufffd"
    if verb == "U":
        return f"U+{value:04X}"
    magnitude = abs(value)
    digits = {"d": str(magnitude), "b": f"{magnitude:b}", "o": f"{magnitude:o}",
              "x": f"{magnitude:x}", "X": f"{magnitude:X}"}[verb]
    if precision is not None:
        digits = digits.rjust(precision, "0") if precision else ("" if magnitude == 0 else digits)
    if "#" in flags:
        digits = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "") + digits
    return _sign(("-" if value < 0 else "") + digits, flags)


def _float(value: float, verb: str, flags: str, precision: int | None) -> str:
    if math.isnan(value):
        return "NaN" if "+" not in flags else "+NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    lower = verb.lower()
    if lower == "g" and precision is None:
        text = go_float(value)
    else:
        spec = f"{'#' if '#' in flags else ''}.{6 if precision is None else precision}{lower}"
        text = format(value, spec)
    if verb in "EG":
        text = text.upper()
    return _sign(text, flags)


def _pad(text: str, width: int | None, flags: str, verb: str, arg: Any) -> str:
    if width is None or len(text) >= width:
        return text
    if "-" in flags:
        return text.ljust(width)
    numeric = verb in "dboxXeEfFgGv" and isinstance(arg, (int, float)) and not isinstance(arg, bool)
    if "0" in flags and numeric and not (isinstance(arg, float) and not math.isfinite(arg)):
        sign = text[0] if text[:1] in "+- " else ""
        return sign + text[len(sign):].rjust(width - len(sign), "0")
    return text.rjust(width)


_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\v": "\\v",
            "\\": "\\\\", '"': '\\"'}


def go_quote(text: str) -> str:
    """``strconv.Quote``: double-quoted, Go escapes, printable non-ASCII kept as is."""
    out = ['"']
    for char in text:
        if char in _ESCAPES:
            out.append(_ESCAPES[char])
        elif char.isprintable() or char == " ":
            out.append(char)
        elif ord(char) < 0x80:
            out.append(f"\\x{ord(char):02x}")
        elif ord(char) <= 0xFFFF:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(f"\\U{ord(char):08x}")
    out.append('"')
    return "".join(out)
