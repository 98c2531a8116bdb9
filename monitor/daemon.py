"""The long-running daemon: wires config, scheduler, probes, metrics and HTTP together."""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import resource
import signal
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from monitor.alerting.notifier import Notifier
from monitor.alerting.outbox import DeliveryMetrics, Outbox
from monitor.alerting.silences import Silence, SilenceBook
from monitor.check_status import CheckStatuses
from monitor.config.errors import ConfigError
from monitor.config.loader import Config, load_config
from monitor.config.main import GlobalConfig, split_listen
from monitor.http.access import AccessPolicy
from monitor.http.connections import Connections, GuardedSite
from monitor.http.server import build_app
from monitor.http.metrics import DaemonMetrics
from monitor.core.results import Result, redact
from monitor.core.timestamps import rfc3339
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.rules.engine import Evaluation, RuleEngine
from monitor.rules.slo_counts import SloCounts
from monitor.rules.staleness import StalenessSweep
from monitor.uptime import UptimeCounts
from monitor.scheduling.scheduler import CheckScheduler
from monitor.store import open_store
from monitor.store.base import Store, StoreError
from monitor.store.writer import StateWriter

log = structlog.get_logger("monitor.daemon")
SHUTDOWN_GRACE = 10.0  # seconds from SIGTERM to exit, at most (plus closing the HTTP server)
SWEEP_INTERVAL = 5.0


class StartError(Exception):
    """The daemon cannot start here (port taken, state unreachable): a one-line reason."""


