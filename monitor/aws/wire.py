"""Frames between the daemon and its AWS worker process (``monitor.aws.worker``): a 4-byte
big-endian length, then a pickle of builtin values and ``monitor.aws.model`` objects.

Pickle is safe here because both ends are this program and the pipe is private to the two
processes; nothing read from the network is ever unpickled (answers are rebuilt as plain
values by ``monitor.aws.clients.plain`` before they are framed).

Messages, daemon to worker: ``("call", id, target, method, timeout, deadline, keep, params)``,
``("cancel", id)`` and ``("ping", 0)``. Worker to daemon: ``("answer", id, answer)``,
``("error", id, fields)`` (an :class:`~monitor.aws.model.AwsError`'s fields),
``("attempt", id, fields)``, a failed attempt of a call that is still retrying (what a call
that then times out reports), and ``("pong", 0, None)``, sent by the worker's main thread.
"""

from __future__ import annotations

import pickle
import struct
from typing import IO, Any

MAX_FRAME = 64 * 1024 * 1024  # far above any AWS answer a check reads; a corrupt length ends the pipe
_LENGTH = struct.Struct(">I")


class FrameError(ValueError):
    """A message that cannot be a frame: too large, or not a message once read."""


def encode(message: tuple[Any, ...]) -> bytes:
    """The frame of ``message``. Raises :class:`FrameError` (too large) or pickle's errors."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    if len(body) > MAX_FRAME:
        raise FrameError(f"{len(body)} bytes, more than the {MAX_FRAME} a frame may hold")
    return _LENGTH.pack(len(body)) + body


def read(stream: IO[bytes]) -> tuple[Any, ...] | None:
    """The next message, or None when the stream ends (the other side has gone).

    Raises :class:`FrameError` for a frame that cannot be one, or pickle's errors: after that
    the stream is out of step and no longer to be read.
    """
    head = _exactly(stream, _LENGTH.size)
    if head is None:
        return None
    (length,) = _LENGTH.unpack(head)
    if length > MAX_FRAME:
        raise FrameError(f"a frame of {length} bytes, more than {MAX_FRAME}")
    body = _exactly(stream, length)
    if body is None:
        return None
    message = pickle.loads(body)  # noqa: S301  (our own process on the other end: see above)
    if not isinstance(message, tuple) or len(message) < 2:
        raise FrameError(f"not a message: {type(message).__name__}")
    return message


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
