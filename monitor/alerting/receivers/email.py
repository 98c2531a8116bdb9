"""Email over SMTP, as Alertmanager's ``email_configs``: STARTTLS (required by default),
implicit TLS on port 465, AUTH CRAM-MD5 / PLAIN / LOGIN in the server's order of preference,
one message per notification with a plain-text and an HTML part.

SMTP replies decide retrying: 4xx (greylisting, a full queue) and connection trouble are
temporary; 5xx (authentication refused, unknown mailbox) permanent, so the outbox gives up
at once instead of hammering a server that said no. The whole conversation has one
deadline (``timeout``), so a server that stops answering holds one outbox worker at most
that long. ``aiosmtplib`` is imported only when a message is sent.
"""

from __future__ import annotations

import asyncio
import html
import socket
import ssl
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, getaddresses, make_msgid
from typing import TYPE_CHECKING, Any, ClassVar, Self

import httpx
import structlog
from pydantic import Field, SecretStr, field_validator, model_validator

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers.base import (
    DEFAULT_TIMEOUT,
    DeliveryError,
    format_value,
    group_title,
    only_wanted,
    scrub,
)
from monitor.alerting.receivers.defaults import ReceiverDefaults, split_hostport
from monitor.alerting.receivers.http_options import CredentialError, TLSOptions, read_secret_file, readable_file
from monitor.alerting.receivers.options import Lenient
from monitor.core.durations import Duration
from monitor.core.timestamps import rfc3339

if TYPE_CHECKING:
    import aiosmtplib

log = structlog.get_logger("monitor.email")

IMPLICIT_TLS_PORT = 465  # SMTPS: TLS from the first byte, as Alertmanager assumes for this port
# CRLF line ends, and 7-bit clean (quoted-printable or base64 bodies, encoded-word headers),
# so a server without 8BITMIME or SMTPUTF8 takes non-ASCII labels unharmed.
_POLICY = policy.SMTP.clone(cte_type="7bit")


def _no_template(value: Any) -> Any:
    # Alertmanager reads these fields as Go templates; sending one literally would mail the
    # template source. Refused at load until templates are rendered (docs/configuration.md).
    texts = value.values() if isinstance(value, dict) else [value]
    if any(isinstance(text, str) and "{{" in text for text in texts):
        raise ValueError("Go templates ({{ ... }}) are not rendered in email_configs here; write literal text")
    return value


def _addresses(value: str) -> list[str]:
    found = [address for _, address in getaddresses([value])]
    if not found or any("@" not in address for address in found):
        raise ValueError(f"{value!r} is not a list of email addresses")
    return found


