"""``kind: ses`` against a local endpoint speaking SESv2's REST-JSON API (``GET
/v2/email/account``): moto has no SESv2 GetAccount and no account-level sending switch."""

from __future__ import annotations

from typing import Any

from monitor.core.results import Outcome

from tests.aws_checks import aws_check, run
from tests.aws_fake import FakeAws, aws_json_error


def _account(enabled: bool, sent: float, status: str = "HEALTHY") -> tuple[int, dict[str, Any]]:
    return 200, {"SendingEnabled": enabled, "EnforcementStatus": status, "ProductionAccessEnabled": True,
                 "DedicatedIpAutoWarmupEnabled": False,
                 "SendQuota": {"Max24HourSend": 50000.0, "MaxSendRate": 14.0, "SentLast24Hours": sent}}


async def test_sending_enabled_then_paused_then_back(fake_aws: FakeAws) -> None:
    check = aws_check("ses", fake_aws.url)
    fake_aws.reply("GetAccount", _account(True, 1200.0))
    enabled = await run(check)
    assert enabled.up and enabled.value == 1.0, enabled
    assert enabled.detail == {"sent_last_24h": 1200.0, "max_24h": 50000.0, "max_send_rate": 14.0,
                              "enforcement_status": "HEALTHY", "production_access": True}

    fake_aws.reply("GetAccount", _account(False, 1300.0, "SHUTDOWN"))
    paused = await run(check)
    assert not paused.up and paused.value == 0.0 and paused.outcome is Outcome.FAILURE
    assert paused.error == "SES sending is disabled for the account in us-east-1 (enforcement status SHUTDOWN)"
    assert paused.detail["sent_last_24h"] == 1300.0

    fake_aws.reply("GetAccount", _account(True, 0.0))
    assert (await run(check)).up
    assert [seen.operation for seen in fake_aws.seen] == ["GetAccount"] * 3
    assert fake_aws.seen[0].headers["Authorization"].startswith("AWS4-HMAC-SHA256 Credential=testing/")


async def test_call_failure_is_down(fake_aws: FakeAws) -> None:
    fake_aws.reply("GetAccount", aws_json_error("AccessDeniedException", "User is not authorized to perform "
                                                "ses:GetAccount", status=403))
    result = await run(aws_check("ses", fake_aws.url))
    assert not result.up and result.value is None
    assert result.error == "GetAccount: AccessDeniedException: User is not authorized to perform ses:GetAccount"
