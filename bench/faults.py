"""Fault injection: does every alert transition reach every receiver, once, while things break?

The real daemon runs as a child process with a config whose alert state this harness
controls, and three local receivers speaking PagerDuty Events v2, Slack incoming webhooks
and Alertmanager's webhook (version 4). Scenarios, each on a fresh daemon and state:

* ``outage``    — PagerDuty answers 503 for a while; Slack's port is closed (connection
                  refused, keep-alive connections torn down) for a while; the webhook is the
                  control;
* ``ratelimit`` — every receiver is rate-limited (one request per 2 s accepted, the rest get
                  429 with ``Retry-After``: delay-seconds for PagerDuty and Slack, an HTTP-date
                  for the webhook);
* ``kill``      — ``kill -9`` of the daemon at random moments, restarted at once, N times;
* ``store``     — state in a private PostgreSQL, stopped (``pg_ctl -m immediate``) for a
                  while, then started again;
* ``hang``      — many extra http and tcp checks against a server that accepts and never
                  answers; FD count and RSS must stay flat;
* ``reload``    — ``POST /-/reload`` every half second, valid and invalid configs
                  alternating.

Throughout each scenario, several *lanes* cycle between failing and healthy. A lane is one
http check (every 1 s, ``timeout: 1s``) against ``/lane/<lane>`` on a target in this process,
one rule ``LaneDown: !up`` with ``for: 0s``, and, through ``group_by: [alertname, check]``,
one notification group per receiver: grouping never merges two lanes, so it cannot look
like loss. Each failure episode of a lane answers its own 5xx code; the check's ``value`` is
the status code and the rule's summary is ``episode {{ $value }}``, so each notification
names its episode (PagerDuty resolve events carry only the dedup_key: they are matched by
order, to the episode of the last trigger before them).

The ledger is what the target answered the daemon's probes: per lane, runs of failing and
healthy answers; each failing run after a healthy one is a *firing* transition the receivers
must hear about, each healthy run after a failing one a *resolved* one. A probe answered less
than ``--margin`` seconds before a ``kill -9`` may not have been evaluated and committed, so a
run made only of such answers is optional: kept if any receiver heard of it (then all three
must), dropped otherwise. Per receiver and lane, accepted notifications are matched to the
ledger by (status, episode): **lost** = a transition never accepted by the end of the settle
time; **duplicated** = accepted more than once (classified from the daemon's own outbox table
after the run: one outbox entry sent twice is the at-most-one message in flight at a kill;
two entries for the same transition mean it was decided twice); **unexpected** = accepted but
not in the ledger; **out of order** = accepted after a later transition of its lane; **delay**
= accepted − the first probe answered in the new state (nearest-rank p50/p99, max).

    python -m bench.faults                       # all six, ~6-8 min
    python -m bench.faults --quick               # all six, short (~2 min)
    python -m bench.faults --scenarios kill,store --kills 10
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import email.utils
import json
import math
import os
import random
import re
import secrets
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench._common import command_line, free_port, machine_info, md_table, tail, update_results_section
from bench._fault_rig import (
    Answer,
    DaemonProcess,
    HangServer,
    LaneTarget,
    Life,
    Message,
    PrivatePostgres,
    Request,
    Sampler,
    Sink,
    pagerduty_dedup_key,
    parse,
)

ALL_SCENARIOS = ("outage", "ratelimit", "kill", "store", "hang", "reload")
TITLES = {
    "outage": "receiver outage",
    "ratelimit": "429 storm",
    "kill": "kill -9",
    "store": "state store outage",
    "hang": "hanging targets",
    "reload": "reload churn",
}
RECEIVERS = ("pagerduty", "slack", "webhook")
ROUTING_KEY = "bench-faults-routing-key"
HMAC_SECRET = "bench-faults-hmac"
CHECK_INTERVAL = 1.0
FIRST_CODE = 500  # episode k of a lane fails with FIRST_CODE + k
MAX_EPISODES = 99  # ... so codes stay within 5xx and unique per lane
GROUP_INTERVAL = 1.0  # the route's group_interval
COALESCE_SLACK = 0.2  # evaluation and flush-loop timing around a group_interval boundary


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class Settings:
    lanes: int
    duration: float  # seconds of fire/resolve cycles per scenario (kill: at least)
    hold: tuple[float, float]  # each failing / healthy phase of a lane lasts U(lo, hi) s
    kills: int
    outage: float  # receiver outage, seconds
    storm: float  # 429 storm, seconds
    store_outage: float
    hang_checks: int
    reload_every: float
    settle_max: float  # after the cycles: at most this long for the last notifications
    quiet: float  # ... and once everything arrived, this long for duplicates to show
    margin: float  # probes answered this close before a kill -9 may not have counted
    answer_delay: float  # the receivers' answer time in the kill scenario

    @staticmethod
    def of(args: argparse.Namespace) -> Settings:
        quick = args.quick
        return Settings(
            lanes=args.lanes or (5 if quick else 10),
            duration=args.duration or (14.0 if quick else 50.0),
            hold=(2.5, 4.0),
            kills=args.kills if args.kills is not None else (2 if quick else 6),
            outage=args.outage or (6.0 if quick else 20.0),
            storm=args.storm or (6.0 if quick else 25.0),
            store_outage=args.store_outage or (6.0 if quick else 20.0),
            hang_checks=args.hang_checks or (100 if quick else 300),
            reload_every=args.reload_every,
            settle_max=args.settle_max or (60.0 if quick else 150.0),
            quiet=2.0 if quick else 4.0,
            margin=args.margin,
            answer_delay=args.answer_delay,
        )


# --------------------------------------------------------------------------- config


def lane_names(count: int) -> list[str]:
    return [f"lane_{i:02d}" for i in range(1, count + 1)]


def write_atomic(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def write_config(directory: Path, *, port: int, state: str, token: str, target: LaneTarget, sinks: dict[str, Sink],
                 lanes: Sequence[str], hang: HangServer | None = None, hang_checks: int = 0,
                 variant: str = "A") -> Path:
    """main.yaml + checks.yaml + rules.yaml. Variants for the reload churn: ``A`` (the base),
    ``B`` (plus one heartbeat check and a rule on it that cannot fire within the run), and
    three invalid ones: ``bad-yaml``, ``bad-rule`` (unknown CEL variable), ``bad-route``
    (a route to an undefined receiver)."""
    root_receiver = "nobody" if variant == "bad-route" else "webhook"
    main = (
        "global:\n"
        f"  listen: 127.0.0.1:{port}\n"
        f"  state: '{state}'\n"
        f"  external_url: http://127.0.0.1:{port}\n"
        f"  api_token: {token}\n"
        "  log_format: json\n"
        "check_files: [checks.yaml]\n"
        "rule_files: [rules.yaml]\n"
        "route:\n"
        f"  receiver: {root_receiver}\n"
        # One group per lane and receiver: grouping never merges two lanes' transitions.
        "  group_by: [alertname, check]\n"
        "  group_wait: 0s\n"
        f"  group_interval: {GROUP_INTERVAL:g}s\n"
        "  repeat_interval: 1h\n"
        "  routes:\n"
        "    - {receiver: pagerduty, continue: true}\n"
        "    - {receiver: slack, continue: true}\n"
        "    - {receiver: webhook}\n"
        "receivers:\n"
        "  - name: pagerduty\n"
        f"    pagerduty_configs: [{{routing_key: {ROUTING_KEY}, url: '{sinks['pagerduty'].url}'}}]\n"
        "  - name: slack\n"
        f"    slack_configs: [{{api_url: '{sinks['slack'].url}'}}]\n"
        "  - name: webhook\n"
        f"    webhook_configs: [{{url: '{sinks['webhook'].url}', hmac_secret: {HMAC_SECRET}}}]\n"
    )
    if variant == "bad-yaml":
        main += "inhibit_rules: [{source_matchers: ['alertname=\"x\"'\n"  # unclosed flow sequence
    checks = ["checks:"]
    for lane in lanes:
        checks.append(f"  - {{name: {lane}, kind: http, url: '{target.url(lane)}', interval: {CHECK_INTERVAL:g}s, "
                      f"timeout: {CHECK_INTERVAL:g}s, labels: {{bench: faults}}}}")
    if hang is not None:
        for i in range(hang_checks):
            if i % 2 == 0:
                checks.append(f"  - {{name: hang_http_{i:04d}, kind: http, url: 'http://127.0.0.1:{hang.port}/hang/{i}', "
                              "interval: 2s, timeout: 2s, labels: {bench: hang}}")
            else:
                checks.append(f"  - {{name: hang_tcp_{i:04d}, kind: tcp, address: '127.0.0.1:{hang.port}', "
                              "send: \"PING\\r\\n\", expect: PONG, interval: 2s, timeout: 2s, labels: {bench: hang}}")
    if variant == "B":
        checks.append("  - {name: reload_extra, kind: heartbeat, max_age: 1h, labels: {bench: extra}}")
    expr = "!stauts" if variant == "bad-rule" else "!up"
    rules = (
        "groups:\n"
        "  - name: faults\n"
        "    rules:\n"
        "      - alert: LaneDown\n"
        "        check: {bench: faults}\n"
        f"        expr: '{expr}'\n"
        "        for: 0s\n"
        "        labels: {severity: critical}\n"
        "        annotations: {summary: 'lane down, episode {{ $value }}'}\n"
    )
    if variant == "B":
        rules += "      - {alert: ReloadExtraDown, check: reload_extra, expr: '!up', for: 0s}\n"
    write_atomic(directory / "checks.yaml", "\n".join(checks) + "\n")
    write_atomic(directory / "rules.yaml", rules)
    write_atomic(directory / "main.yaml", main)
    return directory / "main.yaml"


# --------------------------------------------------------------------------- ledger


@dataclass
class Run:
    """Consecutive probe answers of one lane in one state."""

    failing: bool
    tags: set[int]
    first: float  # monotonic time of its first answer
    certain: bool  # at least one answer the daemon surely lived to evaluate
    short: bool = False  # the next run began less than a group_interval later


def is_certain(at: float, lives: Sequence[Life], margin: float) -> bool:
    for life in lives:
        if life.started <= at and (life.ended is None or at <= life.ended):
            return not (life.how in ("kill", "crash") and life.ended is not None and life.ended - at < margin)
    return True


def lane_runs(answers: Sequence[Answer], lives: Sequence[Life], margin: float) -> list[Run]:
    runs = [Run(False, set(), -math.inf, True)]  # every lane starts healthy
    for answer in answers:
        failing = answer.code != 200
        certain = is_certain(answer.mono, lives, margin)
        last = runs[-1]
        if last.failing == failing:
            if failing:
                last.tags.add(answer.code)
            last.certain = last.certain or certain
        else:
            runs.append(Run(failing, {answer.code} if failing else set(), answer.mono, certain))
    # A state the daemon saw for less than a group_interval may be coalesced with the next
    # change: resolved and firing again (or the reverse) before the group's next flush is,
    # for the receiver, no change at all, as in Alertmanager. Normal holds are far longer;
    # this happens when a restart or a stalled probe cuts a phase short.
    for run, nxt in zip(runs[1:], runs[2:]):
        if nxt.first - run.first < GROUP_INTERVAL + COALESCE_SLACK:
            run.short = True
    return runs


@dataclass
class Pruned:
    """What became of the optional runs: heard of (kept) or not (dropped), by reason."""

    kept: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)

    def add(self, other: Pruned) -> None:
        self.kept.update(other.kept)
        self.dropped.update(other.dropped)


def prune(runs: list[Run], fired: set[int], resolved: set[int]) -> tuple[list[Run], Pruned]:
    """Keep the optional runs some receiver heard of (then all must); drop the others,
    merging their neighbours, as if they never happened."""
    done = Pruned()
    out: list[Run] = []
    i = 0
    while i < len(runs):
        run = runs[i]
        optional = not run.certain or run.short
        if not optional or not out or i == len(runs) - 1:
            out.append(Run(run.failing, set(run.tags), run.first, True))
            i += 1
            continue
        reason = "seen only just before a kill -9" if not run.certain else "shorter than group_interval"
        if run.failing:
            happened = bool(run.tags & (fired | resolved))
        else:
            before, after = out[-1], runs[i + 1]
            happened = bool(before.tags & resolved) or bool(after.tags & fired)
        if happened:
            done.kept[reason] += 1
            out.append(Run(run.failing, set(run.tags), run.first, True))
            i += 1
            continue
        done.dropped[reason] += 1
        # The next run continues the one before.
        out[-1].tags |= runs[i + 1].tags
        i += 2
    return out, done


@dataclass
class Item:
    """One transition the receivers must hear about."""

    lane: str
    index: int
    status: str  # "firing" | "resolved"
    tags: frozenset[int]  # the episode codes it may carry
    t_obs: float  # the first probe answered in the new state
    copies: list[float] = field(default_factory=list)  # arrival times of accepted copies


def expected_items(lane: str, runs: list[Run]) -> list[Item]:
    items: list[Item] = []
    for i in range(1, len(runs)):
        run = runs[i]
        if run.failing:
            items.append(Item(lane, len(items), "firing", frozenset(run.tags), run.first))
        else:
            items.append(Item(lane, len(items), "resolved", frozenset(runs[i - 1].tags), run.first))
    return items


@dataclass
class Unexpected:
    lane: str | None
    status: str
    tag: int | None
    mono: float


@dataclass
class LaneMatch:
    items: list[Item]
    unexpected: list[Unexpected] = field(default_factory=list)
    reordered: int = 0


def match_lane(items: list[Item], messages: Sequence[tuple[float, Message]]) -> LaneMatch:
    """Accepted messages (arrival time, message) of one lane on one sink, in arrival order."""
    out = LaneMatch(items)
    by_fire = {tag: it for it in items if it.status == "firing" for tag in it.tags}
    by_resolve = {tag: it for it in items if it.status == "resolved" for tag in it.tags}
    last_trigger: Item | None = None
    highest = -1
    for mono, msg in messages:
        item: Item | None = None
        if msg.tag is not None:
            item = (by_fire if msg.status == "firing" else by_resolve).get(msg.tag)
        elif msg.status == "resolved":
            # A PagerDuty resolve: the resolve of the episode whose trigger came last, or the
            # earliest later one already observed when that one was heard already.
            after = last_trigger.index + 1 if last_trigger is not None else 0
            candidates = [it for it in items[after:] if it.status == "resolved" and it.t_obs <= mono]
            fresh = [it for it in candidates if not it.copies]
            item = fresh[0] if fresh else (candidates[0] if candidates else None)
        if item is None:
            out.unexpected.append(Unexpected(msg.lane, msg.status, msg.tag, mono))
            continue
        if msg.status == "firing":
            last_trigger = item
        if not item.copies:
            if item.index < highest:
                out.reordered += 1
            highest = max(highest, item.index)
        item.copies.append(mono)
    return out


# --------------------------------------------------------------------------- outbox rows


@dataclass(frozen=True)
class OutboxRow:
    id: str
    kind: str  # pagerduty | slack | webhook
    receiver: str
    group_key: str
    lane: str | None
    status: str
    tag: int | None
    created_at: float
    attempts: int
    last_error: str
    outcome: str | None


def outbox_row(row: Sequence[Any]) -> OutboxRow:
    rid, target, payload, created_at, attempts, last_error, outcome = row
    record = payload if isinstance(payload, dict) else json.loads(payload)
    alerts = record.get("alerts") or [{}]
    first = alerts[0]
    status = "firing" if any(a.get("ends_at") is None for a in alerts) else "resolved"
    match = re.search(r"episode (\d+)", str((first.get("annotations") or {}).get("summary", "")))
    kind = next((k for k in RECEIVERS if f"{k}_configs" in str(target)), str(target))
    return OutboxRow(str(rid), kind, str(record.get("receiver", "")), str(record.get("group_key", "")),
                     (first.get("labels") or {}).get("check"), status, int(match.group(1)) if match else None,
                     float(created_at), int(attempts), str(last_error or ""), outcome)


_OUTBOX_QUERY = "SELECT id, target, payload, created_at, attempts, last_error, outcome FROM {t} ORDER BY seq"


def read_outbox_sqlite(path: Path) -> list[OutboxRow]:
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        return [outbox_row(r) for r in conn.execute(_OUTBOX_QUERY.format(t="outbox"))]
    finally:
        conn.close()


def read_outbox_postgres(dsn: str) -> list[OutboxRow]:
    import psycopg  # the daemon's own dependency; only this scenario needs it

    with psycopg.connect(dsn, connect_timeout=5) as conn:
        return [outbox_row(r) for r in conn.execute(_OUTBOX_QUERY.format(t="monitor.outbox")).fetchall()]


# --------------------------------------------------------------------------- results


@dataclass
class Duplicate:
    item: Item
    extra: int
    entries: int  # outbox rows for this transition on this receiver
    kill_between: bool

    @property
    def kind(self) -> str:
        if self.entries == 1:
            return "resent, in flight at a kill" if self.kill_between else "resent, no kill"
        if self.entries >= 2:
            return "decided twice"
        return "no outbox row"


@dataclass
class ReceiverResult:
    receiver: str
    items: list[Item] = field(default_factory=list)
    unexpected: list[Unexpected] = field(default_factory=list)
    reordered: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    lost_why: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    refused_answers: int = 0

    @property
    def delivered(self) -> list[Item]:
        return [it for it in self.items if it.copies]

    @property
    def lost(self) -> list[Item]:
        return [it for it in self.items if not it.copies]

    @property
    def delays(self) -> list[float]:
        return [it.copies[0] - it.t_obs for it in self.items if it.copies]


@dataclass
class ScenarioResult:
    name: str
    fault: str = ""
    receivers: dict[str, ReceiverResult] = field(default_factory=dict)
    lives: list[Life] = field(default_factory=list)
    samples: list[Any] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None
    pruned: Pruned = field(default_factory=Pruned)
    wall_s: float = 0.0
    log_events: Counter[str] = field(default_factory=Counter)
    tracebacks: int = 0
    kills: list[float] = field(default_factory=list)


def nearest_rank(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def tag_from_rows(messages: list[tuple[Request, Message]], rows: Sequence[OutboxRow]) -> list[tuple[Request, Message]]:
    """Give untagged messages (PagerDuty resolves) the episode of the outbox entry they were
    sent for. A target's entries go out in ``seq`` order, each at least once (the one in flight
    at a kill may go twice): so per lane, walk the accepted messages along the entries, an
    untagged resolve taking the next entry if that is a resolve, else the last one again."""
    by_lane: dict[str | None, list[OutboxRow]] = {}
    for row in rows:
        by_lane.setdefault(row.lane, []).append(row)
    position: dict[str | None, int] = {}
    out: list[tuple[Request, Message]] = []
    for req, msg in messages:
        lane_rows = by_lane.get(msg.lane, [])
        p = position.get(msg.lane, 0)
        j: int | None = None
        if msg.tag is not None:
            j = next((i for i in range(max(p - 1, 0), len(lane_rows))
                      if lane_rows[i].status == msg.status and lane_rows[i].tag == msg.tag), None)
        elif p < len(lane_rows) and lane_rows[p].status == msg.status:
            j = p
        elif p > 0 and lane_rows[p - 1].status == msg.status:
            j = p - 1
        else:
            j = next((i for i in range(p, len(lane_rows)) if lane_rows[i].status == msg.status), None)
        if j is not None:
            position[msg.lane] = max(p, j + 1)
            if msg.tag is None:
                msg = Message(msg.lane, msg.status, lane_rows[j].tag, msg.key)
        out.append((req, msg))
    return out


def analyse(lanes: Sequence[str], target: LaneTarget, sinks: dict[str, Sink], lives: Sequence[Life], margin: float,
            rows: Sequence[OutboxRow] = (), kills: Sequence[float] = ()) -> tuple[dict[str, ReceiverResult], Pruned]:
    """The ledger against what each sink accepted. Pure: safe to call while the run goes on
    (the settle loop does, to know when everything arrived)."""
    dedup_lanes: dict[str, str] = {}
    for row in rows:
        if row.kind == "pagerduty" and row.lane:
            dedup_lanes[pagerduty_dedup_key(row.receiver, row.group_key)] = row.lane
    for req in sinks["pagerduty"].requests:
        if req.accepted:
            with contextlib.suppress(ValueError):
                payload = json.loads(req.body)
                if payload.get("event_action") == "trigger":
                    source = (payload.get("payload") or {}).get("source")
                    if source:
                        dedup_lanes[str(payload.get("dedup_key"))] = str(source)
    accepted = {name: sink.messages(dedup_lanes) for name, sink in sinks.items()}
    if rows:
        accepted = {name: tag_from_rows(msgs, [r for r in rows if r.kind == name]) for name, msgs in accepted.items()}
    fired: dict[str, set[int]] = {lane: set() for lane in lanes}
    resolved: dict[str, set[int]] = {lane: set() for lane in lanes}
    for messages in accepted.values():
        for _, msg in messages:
            if msg.lane in fired and msg.tag is not None:
                (fired if msg.status == "firing" else resolved)[msg.lane].add(msg.tag)
    results = {name: ReceiverResult(name) for name in sinks}
    pruned = Pruned()
    for lane in lanes:
        runs, done = prune(lane_runs(target.answers.get(lane, []), lives, margin), fired[lane], resolved[lane])
        pruned.add(done)
        for name in sinks:
            items = expected_items(lane, runs)
            msgs = [(req.mono, msg) for req, msg in accepted[name] if msg.lane == lane]
            m = match_lane(items, msgs)
            res = results[name]
            res.items += m.items
            res.unexpected += m.unexpected
            res.reordered += m.reordered
    for name, res in results.items():
        res.unexpected += [Unexpected(msg.lane, msg.status, msg.tag, req.mono) for req, msg in accepted[name]
                           if msg.lane not in fired]
        sink = sinks[name]
        res.requests = len(sink.requests)
        res.refused_answers = sum(1 for r in sink.requests if not r.accepted)
        mine = [r for r in rows if r.kind == name]
        for it in res.items:
            entries = [r for r in mine if r.lane == it.lane and r.status == it.status and r.tag in it.tags]
            if len(it.copies) > 1:
                between = any(it.copies[0] <= k <= it.copies[-1] for k in kills)
                res.duplicates.append(Duplicate(it, len(it.copies) - 1, len(entries), between))
            if not it.copies and rows:
                if not entries:
                    res.lost_why["never queued (no outbox entry)"] += 1
                else:
                    last = entries[-1]
                    why = {"delivered": "outbox says delivered", "failed": f"failed: {last.last_error[:80]}"}.get(
                        last.outcome or "", f"still queued ({last.attempts} attempts)")
                    res.lost_why[why] += 1
    return results, pruned


# --------------------------------------------------------------------------- metrics & logs


def metric_values(text: str, name: str) -> list[tuple[dict[str, str], float]]:
    out = []
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            head, _, value = line.rpartition(" ")
            labels = dict(re.findall(r'(\w+)="([^"]*)"', head))
            with contextlib.suppress(ValueError):
                out.append((labels, float(value)))
    return out


NOTABLE = ("notification_claimed_elsewhere", "notification_retry", "notification_failed", "state_store_failing",
           "state_store_recovered", "state_commit_retry", "outbox_store_failed", "state_not_persisted",
           "outbox_worker_error", "notification_flush_failed", "check_skipped")


def scan_log(path: Path) -> tuple[Counter[str], int, Counter[str], int]:
    """Error events by name, tracebacks, notable events (with their longest wait), and lines
    that are not one JSON object (a kill -9 cuts the last line short; the next run's first
    line then continues it)."""
    events: Counter[str] = Counter()
    notable: Counter[str] = Counter()
    tracebacks = broken = 0
    waits: dict[str, float] = {}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if "Traceback" in line:
                tracebacks += 1
            if not line.startswith("{"):
                continue
            try:
                event = json.loads(line)
            except ValueError:
                broken += 1
                continue
            name = str(event.get("event"))
            if event.get("level") in ("error", "critical", "exception"):
                events[f"{name} ({event.get('level')})"] += 1
                if "exception" in event:
                    tracebacks += 1
            if name in NOTABLE:
                notable[name] += 1
                for key in ("waiting", "retry_in"):
                    if isinstance(event.get(key), (int, float)):
                        waits[name] = max(waits.get(name, 0.0), float(event[key]))
    for name, longest in waits.items():
        notable[f"{name} (longest wait {longest:g} s)"] = notable.pop(name)
    return events, tracebacks, notable, broken


@dataclass(frozen=True)
class LogEvent:
    wall: float
    event: str
    check: str | None  # the lane an event is about (alert events; group keys name it too)


def read_log_events(path: Path) -> list[LogEvent]:
    """The daemon events that tell a transition's way: evaluated, queued, delivered."""
    out: list[LogEvent] = []
    wanted = {"alert_firing", "alert_resolved", "notification_queued", "notification_delivered",
              "notification_retry", "notification_claimed_elsewhere", "started", "stopping"}
    with contextlib.suppress(OSError):
        for line in path.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            with contextlib.suppress(ValueError, KeyError):
                event = json.loads(line)
                if event.get("event") not in wanted:
                    continue
                wall = dt.datetime.fromisoformat(event["timestamp"].replace("Z", "+00:00")).timestamp()
                check = event.get("check")
                if check is None and "group" in event:
                    found = re.search(r'check="([^"]+)"', str(event["group"]))
                    check = found.group(1) if found else None
                name = str(event["event"])
                if name.startswith("notification_") and "receiver" in event:
                    name += f"[{event['receiver']}]"
                out.append(LogEvent(wall, name, check))
    return out


