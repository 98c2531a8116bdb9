"""One bounded AWS API call, for the AWS check kinds and the SNS receiver, answered by the AWS
worker process (docs/configuration.md, "AWS credentials"; docs/architecture.md, "The AWS
worker").

* **Out of the daemon's process.** boto3 runs in ``monitor.aws.worker``, started by the first
  call (a config without AWS checks never starts it, nor imports boto3 anywhere). The event
  loop only pickles a request and reads an answer; botocore's CPU and its GIL are the
  worker's. Two helper threads move frames, so the loop never blocks on the pipe.
* **Bounded per endpoint.** Each endpoint (service, region, endpoint URL) may have only
  ``PER_ENDPOINT`` calls in the worker at once, so one slow or hanging AWS API cannot take
  the threads every other check needs. A call stuck on a hanging endpoint keeps its share
  until the worker answers it, not merely until the caller gave up.
* **Bounded in time.** ``asyncio.timeout`` is the hard bound: the caller gets its answer (or
  an :class:`AwsError`) when ``timeout`` runs out, whatever the worker is doing; the worker is
  told, and starts no further attempt. A call that timed out after failed attempts names
  what AWS last said (``ThrottlingException ... (retried until the 5s timeout)``).
* **A worker that dies or hangs** fails the calls it had, with one line saying so, and the
  next call starts a new one (at most one start a second). When a call is ``STUCK_AFTER``
  seconds past its deadline, the worker is pinged; one that does not answer within
  ``PING_GRACE`` is killed and replaced. A frame the daemon cannot read ends the worker too.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import itertools
import os
import pickle
import queue
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Collection
from pathlib import Path
from typing import Any

from monitor.aws import wire
from monitor.aws.model import AwsError, AwsTarget, operation_name, seconds

PER_ENDPOINT = 16  # calls one (service, region, endpoint URL) may have in the worker at once
STUCK_AFTER = 10.0  # seconds past a call's deadline without an answer: time to ask if the worker is hung
PING_GRACE = 5.0  # seconds the worker's main thread has to answer that
RESTART_EVERY = 1.0  # seconds at least between two worker starts (one that dies at once)

_ids = itertools.count(1)
_lock = threading.Lock()
_current: _Worker | None = None
_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[str, str, str | None], asyncio.Semaphore]] = \
    weakref.WeakKeyDictionary()


async def call(target: AwsTarget, method: str, timeout: float, *, keep: Collection[str] | None = None,
               **params: Any) -> dict[str, Any]:
    """``client.<method>(**params)`` for ``target``, answered within ``timeout`` seconds.

    ``method`` is boto3's snake_case name (``get_queue_attributes``). ``keep``: only these
    top-level keys of the answer leave the worker — for answers with a secret in them
    (GetSecretValue), which then never reaches this process. Raises :class:`AwsError`; never
    anything else for a failed call.
    """
    operation = operation_name(method)
    if timeout <= 0:
        raise AwsError("Timeout", "no time left for the call", operation=operation)
    loop = asyncio.get_running_loop()
    deadline = time.monotonic() + timeout
    request_id = next(_ids)
    worker: _Worker | None = None
    try:
        async with asyncio.timeout(timeout):
            _check_worker()
            gate = _gate(loop, target)
            await gate.acquire()
            try:
                worker = _worker()
                future = worker.submit(request_id, target, method, timeout, deadline, keep, params)
            except BaseException:
                gate.release()
                raise
            # The endpoint's share is given back when the worker answers, not when the caller
            # stops waiting: a hanging endpoint can hold at most PER_ENDPOINT calls.
            future.add_done_callback(lambda _: _release_from_thread(loop, gate))
            kind, payload = await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        if worker is not None:
            worker.cancel(request_id)
        raise
    except TimeoutError:
        if worker is None:
            raise AwsError("Timeout", f"waited for a free AWS call slot past the {seconds(timeout)} timeout",
                           operation=operation) from None
        last = worker.cancel(request_id)
        if last is not None:
            raise last.after(f"retried until the {seconds(timeout)} timeout") from None
        raise AwsError("Timeout", f"no answer from {target.service} within {seconds(timeout)}",
                       operation=operation) from None
    if kind == "answer":
        answer: dict[str, Any] = payload
        return answer
    raise AwsError.from_fields(payload)


def reset() -> None:
    """Stop the worker; the next call starts a new one, which reads credentials and the
    environment afresh (tests change both)."""
    global _current
    with _lock:
        worker, _current = _current, None
    if worker is not None:
        worker.stop()


def worker_pid() -> int | None:
    """The running worker's PID (for tests and ``ps``), or None."""
    with _lock:
        return _current.proc.pid if _current is not None and _current.alive else None


