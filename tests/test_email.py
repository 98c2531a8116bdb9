"""email_configs against a real local SMTP server: STARTTLS with a test CA, AUTH PLAIN /
LOGIN / CRAM-MD5, the message as received, and how failures are classified."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from monitor.alerting.config import AlertingConfig
from monitor.alerting.integrations import build_targets
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import DeliveryError
from monitor.alerting.receivers.email import EmailIntegration
from tests.smtp_server import MailServer, SilentServer


def notification(*, resolved: bool = False, summary: str = "API health check failing") -> Notification:
    alert = Alert(fingerprint="f1", labels={"alertname": "ApiDown", "check": "api_health", "severity": "critical"},
                  annotations={"summary": summary, "runbook_url": "https://runbooks.example.org/api"},
                  starts_at=time.time() - 60, ends_at=time.time() if resolved else None, value=503.0,
                  generator_url="http://monitor.example.org/")
    return Notification(receiver="mail", group_key='{}:{alertname="ApiDown"}', group_labels={"alertname": "ApiDown"},
                        alerts=[alert], external_url="http://monitor.example.org")


def email(server: MailServer, tmp_path: Path, **entry: Any) -> EmailIntegration:
    """The integration for one email_configs entry under a global: with the server's SMTP settings."""
    config = AlertingConfig.model_validate({
        "global": {"smtp_smarthost": server.smarthost, "smtp_from": "Monitor <monitor@example.org>",
                   "smtp_auth_username": "alertmanager", "smtp_auth_password": "password",
                   "smtp_tls_config": {"ca_file": server.ca_file(tmp_path)}},
        "receivers": [{"name": "mail", "email_configs": [{"to": "oncall@example.org", **entry}]}],
    })
    integration = build_targets(config)["mail"][0].integration
    assert isinstance(integration, EmailIntegration)
    return integration


async def send(integration: EmailIntegration, note: Notification | None = None) -> None:
    async with httpx.AsyncClient() as client:
        await integration.notify(note or notification(), client)


@pytest.fixture
def server() -> Iterator[MailServer]:
    with MailServer(mechanisms=["PLAIN"]) as running:
        yield running


async def test_starttls_auth_and_the_message_as_received(server: MailServer, tmp_path: Path) -> None:
    integration = email(server, tmp_path, headers={"Subject": "Page: API down", "X-Team": "platform"},
                        to="oncall@example.org, Backup <backup@example.org>")
    await send(integration)
    (mail,) = server.mails
    assert mail.tls and mail.auth == ("PLAIN", "alertmanager")
    assert mail.sender == "monitor@example.org"
    assert mail.recipients == ["oncall@example.org", "backup@example.org"]
    message = mail.message
    assert message["Subject"] == "Page: API down" and message["X-Team"] == "platform"
    assert message["From"] == "Monitor <monitor@example.org>"
    assert message["To"] == "oncall@example.org, Backup <backup@example.org>"
    assert message["Message-Id"] and message["Date"]
    text, body = mail.part("text/plain"), mail.part("text/html")
    for part in (text, body):
        assert "ApiDown" in part and "API health check failing" in part and "https://runbooks.example.org/api" in part
    assert "value: 503" in text and "<h2" in body


async def test_non_ascii_travels_seven_bit_clean(server: MailServer, tmp_path: Path) -> None:
    await send(email(server, tmp_path, headers={"Subject": "Störung — API 🔴"}),
               notification(summary="Prüfung fehlgeschlagen 🔴"))
    (mail,) = server.mails
    assert all(byte < 128 for byte in mail.raw)
    assert mail.message["Subject"] == "Störung — API 🔴"
    assert "Prüfung fehlgeschlagen 🔴" in mail.part("text/plain") and "Prüfung" in mail.part("text/html")


async def test_default_subject_is_alertmanagers_title_and_literal_bodies_replace_the_parts(
        server: MailServer, tmp_path: Path) -> None:
    await send(email(server, tmp_path, text="Look at the API.", html=""))
    (mail,) = server.mails
    assert mail.message["Subject"] == "[FIRING:1] ApiDown"
    assert not mail.message.is_multipart() and mail.part("text/plain").strip() == "Look at the API."


async def test_the_servers_order_of_mechanisms_decides(tmp_path: Path) -> None:
    with MailServer(mechanisms=["PLAIN", "LOGIN"]) as server:  # aiosmtpd offers "AUTH LOGIN PLAIN"
        await send(email(server, tmp_path))
        assert [m.auth for m in server.mails] == [("LOGIN", "alertmanager")]


@pytest.mark.parametrize("mechanism", ["LOGIN", "CRAM-MD5"])
async def test_login_and_cram_md5(tmp_path: Path, mechanism: str) -> None:
    with MailServer(mechanisms=[mechanism]) as server:
        # CRAM-MD5 takes auth_secret, as in Alertmanager; PLAIN and LOGIN auth_password.
        await send(email(server, tmp_path, auth_secret="password" if mechanism == "CRAM-MD5" else None))
        assert [m.auth for m in server.mails] == [(mechanism, "alertmanager")]


async def test_password_from_a_file_and_identity(server: MailServer, tmp_path: Path) -> None:
    secret = tmp_path / "smtp-password"
    secret.write_text("password\n")
    await send(email(server, tmp_path, auth_password_file=str(secret), auth_identity="alertmanager"))
    assert [m.auth for m in server.mails] == [("PLAIN", "alertmanager")]


