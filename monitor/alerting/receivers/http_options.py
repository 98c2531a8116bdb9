"""``http_config`` and ``tls_config``: Prometheus' HTTP client options, as Alertmanager reads
them for every HTTP integration (``docs/configuration.md#http_config``).

Credentials given as files (``password_file``, ``credentials_file``, ``bearer_token_file``)
are read at every send, as Prometheus does, so a rotated token is picked up without a
reload; that they exist is checked when the config loads. CA, certificate and key files are
loaded once, at load, into an SSL context, so a bad file is a ``file:line`` error.
"""

from __future__ import annotations

import base64
import ssl
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Literal, Self

import httpx
from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from monitor.alerting.receivers.options import Lenient
from monitor.core import secrets

if TYPE_CHECKING:
    from monitor.alerting.receivers.defaults import ReceiverDefaults

TLSVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
_VERSIONS: dict[str, ssl.TLSVersion] = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


_default_context: ssl.SSLContext | None = None


def default_context() -> ssl.SSLContext:
    """The CAs an http_config without tls_config trusts (those the shared client trusts),
    loaded once: loading a CA bundle takes tens of milliseconds of CPU on the event loop."""
    global _default_context
    if _default_context is None:
        _default_context = httpx.create_ssl_context()
    return _default_context


class CredentialError(Exception):
    """A credential file could not be read at send time (the integration reports it)."""


def readable_file(path: str | None) -> str | None:
    """A file a credential or certificate is read from must exist when the config loads."""
    if path is not None and (not Path(path).exists() or Path(path).is_dir()):
        raise ValueError(f"{path!r} is not a readable file")
    return path


def read_secret_file(path: str, what: str) -> str:
    """The file's content without surrounding whitespace (Prometheus trims it too),
    registered for redaction before anything can print it."""
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as err:
        raise CredentialError(f"cannot read {what} {path!r}: {type(err).__name__}") from None
    secrets.register({value})
    return value


def _secret(value: SecretStr | None, path: str | None, what: str) -> str:
    if value is not None:
        return value.get_secret_value()
    return read_secret_file(path, what) if path else ""


