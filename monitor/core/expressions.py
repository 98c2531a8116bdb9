"""CEL expressions, compiled and checked when config loads.

The CEL library only notices an unknown variable or function when an expression runs;
for a monitoring rule that means at 3 a.m. So every expression is compiled at load and
the names it references are checked against what will actually be provided.
"""

from __future__ import annotations

import logging
import re
import sys
import types
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# The CEL package's __init__ also imports its command-line tool (typer, click, rich): about
# 24 MiB of RSS and most of a second of start-up that a daemon never uses. An empty module
# under that name satisfies the import; nothing here calls the CLI.
sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
import cel  # noqa: E402

# The library logs every exception a Python function raises inside an expression as a
# warning of its own ("Python function 'rate' failed: NoData: ...") through the `cel`
# logger; with no logging configured (the CLI) that is a stray internal line on stderr.
# The exception itself comes back to us and is reported once, in our words.
_CEL_LOG = logging.getLogger("cel")
_CEL_LOG.addHandler(logging.NullHandler())
_CEL_LOG.propagate = False

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
        """Run the expression; raises ExpressionError with a one-line reason, or the
        :class:`NoValue` one of its functions raised."""
        return execute(self.program, variables)


class ExpressionError(Exception):
    pass


class NoValue(Exception):
    """Raised by a function an expression calls when there is nothing to compute on (an
    empty window): it propagates out of :func:`execute` as itself, not as an error."""


def execute(program: Any, variables: Mapping[str, Any]) -> Any:
    """Run a compiled program. The library wraps an exception raised by one of our functions
    in its own text ("Function 'rate' error: Python function call failed: ... Check function
    arguments and their types."); the original is kept instead: a :class:`NoValue` is
    re-raised as itself, anything else becomes an ExpressionError naming the function.

    The functions are pure over their arguments and bound data, so on a failure the program
    runs once more with each function wrapped to catch what it raises: the usual, successful
    evaluation pays nothing for it (the wrappers cost a quarter of a window function's time)."""
    scope = variables if isinstance(variables, dict) else dict(variables)
    try:
        return program.execute(scope)
    except Exception as err:  # the library raises RuntimeError/TypeError/ValueError/KeyError
        raised: list[tuple[str, Exception]] = []
        if any(callable(value) for value in scope.values()):
            try:
                program.execute({name: _capturing(name, value, raised) if callable(value) else value
                                 for name, value in scope.items()})
            except Exception:
                pass
        if raised:
            name, original = raised[0]
            if isinstance(original, NoValue):
                raise original from None
            raise ExpressionError(f"{name}(): {_call_message(name, original)}") from None
        if isinstance(err, KeyError):  # the library's text is only the quoted key
            raise ExpressionError(f"no such key: {err.args[0]!r}" if err.args else "no such key") from None
        raise ExpressionError(_first_line(str(err))) from None


def _capturing(name: str, function: Callable[..., Any], raised: list[tuple[str, Exception]]) -> Callable[..., Any]:
    def call(*args: Any) -> Any:
        try:
            return function(*args)
        except Exception as err:
            raised.append((name, err))
            raise
    return call


def _call_message(name: str, err: Exception) -> str:
    text = _first_line(str(err))
    if isinstance(err, TypeError):
        # "WindowFunctions.rate() missing 1 required positional argument: 'window'" -> the
        # part a rule author can act on.
        text = re.sub(r"^[\w.]*\(\)\s*", "", text)
        return f"wrong arguments ({text})"
    return text


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
