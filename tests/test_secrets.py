"""The one redaction everything shown goes through: registered secret values and
credential-shaped text."""

from __future__ import annotations

import json
import time

import pytest

from monitor.core import secrets
from monitor.core.results import Result, one_line, redact


def test_registered_values_are_replaced_wherever_they_appear() -> None:
    secrets.register(["s3cr3t-header-value", "hunter22"])
    text = "target said: s3cr3t-header-value; db said: password authentication failed (hunter22)"
    assert redact(text) == "target said: ***; db said: password authentication failed (***)"
    assert "s3cr3t" not in one_line(text)
    assert "hunter22" not in Result.failed(text).error  # type: ignore[operator]


def test_longest_registered_value_wins() -> None:
    secrets.register(["abcd", "abcdefgh"])
    assert redact("xx abcdefgh yy abcd") == "xx *** yy ***"  # not "***efgh"


def test_value_is_also_found_url_encoded_and_json_escaped() -> None:
    value = 'p@ss w/"quote"'
    secrets.register([value])
    assert redact("https://h/x?k=p%40ss%20w%2F%22quote%22") == "https://h/x?k=***"
    assert redact(json.dumps({"x": value})) == '{"x": "***"}'


def test_short_values_are_not_registered() -> None:
    # "pw" or "1" would scrub every occurrence of two letters or a digit.
    secrets.register(["pw", "abc", "", "   x  "])
    assert secrets.registered() == frozenset()


def test_registering_is_idempotent() -> None:
    secrets.register(["same-value-1234"])
    before = secrets.registered()
    secrets.register(["same-value-1234"])
    assert secrets.registered() == before


@pytest.mark.parametrize("text, expected", [
    ("https://user:hunter2@db.example/x", "https://***@db.example/x"),
    ("GET /x?api_key=abc123&x=1", "GET /x?api_key=***&x=1"),
    ("apikey=abc access_token=def X-Amz-Signature=ghi sig=jkl", "apikey=*** access_token=*** X-Amz-Signature=*** sig=***"),
    ("auth=a credential=b sessionId=c session=d password=e PASSWORD=f", "auth=*** credential=*** sessionId=*** session=*** password=*** PASSWORD=***"),
    ("host=db password=hunter2 dbname=x", "host=db password=*** dbname=x"),
    ("Authorization: Bearer eyJhbGciOi.J9.abc-_", "Authorization: Bearer ***"),
    # Names that merely contain a credential word as letters are left alone.
    ("author=bob design=flat signal=15 status=503 keyboard=us", "author=bob design=flat signal=15 status=503 keyboard=us"),
])
def test_credential_shapes_are_redacted(text: str, expected: str) -> None:
    assert redact(text) == expected


def test_urls_shown_to_people_have_their_query_values_masked() -> None:
    assert one_line("cannot reach http://h:8080/health?region=eu&id=42#top (refused)") == \
        "cannot reach http://h:8080/health?region=***&id=***#top (refused)"


def test_redaction_stays_fast_with_many_registered_values() -> None:
    # 10,000 checks with one header token each; every failing result goes through one_line.
    secrets.register(f"token-{i:05d}-abcdefghij" for i in range(10_000))
    text = "Cannot connect to host 127.0.0.1:8080 ssl:default [Connect call failed] " * 6
    started = time.perf_counter()
    for _ in range(1000):
        one_line(text + "token-04242-abcdefghij")
    assert time.perf_counter() - started < 2.0
    assert one_line("x token-04242-abcdefghij y") == "x *** y"
