"""The parse tree of a template (Go's text/template/parse node kinds)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Text:
    text: str
    line: int


@dataclass
class Dot:
    line: int


@dataclass
class Nil:
    line: int


@dataclass
class Literal:
    """A constant: bool, str, int (``Rune`` for a character) or float."""

    value: Any
    line: int


@dataclass
class FieldChain:
    """``.A.B``, ``$x.A.B`` (``receiver`` the Variable), ``(pipeline).A`` (the Pipe) or
    ``now.UTC`` (the Identifier, called without arguments)."""

    receiver: Variable | Pipe | Identifier | None  # None: dot
    names: tuple[str, ...]
    line: int


@dataclass
class Variable:
    name: str
    line: int


@dataclass
class Identifier:
    """A function name."""

    name: str
    line: int


Arg = Dot | Nil | Literal | FieldChain | Variable | Identifier


@dataclass
class Command:
    args: list[Arg | Pipe]
    line: int


@dataclass
class Pipe:
    commands: list[Command]
    line: int
    decl: list[str] = field(default_factory=list)
    is_assign: bool = False


@dataclass
class Action:
    pipe: Pipe
    line: int


@dataclass
class Branch:
    """``if``, ``with`` and ``range``: the pipeline, the body and the else part."""

    kind: str
    pipe: Pipe
    body: list[Node]
    otherwise: list[Node]
    line: int


@dataclass
class Call:
    """``{{ template "name" pipeline }}`` (and the call half of ``block``)."""

    name: str
    pipe: Pipe | None
    line: int


@dataclass
class LoopControl:
    kind: str  # "break" or "continue"
    line: int


Node = Text | Action | Branch | Call | LoopControl
