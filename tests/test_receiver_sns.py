"""The SNS receiver without AWS: its config model, the Publish request it builds (content,
destinations, SNS's limits) and how AWS error codes are judged. Delivery to a real SNS
endpoint (moto server) is in tests/test_sns_delivery.py."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.alerting.model import Alert, Notification
from monitor.alerting.receivers import RECEIVERS
from monitor.alerting.receivers.sns import (
    MESSAGE_BYTES,
    SMS_CHARACTERS,
    SUBJECT_LIMIT,
    TRUNCATED_MARK,
    SnsConfig,
    SnsIntegration,
    default_content,
)
from monitor.config.loader import load_config
from monitor.core import secrets

TOPIC = "arn:aws:sns:eu-central-1:123456789012:alerts"


def alert(name: str = "ApiDown", *, resolved: bool = False, **annotations: str) -> Alert:
    start = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    return Alert(fingerprint=f"fp-{name}", labels={"alertname": name, "check": "api_health", "severity": "critical"},
                 annotations=annotations or {"summary": f"{name} is failing"}, starts_at=start,
                 ends_at=start + 300 if resolved else None, value=503.0, generator_url="http://127.0.0.1:9464/")


def group(*alerts: Alert) -> Notification:
    return Notification(receiver="oncall", group_key='{}:{alertname="ApiDown"}', group_labels={"alertname": "ApiDown"},
                        alerts=list(alerts), external_url="http://127.0.0.1:9464")


def sns(**fields: object) -> SnsIntegration:
    return RECEIVERS["sns_configs"].build(SnsConfig.model_validate({"topic_arn": TOPIC, **fields}))  # type: ignore[return-value]


# ---- config ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fields", [
    {},
    {"topic_arn": TOPIC, "phone_number": "+4915100000000"},
    {"topic_arn": TOPIC, "target_arn": "arn:aws:sns:eu-central-1:123456789012:endpoint/GCM/app/x"},
])
def test_exactly_one_destination(fields: dict[str, str]) -> None:
    with pytest.raises(ValidationError, match="exactly one of topic_arn, target_arn, phone_number"):
        SnsConfig.model_validate(fields)


def test_region_comes_from_sigv4_then_the_arn_then_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    assert SnsConfig.model_validate({"topic_arn": TOPIC}).region == "eu-central-1"
    assert SnsConfig.model_validate({"topic_arn": TOPIC, "sigv4": {"region": "us-east-1"}}).region == "us-east-1"
    with pytest.raises(ValidationError, match="sigv4.region is required"):
        SnsConfig.model_validate({"phone_number": "+4915100000000"})
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert SnsConfig.model_validate({"phone_number": "+4915100000000"}).region == "eu-west-1"


@pytest.mark.parametrize("name", ["AWS.thing", "amazon.x", "a..b", ".a", "a.", "has space", "x" * 257])
def test_attribute_names_sns_refuses_are_config_errors(name: str) -> None:
    with pytest.raises(ValidationError, match="not a valid SNS message attribute name"):
        SnsConfig.model_validate({"topic_arn": TOPIC, "attributes": {name: "v"}})


@pytest.mark.parametrize(("fields", "message"), [
    ({"topic_arn": "alerts"}, "topic_arn must be an SNS ARN"),
    ({"topic_arn": "arn:aws:sqs:eu-central-1:123456789012:q"}, "topic_arn must be an SNS ARN"),
    ({"target_arn": "arn:aws:sns:eu-central-1:12345:endpoint/x"}, "target_arn must be an SNS ARN"),
    ({"phone_number": "015112345678", "sigv4": {"region": "eu-central-1"}}, "E.164"),
    ({"topic_arn": TOPIC, "api_url": "http://sns.example.com"}, "api_url must be https://"),
    ({"topic_arn": TOPIC, "api_url": "ftp://127.0.0.1"}, "http:// or https://"),
])
def test_destinations_and_endpoint_are_checked_at_load(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SnsConfig.model_validate(fields)
    # A loopback endpoint (a local test double) may be plain http.
    assert SnsConfig.model_validate({"topic_arn": TOPIC, "api_url": "http://127.0.0.1:4566"}).api_url


def test_empty_attribute_value_is_a_config_error() -> None:
    with pytest.raises(ValidationError, match="empty value"):
        SnsConfig.model_validate({"topic_arn": TOPIC, "attributes": {"team": ""}})


def test_keys_go_in_pairs_and_not_with_a_profile() -> None:
    with pytest.raises(ValidationError, match="access_key and secret_key go together"):
        SnsConfig.model_validate({"topic_arn": TOPIC, "sigv4": {"access_key": "AKIAEXAMPLEEXAMPLE12"}})
    with pytest.raises(ValidationError, match="not both"):
        SnsConfig.model_validate({"topic_arn": TOPIC, "sigv4": {"access_key": "AKIAEXAMPLEEXAMPLE12",
                                                                "secret_key": "x" * 40, "profile": "ops"}})


def test_unknown_key_is_an_error_and_http_config_is_ignored() -> None:
    with pytest.raises(ValidationError):
        SnsConfig.model_validate({"topic_arn": TOPIC, "topic": "x"})
    config = SnsConfig.model_validate({"topic_arn": TOPIC, "http_config": {"proxy_url": "http://p"}})
    assert config.ignored == ("http_config",)


def test_a_config_file_loads_with_line_numbers_and_the_keys_are_registered_as_secrets(tmp_path: Path) -> None:
    main = tmp_path / "monitor.yaml"
    main.write_text(
        "route: {receiver: aws}\n"
        "receivers:\n"
        "  - name: aws\n"
        "    sns_configs:\n"
        f"      - topic_arn: {TOPIC}\n"
        "        sigv4: {access_key: AKIAQWERTYUIOPASDFGH, secret_key: wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY}\n"
        "        subject: 'Alert'\n"
        "      - phone_number: '+4915100000000'\n"
        "        sigv4: {region: eu-central-1}\n",
        encoding="utf-8")
    config = load_config(main)
    (receiver,) = config.alerting.receivers
    assert [k for k, _, _ in receiver.integrations()] == ["sns_configs", "sns_configs"]
    assert "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY" in secrets.registered()
    assert "AKIAQWERTYUIOPASDFGH" in secrets.registered()
    assert "wJalrXUtnFEMI" not in repr(config.alerting)

    bad = tmp_path / "bad.yaml"
    bad.write_text("route: {receiver: aws}\nreceivers:\n  - name: aws\n    sns_configs:\n      - subject: x\n",
                   encoding="utf-8")
    with pytest.raises(Exception) as err:
        load_config(bad)
    assert f"{bad}:5" in str(err.value) and "exactly one of topic_arn" in str(err.value)


# ---- the Publish request -----------------------------------------------------------------------

def test_default_subject_and_message_list_every_alert_firing_first() -> None:
    params = sns().publish_params(group(alert("ApiDown", resolved=True), alert("ApiSlow")))
    assert params["TopicArn"] == TOPIC
    assert params["Subject"].startswith("[FIRING:1] ApiDown")
    message = params["Message"]
    assert message.index("Alerts Firing:") < message.index("Alerts Resolved:")
    firing, resolved = message.split("Alerts Resolved:")
    assert " - alertname = ApiSlow" in firing and " - summary = ApiSlow is failing" in firing
    assert " - alertname = ApiDown" in resolved and "Ended: 2026-01-01T00:05:00Z" in resolved
    assert "Value: 503" in message and "Source: http://127.0.0.1:9464/" in message
    assert "Monitor: http://127.0.0.1:9464" in message
    assert "PhoneNumber" not in params and "MessageAttributes" not in params


def test_resolved_subject_and_send_resolved_false() -> None:
    params = sns().publish_params(group(alert(resolved=True)))
    assert params["Subject"].startswith("[RESOLVED] ApiDown")
    assert "Alerts Firing:" not in params["Message"]


async def test_send_resolved_false_skips_a_resolved_notification_without_calling_aws() -> None:
    # Returns before importing the AWS helper: nothing to send is not an error.
    await sns(send_resolved=False).notify(group(alert(resolved=True)), client=None)  # type: ignore[arg-type]


def test_configured_subject_message_and_attributes() -> None:
    params = sns(subject="Prod\nalert", message="literal {{ .Status }}", attributes={"team": "ops"}).publish_params(
        group(alert()))
    assert params["Subject"] == "Prod alert"  # one line
    assert params["Message"] == "literal {{ .Status }}"
    assert params["MessageAttributes"] == {"team": {"DataType": "String", "StringValue": "ops"}}


def test_default_content_is_one_swappable_function() -> None:
    subject, message = default_content(group(alert()))
    assert subject == "[FIRING:1] ApiDown"
    assert message.splitlines()[:2] == ["[FIRING:1] ApiDown", "ApiDown is failing"]


def test_sms_has_no_subject_and_is_cut_to_1600_characters() -> None:
    integration = RECEIVERS["sns_configs"].build(SnsConfig.model_validate(
        {"phone_number": "+4915100000000", "sigv4": {"region": "eu-central-1"}}))
    params = integration.publish_params(group(alert(summary="é" * 5000)))  # type: ignore[attr-defined]
    assert params["PhoneNumber"] == "+4915100000000"
    assert "Subject" not in params and "TopicArn" not in params
    assert len(params["Message"]) == SMS_CHARACTERS and params["Message"].endswith(TRUNCATED_MARK)
    assert params["MessageAttributes"]["truncated"]["StringValue"] == "true"


def test_target_arn() -> None:
    arn = "arn:aws:sns:eu-central-1:123456789012:endpoint/GCM/app/0f1e"
    params = RECEIVERS["sns_configs"].build(SnsConfig.model_validate({"target_arn": arn})).publish_params(  # type: ignore[attr-defined]
        group(alert()))
    assert params["TargetArn"] == arn and "TopicArn" not in params


def test_subject_is_one_line_without_control_characters_and_under_100() -> None:
    params = sns(subject="a\tb\x00c\r\n" + "x" * 300).publish_params(group(alert()))
    subject = params["Subject"]
    assert len(subject) == SUBJECT_LIMIT < 100
    assert subject.startswith("a b c x") and subject.endswith("…")
    assert all(c.isprintable() for c in subject)
    assert "Subject" not in sns(subject=" \n ").publish_params(group(alert()))  # SNS refuses an empty one


def test_huge_message_is_cut_to_fit_256_kib_with_its_attributes_and_marked() -> None:
    attributes = {f"a{i}": "v" * 200 for i in range(9)}
    huge = "ü" * 200_000  # 400,000 bytes of UTF-8
    params = sns(attributes=attributes).publish_params(group(alert(summary=huge)))
    message = params["Message"]
    size = len(message.encode()) + sum(len(k) + len(v["StringValue"]) + len(v["DataType"])
                                       for k, v in params["MessageAttributes"].items())
    assert size <= MESSAGE_BYTES
    assert size > MESSAGE_BYTES - 4096  # cut, not emptied
    assert message.endswith(TRUNCATED_MARK)
    assert params["MessageAttributes"]["truncated"] == {"DataType": "String", "StringValue": "true"}
    assert message.startswith("[FIRING:1] ApiDown")


def test_a_message_that_fits_is_not_marked() -> None:
    params = sns().publish_params(group(alert()))
    assert TRUNCATED_MARK not in params["Message"] and "MessageAttributes" not in params


def test_empty_or_invalid_utf8_message_is_still_sendable() -> None:
    assert sns(message="\ud800 lone surrogate").publish_params(group(alert()))["Message"] == "? lone surrogate"
    # An empty configured message falls back to the default text rather than a refused Publish.
    assert sns(message="  ").publish_params(group(alert()))["Message"].startswith("[FIRING:1] ApiDown")


def test_fifo_topic_gets_group_and_content_dedup_ids() -> None:
    integration = sns(topic_arn=TOPIC + ".fifo")
    first = integration.publish_params(group(alert()))
    again = integration.publish_params(group(alert()))
    resolved = integration.publish_params(group(alert(resolved=True)))
    assert first["MessageGroupId"] == resolved["MessageGroupId"]
    assert first["MessageDeduplicationId"] == again["MessageDeduplicationId"]  # a retry is dropped by SNS
    assert first["MessageDeduplicationId"] != resolved["MessageDeduplicationId"]  # the resolve is not
    assert "MessageGroupId" not in sns().publish_params(group(alert()))


# ---- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("code", "helper_says", "permanent"), [
    ("NotFound", False, True),
    ("InvalidParameter", False, True),
    ("AuthorizationError", False, True),
    ("InvalidClientTokenId", False, True),
    ("Throttled", True, False),
    ("ThrottlingException", True, False),
    ("InternalError", False, False),
    ("ServiceUnavailable", True, False),
    ("ExpiredToken", True, False),
    ("SomethingNew", True, True),  # unknown codes: the AWS helper's judgement
    ("SomethingElse", False, False),
])
def test_aws_error_codes_are_classified(code: str, helper_says: bool, permanent: bool) -> None:
    err = sns()._delivery_error(code, "Topic does not exist", permanent=helper_says)
    assert err.permanent is permanent
    assert str(err) == f"SNS Publish failed: {code}: Topic does not exist"


def test_errors_never_show_the_keys() -> None:
    key = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYSECRETKEY"
    integration = sns(sigv4={"access_key": "AKIAQWERTYUIOPASDFGH", "secret_key": key})
    err = integration._delivery_error("SignatureDoesNotMatch", f"bad signature for {key} AKIAQWERTYUIOPASDFGH",
                                      permanent=False)
    assert key not in str(err) and "AKIAQWERTYUIOPASDFGH" not in str(err)
    assert err.permanent


def test_the_request_depends_on_the_notification_only() -> None:
    # An outbox retry must send the same bytes (a FIFO topic dedups on them).
    n = group(alert())
    assert sns().publish_params(n) == sns().publish_params(Notification.from_record(n.to_record()))
