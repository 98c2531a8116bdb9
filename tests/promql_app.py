"""A local application whose metrics move at known rates, for the PromQL agreement tests.

It serves the Prometheus text format on ``/metrics``. Every value is a function of the seconds
elapsed since the app started, so Prometheus and this daemon can scrape it at any moment. The
timeline packs a service's bad day into half a minute:

- steady traffic on ``/api/chat`` (10 req/s, 2% of them 500s) and ``/health`` (1 req/s);
- at ``RESTART`` the ``/health`` handler's counters start again from zero (a process restart:
  the counter reset that ``rate`` must see through);
- between ``BURST_START`` and ``BURST_END`` an error burst (an extra 6 req/s of 500s, and a
  503 series that did not exist before) with slower latencies;
- at ``WORKER_GONE`` the ``worker_up{worker="w2"}`` series disappears (staleness);
- gauges that go up and down, negative values, and a NaN gauge.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

RESTART = 9.0
BURST_START = 14.0
BURST_END = 22.0
WORKER_GONE = 18.0

BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
# Requests per second falling at or below each bucket (cumulative), and in all (+Inf).
_CHAT_NORMAL = (2.0, 4.0, 6.0, 8.0, 9.0, 9.5, 9.8, 10.0)
_CHAT_BURST_EXTRA = (0.0, 0.0, 0.5, 1.0, 2.0, 3.5, 5.0, 6.0)
_HEALTH = (0.7, 0.9, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0)


def _burst_seconds(elapsed: float) -> float:
    return max(0.0, min(elapsed, BURST_END) - BURST_START)


def exposition(elapsed: float) -> str:
    """The whole /metrics body ``elapsed`` seconds after start."""
    burst = _burst_seconds(elapsed)
    health = elapsed - RESTART if elapsed >= RESTART else elapsed
    lines = [
        "# HELP http_requests_total Requests handled.",
        "# TYPE http_requests_total counter",
        f'http_requests_total{{handler="/api/chat",method="POST",status="200"}} {9.8 * elapsed!r}',
        f'http_requests_total{{handler="/api/chat",method="POST",status="500"}} {0.2 * elapsed + 6.0 * burst!r}',
        f'http_requests_total{{handler="/health",method="GET",status="200"}} {1.0 * health!r}',
    ]
    if elapsed >= BURST_START:
        lines.append(f'http_requests_total{{handler="/api/chat",method="POST",status="503"}} {1.5 * burst!r}')
    lines += ["# HELP http_request_duration_seconds Request latency.",
              "# TYPE http_request_duration_seconds histogram"]
    for handler, rates, seconds, extra in (("/api/chat", _CHAT_NORMAL, elapsed, burst), ("/health", _HEALTH, health, 0.0)):
        for i, le in enumerate((*[f"{b:g}" for b in BUCKETS], "+Inf")):
            count = rates[i] * seconds + (_CHAT_BURST_EXTRA[i] * extra if handler == "/api/chat" else 0.0)
            lines.append(f'http_request_duration_seconds_bucket{{handler="{handler}",le="{le}"}} {count!r}')
        total = rates[-1] * seconds + (_CHAT_BURST_EXTRA[-1] * extra if handler == "/api/chat" else 0.0)
        lines.append(f'http_request_duration_seconds_sum{{handler="{handler}"}} {0.31 * total!r}')
        lines.append(f'http_request_duration_seconds_count{{handler="{handler}"}} {total!r}')
    lines += [
        "# TYPE db_pool_connections_in_use gauge",
        f'db_pool_connections_in_use{{pool="main"}} {round(6 + 4 * math.sin(elapsed / 3.0), 3)!r}',
        f'db_pool_connections_in_use{{pool="replica"}} {round(2 + elapsed / 10.0, 3)!r}',
        "# TYPE db_pool_size gauge",
        'db_pool_size{pool="main"} 20',
        'db_pool_size{pool="replica"} 10',
        "# TYPE queue_depth gauge",
        f'queue_depth{{queue="celery"}} {int(elapsed * 7) % 40}',
        f'queue_depth{{queue="emails"}} {int(elapsed) % 3}',
        "# TYPE temperature_celsius gauge",
        f'temperature_celsius{{room="a"}} {round(-3.25 + elapsed / 4.0, 4)!r}',
        f'temperature_celsius{{room="b"}} {round(2.5 * math.cos(elapsed), 4)!r}',
        "# TYPE worker_up gauge",
        'worker_up{worker="w1"} 1',
    ]
    if elapsed < WORKER_GONE:
        lines.append('worker_up{worker="w2"} 1')
    lines += ["# TYPE cache_hit_ratio gauge", "cache_hit_ratio NaN" if BURST_START <= elapsed < BURST_END
              else f"cache_hit_ratio {0.9!r}"]
    return "\n".join(lines) + "\n"


class _Handler(BaseHTTPRequestHandler):
    clock: list[float] = []  # [start], set by the first scrape

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self.path != "/metrics":
            self.send_error(404)
            return
        now = time.time()
        if not self.clock:
            self.clock.append(now)  # the timeline starts at the first scrape, whenever that is
        body = exposition(now - self.clock[0]).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
        pass


@contextmanager
def running_app() -> Iterator[tuple[str, list[float]]]:
    """Serve the app on a free loopback port; yields (base URL, [start time]): the list is
    empty until the first scrape starts the app's timeline."""
    handler = type("AppHandler", (_Handler,), {"clock": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler.clock
    finally:
        server.shutdown()
        server.server_close()
