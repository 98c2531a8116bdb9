"""CEL expressions, compiled and checked when config loads.

The CEL library only notices an unknown variable or function when an expression runs;
for a monitoring rule that means at 3 a.m. So every expression is compiled at load and
the names it references are checked against what will actually be provided.
"""

from __future__ import annotations

import re
import sys
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The CEL package's __init__ also imports its command-line tool (typer, click, rich): about
# 24 MiB of RSS and most of a second of start-up that a daemon never uses. An empty module
# under that name satisfies the import; nothing here calls the CLI.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

# CEL's standard functions and macros (as reported by Program.functions()); operators
# are spelled like `_+_`, `!_`, `@in` and are always allowed.
STANDARD_FUNCTIONS = frozenset({
    "size", "has", "int", "uint", "double", "string", "bytes", "bool", "dyn", "type",
    "timestamp", "duration", "matches", "contains", "startsWith", "endsWith", "all",
    "exists", "exists_one", "map", "filter", "max", "min", "getFullYear", "getMonth",
    "getDayOfYear", "getDayOfMonth", "getDate", "getDayOfWeek", "getHours", "getMinutes",
    "getSeconds", "getMilliseconds", "lowerAscii", "upperAscii", "trim", "split", "join",
    "replace", "indexOf", "lastIndexOf", "substring", "charAt", "format",
})
# Type names read as variables by the CEL parser.
TYPE_NAMES = frozenset({"int", "uint", "double", "string", "bool", "bytes", "list", "map", "null_type", "type"})
_COMPREHENSION_VAR = re.compile(r"\.\s*(?:all|exists|exists_one|map|filter)\s*\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,")


@dataclass(frozen=True)
class Expression:
    """A compiled CEL expression and its source text."""

    source: str
    program: Any  # cel.Program (the library ships no type stubs)

    def evaluate(self, variables: Mapping[str, Any]) -> Any:
        """Run the expression; raises ExpressionError with a one-line reason."""
        try:
            return self.program.execute(variables if isinstance(variables, dict) else dict(variables))
        except KeyError as err:  # the library's text is only the quoted key
            raise ExpressionError(f"no such key: {err.args[0]!r}" if err.args else "no such key") from None
        except Exception as err:  # the library raises RuntimeError/TypeError/ValueError
            raise ExpressionError(_first_line(str(err))) from None


class ExpressionError(Exception):
    pass


def compile_expression(source: str, variables: Iterable[str], functions: Iterable[str] = ()) -> Expression:
    """Compile ``source``; raises ValueError naming any syntax error or unknown name."""
    if not source.strip():
        raise ValueError("expression is empty")
    try:
        program = cel.compile(source)
    except Exception as err:
        raise ValueError(f"invalid CEL expression: {_syntax_message(str(err))}") from None
    known_vars = set(variables) | TYPE_NAMES | set(_COMPREHENSION_VAR.findall(source))
    unknown_vars = sorted(set(program.variables()) - known_vars)
    if unknown_vars:
        raise ValueError(
            f"unknown variable {', '.join(unknown_vars)} in {source!r} (available: {', '.join(sorted(set(variables)))})"
        )
    known_funcs = STANDARD_FUNCTIONS | set(functions)
    unknown_funcs = sorted(f for f in program.functions() if f not in known_funcs and not f.startswith(("_", "!_", "-_", "@")))
    if unknown_funcs:
        raise ValueError(f"unknown function {', '.join(unknown_funcs)} in {source!r}")
    return Expression(source, program)


def _first_line(text: str) -> str:
    return " ".join(text.split("\n")[0].split())


def _syntax_message(text: str) -> str:
    # The library prints "Failed to parse expression '...': ERROR: <input>:1:4: Syntax error: ..."
    match = re.search(r"<input>:(\d+):(\d+): (.*)", text)
    if match:
        return f"column {match.group(2)}: {match.group(3).strip()}"
    return _first_line(text)
