"""``kind: ses`` — Amazon SES may send mail from this account and region.

value: 1 when account-level sending is enabled, else 0 (SES pauses sending by itself when
the bounce or complaint rate gets too high). detail: ``sent_last_24h``, ``max_24h`` (the
sending quota; -1 means unlimited), ``max_send_rate`` (per second), ``enforcement_status``
(HEALTHY, PROBATION, SHUTDOWN) and ``production_access`` (false: still in the sandbox).
One SESv2 ``GetAccount`` call, which answers all of these at once (SES v1 needs two,
``GetAccountSendingEnabled`` and ``GetSendQuota``). Down when sending is disabled or the
call fails.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from monitor.aws.calls import call
from monitor.aws.model import AwsError
from monitor.core.results import Result
from monitor.probes.aws_common import AwsCheck, failed, time_left
from monitor.probes.base import ProbeEnv


class SesCheck(AwsCheck):
    kind: Literal["ses"]


async def probe(check: SesCheck, deadline: float, env: ProbeEnv) -> Result:
    started = time.perf_counter()
    try:
        answer = await call(check.target("sesv2"), "get_account", time_left(deadline))
    except AwsError as err:
        return failed(err, started)
    enabled = answer.get("SendingEnabled")
    quota = answer.get("SendQuota") or {}
    detail: dict[str, Any] = {
        "sent_last_24h": _number(quota.get("SentLast24Hours")),
        "max_24h": _number(quota.get("Max24HourSend")),
        "max_send_rate": _number(quota.get("MaxSendRate")),
        "enforcement_status": answer.get("EnforcementStatus"),
        "production_access": answer.get("ProductionAccessEnabled"),
    }
    latency = time.perf_counter() - started
    if not isinstance(enabled, bool):
        return Result.failed("malformed GetAccount answer: no SendingEnabled", latency, detail=detail)
    if not enabled:
        status = f" (enforcement status {detail['enforcement_status']})" if detail["enforcement_status"] else ""
        return Result.failed(f"SES sending is disabled for the account in {check.region}{status}", latency,
                             detail=detail, value=0.0)
    return Result(up=True, value=1.0, latency=latency, detail=detail)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
