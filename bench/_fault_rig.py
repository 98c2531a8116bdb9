"""The pieces `bench/faults.py` drives: an in-process lane target and three receiver sinks,
a server that never answers, a private PostgreSQL, the daemon as a child process, and a
/proc sampler.

Everything HTTP here runs in the harness's own event loop, so every timestamp (a probe
answered, a notification accepted, a kill) comes from one monotonic clock. Nothing talks to
anything but 127.0.0.1, and every process started here is stopped by its own PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import hashlib
import hmac
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from bench._common import free_port, tail

# --------------------------------------------------------------------------- lane target


@dataclass(frozen=True)
class Answer:
    """One probe of a lane as the target answered it."""

    mono: float
    code: int  # 200, or the failure code of the lane's current episode (5xx)


class LaneTarget:
    """``GET /lane/<lane>`` answers 200 while the lane is healthy, and the code of its current
    failure episode while it fails. Each episode of a lane fails with its own 5xx code: the
    daemon's http check reports the status code as ``value``, the rule's summary carries
    ``{{ $value }}``, so every notification names the episode it is about."""

    def __init__(self) -> None:
        self.state: dict[str, int] = {}  # lane -> code it answers now
        self.answers: dict[str, list[Answer]] = {}
        self.port = 0
        self._runner: web.AppRunner | None = None

    def url(self, lane: str) -> str:
        return f"http://127.0.0.1:{self.port}/lane/{lane}"

    def reset(self, lanes: Sequence[str]) -> None:
        self.state = {lane: 200 for lane in lanes}
        self.answers = {lane: [] for lane in lanes}

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/lane/{lane}", self._lane)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _lane(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        lane = request.match_info["lane"]
        code = self.state.get(lane)
        if code is None:
            return web.Response(status=404, text="no such lane")
        self.answers[lane].append(Answer(now, code))
        if code == 200:
            return web.json_response({"status": "healthy"})
        return web.json_response({"status": "failing"}, status=code)


# --------------------------------------------------------------------------- sinks


@dataclass
class Request:
    """One POST a sink got, and what it answered."""

    mono: float
    wall: float
    status: int  # what the sink answered
    body: bytes
    headers: dict[str, str]
    retry_after: str | None = None  # the Retry-After the sink sent with a 429

    @property
    def accepted(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Message:
    """A notification as the ledger sees it: which lane, firing or resolved, which episode."""

    lane: str | None
    status: str  # "firing" | "resolved"
    tag: int | None  # the episode's failure code, from the summary; None when the format has none
    key: str  # the sink's grouping key: PagerDuty dedup_key, webhook groupKey, Slack title


EPISODE = re.compile(r"episode (\d+)")


class Sink:
    """A receiver stand-in. ``mode``: ``ok`` (200/202), ``503``, ``refuse`` (port closed: the
    listener and every open connection are torn down until ``mode`` goes back), or
    ``ratelimit`` (a token bucket: one request per ``rate_period`` seconds accepted, the rest
    get 429 with a Retry-After saying when the next token is due, as delay-seconds or as an
    HTTP-date)."""

    def __init__(self, kind: str, path: str, *, hmac_secret: str | None = None, routing_key: str | None = None) -> None:
        self.kind = kind
        self.path = path
        self.hmac_secret = hmac_secret
        self.routing_key = routing_key
        self.port = free_port()
        self.mode = "ok"
        self.rate_period = 2.0
        self.retry_after_as_date = False
        self.answer_delay = 0.0  # seconds between reading a request and answering it
        self._next_token = 0.0
        self.requests: list[Request] = []
        self.problems: list[str] = []  # payloads a real receiver would reject
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.path}"

    def reset(self) -> None:
        self.requests = []
        self.problems = []
        self.mode = "ok"
        self.answer_delay = 0.0
        self.retry_after_as_date = False
        self._next_token = 0.0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post(self.path, self._post)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port, reuse_address=True).start()

    async def close(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            # Keep-alive connections would otherwise outlive the listener: cleanup closes them.
            await runner.cleanup()

    async def set_mode(self, mode: str) -> None:
        if mode == "refuse" and self.mode != "refuse":
            await self.close()
        elif mode != "refuse" and self.mode == "refuse":
            await self.start()
        self.mode = mode
        self._next_token = 0.0

    async def _post(self, request: web.Request) -> web.Response:
        mono, wall = time.monotonic(), time.time()
        body = await request.read()
        headers = dict(request.headers)
        retry_after: str | None = None
        if self.mode == "503":
            status = 503
        elif self.mode == "ratelimit":
            if mono >= self._next_token:
                self._next_token = mono + self.rate_period
                status = 202 if self.kind == "pagerduty" else 200
            else:
                status = 429
                wait = self._next_token - mono
                if self.retry_after_as_date:
                    # An HTTP-date has whole seconds: round up, so honouring it never comes early.
                    retry_after = email.utils.formatdate(math.ceil(wall + wait), usegmt=True)
                else:
                    retry_after = str(max(1, math.ceil(wait)))
        else:
            status = 202 if self.kind == "pagerduty" else 200
        self.requests.append(Request(mono, wall, status, body, headers, retry_after))
        if self.answer_delay > 0:
            # Recorded as received already: a sender killed meanwhile has delivered it, it
            # just never hears so (the at-least-once case).
            await asyncio.sleep(self.answer_delay)
        if status == 429:
            assert retry_after is not None
            return web.json_response({"error": "rate limited"}, status=429, headers={"Retry-After": retry_after})
        if status == 503:
            return web.json_response({"error": "unavailable"}, status=503)
        self._check(body, headers)
        if self.kind == "pagerduty":
            return web.json_response({"status": "success", "message": "Event processed"}, status=202)
        return web.Response(text="ok")

    def _check(self, body: bytes, headers: dict[str, str]) -> None:
        """What a real receiver would refuse: wrong key, bad signature, unknown shape."""
        try:
            payload = json.loads(body)
        except ValueError:
            self.problems.append("body is not JSON")
            return
        if self.kind == "pagerduty":
            if payload.get("routing_key") != self.routing_key:
                self.problems.append("wrong routing_key")
            if payload.get("event_action") not in ("trigger", "resolve") or not payload.get("dedup_key"):
                self.problems.append("no event_action/dedup_key")
        elif self.kind == "webhook":
            if payload.get("version") != "4":
                self.problems.append(f"webhook version {payload.get('version')!r}")
            if self.hmac_secret:
                want = "sha256=" + hmac.new(self.hmac_secret.encode(), body, hashlib.sha256).hexdigest()
                if not hmac.compare_digest(headers.get("X-Monitor-Signature", ""), want):
                    self.problems.append("bad X-Monitor-Signature")
        elif self.kind == "slack":
            if not isinstance(payload.get("text"), str) or not isinstance(payload.get("blocks"), list):
                self.problems.append("slack message without text/blocks")

    def messages(self, dedup_lanes: dict[str, str]) -> list[tuple[Request, Message]]:
        """Every accepted request as the ledger's messages, in arrival order. ``dedup_lanes``
        maps PagerDuty dedup keys to lanes (a resolve event carries nothing else)."""
        out: list[tuple[Request, Message]] = []
        for req in self.requests:
            if not req.accepted:
                continue
            try:
                payload = json.loads(req.body)
            except ValueError:
                continue
            for message in parse(self.kind, payload, dedup_lanes):
                out.append((req, message))
        return out


def _tag(text: str) -> int | None:
    match = EPISODE.search(text)
    return int(match.group(1)) if match else None


def parse(kind: str, payload: dict[str, Any], dedup_lanes: dict[str, str]) -> list[Message]:
    """The ledger's view of one accepted notification."""
    if kind == "pagerduty":
        key = str(payload.get("dedup_key", ""))
        if payload.get("event_action") == "trigger":
            body = payload.get("payload") or {}
            lane = str(body.get("source") or "") or dedup_lanes.get(key)
            return [Message(lane, "firing", _tag(str(body.get("summary", ""))), key)]
        # Resolve events are routing_key, event_action and dedup_key only: no episode.
        return [Message(dedup_lanes.get(key), "resolved", None, key)]
    if kind == "slack":
        text = str(payload.get("text", ""))
        title = re.match(r"\[(FIRING:\d+|RESOLVED)\]\s*(.*)", text)
        status = "resolved" if title and title.group(1) == "RESOLVED" else "firing"
        words = title.group(2).split() if title else []
        lane = words[-1] if words else None
        sections = " ".join(json.dumps(b) for b in payload.get("blocks", []) if b.get("type") == "section")
        return [Message(lane, status, _tag(sections), text)]
    # webhook: one message per alert (with one group per lane there is one alert per POST)
    key = str(payload.get("groupKey", ""))
    return [
        Message(str((a.get("labels") or {}).get("check")), str(a.get("status")),
                _tag(str((a.get("annotations") or {}).get("summary", ""))), key)
        for a in payload.get("alerts", [])
    ]


