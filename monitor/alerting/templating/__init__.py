"""Alertmanager's notification templates: Go's text/template language over Alertmanager's
data model, with Alertmanager's functions and default templates (docs/notifications.md,
"Templates").

- ``lexer`` / ``parser`` / ``nodes``: the language, parsed with Go's rules and errors;
- ``evaluator``: running a tree with Go's semantics (fields, methods, truth, range order);
- ``values`` / ``gofmt`` / ``gotime``: Go values, ``fmt`` printing and ``printf``, times;
- ``functions``: Go's builtins and Alertmanager's functions;
- ``data``: ``.Receiver``, ``.Alerts``, ``.CommonLabels``... built from a notification;
- ``defaults``: the named default templates (``__subject``, ``slack.default.title``...);
- ``templateset``: the defaults plus the ``templates:`` files, checked at load;
- ``render``: what integrations call for a templated field.
"""

from monitor.alerting.templating.data import template_data
from monitor.alerting.templating.functions import html_escape
from monitor.alerting.templating.lexer import TemplateSyntaxError
from monitor.alerting.templating.render import FAILURES, HTML_PRINTER, escaping, is_template, render_field
from monitor.alerting.templating.templateset import TemplateLoadError, TemplateSet
from monitor.alerting.templating.values import ExecError

__all__ = [
    "FAILURES",
    "HTML_PRINTER",
    "ExecError",
    "TemplateLoadError",
    "TemplateSet",
    "TemplateSyntaxError",
    "escaping",
    "html_escape",
    "is_template",
    "render_field",
    "template_data",
]
