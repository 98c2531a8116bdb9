"""The templates of one config: the defaults, then the ``templates:`` files in order.

As in Alertmanager, a file's ``define`` replaces a template of the same name defined
before it (so a file can redefine ``slack.default.title``), except that an empty one never
replaces one with a body; two non-empty definitions of a name in one file are an error. A
file's text outside ``define``s is a template named after the file.

Unlike Go, which finds out only when a template runs, a ``{{ template "x" }}`` naming a
template nobody defines is an error at load, with the line of the call.
"""

from __future__ import annotations

import functools
import os
from collections import ChainMap, OrderedDict
from collections.abc import Iterator, Mapping
from typing import Any

from monitor.alerting.templating.defaults import DEFAULTS, SOURCE_NAME
from monitor.alerting.templating.evaluator import Execution, Printer, plain_text
from monitor.alerting.templating.functions import FUNCTIONS
from monitor.alerting.templating.lexer import TemplateSyntaxError
from monitor.alerting.templating.nodes import Branch, Call, Node
from monitor.alerting.templating.parser import Definition, Parsed, is_empty, parse
from monitor.core.problems import Problem

_COMPILED_CACHE = 256  # field texts kept parsed per set


class TemplateLoadError(ValueError):
    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems


class TemplateSet:
    """Named templates (``define``d in the defaults and the files) and how to render a
    field's text with them."""

    def __init__(self, definitions: Mapping[str, Definition], sources: Mapping[str, str]) -> None:
        self._definitions = dict(definitions)
        self._sources = dict(sources)  # template name -> the source that defined it
        self._bodies: dict[str, list[Node]] = {name: d.body for name, d in definitions.items()}
        self._compiled: OrderedDict[str, Parsed] = OrderedDict()

    @classmethod
    def defaults(cls) -> TemplateSet:
        return _defaults()

    @classmethod
    def from_sources(cls, sources: list[tuple[str, str]]) -> TemplateSet:
        """The defaults plus each ``(name, text)`` source in order; TemplateLoadError lists
        every problem of every source."""
        definitions = dict(_defaults()._definitions)
        origin = dict(_defaults()._sources)
        problems: list[Problem] = []
        parsed_sources: list[tuple[str, Parsed]] = []
        for name, text in sources:
            try:
                parsed = parse(text, FUNCTIONS)
            except TemplateSyntaxError as err:
                problems.append(Problem(name, err.line, err.message))
                continue
            parsed_sources.append((name, parsed))
            file_template = Definition(os.path.basename(name), parsed.root, 1)
            for definition in [file_template, *parsed.defines.values()]:
                existing = definitions.get(definition.name)
                if existing is None or not is_empty(definition.body) or is_empty(existing.body):
                    definitions[definition.name] = definition
                    origin[definition.name] = name
        for name, parsed in parsed_sources:
            for call in _calls([parsed.root, *(d.body for d in parsed.defines.values())]):
                if call.name not in definitions:
                    problems.append(Problem(name, call.line, _undefined(call.name)))
        if problems:
            raise TemplateLoadError(problems)
        return cls(definitions, origin)

    def names(self) -> list[str]:
        return sorted(self._definitions)

    def compile(self, text: str) -> Parsed:
        """A field's text, parsed and checked against this set (TemplateSyntaxError)."""
        cached = self._compiled.get(text)
        if cached is not None:
            self._compiled.move_to_end(text)
            return cached
        parsed = parse(text, FUNCTIONS)
        for call in _calls([parsed.root, *(d.body for d in parsed.defines.values())]):
            if call.name not in self._bodies and call.name not in parsed.defines:
                raise TemplateSyntaxError(call.line, _undefined(call.name))
        self._compiled[text] = parsed
        if len(self._compiled) > _COMPILED_CACHE:
            self._compiled.popitem(last=False)
        return parsed

    def render(self, text: str, data: Any, printer: Printer = plain_text) -> str:
        """Render a field's text over data; TemplateSyntaxError or ExecError."""
        parsed = self.compile(text)
        templates: Mapping[str, list[Node]] = self._bodies
        if parsed.defines:
            templates = ChainMap({name: d.body for name, d in parsed.defines.items()}, self._bodies)
        return Execution(templates, FUNCTIONS, printer).run(parsed.root, data)

    def render_named(self, name: str, data: Any, printer: Printer = plain_text) -> str:
        """Run a named template, as ``{{ template "name" . }}`` would."""
        return self.render(f'{{{{ template "{name}" . }}}}', data, printer)


def _undefined(name: str) -> str:
    return f'no such template "{name}" (not defined in the default templates or any templates: file)'


def _calls(lists: list[list[Node]]) -> Iterator[Call]:
    stack = list(lists)
    while stack:
        for node in stack.pop():
            if isinstance(node, Call):
                yield node
            elif isinstance(node, Branch):
                stack.append(node.body)
                stack.append(node.otherwise)


@functools.cache
def _defaults() -> TemplateSet:
    parsed = parse(DEFAULTS, FUNCTIONS)
    return TemplateSet(parsed.defines, {name: SOURCE_NAME for name in parsed.defines})
