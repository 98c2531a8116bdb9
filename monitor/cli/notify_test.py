"""`monitor notify-test RECEIVER`: send a test alert through every integration of a receiver.

Straight to the receivers, not through a running daemon's outbox: this answers "does this
webhook URL / routing key work from here", with each integration's own error if not. By
default the test alert is resolved right after it fires, so no test incident stays open in
PagerDuty or red in Slack.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time

import httpx

from monitor.alerting.integrations import Target, build_targets
from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import DeliveryError
from monitor.config.loader import Config

TEST_ALERT = "MonitorNotifyTest"


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> argparse.ArgumentParser:
    sub = commands.add_parser("notify-test", help="send a test alert (then its resolve) to a receiver")
    sub.add_argument("receiver", help="a name from the config's receivers:")
    sub.add_argument("--no-resolve", action="store_true", help="send only the firing test alert")
    return sub


def test_notification(receiver: str, now: float, resolved: bool, external_url: str) -> Notification:
    labels = {"alertname": TEST_ALERT, "severity": "info", "receiver": receiver}
    alert = Alert(
        fingerprint="notify-test",
        labels=labels,
        annotations={"summary": f"Test notification for receiver {receiver}",
                     "description": "Sent by `monitor notify-test`; nothing is wrong."},
        starts_at=now,
        ends_at=now + 1 if resolved else None,
    )
    return Notification(receiver=receiver, group_key=f'{{}}/notify-test:{{receiver="{receiver}"}}',
                        group_labels={"alertname": TEST_ALERT}, alerts=[alert], external_url=external_url)


async def _send_all(targets: list[Target], receiver: str, resolve: bool, external_url: str) -> int:
    failures = 0
    now = time.time()
    async with httpx.AsyncClient(follow_redirects=False) as client:
        for target in targets:
            for resolved in (False, True) if resolve else (False,):
                what = "resolve" if resolved else "firing"
                try:
                    await target.integration.notify(test_notification(receiver, now, resolved, external_url), client)
                except DeliveryError as err:
                    failures += 1
                    kind = "permanent" if err.permanent else "temporary"
                    print(f"{target.name}: {what}: FAILED ({kind}): {err}")
                    break  # no resolve for a firing message that did not arrive
                print(f"{target.name}: {what}: delivered")
    return failures


def run_notify_test_command(config: Config, receiver: str, resolve: bool) -> int:
    targets = build_targets(config.alerting)
    if receiver not in targets:
        known = ", ".join(sorted(targets)) or "none"
        print(f"monitor: no receiver named {receiver!r} (receivers: {known})", file=sys.stderr)
        return 2
    if not targets[receiver]:
        print(f"monitor: receiver {receiver!r} has no integrations to test", file=sys.stderr)
        return 2
    failures = asyncio.run(_send_all(targets[receiver], receiver, resolve, config.settings.public_url))
    return 1 if failures else 0
