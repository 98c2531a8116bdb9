"""Label sets as Prometheus exposition text."""

from __future__ import annotations


def escape_label_value(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def label_text(labels: dict[str, str]) -> str:
    """``check="x",service="api"`` in sorted order, escaped, ready to splice into a line."""
    return ",".join(f'{name}="{escape_label_value(value)}"' for name, value in sorted(labels.items()))
