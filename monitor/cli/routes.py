"""`monitor routes show | test`: the routing tree, and where an alert with given labels goes.

Alertmanager's `amtool config routes show | test`, on the daemon's own routing code
(:class:`monitor.alerting.routing.RoutingTree`, what the dispatcher uses), so the answer is
what the running daemon would do with the same config. `test` prints the receivers, in tree
order, comma-separated as amtool does; `--tree` adds the matched branches, `--verbose` the
group each route would put the alert in and its timers.

Exit codes: 0 printed; 1 `--verify-receivers` given and the alert goes elsewhere; 2 bad
labels, or a config that does not load or has no `route:`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from monitor.alerting.matchers import format_matchers
from monitor.alerting.routing import Route, RoutingTree, group_key, group_labels, label_set_text
from monitor.alerting.silences import parse_matcher_args
from monitor.cli.terminal import echo
from monitor.config.loader import Config
from monitor.core.durations import format_duration

EXIT_OK, EXIT_MISMATCH, EXIT_USAGE = 0, 1, 2


def add_parser(commands: Any, with_config: Callable[[argparse.ArgumentParser], None]) -> None:
    routes = commands.add_parser("routes", help="show the routing tree, or test where an alert goes")
    actions = routes.add_subparsers(dest="routes_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the routing tree")
    with_config(show)
    test = actions.add_parser(
        "test", help="print the receivers an alert with these labels reaches, in order",
        description="Print the receivers an alert with LABELs reaches, in tree order, comma-separated "
                    "(as amtool config routes test). Exit 0; 1 when --verify-receivers differs; 2 on bad input.")
    test.add_argument("labels", nargs="*", metavar="LABEL", help="NAME=VALUE (a bare first word is the alertname)")
    test.add_argument("--tree", action="store_true", help="also print the matching branches of the tree")
    test.add_argument("--verbose", "-v", action="store_true",
                      help="also print the matching branches and, per route, its group and timers")
    test.add_argument("--verify-receivers", "--verify.receivers", dest="verify", metavar="A,B",
                      help="exit 1 unless the receivers are exactly these, in this order")
    with_config(test)


def run_routes_command(config: Config, args: argparse.Namespace) -> int:
    tree = RoutingTree.from_config(config.alerting)
    if tree is None:
        echo(f"monitor: {config.path} has no `route:`: alerts reach no receiver", file=sys.stderr)
        return EXIT_USAGE
    if args.routes_command == "show":
        echo("Routing tree:")
        echo("\n".join(_render(tree.root, lambda route, parent: _describe(route, parent))))
        return EXIT_OK
    try:
        labels = parse_labels(args.labels)
    except ValueError as err:
        echo(f"monitor: {err}", file=sys.stderr)
        return EXIT_USAGE
    routes = tree.match(labels)
    receivers = ",".join(route.receiver for route in routes)
    if args.tree or args.verbose:
        echo("Matching routes:")
        echo("\n".join(_render(tree.root, _matched_slug(routes), keep=_on_path(tree.root, routes))))
        echo()
    if args.verbose:
        for route in routes:
            echo(_group_line(route, labels))
        echo()
    echo(receivers)
    if args.verify is not None and args.verify != receivers:
        echo(f"WARNING: expected receivers {args.verify}, got {receivers}", file=sys.stderr)
        return EXIT_MISMATCH
    return EXIT_OK


def parse_labels(words: list[str]) -> dict[str, str]:
    """``NAME=VALUE`` words (values may be double-quoted) into a label set; like amtool, only
    equality: an alert has values, not patterns. An empty value is an absent label."""
    labels: dict[str, str] = {}
    for matcher in parse_matcher_args(words):
        if matcher.type != "=":
            raise ValueError(f"label {matcher}: labels are NAME=VALUE (an alert's labels, not a matcher)")
        labels[matcher.name] = matcher.value
    return {name: value for name, value in labels.items() if value}


def _matched_slug(routes: list[Route]) -> Callable[[Route, Route | None], str]:
    chosen = {id(route) for route in routes}

    def slug(route: Route, parent: Route | None) -> str:
        text = _matchers(route)
        return f"{text}  receiver: {route.receiver}" if id(route) in chosen else text

    return slug


def _on_path(root: Route, routes: list[Route]) -> set[int]:
    """The routes that lead to a matched one (amtool prints only those branches)."""
    chosen = {id(route) for route in routes}
    keep: set[int] = set()

    def visit(route: Route) -> bool:
        below = [visit(child) for child in route.routes]  # every child: all must be visited
        if id(route) in chosen or any(below):
            keep.add(id(route))
            return True
        return False

    visit(root)
    return keep


def _render(root: Route, slug: Callable[[Route, Route | None], str], keep: set[int] | None = None) -> Iterator[str]:
    """amtool's tree drawing: ``.`` then ``└──`` / ``├──`` branches."""
    yield "."

    def branch(route: Route, parent: Route | None, prefix: str, last: bool) -> Iterator[str]:
        yield f"{prefix}{'└── ' if last else '├── '}{slug(route, parent)}"
        children = [c for c in route.routes if keep is None or id(c) in keep]
        inner = prefix + ("    " if last else "│   ")
        for i, child in enumerate(children):
            yield from branch(child, route, inner, i == len(children) - 1)

    yield from branch(root, None, "", True)


def _matchers(route: Route) -> str:
    return format_matchers(route.matchers) if route.matchers else "default-route"


def _describe(route: Route, parent: Route | None) -> str:
    """One line of `routes show`: matchers, continue, receiver, and the options this route sets
    or changes (the root shows them all; a child inherits the rest, which is noise to repeat)."""
    parts = [_matchers(route)]
    if route.continue_:
        parts.append("continue: true")
    parts.append(f"receiver: {route.receiver}")
    inherited = _options(parent) if parent is not None else {}
    for name, value in _options(route).items():
        # Time intervals are never inherited (monitor/alerting/routing.py): always shown.
        if inherited.get(name) != value or name.endswith("time_intervals"):
            parts.append(f"{name}: {value}")
    return "  ".join(parts)


def _options(route: Route) -> Mapping[str, str]:
    options = {
        "group_by": "[...]" if route.group_by_all else f"[{', '.join(route.group_by)}]",
        "group_wait": format_duration(route.group_wait),
        "group_interval": format_duration(route.group_interval),
        "repeat_interval": format_duration(route.repeat_interval),
    }
    if route.mute_time_intervals:
        options["mute_time_intervals"] = f"[{', '.join(route.mute_time_intervals)}]"
    if route.active_time_intervals:
        options["active_time_intervals"] = f"[{', '.join(route.active_time_intervals)}]"
    return options


def _group_line(route: Route, labels: Mapping[str, str]) -> str:
    timers = (f"group_wait {format_duration(route.group_wait)}, group_interval {format_duration(route.group_interval)},"
              f" repeat_interval {format_duration(route.repeat_interval)}")
    muted = ""
    if route.mute_time_intervals:
        muted += f"; muted during {', '.join(route.mute_time_intervals)}"
    if route.active_time_intervals:
        muted += f"; active only during {', '.join(route.active_time_intervals)}"
    return (f"{route.receiver}: route {route.key}, group {label_set_text(group_labels(route, labels))}"
            f" (key {group_key(route, labels)}); {timers}{muted}")
