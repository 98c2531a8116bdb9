"""Inhibition: a firing cause mutes its symptoms (Alertmanager's ``inhibit_rules``).

While an alert matching a rule's ``source_matchers`` fires, alerts matching its
``target_matchers`` that carry the same values for every ``equal`` label are not notified.
`DatabaseDown{env="prod"}` firing mutes `ApiHealthFailing{env="prod"}`, not the staging one.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from monitor.alerting.matchers import Matcher


@dataclass(frozen=True)
class InhibitRule:
    source_matchers: Sequence[Matcher]
    target_matchers: Sequence[Matcher]
    equal: Sequence[str] = ()

    def __post_init__(self) -> None:
        # Tuples: rules are shared by every dispatch and must not change under it.
        object.__setattr__(self, "source_matchers", tuple(self.source_matchers))
        object.__setattr__(self, "target_matchers", tuple(self.target_matchers))
        object.__setattr__(self, "equal", tuple(self.equal))

    def is_source(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.source_matchers)

    def is_target(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.target_matchers)

    def agree(self, source: Mapping[str, str], target: Mapping[str, str]) -> bool:
        # Missing reads as "" on both sides (Prometheus' rule), so two alerts that both lack
        # an `equal` label agree on it, as in Alertmanager.
        return all(source.get(name, "") == target.get(name, "") for name in self.equal)


class Inhibitor:
    """The inhibition stage of the notification path: one question, one method."""

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self._rules = tuple(rules)

    def inhibited(self, target_labels: Mapping[str, str], firing_alerts: Sequence[Mapping[str, str]]) -> bool:
        """Whether an alert with ``target_labels`` is muted by one of ``firing_alerts``.

        ``firing_alerts`` are the label sets of alerts firing now; the caller leaves out
        resolved ones, since a cause that recovered explains nothing any more.
        """
        for rule in self._rules:
            if not rule.is_target(target_labels):
                continue
            # An alert matching both sides must not mute itself, and two such alerts must
            # not mute each other either, or nobody would hear of either one. Alertmanager's
            # rule: when the target is two-sided, two-sided sources are skipped.
            two_sided = rule.is_source(target_labels)
            for source in firing_alerts:
                if not rule.is_source(source):
                    continue
                if two_sided and rule.is_target(source):
                    continue
                if rule.agree(source, target_labels):
                    return True
        return False
