"""The compiled form of a query: a small immutable tree the evaluator walks.

promql-parser's AST is converted once at compile time, so an evaluation touches only these
plain objects (and the parser is not needed, nor loaded, past compilation).
"""

from __future__ import annotations

from dataclasses import dataclass

from .selector import Selector

SCALAR = "scalar"
VECTOR = "vector"
MATRIX = "matrix"
STRING = "string"

# Vector matching cardinalities.
ONE_TO_ONE = "one-to-one"
MANY_TO_ONE = "many-to-one"
ONE_TO_MANY = "one-to-many"
MANY_TO_MANY = "many-to-many"


@dataclass(frozen=True, slots=True)
class Number:
    value: float
    kind: str = SCALAR


@dataclass(frozen=True, slots=True)
class String:
    value: str
    kind: str = STRING


@dataclass(frozen=True, slots=True)
class VectorSel:
    selector: Selector
    offset_ms: int
    kind: str = VECTOR


@dataclass(frozen=True, slots=True)
class MatrixSel:
    vector: VectorSel
    range_ms: int
    kind: str = MATRIX


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Node, ...]
    kind: str


@dataclass(frozen=True, slots=True)
class Aggregate:
    op: str
    expr: Node
    param: Node | None
    grouping: tuple[str, ...]  # sorted
    without: bool
    kind: str = VECTOR


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    lhs: Node
    rhs: Node
    return_bool: bool
    card: str
    on: bool
    matching: tuple[str, ...]
    include: tuple[str, ...]
    kind: str


@dataclass(frozen=True, slots=True)
class Negate:
    expr: Node
    kind: str


Node = Number | String | VectorSel | MatrixSel | Call | Aggregate | Binary | Negate
