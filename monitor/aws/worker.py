"""The AWS worker process: boto3 and every AWS call of the daemon, out of the daemon's
process (docs/configuration.md, "AWS credentials"; docs/architecture.md, "The AWS worker").

Why a process: botocore's work per call (signing, building and parsing XML/JSON, loading
service models, creating clients) is a few milliseconds of Python that holds the GIL. In
threads of the daemon it made the event loop wait for the GIL, and the HTTP checks beside
200 AWS checks started late (bench/RESULTS.md, "aws-200"). Here it has its own interpreter,
and the daemon only moves small frames through a pipe. boto3's memory lives here too, so a
config without AWS checks never starts this process at all.

Why not aiobotocore, which needs neither threads nor a process: all of its CPU per call
(about 1.2 ms) is spent on the event loop itself, against about 0.26 ms of pipe and
bookkeeping work on the loop here, for 1.6 ms in both processes together
(bench/RESULTS.md, "aws_clients"). Its releases also pin botocore to one version that lags
boto3's.

Started by ``monitor.aws.calls`` as ``python -m monitor.aws.worker``; reads calls on stdin,
runs each in a bounded thread pool, writes answers on stdout (``monitor.aws.wire``). It exits
when its stdin ends: the daemon closed it, exited or was killed.
"""

from __future__ import annotations

import concurrent.futures
import logging
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
# Below the daemon's priority: where both share a core, the event loop takes it back from the
# worker at once when a check is due, instead of waiting out the worker's time slice. On one
# core with 200 AWS checks beside 200 HTTP checks, scheduler lag p99 was 3.6-3.9 ms at equal
# priority and 2.4-2.5 ms (as without AWS) at nice 10 (bench/RESULTS.md, "aws-history"). Under
# full load the worker still gets about a tenth of the core: 30 calls a second.
NICENESS = 10


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
    except (TypeError, AttributeError, pickle.PicklingError, wire.FrameError):  # not plain after all, or huge
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
        if kind == "ping":
            replies.send(("pong", request_id, None))  # the daemon's check that this loop still reads
        elif kind == "cancel":
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
    # Ctrl-C in a terminal reaches the whole process group, and systemd's stop the whole
    # cgroup; the daemon decides when this ends (by closing stdin), so the worker does not die
    # under a shutdown that is still sending (an SNS page).
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        os.nice(NICENESS)
    except OSError:
        pass  # a lower priority is always allowed; a sandbox that forbids it only costs latency
    # Libraries' warnings (urllib3's pool, botocore's deprecations) as the daemon shows its
    # own libraries' (monitor/cli/logs.py), named as the worker's; DEBUG never (it would log
    # request and response bodies: clients.py keeps botocore at INFO or above as well).
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="aws-worker %(levelname)s %(name)s: %(message)s")
    # The pipes move to private descriptors (not inherited): what botocore starts, such as a
    # profile's credential_process, reads /dev/null and writes to stderr, and can neither
    # swallow a request nor corrupt an answer.
    requests = os.fdopen(os.dup(sys.stdin.fileno()), "rb")
    answers = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, sys.stdin.fileno())
    os.close(devnull)
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    serve(requests, answers)
    # stdin ended: calls still running have nobody to answer; leave without waiting for them.
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
