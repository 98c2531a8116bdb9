"""What every integration's config model shares: accepting Alertmanager options we do not act
on, and URL fields.

A user's existing ``alertmanager.yml`` receivers must load unchanged, so options Alertmanager
documents but we ignore (Slack's ``color``...) are accepted, dropped and reported rather than
refused (see ``docs/configuration.md``). ``global:`` values reach each entry through
:meth:`Lenient.with_defaults`, once the whole file is read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, PrivateAttr, SecretStr, ValidationInfo, model_validator

from monitor.core.model import Model

if TYPE_CHECKING:
    from monitor.alerting.receivers.defaults import ReceiverDefaults

# Options every Alertmanager integration shares that we do not act on.
COMMON_IGNORED: frozenset[str] = frozenset()


class Lenient(Model):
    """A config block that accepts the Alertmanager options listed in ``ignored_options`` and
    drops them, remembering which ones it saw so they can be reported."""

    ignored_options: ClassVar[frozenset[str]] = frozenset()
    # Fields Alertmanager treats as templates: checked against the template files at load
    # and rendered per notification when they contain "{{" (monitor.alerting.templating).
    templated_fields: ClassVar[tuple[str, ...]] = ()
    _ignored: tuple[str, ...] = PrivateAttr(default=())

    @model_validator(mode="wrap")
    @classmethod
    def _drop_ignored(cls, data: Any, handler: Any) -> Any:
        ignored: tuple[str, ...] = ()
        if isinstance(data, Mapping):
            ignored = tuple(key for key in data if key in cls.ignored_options)
            data = {key: value for key, value in data.items() if key not in cls.ignored_options}
        model = handler(data)
        model._ignored = ignored
        return model

    @property
    def ignored(self) -> tuple[str, ...]:
        """The Alertmanager options this block had that we do not act on."""
        return self._ignored

    def with_defaults(self, defaults: ReceiverDefaults) -> Self:
        """This entry with what it leaves unset taken from ``global:``, as Alertmanager
        fills it in; raises ValueError when a required value is set in neither place."""
        return self

    def ignored_paths(self) -> list[str]:
        """Dotted names of every ignored option here and in nested blocks."""
        return list(self._ignored)


def _check_http(url: str, info: ValidationInfo) -> None:
    if not url.startswith(("http://", "https://")):
        # The value may be a secret: say what is wrong without echoing it.
        raise ValueError(f"{info.field_name or 'url'} must be an http:// or https:// URL")


def _http_url(url: str, info: ValidationInfo) -> str:
    _check_http(url, info)
    return url


def _secret_http_url(url: SecretStr, info: ValidationInfo) -> SecretStr:
    _check_http(url.get_secret_value(), info)
    return url


# An http(s) URL field.
Url = Annotated[str, AfterValidator(_http_url)]
# One that carries its credential (a Slack webhook's path, a token in a query string): kept
# out of reprs and dumps until the integration is built.
SecretUrl = Annotated[SecretStr, AfterValidator(_secret_http_url)]