async def test_refused_auth_is_permanent_and_shows_no_password(tmp_path: Path) -> None:
    with MailServer(refuse_auth=True) as server:
        with pytest.raises(DeliveryError) as caught:
            await send(email(server, tmp_path, auth_password="s3cret-smtp-pw"))
    assert caught.value.permanent and "AUTH answered 535" in str(caught.value)
    assert "s3cret-smtp-pw" not in str(caught.value) and server.mails == []


async def test_require_tls_against_a_server_without_starttls_is_permanent(tmp_path: Path) -> None:
    with MailServer(starttls=False, mechanisms=["PLAIN"]) as server:
        with pytest.raises(DeliveryError, match="does not offer STARTTLS") as caught:
            await send(email(server, tmp_path))
        assert caught.value.permanent and server.mails == []
        # require_tls: false sends in the clear, authenticating if the server offers AUTH.
        await send(email(server, tmp_path, require_tls=False))
        assert [(m.tls, m.auth) for m in server.mails] == [(False, ("PLAIN", "alertmanager"))]


async def test_an_unknown_ca_fails_temporarily(server: MailServer, tmp_path: Path) -> None:
    integration = email(server, tmp_path, tls_config={"server_name": "localhost"})
    integration.tls = None  # the system CAs do not know the test CA
    with pytest.raises(DeliveryError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed") as caught:
        await send(integration)
    assert not caught.value.permanent


@pytest.mark.parametrize(("reply", "permanent"), [("450 4.2.1 mailbox busy", False), ("550 5.1.1 no such user", True)])
async def test_recipient_refusals_are_classified_by_code(server: MailServer, tmp_path: Path, reply: str,
                                                         permanent: bool) -> None:
    server.rcpt_reply = reply
    with pytest.raises(DeliveryError, match=reply.split()[0]) as caught:
        await send(email(server, tmp_path))
    assert caught.value.permanent is permanent


async def test_a_server_that_never_answers_times_out_temporarily(tmp_path: Path) -> None:
    with SilentServer() as silent, MailServer() as server:
        integration = email(server, tmp_path, smarthost=f"127.0.0.1:{silent.port}", timeout="1s")
        started = time.monotonic()
        with pytest.raises(DeliveryError, match="timed out after 1s") as caught:
            await send(integration)
        assert not caught.value.permanent and time.monotonic() - started < 30


async def test_a_closed_port_is_temporary(tmp_path: Path, server: MailServer) -> None:
    from tests.smtp_server import free_port

    with pytest.raises(DeliveryError) as caught:
        await send(email(server, tmp_path, smarthost=f"127.0.0.1:{free_port()}"))
    assert not caught.value.permanent


async def test_send_resolved_defaults_to_false_as_in_alertmanager(server: MailServer, tmp_path: Path) -> None:
    await send(email(server, tmp_path), notification(resolved=True))
    assert server.mails == []
    await send(email(server, tmp_path, send_resolved=True), notification(resolved=True))
    assert server.mails[0].message["Subject"] == "[RESOLVED] ApiDown"


async def test_a_line_break_in_a_label_cannot_add_a_header(server: MailServer, tmp_path: Path) -> None:
    integration = email(server, tmp_path)
    note = notification()
    note = Notification(receiver=note.receiver, group_key=note.group_key,
                        group_labels={"alertname": "ApiDown\r\nBcc: victim@example.org"}, alerts=note.alerts)
    await send(integration, note)
    assert server.mails[0].message["Bcc"] is None and server.mails[0].recipients == ["oncall@example.org"]


# ---- config ---------------------------------------------------------------------------------------

def test_every_smtp_field_is_inherited_from_global_unless_set() -> None:
    config = AlertingConfig.model_validate({
        "global": {"smtp_smarthost": "smtp.example.org:587", "smtp_from": "am@example.org", "smtp_hello": "mon",
                   "smtp_auth_username": "u", "smtp_auth_password": "p", "smtp_auth_secret": "s",
                   "smtp_auth_identity": "i", "smtp_require_tls": False},
        "receivers": [{"name": "a", "email_configs": [{"to": "a@example.org"},
                                                      {"to": "b@example.org", "smarthost": "other:25", "from": "x@y.z",
                                                       "auth_password_file": "/dev/null", "require_tls": True}]}],
    })
    first, second = config.receivers[0].email_configs
    assert (first.smarthost, first.from_, first.hello, first.auth_username, first.auth_identity) == (
        "smtp.example.org:587", "am@example.org", "mon", "u", "i")
    assert first.auth_password is not None and first.auth_password.get_secret_value() == "p"
    assert first.require_tls is False and first.auth_secret is not None
    # A password file set on the entry wins over the global password (they count as one field).
    assert (second.smarthost, second.from_, second.auth_password, second.require_tls) == ("other:25", "x@y.z", None, True)


@pytest.mark.parametrize(("entry", "glob", "message"), [
    ({"to": "a@example.org"}, {}, "no SMTP server"),
    ({"to": "a@example.org", "smarthost": "h:25"}, {}, "no sender"),
    ({"to": "a@example.org"}, {"smtp_smarthost": "nohost"}, "host:port"),
    ({"to": "not an address"}, {"smtp_smarthost": "h:25", "smtp_from": "a@b.c"}, "not a list of email addresses"),
    ({"to": "a@b.c", "headers": {"Subject": "{{ .CommonLabels.x }}"}}, {"smtp_smarthost": "h:25", "smtp_from": "a@b.c"},
     "Go templates"),
    ({"to": "a@b.c", "headers": {"subject": "a", "Subject": "b"}}, {"smtp_smarthost": "h:25", "smtp_from": "a@b.c"},
     "duplicate header"),
])
def test_email_config_errors(entry: dict[str, Any], glob: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        AlertingConfig.model_validate({"global": glob, "receivers": [{"name": "r", "email_configs": [entry]}]})
