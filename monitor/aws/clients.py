"""botocore's side of an AWS call, run in the AWS worker process (``monitor.aws.worker``) for
the AWS check kinds and the SNS receiver (docs/configuration.md, "AWS credentials").

* **Bounded in time.** Inside the worker's thread, botocore's connect/read timeouts are at
  most the call's ``timeout``, retries use the ``standard`` mode, and a ``before-send`` hook
  refuses to start an attempt once the deadline has passed or the caller has gone, so a
  thread does not keep retrying for nobody. The caller's own bound is in ``monitor.aws.calls``.
* **Cached clients.** One client per (service, region, endpoint, role, socket timeout):
  creating one costs milliseconds of CPU and a few hundred kB, and clients are thread safe.
  The socket timeout is part of the key because botocore fixes it per client; it is rounded
  down to a short ladder of values so that a handful of clients serve any config.
* **Credentials** come from botocore's default chain (environment, shared config/profile,
  web identity, container and instance roles), read once and refreshed by botocore when they
  are temporary. With ``role_arn`` the role is assumed through STS and the assumed
  credentials are refreshed in the background of a call 15 minutes before they expire
  (botocore's ``RefreshableCredentials``: advisory 15 min, mandatory 10 min).
* **Plain answers.** What a call returns is rebuilt from dicts, lists, strings, numbers and
  UTC datetimes only, so the daemon's process can read it without importing botocore; with
  ``keep``, only those top-level keys leave this module (a GetSecretValue's secret does not).

Errors are :class:`AwsError`: one line, naming the AWS error code, with no credential,
signed URL or response body in it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from monitor.aws.model import AwsError, AwsTarget, error_from_dict, operation_name, seconds

MAX_ATTEMPTS = 3  # botocore "standard" retry mode: the first try and two retries
MAX_POOL_CONNECTIONS = 16  # per client: as many as the daemon lets one endpoint have at once
ROLE_SESSION_NAME = "monitor"
ROLE_DURATION = 3600  # seconds; refreshed 15 min before expiry
# Socket timeouts a client may be made with (seconds); a call's timeout is rounded down to one.
_SOCKET_TIMEOUTS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)
_CONNECT_TIMEOUT_MAX = 5.0


@dataclass
class CallState:
    """Shared by the worker's reader (which may cancel) and the thread running the call."""

    deadline: float  # time.monotonic()
    operation: str  # what the caller asked for (an AssumeRole on the way is named as such)
    last_error: AwsError | None = None  # the newest failed attempt, for a call that then times out
    cancelled: bool = False
    listener: Callable[[AwsError], None] | None = None  # told of each failed attempt (the daemon's side)

    def failed_attempt(self, error: AwsError) -> None:
        self.last_error = error
        if self.listener is not None:
            self.listener(error)


# Per worker thread: the call it is running, for the botocore hooks below.
_running = threading.local()


class _OutOfTime(Exception):
    """Raised by the before-send hook: the caller's deadline passed before this attempt."""


def call_blocking(target: AwsTarget, method: str, timeout: float, state: CallState,
                  keep: Collection[str] | None, params: dict[str, Any]) -> dict[str, Any]:
    """``client.<method>(**params)`` for ``target``, in this thread, given up at ``state.deadline``.

    Returns the answer as plain values (only the ``keep`` keys when given). Raises
    :class:`AwsError`; never anything else for a failed call.
    """
    operation = operation_name(method)
    if state.cancelled or time.monotonic() >= state.deadline:
        raise AwsError("Timeout", f"waited for a free AWS thread past the {seconds(timeout)} timeout", operation=operation)
    _running.state = state
    try:
        client = _client(target, timeout)
        try:
            bound = getattr(client, method)
        except AttributeError:
            raise AwsError("UnknownOperation", f"{target.service} has no operation {method!r}",
                           operation=operation, permanent=True) from None
        response: dict[str, Any] = bound(**params)
    except _OutOfTime:
        last = state.last_error
        if last is not None:
            raise last.after(f"retried until the {seconds(timeout)} timeout") from None
        raise AwsError("Timeout", f"no answer from {target.service} within {seconds(timeout)}", operation=operation) from None
    except AwsError:
        raise
    except Exception as err:  # botocore's own and the HTTP stack's: classified, one line
        raise classify(err, operation) from None
    finally:
        _running.state = None
    if keep is not None:
        kept = {key: response[key] for key in keep if key in response}
        response.clear()  # the rest (a secret's value) is not kept anywhere
        response = kept
    answer: dict[str, Any] = plain(response)
    return answer


def plain(value: Any) -> Any:
    """``value`` rebuilt from builtin types only: botocore's datetimes carry dateutil's UTC
    and its streams cannot cross a process; neither is needed by a check."""
    if isinstance(value, dict):
        return {str(key): plain(item) for key, item in value.items() if key != "ResponseMetadata"}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, Decimal):
        return float(value)
    if value is None or isinstance(value, (str, bytes, bool, int, float)):
        return value
    return str(type(value).__name__)  # a stream or another object: named, never read


