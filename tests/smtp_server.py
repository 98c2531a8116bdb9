"""A local SMTP server (aiosmtpd, in a thread) that records what it gets: STARTTLS with a
certificate from a test CA, AUTH PLAIN / LOGIN / CRAM-MD5 against one user, and answers a
test can set (a 4xx or 5xx to RCPT). Plus a server that accepts connections and never
speaks, for timeouts."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import socket
import ssl
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Mail:
    sender: str
    recipients: list[str]
    raw: bytes
    tls: bool  # the session was encrypted when DATA arrived
    auth: tuple[str, str] | None  # (mechanism, user) the session authenticated as

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.raw, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed

    def part(self, content_type: str) -> str:
        found = self.message.get_body(preferencelist=(content_type.split("/")[1],))
        assert found is not None and found.get_content_type() == content_type, f"no {content_type} part"
        return str(found.get_content())


class _Handler:
    def __init__(self, server: MailServer) -> None:
        self.server = server

    async def handle_RCPT(self, smtp: SMTP, session: Session, envelope: Envelope, address: str,  # noqa: N802
                          options: list[str]) -> str:
        if self.server.rcpt_reply:
            return self.server.rcpt_reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, smtp: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802
        auth = None
        if session.authenticated:
            auth = (self.server.mechanism_used.get(id(session), "?"), self.server.user)
        content = envelope.original_content or envelope.content
        assert isinstance(content, bytes)
        self.server.mails.append(Mail(str(envelope.mail_from), list(envelope.rcpt_tos), content,
                                      tls=session.ssl is not None, auth=auth))
        return "250 OK: queued"

    async def auth_CRAM__MD5(self, smtp: SMTP, args: list[str]) -> AuthResult:  # noqa: N802
        challenge = f"<{secrets.token_hex(8)}@localhost>".encode()
        answer = await smtp.challenge_auth(challenge)
        if not isinstance(answer, bytes):
            return AuthResult(success=False)
        user, _, digest = answer.decode().rpartition(" ")
        expected = hmac.new(self.server.password.encode(), challenge, hashlib.md5).hexdigest()
        ok = user == self.server.user and hmac.compare_digest(digest, expected)
        if ok:
            self.server.mechanism_used[id(smtp.session)] = "CRAM-MD5"
        self.server.attempts.append(("CRAM-MD5", user, ok))
        return AuthResult(success=ok, handled=False)


class MailServer:
    """``mechanisms``: the AUTH mechanisms offered (a subset of PLAIN, LOGIN, CRAM-MD5);
    ``starttls``: offer STARTTLS (the certificate is for localhost and 127.0.0.1, signed by
    ``ca``); ``refuse_auth``: answer every AUTH with 535."""

    def __init__(self, *, starttls: bool = True, mechanisms: Iterable[str] = ("PLAIN", "LOGIN"),
                 user: str = "alertmanager", password: str = "password", refuse_auth: bool = False) -> None:
        self.ca = trustme.CA()
        self.user = user
        self.password = password
        self.refuse_auth = refuse_auth
        self.mails: list[Mail] = []
        self.attempts: list[tuple[str, str, bool]] = []  # (mechanism, user, accepted)
        self.mechanism_used: dict[int, str] = {}
        self.rcpt_reply = ""
        self.port = free_port()
        tls_context = None
        if starttls:
            tls_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.ca.issue_cert("localhost", "127.0.0.1").configure_cert(tls_context)
        excluded = [m for m in ("PLAIN", "LOGIN", "CRAM-MD5") if m not in set(mechanisms)]
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port,
                                      tls_context=tls_context, authenticator=self._authenticate,
                                      auth_require_tls=starttls, auth_exclude_mechanism=excluded)

    def ca_file(self, directory: Any) -> str:
        path = f"{directory}/smtp-ca.pem"
        self.ca.cert_pem.write_to_path(path)
        return path

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        user, password = auth_data.login.decode(), auth_data.password.decode()
        ok = not self.refuse_auth and user == self.user and password == self.password
        self.attempts.append((mechanism, user, ok))
        if ok:
            self.mechanism_used[id(session)] = mechanism
        return AuthResult(success=ok, handled=False)  # handled=True would leave the client unanswered

    @property
    def smarthost(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __enter__(self) -> MailServer:
        self._controller.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._controller.stop()


class SilentServer:
    """Accepts TCP connections and never sends a byte (no SMTP greeting)."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(8)
        self.port = int(self._sock.getsockname()[1])
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self._sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except OSError:
                continue
            self._held.append(conn)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        for conn in self._held:
            conn.close()
        self._sock.close()

