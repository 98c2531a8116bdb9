"""Running a parsed template over data, with Go's text/template semantics.

Fields and methods resolve as Go's do (a method wins over a field or map key of the same
name; a missing key of a label map is "", of a ``dict`` is ``<no value>``); ``range`` over a
map goes in key order; ``and``/``or`` stop at the first deciding argument; variables live to
the end of the control structure that declared them.

Bounds keep one template from hurting the daemon: nested ``{{ template }}`` calls, steps
(nodes and loop iterations) and output size are limited, and exceeding one is a run-time
error like any other.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from monitor.alerting.templating.functions import Function
from monitor.alerting.templating.nodes import (
    Action,
    Branch,
    Call,
    Command,
    Dot,
    FieldChain,
    Identifier,
    Literal,
    LoopControl,
    Nil,
    Node,
    Pipe,
    Text,
    Variable,
)
from monitor.alerting.templating.values import (
    KV,
    ExecError,
    GoStruct,
    go_type,
    sorted_items,
    sprint_value,
    truth,
)

MAX_CALL_DEPTH = 30  # {{ template }} inside {{ template }}; the defaults nest three deep
MAX_STEPS = 200_000  # nodes walked and loop iterations in one render
MAX_OUTPUT = 512 * 1024  # characters of output of one render

_MISSING = object()  # no value piped in (Go's missingVal)


class _Break(Exception):
    pass


class _Continue(Exception):
    pass


Printer = Callable[[Any], str]


def plain_text(value: Any) -> str:
    """How text/template prints an action's value."""
    if value is None:
        return "<no value>"
    return sprint_value(value, depth=1 if isinstance(value, GoStruct) and value.POINTER else 0)


