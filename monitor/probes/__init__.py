"""The probe registry: one module per kind, one table from `kind:` to (config model, probe).

Adding a kind touches two places: its module, and the table below.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Union

from pydantic import Field

from monitor.probes import (
    cloudwatch, command, disk, dns, ecs, file, heartbeat, http, metrics, mysql, postgres, prometheus, rabbitmq, redis,
    s3, secretsmanager, ses, sqs, stripe, tcp, tls,
)
from monitor.probes.base import CheckBase, Probe, ProbeEnv

PROBES: dict[str, tuple[type[CheckBase], Probe]] = {
    "http": (http.HttpCheck, http.probe),
    "tcp": (tcp.TcpCheck, tcp.probe),
    "postgres": (postgres.PostgresCheck, postgres.probe),
    "redis": (redis.RedisCheck, redis.probe),
    "rabbitmq": (rabbitmq.RabbitmqCheck, rabbitmq.probe),
    "mysql": (mysql.MysqlCheck, mysql.probe),
    "disk": (disk.DiskCheck, disk.probe),
    "heartbeat": (heartbeat.HeartbeatCheck, heartbeat.probe),
    "stripe": (stripe.StripeCheck, stripe.probe),
    "dns": (dns.DnsCheck, dns.probe),
    "tls": (tls.TlsCheck, tls.probe),
    "command": (command.CommandCheck, command.probe),
    "file": (file.FileCheck, file.probe),
    "metrics": (metrics.MetricsCheck, metrics.probe),
    "prometheus": (prometheus.PrometheusCheck, prometheus.probe),
    "cloudwatch": (cloudwatch.CloudwatchCheck, cloudwatch.probe),
    "sqs": (sqs.SqsCheck, sqs.probe),
    "s3": (s3.S3Check, s3.probe),
    "secretsmanager": (secretsmanager.SecretsmanagerCheck, secretsmanager.probe),
    "ecs": (ecs.EcsCheck, ecs.probe),
    "ses": (ses.SesCheck, ses.probe),
}

# The unit of each kind's `value` (monitor/core/units.py), for the status page, templates and
# notifications; a check's own `unit:` wins. A callable picks it from the check's fields.
VALUE_UNITS: dict[str, str | Callable[[Any], str]] = {
    "http": "status",
    "tcp": "seconds",
    "postgres": "",  # the first column of the user's query: `unit:` says what it is
    "redis": lambda check: "" if check.info is not None else "count",  # PING, queue, BullMQ: counts
    "rabbitmq": "count",
    "mysql": "",
    "disk": "percent",
    "heartbeat": "seconds",
    "stripe": "count",
    "dns": "count",
    "tls": "days",
    "command": "",  # perfdata carries its own UOM (detail.perfdata)
    "file": "seconds",
    "metrics": "",  # whatever the query computes: `unit:` says (ratio, seconds...)
    "prometheus": "",
    "cloudwatch": "",  # the metric's own unit (Percent, Count...): `unit:` says
    "sqs": "count",
    "s3": lambda check: "seconds" if check.key else "",  # object age; 1 for a reachable bucket
    "secretsmanager": "days",
    "ecs": "count",
    "ses": "",  # 1 enabled, 0 disabled
}


def value_unit(check: CheckBase) -> str:
    """The unit of ``check``'s value: its ``unit:``, else its kind's (VALUE_UNITS), else none."""
    if check.unit is not None:
        return check.unit
    unit = VALUE_UNITS.get(check.kind, "")
    return unit if isinstance(unit, str) else unit(check)


# Built from the table, so a new kind needs no edit here; typed loosely because a Union
# made at run time is not a static type (loaded checks are used as CheckBase).
CheckConfig: Any = Annotated[
    Union[tuple(model for model, _ in PROBES.values())],
    Field(discriminator="kind"),
]

__all__ = ["PROBES", "VALUE_UNITS", "CheckBase", "CheckConfig", "Probe", "ProbeEnv", "value_unit"]
