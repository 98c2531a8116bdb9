"""Rendering a receiver's text field: what integrations call.

A field is a template when it contains ``{{`` (as in Alertmanager, where every such field
is one); text without it is sent as written. A template that fails while running (an
index out of range, a type error) must not hold a page back nor send half-rendered text:
the integration gets None and uses its own default for that field, and the failure is
logged on one line and counted in ``monitor_notification_template_failures_total``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import structlog

from monitor.alerting.model import Notification
from monitor.alerting.templating.data import template_data
from monitor.alerting.templating.evaluator import Printer, plain_text
from monitor.alerting.templating.functions import html_escape
from monitor.alerting.templating.lexer import TemplateSyntaxError
from monitor.alerting.templating.templateset import TemplateSet
from monitor.alerting.templating.values import HTML, ExecError
from monitor.core.results import one_line

log = structlog.get_logger("monitor.templates")

# (receiver, integration, field) -> renders that failed; read by /metrics. Process-wide and
# only growing, like a counter: a reload keeps counting.
FAILURES: Counter[tuple[str, str, str]] = Counter()


def is_template(text: str | None) -> bool:
    return text is not None and "{{" in text


def escaping(escape: Callable[[str], str]) -> Printer:
    """A printer that escapes what actions print, except ``safeHtml`` text; the template's
    own text is kept as written (so a Slack template can write ``<{{ .ExternalURL }}|link>``
    while a label value cannot forge one)."""

    def printer(value: Any) -> str:
        if isinstance(value, HTML):
            return str(value)
        return escape(plain_text(value))

    return printer


HTML_PRINTER = escaping(html_escape)


def render_field(
    templates: TemplateSet | None,
    text: str | None,
    notification: Notification,
    *,
    integration: str,
    field: str,
    escape: Callable[[str], str] | None = None,
) -> str | None:
    """``text`` rendered over the notification's Alertmanager data.

    Text without ``{{`` comes back as written (through ``escape`` if given). None when
    ``text`` is None or the template failed: the caller then uses its default.
    """
    if text is None:
        return None
    if not is_template(text):
        return escape(text) if escape is not None else text
    printer = escaping(escape) if escape is not None else plain_text
    try:
        return (templates or TemplateSet.defaults()).render(text, template_data(notification), printer)
    except (ExecError, TemplateSyntaxError) as err:
        error = str(err)
    except Exception as err:  # noqa: BLE001 - a bug here must cost one field, never the page
        error = f"internal error: {type(err).__name__}: {err}"
    FAILURES[(notification.receiver, integration, field)] += 1
    log.error("template_render_failed", receiver=notification.receiver, integration=integration,
              field=field, error=one_line(error))
    return None