def explain_lost(item: Item, receivers: list[str], kills: Sequence[float], wall_offset: float,
                 events: Sequence[LogEvent]) -> str:
    """Where a lost transition sits relative to the kills, and what the daemon logged about
    its lane right after it was observed."""
    what = f"{'/'.join(receivers)}: {item.lane} {item.status} (episode {'/'.join(map(str, sorted(item.tags)))})"
    where = ""
    if kills:
        k = min(range(len(kills)), key=lambda i: abs(kills[i] - item.t_obs))
        where = f", first probe in the new state {item.t_obs - kills[k]:+.1f}s from kill #{k + 1}"
    t_wall = item.t_obs + wall_offset
    seen = [f"{e.event} {e.wall - t_wall:+.1f}s" for e in events
            if e.check == item.lane and t_wall - 1.0 <= e.wall <= t_wall + 30.0]
    starts = [f"daemon started {e.wall - t_wall:+.1f}s" for e in events
              if e.event == "started" and t_wall - 1.0 <= e.wall <= t_wall + 30.0]
    log = "; ".join((seen + starts)[:8]) or "nothing"
    return f"lost: {what}{where}; daemon log for the lane from then on: {log}"


# --------------------------------------------------------------------------- the scenario run


class Harness:
    """One scenario: config, daemon, cycles, the fault, settle, analysis."""

    def __init__(self, name: str, settings: Settings, rig: Rig, workdir: Path, monitor_bin: str, seed: int) -> None:
        self.name = name
        self.s = settings
        self.rig = rig
        self.dir = workdir / name
        self.dir.mkdir(parents=True)
        self.monitor_bin = monitor_bin
        self.rng = random.Random(f"{seed}-{name}")
        self.lanes = lane_names(settings.lanes)
        self.token = secrets.token_hex(12)
        self.port = free_port()
        self.result = ScenarioResult(name)
        self.daemon: DaemonProcess | None = None
        self.pg: PrivatePostgres | None = None
        self.session: aiohttp.ClientSession | None = None
        self.state = f"sqlite:///{self.dir}/state.db"
        self.restarts_left = 3  # after crashes (not our kills)
        self.wall_offset = time.time() - time.monotonic()  # to find a moment in the daemon's log
        self.t0 = 0.0  # when the cycles started
        # What the faults did, for fault_notes().
        self.outage_windows: list[tuple[str, str, float, float]] = []
        self.storm = (0.0, 0.0)
        self.store_window: tuple[float, float] | None = None
        self.reload_calls: list[tuple[str, int, float]] = []
        self.reload_unauth: int | None = None

    # --- helpers ---------------------------------------------------------------------
    def config(self, variant: str = "A") -> Path:
        hang = self.rig.hang if self.name == "hang" else None
        return write_config(self.dir, port=self.port, state=self.state, token=self.token, target=self.rig.target,
                            sinks=self.rig.sinks, lanes=self.lanes, hang=hang,
                            hang_checks=self.s.hang_checks if hang else 0, variant=variant)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def get(self, path: str, timeout: float = 5.0) -> tuple[int, str]:
        assert self.session is not None
        async with self.session.get(self.base + path, timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return response.status, await response.text()

    async def post(self, path: str, token: str | None, timeout: float = 30.0) -> tuple[int, str]:
        assert self.session is not None
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with self.session.post(self.base + path, headers=headers,
                                     timeout=aiohttp.ClientTimeout(total=timeout)) as response:
            return response.status, await response.text()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        assert self.daemon is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.daemon.crashed() is not None:
                raise RuntimeError(f"daemon exited with {self.daemon.lives[-1].exit_code} while starting:\n"
                                   f"{tail(self.daemon.log, 15)}")
            with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
                if (await self.get("/readyz", 2.0))[0] == 200:
                    self.daemon.lives[-1].ready = time.monotonic()
                    return
            await asyncio.sleep(0.1)
        raise RuntimeError(f"daemon not ready after {timeout:g}s:\n{tail(self.daemon.log, 15)}")

    async def start_daemon(self) -> None:
        assert self.daemon is not None
        self.daemon.start()
        await self.wait_ready()

    async def watchdog(self, stop: asyncio.Event) -> None:
        """A daemon that died by itself is a finding: note it and start it again (bounded)."""
        assert self.daemon is not None
        while not stop.is_set():
            life = self.daemon.crashed()
            if life is not None:
                self.result.notes.append(f"**daemon crashed** (exit {life.exit_code}) "
                                         f"{(life.ended or time.monotonic()) - life.started:.1f}s after start: "
                                         f"{tail(self.daemon.log, 3).replace(chr(10), ' | ')[:400]}")
                if self.restarts_left <= 0:
                    return
                self.restarts_left -= 1
                with contextlib.suppress(RuntimeError):
                    await self.start_daemon()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), 0.5)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    async def cycle_lane(self, lane: str, stop: asyncio.Event, rng: random.Random) -> None:
        target = self.rig.target
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), rng.uniform(0, self.s.hold[1]))
        for k in range(MAX_EPISODES):
            if stop.is_set():
                break
            target.state[lane] = FIRST_CODE + k
            began = time.monotonic()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(*self.s.hold))
            # Stopped early: still fail for the shortest phase, so the end of the run does not
            # make a failure shorter than group_interval (which the ledger must treat as optional).
            await asyncio.sleep(max(0.0, began + self.s.hold[0] - time.monotonic()))
            target.state[lane] = 200
            if stop.is_set():
                break
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), rng.uniform(*self.s.hold))
        target.state[lane] = 200

    def analysis(self, rows: Sequence[OutboxRow] = ()) -> tuple[dict[str, ReceiverResult], Pruned]:
        assert self.daemon is not None
        return analyse(self.lanes, self.rig.target, self.rig.sinks, self.daemon.lives, self.s.margin, rows,
                       self.result.kills)

    async def queue_length(self) -> float | None:
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            status, text = await self.get("/metrics", 5.0)
            if status == 200:
                return sum(v for _, v in metric_values(text, "monitor_notification_queue_length"))
        return None

    # --- the run ---------------------------------------------------------------------
    async def run(self, fault: Callable[[Harness], Awaitable[None]]) -> ScenarioResult:
        started = time.monotonic()
        self.rig.target.reset(self.lanes)
        for sink in self.rig.sinks.values():
            await sink.set_mode("ok")
            sink.reset()
        stop_all = asyncio.Event()
        background: list[asyncio.Task[None]] = []
        try:
            if self.name == "store":
                self.pg = PrivatePostgres()
                await asyncio.to_thread(self.pg.init)
                await asyncio.to_thread(self.pg.start)
                self.state = self.pg.dsn
            env = {k: v for k, v in os.environ.items() if not k.startswith("MONITOR_")}
            self.daemon = DaemonProcess(self.monitor_bin, self.config(), self.port, self.dir / "monitor.log", env)
            self.session = aiohttp.ClientSession()
            await self.start_daemon()
            # Every lane healthy once before anything fails: a firing is a change from "up".
            deadline = time.monotonic() + 30
            while not all(any(a.code == 200 for a in self.rig.target.answers[lane]) for lane in self.lanes):
                if time.monotonic() > deadline:
                    raise RuntimeError("lanes not probed within 30 s of the daemon being ready")
                await asyncio.sleep(0.2)
            await asyncio.sleep(1.5)
            sampler = Sampler(self.daemon, self.rig.hang if self.name == "hang" else None)
            background.append(asyncio.create_task(sampler.run(stop_all)))
            background.append(asyncio.create_task(self.watchdog(stop_all)))
            stop_cycles = asyncio.Event()
            cycles = [asyncio.create_task(self.cycle_lane(lane, stop_cycles, random.Random(self.rng.random())))
                      for lane in self.lanes]
            t0 = time.monotonic()
            self.t0 = t0
            await fault(self)
            await self.sleep(t0 + self.s.duration - time.monotonic())
            stop_cycles.set()
            await asyncio.gather(*cycles)
            self.result.notes.append(f"fire/resolve cycles for {time.monotonic() - t0:.0f}s")
            await self.settle()
            stop_all.set()
            await asyncio.gather(*background)
            self.result.samples = sampler.samples
            await self.final_metrics()
        except RuntimeError as err:
            self.result.error = str(err).splitlines()[0]
            self.result.notes.append(f"**aborted**: {str(err)[:600]}")
        finally:
            stop_all.set()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self.daemon is not None:
                # In a thread: a stopping daemon finishes deliveries in hand to our sinks.
                code = await asyncio.to_thread(self.daemon.stop)
                if code not in (0, None):
                    self.result.notes.append(f"daemon exited with status {code} on SIGTERM")
            rows: list[OutboxRow] = []
            with contextlib.suppress(Exception):
                rows = (await asyncio.to_thread(read_outbox_postgres, self.pg.dsn) if self.pg is not None
                        else read_outbox_sqlite(self.dir / "state.db"))
            if self.pg is not None:
                await asyncio.to_thread(self.pg.cleanup)
            if self.session is not None:
                await self.session.close()
            for sink in self.rig.sinks.values():
                await sink.set_mode("ok")
        assert self.daemon is not None
        self.result.receivers, self.result.pruned = self.analysis(rows)
        self.explain(rows)
        self.result.lives = self.daemon.lives
        self.result.log_events, self.result.tracebacks, notable, broken = scan_log(self.daemon.log)
        if notable:
            self.result.notes.append("daemon log: " + ", ".join(f"{k} ×{v}" for k, v in sorted(notable.items())))
        if broken:
            self.result.notes.append(f"daemon log: {broken} lines not one JSON object (cut short by a kill -9 and "
                                     "continued by the next run's first line)")
        problems = Counter(p for sink in self.rig.sinks.values() for p in sink.problems)
        for problem, n in problems.items():
            self.result.notes.append(f"payload problem: {problem} ({n}×)")
        if not rows:
            self.result.notes.append("outbox table not readable after the run: duplicates not classified")
        self.result.wall_s = time.monotonic() - started
        return self.result

    def explain(self, rows: Sequence[OutboxRow]) -> None:
        """Notes on each lost transition (grouped over receivers), and the raw material in
        the work dir (``ledger.json``, kept with --keep)."""
        assert self.daemon is not None
        events = read_log_events(self.daemon.log)
        lost: dict[tuple[str, str, frozenset[int]], tuple[Item, list[str]]] = {}
        for name, r in self.result.receivers.items():
            for it in r.lost:
                lost.setdefault((it.lane, it.status, it.tags), (it, []))[1].append(name)
        for it, names in list(lost.values())[:12]:
            self.result.notes.append(explain_lost(it, names, self.result.kills, self.wall_offset, events))
        if len(lost) > 12:
            self.result.notes.append(f"... and {len(lost) - 12} more lost transitions")
        dump = {
            "wall_offset": self.wall_offset,
            "kills": self.result.kills,
            "lives": [vars(life) for life in self.daemon.lives],
            "answers": {lane: [(a.mono, a.code) for a in answers] for lane, answers in self.rig.target.answers.items()},
            "requests": {name: [{"mono": q.mono, "status": q.status, "retry_after": q.retry_after,
                                 "body": q.body.decode(errors="replace")} for q in sink.requests]
                         for name, sink in self.rig.sinks.items()},
            "items": {name: [{"lane": it.lane, "status": it.status, "tags": sorted(it.tags), "t_obs": it.t_obs,
                              "copies": it.copies} for it in r.items] for name, r in self.result.receivers.items()},
            "outbox": [vars(row) for row in rows],
        }
        with contextlib.suppress(OSError):
            (self.dir / "ledger.json").write_text(json.dumps(dump, default=str))

    async def settle(self) -> None:
        """Every lane healthy and seen so by a live daemon; then wait for the last
        notifications: until nothing is missing (then ``quiet`` more seconds for duplicates),
        or nothing is queued in the daemon for a while, or ``settle_max``."""
        t_final = time.monotonic()
        deadline = t_final + 30
        while True:
            seen = all(any(a.code == 200 and a.mono > t_final for a in self.rig.target.answers[lane])
                       for lane in self.lanes)
            if seen or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(CHECK_INTERVAL + 0.5)
        start = time.monotonic()
        idle_since: float | None = None
        while True:
            results, _ = self.analysis()
            missing = sum(len(r.lost) for r in results.values())
            now = time.monotonic()
            if missing == 0:
                await asyncio.sleep(self.s.quiet)
                break
            queued = await self.queue_length()
            idle_since = (idle_since or now) if queued == 0 else None
            if idle_since is not None and now - idle_since > 10:
                self.result.notes.append(f"settle: {missing} transitions missing and nothing queued in the daemon "
                                         f"for 10 s; stopped waiting after {now - start:.0f}s")
                break
            if now - start > self.s.settle_max:
                self.result.notes.append(f"settle: {missing} transitions still missing after {self.s.settle_max:g}s "
                                         f"(daemon queue length {queued})")
                break
            await asyncio.sleep(0.5)
        self.result.notes.append(f"settle {time.monotonic() - t_final:.0f}s")

    async def final_metrics(self) -> None:
        with contextlib.suppress(aiohttp.ClientError, OSError, asyncio.TimeoutError):
            status, text = await self.get("/metrics", 10.0)
            if status != 200:
                return
            outcomes: Counter[str] = Counter()
            for labels, value in metric_values(text, "monitor_notifications_total"):
                outcomes[f"{labels.get('integration')} {labels.get('outcome')}"] += int(value)
            if outcomes:
                self.result.notes.append("daemon's monitor_notifications_total (last run): " + ", ".join(
                    f"{k} {v}" for k, v in sorted(outcomes.items())))
            skipped = sum(v for _, v in metric_values(text, "monitor_check_skipped_runs_total"))
            if skipped:
                self.result.notes.append(f"skipped runs (monitor_check_skipped_runs_total, last run): {skipped:.0f}")
            ok = metric_values(text, "monitor_config_last_reload_successful")
            if ok and ok[0][1] != 1.0:
                self.result.notes.append(f"monitor_config_last_reload_successful = {ok[0][1]:g} at the end")


