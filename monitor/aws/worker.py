"""The AWS worker process: boto3 and every AWS call of the daemon, out of the daemon's
process (docs/configuration.md, "AWS credentials"; docs/architecture.md, "The AWS worker").

Why a process: botocore's work per call (signing, building and parsing XML/JSON, loading
service models, creating clients) is a few milliseconds of Python that holds the GIL. In
threads of the daemon it made the event loop wait for the GIL, and the HTTP checks beside
200 AWS checks started late (bench/RESULTS.md, "aws-200"). Here it has its own interpreter,
and the daemon only moves small frames through a pipe. boto3's memory lives here too, so a
config without AWS checks never starts this process at all.

Started by ``monitor.aws.calls`` as ``python -m monitor.aws.worker``; reads calls on stdin,
runs each in a bounded thread pool, writes answers on stdout (``monitor.aws.wire``). It exits
when its stdin ends: the daemon closed it, exited or was killed.
"""

from __future__ import annotations

import concurrent.futures
import os
import pickle
import signal
import sys
import threading
from collections.abc import Callable, Collection
from typing import IO, Any

from monitor.aws import clients, wire
from monitor.aws.model import AwsError, AwsTarget, operation_name

POOL_THREADS = 64  # all AWS calls at once; the daemon lets one endpoint have at most 16 of them


class _Replies:
    """The one writer of stdout, shared by the pool's threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.lock = threading.Lock()

    def send(self, message: tuple[Any, ...]) -> None:
        frame = wire.encode(message)
        with self.lock:
            try:
                self.stream.write(frame)
                self.stream.flush()
            except (BrokenPipeError, ValueError, OSError):
                os._exit(0)  # the daemon is gone: nobody is waiting for any answer


def _run(replies: _Replies, states: dict[int, clients.CallState], request_id: int, target: AwsTarget,
         method: str, timeout: float, keep: Collection[str] | None, params: dict[str, Any]) -> None:
    state = states[request_id]
    try:
        answer = clients.call_blocking(target, method, timeout, state, keep, params)
        reply: tuple[Any, ...] = ("answer", request_id, answer)
    except AwsError as err:
        reply = ("error", request_id, err.fields())
    except Exception as err:  # noqa: BLE001  (a bug must still answer, or the daemon's caller waits)
        reply = ("error", request_id, AwsError(type(err).__name__, str(err), operation=state.operation).fields())
    finally:
        states.pop(request_id, None)
    try:
        replies.send(reply)
    except (TypeError, AttributeError, pickle.PicklingError):  # an answer that is not plain after all
        replies.send(("error", request_id, AwsError("UnreadableAnswer", f"the {state.operation} answer could not "
                                                    "be passed to the daemon", operation=state.operation).fields()))


def serve(requests: IO[bytes], answers: IO[bytes]) -> None:
    """Answer calls from ``requests`` on ``answers`` until ``requests`` ends."""
    replies = _Replies(answers)
    states: dict[int, clients.CallState] = {}
    # Threads start on demand, so an idle worker holds only those it needed once.
    pool = concurrent.futures.ThreadPoolExecutor(POOL_THREADS, thread_name_prefix="aws")
    while (message := wire.read(requests)) is not None:
        kind, request_id = message[0], message[1]
        if kind == "cancel":
            state = states.get(request_id)
            if state is not None:
                state.cancelled = True  # its thread starts no further attempt
        elif kind == "call":
            _, _, target, method, timeout, deadline, keep, params = message
            state = clients.CallState(deadline, operation_name(method), listener=_attempt_reporter(replies, request_id))
            states[request_id] = state
            pool.submit(_run, replies, states, request_id, target, method, timeout, keep, params)
    pool.shutdown(wait=False, cancel_futures=True)


def _attempt_reporter(replies: _Replies, request_id: int) -> Callable[[AwsError], None]:
    return lambda error: replies.send(("attempt", request_id, error.fields()))


def main() -> None:
    # Ctrl-C in a terminal reaches the whole process group; the daemon decides when this ends
    # (by closing stdin), so the worker does not die under a shutdown that is still sending.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb", buffering=0)
    # stdout is the answer channel: anything a library prints goes to stderr instead.
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(sys.stdin.buffer, answers)
    # stdin ended: calls still running have nobody to answer; leave without waiting for them.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
