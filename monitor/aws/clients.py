"""One bounded AWS API call at a time, for the AWS check kinds and the SNS receiver
(docs/configuration.md, "AWS credentials").

* **Off the event loop.** boto3 is synchronous, so every call runs in one module-wide,
  bounded thread pool. Each endpoint (service, region, endpoint URL) may hold only
  ``PER_ENDPOINT`` of its threads, so one slow or hanging AWS API cannot take the threads
  every other check needs. A thread stuck on a hanging endpoint keeps its endpoint's share
  until botocore's socket timeout frees it, not merely until the caller gave up.
* **Bounded in time.** ``asyncio.timeout`` is the hard bound: the caller gets its answer
  (or an :class:`AwsError`) when ``timeout`` runs out, whatever the thread is doing. Inside
  the thread, botocore's connect/read timeouts are at most ``timeout``, retries use the
  ``standard`` mode, and a ``before-send`` hook refuses to start an attempt once the deadline
  has passed, so a thread does not keep retrying for a caller that has left.
* **Cached clients.** One client per (service, region, endpoint, role, socket timeout):
  creating one costs milliseconds of CPU and a few hundred kB, and clients are thread safe.
  The socket timeout is part of the key because botocore fixes it per client; it is rounded
  down to a short ladder of values so that a handful of clients serve any config.
* **Credentials** come from botocore's default chain (environment, shared config/profile,
  web identity, container and instance roles), read once and refreshed by botocore when they
  are temporary. With ``role_arn`` the role is assumed through STS and the assumed
  credentials are refreshed in the background of a call 15 minutes before they expire
  (botocore's ``RefreshableCredentials``: advisory 15 min, mandatory 10 min).
* **Lazily imported.** boto3 is imported by the first call, in a pool thread, never at
  start-up: a config without AWS checks never loads it (tests/test_lazy_imports.py).

Errors are :class:`AwsError`: one line, naming the AWS error code, with no credential,
signed URL or response body in it.

Why boto3 in threads rather than aiobotocore (bench/aws_clients.py, bench/RESULTS.md):
aiobotocore spends about 15-20% less client CPU per call, but importing it costs more time
and memory than boto3, its releases pin botocore to one version that lags boto3's, and a
call's cost is small either way (200 checks every 10 s are 20 calls/s: about 5% of a core
with either). Threads also keep botocore's blocking parts (credential refresh, IMDS
look-ups, model loading) off the event loop, which aiobotocore does not do for all of them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import re
import threading
import time
import weakref
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from monitor.core.results import one_line

POOL_THREADS = 64  # all AWS calls of the process at once
PER_ENDPOINT = 16  # of those, one (service, region, endpoint URL) at once
MAX_ATTEMPTS = 3  # botocore "standard" retry mode: the first try and two retries
ROLE_SESSION_NAME = "monitor"
ROLE_DURATION = 3600  # seconds; refreshed 15 min before expiry
# Socket timeouts a client may be made with (seconds); a call's timeout is rounded down to one.
_SOCKET_TIMEOUTS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 15.0, 20.0, 30.0, 60.0)
_CONNECT_TIMEOUT_MAX = 5.0

# Error codes AWS uses for "slow down" (botocore's retry handler's list plus S3's SlowDown).
THROTTLING_CODES = frozenset({
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException", "TransactionInProgressException",
    "RequestLimitExceeded", "BandwidthLimitExceeded", "LimitExceededException", "RequestThrottled",
    "SlowDown", "PriorRequestNotComplete", "EC2ThrottledException",
})  # fmt: skip
# 4xx codes that are not a final answer: the request may succeed as sent once credentials
# refresh, the clock is corrected or the service catches up.
_TRANSIENT_CLIENT_CODES = frozenset({
    "ExpiredToken", "ExpiredTokenException", "RequestExpired", "RequestTimeTooSkewed",
    "RequestTimeout", "RequestTimeoutException", "IDPCommunicationError", "InvalidIdentityToken",
})  # fmt: skip
# AWS access key ids are not secrets, but they name a credential and have no place in an error.
_ACCESS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA|AIDA|AROA|AGPA|ANPA|ANVA|APKA)[A-Z0-9]{12,}\b")


@dataclass(frozen=True)
class AwsTarget:
    """Where a call goes: the client cache key (with the role)."""

    service: str  # botocore's name: "sqs", "cloudwatch", "sesv2", ...
    region: str
    endpoint_url: str | None = None  # another endpoint, e.g. a VPC endpoint or a local test double
    role_arn: str | None = None  # assumed through STS before the call
    # Instead of the default chain (the SNS receiver's sigv4): a named profile of the shared
    # config files, or static keys. Not in the repr, which must never show a key.
    profile: str | None = None
    access_key: str | None = field(default=None, repr=False)
    secret_key: str | None = field(default=None, repr=False)


class AwsError(Exception):
    """A call that gave no answer. ``str()`` is ``"<Operation>: <Code>: <message>"``, one line.

    ``throttled``: AWS asked to slow down (429 or a throttling code). ``permanent``: sending the
    same request again will not help (a 4xx that is not throttling, an expired token or a
    timeout; a bad parameter) — what a notification outbox needs to decide on a retry.
    """

    def __init__(self, code: str, message: str, *, operation: str = "", throttled: bool = False,
                 permanent: bool = False, status: int | None = None) -> None:
        self.code = code
        self.operation = operation
        self.message = _clean(message) or code
        self.throttled = throttled
        self.permanent = permanent
        self.status = status
        super().__init__(self.__str__())

    def __str__(self) -> str:
        prefix = f"{self.operation}: " if self.operation else ""
        return one_line(f"{prefix}{self.code}: {self.message}")

    def after(self, note: str) -> AwsError:
        """The same error with a note on how the call ended ("retried until the 5s timeout")."""
        return AwsError(self.code, f"{self.message} ({note})", operation=self.operation, throttled=self.throttled,
                        permanent=self.permanent, status=self.status)


async def call(target: AwsTarget, method: str, timeout: float, *, keep: Collection[str] | None = None,
               **params: Any) -> dict[str, Any]:
    """``client.<method>(**params)`` for ``target``, answered within ``timeout`` seconds.

    ``method`` is boto3's snake_case name (``get_queue_attributes``). ``keep``: only these
    top-level keys of the response leave the worker thread — for answers with a secret in
    them (GetSecretValue), which is then dropped before the caller ever holds it.
    Raises :class:`AwsError`; never anything else for a failed call.
    """
    if timeout <= 0:
        raise AwsError("Timeout", "no time left for the call", operation=_operation_name(method))
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    state = _CallState(deadline, _operation_name(method))
    try:
        async with asyncio.timeout(timeout):
            gate = _gate(loop, target)
            await gate.acquire()
            try:
                future = _pool().submit(_call_blocking, target, method, timeout, state, keep, params)
            except BaseException:
                gate.release()
                raise
            # The endpoint's share is given back when the thread is done, not when the caller
            # stops waiting: a hanging endpoint can hold at most PER_ENDPOINT threads.
            future.add_done_callback(lambda _: _release_from_thread(loop, gate))
            return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        state.cancelled = True  # the thread starts no further attempt for a caller that left
        raise
    except TimeoutError:
        state.cancelled = True
        last = state.last_error
        if last is not None:
            raise last.after(f"retried until the {_seconds(timeout)} timeout") from None
        raise AwsError("Timeout", f"no answer from {target.service} within {_seconds(timeout)}",
                       operation=_operation_name(method)) from None


@dataclass
class _CallState:
    """Shared by a caller and its worker thread."""

    deadline: float  # time.monotonic()
    operation: str  # what the caller asked for (an AssumeRole on the way is named as such)
    last_error: AwsError | None = None  # the newest failed attempt, for a call that then times out
    cancelled: bool = False


# ------------------------------------------------------------------------------ threads

_pool_lock = threading.Lock()
_executor: concurrent.futures.ThreadPoolExecutor | None = None
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str | None], asyncio.Semaphore]] = \
    weakref.WeakKeyDictionary()


def _pool() -> concurrent.futures.ThreadPoolExecutor:
    global _executor
    with _pool_lock:
        if _executor is None:
            # Threads start on demand, so an idle daemon holds only those it needed once.
            _executor = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="aws")
        return _executor


def _gate(loop: asyncio.AbstractEventLoop, target: AwsTarget) -> asyncio.Semaphore:
    # Per event loop: an asyncio primitive belongs to one loop (tests run many loops).
    gates = _gates.setdefault(loop, {})
    key = (target.service, target.region, target.endpoint_url)
    gate = gates.get(key)
    if gate is None:
        gate = gates[key] = asyncio.Semaphore(PER_ENDPOINT)
    return gate


def _release_from_thread(loop: asyncio.AbstractEventLoop, gate: asyncio.Semaphore) -> None:
    try:
        loop.call_soon_threadsafe(gate.release)
    except RuntimeError:
        pass  # the loop is closed: nobody waits on its gates any more


# Per worker thread: the call it is running, for the botocore hooks below.
_running = threading.local()


class _OutOfTime(Exception):
    """Raised by the before-send hook: the caller's deadline passed before this attempt."""