class Daemon:
    """Every stage is built here, fully wired, before anything runs; ``run()`` only opens,
    starts and stops them in order. Stages hand their output on through return values: a
    result goes to the SLO counts and the rule engine, the engine's evaluation to the store's
    ordered writer (its ``StateChange``) and to the notifier (its events)."""

    def __init__(self, config: Config) -> None:
        self.config = config
        settings = config.settings
        self.env = ProbeEnv()
        now = self.env.clock.time
        self.statuses = CheckStatuses(settings.history, settings.history_max_samples)
        try:  # a URL no backend takes fails here; nothing is opened yet
            self.store: Store = open_store(settings.state)
        except StoreError as err:
            raise StartError(f"cannot open state {redact(settings.state)}: {err}") from None
        self.writer = StateWriter(self.store)
        self.slos = SloCounts(self.store, clock=now)
        self.uptime = UptimeCounts(self.store, clock=now)
        self.engine = RuleEngine(self.statuses, self.slos, clock=now)
        self.staleness = StalenessSweep(self.statuses, self.engine, clock=now)
        self.metrics = DaemonMetrics(self.statuses, self.engine, self.slos, self.writer)
        self.silences = SilenceBook()
        self.outbox = Outbox(self.store, DeliveryMetrics.create(self.metrics.registry), self.env.clock)
        self.notifier = Notifier(self.silences, self.outbox, self.writer, now=now)
        self.scheduler = CheckScheduler(self.statuses, self.env, self.metrics.scheduler_lag,
                                        settings.max_concurrent_probes, on_result=self._on_result)
        self.access_policy = AccessPolicy.from_settings(settings)
        self.connections = Connections(settings.max_connections)
        self._open_files = _open_file_limit()
        self.ready = False
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reload_lock = asyncio.Lock()
        # The last reload that failed, while the config it tried is not fixed: (when, why).
        # The status page shows it, since the running config is then older than the file.
        self.reload_failure: tuple[float, str] | None = None

    def _on_result(self, check: CheckBase, result: Result) -> None:
        self.slos.record(check.name, result)
        self.uptime.record(check.name, result)
        self._hand_on(self.engine.evaluate(check.name, result))

    def _hand_on(self, evaluation: Evaluation) -> None:
        """The state change first, then the events: a notification the events lead to is
        committed by the same ordered writer, so it never lands before the alert's state."""
        if evaluation.change:
            self.writer.submit(evaluation.change)
        for event in evaluation.events:
            self.notifier.on_event(event)

    # --- what the HTTP layer sees -------------------------------------------------------
    def access(self) -> AccessPolicy:
        return self.access_policy

    def render_metrics(self, accept: str) -> tuple[bytes, str]:
        return self.metrics.render(accept)

    def scheduler_alive(self) -> bool:
        return time.monotonic() - self.scheduler.last_tick < 10.0

    async def reload(self) -> tuple[bool, str]:
        """Load the config again; on any problem the running config stays in force."""
        async with self._reload_lock:
            try:
                config = await asyncio.to_thread(load_config, self.config.path)
            except ConfigError as err:
                self.metrics.reload_ok.set(0)
                self.reload_failure = (time.time(), str(err))
                log.error("config_reload_failed", problems=[str(p) for p in err.problems])
                return False, str(err)
            if config.settings.listen != self.config.settings.listen:
                log.warning("config_reload_listen_ignored", detail="changing `listen` needs a restart")
            self.config = config
            self.reload_failure = None
            self._apply(config)
            self._guard_api(config.settings, previous=self.access_policy)
            _freeze_heap()
            log.info("config_reloaded", checks=len(config.checks), rules=len(config.rules))
            return True, f"loaded {len(config.checks)} checks, {len(config.rules)} rules"

    def record_heartbeat(self, check: str, failed: bool) -> None:
        at = self.env.clock.time()
        self.env.heartbeats[check] = (at, failed)
        # Saved so it survives a restart: a job that just ran is not "late" after one.
        self._background(self.store.save_heartbeat(check, at, failed))

    def now(self) -> float:
        return self.env.clock.time()

    def store_problem(self) -> str | None:
        """Why the state store is not taking writes, while it is not (for /readyz)."""
        since = self.writer.failing_since
        if since is None:
            return None
        return f"state store failing since {rfc3339(since)}: {self.writer.last_error}"

    def notifications_waiting(self) -> list[tuple[str, int, str]]:
        return self.outbox.waiting()

    async def add_silence(self, silence: Silence) -> str:
        """Create or update a silence (SilenceBook.add's rules) and persist what changed.

        Saved before returning, so a silence the API acknowledged survives a crash."""
        now = self.now()
        previous = self.silences.get(silence.id)
        if previous is not None and abs(silence.starts_at - previous.starts_at) < 0.001:
            # The API prints milliseconds: a client that echoes startsAt back unchanged means
            # the same start, not a moved one (which would make a new silence).
            silence = dataclasses.replace(silence, starts_at=previous.starts_at)
        new_id = self.silences.add(silence, now)
        changed = [new_id]
        if previous is not None and new_id != previous.id:
            changed.append(previous.id)  # the old one was expired by the update
        await self._save_silences(changed)
        log.info("silence_added", id=new_id, created_by=silence.created_by,
                 matchers=[str(m) for m in silence.matchers])
        return new_id

    async def expire_silence(self, silence_id: str) -> None:
        """End a silence now. Raises SilenceNotFound, or ValueError if already expired."""
        self.silences.expire(silence_id, self.now())
        await self._save_silences([silence_id])
        log.info("silence_expired", id=silence_id)

    async def _save_silences(self, ids: list[str]) -> None:
        for silence_id in ids:
            silence = self.silences.get(silence_id)
            if silence is not None:
                await self.store.save_silence(silence.to_record())

    async def _restore_silences(self) -> None:
        for record in await self.store.load_silences():
            try:
                self.silences.restore(Silence.from_record(record))
            except ValueError as err:
                log.warning("silence_record_skipped", id=record.get("id"), error=str(err))

    async def _prune_silences(self) -> None:
        gone = self.silences.prune(self.now())
        if gone:
            try:
                await self.store.delete_silences(gone)
            except StoreError as err:
                log.warning("silence_prune_failed", error=str(err))

    def _background(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _route(self, config: Config) -> None:
        """Routing first: alerts whose rule is gone resolve in ``_bind``, and their resolve
        must travel the new tree. Groups carry over from the old tree through their records."""
        self.notifier.configure(config.alerting, self.engine.firing(), config.settings.public_url)

    def _bind(self, config: Config) -> None:
        self.statuses.configure(config.checks)
        self.slos.configure(config.checks)
        self.uptime.configure(check.name for check in config.checks)
        self.engine.external_url = config.settings.public_url
        self._hand_on(self.engine.configure(config.checks, config.rules))
        self.scheduler.apply(config.checks)
        self.env.keep_check_state(c.name for c in config.checks)
        self.metrics.reload_ok.set(1)
        self.metrics.reload_time.set(time.time())

    def _apply(self, config: Config) -> None:
        self._route(config)
        self._bind(config)

    # --- life cycle ----------------------------------------------------------------------
    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stop.set)
        loop.add_signal_handler(signal.SIGHUP, lambda: asyncio.ensure_future(self.reload()))

        open_files_was, self._open_files, open_files_hard = _raise_open_file_limit()
        self._guard_api(self.config.settings, previous=None)
        host, port = split_listen(self.config.settings.listen)
        runner = web.AppRunner(build_app(self), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await GuardedSite(runner, host, port, self.connections).start()
        except OSError as err:
            await runner.cleanup()
            raise StartError(f"cannot listen on {self.config.settings.listen}: {err.strerror or err}") from None

        settings = self.config.settings
        try:
            await self.store.open()
        except StoreError as err:
            await runner.cleanup()
            raise StartError(f"cannot open state {redact(settings.state)}: {err}") from None
        # State a previous run left behind comes back before anything is evaluated, so the
        # first evaluations continue it instead of starting over: alert states, heartbeat
        # pushes, silences, then the notification groups and the outbox.
        self.engine.restore(await self.store.load_alerts())
        self.env.heartbeats.update(await self.store.load_heartbeats())
        await self._restore_silences()
        self.writer.start()
        self._route(self.config)
        await self.notifier.start(self.store, self.engine.firing())
        self._bind(self.config)
        await self.slos.load()
        await self.uptime.load()
        self.scheduler.start()
        self._background(self._sweep())
        _freeze_heap()
        self.ready = True
        log.info("started", listen=settings.listen, checks=len(self.config.checks), rules=len(self.config.rules),
                 config=str(self.config.path), api=self.access_policy.mode, max_connections=self.connections.limit,
                 open_files_limit=self._open_files, open_files_hard_limit=open_files_hard,
                 open_files_limit_was=open_files_was)
        try:
            await self._stop.wait()
        finally:
            log.info("stopping")
            self.ready = False
            # One budget for the whole stop, whatever the store or a receiver does: probes in
            # flight, deliveries in hand, then state. What cannot be persisted in time is
            # logged (state_not_persisted), not waited for.
            deadline = loop.time() + SHUTDOWN_GRACE

            def left() -> float:
                return max(deadline - loop.time(), 0.1)

            for task in list(self._tasks):
                task.cancel()
            # Independent: results of probes still running are persisted as alert states, and
            # any notification they lead to is recomputed from those at the next start.
            await asyncio.gather(self.scheduler.stop(left() / 2), self.notifier.stop(left() / 2))
            await self.writer.stop(left())
            for step, work in (("slo_counts_flush", self.slos.flush()), ("uptime_flush", self.uptime.flush(force=True)),
                               ("state_close", self.store.close())):
                try:
                    await asyncio.wait_for(work, left())
                except (TimeoutError, Exception) as err:  # the store is down: say so and go on
                    log.error("shutdown_step_failed", step=step, error=str(err) or type(err).__name__)
            await runner.cleanup()
            await self.env.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            log.info("stopped")

    def _guard_api(self, settings: GlobalConfig, previous: AccessPolicy | None) -> None:
        """Put the API's access rules and connection cap in force, and say so in the log
        when they are not the closed default, or when they change."""
        policy = AccessPolicy.from_settings(settings)
        self.access_policy = policy
        self.connections.limit = self._connection_cap(settings.max_connections)
        if previous is not None and (policy.token is None, policy.unauthenticated_api) == (
                previous.token is None, previous.unauthenticated_api):
            return
        if policy.open_on_loopback:
            log.warning("api_unauthenticated", detail="global.unauthenticated_api is on and no global.api_token is set:"
                        " any process on this host (and anything relaying through loopback, such as a local reverse"
                        " proxy) can silence alerts, reload the config and push heartbeats without a credential")
        elif policy.token is None and previous is not None:  # at start, `started` says api=disabled
            log.info("api_mutations_disabled", detail="no global.api_token is set: silences, reload and heartbeat"
                     " pushes without a push_key are refused (403)")
        elif policy.unauthenticated_api:
            log.warning("api_unauthenticated_ignored", detail="global.api_token is set, so every mutating call needs"
                        " it; global.unauthenticated_api has no effect")

    def _connection_cap(self, configured: int) -> int:
        """At most a quarter of the file handles go to API connections; the rest stay for
        probes, the state store and deliveries."""
        soft = self._open_files
        room = configured if soft == resource.RLIM_INFINITY else max(soft // 4, 1)
        if configured > room:
            log.warning("max_connections_lowered", configured=configured, used=room, open_files_limit=soft,
                        detail="global.max_connections is over a quarter of the open-file limit; raise the limit"
                               " (ulimit -n) to allow more")
            return room
        return configured

    async def _sweep(self) -> None:
        """Staleness is a condition too: re-check quiet checks every few seconds; and write
        each completed minute of SLO counts (a crash loses at most the open minute); and forget
        silences that expired more than the retention (5 days) ago, and notifications
        finished more than a day ago."""
        while True:
            await asyncio.sleep(SWEEP_INTERVAL)
            self._hand_on(self.staleness.sweep())
            await self.slos.flush()
            await self.uptime.flush()
            await self._prune_silences()
            await self.outbox.prune()


def _freeze_heap() -> None:
    """Move everything alive now (config models, jobs, history buffers) out of the garbage
    collector's reach. With 10,000 checks a full collection walks millions of long-lived
    objects and stalls the loop; they only die on reload, and a frozen object is freed
    normally by reference counting when that happens."""
    gc.collect()
    gc.freeze()


def _open_file_limit() -> int:
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _raise_open_file_limit() -> tuple[int, int, int]:
    """Raise the soft limit on open files to the hard limit (which an unprivileged process
    may do); returns the soft limit before, the soft limit now in force, and the hard one.
    The usual soft default of 1024 is far below what thousands of probes and API clients
    need, and running out of handles fails every probe at once ("Too many open files")."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    # An unlimited hard limit (macOS) cannot be the soft one; ask for a generous number.
    wanted = hard if hard != resource.RLIM_INFINITY else max(soft, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        except (ValueError, OSError) as err:
            log.warning("open_files_limit_not_raised", soft=soft, hard=hard, error=str(err))
            return soft, soft, hard
    return soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0], hard


def default_config_path(environ_value: str | None) -> Path:
    """``-c`` absent: $MONITOR_CONFIG, else ./monitor.yaml, else the one shipped with the code."""
    if environ_value:
        return Path(environ_value)
    local = Path("monitor.yaml")
    if local.exists():
        return local
    return Path(__file__).resolve().parent.parent / "monitor.yaml"