# --------------------------------------------------------------------------- faults


def at(h: Harness, fraction: float) -> float:
    return h.t0 + fraction * h.s.duration


async def until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


def accepted_after(sink: Sink, moment: float) -> float | None:
    return next((r.mono for r in sink.requests if r.accepted and r.mono >= moment), None)


async def fault_outage(h: Harness) -> None:
    pd, slack = h.rig.sinks["pagerduty"], h.rig.sinks["slack"]
    length = min(h.s.outage, 0.6 * h.s.duration)
    pd_from, slack_from = at(h, 0.12), at(h, 0.25)
    h.result.fault = (f"PagerDuty answers 503 for {length:g}s; Slack's port refuses connections for {length:g}s "
                      "(overlapping); webhook untouched")

    async def outage(sink: Sink, mode: str, begin: float) -> None:
        await until(begin)
        await sink.set_mode(mode)
        t_on = time.monotonic()
        await until(begin + length)
        await sink.set_mode("ok")
        t_off = time.monotonic()
        h.outage_windows.append((sink.kind, mode, t_on, t_off))

    await asyncio.gather(outage(pd, "503", pd_from), outage(slack, "refuse", slack_from))


async def fault_ratelimit(h: Harness) -> None:
    sinks = h.rig.sinks
    sinks["webhook"].retry_after_as_date = True
    h.result.fault = (f"every receiver rate-limited for {h.s.storm:g}s: 1 request accepted per 2 s, the rest 429 + "
                      "Retry-After (seconds for PagerDuty/Slack, HTTP-date for the webhook)")
    await until(at(h, 0.1))
    h.storm = (time.monotonic(), 0.0)
    for sink in sinks.values():
        sink.rate_period = 2.0
        await sink.set_mode("ratelimit")
    await asyncio.sleep(h.s.storm)
    for sink in sinks.values():
        await sink.set_mode("ok")
    h.storm = (h.storm[0], time.monotonic())
    sinks["webhook"].retry_after_as_date = False