class TLSOptions(Lenient):
    """``tls_config``: how the server is verified and how we authenticate to it."""

    ignored_options: ClassVar[frozenset[str]] = frozenset({"ca_ref", "cert_ref", "key_ref"})

    ca: str | None = None  # PEM text
    ca_file: str | None = None
    cert: str | None = None
    cert_file: str | None = None
    key: SecretStr | None = None
    key_file: str | None = None
    server_name: str | None = None
    insecure_skip_verify: bool = False
    min_version: TLSVersion | None = None
    max_version: TLSVersion | None = None

    _context: ssl.SSLContext | None = PrivateAttr(default=None)

    _files = field_validator("ca_file", "cert_file", "key_file")(readable_file)

    @model_validator(mode="after")
    def _load(self) -> TLSOptions:
        for a, b in (("ca", "ca_file"), ("cert", "cert_file"), ("key", "key_file")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ValueError(f"at most one of {a} and {b} may be set")
        has_cert = self.cert is not None or self.cert_file is not None
        has_key = self.key is not None or self.key_file is not None
        if has_cert != has_key:
            raise ValueError("a client certificate needs both cert (or cert_file) and key (or key_file)")
        # Built now: a CA or key that does not load is a config error, not a failed page.
        self._context = self._build()
        return self

    def context(self) -> ssl.SSLContext:
        assert self._context is not None
        return self._context

    def _build(self) -> ssl.SSLContext:
        try:
            ctx = ssl.create_default_context(cafile=self.ca_file, cadata=self.ca)
            if self.insecure_skip_verify:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            if self.min_version:
                ctx.minimum_version = _VERSIONS[self.min_version]
            if self.max_version:
                ctx.maximum_version = _VERSIONS[self.max_version]
            if self.cert is not None or self.cert_file is not None:
                self._load_chain(ctx)
        except (OSError, ssl.SSLError, ValueError) as err:
            raise ValueError(f"tls_config cannot be loaded: {err}") from None
        return ctx

    def _load_chain(self, ctx: ssl.SSLContext) -> None:
        # load_cert_chain reads files only; inline PEM goes through a private temporary file.
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            cert_file = self.cert_file
            key_file = self.key_file
            if self.cert is not None:
                cert_file = str(Path(tmp) / "cert.pem")
                Path(cert_file).write_text(self.cert)
            if self.key is not None:
                key_file = str(Path(tmp) / "key.pem")
                Path(key_file).write_text(self.key.get_secret_value())
            ctx.load_cert_chain(cert_file or "", key_file)


class BasicAuth(Lenient):
    ignored_options: ClassVar[frozenset[str]] = frozenset({"username_ref", "password_ref"})

    username: str = ""
    username_file: str | None = None
    password: SecretStr | None = None
    password_file: str | None = None

    _files = field_validator("username_file", "password_file")(readable_file)

    @model_validator(mode="after")
    def _one_each(self) -> BasicAuth:
        if self.username and self.username_file:
            raise ValueError("at most one of username and username_file may be set")
        if self.password is not None and self.password_file:
            raise ValueError("at most one of password and password_file may be set")
        return self


class Authorization(Lenient):
    ignored_options: ClassVar[frozenset[str]] = frozenset({"credentials_ref"})

    type: str = "Bearer"
    credentials: SecretStr | None = None
    credentials_file: str | None = None

    _files = field_validator("credentials_file")(readable_file)

    @model_validator(mode="after")
    def _valid(self) -> Authorization:
        if self.type.strip().lower() == "basic":
            raise ValueError('authorization type cannot be "Basic": use basic_auth')
        if self.credentials is not None and self.credentials_file:
            raise ValueError("at most one of credentials and credentials_file may be set")
        return self


class HttpConfig(Lenient):
    """``http_config`` of an integration, or ``global.http_config`` as every HTTP
    integration's default."""

    # Accepted so the file loads; reported, since they change nothing here.
    ignored_options: ClassVar[frozenset[str]] = frozenset({"oauth2", "no_proxy", "http_headers"})

    basic_auth: BasicAuth | None = None
    authorization: Authorization | None = None
    bearer_token: SecretStr | None = None  # deprecated in Prometheus; authorization.credentials
    bearer_token_file: str | None = None
    proxy_url: str | None = None
    proxy_from_environment: bool = False
    proxy_connect_header: dict[str, list[SecretStr]] = Field(default_factory=dict)
    tls_config: TLSOptions | None = None
    # None: not followed (see docs/configuration.md#http_config; Alertmanager's default is true).
    follow_redirects: bool | None = None
    enable_http2: bool = True  # accepted; requests are HTTP/1.1 either way

    _files = field_validator("bearer_token_file")(readable_file)

    @field_validator("proxy_url")
    @classmethod
    def _proxy(cls, url: str | None) -> str | None:
        if url is not None and not url.startswith(("http://", "https://")):
            raise ValueError("proxy_url must be an http:// or https:// URL (SOCKS proxies are not supported)")
        return url

    @model_validator(mode="after")
    def _one_auth(self) -> HttpConfig:
        given = [name for name in ("basic_auth", "authorization", "bearer_token", "bearer_token_file")
                 if getattr(self, name) is not None]
        if len(given) > 1:
            raise ValueError(f"at most one of basic_auth, authorization, bearer_token and bearer_token_file"
                             f" may be set (got {', '.join(given)})")
        if self.proxy_from_environment and self.proxy_url:
            raise ValueError("proxy_url and proxy_from_environment cannot both be set")
        return self

    def auth_header(self) -> dict[str, str]:
        """The ``Authorization`` header for one request; files are read now."""
        if self.basic_auth is not None:
            auth = self.basic_auth
            user = read_secret_file(auth.username_file, "basic_auth.username_file") if auth.username_file \
                else auth.username
            password = _secret(auth.password, auth.password_file, "basic_auth.password_file")
            token = base64.b64encode(f"{user}:{password}".encode()).decode()
            secrets.register({token})
            return {"Authorization": f"Basic {token}"}
        if self.authorization is not None:
            a = self.authorization
            credentials = _secret(a.credentials, a.credentials_file, "authorization.credentials_file")
            return {"Authorization": f"{a.type.strip()} {credentials}"}
        if self.bearer_token is not None or self.bearer_token_file:
            token = _secret(self.bearer_token, self.bearer_token_file, "bearer_token_file")
            return {"Authorization": f"Bearer {token}"}
        return {}

    def client(self, timeout: float) -> httpx.AsyncClient:
        """A client for one request with this config's proxy, TLS and redirect policy.

        One per request rather than pooled: notifications are a few a minute at most, and a
        client that lives exactly as long as its request is closed on every path, including
        a reload that drops this config."""
        proxy: httpx.Proxy | None = None
        if self.proxy_url:
            headers = {name: ", ".join(v.get_secret_value() for v in values)
                       for name, values in self.proxy_connect_header.items()}
            proxy = httpx.Proxy(self.proxy_url, headers=headers or None)
        verify = self.tls_config.context() if self.tls_config is not None else default_context()
        return httpx.AsyncClient(proxy=proxy, verify=verify, follow_redirects=bool(self.follow_redirects),
                                 trust_env=self.proxy_from_environment, timeout=timeout)

    def request_extensions(self) -> dict[str, str]:
        """httpcore's ``sni_hostname``: the name sent in SNI and checked on the certificate."""
        if self.tls_config is not None and self.tls_config.server_name:
            return {"sni_hostname": self.tls_config.server_name}
        return {}

    def secrets(self) -> list[str]:
        """Configured credential values, for scrubbing error text."""
        values = [self.bearer_token, self.authorization.credentials if self.authorization else None,
                  self.basic_auth.password if self.basic_auth else None]
        return [v.get_secret_value() for v in values if v is not None]

    def ignored_paths(self) -> list[str]:
        """Dotted names of the accepted-but-ignored options in this block and its children."""
        found = list(self.ignored)
        for name in ("basic_auth", "authorization", "tls_config"):
            child: Lenient | None = getattr(self, name)
            if child is not None:
                found += [f"{name}.{key}" for key in child.ignored]
        return found


class HttpReceiver(Lenient):
    """An integration that talks HTTP: it has ``http_config``, and inherits
    ``global.http_config`` when it sets none (Alertmanager's inheritance)."""

    http_config: HttpConfig | None = None

    def with_defaults(self, defaults: ReceiverDefaults) -> Self:
        if self.http_config is None and defaults.http_config is not None:
            return self.model_copy(update={"http_config": defaults.http_config})
        return self

    def ignored_paths(self) -> list[str]:
        own = super().ignored_paths()
        return own + [f"http_config.{key}" for key in self.http_config.ignored_paths()] if self.http_config else own