class EmailConfig(Lenient):
    """One ``email_configs`` entry as written; unset SMTP fields come from ``global.smtp_*``."""

    ignored_options: ClassVar[frozenset[str]] = frozenset({"threading"})

    to: str = Field(min_length=1)
    from_: str | None = Field(default=None, alias="from")
    smarthost: str | None = None
    hello: str | None = None
    auth_username: str | None = None
    auth_password: SecretStr | None = None
    auth_password_file: str | None = None
    auth_secret: SecretStr | None = None
    auth_secret_file: str | None = None
    auth_identity: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    html: str | None = None
    text: str | None = None
    require_tls: bool | None = None
    tls_config: TLSOptions | None = None
    force_implicit_tls: bool | None = None
    send_resolved: bool = False  # Alertmanager's default for email
    timeout: Duration | None = None

    _files = field_validator("auth_password_file", "auth_secret_file")(readable_file)
    _literal = field_validator("to", "from_", "headers", "html", "text")(_no_template)

    @field_validator("to")
    @classmethod
    def _to(cls, value: str) -> str:
        _addresses(value)
        return value

    @field_validator("from_")
    @classmethod
    def _from(cls, value: str | None) -> str | None:
        if value is not None and len(_addresses(value)) != 1:
            raise ValueError("from must be exactly one address")
        return value

    @field_validator("smarthost")
    @classmethod
    def _smarthost(cls, value: str | None) -> str | None:
        if value:
            split_hostport(value)
        return value or None

    @field_validator("headers")
    @classmethod
    def _headers(cls, headers: dict[str, str]) -> dict[str, str]:
        # Header names are case-insensitive: two spellings of one would be sent twice.
        seen: dict[str, str] = {}
        for name in headers:
            if not name or any(c in name for c in ": \r\n"):
                raise ValueError(f"invalid header name {name!r}")
            if name.lower() in seen:
                raise ValueError(f"duplicate header {name!r} (also {seen[name.lower()]!r})")
            seen[name.lower()] = name
        return headers

    @model_validator(mode="after")
    def _exclusive(self) -> EmailConfig:
        for name in ("auth_password", "auth_secret"):
            if getattr(self, name) is not None and getattr(self, f"{name}_file") is not None:
                raise ValueError(f"at most one of {name} and {name}_file may be set")
        return self

    def with_defaults(self, defaults: ReceiverDefaults) -> Self:
        """Alertmanager's inheritance: each unset field from its ``global.smtp_*``; a
        password (or secret) and its file count as one field."""
        update: dict[str, Any] = {
            "smarthost": self.smarthost or defaults.smtp_smarthost,
            "from_": self.from_ or defaults.smtp_from,
            "hello": self.hello or defaults.smtp_hello,
            "auth_username": self.auth_username or defaults.smtp_auth_username,
            "auth_identity": self.auth_identity or defaults.smtp_auth_identity,
            "require_tls": defaults.smtp_require_tls if self.require_tls is None else self.require_tls,
            "tls_config": self.tls_config or defaults.smtp_tls_config,
            "force_implicit_tls": self.force_implicit_tls if self.force_implicit_tls is not None
            else defaults.smtp_force_implicit_tls,
        }
        if self.auth_password is None and self.auth_password_file is None:
            update |= {"auth_password": defaults.smtp_auth_password,
                       "auth_password_file": defaults.smtp_auth_password_file}
        if self.auth_secret is None and self.auth_secret_file is None:
            update |= {"auth_secret": defaults.smtp_auth_secret, "auth_secret_file": defaults.smtp_auth_secret_file}
        if not update["smarthost"]:
            raise ValueError("no SMTP server: set smarthost here or global.smtp_smarthost")
        if not update["from_"]:
            raise ValueError("no sender: set from here or global.smtp_from")
        if len(_addresses(update["from_"])) != 1:
            raise ValueError("global.smtp_from must be exactly one address")
        return self.model_copy(update=update)

    def ignored_paths(self) -> list[str]:
        own = super().ignored_paths()
        return own + [f"tls_config.{key}" for key in self.tls_config.ignored] if self.tls_config else own


def build(config: EmailConfig) -> EmailIntegration:
    """The integration for one entry (already completed from ``global:``)."""
    assert config.smarthost and config.from_, "with_defaults fills these in or refuses the config"
    return EmailIntegration(
        to=config.to, sender=config.from_, smarthost=config.smarthost, hello=config.hello or "localhost",
        username=config.auth_username or "", identity=config.auth_identity or "",
        password=config.auth_password.get_secret_value() if config.auth_password else None,
        password_file=config.auth_password_file,
        secret=config.auth_secret.get_secret_value() if config.auth_secret else None,
        secret_file=config.auth_secret_file,
        headers=config.headers, html=config.html, text=config.text,
        require_tls=True if config.require_tls is None else config.require_tls,
        tls=config.tls_config, force_implicit_tls=config.force_implicit_tls,
        send_resolved=config.send_resolved, timeout=config.timeout or DEFAULT_TIMEOUT)