def pagerduty_dedup_key(receiver: str, group_key: str) -> str:
    """How the daemon derives PagerDuty's dedup_key from a group (docs/notifications: one
    stable key per group); used to name the lane of a resolve event."""
    return hashlib.sha256(f"{receiver}\x00{group_key}".encode()).hexdigest()[:255]


# --------------------------------------------------------------------------- hanging server


class HangServer:
    """Accepts, reads whatever comes, never answers. Counts the connections it holds: a
    prober that gives up on a timeout but never closes its socket shows here as well as in
    its own FD count."""

    def __init__(self) -> None:
        self.port = 0
        self.open = 0
        self.accepted = 0
        self.max_open = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self.port = free_port()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, backlog=1024)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.open += 1
        self.accepted += 1
        self.max_open = max(self.max_open, self.open)
        self._writers.add(writer)
        try:
            while await reader.read(65536):
                pass
        except (ConnectionError, OSError):
            pass
        finally:
            self.open -= 1
            self._writers.discard(writer)
            writer.close()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            for writer in list(self._writers):
                writer.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None


# --------------------------------------------------------------------------- private PostgreSQL


def postgres_bin_dir() -> Path | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"),
                   key=lambda p: [int(x) for x in re.findall(r"\d+", p.parent.parent.name)] or [0])
    return found[-1].parent if found else None


