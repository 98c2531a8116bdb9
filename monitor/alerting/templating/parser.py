"""Go's text/template grammar: the tokens of one source into a tree and its ``define``s.

Errors are Go's, with the line they are on: an unknown function, an undefined variable,
an unclosed ``if``, an ``{{end}}`` too many. Checks that need every source of a set (a
``{{ template "x" }}`` naming a template no source defines) are the set's
(``templateset.py``).
"""

from __future__ import annotations

import re
from collections.abc import Container
from dataclasses import dataclass

from monitor.alerting.templating.lexer import TemplateSyntaxError, Token, tokenize, unquote
from monitor.alerting.templating.nodes import (
    Action,
    Arg,
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
from monitor.alerting.templating.values import Rune

MAX_NESTING = 100  # control structures and parentheses inside each other


@dataclass
class Definition:
    name: str
    body: list[Node]
    line: int


@dataclass
class Parsed:
    root: list[Node]
    defines: dict[str, Definition]


def parse(source: str, functions: Container[str]) -> Parsed:
    """Parse one template source; raises TemplateSyntaxError with the line."""
    return _Parser(tokenize(source), functions).parse()


def is_empty(body: list[Node]) -> bool:
    """Go's IsEmptyTree: only white space text. An empty ``define`` does not replace a
    template of the same name that already has a body."""
    return all(isinstance(node, Text) and not node.text.strip() for node in body)


_OCTAL = re.compile(r"[+-]?0[0-7_]+")


class _Stop(Exception):
    """An ``{{end}}`` or ``{{else}}`` reached while reading a list."""


class _Parser:
    def __init__(self, tokens: list[Token], functions: Container[str]) -> None:
        self.tokens = tokens
        self.pos = 0
        self.functions = functions
        self.defines: dict[str, Definition] = {}
        self.vars: list[str] = ["$"]
        self.range_depth = 0
        self.depth = 0

    # ---- tokens ------------------------------------------------------------------------------

    def peek(self, offset: int = 0) -> Token:
        return self.tokens[min(self.pos + offset, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        self.pos += 1
        return token

    def expect(self, kind: str, context: str) -> Token:
        token = self.next()
        if token.kind != kind:
            raise TemplateSyntaxError(token.line, f"unexpected {_describe(token)} in {context}")
        return token

    # ---- lists -------------------------------------------------------------------------------

    def parse(self) -> Parsed:
        root, stop = self.items(top=True)
        if stop is not None:
            token, word = stop
            raise TemplateSyntaxError(token.line, f"unexpected {{{{{word}}}}}")
        return Parsed(root, self.defines)

    def items(self, top: bool = False) -> tuple[list[Node], tuple[Token, str] | None]:
        """Nodes up to an ``{{end}}``/``{{else}}`` (returned with its token) or the end of input."""
        nodes: list[Node] = []
        while True:
            token = self.next()
            if token.kind == "eof":
                if not top:
                    raise TemplateSyntaxError(token.line, "unexpected EOF")
                return nodes, None
            if token.kind == "text":
                nodes.append(Text(token.value, token.line))
                continue
            # an action
            head = self.peek()
            if head.kind == "keyword" and head.value in ("end", "else"):
                self.next()
                if head.value == "end":
                    self.expect("close", "end")
                return nodes, (head, head.value)
            if head.kind == "keyword" and head.value == "define":
                if not top:
                    raise TemplateSyntaxError(head.line, "unexpected <define> in command")
                self.next()
                self.define(head)
                continue
            node = self.action()
            if node is not None:
                nodes.append(node)

    def action(self) -> Node | None:
        head = self.peek()
        if head.kind == "keyword":
            if head.value in ("if", "with", "range"):
                self.next()
                return self.branch(head.value, head.line)
            if head.value in ("template", "block"):
                self.next()
                return self.call(head)
            if head.value in ("break", "continue"):
                self.next()
                if self.range_depth == 0:
                    raise TemplateSyntaxError(head.line, f"{{{{{head.value}}}}} outside {{{{range}}}}")
                self.expect("close", head.value)
                return LoopControl(head.value, head.line)
        pipe = self.pipeline("command", decl=True)
        return Action(pipe, head.line)

    def define(self, head: Token) -> None:
        name_token = self.next()
        if name_token.kind not in ("string", "raw"):
            raise TemplateSyntaxError(name_token.line, f"unexpected {_describe(name_token)} in define clause")
        name = unquote(name_token)
        self.expect("close", "define clause")
        saved = self.vars
        self.vars = ["$"]
        body, stop = self.nested_items()
        self.vars = saved
        if stop is None or stop[1] != "end":
            token = stop[0] if stop else self.peek()
            raise TemplateSyntaxError(token.line, f"unexpected {{{{{stop[1] if stop else 'EOF'}}}}} in define")
        self.add_define(Definition(name, body, head.line))

    def add_define(self, definition: Definition) -> None:
        existing = self.defines.get(definition.name)
        if existing is not None and not is_empty(existing.body) and not is_empty(definition.body):
            raise TemplateSyntaxError(definition.line, f'multiple definition of template "{definition.name}"'
                                      f" (first at line {existing.line})")
        if existing is None or is_empty(existing.body):
            self.defines[definition.name] = definition

    def nested_items(self) -> tuple[list[Node], tuple[Token, str] | None]:
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise TemplateSyntaxError(self.peek().line, f"nested more than {MAX_NESTING} levels deep")
        try:
            return self.items()
        finally:
            self.depth -= 1

    def branch(self, kind: str, line: int) -> Branch:
        mark = len(self.vars)
        pipe = self.pipeline(kind, decl=True, range_decl=kind == "range")
        if kind == "range":
            self.range_depth += 1
        body, stop = self.nested_items()
        if kind == "range":
            self.range_depth -= 1
        otherwise: list[Node] = []
        assert stop is not None  # items() raises at EOF when not at the top
        token, word = stop
        if word == "else":
            after = self.peek()
            if after.kind == "keyword" and after.value == kind and kind in ("if", "with"):
                # {{else if ...}} / {{else with ...}}: a nested branch that shares our {{end}}.
                self.next()
                otherwise = [self.branch(kind, after.line)]
            else:
                self.expect("close", "else")
                otherwise, stop = self.nested_items()
                if stop is None or stop[1] != "end":
                    bad = stop[0] if stop else self.peek()
                    raise TemplateSyntaxError(bad.line, f"expected end; found {{{{{stop[1] if stop else 'EOF'}}}}}")
        del self.vars[mark:]
        return Branch(kind, pipe, body, otherwise, line)

    def call(self, head: Token) -> Node:
        name_token = self.next()
        if name_token.kind not in ("string", "raw"):
            raise TemplateSyntaxError(name_token.line, f"unexpected {_describe(name_token)} in {head.value} clause")
        name = unquote(name_token)
        pipe: Pipe | None = None
        if self.peek().kind != "close":
            pipe = self.pipeline(head.value, decl=False)
        else:
            self.next()
        if head.value == "block":
            if pipe is None:
                raise TemplateSyntaxError(head.line, "missing value for block")  # Go: block needs a pipeline
            saved = self.vars
            self.vars = ["$"]
            body, stop = self.nested_items()
            self.vars = saved
            if stop is None or stop[1] != "end":
                bad = stop[0] if stop else self.peek()
                raise TemplateSyntaxError(bad.line, "unexpected {{else}} in block")
            self.add_define(Definition(name, body, head.line))
        return Call(name, pipe, head.line)

    # ---- pipelines ---------------------------------------------------------------------------

    def pipeline(self, context: str, decl: bool, range_decl: bool = False, end: str = "close") -> Pipe:
        """Commands separated by ``|`` up to ``end`` (consumed); optionally a declaration."""
        start = self.peek()
        pipe = Pipe([], start.line)
        if decl and start.kind == "variable":
            after = self.peek(1)
            if after.kind in ("declare", "assign"):
                self.next()
                self.next()
                self.declare(pipe, [start], after.kind == "assign")
            elif after.kind == "comma" and range_decl:
                second = self.peek(2)
                op = self.peek(3)
                if second.kind != "variable" or op.kind not in ("declare", "assign"):
                    raise TemplateSyntaxError(after.line, "range can only initialize variables")
                self.pos += 4
                self.declare(pipe, [start, second], op.kind == "assign")
            elif after.kind == "comma":
                raise TemplateSyntaxError(after.line, f"too many declarations in {context}")
        while True:
            token = self.peek()
            if token.kind == end:
                self.next()
                break
            if token.kind in ("close", "rparen", "eof"):
                raise TemplateSyntaxError(token.line, f"unexpected {_describe(token)} in {context}"
                                          if token.kind != "eof" else "unclosed action")
            pipe.commands.append(self.command(context))
            if self.peek().kind == "pipe":
                pipe_token = self.next()
                if self.peek().kind in (end, "pipe"):
                    raise TemplateSyntaxError(pipe_token.line, "missing command after |")
        if not pipe.commands:
            raise TemplateSyntaxError(start.line, f"missing value for {context}")
        for index, command in enumerate(pipe.commands[1:], start=2):
            if isinstance(command.args[0], (Literal, Dot, Nil)):
                raise TemplateSyntaxError(command.line, f"non executable command in pipeline stage {index}")
        return pipe

    def declare(self, pipe: Pipe, tokens: list[Token], assign: bool) -> None:
        pipe.is_assign = assign
        for token in tokens:
            if assign:
                if token.value not in self.vars:
                    raise TemplateSyntaxError(token.line, f'undefined variable "{token.value}"')
            pipe.decl.append(token.value)
        if not assign:
            self.vars.extend(token.value for token in tokens)

    def command(self, context: str) -> Command:
        line = self.peek().line
        args: list[Arg | Pipe] = []
        while True:
            token = self.peek()
            if token.kind in ("pipe", "close", "rparen", "eof"):
                break
            if args and not token.spaced:
                raise TemplateSyntaxError(token.line, f"unexpected {_describe(token)} in operand")
            args.append(self.operand())
        if not args:
            raise TemplateSyntaxError(line, f"missing value for {context}")
        return Command(args, line)

    def operand(self) -> Arg | Pipe:
        token = self.next()
        term: Arg | Pipe
        if token.kind == "identifier":
            if token.value not in self.functions:
                raise TemplateSyntaxError(token.line, f'function "{token.value}" not defined')
            term = Identifier(token.value, token.line)
        elif token.kind == "dot":
            term = Dot(token.line)
        elif token.kind == "field":
            term = FieldChain(None, (token.value[1:],), token.line)
        elif token.kind == "variable":
            if token.value not in self.vars:
                raise TemplateSyntaxError(token.line, f'undefined variable "{token.value}"')
            term = Variable(token.value, token.line)
        elif token.kind == "keyword" and token.value in ("true", "false"):
            term = Literal(token.value == "true", token.line)
        elif token.kind == "keyword" and token.value == "nil":
            term = Nil(token.line)
        elif token.kind in ("string", "raw"):
            term = Literal(unquote(token), token.line)
        elif token.kind == "char":
            term = Literal(Rune(ord(unquote(token))), token.line)
        elif token.kind == "number":
            term = Literal(_number(token), token.line)
        elif token.kind == "lparen":
            self.depth += 1
            if self.depth > MAX_NESTING:
                raise TemplateSyntaxError(token.line, f"nested more than {MAX_NESTING} levels deep")
            term = self.pipeline("parenthesized pipeline", decl=False, end="rparen")
            self.depth -= 1
        else:
            raise TemplateSyntaxError(token.line, f"unexpected {_describe(token)} in operand")
        names: list[str] = []
        while self.peek().kind == "field" and not self.peek().spaced:
            names.append(self.next().value[1:])
        if not names:
            return term
        if isinstance(term, FieldChain):
            return FieldChain(term.receiver, term.names + tuple(names), term.line)
        if isinstance(term, (Variable, Pipe, Identifier)):  # `now.UTC`: the function's result
            return FieldChain(term, tuple(names), token.line)
        raise TemplateSyntaxError(token.line, f"unexpected . after term {token.value!r}")


def _number(token: Token) -> int | float:
    text = token.value
    if text.endswith("i"):
        raise TemplateSyntaxError(token.line, f"complex numbers are not supported: {text}")
    clean = text.replace("_", "")
    try:
        if _OCTAL.fullmatch(text):
            return int(clean, 8)
        return int(clean, 0)
    except ValueError:
        pass
    try:
        if clean.lstrip("+-").lower().startswith("0x"):
            return float.fromhex(clean)
        return float(clean)
    except ValueError:
        raise TemplateSyntaxError(token.line, f"illegal number syntax: {text!r}") from None


def _describe(token: Token) -> str:
    if token.kind == "close":
        return '"}}"'
    if token.kind == "eof":
        return "EOF"
    if token.kind == "keyword":
        return f"<{token.value}>"
    if token.kind in ("rparen", "lparen", "pipe", "comma", "declare", "assign"):
        return f'"{token.value}"'
    return f"{token.kind} {token.value!r}" if token.kind not in ("string", "raw") else f"quoted string {token.value}"
