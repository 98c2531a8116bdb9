"""The status page in a real browser (Debian's Chromium, headless, over DevTools).

One daemon, set up as an on-call engineer would find it on a bad night: a system with a check
down and its alert firing, a pending alert, a silence, a receiver that does not answer (so a
notification waits), and a config reload that failed. The page is loaded at a desktop and a
phone width; what it must say is read back from the rendered DOM, and a screenshot of each is
saved in ``test-artifacts/`` (or ``$MONITOR_TEST_ARTIFACTS``) for people to look at.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from aiohttp import web

from monitor.config.loader import load_config
from monitor.core.timestamps import rfc3339
from monitor.daemon import Daemon
from tests.browser import chromium
from tests.servers import free_port
from tests.test_http_api import eventually

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("MONITOR_TEST_ARTIFACTS", ROOT / "test-artifacts"))
TOKEN = "page-t0ken"


async def _app_server() -> tuple[web.AppRunner, str]:
    async def health(request: web.Request) -> web.Response:
        await asyncio.sleep(0.002 + (time.time() * 7 % 1) / 100)  # latencies that vary
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_get("/health", health)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}"


def _write(tmp: Path, app: str, dead_port: int, sink_port: int) -> Path:
    (tmp / "monitor.yaml").write_text(f"""
global:
  listen: 127.0.0.1:{free_port()}
  state: sqlite:///{tmp}/state.db
  api_token: {TOKEN}
check_files: [checks.yaml]
rule_files: [rules.yaml]
route:
  receiver: oncall
  group_wait: 0s
  group_interval: 1s
receivers:
  - name: oncall
    webhook_configs: [{{url: 'http://127.0.0.1:{sink_port}/hook'}}]
""")
    (tmp / "checks.yaml").write_text(f"""
checks:
  - name: shop_api
    kind: http
    url: {app}/health
    interval: 300ms
    description: The shop's public API answers /health.
    labels: {{system: shop}}
  - name: shop_payments
    kind: tcp
    address: 127.0.0.1:{dead_port}
    interval: 300ms
    description: The payment gateway accepts connections.
    labels: {{system: shop}}
  - name: reports_db
    kind: postgres
    dsn: postgresql://postgres@127.0.0.1:5432/postgres
    interval: 500ms
    labels: {{system: reporting}}
  - name: scratch_disk
    kind: disk
    path: /
    interval: 1s
""")
    (tmp / "rules.yaml").write_text("""
groups:
  - name: page
    rules:
      - alert: PaymentsDown
        check: shop_payments
        expr: '!up'
        labels: {severity: critical}
        annotations:
          summary: 'Payment gateway unreachable'
          runbook_url: 'https://runbooks.example.invalid/shop#payments'
      - alert: ReportsSlow
        check: reports_db
        expr: 'latency >= 0'
        for: 1h
        labels: {severity: warning}
        annotations: {summary: 'Reports database slow'}
""")
    return tmp / "monitor.yaml"


@pytest.fixture
async def bad_night(tmp_path: Path) -> AsyncIterator[str]:
    runner, app = await _app_server()
    path = _write(tmp_path, app, dead_port=free_port(), sink_port=free_port())
    daemon = Daemon(load_config(path))
    task = asyncio.create_task(daemon.run())
    try:
        await eventually(lambda: daemon.ready, timeout=30)
        base = f"http://{daemon.config.settings.listen}"
        await eventually(lambda: len(daemon.statuses.get("shop_api").history) >= 20, timeout=30)  # type: ignore[union-attr]
        await eventually(lambda: any(a.state == "firing" for a in daemon.engine.alerts.values()), timeout=30)
        await eventually(lambda: bool(daemon.notifications_waiting()), timeout=30)
        silence = {"matchers": [{"name": "system", "value": "reporting", "isRegex": False}],
                   "startsAt": rfc3339(time.time()), "endsAt": rfc3339(time.time() + 7200),
                   "createdBy": "alice", "comment": "planned reindex"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as client:
            answer = await client.post("/api/v1/silences", json=silence, headers={"Authorization": f"Bearer {TOKEN}"})
            assert answer.status_code == 200
        (tmp_path / "rules.yaml").write_text("groups: [{name: x, rules: [{alert: A, check: nope, expr: 'up'}]}]\n")
        ok, _ = await daemon.reload()
        assert not ok
        await daemon.uptime.flush(force=True)
        yield base
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 15)
        await runner.cleanup()


async def _facts(page: Any) -> dict[str, Any]:
    return await page.js("""(() => {
      const text = s => [...document.querySelectorAll(s)].map(e => e.textContent.trim());
      const check = n => document.getElementById('check-' + n);
      return {
        title: document.querySelector('header h1').textContent,
        systems: text('section.system h3').map(t => t.split(' ')[0]),
        banners: text('.banner > b'),
        alerts: [...document.querySelectorAll('li.alert')].map(li => [li.querySelector('b').textContent,
                 [...li.querySelectorAll('.badge')].map(b => b.textContent)]),
        silences: text('h2 + ul.list code, h2 + p'),
        paymentsError: check('shop_payments').querySelector('.error')?.textContent || '',
        paymentsState: check('shop_payments').querySelector('.badge').textContent,
        apiValue: check('shop_api').querySelector('.value').textContent,
        apiBars: check('shop_api').querySelectorAll('.strip i.u').length,
        apiSpark: !!check('shop_api').querySelector('svg.spark polyline'),
        apiUptime: [...check('shop_api').querySelectorAll('.uptime b')].map(b => b.textContent),
        paymentsUptime: [...check('shop_payments').querySelectorAll('.uptime b')].map(b => b.textContent),
        overflow: document.scrollingElement.scrollWidth - window.innerWidth,
        bodyText: document.body.innerText,
      };
    })()""")


async def test_the_status_page_tells_what_is_wrong_at_desktop_and_phone_width(bad_night: str) -> None:
    async with chromium() as page:
        for name, width, height, mobile in (("desktop", 1280, 900, False), ("phone", 390, 844, True)):
            await page.viewport(width, height, mobile)
            await page.open(bad_night + "/")
            facts = await _facts(page)
            await page.screenshot(ARTIFACTS / f"status-page-{name}.png")

            assert facts["title"] == "1 check down"
            assert facts["systems"] == ["shop", "reporting", "other"]  # the system with a check down first
            assert facts["banners"] == ["Config reload failed", "Notifications not delivered yet"]
            alerts = dict((name, badges) for name, badges in facts["alerts"])
            assert alerts["PaymentsDown"] == ["firing", "critical"]
            assert alerts["ReportsSlow"] == ["pending", "warning"]  # pending, not "silenced"
            assert 'system="reporting"' in " ".join(facts["silences"])
            assert "planned reindex" in facts["bodyText"] and "alice" in facts["bodyText"]
            assert facts["paymentsState"] == "down"
            assert "refused" in facts["paymentsError"].lower()
            assert facts["apiBars"] >= 20 and facts["apiSpark"]
            assert facts["apiValue"] == "HTTP 200"
            assert facts["apiUptime"] == ["100%", "100%", "100%"]
            assert facts["paymentsUptime"] == ["0.00%", "0.00%", "0.00%"]
            assert facts["overflow"] <= 0, f"the page scrolls sideways at {width}px"
            assert TOKEN not in facts["bodyText"]
    assert (ARTIFACTS / "status-page-phone.png").stat().st_size > 10_000
