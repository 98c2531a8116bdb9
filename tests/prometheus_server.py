"""The real Prometheus server (Debian's ``/usr/bin/prometheus``) for tests, on a free port.

Each server gets its own temporary directory holding its config, its TSDB and its log; it
binds 127.0.0.1 only and is stopped by its own PID (SIGTERM, then SIGKILL), never by name.

Use the context manager directly::

    from tests.prometheus_server import running_prometheus

    with running_prometheus(targets=["127.0.0.1:8123"], scrape_interval="1s") as prom:
        prom.wait_for_scrapes(job="app", count=3)
        result = prom.query('sum(rate(http_requests_total[1m]))')  # the API's `data`

or the ``prometheus_server`` fixture factory from tests/conftest.py, which stops every
server it started when the test ends::

    def test_x(prometheus_server):
        prom = prometheus_server(targets=["127.0.0.1:8123"], rule_files={"r.yml": "groups: []"})

A target spelled ``"self"`` is the server itself. ``scrape_configs`` may be given whole (a list of Prometheus scrape-config mappings) for
anything beyond one static job. The config is written as JSON, which is valid YAML.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.servers import free_port

PROMETHEUS = "/usr/bin/prometheus"
STARTUP_TIMEOUT = 30.0


class PrometheusServer:
    """One ``prometheus`` process; ``start()`` returns once ``/-/ready`` answers 200."""

    def __init__(self, targets: Sequence[str] = (), *, job: str = "app", metrics_path: str = "/metrics",
                 scrape_interval: str = "1s", evaluation_interval: str = "1s",
                 scrape_configs: Sequence[Mapping[str, Any]] | None = None,
                 rule_files: Mapping[str, str] | None = None, extra_args: Sequence[str] = ()) -> None:
        binary = shutil.which("prometheus") or PROMETHEUS
        assert os.access(binary, os.X_OK), "prometheus is not installed (make test installs it)"
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="monitor-test-prometheus-"))
        self.job = job
        self.extra_args = list(extra_args)
        self.proc: subprocess.Popen[bytes] | None = None
        # "self" as a target is this server's own address (Prometheus scraping itself).
        targets = [f"127.0.0.1:{self.port}" if t == "self" else t for t in targets]
        if scrape_configs is None:
            scrape_configs = [{
                "job_name": job,
                "metrics_path": metrics_path,
                "static_configs": [{"targets": list(targets)}],
            }] if targets else []
        for name, text in (rule_files or {}).items():
            (self.dir / name).write_text(text)
        self.config: dict[str, Any] = {
            "global": {"scrape_interval": scrape_interval, "scrape_timeout": _min_duration(scrape_interval, "10s"),
                       "evaluation_interval": evaluation_interval},
            "rule_files": [str(self.dir / name) for name in (rule_files or {})],
            "scrape_configs": list(scrape_configs),
        }
        (self.dir / "prometheus.yml").write_text(json.dumps(self.config, indent=2))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> PrometheusServer:
        assert self.proc is None or self.proc.poll() is not None, "already running"
        log = open(self.dir / "prometheus.log", "ab")
        try:
            self.proc = subprocess.Popen(
                [
                    self.binary,
                    f"--config.file={self.dir / 'prometheus.yml'}",
                    f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                    "--log.level=warn",
                    *self.extra_args,
                ],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
            )
        finally:
            log.close()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._ready():
            if self.proc.poll() is not None:
                raise RuntimeError(f"prometheus exited with {self.proc.returncode}: {self.log_tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus not ready in {STARTUP_TIMEOUT:g}s: {self.log_tail()}")
            time.sleep(0.05)
        return self

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1.0) as response:
                return int(response.status) == 200
        except (OSError, urllib.error.URLError):
            return False

    def stop(self) -> None:
        """SIGTERM by PID, SIGKILL if it has not exited within 10 s."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log_tail(self) -> str:
        try:
            return (self.dir / "prometheus.log").read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    # --- the HTTP API --------------------------------------------------------------------
    def api(self, path: str, **params: Any) -> Any:
        """GET ``/api/v1/<path>`` and return its ``data``; AssertionError on an error answer."""
        query = urllib.parse.urlencode({k: v for k, v in params.items() if v is not None})
        url = f"{self.url}/api/v1/{path}" + (f"?{query}" if query else "")
        try:
            with urllib.request.urlopen(url, timeout=10.0) as response:
                body = json.load(response)
        except urllib.error.HTTPError as err:
            body = json.load(err)
        assert body.get("status") == "success", f"{path} {params}: {body}"
        return body["data"]

    def query(self, expr: str, at: float | None = None) -> Any:
        """An instant query: ``{"resultType": ..., "result": ...}``."""
        return self.api("query", query=expr, time=None if at is None else f"{at:.3f}")

    def targets(self) -> list[dict[str, Any]]:
        targets: list[dict[str, Any]] = self.api("targets")["activeTargets"]
        return targets

    def wait_for_scrapes(self, count: int = 1, job: str | None = None, timeout: float = 30.0) -> None:
        """Wait until every target of ``job`` (default: the one static job) has been scraped
        successfully ``count`` times (counted with ``count_over_time(up[1h])``)."""
        job = job or self.job
        deadline = time.monotonic() + timeout
        expr = f'min(count_over_time(up{{job="{job}"}}[1h]))'
        while True:
            result = self.query(expr)["result"]
            if result and float(result[0]["value"][1]) >= count:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"prometheus did not scrape job {job} {count} times in {timeout:g}s: "
                                     f"{self.targets()} {self.log_tail()}")
            time.sleep(0.1)


def _min_duration(a: str, b: str) -> str:
    """The shorter of two Prometheus durations (scrape_timeout may not exceed the interval)."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}

    def seconds(text: str) -> float:
        for unit in ("ms", "s", "m", "h"):
            if text.endswith(unit) and text[: -len(unit)].replace(".", "").isdigit():
                return float(text[: -len(unit)]) * units[unit]
        raise ValueError(f"unsupported duration {text!r}")

    return a if seconds(a) <= seconds(b) else b


@contextmanager
def running_prometheus(targets: Sequence[str] = (), **options: Any) -> Iterator[PrometheusServer]:
    """A started Prometheus (see ``PrometheusServer`` for the options), stopped and removed after."""
    server = PrometheusServer(targets, **options)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()
