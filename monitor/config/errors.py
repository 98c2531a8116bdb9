"""Config problems, always reported as ``file:line: message``."""

from __future__ import annotations

from monitor.core.problems import Problem


class ConfigError(Exception):
    """One or more problems found while loading config; never carries a traceback to users."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))
