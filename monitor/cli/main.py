"""`monitor run | validate | check | status | silence | notify-test`. Bad input gives one line, never a traceback."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

from monitor import __version__
from monitor.config.errors import ConfigError
from monitor.config.loader import Config, load_config
from monitor.daemon import Daemon, StartError, default_config_path
from monitor.cli.logs import configure_logging
from monitor.cli.terminal import echo

EXIT_OK, EXIT_FAILING, EXIT_CONFIG = 0, 1, 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="monitor", description="Health-monitoring and alerting daemon.")
    parser.add_argument("--version", action="version", version=f"monitor {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def with_config(sub: argparse.ArgumentParser) -> None:
        sub.add_argument("-c", "--config", help="main config file (default: $MONITOR_CONFIG, ./monitor.yaml, or the shipped one)")

    with_config(commands.add_parser("run", help="run the daemon"))
    validate = commands.add_parser("validate", help="check all config, rules and templates")
    validate.add_argument("--strict", action="store_true",
                          help="also fail (exit 2) on warnings: options accepted but without effect here")
    with_config(validate)
    check = commands.add_parser("check", help="run one check once and print its result")
    check.add_argument("name")
    check.add_argument("--json", action="store_true", help="print the result as JSON")
    with_config(check)
    from monitor.cli.daemon_url import add_arguments as add_url_arguments

    add_url_arguments(commands.add_parser("status", help="show a running daemon's checks, alerts and silences"))
    from monitor.cli.notify_test import add_parser as add_notify_test_parser
    from monitor.cli.silence import add_parser as add_silence_parser

    add_silence_parser(commands)
    from monitor.cli.routes import add_parser as add_routes_parser

    add_routes_parser(commands, with_config)
    with_config(add_notify_test_parser(commands))
    return parser


def _load(args: argparse.Namespace) -> Config:
    path = Path(args.config) if args.config else default_config_path(os.environ.get("MONITOR_CONFIG"))
    # validate prints the warnings itself; everyone else logs them.
    return load_config(path, log_warnings=args.command != "validate")


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except BrokenPipeError:
        # `monitor check x | head`: the reader left; that is not an error worth a traceback.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "status":  # talks to a running daemon; needs no config
        from monitor.cli.daemon_url import UrlError, daemon_url
        from monitor.cli.status import run_status_command

        try:
            url = daemon_url(args.url, args.config)
        except UrlError as err:
            echo(f"monitor: {err}", file=sys.stderr)
            return EXIT_CONFIG
        return run_status_command(url)
    if args.command == "silence":  # likewise
        from monitor.cli.silence import run_silence_command

        return run_silence_command(args)
    try:
        config = _load(args)
    except ConfigError as err:
        for problem in err.problems:
            echo(str(problem), file=sys.stderr)  # a problem may quote the file's own text
        return EXIT_CONFIG
    if args.command == "validate":
        for warning in config.warnings:
            echo(f"{warning.file}:{warning.line}: warning: {warning.message}", file=sys.stderr)
        if args.strict and config.warnings:
            echo(f"{config.path}: {len(config.warnings)} warnings (--strict)", file=sys.stderr)
            return EXIT_CONFIG
        print(f"{config.path}: ok ({len(config.checks)} checks, {len(config.rules)} rules)")
        return EXIT_OK
    if args.command == "check":
        from monitor.cli.check_once import run_check_command

        return run_check_command(config, args.name, args.json)
    if args.command == "routes":
        from monitor.cli.routes import run_routes_command

        return run_routes_command(config, args)
    if args.command == "notify-test":
        from monitor.cli.notify_test import run_notify_test_command

        return run_notify_test_command(config, args.receiver, not args.no_resolve)
    return _run(config)


def run_event_loop(main: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop where it is installed: its C event loop halved the loop's share of
    CPU per probe in bench/throughput.py (selector bookkeeping was ~20% of a core)."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(main)
    else:
        uvloop.run(main)


def _run(config: Config) -> int:
    settings = config.settings
    configure_logging(settings.log_level, settings.log_format)
    try:
        daemon = Daemon(config)
        run_event_loop(daemon.run())
    except StartError as err:
        print(f"monitor: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        pass
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
