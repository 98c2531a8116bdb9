"""PromQL: parsing through promql-parser and evaluation with Prometheus 2.42's semantics over
scraped samples (docs/configuration.md, "PromQL supported").

``compile_query`` turns the text into a reusable Query, a ``SeriesStore`` keeps the samples of
the series the query's selectors match, and ``evaluate`` gives the query's value at a time.
"""

from .engine import Sample, evaluate
from .errors import PromQLError, SeriesLimitError
from .query import Query, compile_query
from .selector import Matcher, Selector
from .store import STALE_NAN, SeriesStore

__all__ = [
    "STALE_NAN",
    "Matcher",
    "PromQLError",
    "Query",
    "Sample",
    "Selector",
    "SeriesLimitError",
    "SeriesStore",
    "compile_query",
    "evaluate",
]
