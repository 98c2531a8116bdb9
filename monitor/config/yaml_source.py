"""YAML with line numbers and ``${VAR}`` expansion.

Every value remembers the line it was written on, so a validation error deep in a check
definition can still say ``checks/api.yaml:14: ...``. Environment variables are expanded in
string scalars *after* parsing, so a secret containing ``: `` or ``#`` cannot change the
structure of the document.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from monitor.config.errors import ConfigError
from monitor.core.problems import Problem

Path_ = tuple[str | int, ...]

# `$$` is a literal dollar; `${NAME}` or `${NAME:-default}` is a variable.
_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}|\$\{([^}]*)\}?")


@dataclass
class SourceMap:
    """Where each value of one YAML file was written."""

    file: str
    lines: dict[Path_, int] = field(default_factory=dict)

    def line_of(self, data: Any, loc: tuple[str | int, ...]) -> int:
        """Line of the deepest part of ``loc`` that exists in ``data``.

        pydantic's ``loc`` also holds union tags and model names that are not in the data;
        those are skipped, and a missing field points at the mapping that lacks it.
        """
        path: list[str | int] = []
        node = data
        for part in loc:
            if isinstance(node, Mapping) and part in node:
                node = node[part]
                path.append(part)
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                node = node[part]
                path.append(part)
        while path and tuple(path) not in self.lines:
            path.pop()
        return self.lines.get(tuple(path), 1)

    def problem(self, data: Any, loc: tuple[str | int, ...], message: str) -> Problem:
        return Problem(self.file, self.line_of(data, loc), message)


class MissingVariables(KeyError):
    """Variables a value names that are not set (and have no default), every one of them."""

    def __init__(self, names: list[str]) -> None:
        super().__init__(names[0])
        self.names = names


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$``; raises MissingVariables (a KeyError)
    naming every unset variable of ``text``, or ValueError for a malformed reference."""
    missing: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(3) is not None or match.group(1) is None:
            raise ValueError(f"malformed variable reference {match.group(0)!r} (use ${{NAME}} or ${{NAME:-default}})")
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                if name not in missing:
                    missing.append(name)
                return ""
            return default
        return value

    expanded = _VAR.sub(substitute, text)
    if missing:
        raise MissingVariables(missing)
    return expanded


_MAX_NODES = 1_000_000
# Limits checked before a document is composed into nodes. libyaml's composer recurses in
# C once per nesting level, so ~25,000 levels overflow the stack and kill the process (a
# SIGHUP reload of such a file would take the running daemon down with it). Its scanner and
# parser are iterative: counting their events costs no stack. Real configs nest a dozen
# levels deep and weigh kilobytes to a few megabytes (10,000 checks are about 2 MB).
MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_DEPTH = 64
# libyaml's parser when PyYAML was built with it: 10,000 checks parse in a fraction of
# the pure-Python parser's 4.6 s. Both keep line marks on every node.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TooLarge(Exception):
    def __init__(self, line: int, recursive: bool = False) -> None:
        self.line = line
        self.recursive = recursive