async def fault_kill(h: Harness) -> None:
    assert h.daemon is not None
    h.result.fault = (f"{h.s.kills} × kill -9 at random moments (U(2, 7) s after the previous start was ready), "
                      f"restarted at once; receivers answer {h.s.answer_delay:g} s after reading a request, so a "
                      "kill can land mid-delivery")
    for sink in h.rig.sinks.values():
        sink.answer_delay = h.s.answer_delay
    for _ in range(h.s.kills):
        await asyncio.sleep(h.rng.uniform(2.0, 7.0))
        if h.daemon.pid is None:
            continue
        h.result.kills.append(await asyncio.to_thread(h.daemon.kill9))
        await h.start_daemon()
    # Leave time after the last restart for cycles on a daemon that stays up.
    await asyncio.sleep(min(10.0, h.s.duration * 0.2))


async def fault_store(h: Harness) -> None:
    assert h.pg is not None
    h.result.fault = f"private PostgreSQL (the state store) stopped with `pg_ctl -m immediate` for {h.s.store_outage:g}s"
    await until(at(h, 0.15))
    await asyncio.to_thread(h.pg.stop)
    down = time.monotonic()
    await asyncio.sleep(h.s.store_outage)
    await asyncio.to_thread(h.pg.start)
    up = time.monotonic()
    h.store_window = (down, up)


