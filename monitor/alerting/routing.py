"""The routing tree: which routes (and so which receivers and grouping) an alert belongs to.

Alertmanager's semantics, kept exact because users bring their trees with them:

- every alert enters at the root, which matches everything;
- children are tried in order, depth first; the first child that matches takes the alert
  unless it has ``continue: true``, in which case later siblings are tried too;
- if no child matches, the node itself takes the alert;
- a child inherits ``receiver``, ``group_by``, ``group_wait``, ``group_interval`` and
  ``repeat_interval`` from its parent when it does not set them; it does *not* inherit
  ``mute_time_intervals`` / ``active_time_intervals`` (Alertmanager's actual behaviour,
  whatever older docs suggested).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace

from monitor.alerting.config import AlertingConfig, RouteConfig
from monitor.alerting.matchers import Matcher, format_matchers, quote
from monitor.alerting.muting import Muter
from monitor.alerting.time_intervals import IntervalMuter, TimeInterval

# Alertmanager's defaults, applied at the root and inherited from there.
DEFAULT_GROUP_WAIT = 30.0
DEFAULT_GROUP_INTERVAL = 300.0
DEFAULT_REPEAT_INTERVAL = 4 * 3600.0


@dataclass(frozen=True, eq=False)
class Route:
    """One node of the built tree, with every inherited option resolved."""

    receiver: str
    group_by: tuple[str, ...]
    group_by_all: bool  # `group_by: ['...']`: every label is a group label, so no grouping at all
    group_wait: float
    group_interval: float
    repeat_interval: float
    matchers: tuple[Matcher, ...]
    continue_: bool
    mute_time_intervals: tuple[str, ...]
    active_time_intervals: tuple[str, ...]
    # Alertmanager's route key: parent key + "/" + this node's matchers, e.g. `{}/{team="db"}`.
    key: str
    # The key plus each node's position among its siblings: unique even when two siblings
    # have identical matchers (a common `continue: true` fan-out). Group state must be kept
    # per `id`; `key` is what goes into the Alertmanager-compatible group key.
    id: str
    routes: tuple[Route, ...] = ()

    def matches(self, labels: Mapping[str, str]) -> bool:
        return all(m.matches(labels) for m in self.matchers)

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """The routes that take an alert with ``labels`` (empty if this node does not match)."""
        if not self.matches(labels):
            return []
        found: list[Route] = []
        for child in self.routes:
            taken = child.match(labels)
            found.extend(taken)
            if taken and not child.continue_:
                break
        return found or [self]

    def walk(self) -> Iterator[Route]:
        yield self
        for child in self.routes:
            yield from child.walk()


def build_route(config: RouteConfig) -> Route:
    """The tree for a validated root ``route:`` (see ``AlertingConfig``), with defaults applied."""
    if not config.receiver:
        raise ValueError("the root route needs a receiver")
    root_defaults = _Options(
        receiver=config.receiver,
        group_by=(),
        group_by_all=False,
        group_wait=DEFAULT_GROUP_WAIT,
        group_interval=DEFAULT_GROUP_INTERVAL,
        repeat_interval=DEFAULT_REPEAT_INTERVAL,
    )
    return _build(config, root_defaults, parent=None, index=0)


@dataclass(frozen=True)
class _Options:
    receiver: str
    group_by: tuple[str, ...]
    group_by_all: bool
    group_wait: float
    group_interval: float
    repeat_interval: float


def _build(config: RouteConfig, inherited: _Options, parent: Route | None, index: int) -> Route:
    group_by, group_by_all = inherited.group_by, inherited.group_by_all
    if config.group_by is not None:  # an explicit `group_by: []` overrides the parent too
        group_by_all = config.group_by == ["..."]
        group_by = () if group_by_all else tuple(config.group_by)
    options = _Options(
        receiver=config.receiver or inherited.receiver,
        group_by=group_by,
        group_by_all=group_by_all,
        group_wait=config.group_wait if config.group_wait is not None else inherited.group_wait,
        group_interval=config.group_interval if config.group_interval is not None else inherited.group_interval,
        repeat_interval=config.repeat_interval if config.repeat_interval is not None else inherited.repeat_interval,
    )
    # Sorted, as Alertmanager does, so the key does not depend on how the YAML lists them.
    matchers = tuple(sorted(config.all_matchers()))
    spelled = format_matchers(matchers)
    key = f"{parent.key}/{spelled}" if parent else spelled
    node_id = f"{parent.id}/{spelled}/{index}" if parent else spelled
    # Children need this node's key and id, and this (frozen) node needs its children: build
    # a childless node first and the final one from it.
    bare = Route(
        receiver=options.receiver,
        group_by=options.group_by,
        group_by_all=options.group_by_all,
        group_wait=options.group_wait,
        group_interval=options.group_interval,
        repeat_interval=options.repeat_interval,
        matchers=matchers,
        continue_=config.continue_,
        mute_time_intervals=tuple(config.mute_time_intervals),
        active_time_intervals=tuple(config.active_time_intervals),
        key=key,
        id=node_id,
    )
    children = tuple(_build(child, options, bare, i) for i, child in enumerate(config.routes))
    return replace(bare, routes=children)


def group_labels(route: Route, labels: Mapping[str, str]) -> dict[str, str]:
    """The labels that decide which group of ``route`` an alert joins: the ``group_by`` labels
    the alert has (a missing one is left out, as in Alertmanager), all of them for
    ``group_by: ['...']``, none for an empty ``group_by`` (one group for the route)."""
    if route.group_by_all:
        return dict(labels)
    return {name: labels[name] for name in route.group_by if name in labels}


def label_set_text(labels: Mapping[str, str]) -> str:
    """``{alertname="X", cluster="eu"}``: Prometheus' LabelSet spelling, sorted by name."""
    return "{" + ", ".join(f"{name}={quote(value)}" for name, value in sorted(labels.items())) + "}"