def _call_blocking(target: AwsTarget, method: str, timeout: float, state: _CallState,
                   keep: Collection[str] | None, params: dict[str, Any]) -> dict[str, Any]:
    operation = _operation_name(method)
    if state.cancelled or time.monotonic() >= state.deadline:
        raise AwsError("Timeout", f"waited for a free AWS thread past the {_seconds(timeout)} timeout", operation=operation)
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
            raise last.after(f"retried until the {_seconds(timeout)} timeout") from None
        raise AwsError("Timeout", f"no answer from {target.service} within {_seconds(timeout)}", operation=operation) from None
    except AwsError:
        raise
    except Exception as err:  # botocore's own and the HTTP stack's: classified, one line
        raise classify(err, operation) from None
    finally:
        _running.state = None
    if keep is not None:
        kept = {key: response[key] for key in keep if key in response}
        response.clear()  # the rest (a secret's value) is not kept anywhere
        return kept
    return response


def _before_send(**_: Any) -> None:
    state: _CallState | None = getattr(_running, "state", None)
    if state is not None and (state.cancelled or time.monotonic() >= state.deadline):
        raise _OutOfTime


def _response_received(exception: BaseException | None = None, parsed_response: dict[str, Any] | None = None,
                       event_name: str = "", **_: Any) -> None:
    # Remember each failed attempt: when retries run into the deadline the caller is told
    # what AWS last said (ThrottlingException), not only that time ran out.
    state: _CallState | None = getattr(_running, "state", None)
    if state is None or isinstance(exception, _OutOfTime):
        return
    # "response-received.<service>.<Operation>": an AssumeRole on the way is named as such.
    operation = event_name.rsplit(".", 1)[-1] if event_name.count(".") >= 2 else state.operation
    if exception is not None:
        state.last_error = classify(exception, operation)
    elif parsed_response is not None and "Error" in parsed_response:
        meta = parsed_response.get("ResponseMetadata", {})
        state.last_error = _from_error_dict(parsed_response["Error"], meta.get("HTTPStatusCode"), operation)


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
    from botocore.config import Config  # noqa: PLC0415  (lazy: see the module docstring)

    _quiet_botocore_logs()
    config = Config(
        region_name=target.region,
        connect_timeout=min(socket_timeout, _CONNECT_TIMEOUT_MAX),
        read_timeout=socket_timeout,
        retries={"total_max_attempts": MAX_ATTEMPTS, "mode": "standard"},
        max_pool_connections=PER_ENDPOINT,
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
    import boto3.session  # noqa: PLC0415  (lazy: see the module docstring)
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
        error = _from_error_dict(response.get("Error", {}), status, name)
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


def _from_error_dict(error: dict[str, Any], status: Any, operation: str) -> AwsError:
    status = status if isinstance(status, int) else None
    code = str(error.get("Code") or "")
    if not code or code.isdigit():
        # HEAD answers have no body: S3's HeadObject/HeadBucket give only the status.
        code = _STATUS_CODES.get(status or 0, f"HTTP{status}" if status else "UnknownError")
    message = str(error.get("Message") or error.get("message") or "").strip()
    if message.startswith("<"):
        message = ""  # an HTML error page (a proxy, a wrong endpoint), not an AWS error
    if not message and status:
        message = f"HTTP {status}"
    throttled = code in THROTTLING_CODES or status == 429
    permanent = (status is not None and 400 <= status < 500 and not throttled
                 and code not in _TRANSIENT_CLIENT_CODES)
    return AwsError(code, message, operation=operation, throttled=throttled, permanent=permanent, status=status)


_STATUS_CODES = {301: "PermanentRedirect", 400: "BadRequest", 403: "AccessDenied", 404: "NotFound",
                 429: "TooManyRequests", 500: "InternalError", 502: "BadGateway", 503: "ServiceUnavailable",
                 504: "GatewayTimeout"}


def _endpoint(err: BaseException) -> str:
    url = str(getattr(err, "kwargs", {}).get("endpoint_url", "") or "the endpoint")
    return url.split("?", 1)[0]  # a signed URL's query is its signature


def _exception_text(err: BaseException) -> str:
    return str(err).strip() or type(err).__name__


def _clean(text: str) -> str:
    return one_line(_ACCESS_KEY_ID.sub("***", str(text)), 300)


def _seconds(value: float) -> str:
    return f"{round(value, 1):g}s"


def _operation_name(method: str) -> str:
    return "".join(part.capitalize() for part in method.split("_"))