async def fault_hang(h: Harness) -> None:
    h.result.fault = (f"{h.s.hang_checks} extra checks (half http, half tcp send/expect; every 2 s, timeout 2 s) "
                      "against a server that accepts and never answers")


async def fault_reload(h: Harness) -> None:
    h.result.fault = (f"`POST /-/reload` every {h.s.reload_every:g}s, valid (two variants) and invalid "
                      "(YAML error, unknown CEL variable, undefined receiver) alternating")
    plan = ["B", "bad-yaml", "A", "bad-rule", "B", "bad-route", "A", "bad-yaml", "B", "bad-rule", "A", "bad-route"]
    calls: list[tuple[str, int, float]] = []
    status, _ = await h.post("/-/reload", None)
    h.reload_unauth = status
    await until(at(h, 0.05))
    end = at(h, 0.85)
    i = 0
    while time.monotonic() < end:
        variant = plan[i % len(plan)]
        i += 1
        h.config(variant)
        t = time.monotonic()
        try:
            code, _ = await h.post("/-/reload", h.token)
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as err:
            code = -1
            h.result.notes.append(f"reload call failed: {type(err).__name__}")
        calls.append((variant, code, time.monotonic() - t))
        await asyncio.sleep(max(0.0, t + h.s.reload_every - time.monotonic()))
    h.config("A")
    code, _ = await h.post("/-/reload", h.token)
    calls.append(("A", code, 0.0))
    h.reload_calls = calls


