"""Print the Slack and PagerDuty messages, firing and resolved, of a realistic page.

The Echo AI catalog (checks/echo_ai.yaml, alert_rules/echo_ai.yaml) is loaded as shipped; its
/health check fails with a refused connection for three minutes through the real rule engine,
then recovers; the alert the engine raised is rendered by the real Slack and PagerDuty
integrations. Usage: .venv/bin/python scripts/notify_samples.py > notify-samples.txt
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.alerting.model import Notification  # noqa: E402
from monitor.alerting.notifier import to_alert  # noqa: E402
from monitor.alerting.receivers.pagerduty import PagerDutyIntegration  # noqa: E402
from monitor.alerting.receivers.slack import SlackIntegration  # noqa: E402
from monitor.check_status import CheckStatuses  # noqa: E402
from monitor.config.loader import load_config  # noqa: E402
from monitor.core.clock import FakeClock  # noqa: E402
from monitor.core.results import Outcome, Result  # noqa: E402
from monitor.rules.alerts import Transition  # noqa: E402
from monitor.rules.engine import RuleEngine  # noqa: E402

EXTERNAL = "https://monitor.echo-ai.example"


def main() -> None:
    os.environ.update({"ECHO_AI_DATABASE_URL": "postgresql://monitor@db.internal:5432/echo",
                       "ECHO_AI_REDIS_URL": "redis://redis.internal:6379/0",
                       "ECHO_AI_RUNBOOK_URL": "https://wiki.echo-ai.example/runbook"})
    with tempfile.TemporaryDirectory() as tmp:
        main_file = Path(tmp) / "monitor.yaml"
        main_file.write_text(f"check_files: [{ROOT / 'checks' / 'echo_ai.yaml'}]\n"
                             f"rule_files: [{ROOT / 'alert_rules' / 'echo_ai.yaml'}]\n", encoding="utf-8")
        config = load_config(main_file)
    check = config.check("echo_ai_api_health")
    assert check is not None
    clock = FakeClock(1_767_225_600.0)  # 2026-01-01T00:00:00Z
    statuses = CheckStatuses()
    statuses.configure(config.checks)
    engine = RuleEngine(statuses, clock=clock.time)
    engine.external_url = EXTERNAL
    engine.configure(config.checks, config.rules)
    fired = resolved = None
    error = "ClientConnectorError: Cannot connect to host echo-ai-production.up.railway.app:443 [Connection refused]"
    for n in range(40):
        broken = 4 <= n < 16  # three minutes of refused connections at 15 s intervals
        result = (Result(up=False, latency=0.012, error=error, outcome=Outcome.FAILURE, at=clock.time()) if broken
                  else Result(up=True, value=200.0, latency=0.084, at=clock.time(),
                              detail={"status": 200, "body": {"status": "healthy"}}))
        statuses.record(check.name, result)
        for event in engine.evaluate(check.name, result).events:
            if event.alert.alertname != "EchoAIHealthCheckFailing":
                continue
            if event.transition is Transition.FIRING:
                fired = to_alert(event.alert, EXTERNAL)
            elif event.transition is Transition.RESOLVED:
                resolved = to_alert(event.alert, EXTERNAL, resolved_at=event.at)
        clock.advance(15)
    assert fired is not None and resolved is not None
    slack = SlackIntegration("https://hooks.slack.com/services/T0/B0/x", channel="#echo-ai-oncall")
    pagerduty = PagerDutyIntegration("R0UTINGKEY-REDACTED")
    for title, alert in (("FIRING", fired), ("RESOLVED", resolved)):
        notification = Notification(receiver="oncall", group_key='{}/{severity="critical"}:{alertname="EchoAIHealthCheckFailing"}',
                                    group_labels={"alertname": "EchoAIHealthCheckFailing"}, alerts=[alert],
                                    external_url=EXTERNAL)
        for name, payload in (("Slack", slack.payload(notification)), ("PagerDuty", pagerduty.event(notification))):
            print(f"===== {name}, {title} =====")
            print(json.dumps(payload, indent=2, ensure_ascii=False))
            print()


if __name__ == "__main__":
    main()