class _TooDeep(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _Builder:
    def __init__(self, source: SourceMap, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.problems: list[Problem] = []
        self.missing: list[Problem] = []  # unset variables, kept apart (see load_yaml)
        self.loader = yaml.SafeLoader("")
        self.budget = _MAX_NODES

    def build(self, node: yaml.Node, path: Path_) -> Any:
        line = node.start_mark.line + 1
        # Aliases share nodes, so a small file can expand exponentially ("billion laughs").
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge(line)
        self.source.lines.setdefault(path, line)
        if isinstance(node, yaml.MappingNode):
            self.loader.flatten_mapping(node)  # resolves `<<: *anchor` merge keys
            result: dict[Any, Any] = {}
            for key_node, value_node in node.value:
                key = self.loader.construct_object(key_node, deep=True)
                if not isinstance(key, (str, int, float, bool)) or key is None:
                    self.problems.append(Problem(self.source.file, key_node.start_mark.line + 1, "mapping keys must be scalars"))
                    continue
                if key in result:
                    self.problems.append(
                        Problem(self.source.file, key_node.start_mark.line + 1, f"duplicate key {key!r}")
                    )
                child = (*path, key) if isinstance(key, (str, int)) else (*path, str(key))
                self.source.lines[child] = key_node.start_mark.line + 1
                result[key] = self.build(value_node, child)
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and "$" in value:
            try:
                return expand_env(value, self.environ)
            except MissingVariables as missing:
                self.missing.extend(
                    Problem(self.source.file, line, f"environment variable {name} is not set (use ${{{name}:-default}} for a default)")
                    for name in missing.names
                )
            except ValueError as err:
                self.problems.append(Problem(self.source.file, line, str(err)))
            return value
        return value


_OPEN = frozenset({yaml.MappingStartEvent, yaml.SequenceStartEvent})
_CLOSE = frozenset({yaml.MappingEndEvent, yaml.SequenceEndEvent})


def _check_depth(text: str, name: str) -> int:
    """Refuse a document nested deeper than MAX_DEPTH, from the parser's event stream (flow
    ``[[[`` and block ``- - -`` alike), stopping at the first level too deep. Returns how
    many aliases the document uses."""
    depth = aliases = 0
    for event in yaml.parse(text, Loader=_FAST_LOADER):
        kind = type(event)
        if kind in _OPEN:
            depth += 1
            if depth > MAX_DEPTH:
                line = event.start_mark.line + 1 if event.start_mark is not None else 1
                raise ConfigError([Problem(name, line, f"nesting deeper than {MAX_DEPTH} levels")])
        elif kind in _CLOSE:
            depth -= 1
        elif kind is yaml.AliasEvent:
            aliases += 1
    return aliases


def _check_expansion(root: yaml.Node) -> None:
    """Refuse a document whose aliases would expand it beyond _MAX_NODES values or
    MAX_DEPTH levels, before any of it is built: an alias bomb ("billion laughs") is a few
    lines of anchors that refer to each other ten times a level, and a chain of anchors each
    holding the previous one nests as deep as it is long. The node graph shares aliased
    nodes, so each collection is visited once here, its expanded size and depth remembered.
    An anchor used inside itself is a cycle that would expand forever."""
    size: dict[int, int] = {}
    depth: dict[int, int] = {}
    open_nodes: set[int] = set()  # entered, children not all done: the current path
    stack: list[tuple[yaml.Node, list[yaml.Node] | None]] = [(root, None)]
    while stack:
        node, children = stack.pop()
        key = id(node)
        if children is None:  # first visit: queue the collections it holds
            if key in size or isinstance(node, yaml.ScalarNode):
                continue
            children = [part for pair in node.value for part in pair] if isinstance(node, yaml.MappingNode) else node.value
            open_nodes.add(key)
            stack.append((node, children))
            for child in children:
                if id(child) in open_nodes:
                    raise _TooLarge(child.start_mark.line + 1, recursive=True)
                if not isinstance(child, yaml.ScalarNode) and id(child) not in size:
                    stack.append((child, None))
            continue
        open_nodes.discard(key)
        total, levels = 1, 1
        for child in children:
            if isinstance(child, yaml.ScalarNode):
                total += 1
            else:
                total += size[id(child)]
                levels = max(levels, depth[id(child)] + 1)
        if total > _MAX_NODES:
            raise _TooLarge(node.start_mark.line + 1)
        if levels > MAX_DEPTH:
            raise _TooDeep(node.start_mark.line + 1)
        size[key], depth[key] = total, levels


def load_yaml(path: Path, environ: Mapping[str, str] | None = None, display: str | None = None,
              missing: list[Problem] | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML file; raises ConfigError naming the file and line of every problem.

    With ``missing``, unset environment variables are appended there instead of raised (their
    values stay unexpanded), so a loader can go on to the next files and report every unset
    variable of a config at once rather than one file at a time."""
    name = display or str(path)
    source = SourceMap(name)
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)  # never more: a 10 GB file must not be read whole
        if len(raw) > MAX_FILE_BYTES:
            raise ConfigError([Problem(name, 0, f"file is larger than {MAX_FILE_BYTES // (1024 * 1024)} MiB")])
        text = raw.decode("utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(name, 0, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(name, 0, f"cannot read file: {err}")]) from None
    try:
        aliases = _check_depth(text, name)
        node = yaml.compose(text, Loader=_FAST_LOADER)
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else 1
        raise ConfigError([Problem(name, line, f"invalid YAML: {err.problem or err.context}")]) from None
    except yaml.YAMLError as err:
        raise ConfigError([Problem(name, 1, f"invalid YAML: {err}")]) from None
    if node is None:
        return {}, source
    builder = _Builder(source, os.environ if environ is None else environ)
    try:
        if aliases:  # without aliases nothing is shared: the builder's own budget suffices
            _check_expansion(node)
        data = builder.build(node, ())
    except _TooLarge as err:
        message = ("an alias refers to the node that contains it (recursive alias)" if err.recursive
                   else f"document expands to more than {_MAX_NODES} values (alias bomb?)")
        raise ConfigError([Problem(name, err.line, message)]) from None
    except _TooDeep as err:
        raise ConfigError([Problem(name, err.line, f"nesting deeper than {MAX_DEPTH} levels (through aliases)")]) from None
    except RecursionError:
        raise ConfigError([Problem(name, 1, "document is nested too deeply")]) from None
    except yaml.YAMLError as err:  # e.g. an unknown tag like !!python/object
        mark = getattr(err, "problem_mark", None)
        raise ConfigError([Problem(name, mark.line + 1 if mark else 1, f"invalid YAML: {getattr(err, 'problem', err)}")]) from None
    if missing is not None:
        missing.extend(builder.missing)
    else:
        builder.problems.extend(builder.missing)
    if builder.problems:
        raise ConfigError(builder.problems)
    return data, source
