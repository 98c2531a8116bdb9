"""Errors of the PromQL engine: one line each, naming what went wrong."""

from __future__ import annotations


class PromQLError(ValueError):
    """A query that cannot be compiled (unsupported or invalid) or evaluated (Prometheus errors too)."""


class SeriesLimitError(PromQLError):
    """A scrape would keep more series than the store's limit."""
