"""Muting: the stages of the notification path that keep quiet on purpose.

Alertmanager's notification pipeline is a list of small stages; the ones that mute all
answer one question, "is this held back right now?", so here they share one shape and the
dispatcher applies them all the same way:

- silences (:class:`monitor.alerting.silences.SilenceBook`): an alert is muted while an
  active silence matches its labels;
- inhibition (:class:`monitor.alerting.inhibition.Inhibition`): an alert is muted while a
  firing alert explains it. Which alerts fire changes from one flush to the next, so the
  dispatcher makes one for each flush from what fires then (``Inhibitor.with_sources``);
- time intervals (:class:`monitor.alerting.time_intervals.IntervalMuter`): a route's
  ``mute_time_intervals`` / ``active_time_intervals``. They belong to a route, not to
  labels, so the dispatcher asks the muter of each group's route with the group's labels,
  and a muted group is held back whole (see ``Dispatcher.due``).

Grouping stays in the dispatcher and retries in the outbox: those are not mutes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol


class Muter(Protocol):
    """One mute stage."""

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """Whether an alert (or a group, for a route's time muter) with ``labels`` is held
        back at unix time ``now``."""
        ...


def muted(muters: Iterable[Muter], labels: Mapping[str, str], now: float) -> bool:
    """Whether any of ``muters`` holds back ``labels`` at ``now``."""
    return any(muter.mutes(labels, now) for muter in muters)
