"""`monitor silence add | list | expire`: manage silences on a running daemon.

Talks to the daemon's API (`/api/v1/silences`); every failure is one line on stderr.
Exit codes: 0 done, 1 daemon unreachable or it refused, 2 bad arguments (e.g. a matcher).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from typing import Any

import httpx

from monitor.alerting.silences import parse_matcher_args
from monitor.cli.daemon_url import UrlError, daemon_url
from monitor.cli.daemon_url import add_arguments as add_url_arguments
from monitor.cli.terminal import cell, echo
from monitor.core.timestamps import parse_rfc3339, rfc3339
from monitor.core.durations import parse_duration

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class CommandError(Exception):
    pass


def add_parser(commands: Any) -> None:
    """Register `silence` and its subcommands on the top-level subparsers."""
    silence = commands.add_parser("silence", help="manage silences on a running daemon")
    actions = silence.add_subparsers(dest="silence_command", required=True, metavar="ACTION")
    with_url = add_url_arguments

    def with_token(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("--token", default=os.environ.get("MONITOR_API_TOKEN"),
                         help="API token (default: $MONITOR_API_TOKEN)")

    add = actions.add_parser("add", help="mute alerts matching all MATCHERs; prints the new id")
    add.add_argument("matchers", nargs="+", metavar="MATCHER",
                     help="NAME=VALUE, NAME!=VALUE, NAME=~REGEX, NAME!~REGEX; a bare first word is the alertname")
    add.add_argument("--duration", "-d", default="1h", help="how long, e.g. 30m, 2h (default 1h)")
    add.add_argument("--comment", "-m", required=True, help="why (required)")
    add.add_argument("--author", "-a", default=os.environ.get("USER") or "unknown",
                     help="who (default: $USER)")
    with_url(add)
    with_token(add)

    listing = actions.add_parser("list", help="show silences as a table")
    with_url(listing)

    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id")
    with_url(expire)
    with_token(expire)


def run_silence_command(args: argparse.Namespace) -> int:
    try:
        args.url = daemon_url(args.url, args.config)
    except UrlError as err:
        echo(f"monitor: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        if args.silence_command == "add":
            return _add(args)
        if args.silence_command == "list":
            return _list(args)
        return _expire(args)
    except CommandError as err:
        echo(f"monitor: {err}", file=sys.stderr)
        return EXIT_FAILED


def _add(args: argparse.Namespace) -> int:
    try:
        matchers = parse_matcher_args(args.matchers)
    except ValueError as err:
        echo(f"monitor: {err}", file=sys.stderr)
        return EXIT_USAGE
    try:
        duration = parse_duration(args.duration)
    except ValueError as err:
        echo(f"monitor: --duration: {err}", file=sys.stderr)
        return EXIT_USAGE
    if duration <= 0:
        print("monitor: --duration: must be positive", file=sys.stderr)
        return EXIT_USAGE
    now = time.time()
    body = {
        "matchers": [m.to_api() for m in matchers],
        "startsAt": rfc3339(now, fixed_millis=True),
        "endsAt": rfc3339(now + duration, fixed_millis=True),
        "createdBy": args.author,
        "comment": args.comment,
    }
    data = _request("POST", args.url, "/api/v1/silences", token=args.token, body=body)
    echo(str(data["silenceID"]))
    return EXIT_OK


def _list(args: argparse.Namespace) -> int:
    data = _request("GET", args.url, "/api/v1/silences")
    echo(render(data))
    return EXIT_OK


def _expire(args: argparse.Namespace) -> int:
    _request("DELETE", args.url, f"/api/v1/silences/{args.id}", token=args.token)
    echo(f"expired {args.id}")
    return EXIT_OK


def _request(method: str, url: str, path: str, *, token: str | None = None,
             body: object = None, timeout: float = 5.0) -> Any:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        response = httpx.request(method, f"{url.rstrip('/')}{path}", headers=headers, json=body,
                                 timeout=timeout)
    except httpx.HTTPError as err:
        raise CommandError(f"cannot reach a daemon at {url}: {err}") from None
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        detail = data.get("error") if isinstance(data, dict) else None
        message = detail or response.reason_phrase
        if response.status_code in (401, 403) and not token and method != "GET":
            message = f"{message} (no token given: set $MONITOR_API_TOKEN or pass --token)"
        raise CommandError(f"{url} answered {response.status_code}: {' '.join(str(message).split())}")
    if data is None:
        raise CommandError(f"{url} answered with something that is not JSON")
    return data


def render(silences: list[dict[str, Any]]) -> str:
    rows = [("ID", "MATCHERS", "STATE", "ENDS", "CREATED BY", "COMMENT")]
    for s in silences:
        matchers = " ".join(_matcher_text(m) for m in s.get("matchers", []))
        rows.append((str(s.get("id", "")), matchers, str(s.get("status", {}).get("state", "")),
                     _short_time(str(s.get("endsAt", ""))), _one_line(str(s.get("createdBy", ""))),
                     _one_line(str(s.get("comment", "")))[:60]))
    # Comments, authors and matcher values are whatever an API caller sent: escape them.
    shown = [tuple(cell(text) for text in row) for row in rows]
    widths = [max(len(row[i]) for row in shown) for i in range(len(shown[0]))]
    return "\n".join("  ".join(text.ljust(w) for text, w in zip(row, widths)).rstrip() for row in shown)


def _matcher_text(m: dict[str, Any]) -> str:
    op = ("=~" if m.get("isRegex") else "=") if m.get("isEqual", True) else ("!~" if m.get("isRegex") else "!=")
    value = str(m.get("value", ""))
    plain = value and all(c.isalnum() or c in "_-.:/" for c in value)
    return f"{m.get('name')}{op}{value if plain else _quote(value)}"


def _quote(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)


def _short_time(text: str) -> str:
    try:
        ts = parse_rfc3339(text)
    except ValueError:
        return text
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(ts))


def _one_line(text: str) -> str:
    return " ".join(text.split())