class Execution:
    """One render: output, variables, budgets. ``printer`` turns an action's value into
    text (``plain_text``, or an escaping one for html and Slack mrkdwn)."""

    def __init__(self, templates: Mapping[str, list[Node]], functions: Mapping[str, Function],
                 printer: Printer = plain_text, name: str = "") -> None:
        self.templates = templates
        self.functions = functions
        self.printer = printer
        self.out: list[str] = []
        self.size = 0
        self.steps = 0
        self.depth = 0
        self.vars: list[tuple[str, Any]] = []
        self.name = name  # the template running, for error lines
        self.line = 0

    # ---- entry ----------------------------------------------------------------------------------

    def run(self, body: list[Node], data: Any) -> str:
        self.vars = [("$", data)]
        try:
            self.walk(data, body)
        except RecursionError:
            raise ExecError(self.where("templates nested too deeply")) from None
        return "".join(self.out)

    def where(self, message: str) -> str:
        where = f'template "{self.name}" line {self.line}' if self.name else f"line {self.line}"
        return f"{where}: {message}"

    def fail(self, message: str) -> ExecError:
        return ExecError(self.where(message))

    def write(self, text: str) -> None:
        self.size += len(text)
        if self.size > MAX_OUTPUT:
            raise self.fail(f"output longer than {MAX_OUTPUT} characters")
        self.out.append(text)

    def step(self, line: int) -> None:
        self.line = line
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise self.fail(f"ran more than {MAX_STEPS} steps")

    # ---- statements -----------------------------------------------------------------------------

    def walk(self, dot: Any, nodes: list[Node]) -> None:
        for node in nodes:
            self.step(node.line)
            if isinstance(node, Text):
                self.write(node.text)
            elif isinstance(node, Action):
                value = self.pipeline(dot, node.pipe)
                if not node.pipe.decl:
                    self.write(self.printer(value))
            elif isinstance(node, Branch):
                if node.kind == "range":
                    self.range(dot, node)
                else:
                    self.if_or_with(dot, node)
            elif isinstance(node, Call):
                self.call(dot, node)
            elif isinstance(node, LoopControl):
                raise _Break() if node.kind == "break" else _Continue()

    def if_or_with(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        value = self.pipeline(dot, node.pipe)
        if truth(value):
            self.walk(value if node.kind == "with" else dot, node.body)
        else:
            self.walk(dot, node.otherwise)
        del self.vars[mark:]

    def range(self, dot: Any, node: Branch) -> None:
        mark = len(self.vars)
        value = self.commands(dot, node.pipe)
        decl = node.pipe.decl
        if not node.pipe.is_assign:
            self.vars.extend((name, value) for name in decl)
        items: Iterable[tuple[Any, Any]]
        if isinstance(value, list):
            items = list(enumerate(value))
        elif isinstance(value, dict):
            items = sorted_items(value)
        elif isinstance(value, int) and not isinstance(value, bool):
            if len(decl) > 1:
                raise self.fail(f"can't use {go_type(value)} to iterate over more than one variable")
            items = ((i, i) for i in range(value))  # lazily: the step budget ends a huge count
        elif value is None:
            items = []
        else:
            raise self.fail(f"range can't iterate over {sprint_value(value)}")
        inner = len(self.vars)
        ran = False
        for key, element in items:
            ran = True
            self.step(node.line)
            if decl:
                if node.pipe.is_assign:
                    if len(decl) > 1:
                        self.set_var(decl[0], key)
                        self.set_var(decl[1], element)
                    else:
                        self.set_var(decl[0], element)
                else:
                    self.vars[-1] = (decl[-1], element)
                    if len(decl) > 1:
                        self.vars[-2] = (decl[0], key)
            try:
                self.walk(element, node.body)
            except _Continue:
                pass
            except _Break:
                del self.vars[inner:]
                break
            del self.vars[inner:]
        if not ran:
            self.walk(dot, node.otherwise)
        del self.vars[mark:]

    def call(self, dot: Any, node: Call) -> None:
        body = self.templates.get(node.name)
        if body is None:
            raise self.fail(f'no such template "{node.name}"')
        new_dot = self.pipeline(dot, node.pipe) if node.pipe is not None else None
        if self.depth >= MAX_CALL_DEPTH:
            raise self.fail(f"exceeded maximum template depth ({MAX_CALL_DEPTH})")
        saved = (self.vars, self.name, self.line)
        self.vars = [("$", new_dot)]
        self.name = node.name
        self.depth += 1
        try:
            self.walk(new_dot, body)
        finally:
            self.depth -= 1
            self.vars, self.name, self.line = saved

    # ---- pipelines ------------------------------------------------------------------------------

    def set_var(self, name: str, value: Any) -> None:
        for index in range(len(self.vars) - 1, -1, -1):
            if self.vars[index][0] == name:
                self.vars[index] = (name, value)
                return
        raise self.fail(f"undefined variable: {name}")

    def var(self, name: str) -> Any:
        for var_name, value in reversed(self.vars):
            if var_name == name:
                return value
        raise self.fail(f"undefined variable: {name}")

    def commands(self, dot: Any, pipe: Pipe) -> Any:
        value: Any = _MISSING
        for command in pipe.commands:
            value = self.command(dot, command, value)
        return value

    def pipeline(self, dot: Any, pipe: Pipe) -> Any:
        value = self.commands(dot, pipe)
        for name in pipe.decl:
            if pipe.is_assign:
                self.set_var(name, value)
            else:
                self.vars.append((name, value))
        return value

    def command(self, dot: Any, command: Command, final: Any) -> Any:
        first = command.args[0]
        self.line = command.line
        if isinstance(first, FieldChain):
            return self.field_chain(dot, first, command.args[1:], final)
        if isinstance(first, Identifier):
            return self.function(dot, first.name, command.args[1:], final)
        if isinstance(first, Nil):
            raise self.fail("nil is not a command")
        if len(command.args) > 1 or final is not _MISSING:
            raise self.fail(f"can't give argument to non-function {_shown(first)}")
        return self.arg(dot, first)

    def arg(self, dot: Any, node: Any) -> Any:
        """The value of one argument (no arguments of its own)."""
        if isinstance(node, Dot):
            return dot
        if isinstance(node, Nil):
            return None
        if isinstance(node, Literal):
            return node.value
        if isinstance(node, Variable):
            return self.var(node.name)
        if isinstance(node, FieldChain):
            return self.field_chain(dot, node, [], _MISSING)
        if isinstance(node, Pipe):
            return self.pipeline(dot, node)
        if isinstance(node, Identifier):
            return self.function(dot, node.name, [], _MISSING)
        raise self.fail(f"can't handle {node!r}")

    def field_chain(self, dot: Any, chain: FieldChain, args: list[Any], final: Any) -> Any:
        if chain.receiver is None:
            receiver = dot
        elif isinstance(chain.receiver, Variable):
            receiver = self.var(chain.receiver.name)
        else:
            receiver = self.arg(dot, chain.receiver)
        for name in chain.names[:-1]:
            receiver = self.field(dot, receiver, name, [], _MISSING)
        return self.field(dot, receiver, chain.names[-1], args, final)

    def field(self, dot: Any, receiver: Any, name: str, arg_nodes: list[Any], final: Any) -> Any:
        if receiver is None:
            return None  # Go: nil data gives the zero value, printed as <no value>
        methods: Mapping[str, Callable[..., Any]] = getattr(receiver, "METHODS", None) or {}
        has_args = bool(arg_nodes) or final is not _MISSING
        method = methods.get(name)
        if method is not None:
            args = [self.arg(dot, node) for node in arg_nodes]
            if final is not _MISSING:
                args.append(final)
            want = _arity(method) - 1
            if len(args) != want:
                raise self.fail(f"wrong number of args for {name}: want {want} got {len(args)}")
            try:
                return method(receiver, *args)
            except ExecError as err:
                raise self.fail(f"error calling {name}: {err}") from None
        if isinstance(receiver, GoStruct) and name in receiver.FIELDS:
            if has_args:
                raise self.fail(f"{name} has arguments but cannot be invoked as function")
            return receiver.field(name)
        if isinstance(receiver, dict):
            if has_args:
                raise self.fail(f"{name} is not a method but has arguments")
            if name in receiver:
                return receiver[name]
            return "" if isinstance(receiver, KV) else None
        raise self.fail(f"can't evaluate field {name} in type {go_type(receiver)}")

    def function(self, dot: Any, name: str, arg_nodes: list[Any], final: Any) -> Any:
        if name in ("and", "or"):
            return self.and_or(dot, name, arg_nodes, final)
        function = self.functions.get(name)
        if function is None:
            raise self.fail(f'function "{name}" not defined')
        args = [self.arg(dot, node) for node in arg_nodes]
        if final is not _MISSING:
            args.append(final)
        try:
            return function.call(args)
        except ExecError as err:
            raise self.fail(f"error calling {name}: {err}") from None

    def and_or(self, dot: Any, name: str, arg_nodes: list[Any], final: Any) -> Any:
        nodes: list[Any] = list(arg_nodes)
        if not nodes and final is _MISSING:
            raise self.fail(f"wrong number of args for {name}: want at least 1 got 0")
        value: Any = None
        count = len(nodes) + (final is not _MISSING)
        for index in range(count):
            value = self.arg(dot, nodes[index]) if index < len(nodes) else final
            if truth(value) == (name == "or"):
                return value
        return value


def _shown(node: Any) -> str:
    if isinstance(node, Literal):
        return sprint_value(node.value)
    if isinstance(node, Variable):
        return node.name
    if isinstance(node, Dot):
        return "."
    return type(node).__name__


@functools.cache
def _arity(function: Callable[..., Any]) -> int:
    return len(inspect.signature(function).parameters)