# ------------------------------------------------------------------------------ the worker

class _Worker:
    """The daemon's end of one worker process: a writer thread (the loop never blocks on a
    full pipe) and a reader thread that hands answers to the callers' futures."""

    def __init__(self) -> None:
        # -P: not the working directory first on the path (another checkout's `monitor`, or a
        # writable data directory); the package is found as the daemon found it.
        self.proc = subprocess.Popen([sys.executable, "-P", "-m", "monitor.aws.worker"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, env=_worker_env(), close_fds=True)
        self.started = time.monotonic()
        self.alive = True
        self.ended_because: str | None = None  # why the daemon stopped it, if it did
        self.death: AwsError | None = None
        self._lock = threading.Lock()
        # id -> (future, deadline); answers are ("answer", value) or ("error", AwsError fields)
        self._pending: dict[int, tuple[concurrent.futures.Future[tuple[str, Any]], float]] = {}
        self._attempts: dict[int, AwsError] = {}  # the newest failed attempt of calls still running
        self._frames: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._last_heard = self.started  # the last frame from the worker
        self._ping_sent: float | None = None
        try:
            threading.Thread(target=self._write, name="aws-worker-writer", daemon=True).start()
            threading.Thread(target=self._read, name="aws-worker-reader", daemon=True).start()
        except RuntimeError:
            self.kill()
            self.proc.wait()
            raise

    def submit(self, request_id: int, target: AwsTarget, method: str, timeout: float, deadline: float,
               keep: Collection[str] | None, params: dict[str, Any]) -> concurrent.futures.Future[tuple[str, Any]]:
        future: concurrent.futures.Future[tuple[str, Any]] = concurrent.futures.Future()
        # Running from the start, as a thread pool's would be: a caller that gives up cannot
        # cancel it, so it completes (and frees the endpoint's share) only when the worker answers.
        future.set_running_or_notify_cancel()
        try:
            frame = wire.encode(("call", request_id, target, method, timeout, deadline,
                                 tuple(keep) if keep is not None else None, params))
        except (pickle.PicklingError, TypeError, AttributeError, wire.FrameError) as err:
            raise AwsError("ParamValidation", f"the parameters cannot be sent to the AWS worker ({err})",
                           operation=operation_name(method), permanent=True) from None
        with self._lock:
            if not self.alive:
                raise AwsError.from_fields(self.death.fields()) if self.death else \
                    AwsError("WorkerExited", "the AWS worker process has exited")
            self._pending[request_id] = (future, deadline)
        self._frames.put(frame)
        return future

    def cancel(self, request_id: int) -> AwsError | None:
        """Tell the worker the caller has gone; the newest failed attempt, if any."""
        with self._lock:
            last = self._attempts.pop(request_id, None)
            running = request_id in self._pending and self.alive
        if running:
            self._frames.put(wire.encode(("cancel", request_id)))
        return last

    def check(self, now: float) -> bool:
        """False when the worker is hung (and now stopped): a call is ``STUCK_AFTER`` past its
        deadline and the worker's main thread did not answer a ping within ``PING_GRACE``.
        One call stuck in its thread (a credential helper that never returns) is not a hung
        worker: the others still get their answers, and only that call's endpoint share is held."""
        with self._lock:
            if not self.alive:
                return False
            if not any(now > deadline + STUCK_AFTER for _, deadline in self._pending.values()):
                self._ping_sent = None
                return True
            if self._ping_sent is None or (self._last_heard >= self._ping_sent and now - self._ping_sent > PING_GRACE):
                self._ping_sent = now
                self._frames.put(wire.encode(("ping", 0)))
                return True
            if self._last_heard >= self._ping_sent or now - self._ping_sent <= PING_GRACE:
                return True
            self.ended_because = (f"did not answer for {seconds(now - self._last_heard)} while a call was "
                                  f"{seconds(STUCK_AFTER)} past its deadline, and was stopped")
            self.alive = False
        self.kill()  # the reader fails its calls; the next call starts a new worker
        return False

    def stop(self, grace: float = 2.0) -> None:
        self._frames.put(None)  # stdin closes: the worker exits
        try:
            self.proc.wait(grace)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        try:
            self.proc.kill()
        except OSError:
            pass  # already gone

    def _write(self) -> None:
        assert self.proc.stdin is not None
        while (frame := self._frames.get()) is not None:
            try:
                self.proc.stdin.write(frame)
                self.proc.stdin.flush()
            except (OSError, ValueError):
                break  # the worker is gone; the reader reports it
        try:
            self.proc.stdin.close()
        except OSError:
            pass

    def _read(self) -> None:
        assert self.proc.stdout is not None
        while True:
            try:
                message = wire.read(self.proc.stdout)
                if message is None:
                    break  # the worker has exited
                self._take(message)
            except Exception as err:  # noqa: BLE001  (out of step: nothing more from this pipe can be trusted)
                with self._lock:
                    self.ended_because = f"sent what the daemon could not read ({type(err).__name__}) and was stopped"
                self.kill()
                break
        code = self.proc.wait()
        self.proc.stdout.close()
        with self._lock:
            if self.ended_because is not None:
                how = self.ended_because
            else:
                how = f"was killed by signal {-code}" if code < 0 else f"exited with code {code}"
            death = self.death = AwsError("WorkerExited", f"the AWS worker process {how}; the next call starts a new one")
            self.alive = False
            pending, self._pending = self._pending, {}
            self._attempts.clear()
            self._frames.put(None)
        for future, _ in pending.values():
            future.set_result(("error", death.fields()))

    def _take(self, message: tuple[Any, ...]) -> None:
        kind, request_id, payload = message
        with self._lock:
            self._last_heard = time.monotonic()
            if kind == "pong":
                return
            if kind == "attempt":
                self._attempts[request_id] = AwsError.from_fields(payload)
                return
            self._attempts.pop(request_id, None)
            entry = self._pending.pop(request_id, None)
        if entry is not None:
            entry[0].set_result((kind, payload))


def _worker_env() -> dict[str, str]:
    """The daemon's environment (credentials come from it), and where to find this package
    when the daemon found it only through its working directory (run from a source tree)."""
    env = dict(os.environ)
    package_root = Path(__file__).resolve().parents[2]
    on_path = any(entry and Path(entry).resolve() == package_root for entry in sys.path[1:])
    if not on_path:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(package_root), env.get("PYTHONPATH")]))
    return env


