"""Where the daemon is, for the commands that talk to it (`status`, `silence ...`).

First found wins: ``--url``; ``$MONITOR_URL``; ``$MONITOR_LISTEN`` (the address the daemon
listens on, read as the daemon reads it); the ``global.listen`` of the config file (``-c``,
else the daemon's own default: ``$MONITOR_CONFIG``, ./monitor.yaml, the shipped one); else
``http://127.0.0.1:9464``. A daemon listening on every address (``0.0.0.0:9464``) is asked
on the loopback address.
"""

from __future__ import annotations

import argparse
import os

import httpx

from monitor.config.loader import listen_address
from monitor.config.main import EnvSettings, listen_url
from monitor.daemon import default_config_path

DEFAULT_URL = "http://127.0.0.1:9464"
HELP = ("the daemon's address (default: $MONITOR_URL, else http://$MONITOR_LISTEN, else the config file's"
        " global.listen, else http://127.0.0.1:9464)")


class UrlError(ValueError):
    """``$MONITOR_LISTEN`` or the file's ``listen`` is not ``host:port``."""


def add_arguments(sub: argparse.ArgumentParser) -> None:
    """``--url`` and ``-c`` (whose ``listen`` says where the daemon is) on a subcommand."""
    sub.add_argument("--url", default=None, help=HELP)
    sub.add_argument("-c", "--config", default=None,
                     help="main config file whose global.listen locates the daemon"
                          " (default: $MONITOR_CONFIG, ./monitor.yaml, or the shipped one)")


def daemon_url(url: str | None, config: str | None) -> str:
    if url:
        return _checked(url, "--url")
    if os.environ.get("MONITOR_URL"):
        return _checked(os.environ["MONITOR_URL"], "MONITOR_URL")
    listen = EnvSettings().listen
    if listen:
        try:
            return listen_url(listen)
        except ValueError as err:
            raise UrlError(f"MONITOR_LISTEN: {err}") from None
    path = config or default_config_path(os.environ.get("MONITOR_CONFIG"))
    from_file = listen_address(path)
    return listen_url(from_file) if from_file else DEFAULT_URL


def _checked(url: str, where: str) -> str:
    """An http(s) URL with a host, or a one-line UrlError (httpx's own errors for these are
    not all HTTPError, and its text talks about its internals)."""
    try:
        parsed = httpx.URL(url)
    except (httpx.InvalidURL, ValueError, TypeError) as err:
        raise UrlError(f"{where}: {url!r} is not a URL ({err})") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise UrlError(f"{where}: {url!r} is not an http:// or https:// URL with a host, e.g. http://127.0.0.1:9464")
    return url