FAULTS: dict[str, Callable[[Harness], Awaitable[None]]] = {
    "outage": fault_outage, "ratelimit": fault_ratelimit, "kill": fault_kill,
    "store": fault_store, "hang": fault_hang, "reload": fault_reload,
}


def fault_notes(h: Harness) -> None:
    """What each fault did to the delivery path, measured at the sinks."""
    res = h.result
    sinks = h.rig.sinks
    for what, counts in (("heard of by a receiver, so expected from all", res.pruned.kept),
                         ("heard of by none, so not expected", res.pruned.dropped)):
        if counts:
            res.notes.append(f"optional runs {what}: " + ", ".join(f"{n} {why}" for why, n in counts.most_common()))
    if h.name == "outage":
        for kind, mode, t_on, t_off in h.outage_windows:
            sink = sinks[kind]
            during = [r for r in sink.requests if t_on <= r.mono <= t_off]
            first = accepted_after(sink, t_off)
            after = f"first accepted {first - t_off:.1f}s after it ended" if first else "nothing accepted after it"
            res.notes.append(f"{kind} {mode} for {t_off - t_on:.0f}s: {len(during)} attempts reached the sink "
                             f"during it ({sum(1 for r in during if r.status == 503)} answered 503); {after}")
    elif h.name == "ratelimit":
        begin, end = h.storm
        for kind, sink in sinks.items():
            reqs = sink.requests
            too_early, worst = 0, 0.0
            for prev, nxt in zip(reqs, reqs[1:]):
                if prev.status != 429 or prev.retry_after is None:
                    continue
                if prev.retry_after.isdigit():
                    wanted = float(prev.retry_after)
                    early = wanted - (nxt.mono - prev.mono)
                else:
                    parsed = email.utils.parsedate_to_datetime(prev.retry_after).timestamp()
                    early = parsed - nxt.wall
                if early > 0.05:
                    too_early += 1
                    worst = max(worst, early)
            n429 = sum(1 for r in reqs if r.status == 429)
            during_ok = sum(1 for r in reqs if r.accepted and begin <= r.mono <= end)
            drained = max((r.mono for r in reqs if r.accepted), default=end)
            res.notes.append(f"{kind}: {n429} × 429, {during_ok} accepted during the storm; retries sooner than "
                             f"Retry-After: {too_early}" + (f" (up to {worst:.2f}s early)" if too_early else "")
                             + f"; last accepted {max(0.0, drained - end):.1f}s after the storm")
    elif h.name == "kill":
        downs = [life for life in h.daemon.lives if life.how == "kill"] if h.daemon else []
        restarts = [(nxt.ready or nxt.started) - life.ended for life, nxt in zip(h.daemon.lives, h.daemon.lives[1:])
                    if life.how == "kill" and life.ended is not None] if h.daemon else []
        if restarts:
            res.notes.append(f"{len(downs)} kills; kill → restarted daemon ready: median {nearest_rank(restarts, .5):.1f}s, "
                             f"max {max(restarts):.1f}s (no probes meanwhile)")
        if h.daemon:
            # With ten lanes cycling there is always something to send: a long gap here is a
            # restarted daemon not sending.
            for kind, sink in sinks.items():
                gaps = []
                for killed, again in zip(h.daemon.lives, h.daemon.lives[1:]):
                    if killed.how == "kill" and again.ready is not None:
                        first = accepted_after(sink, again.ready)
                        stop = again.ended if again.ended is not None else math.inf
                        gaps.append(f"{first - again.ready:.1f}" if first is not None and first <= stop else "—")
                res.notes.append(f"{kind}: first notification accepted after each restart was ready: "
                                 f"{', '.join(gaps)} s (— : none before the next kill)")
    elif h.name == "store":
        window = h.store_window
        if window:
            down, up = window
            for kind, sink in sinks.items():
                while_down = sum(1 for q in sink.requests if q.accepted and down <= q.mono <= up)
                first = accepted_after(sink, up)
                res.notes.append(f"{kind}: {while_down} notifications accepted while the store was down; first after "
                                 f"it came back: " + (f"{first - up:.1f}s later" if first else "none"))
            # Transitions observed during the outage: when did they reach the receivers?
            for kind, rr in res.receivers.items():
                held = [it.copies[0] - up for it in rr.items if down <= it.t_obs <= up and it.copies]
                if held:
                    res.notes.append(f"{kind}: the {len(held)} transitions observed during the outage arrived "
                                     f"{min(held):+.1f}…{max(held):+.1f}s relative to the store's return")
    elif h.name == "hang":
        samples = res.samples
        if samples:
            hold = [s.hang_open for s in samples]
            res.notes.append(f"connections held open at the hanging server: min {min(hold)}, max {max(hold)}, "
                             f"last {hold[-1]}; accepted in total {h.rig.hang.accepted}")
    elif h.name == "reload":
        calls = h.reload_calls
        valid = [c for c in calls if not c[0].startswith("bad")]
        invalid = [c for c in calls if c[0].startswith("bad")]
        wrong = [c for c in valid if c[1] != 200] + [c for c in invalid if c[1] != 400]
        times = [c[2] for c in calls if c[2] > 0]
        res.notes.append(f"{len(calls)} reloads ({len(valid)} valid → 200: {sum(c[1] == 200 for c in valid)}, "
                         f"{len(invalid)} invalid → 400: {sum(c[1] == 400 for c in invalid)}); unexpected answers: "
                         f"{len(wrong)}" + (f" {Counter((c[0], c[1]) for c in wrong).most_common(4)}" if wrong else "")
                         + (f"; reload call p50 {nearest_rank(times, .5) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms"
                            if times else ""))
        res.notes.append(f"reload without the token answered {h.reload_unauth} (401 expected)")