def _check_worker() -> None:
    """Before a call waits for its endpoint's share: a hung worker holds every share it was
    given, so the check cannot wait for one."""
    with _lock:
        worker = _current
    if worker is not None:
        worker.check(time.monotonic())


def _worker() -> _Worker:
    global _current, _start_failure, _exit_hook
    now = time.monotonic()
    with _lock:
        worker = _current
        if worker is not None and not worker.alive:
            if now - worker.started < RESTART_EVERY and worker.death is not None:
                # One that dies at once is not restarted in a tight loop.
                raise AwsError.from_fields(worker.death.fields())
            worker = None
        if worker is None:
            if _start_failure is not None and now - _start_failure[0] < RESTART_EVERY:
                raise AwsError.from_fields(_start_failure[1].fields())
            try:
                worker = _current = _Worker()
            except (OSError, RuntimeError) as err:
                failure = AwsError("WorkerStart", f"could not start the AWS worker process: {err}")
                _start_failure = (now, failure)
                raise AwsError.from_fields(failure.fields()) from None
            _start_failure = None
            if not _exit_hook:
                _exit_hook = True
                atexit.register(reset)
        return worker


_start_failure: tuple[float, AwsError] | None = None
_exit_hook = False  # reset() registered to run at exit (done once, under _lock)


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
