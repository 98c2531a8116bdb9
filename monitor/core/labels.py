"""Label names and label sets: the one definition of a valid name, the labels the daemon
sets itself, alert severities, and label sets as Prometheus exposition text."""

from __future__ import annotations

import re
from collections.abc import Iterable

# Prometheus' label name syntax (names starting with `__` are reserved there, and refused by
# callers that accept user labels).
LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
# Labels the daemon sets itself on metrics and alerts; a check may not redefine them.
RESERVED_LABELS = frozenset({"check", "result", "alertname", "alertstate", "le", "quantile"})
# Alert severities, most urgent first (PagerDuty's four levels); an alert without a
# `severity` label gets DEFAULT_SEVERITY.
SEVERITIES = ("critical", "error", "warning", "info")
DEFAULT_SEVERITY = "warning"


def is_label_name(name: str) -> bool:
    # fullmatch: with match, `$` would also accept a name ending in a newline.
    return LABEL_NAME.fullmatch(name) is not None


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(labels: dict[str, str]) -> str:
    """``check="x",service="api"`` in sorted order, escaped, ready to splice into a line."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(labels.items()))


def with_series_labels(base: dict[str, str], series: Iterable[tuple[str, str]],
                       reserved: Iterable[str] = RESERVED_LABELS) -> dict[str, str]:
    """``base`` plus the labels of one query-result series. A series label whose name ``base``
    already has, or a reserved one, is added as ``exported_<name>`` (again prefixed while
    taken), as Prometheus does with a scraped label that collides with a target label."""
    out = dict(base)
    taken = set(reserved)
    for name, value in series:
        while name in out or name in taken:
            name = "exported_" + name
        out[name] = value
    return out