# --------------------------------------------------------------------------- the rig


class Rig:
    def __init__(self) -> None:
        self.target = LaneTarget()
        self.hang = HangServer()
        self.sinks = {
            "pagerduty": Sink("pagerduty", "/v2/enqueue", routing_key=ROUTING_KEY),
            "slack": Sink("slack", "/hook"),
            "webhook": Sink("webhook", "/alerts", hmac_secret=HMAC_SECRET),
        }

    async def start(self) -> None:
        await self.target.start()
        await self.hang.start()
        for sink in self.sinks.values():
            await sink.start()

    async def close(self) -> None:
        for sink in self.sinks.values():
            await sink.close()
        await self.hang.close()
        await self.target.close()


# --------------------------------------------------------------------------- report


def fmt_s(seconds: float) -> str:
    if math.isnan(seconds):
        return "—"
    return f"{seconds * 1000:.0f} ms" if abs(seconds) < 1 else f"{seconds:.1f} s"


def dup_cell(r: ReceiverResult) -> str:
    total = sum(d.extra for d in r.duplicates)
    if not total:
        return "0"
    kinds: Counter[str] = Counter()
    for d in r.duplicates:
        kinds[d.kind] += d.extra
    return f"**{total}** (" + ", ".join(f"{n} {k}" for k, n in kinds.most_common()) + ")"


def lost_cell(r: ReceiverResult) -> str:
    lost = len(r.lost)
    if not lost:
        return "0"
    why = ", ".join(f"{n} {k}" for k, n in r.lost_why.most_common())
    return f"**{lost}**" + (f" ({why})" if why else "")


