"""Label sets as the engine handles them: a tuple of (name, value) pairs sorted by name.

Hashable and ordered as Prometheus orders series (``labels.Compare``: pair by pair, name then
value), and cheap to compare. Empty values do not exist: a label with an empty value is
the same as no label, as in Prometheus.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

Labels = tuple[tuple[str, str], ...]

NAME = "__name__"
BUCKET = "le"
EMPTY: Labels = ()


def make(pairs: Mapping[str, str] | Iterable[tuple[str, str]]) -> Labels:
    items = pairs.items() if isinstance(pairs, Mapping) else pairs
    return tuple(sorted((k, v) for k, v in items if v != ""))


def get(labels: Labels, name: str) -> str:
    for k, v in labels:
        if k == name:
            return v
    return ""


def drop_name(labels: Labels) -> Labels:
    for k, _ in labels:
        if k == NAME:
            return tuple(p for p in labels if p[0] != NAME)
    return labels


def keep(labels: Labels, names: frozenset[str]) -> Labels:
    return tuple(p for p in labels if p[0] in names)


def without(labels: Labels, names: frozenset[str]) -> Labels:
    return tuple(p for p in labels if p[0] not in names)


def with_label(labels: Labels, name: str, value: str) -> Labels:
    rest = [p for p in labels if p[0] != name]
    if value != "":
        rest.append((name, value))
        rest.sort()
    return tuple(rest)


def show(labels: Labels) -> str:
    """Go's ``labels.Labels.String()``: ``{__name__="a", job="x"}``."""
    return "{" + ", ".join(f"{k}={quote(v)}" for k, v in labels) + "}"


def quote(value: str) -> str:
    """Close to Go's ``strconv.Quote`` for the label values people use."""
    out = ['"']
    for ch in value:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\r":
            out.append("\\r")
        elif not ch.isprintable():
            code = ord(ch)
            out.append(f"\\x{code:02x}" if code < 0x80 else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"))
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)
