"""The probe registry: one module per kind, one table from `kind:` to (config model, probe).

Adding a kind touches two places: its module, and the table below.
"""

from __future__ import annotations

from typing import Annotated, Any, Union

from pydantic import Field

from monitor.probes import command, disk, dns, file, heartbeat, http, mysql, postgres, rabbitmq, redis, stripe, tcp, tls
from monitor.probes import cloudwatch, ecs, s3, secretsmanager, ses, sqs
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
    "cloudwatch": (cloudwatch.CloudwatchCheck, cloudwatch.probe),
    "sqs": (sqs.SqsCheck, sqs.probe),
    "s3": (s3.S3Check, s3.probe),
    "secretsmanager": (secretsmanager.SecretsmanagerCheck, secretsmanager.probe),
    "ecs": (ecs.EcsCheck, ecs.probe),
    "ses": (ses.SesCheck, ses.probe),
}

# Built from the table, so a new kind needs no edit here; typed loosely because a Union
# made at run time is not a static type (loaded checks are used as CheckBase).
CheckConfig: Any = Annotated[
    Union[tuple(model for model, _ in PROBES.values())],
    Field(discriminator="kind"),
]

__all__ = ["PROBES", "CheckBase", "CheckConfig", "Probe", "ProbeEnv"]