def process_cells(res: ScenarioResult) -> list[str]:
    samples = res.samples
    if not samples:
        return ["—", "—", "—"]
    fds = [s.fds for s in samples]
    rss = [s.rss_kib / 1024 for s in samples]
    threads = max(s.threads for s in samples)
    # Growth: the last fifth of the samples against the first fifth after a few seconds.
    n = len(samples)
    k = max(1, n // 5)
    first, last = samples[min(n - 1, 6): min(n - 1, 6) + k] or samples[:k], samples[-k:]
    pids = {s.pid for s in first} & {s.pid for s in last}
    growth = ""
    if pids:  # only meaningful within one process
        d_fd = sorted(s.fds for s in last)[len(last) // 2] - sorted(s.fds for s in first)[len(first) // 2]
        d_rss = (sorted(s.rss_kib for s in last)[len(last) // 2] - sorted(s.rss_kib for s in first)[len(first) // 2]) / 1024
        growth = f"; first→last fifth {d_fd:+d} FDs, {d_rss:+.1f} MiB"
    return [f"{min(fds)} / {max(fds)} / {fds[-1]}", f"{min(rss):.0f} / {max(rss):.0f} / {rss[-1]:.0f}{growth}",
            str(threads)]


def report(results: list[ScenarioResult], s: Settings, seed: int, version: str) -> str:
    header = ["scenario", "receiver", "transitions (fire / resolve)", "delivered", "lost", "duplicated", "unexpected",
              "out of order", "delay p50", "delay p99", "delay max"]
    rows: list[list[str]] = []
    for res in results:
        for name in RECEIVERS:
            r = res.receivers.get(name)
            if r is None:
                continue
            fires = sum(1 for it in r.items if it.status == "firing")
            delays = r.delays
            rows.append([TITLES[res.name], name, f"{len(r.items)} ({fires} / {len(r.items) - fires})",
                         str(len(r.delivered)), lost_cell(r), dup_cell(r),
                         f"**{len(r.unexpected)}**" if r.unexpected else "0",
                         f"**{r.reordered}**" if r.reordered else "0",
                         fmt_s(nearest_rank(delays, .5)), fmt_s(nearest_rank(delays, .99)),
                         fmt_s(max(delays) if delays else math.nan)])
    pheader = ["scenario", "fault", "daemon runs (kills / crashes)", "FDs min / max / last",
               "RSS MiB min / max / last", "threads max", "error events in log", "wall"]
    prows: list[list[str]] = []
    for res in results:
        kills = sum(1 for life in res.lives if life.how == "kill")
        crashes = sum(1 for life in res.lives if life.how == "crash")
        errors = sum(res.log_events.values())
        top = ", ".join(f"{k} ×{v}" for k, v in res.log_events.most_common(3))
        prows.append([TITLES[res.name], res.fault or "—", f"{len(res.lives)} ({kills} / {crashes})",
                      *process_cells(res),
                      f"{errors}" + (f": {top}" if top else "") + (f"; {res.tracebacks} tracebacks" if res.tracebacks else ""),
                      f"{res.wall_s:.0f} s"])
    lines = [
        "## Fault injection (`bench/faults.py`)",
        "",
        f"Command: `{command_line()}`",
        "",
        *machine_info(),
        f"- version: {version}",
        f"- setup: {s.lanes} lanes per scenario (http check every {CHECK_INTERVAL:g} s, rule `!up` with `for: 0s`, "
        f"`group_by: [alertname, check]`, `group_wait: 0s`, `group_interval: {GROUP_INTERVAL:g}s`, `repeat_interval: 1h`), each "
        f"cycling failing / healthy, every phase U({s.hold[0]:g}, {s.hold[1]:g}) s, for {s.duration:g} s of "
        f"cycles per scenario; three receivers (PagerDuty Events v2, Slack webhook, Alertmanager webhook v4 with "
        f"HMAC) in the harness; SQLite state except the store scenario (private PostgreSQL 15); fresh daemon and "
        f"state per scenario; seed {seed}",
        "- ledger: per lane, runs of failing / healthy answers the target gave the daemon's probes; a transition "
        "is a run after a run of the other kind (runs seen only within "
        f"{s.margin:g} s before a kill -9, and runs shorter than group_interval, which may be coalesced with the "
        "next change, count only if some receiver heard of them); notifications matched by "
        "lane, status and episode (each failure episode answers its own 5xx code, which the alert summary "
        "carries; PagerDuty resolves get theirs from the daemon's outbox entries, which a target sends in order); "
        "delay = accepted at the sink − first probe answered in the new "
        f"state; settle after the cycles: until nothing is missing plus {s.quiet:g} s, or nothing queued in the "
        f"daemon for 10 s, or {s.settle_max:g} s",
        "- duplicates are classified from the daemon's outbox table after the run: one entry accepted twice = "
        "resent (\"in flight at a kill\" when a kill -9 fell between the copies); two entries for one "
        "transition = decided twice",
        "",
        md_table(header, rows),
        "",
        md_table(pheader, prows),
        "",
    ]
    for res in results:
        notes = list(dict.fromkeys(res.notes))
        for r in res.receivers.values():
            for u in r.unexpected[:3]:
                notes.append(f"{r.receiver}: unexpected {u.status} for {u.lane} episode {u.tag}")
            for d in r.duplicates[:4]:
                gap = d.item.copies[1] - d.item.copies[0]
                notes.append(f"{r.receiver}: {d.item.lane} {d.item.status} (episode {'/'.join(map(str, sorted(d.item.tags)))}) "
                             f"accepted {d.extra + 1}× ({gap:.1f}s apart; {d.kind})")
        if notes:
            lines.append(f"**{TITLES[res.name]}**")
            lines.append("")
            lines += [f"- {note}" for note in notes]
            lines.append("")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def monitor_version(monitor_bin: str) -> str:
    out = subprocess.run([monitor_bin, "--version"], capture_output=True, text=True, timeout=60)
    version = (out.stdout.strip() or out.stderr.strip() or "?").split()[-1]
    repo = Path(__file__).resolve().parent.parent
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=repo,
                            timeout=10).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "monitor"], capture_output=True, text=True, cwd=repo,
                           timeout=10).stdout.strip()
    return f"monitor {version} (commit {commit or '?'}{' + uncommitted changes in monitor/' if dirty else ''})"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description="Fault injection: lost / duplicated / late notifications, FDs and RSS")
    p.add_argument("--scenarios", default=",".join(ALL_SCENARIOS), help=f"comma-separated subset of {','.join(ALL_SCENARIOS)}")
    p.add_argument("--quick", action="store_true", help="short phases (~2 min in all)")
    p.add_argument("--lanes", type=int, help="lanes (checks cycling fire/resolve) per scenario (default 10; quick 5)")
    p.add_argument("--duration", type=float, help="seconds of cycles per scenario (default 50; quick 14)")
    p.add_argument("--kills", type=int, help="kill -9 count in the kill scenario (default 6; quick 2)")
    p.add_argument("--outage", type=float, help="receiver outage seconds (default 20; quick 6)")
    p.add_argument("--storm", type=float, help="429 storm seconds (default 25; quick 6)")
    p.add_argument("--store-outage", type=float, help="PostgreSQL outage seconds (default 20; quick 6)")
    p.add_argument("--hang-checks", type=int, help="checks against the never-answering server (default 300; quick 100)")
    p.add_argument("--reload-every", type=float, default=0.5, help="seconds between reloads (default 0.5)")
    p.add_argument("--settle-max", type=float, help="longest wait for the last notifications (default 150; quick 60)")
    p.add_argument("--margin", type=float, default=1.0,
                   help="a probe answered this close before a kill -9 may not have been evaluated (default 1 s)")
    p.add_argument("--answer-delay", type=float, default=0.1,
                   help="kill scenario: receivers answer this long after reading a request (default 0.1 s)")
    p.add_argument("--seed", type=int)
    p.add_argument("--monitor-bin", default=str(Path(sys.executable).parent / "monitor"))
    p.add_argument("--keep", action="store_true", help="keep the work dir (configs, daemon logs, state)")
    p.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    args = p.parse_args(argv)
    args.scenario_list = [x.strip() for x in args.scenarios.split(",") if x.strip()]
    if not args.scenario_list or any(x not in ALL_SCENARIOS for x in args.scenario_list):
        p.error(f"--scenarios: choose from {', '.join(ALL_SCENARIOS)}")
    return args


async def run(args: argparse.Namespace, settings: Settings, workdir: Path, seed: int) -> list[ScenarioResult]:
    rig = Rig()
    await rig.start()
    results = []
    try:
        for name in args.scenario_list:
            print(f"[{name}] {TITLES[name]} ...", flush=True)
            h = Harness(name, settings, rig, workdir, args.monitor_bin, seed)
            res = await h.run(FAULTS[name])
            if res.error is None:
                fault_notes(h)
            results.append(res)
            for r in res.receivers.values():
                print(f"[{name}] {r.receiver}: {len(r.items)} transitions, {len(r.delivered)} delivered, "
                      f"{len(r.lost)} lost, {sum(d.extra for d in r.duplicates)} duplicated, {len(r.unexpected)} "
                      f"unexpected, p99 {fmt_s(nearest_rank(r.delays, .99))}", flush=True)
            print(f"[{name}] done in {res.wall_s:.0f}s" + (f" — {res.error}" if res.error else ""), flush=True)
    finally:
        await rig.close()
    return results


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not os.access(args.monitor_bin, os.X_OK):
        print(f"monitor binary {args.monitor_bin} not found; use --monitor-bin", file=sys.stderr)
        return 2
    settings = Settings.of(args)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1 << 30)
    workdir = Path(tempfile.mkdtemp(prefix="bench-faults-"))
    version = monitor_version(args.monitor_bin)
    started = time.monotonic()
    try:
        results = asyncio.run(run(args, settings, workdir, seed))
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    section = report(results, settings, seed, version)
    section += f"\nTotal wall time {time.monotonic() - started:.0f} s.\n"
    print(section)
    if not args.no_write:
        update_results_section("faults", section)
    bad = any(res.error or any(r.lost or r.unexpected for r in res.receivers.values())
              or any(life.how == "crash" for life in res.lives) for res in results)
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