def _before_send(**_: Any) -> None:
    state: CallState | None = getattr(_running, "state", None)
    if state is not None and (state.cancelled or time.monotonic() >= state.deadline):
        raise _OutOfTime


def _response_received(exception: BaseException | None = None, parsed_response: dict[str, Any] | None = None,
                       event_name: str = "", **_: Any) -> None:
    # Remember each failed attempt: when retries run into the deadline the caller is told
    # what AWS last said (ThrottlingException), not only that time ran out.
    state: CallState | None = getattr(_running, "state", None)
    if state is None or isinstance(exception, _OutOfTime):
        return
    # "response-received.<service>.<Operation>": an AssumeRole on the way is named as such.
    operation = event_name.rsplit(".", 1)[-1] if event_name.count(".") >= 2 else state.operation
    if exception is not None:
        state.failed_attempt(classify(exception, operation))
    elif parsed_response is not None and "Error" in parsed_response:
        meta = parsed_response.get("ResponseMetadata", {})
        state.failed_attempt(error_from_dict(parsed_response["Error"], meta.get("HTTPStatusCode"), operation))


# ------------------------------------------------------------------------------ clients

# Reentrant: building a client may resolve credentials, and an assumed role's first
# resolution builds its STS client under the same lock.
_client_lock = threading.RLock()
_clients: dict[tuple[AwsTarget, float], Any] = {}
# (role ARN or None, (profile, access key, secret key)) -> boto3 Session; all None: the default chain
_sessions: dict[tuple[str | None, tuple[str | None, str | None, str | None]], Any] = {}


def now() -> datetime:
    """The time assumed-role credentials compare their expiry with (tests replace it)."""
    return datetime.now(UTC)


def _client(target: AwsTarget, timeout: float) -> Any:
    socket_timeout = _socket_timeout(timeout)
    key = (target, socket_timeout)
    client = _clients.get(key)
    if client is not None:
        return client
    # botocore sessions are not thread safe while they build clients; clients themselves are.
    with _client_lock:
        client = _clients.get(key)
        if client is None:
            client = _clients[key] = _make_client(target, socket_timeout)
        return client


def _make_client(target: AwsTarget, socket_timeout: float) -> Any:
    from botocore.config import Config  # noqa: PLC0415  (imported by the first call: the worker starts light)

    _quiet_botocore_logs()
    config = Config(
        region_name=target.region,
        connect_timeout=min(socket_timeout, _CONNECT_TIMEOUT_MAX),
        read_timeout=socket_timeout,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=MAX_POOL_CONNECTIONS,
        user_agent_extra="monitor",
    )
    session = _session(target.role_arn, target.region, (target.profile, target.access_key, target.secret_key))
    client = session.client(target.service, region_name=target.region, endpoint_url=target.endpoint_url, config=config)
    _hook(client)
    return client


def _hook(client: Any) -> None:
    client.meta.events.register("before-send", _before_send)
    client.meta.events.register("response-received", _response_received)


def _session(role_arn: str | None, region: str,
             base_credentials: tuple[str | None, str | None, str | None] = (None, None, None)) -> Any:
    """The boto3 session for the default chain (or a profile, or static keys), or for a role
    assumed with those (called under the lock)."""
    session = _sessions.get((role_arn, base_credentials))
    if session is not None:
        return session
    import boto3.session  # noqa: PLC0415  (imported by the first call: the worker starts light)
    import botocore.session  # noqa: PLC0415

    if role_arn is None:
        profile, access_key, secret_key = base_credentials
        session = boto3.session.Session(profile_name=profile, aws_access_key_id=access_key,
                                        aws_secret_access_key=secret_key)
    else:
        base = _session(None, region, base_credentials)
        core = botocore.session.Session()
        # One copy of the service models for all sessions.
        core.register_component("data_loader", base._session.get_component("data_loader"))
        core.register_component("credential_provider", _AssumedRole(base, role_arn, region))
        session = boto3.session.Session(botocore_session=core)
    _sessions[(role_arn, base_credentials)] = session
    return session


