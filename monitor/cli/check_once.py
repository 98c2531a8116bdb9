"""`monitor check NAME`: one run, printed for a person (or as JSON), plus the rules it trips."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from typing import Any

from monitor.cli import metrics_debug
from monitor.cli.terminal import echo
from monitor.config.loader import Config
from monitor.probes import ProbeEnv
from monitor.core.results import Result
from monitor.core.expressions import ExpressionError
from monitor.core.secrets import redact, scrub, scrub_deep
from monitor.probes.heartbeat import HeartbeatCheck
from monitor.store import StoreError, open_store
from monitor.store.sqlite import MEMORY, SqliteStore
from monitor.history import History
from monitor.probes import CheckBase
from monitor.probes.metrics import MetricsCheck
from monitor.rules.functions import WINDOW_FUNCTIONS, NoData, Reads, lacks_value, rule_functions, variables
from monitor.rules.model import Rule
from monitor.scheduling.runner import run_check


def _trip(rule: Rule, result: Result, check: CheckBase) -> dict[str, Any]:
    """Would ``rule`` hold on this one result? Window functions see only this run, and
    `for:` is not applied: this answers "is the condition true now"."""
    if rule.uses_slo:
        return {"alert": rule.alert, "expr": rule.expr, "fires": None,
                "note": "reads SLO counts, which only the running daemon has"}
    history = History(1)
    history.add(result)
    reads = Reads.of(rule.expression.program)
    labels = {**check.labels, "check": check.name}
    functions = rule_functions(reads.functions, history, result.at)
    trip: dict[str, Any] = {"alert": rule.alert, "expr": rule.expr}
    if result.series:  # one alert per series: say for which series it would fire
        verdicts = [(s, _holds(rule, reads.scope({**variables(result, {**labels, **s.label_dict()}, result.at),
                                                  "value": s.value}, functions)))
                    for s in result.series]
        firing = [s for s, (fires, _) in verdicts if fires]
        trip["fires"] = bool(firing)
        shown = ", ".join("{" + ",".join(f'{k}="{v}"' for k, v in s.labels) + "}" for s in firing[:5])
        trip["note"] = f"{len(firing)} of {len(verdicts)} series" + (f": {shown}" if shown else "") + (
            " …" if len(firing) > 5 else "")
        return trip
    scope = reads.scope(variables(result, labels, result.at), functions)
    trip["fires"], note = _holds(rule, scope)
    if note is not None:
        trip["note"] = note
    if reads.functions & set(WINDOW_FUNCTIONS) and "note" not in trip:
        trip["note"] = "window functions saw only this run"
    return trip


def _holds(rule: Rule, scope: dict[str, Any]) -> tuple[bool | None, str | None]:
    if lacks_value(scope):
        return False, "the result has no value (an empty query result): rules on value do not hold"
    try:
        return rule.expression.evaluate(scope) is True, None
    except NoData as err:
        return False, str(err)
    except (ExpressionError, ValueError) as err:
        return None, f"error: {err}"


async def saved_heartbeats(state: str) -> dict[str, tuple[float, bool]]:
    """The last push of each heartbeat check in the state store ``state``; nothing when it is
    a SQLite file that does not exist (a daemon never ran there): it is not created."""
    store = open_store(state)
    if isinstance(store, SqliteStore) and (store.path == MEMORY or not os.path.exists(store.path)):
        return {}
    await store.open()
    try:
        return await store.load_heartbeats()
    finally:
        await store.close()


def store_name(state: str) -> str:
    """The store as a person can find it: a SQLite file's absolute path (a relative one is
    relative to the working directory), else the URL without its credentials."""
    try:
        store = open_store(state)
    except StoreError:
        return redact(state)
    return store.path if isinstance(store, SqliteStore) else redact(state)


def run_check_command(config: Config, name: str, as_json: bool) -> int:
    check = config.check(name)
    if check is None:
        known = ", ".join(c.name for c in config.checks) or "none"
        echo(f"monitor: no check named {name!r} (known: {known})", file=sys.stderr)
        return 2

    async def once() -> tuple[Result, list[str], dict[str, Any]]:
        env = ProbeEnv()
        try:
            if isinstance(check, HeartbeatCheck):
                # A heartbeat's result is the pushes the daemon saved, not anything here.
                pushes = await saved_heartbeats(config.settings.state)
                if name not in pushes:
                    return Result.failed(f"no heartbeat saved in the state store (global.state: {store_name(config.settings.state)}):"
                                         " none pushed yet, or the daemon uses another store", value=None), [], {}
                env.heartbeats.update(pushes)
            result = await run_check(check, env)
            if isinstance(check, MetricsCheck):  # the series read and the query's result
                return await metrics_debug.describe(check, env, result)
            return result, [], {}
        finally:
            await env.close()

    try:
        result, more_lines, more_json = asyncio.run(once())
    except StoreError as err:
        echo(f"monitor: cannot read the state store {redact(config.settings.state)}: {scrub(str(err))}", file=sys.stderr)
        return 2
    trips = [_trip(loaded.rule, result, check) for loaded in config.rules_for(check)]

    where = config.check_locations.get(name)  # where to go and edit it
    # The output lands in terminals and CI logs: the configured secrets come out of what the
    # target answered (an echoed header, a body), and control characters are escaped.
    detail = scrub_deep(json.loads(json.dumps(result.detail, default=str)))
    error = scrub(result.error) if result.error else None
    trips = scrub_deep(trips)
    if as_json:
        # json.dumps escapes every control character but DEL; a JSON string may spell it too.
        echo(json.dumps({"check": name, "defined_at": str(where) if where else None, "up": result.up, "value": result.value, "latency": result.latency,
                         "outcome": result.outcome.value, "error": error, "detail": detail,
                         "rules": trips, **scrub_deep(more_json)}, indent=2, default=str).replace("\x7f", "\\u007f"))
    else:
        echo(f"check    {name} ({check.kind})")
        if where is not None:
            echo(f"defined  {where}")
        echo(f"result   {'OK' if result.up else 'FAILING'} ({result.outcome.value})")
        echo(f"value    {result.value if result.value is not None else '-'}")
        echo(f"latency  {result.latency * 1000:.1f} ms")
        echo(f"error    {error or '-'}")
        echo("detail   " + json.dumps(detail, default=str)[:2000])
        for line in more_lines:
            echo(scrub(line))
        for trip in trips:
            verdict = {True: "WOULD FIRE", False: "ok", None: "?"}[trip["fires"]]
            note = f"  ({trip['note']})" if "note" in trip else ""
            echo(f"rule     {trip['alert']}: {verdict}  [{trip['expr']}]{note}")
    return 0 if result.up else 1
