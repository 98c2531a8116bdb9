"""What the SQL kinds (``postgres``, ``mysql``) make of a query's rows: the same value,
``rows`` and ``row_count`` whichever database answered."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

MAX_DETAIL_ROWS = 10


def number(value: Any) -> float | None:
    """The first column as the run's value: numbers (and booleans, as 1/0), else None."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float, Decimal)):
        return float(value)
    return None


def text(value: Any) -> Any:
    """A cell as JSON can carry it: other types (timestamps, bytes...) as strings."""
    return value if isinstance(value, (int, float, str, bool)) or value is None else str(value)


def first_value(rows: list[Any]) -> float | None:
    return number(rows[0][0]) if rows and rows[0] else None


def detail(rows: list[Any], row_count: int) -> dict[str, Any]:
    return {"rows": [[text(v) for v in row] for row in rows], "row_count": row_count}
