"""Go's text/template lexer: text, and inside ``{{ }}`` the tokens of an action.

``{{- `` trims all white space before the action and `` -}}`` all white space after it
(space, tab, CR, LF), as Go does; the dash must be followed (preceded) by white space, so
``{{-3}}`` is the number -3. ``{{/* ... */}}`` is a comment. Positions are line numbers,
1-based, which is what config errors point at.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SPACE = " \t\r\n"
KEYWORDS = frozenset({"if", "else", "end", "range", "with", "define", "template", "block", "break",
                      "continue", "nil", "true", "false"})


class TemplateSyntaxError(ValueError):
    """A parse error at ``line`` (1-based) of the template text."""

    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


@dataclass(frozen=True)
class Token:
    # text, open, close, space, field, variable, identifier, keyword, dot, string, raw, char,
    # number, pipe, lparen, rparen, declare, assign, comma, eof
    kind: str
    value: str
    line: int
    spaced: bool = False  # white space right before it (separates arguments from chains)


def tokenize(source: str) -> list[Token]:
    """Every token of a template, ending with ``eof``; raises TemplateSyntaxError."""
    tokens: list[Token] = []
    pos = 0
    line = 1
    n = len(source)
    trim_next = False
    while pos < n:
        start = source.find("{{", pos)
        text = source[pos:] if start < 0 else source[pos:start]
        trim_before = start >= 0 and source.startswith("-", start + 2) and start + 3 < n and source[start + 3] in SPACE
        if trim_next:
            stripped = text.lstrip(SPACE)
            line += text[: len(text) - len(stripped)].count("\n")
            text = stripped
        if trim_before:
            kept = text.rstrip(SPACE)
            trailing_lines = text[len(kept):].count("\n")
            text = kept
        else:
            trailing_lines = 0
        if text:
            tokens.append(Token("text", text, line))
        line += text.count("\n") + trailing_lines
        if start < 0:
            break
        pos = start + 2 + (2 if trim_before else 0)
        open_line = line
        # A comment: {{/* ... */}} with optional trim markers, nothing else in the action.
        if source.startswith("/*", pos):
            end = source.find("*/", pos + 2)
            if end < 0:
                raise TemplateSyntaxError(open_line, "unclosed comment")
            line += source[pos:end].count("\n")
            after = end + 2
            if source.startswith(" -}}", after) or (after < n and source[after] in SPACE and source.startswith("-}}", after + 1)):
                pos = after + 4
                trim_next = True
            elif source.startswith("}}", after):
                pos = after + 2
                trim_next = False
            else:
                raise TemplateSyntaxError(line, "comment ends before closing delimiter")
            continue
        tokens.append(Token("open", "{{", open_line))
        pos, line, trim_next = _action(source, pos, line, tokens)
    tokens.append(Token("eof", "", line))
    return tokens


def _action(source: str, pos: int, line: int, tokens: list[Token]) -> tuple[int, int, bool]:
    """Tokens of one action from ``pos`` up to and including its ``}}``."""
    n = len(source)
    spaced = False
    depth = 0
    while True:
        if pos >= n:
            raise TemplateSyntaxError(line, "unclosed action")
        char = source[pos]
        if char in SPACE:
            if source.startswith("-}}", pos + 1):
                line += char == "\n"
                tokens.append(Token("close", "}}", line))
                return pos + 4, line, True
            line += char == "\n"
            pos += 1
            spaced = True
            continue
        if source.startswith("}}", pos):
            if depth > 0:
                raise TemplateSyntaxError(line, "unclosed left paren")
            tokens.append(Token("close", "}}", line))
            return pos + 2, line, False
        start = pos
        kind: str
        if char == "|":
            kind, pos = "pipe", pos + 1
        elif char == "(":
            kind, pos, depth = "lparen", pos + 1, depth + 1
        elif char == ")":
            if depth == 0:
                raise TemplateSyntaxError(line, "unexpected right paren")
            kind, pos, depth = "rparen", pos + 1, depth - 1
        elif char == ",":
            kind, pos = "comma", pos + 1
        elif source.startswith(":=", pos):
            kind, pos = "declare", pos + 2
        elif char == "=":
            kind, pos = "assign", pos + 1
        elif char == '"':
            kind, pos = "string", _quoted(source, pos, '"', line)
        elif char == "`":
            end = source.find("`", pos + 1)
            if end < 0:
                raise TemplateSyntaxError(line, "unterminated raw quoted string")
            kind, pos = "raw", end + 1
        elif char == "'":
            kind, pos = "char", _quoted(source, pos, "'", line)
        elif char == "$":
            pos = _word_end(source, pos + 1)
            kind = "variable"
        elif char == "." and pos + 1 < n and source[pos + 1].isdigit():
            kind, pos = "number", _number_end(source, pos, line)
        elif char == ".":
            end = _word_end(source, pos + 1)
            kind, pos = ("field", end) if end > pos + 1 else ("dot", pos + 1)
        elif char.isdigit() or (char in "+-" and pos + 1 < n and (source[pos + 1].isdigit() or source[pos + 1] == ".")):
            kind, pos = "number", _number_end(source, pos, line)
        elif char.isalpha() or char == "_":
            pos = _word_end(source, pos)
            kind = "keyword" if source[start:pos] in KEYWORDS else "identifier"
        else:
            raise TemplateSyntaxError(line, f"unexpected {char!r} in command")
        value = source[start:pos]
        tokens.append(Token(kind, value, line, spaced))
        line += value.count("\n")  # raw strings may span lines
        spaced = False


def _word_end(source: str, pos: int) -> int:
    while pos < len(source) and (source[pos].isalnum() or source[pos] == "_"):
        pos += 1
    return pos


_NUMBER = re.compile(
    r"[+-]?(?:0[xX][0-9a-fA-F_]*(?:\.[0-9a-fA-F_]*)?(?:[pP][+-]?[0-9_]+)?|0[bBoO][0-9_]+"
    r"|[0-9_]*(?:\.[0-9_]*)?(?:[eE][+-]?[0-9_]+)?)i?"
)


def _number_end(source: str, pos: int, line: int) -> int:
    end = _NUMBER.match(source, pos)
    stop = end.end() if end else pos
    if stop < len(source) and (source[stop].isalnum() or source[stop] in "._"):
        raise TemplateSyntaxError(line, f"bad number syntax: {source[pos:stop + 1]!r}")
    return stop


def _quoted(source: str, pos: int, quote: str, line: int) -> int:
    end = pos + 1
    while end < len(source):
        char = source[end]
        if char == "\\":
            end += 2
            continue
        if char == "\n":
            break
        if char == quote:
            return end + 1
        end += 1
    raise TemplateSyntaxError(line, "unterminated quoted string" if quote == '"' else "unterminated character constant")


_SIMPLE_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v",
                   "\\": "\\", "'": "'", '"': '"'}


def unquote(token: Token) -> str:
    """The value of a string, raw string or character token, with Go's escapes."""
    body = token.value[1:-1]
    if token.kind == "raw":
        return body.replace("\r", "")
    out: list[str] = []
    i = 0
    while i < len(body):
        char = body[i]
        if char != "\\":
            out.append(char)
            i += 1
            continue
        kind = body[i + 1] if i + 1 < len(body) else ""
        if kind in _SIMPLE_ESCAPES and not (kind == "'" and token.kind == "string") and not (
                kind == '"' and token.kind == "char"):
            out.append(_SIMPLE_ESCAPES[kind])
            i += 2
        elif kind in "xuU" and kind:
            size = {"x": 2, "u": 4, "U": 8}[kind]
            digits = body[i + 2 : i + 2 + size]
            if len(digits) != size or any(c not in "0123456789abcdefABCDEF" for c in digits):
                raise TemplateSyntaxError(token.line, f"invalid syntax in quoted string {token.value}")
            code = int(digits, 16)
            if kind == "x":
                out.append(chr(code))  # a byte; kept as the code point (bytes >= 0x80 are rare here)
            else:
                if code > 0x10FFFF or 0xD800 <= code <= 0xDFFF:
                    raise TemplateSyntaxError(token.line, f"invalid syntax in quoted string {token.value}")
                out.append(chr(code))
            i += 2 + size
        elif kind and kind in "01234567":
            digits = body[i + 1 : i + 4]
            if len(digits) != 3 or any(c not in "01234567" for c in digits) or int(digits, 8) > 255:
                raise TemplateSyntaxError(token.line, f"invalid syntax in quoted string {token.value}")
            out.append(chr(int(digits, 8)))
            i += 4
        else:
            raise TemplateSyntaxError(token.line, f"invalid syntax in quoted string {token.value}")
    text = "".join(out)
    if token.kind == "char" and len(text) != 1:
        raise TemplateSyntaxError(token.line, f"malformed character constant: {token.value}")
    return text