class PrivatePostgres:
    """A throw-away cluster on a free port in a temp dir, as the ``postgres`` OS user when we
    are root (PostgreSQL refuses to run as root). Stopped with ``pg_ctl -m immediate`` (a
    crash, as far as clients can tell) and started again on the same port; the shared
    server on 5432 is never touched."""

    USER = "postgres"

    def __init__(self) -> None:
        bindir = postgres_bin_dir()
        if bindir is None:
            raise RuntimeError("no /usr/lib/postgresql/<version>/bin/pg_ctl")
        self.bin = bindir
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="bench-faults-pg-"))
        self.data = self.dir / "data"
        self.sock = self.dir / "sock"
        self.log = self.dir / "postgres.log"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *argv: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        as_user: dict[str, Any] = {"user": self.USER, "group": self.USER, "extra_groups": []} if os.geteuid() == 0 else {}
        return subprocess.run(list(argv), **as_user, cwd=self.dir, capture_output=True, text=True, timeout=timeout,
                              env={"PATH": "/usr/bin:/bin", "LC_ALL": "C", "LANG": "C", "HOME": str(self.dir)},
                              stdin=subprocess.DEVNULL)

    def init(self) -> None:
        self.sock.mkdir()
        if os.geteuid() == 0:
            shutil.chown(self.dir, self.USER, self.USER)
            shutil.chown(self.sock, self.USER, self.USER)
        os.chmod(self.dir, 0o700)
        done = self._run(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                         "--no-sync", "-E", "UTF8", "--locale=C")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed: {done.stderr[-1500:]}")

    def start(self) -> None:
        options = (f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sock} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=30 "
                   "-c shared_buffers=16MB")
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-o", options,
                         "-w", "-t", "30", "start")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl start failed: {done.stdout}{done.stderr} {tail(self.log, 10)}")

    @property
    def pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.data / "postmaster.pid").read_text().split("\n", 1)[0])
            os.kill(pid, 0)
            return pid
        return None

    def stop(self) -> None:
        pid = self.pid
        if pid is None:
            return
        done = self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "-t", "15", "stop",
                         timeout=30)
        if done.returncode != 0 and self.pid == pid:
            # Its own postmaster, by the PID in its own data dir.
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGQUIT)
            deadline = time.monotonic() + 10
            while self.pid == pid and time.monotonic() < deadline:
                time.sleep(0.1)

    def cleanup(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


# --------------------------------------------------------------------------- the daemon


@dataclass
class Life:
    """One run of the daemon process."""

    pid: int
    started: float
    ready: float | None = None
    ended: float | None = None
    how: str | None = None  # "kill" (our SIGKILL), "stop" (our SIGTERM), "crash" (by itself)
    exit_code: int | None = None


class DaemonProcess:
    """``monitor run -c CONFIG`` as a child; every (re)start appends to one log file."""

    def __init__(self, monitor_bin: str, config: Path, port: int, log: Path, env: dict[str, str] | None = None) -> None:
        self.argv = [monitor_bin, "run", "-c", str(config)]
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives: list[Life] = []

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None

    def start(self) -> Life:
        assert self.pid is None, "already running"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, start_new_session=True)
        life = Life(self.proc.pid, time.monotonic())
        self.lives.append(life)
        return life

    def crashed(self) -> Life | None:
        """The current life, if the process exited without being told to."""
        if self.proc is not None and self.lives and self.lives[-1].how is None:
            code = self.proc.poll()
            if code is not None:
                life = self.lives[-1]
                life.ended, life.how, life.exit_code = time.monotonic(), "crash", code
                return life
        return None

    def kill9(self) -> float:
        assert self.proc is not None
        life = self.lives[-1]
        life.how = "kill"  # before the signal: the watchdog must not take it for a crash
        self.proc.send_signal(signal.SIGKILL)
        at = time.monotonic()
        self.proc.wait(10)
        life.ended, life.exit_code = at, self.proc.returncode
        return at

    def stop(self, grace: float = 20.0) -> int | None:
        """SIGTERM and wait (blocking: run it in a thread while the sinks keep serving)."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            life = self.lives[-1]
            life.how = "stop"
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                life.how = "stop, SIGKILL after the grace"
                self.proc.kill()
                self.proc.wait(5)
            life.ended, life.exit_code = time.monotonic(), self.proc.returncode
        return self.proc.returncode


# --------------------------------------------------------------------------- /proc sampler


@dataclass(frozen=True)
class Sample:
    mono: float
    pid: int
    fds: int
    rss_kib: int
    threads: int
    hang_open: int  # connections the hanging server holds (0 when there is none)


@dataclass
class Sampler:
    """FD count, RSS and threads of whatever PID the daemon has now, every ``period`` s."""

    daemon: DaemonProcess
    hang: HangServer | None = None
    period: float = 0.5
    samples: list[Sample] = field(default_factory=list)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            pid = self.daemon.pid
            # Only a daemon that is up: a process still importing says nothing about leaks.
            if pid is not None and self.daemon.lives and self.daemon.lives[-1].ready is not None:
                with contextlib.suppress(OSError, ValueError, KeyError):
                    fds = len(os.listdir(f"/proc/{pid}/fd"))
                    status = Path(f"/proc/{pid}/status").read_text()
                    fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
                    rss = int(fields["VmRSS"].split()[0])
                    threads = int(fields["Threads"].strip())
                    self.samples.append(Sample(time.monotonic(), pid, fds, rss, threads,
                                               self.hang.open if self.hang else 0))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.period)
