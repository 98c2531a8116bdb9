"""A private Prometheus server (Debian's ``prometheus``) for tests, on a free port in a temp dir.

``make test`` installs the package when it is missing (scripts/system-packages.sh), so tests
that need it never skip. Each server has its own config, TSDB directory and port, and is
stopped by its PID; nothing is shared with another test or with a system Prometheus.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.servers import free_port

BINARY = shutil.which("prometheus") or "/usr/bin/prometheus"


@contextmanager
def prometheus_server(directory: Path, targets: dict[str, str], scrape_interval: str = "1s") -> Iterator[str]:
    """Start Prometheus scraping ``targets`` (job name → base URL serving /metrics); yields
    its base URL once it answers as ready, and stops it on exit."""
    port = free_port()
    jobs = []
    for job, url in targets.items():
        host = url.split("://", 1)[1].rstrip("/")
        jobs.append(f"  - job_name: {job}\n    static_configs:\n      - targets: ['{host}']\n")
    config = directory / "prometheus.yml"
    config.write_text(f"global:\n  scrape_interval: {scrape_interval}\n  scrape_timeout: {scrape_interval}\n"
                      f"scrape_configs:\n{''.join(jobs)}")
    log = (directory / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [BINARY, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"prometheus exited: {(directory / 'prometheus.log').read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/-/ready", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("prometheus did not become ready within 30 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def wait_for_scrapes(base: str, job: str, count: int, timeout: float) -> None:
    """Block until Prometheus has scraped ``job`` successfully ``count`` times."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        query = urllib.parse.urlencode({"query": f'count_over_time(up{{job="{job}"}}[10m])'})
        with urllib.request.urlopen(f"{base}/api/v1/query?{query}", timeout=5) as response:
            result = json.load(response)["data"]["result"]
        if result and float(result[0]["value"][1]) >= count:
            return
        time.sleep(0.5)
    raise RuntimeError(f"prometheus made fewer than {count} scrapes of {job} within {timeout} s")

