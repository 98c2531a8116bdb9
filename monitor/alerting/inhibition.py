"""Inhibition: a firing cause mutes its symptoms (Alertmanager's ``inhibit_rules``).

While an alert matching a rule's ``source_matchers`` fires, alerts matching its
``target_matchers`` that carry the same values for every ``equal`` label are not notified.
`DatabaseDown{env="prod"}` firing mutes `ApiHealthFailing{env="prod"}`, not the staging one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
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
    """The inhibit rules. Inhibition depends on which alerts fire, so the mute stage itself
    is made per flush: ``with_sources(firing)``."""

    def __init__(self, rules: Sequence[InhibitRule]) -> None:
        self._rules = tuple(rules)

    def with_sources(self, firing_alerts: Iterable[Mapping[str, str]]) -> Inhibition:
        """The inhibition stage while ``firing_alerts`` (label sets) fire.

        The caller leaves out resolved alerts, since a cause that recovered explains nothing
        any more.
        """
        firing = tuple(firing_alerts)
        # Each rule's sources are found once here rather than for every alert asked about.
        return Inhibition(tuple((rule, tuple(s for s in firing if rule.is_source(s))) for rule in self._rules))


class Inhibition:
    """A :class:`monitor.alerting.muting.Muter`: mutes what the given firing alerts explain."""

    def __init__(self, sources: tuple[tuple[InhibitRule, tuple[Mapping[str, str], ...]], ...]) -> None:
        self._sources = sources  # each rule with the firing alerts that match its source side

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """Whether an alert with ``labels`` is muted by one of the firing alerts. ``now`` plays
        no part: what fires at this flush is already what counts."""
        for rule, sources in self._sources:
            if not rule.is_target(labels):
                continue
            # An alert matching both sides must not mute itself, and two such alerts must
            # not mute each other either, or nobody would hear of either one. Alertmanager's
            # rule: when the target is two-sided, two-sided sources are skipped.
            two_sided = rule.is_source(labels)
            for source in sources:
                if two_sided and rule.is_target(source):
                    continue
                if rule.agree(source, labels):
                    return True
        return False