class _AssumedRole:
    """A credential provider for one role: botocore's refreshable credentials, refreshed by
    an STS AssumeRole made with the default chain's credentials."""

    def __init__(self, base: Any, role_arn: str, region: str) -> None:
        self.base = base
        self.role_arn = role_arn
        self.region = region
        self._sts: Any = None

    def load_credentials(self) -> Any:
        from botocore.credentials import DeferredRefreshableCredentials  # noqa: PLC0415

        # `now` looked up at each use so tests can move the clock.
        return DeferredRefreshableCredentials(refresh_using=self.refresh, method="assume-role",
                                              time_fetcher=lambda: now())

    def refresh(self) -> dict[str, Any]:
        from botocore.config import Config  # noqa: PLC0415

        with _client_lock:  # the base session also builds the other clients
            if self._sts is None:
                # Regional STS in the check's region; AWS_ENDPOINT_URL_STS and the shared config
                # file's endpoint settings apply as they do for the AWS CLI. Refreshes run in
                # the thread of the call that needs them, so the same deadline hooks apply.
                self._sts = self.base.client("sts", region_name=self.region, config=Config(
                    connect_timeout=3, read_timeout=5,
                    retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"}, user_agent_extra="monitor"))
                _hook(self._sts)
        answer = self._sts.assume_role(RoleArn=self.role_arn, RoleSessionName=ROLE_SESSION_NAME,
                                       DurationSeconds=ROLE_DURATION)
        credentials = answer["Credentials"]
        expiration = credentials["Expiration"]
        return {
            "access_key": credentials["AccessKeyId"],
            "secret_key": credentials["SecretAccessKey"],
            "token": credentials["SessionToken"],
            "expiry_time": expiration.isoformat() if isinstance(expiration, datetime) else str(expiration),
        }


def _socket_timeout(timeout: float) -> float:
    fitting = [value for value in _SOCKET_TIMEOUTS if value <= timeout]
    return fitting[-1] if fitting else _SOCKET_TIMEOUTS[0]


def _quiet_botocore_logs() -> None:
    # At DEBUG botocore logs whole request and response bodies (a GetSecretValue answer, the
    # signed headers); whatever the root logger's level, these never go below INFO.
    import logging  # noqa: PLC0415

    for name in ("botocore", "boto3", "urllib3"):
        logger = logging.getLogger(name)
        if logger.getEffectiveLevel() < logging.INFO:
            logger.setLevel(logging.INFO)


def reset() -> None:
    """Forget every cached client and session (tests change credentials and endpoints)."""
    with _client_lock:
        _clients.clear()
        _sessions.clear()


# ------------------------------------------------------------------------------ errors

def classify(err: BaseException, operation: str) -> AwsError:
    """An exception from botocore (or below it) as an :class:`AwsError`."""
    if isinstance(err, AwsError):
        return err
    from botocore import exceptions as bx  # noqa: PLC0415  (loaded by the client that raised it)
    from botocore.parsers import ResponseParserError  # noqa: PLC0415

    if isinstance(err, bx.ClientError):
        response = getattr(err, "response", {}) or {}
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        name = getattr(err, "operation_name", "") or operation
        error = error_from_dict(response.get("Error", {}), status, name)
        attempts = response.get("ResponseMetadata", {}).get("RetryAttempts")
        return error.after(f"after {attempts + 1} attempts") if isinstance(attempts, int) and attempts else error
    if isinstance(err, bx.NoCredentialsError):
        return AwsError("NoCredentials", "no AWS credentials in the default chain (environment, shared "
                        "config, web identity, container or instance role)", operation=operation)
    if isinstance(err, (bx.PartialCredentialsError, bx.CredentialRetrievalError, bx.RefreshWithMFAUnsupportedError)):
        return AwsError("CredentialError", _exception_text(err), operation=operation)
    if isinstance(err, bx.ParamValidationError):
        return AwsError("ParamValidation", _exception_text(err), operation=operation, permanent=True)
    if isinstance(err, bx.NoRegionError):
        return AwsError("NoRegion", "no region", operation=operation, permanent=True)
    if isinstance(err, bx.ConnectTimeoutError):
        return AwsError("ConnectTimeout", f"connecting to {_endpoint(err)} timed out", operation=operation)
    if isinstance(err, bx.ReadTimeoutError):
        return AwsError("ReadTimeout", f"{_endpoint(err)} stopped answering", operation=operation)
    if isinstance(err, bx.EndpointConnectionError):
        return AwsError("EndpointConnectionError", f"could not connect to {_endpoint(err)}", operation=operation)
    if isinstance(err, ResponseParserError):
        # Its text quotes the body it could not parse: possibly the very answer a caller
        # asked to drop (a GetSecretValue), so none of it is kept.
        return AwsError("ResponseParserError", "the answer could not be parsed (not an AWS API answer: a proxy "
                        "or an HTML error page?)", operation=operation)
    if isinstance(err, bx.ConnectionClosedError):
        return AwsError("ConnectionClosed", f"{_endpoint(err)} closed the connection", operation=operation)
    if isinstance(err, bx.BotoCoreError):
        return AwsError(type(err).__name__, _exception_text(err), operation=operation)
    return AwsError(type(err).__name__, _exception_text(err), operation=operation)


def _endpoint(err: BaseException) -> str:
    url = str(getattr(err, "kwargs", {}).get("endpoint_url", "") or "the endpoint")
    return url.split("?", 1)[0]  # a signed URL's query is its signature


def _exception_text(err: BaseException) -> str:
    return str(err).strip() or type(err).__name__
