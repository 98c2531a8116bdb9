"""`monitor check NAME`: one run, printed for a person (or as JSON), plus the rules it trips."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

from monitor.config.loader import Config
from monitor.probes import ProbeEnv
from monitor.results import Result
from monitor.rules.functions import WINDOW_FUNCTIONS
from monitor.expressions import ExpressionError
from monitor.scheduling.runner import run_check


def instant_variables(result: Result, labels: dict[str, str]) -> dict[str, Any]:
    """What a rule sees of one result (window functions need history, which one run lacks)."""
    return {
        "up": result.up,
        "value": result.value if result.value is not None else 0.0,
        "latency": result.latency,
        "status": result.detail.get("status", 0),
        "body": result.detail.get("body", {}),
        "detail": result.detail,
        "labels": labels,
        "error": result.error or "",
        "age": 0.0,
    }


def run_check_command(config: Config, name: str, as_json: bool) -> int:
    check = config.check(name)
    if check is None:
        known = ", ".join(c.name for c in config.checks) or "none"
        print(f"monitor: no check named {name!r} (known: {known})", file=sys.stderr)
        return 2

    async def once() -> Result:
        env = ProbeEnv()
        try:
            return await run_check(check, env)
        finally:
            await env.close()

    result = asyncio.run(once())
    trips: list[dict[str, Any]] = []
    variables = instant_variables(result, {**check.labels, "check": check.name})
    for loaded in config.rules_for(check):
        rule = loaded.rule
        used = set(rule.expression.program.functions()) & set(WINDOW_FUNCTIONS)
        if used:
            trips.append({"alert": rule.alert, "expr": rule.expr, "fires": None, "note": "needs history: " + ", ".join(sorted(used))})
            continue
        try:
            fires = rule.expression.evaluate(variables) is True
            trips.append({"alert": rule.alert, "expr": rule.expr, "fires": fires})
        except ExpressionError as err:
            trips.append({"alert": rule.alert, "expr": rule.expr, "fires": None, "note": f"error: {err}"})

    if as_json:
        print(json.dumps({"check": name, "up": result.up, "value": result.value, "latency": result.latency,
                          "outcome": result.outcome.value, "error": result.error, "detail": result.detail,
                          "rules": trips}, indent=2, default=str))
    else:
        print(f"check    {name} ({check.kind})")
        print(f"result   {'OK' if result.up else 'FAILING'} ({result.outcome.value})")
        print(f"value    {result.value if result.value is not None else '-'}")
        print(f"latency  {result.latency * 1000:.1f} ms")
        print(f"error    {result.error or '-'}")
        print("detail   " + json.dumps(result.detail, default=str)[:2000])
        for trip in trips:
            verdict = {True: "WOULD FIRE", False: "ok", None: "?"}[trip["fires"]]
            note = f"  ({trip['note']})" if "note" in trip else ""
            print(f"rule     {trip['alert']}: {verdict}  [{trip['expr']}]{note}")
    return 0 if result.up else 1
