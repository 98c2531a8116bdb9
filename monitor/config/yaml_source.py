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

from monitor.config.errors import ConfigError, Problem

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


def expand_env(text: str, environ: Mapping[str, str]) -> str:
    """Expand ``${VAR}``, ``${VAR:-default}`` and ``$$``; raises KeyError/ValueError."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        if match.group(3) is not None or match.group(1) is None:
            raise ValueError(f"malformed variable reference {match.group(0)!r} (use ${{NAME}} or ${{NAME:-default}})")
        name, default = match.group(1), match.group(2)
        value = environ.get(name)
        if value is None or (value == "" and default is not None):
            if default is None:
                raise KeyError(name)
            return default
        return value

    return _VAR.sub(substitute, text)


_MAX_NODES = 1_000_000
# libyaml's parser when PyYAML was built with it: 10,000 checks parse in a fraction of
# the pure-Python parser's 4.6 s. Both keep line marks on every node.
_FAST_LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _TooLarge(Exception):
    def __init__(self, line: int) -> None:
        self.line = line


class _Builder:
    def __init__(self, source: SourceMap, environ: Mapping[str, str]) -> None:
        self.source = source
        self.environ = environ
        self.problems: list[Problem] = []
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
            except KeyError as missing:
                self.problems.append(
                    Problem(self.source.file, line, f"environment variable {missing.args[0]} is not set (use ${{{missing.args[0]}:-default}} for a default)")
                )
            except ValueError as err:
                self.problems.append(Problem(self.source.file, line, str(err)))
            return value
        return value


def load_yaml(path: Path, environ: Mapping[str, str] | None = None, display: str | None = None) -> tuple[Any, SourceMap]:
    """Parse one YAML file; raises ConfigError naming the file and line of every problem."""
    name = display or str(path)
    source = SourceMap(name)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([Problem(name, 0, "file not found")]) from None
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError([Problem(name, 0, f"cannot read file: {err}")]) from None
    try:
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
        data = builder.build(node, ())
    except _TooLarge as err:
        raise ConfigError([Problem(name, err.line, f"document expands to more than {_MAX_NODES} values (alias loop?)")]) from None
    except RecursionError:
        raise ConfigError([Problem(name, 1, "document is nested too deeply")]) from None
    except yaml.YAMLError as err:  # e.g. an unknown tag like !!python/object
        mark = getattr(err, "problem_mark", None)
        raise ConfigError([Problem(name, mark.line + 1 if mark else 1, f"invalid YAML: {getattr(err, 'problem', err)}")]) from None
    if builder.problems:
        raise ConfigError(builder.problems)
    return data, source