class EmailIntegration:
    """One ``email_configs`` entry. Passwords and secrets never appear in errors."""

    name = "email"
    resends = False

    def __init__(self, *, to: str, sender: str, smarthost: str, hello: str = "localhost", username: str = "",
                 identity: str = "", password: str | None = None, password_file: str | None = None,
                 secret: str | None = None, secret_file: str | None = None,
                 headers: dict[str, str] | None = None, html: str | None = None, text: str | None = None,
                 require_tls: bool = True, tls: TLSOptions | None = None, force_implicit_tls: bool | None = None,
                 send_resolved: bool = False, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.to = to
        self.sender = sender
        self.host, self.port = split_hostport(smarthost)
        self.hello = hello
        self.username = username
        self.identity = identity
        self._password = password
        self._password_file = password_file
        self._secret = secret
        self._secret_file = secret_file
        self.headers = headers or {}
        self.html = html
        self.text = text
        self.require_tls = require_tls
        self.tls = tls
        self.implicit_tls = force_implicit_tls if force_implicit_tls is not None else self.port == IMPLICIT_TLS_PORT
        self.send_resolved = send_resolved
        self.timeout = timeout

    @property
    def where(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def notify(self, notification: Notification, client: httpx.AsyncClient) -> None:
        wanted = only_wanted(notification, self.send_resolved)
        if wanted is None:
            return
        message = self.message(wanted)
        recipients = [address for _, address in getaddresses([self.to])]
        sender = getaddresses([self.sender])[0][1]
        secrets = [s for s in (self._password, self._secret) if s]
        try:
            async with asyncio.timeout(self.timeout):
                await self._send(message, sender, recipients, secrets)
        except DeliveryError:
            raise
        except TimeoutError:
            raise DeliveryError(f"timed out after {self.timeout:g}s talking to {self.where}", permanent=False) from None
        except CredentialError as err:
            raise DeliveryError(str(err), permanent=False) from None
        except Exception as err:
            classified = _classified(err, self.where, secrets)
            if classified is None:
                raise  # a bug, not the server: the outbox fails it instead of retrying for a day
            raise classified from None

    async def _send(self, message: EmailMessage, sender: str, recipients: list[str], secrets: list[str]) -> None:
        import aiosmtplib  # only when a message goes out (optional-import rule, docs/architecture.md)

        context = self.tls.context() if self.tls is not None else ssl.create_default_context()
        server_name = (self.tls.server_name if self.tls is not None else None) or self.host
        smtp = aiosmtplib.SMTP(hostname=self.host, port=self.port, local_hostname=self.hello, timeout=self.timeout,
                               use_tls=self.implicit_tls, start_tls=False, tls_context=context)
        try:
            await smtp.connect()
            await smtp.ehlo()
            if self.require_tls and not self.implicit_tls:
                if not smtp.supports_extension("starttls"):
                    raise DeliveryError(f"require_tls is set but {self.where} does not offer STARTTLS", permanent=True)
                await smtp.starttls(server_hostname=server_name)
                await smtp.ehlo()  # what the server offers may change once encrypted (RFC 3207)
            if self.username and smtp.supports_extension("auth"):
                await self._authenticate(smtp, secrets)
            refused, _ = await smtp.sendmail(sender, recipients, message.as_bytes())
            if refused:  # some recipients took it: sending again would repeat it to them
                log.warning("email_recipients_refused", smarthost=self.where,
                            refused={address: f"{r.code} {r.message}" for address, r in refused.items()})
            await smtp.quit()
        finally:
            smtp.close()

    async def _authenticate(self, smtp: aiosmtplib.SMTP, secrets: list[str]) -> None:
        """The first mechanism the server offers that we have a credential for, in the
        server's order, as Alertmanager: CRAM-MD5 takes ``auth_secret``, PLAIN and LOGIN
        ``auth_password``."""
        from aiosmtplib.auth import auth_plain_encode

        for mechanism in smtp.server_auth_methods:
            if mechanism == "cram-md5":
                secret = self._credential(self._secret, self._secret_file, "auth_secret_file")
                if secret:
                    secrets.append(secret)
                    await smtp.auth_crammd5(self.username, secret)
                    return
            elif mechanism in ("plain", "login"):
                password = self._credential(self._password, self._password_file, "auth_password_file")
                if not password:
                    continue
                secrets.append(password)
                if mechanism == "login":
                    await smtp.auth_login(self.username, password)
                elif self.identity:
                    # aiosmtplib's PLAIN sends no authorization identity; auth_identity needs one.
                    encoded = auth_plain_encode(self.username, password)
                    token = _plain_with_identity(self.identity, encoded)
                    response = await smtp.execute_command(b"AUTH", b"PLAIN", token)
                    if response.code != 235:
                        raise aiosmtplib.SMTPAuthenticationError(response.code, response.message)
                else:
                    await smtp.auth_plain(self.username, password)
                return
        offered = " ".join(smtp.server_auth_methods).upper() or "none"
        raise DeliveryError(f"{self.where} offers AUTH {offered}, and no auth_password/auth_secret fits any",
                            permanent=True)

    def _credential(self, value: str | None, path: str | None, what: str) -> str:
        if value is not None:
            return value
        return read_secret_file(path, what) if path else ""

    def message(self, notification: Notification) -> EmailMessage:
        """The message: configured headers over the defaults (To, From, Subject), then a
        text and an HTML part (each replaced by ``text``/``html`` when set; empty leaves the
        part out)."""
        message = EmailMessage(policy=_POLICY)
        defaults = {"To": self.to, "From": self.sender, "Subject": group_title(notification)}
        configured = {name.lower() for name in self.headers}
        for name, value in [*((n, v) for n, v in defaults.items() if n.lower() not in configured),
                            *self.headers.items()]:
            message[name] = _header_value(value)
        if "message-id" not in configured:
            message["Message-Id"] = make_msgid(domain=socket.gethostname() or "localhost")
        if "date" not in configured:
            message["Date"] = formatdate(localtime=False, usegmt=True)
        text = default_text(notification) if self.text is None else self.text
        body = default_html(notification) if self.html is None else self.html
        if text and body:
            message.set_content(text)
            message.add_alternative(body, subtype="html")
        elif body:
            message.set_content(body, subtype="html")
        else:
            message.set_content(text)
        return message


def _plain_with_identity(identity: str, encoded: bytes) -> bytes:
    import base64

    user_and_password = base64.b64decode(encoded)  # b"\0user\0password"
    return base64.b64encode(identity.encode() + user_and_password)


def _header_value(value: str) -> str:
    # A label value with a line break must not start a header of its own.
    return " ".join(value.splitlines())


def _classified(err: Exception, where: str, secrets: list[str]) -> DeliveryError | None:
    """4xx and connection trouble: temporary; 5xx: permanent; None: not the server's doing."""
    import aiosmtplib

    if isinstance(err, aiosmtplib.SMTPRecipientsRefused):
        codes = [r.code for r in err.recipients]
        detail = "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in err.recipients)
        return DeliveryError(scrub(f"{where} refused every recipient: {detail}", secrets),
                             permanent=all(code >= 500 for code in codes))
    if isinstance(err, aiosmtplib.SMTPResponseException):
        step = {aiosmtplib.SMTPAuthenticationError: "AUTH", aiosmtplib.SMTPSenderRefused: "MAIL FROM",
                aiosmtplib.SMTPDataError: "DATA", aiosmtplib.SMTPHeloError: "EHLO"}.get(type(err), "SMTP")
        message = scrub(f"{step} answered {err.code} {err.message} at {where}", secrets)
        return DeliveryError(message, permanent=500 <= err.code < 600)
    if isinstance(err, (aiosmtplib.SMTPException, OSError, ssl.SSLError)):
        # Refused, reset, TLS handshake, STARTTLS failing midway: the server may be back soon.
        detail = f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
        return DeliveryError(scrub(f"{detail} talking to {where}", secrets), permanent=False)
    return None


# ---- the default body ----------------------------------------------------------------------------

def _alert_lines(alert: Alert) -> list[str]:
    name = alert.labels.get("alertname", "alert")
    lines = [f"{'FIRING' if alert.status == 'firing' else 'RESOLVED'}: {name}"]
    for key in ("summary", "description"):
        if alert.annotations.get(key):
            lines.append(f"  {alert.annotations[key]}")
    if alert.value is not None:
        lines.append(f"  value: {format_value(alert.value)}")
    lines.append(f"  started: {rfc3339(alert.starts_at)}")
    if alert.ends_at is not None:
        lines.append(f"  ended: {rfc3339(alert.ends_at)}")
    if alert.annotations.get("runbook_url"):
        lines.append(f"  runbook: {alert.annotations['runbook_url']}")
    labels = ", ".join(f"{k}={v}" for k, v in sorted(alert.labels.items()) if k != "alertname")
    if labels:
        lines.append(f"  labels: {labels}")
    return lines


def default_text(notification: Notification) -> str:
    """Title, then each alert (firing first) with its summary, value, times and labels."""
    lines = [group_title(notification), ""]
    for alert in sorted(notification.alerts, key=lambda a: a.status != "firing"):
        lines += [*_alert_lines(alert), ""]
    if notification.truncated_alerts:
        lines.append(f"…and {notification.truncated_alerts} more alerts")
    if notification.external_url:
        lines.append(f"Monitor: {notification.external_url}")
    return "\n".join(lines).rstrip() + "\n"


def default_html(notification: Notification) -> str:
    """The same as :func:`default_text`, as simple HTML that mail clients render alike."""
    colour = "#d32f2f" if notification.status == "firing" else "#2e7d32"
    parts = [f'<h2 style="color:{colour}">{html.escape(group_title(notification))}</h2>']
    for alert in sorted(notification.alerts, key=lambda a: a.status != "firing"):
        head, *rest = _alert_lines(alert)
        items = "".join(f"<li>{html.escape(line.strip())}</li>" for line in rest)
        parts.append(f"<h3>{html.escape(head)}</h3><ul>{items}</ul>")
    if notification.truncated_alerts:
        parts.append(f"<p>…and {notification.truncated_alerts} more alerts</p>")
    if notification.external_url:
        url = html.escape(notification.external_url, quote=True)
        parts.append(f'<p><a href="{url}">Open monitor</a></p>')
    return f"<html><body>{''.join(parts)}</body></html>\n"
