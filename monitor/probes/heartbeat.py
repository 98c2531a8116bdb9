"""``kind: heartbeat`` — a pushed check: jobs ``POST /api/v1/heartbeat/{name}`` when they run.

Two ways to say when a push is due:
- ``max_age: 15m`` — down when the last push is older than that;
- ``schedule: "0 3 * * *"`` (cron, with ``timezone``) and ``grace: 30m`` — down when a
  scheduled run time has passed by more than ``grace`` with no push since it.
value: seconds since the last push (since the daemon started, before the first one). A job
that never reports is therefore down after its first deadline, never silently fine.
``?status=fail`` on a push marks the check down until the next good push.

A push is authorized by the daemon's ``api_token`` or by the check's own ``push_key``
(``Authorization: Bearer <push_key>``). A push key lets a job report this one check and
nothing else, so the token that can silence alerts and reload the config need not be
handed to every cron job.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apscheduler.triggers.cron import CronTrigger
from pydantic import PrivateAttr, SecretStr, field_validator, model_validator

from monitor.core.durations import Duration
from monitor.probes.base import CheckBase, ProbeEnv
from monitor.core.results import Result


class HeartbeatCheck(CheckBase):
    kind: Literal["heartbeat"]
    max_age: Duration | None = None
    schedule: str | None = None
    timezone: str = "UTC"
    grace: Duration = 300.0
    # A secret, like api_token: never shown in the API, the status page, metrics or logs.
    push_key: SecretStr | None = None

    _cron: CronTrigger | None = PrivateAttr(default=None)

    @field_validator("push_key")
    @classmethod
    def _empty_is_unset(cls, key: SecretStr | None) -> SecretStr | None:
        # `push_key: ${BILLING_PUSH_KEY:-}` expands to "" when unset: that means "no key".
        return key if key is not None and key.get_secret_value() else None

    @model_validator(mode="after")
    def _one_rule(self) -> HeartbeatCheck:
        if (self.max_age is None) == (self.schedule is None):
            raise ValueError("set exactly one of max_age or schedule")
        if self.schedule is not None:
            try:
                zone = ZoneInfo(self.timezone)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown timezone {self.timezone!r}") from None
            try:
                self._cron = CronTrigger.from_crontab(self.schedule, timezone=zone)
            except ValueError as err:
                raise ValueError(f"invalid cron schedule {self.schedule!r}: {err}") from None
        return self

    def overdue_since(self, last: float, now: float) -> float | None:
        """The first scheduled time after ``last`` whose grace has run out by ``now``, if any."""
        if self._cron is None:
            assert self.max_age is not None
            return last + self.max_age if now - last > self.max_age else None
        after = datetime.fromtimestamp(last, timezone.utc)
        due = self._cron.get_next_fire_time(None, after)
        if due is None:
            return None
        due_ts = due.timestamp()
        if due_ts <= last:  # get_next_fire_time may return `after` itself
            due = self._cron.get_next_fire_time(due, after)
            due_ts = due.timestamp() if due is not None else float("inf")
        return due_ts if now > due_ts + self.grace else None


async def probe(check: HeartbeatCheck, deadline: float, env: ProbeEnv) -> Result:
    now = env.clock.time()
    pushed = env.heartbeats.get(check.name)
    since = pushed[0] if pushed is not None else env.started_at
    age = max(now - since, 0.0)
    detail: dict[str, object] = {"last_push": pushed[0] if pushed else None}
    if pushed is not None and pushed[1]:
        detail["last_status"] = "fail"
        return Result.failed("last heartbeat reported failure", detail=detail, value=age)
    overdue = check.overdue_since(since, now)
    if overdue is not None:
        what = "no heartbeat since the daemon started" if pushed is None else "no heartbeat"
        expected = datetime.fromtimestamp(overdue, timezone.utc).isoformat(timespec="seconds")
        return Result.failed(f"{what}: one was due by {expected} ({age:.0f}s since the last)", detail=detail, value=age)
    return Result(up=True, value=age, detail=detail)
