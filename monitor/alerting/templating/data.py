"""Alertmanager's notification data model (its ``template.Data``), built from a notification.

| name | Go type | what |
|---|---|---|
| ``.Receiver`` | string | the receiver's name, regex-quoted as Alertmanager does (``a.b`` is ``a\\.b``) |
| ``.Status`` | string | ``firing`` while any alert of the message fires, else ``resolved`` |
| ``.Alerts`` | ``Alerts`` | the alerts; ``.Alerts.Firing`` and ``.Alerts.Resolved`` filter them |
| ``.GroupLabels``, ``.CommonLabels``, ``.CommonAnnotations`` | ``KV`` | label maps |
| ``.ExternalURL`` | string | ``global.external_url`` |

Each alert: ``.Status``, ``.Labels``, ``.Annotations`` (KV), ``.StartsAt``, ``.EndsAt``
(time.Time; a firing alert's ``.EndsAt`` is Go's zero time), ``.GeneratorURL``,
``.Fingerprint``. A KV has ``.SortedPairs`` (``alertname`` first, then by name),
``.Names``, ``.Values``, ``.Remove``; pairs have ``.Name`` and ``.Value``; ``.Names`` and
``.Values`` lists have ``.Join``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, ClassVar

from monitor.alerting.model import Notification
from monitor.alerting.templating.gotime import GoTime
from monitor.alerting.templating.values import KV, ExecError, GoList, GoStruct

_QUOTE_META = re.compile(r"([\\.+*?()|\[\]{}^$])")


class Pair(GoStruct):
    GO_TYPE = "template.Pair"
    FIELDS = ("Name", "Value")

    def __init__(self, name: str, value: str) -> None:
        self.Name = name
        self.Value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Pair) and (self.Name, self.Value) == (other.Name, other.Value)

    def __hash__(self) -> int:
        return hash((self.Name, self.Value))


def _join(strings: list[str], sep: Any) -> str:
    if not isinstance(sep, str):
        raise ExecError("wrong type for value; expected string")
    return sep.join(strings)


class Strings(GoList):
    """``template.Strings``: ``.Names`` and ``.Values`` results, with ``.Join``."""

    METHODS = {"Join": _join}

    def __init__(self, items: list[str]) -> None:
        super().__init__(items, "template.Strings")


class Pairs(GoList):
    """``template.Pairs``: what ``.SortedPairs`` returns."""

    METHODS = {
        "Names": lambda ps: Strings([p.Name for p in ps]),
        "Values": lambda ps: Strings([p.Value for p in ps]),
        "String": lambda ps: ", ".join(f"{p.Name}={p.Value}" for p in ps),
    }

    def __init__(self, items: list[Pair]) -> None:
        super().__init__(items, "template.Pairs")


def sorted_pairs(kv: Mapping[str, str]) -> Pairs:
    names = sorted(k for k in kv if k != "alertname")
    if "alertname" in kv:
        names.insert(0, "alertname")
    return Pairs([Pair(name, kv[name]) for name in names])


def _remove(kv: Mapping[str, str], keys: Any) -> KV:
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ExecError("wrong type for value; expected []string")
    return KV({k: v for k, v in kv.items() if k not in keys})


KV.METHODS = {
    "SortedPairs": sorted_pairs,
    "Remove": _remove,
    "Names": lambda kv: Pairs.METHODS["Names"](sorted_pairs(kv)),
    "Values": lambda kv: Pairs.METHODS["Values"](sorted_pairs(kv)),
    "String": lambda kv: Pairs.METHODS["String"](sorted_pairs(kv)),
}


class AlertData(GoStruct):
    """One alert (Alertmanager's ``template.Alert``)."""

    GO_TYPE = "template.Alert"
    FIELDS = ("Status", "Labels", "Annotations", "StartsAt", "EndsAt", "GeneratorURL", "Fingerprint")
    JSON: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Status", "status"), ("Labels", "labels"), ("Annotations", "annotations"), ("StartsAt", "startsAt"),
        ("EndsAt", "endsAt"), ("GeneratorURL", "generatorURL"), ("Fingerprint", "fingerprint"))

    def __init__(self, status: str, labels: KV, annotations: KV, starts_at: GoTime, ends_at: GoTime,
                 generator_url: str, fingerprint: str) -> None:
        self.Status = status
        self.Labels = labels
        self.Annotations = annotations
        self.StartsAt = starts_at
        self.EndsAt = ends_at
        self.GeneratorURL = generator_url
        self.Fingerprint = fingerprint


class Alerts(GoList):
    """``template.Alerts``: ``.Firing`` and ``.Resolved`` return plain ``[]template.Alert``."""

    METHODS = {
        "Firing": lambda alerts: GoList([a for a in alerts if a.Status == "firing"], "[]template.Alert"),
        "Resolved": lambda alerts: GoList([a for a in alerts if a.Status == "resolved"], "[]template.Alert"),
    }

    def __init__(self, items: list[AlertData]) -> None:
        super().__init__(items, "template.Alerts")


class Data(GoStruct):
    """What every notification template runs over (Alertmanager's ``*template.Data``)."""

    GO_TYPE = "template.Data"
    POINTER = True
    FIELDS = ("Receiver", "Status", "Alerts", "GroupLabels", "CommonLabels", "CommonAnnotations", "ExternalURL")
    JSON: ClassVar[tuple[tuple[str, str], ...]] = (
        ("Receiver", "receiver"), ("Status", "status"), ("Alerts", "alerts"), ("GroupLabels", "groupLabels"),
        ("CommonLabels", "commonLabels"), ("CommonAnnotations", "commonAnnotations"), ("ExternalURL", "externalURL"))

    def __init__(self, receiver: str, status: str, alerts: list[AlertData], group_labels: Mapping[str, str],
                 common_labels: Mapping[str, str], common_annotations: Mapping[str, str], external_url: str) -> None:
        self.Receiver = receiver
        self.Status = status
        self.Alerts = Alerts(alerts)
        self.GroupLabels = KV(group_labels)
        self.CommonLabels = KV(common_labels)
        self.CommonAnnotations = KV(common_annotations)
        self.ExternalURL = external_url


def template_data(notification: Notification) -> Data:
    """The data Alertmanager would give templates for this notification."""
    alerts = [
        AlertData(
            status=alert.status,
            labels=KV(alert.labels),
            annotations=KV(alert.annotations),
            starts_at=GoTime.from_unix(alert.starts_at),
            ends_at=GoTime.from_unix(alert.ends_at) if alert.ends_at is not None else GoTime.zero(),
            generator_url=alert.generator_url,
            fingerprint=alert.fingerprint,
        )
        for alert in notification.alerts
    ]
    return Data(
        receiver=_QUOTE_META.sub(r"\\\1", notification.receiver),
        status=notification.status,
        alerts=alerts,
        group_labels=notification.group_labels,
        common_labels=notification.common_labels,
        common_annotations=notification.common_annotations,
        external_url=notification.external_url,
    )
