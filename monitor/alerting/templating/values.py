"""Go values as templates see them, in Python.

Templates in Alertmanager run over Go values, and what they print, compare and index depends
on the Go type: a missing label is "" (a ``map[string]string``), a missing ``dict`` key is
``<no value>``, ``{{ .CommonLabels }}`` prints ``alertname=X, job=y`` (the type has a
``String`` method), ``{{ .Alerts }}`` prints Go's struct syntax. The mapping used here:

| Go | Python |
|---|---|
| string | ``str`` (``HTML``/``URL``: ``str`` subclasses marking trusted text) |
| int, rune | ``int`` (``Rune`` prints as a number, as Go does) |
| float64 | ``float`` |
| bool | ``bool`` |
| nil | ``None`` |
| slice | ``GoList`` (a list with its Go type name) or a plain ``list`` (``[]interface {}``) |
| map | ``dict`` (``map[string]interface {}``) or ``KV`` (``template.KV``: missing keys are "") |
| struct | a ``GoStruct`` subclass: Go field names in ``FIELDS``, methods in ``METHODS`` |
| time.Time, time.Duration | ``GoTime``, ``GoDuration`` (``gotime.py``) |
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any, ClassVar


class ExecError(Exception):
    """A template failed while running (Go's "error calling X", "index out of range"...)."""


class HTML(str):
    """Go's ``template.HTML``: text the html renderer prints without escaping (``safeHtml``)."""


class URL(str):
    """Go's ``template.URL`` (``safeUrl``)."""


class Rune(int):
    """A character constant (``'a'``): an int32 in Go, printed as its number."""


class GoStruct:
    """A Go struct or named type with methods: what ``.Name`` resolves to on it.

    ``FIELDS`` are exported fields in declaration order (Go prints structs in that order);
    ``METHODS`` are callables taking the receiver first. A method wins over a field or map
    key of the same name, as in Go.
    """

    GO_TYPE: ClassVar[str] = "struct {}"
    FIELDS: ClassVar[tuple[str, ...]] = ()
    METHODS: ClassVar[Mapping[str, Callable[..., Any]]] = {}
    POINTER: ClassVar[bool] = False  # printed as &{...}: passed to Execute as a pointer

    def field(self, name: str) -> Any:
        return getattr(self, name)


class GoList(list[Any]):
    """A slice with a Go type name other than ``[]interface {}`` (and maybe methods)."""

    METHODS: ClassVar[Mapping[str, Callable[..., Any]]] = {}

    def __init__(self, items: Iterable[Any] = (), go_type: str = "[]interface {}") -> None:
        super().__init__(items)
        self.go_type = go_type


class KV(dict[str, str]):
    """Alertmanager's ``template.KV`` (label and annotation sets)."""

    METHODS: ClassVar[Mapping[str, Callable[..., Any]]] = {}  # filled in data.py


def go_type(value: Any) -> str:
    """The Go type name of a value, for error messages as Go words them."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, Rune):
        return "int32"
    if isinstance(value, int):
        return "int"
    if isinstance(value, float):
        return "float64"
    if isinstance(value, HTML):
        return "template.HTML"
    if isinstance(value, URL):
        return "template.URL"
    if isinstance(value, str):
        return "string"
    if isinstance(value, GoStruct):
        return ("*" if value.POINTER else "") + value.GO_TYPE
    if isinstance(value, GoList):
        return value.go_type
    if isinstance(value, KV):
        return "template.KV"
    if isinstance(value, list):
        return "[]interface {}"
    if isinstance(value, dict):
        return "map[string]interface {}"
    return type(value).__name__


def truth(value: Any) -> bool:
    """Go's template truth: false, 0, nil and empty strings, slices and maps are false;
    every struct is true."""
    if value is None:
        return False
    if isinstance(value, (bool, int, float, str, list, dict)):
        return bool(value)
    return True


def go_float(value: float) -> str:
    """fmt's ``%v`` of a float64: the shortest digits that read back the same, in exponent
    form when the decimal exponent is below -4 or 6 and above (strconv's 'g' with the
    shortest precision: ``1e+06``, ``1.5e-05``). Python's repr switches at other bounds, so
    its digits are laid out again here.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "-0" if math.copysign(1.0, value) < 0 else "0"
    sign, digit_tuple, exponent = Decimal(repr(value)).normalize().as_tuple()
    digits = "".join(map(str, digit_tuple)).rstrip("0") or "0"
    assert isinstance(exponent, int)
    exp = exponent + len(digit_tuple) - 1  # decimal exponent of the first digit
    minus = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{minus}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{minus}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return minus + digits + "0" * (exp + 1 - len(digits))
    return f"{minus}{digits[: exp + 1]}.{digits[exp + 1:]}"


def sprint_value(value: Any, depth: int = 0) -> str:
    """fmt's ``%v`` of one value (``fmt.Sprint`` of it alone)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return _string_method(value) or str(value)  # time.Month, time.Duration print by name
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        return value
    stringer = _string_method(value)
    if stringer is not None:
        return stringer
    if isinstance(value, GoStruct):
        inner = " ".join(sprint_value(value.field(name), depth + 1) for name in value.FIELDS)
        return ("&" if value.POINTER and depth == 0 else "") + "{" + inner + "}"
    if isinstance(value, list):
        return "[" + " ".join(sprint_value(item, depth + 1) for item in value) + "]"
    if isinstance(value, dict):
        return "map[" + " ".join(f"{sprint_value(k, depth + 1)}:{sprint_value(v, depth + 1)}"
                                 for k, v in sorted_items(value)) + "]"
    return str(value)


def _string_method(value: Any) -> str | None:
    methods = getattr(value, "METHODS", None)
    if methods and "String" in methods:
        text = methods["String"](value)
        assert isinstance(text, str)
        return text
    return None


def sprint(*args: Any) -> str:
    """``fmt.Sprint``: a space between operands when neither side is a string."""
    out: list[str] = []
    for index, arg in enumerate(args):
        if index > 0 and not isinstance(arg, str) and not isinstance(args[index - 1], str):
            out.append(" ")
        out.append(sprint_value(arg))
    return "".join(out)


def sprintln(*args: Any) -> str:
    """``fmt.Sprintln``: always a space between operands, and a newline."""
    return " ".join(sprint_value(arg) for arg in args) + "\n"


def sorted_items(mapping: Mapping[Any, Any]) -> list[tuple[Any, Any]]:
    """A map's entries in Go's order (templates and fmt sort keys)."""
    return sorted(mapping.items(), key=lambda item: _key_order(item[0]))


def _key_order(key: Any) -> tuple[int, Any]:
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, key)
    return (1, str(key))