def group_key(route: Route, labels: Mapping[str, str]) -> str:
    """Alertmanager's group key, ``{route key}:{group labels}``, e.g.
    ``{}/{severity="critical"}:{alertname="ApiDown"}``. Stable across restarts and config
    reloads that keep the route's matchers, so receivers (PagerDuty dedup keys, webhook
    ``groupKey``) see the same group as the same group."""
    return f"{route.key}:{label_set_text(group_labels(route, labels))}"


class RoutingTree:
    """The built tree plus the named time intervals its routes refer to."""

    def __init__(self, root: Route, intervals: Mapping[str, TimeInterval]) -> None:
        for route in root.walk():
            for name in (*route.mute_time_intervals, *route.active_time_intervals):
                if name not in intervals:
                    raise ValueError(f"route {route.key} refers to undefined time interval {name!r}")
        self.root = root
        self.intervals = dict(intervals)
        # Resolved once: the dispatcher asks for every due group.
        self._time_muters = {
            route.id: IntervalMuter(
                mute=tuple(self.intervals[name] for name in route.mute_time_intervals),
                active=tuple(self.intervals[name] for name in route.active_time_intervals),
            )
            for route in root.walk()
        }

    @classmethod
    def from_config(cls, config: AlertingConfig) -> RoutingTree | None:
        """None when the config has no ``route:``: nothing is routed anywhere."""
        if config.route is None:
            return None
        intervals = [*config.time_intervals, *config.mute_time_intervals]
        return cls(build_route(config.route), {t.name: t for t in intervals})

    def match(self, labels: Mapping[str, str]) -> list[Route]:
        """Every route that takes an alert with ``labels``; never empty (the root catches all)."""
        return self.root.match(labels)

    def time_muter(self, route: Route) -> Muter:
        """The time stage of ``route`` (one of this tree's): its groups are held back inside
        any of its mute intervals, or outside all of its active intervals (when it has some)."""
        return self._time_muters[route.id]

    def routes(self) -> Iterator[Route]:
        return self.root.walk()
