"""structlog setup: JSON lines in production, readable lines on a terminal."""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from monitor.cli.terminal import printable
from monitor.core.secrets import scrub

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


def configure_logging(level: str = "info", fmt: str = "auto") -> None:
    json_output = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    renderer: structlog.typing.Processor = (
        structlog.processors.JSONRenderer() if json_output else structlog.dev.ConsoleRenderer(
            colors=sys.stderr.isatty(), exception_formatter=structlog.dev.plain_traceback)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info if json_output else structlog.processors.StackInfoRenderer(),
            _scrub_json if json_output else _scrub_console,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS.get(level, logging.INFO)),
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=True,
    )
    # Libraries log through the standard library; keep their warnings, drop their chatter.
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s")


EventDict = MutableMapping[str, Any]


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: _scrubbed(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_scrubbed(item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    return scrub(str(value))  # an exception, a path...: rendered as text anyway


def _scrub_json(logger: Any, method: str, event: EventDict) -> EventDict:
    """Every value of a log line through the secret redaction (monitor.core.secrets), the
    formatted traceback (``exception``) included: libraries put URLs, DSNs and what a
    server answered into their exception messages."""
    for key, value in event.items():
        event[key] = _scrubbed(value)
    return event


def _scrub_console(logger: Any, method: str, event: EventDict) -> EventDict:
    """The same for lines meant for a terminal, and control characters escaped (a target's
    error text could otherwise drive the terminal). A traceback is formatted here, to be
    scrubbed like the rest, instead of by the renderer."""
    event = structlog.processors.format_exc_info(logger, method, event)
    for key, value in event.items():
        scrubbed = _scrubbed(value)
        event[key] = printable(scrubbed) if isinstance(scrubbed, str) else scrubbed
    return event
