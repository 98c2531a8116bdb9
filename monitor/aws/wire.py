"""Frames between the daemon and its AWS worker process (``monitor.aws.worker``): a 4-byte
big-endian length, then a pickle of builtin values and ``monitor.aws.model`` objects.

Pickle is safe here because both ends are this program and the pipe is private to the two
processes; nothing read from the network is ever unpickled (answers are rebuilt as plain
values by ``monitor.aws.clients.plain`` before they are framed).

Messages, daemon to worker: ``("call", id, target, method, timeout, deadline, keep, params)``
and ``("cancel", id)``. Worker to daemon: ``("answer", id, answer)``, ``("error", id, fields)``
(an :class:`~monitor.aws.model.AwsError`'s fields) and ``("attempt", id, fields)``, a failed
attempt of a call that is still retrying (what a call that then times out reports).
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

MAX_FRAME = 64 * 1024 * 1024  # far above any AWS answer a check reads; a corrupt length ends the pipe
_LENGTH = struct.Struct(">I")


def encode(message: tuple[Any, ...]) -> bytes:
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return _LENGTH.pack(len(body)) + body


def read(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or None at the end of the stream (or a frame that cannot be one)."""
    head = _exactly(stream, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        return None
    body = _exactly(stream, length)
    if body is None:
        return None
    message = pickle.loads(body)  # noqa: S301  (our own process on the other end: see above)
    return message if isinstance(message, tuple) and message else None


def _exactly(stream: IO[bytes], size: int) -> bytes | None:
    chunks: list[bytes] = []
    left = size
    while left:
        chunk = stream.read(left)
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
