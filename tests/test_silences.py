"""Silences and inhibition: the two ways the notification path keeps quiet on purpose."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import pytest

from monitor.core.timestamps import parse_rfc3339, rfc3339
from hypothesis import given
from hypothesis import strategies as st

from monitor.alerting.inhibition import InhibitRule, Inhibitor
from monitor.alerting.matchers import Matcher
from monitor.alerting.model import Alert
from monitor.alerting.silences import (
    DEFAULT_RETENTION,
    Silence,
    SilenceBook,
    SilenceNotFound,
    parse_matcher_args,
    silence_from_api,
    silence_matcher,
)

NOW = 1_700_000_000.0  # 2023-11-14T22:13:20Z
HOUR = 3600.0


def body(**overrides: Any) -> dict[str, Any]:
    """A valid PostableSilence: one hour from NOW muting ApiDown in prod."""
    base: dict[str, Any] = {
        "matchers": [
            {"name": "alertname", "value": "ApiDown", "isRegex": False, "isEqual": True},
            {"name": "env", "value": "prod", "isRegex": False},
        ],
        "startsAt": rfc3339(NOW, fixed_millis=True),
        "endsAt": rfc3339(NOW + HOUR, fixed_millis=True),
        "createdBy": "alice",
        "comment": "deploying the API",
    }
    base.update(overrides)
    return base


def silence(*matchers: Matcher, start: float = NOW, end: float = NOW + HOUR) -> Silence:
    return Silence(
        matchers=list(matchers) or [Matcher("alertname", "=", "ApiDown")],
        starts_at=start,
        ends_at=end,
        created_by="alice",
        comment="maintenance",
    )


# ---- matchers ---------------------------------------------------------------------------


def test_matcher_equality_and_negation_treat_missing_label_as_empty() -> None:
    assert Matcher("env", "=", "prod").matches({"env": "prod"})
    assert not Matcher("env", "=", "prod").matches({})
    # `env!=dev` must match alerts without `env`: a missing label is "" and "" != "dev".
    assert Matcher("env", "!=", "dev").matches({})
    assert not Matcher("env", "!=", "dev").matches({"env": "dev"})
    assert Matcher("env", "=", "").matches({})


def test_regex_matchers_are_fully_anchored() -> None:
    api = Matcher("check", "=~", "api.*")
    assert api.matches({"check": "api_health"})
    # Unanchored search would let `api` silence `legacy_api` too; Prometheus anchors both ends.
    assert not api.matches({"check": "legacy_api"})
    assert not Matcher("check", "=~", "api").matches({"check": "api_health"})
    not_api = Matcher("check", "!~", "api.*")
    assert not_api.matches({"check": "legacy_api"})
    assert not not_api.matches({"check": "api_health"})


def test_regex_matchers_do_not_accept_a_trailing_newline() -> None:
    # `^(?:prod)$` with Python's `$` would also match "prod\n"; the whole value must match.
    assert not Matcher("env", "=~", "prod").matches({"env": "prod\n"})
    assert Matcher("env", "!~", "prod").matches({"env": "prod\n"})


def test_matcher_rejects_bad_regex_and_label_name() -> None:
    with pytest.raises(ValueError, match="invalid regex"):
        silence_matcher("check", "api(", is_regex=True)
    with pytest.raises(ValueError, match="invalid label name"):
        silence_matcher("bad-name", "x")
    # Silences keep the classic label-name rule even for a matcher built elsewhere.
    with pytest.raises(ValueError, match="invalid label name"):
        Silence(matchers=[Matcher("bad-name", "=", "x")], starts_at=NOW, ends_at=NOW + 1)


@pytest.mark.parametrize(
    ("op", "api"),
    [
        ("=", {"isRegex": False, "isEqual": True}),
        ("!=", {"isRegex": False, "isEqual": False}),
        ("=~", {"isRegex": True, "isEqual": True}),
        ("!~", {"isRegex": True, "isEqual": False}),
    ],
)
def test_matcher_speaks_api_v2(op: Any, api: dict[str, bool]) -> None:
    matcher = Matcher("env", op, "prod")
    assert matcher.to_api() == {"name": "env", "value": "prod", **api}
    assert Matcher.from_api("env", "prod", api["isRegex"], api["isEqual"]) == matcher
    assert (matcher.is_regex, matcher.is_equal) == (api["isRegex"], api["isEqual"])


def test_silence_matchers_from_api_fields_are_plain_matchers() -> None:
    assert silence_matcher("check", "api.*", is_regex=True, is_equal=False) == Matcher("check", "!~", "api.*")
    with pytest.raises(ValueError, match="invalid label name"):
        silence_matcher("bad-name", "x")
    # RE2 runs `(a+)+` in linear time, so it is an ordinary pattern now (the old guard refused it).
    assert silence_matcher("check", "(a+)+", is_regex=True).matches({"check": "aaa"})


# ---- the Silence type -------------------------------------------------------------------


def test_state_moves_pending_active_expired() -> None:
    s = silence(start=NOW + 60, end=NOW + 120)
    assert s.state(NOW) == "pending"
    assert s.state(NOW + 60) == "active"
    assert s.state(NOW + 119.9) == "active"
    # Muting stops at ends_at itself, so expiring "now" takes effect at once.
    assert s.state(NOW + 120) == "expired"


def test_silence_matches_only_while_active() -> None:
    s = silence(Matcher("alertname", "=", "ApiDown"), Matcher("env", "=", "prod"), start=NOW + 60)
    labels = {"alertname": "ApiDown", "env": "prod", "check": "api_health"}
    assert not s.matches(labels, NOW)  # pending
    assert s.matches(labels, NOW + 61)
    assert not s.matches({**labels, "env": "staging"}, NOW + 61)  # every matcher must hold
    assert not s.matches(labels, NOW + HOUR)  # expired


def test_silence_refuses_no_matchers_match_everything_and_reversed_times() -> None:
    with pytest.raises(ValueError, match="at least one matcher"):
        Silence(matchers=[], starts_at=NOW, ends_at=NOW + 1)
    # Each of these matches an alert with no labels at all, hence every alert.
    for everything in (
        [Matcher("env", "!=", "prod")],
        [Matcher("alertname", "=~", ".*")],
        [Matcher("env", "=", "")],
    ):
        with pytest.raises(ValueError, match="must not match the empty string"):
            Silence(matchers=everything, starts_at=NOW, ends_at=NOW + 1)
    # One selective matcher is enough to make the others acceptable.
    Silence(
        matchers=[Matcher("env", "!=", "dev"), Matcher("alertname", "=", "ApiDown")],
        starts_at=NOW,
        ends_at=NOW + 1,
    )
    with pytest.raises(ValueError, match="endsAt"):
        silence(start=NOW, end=NOW - 1)


def test_matchers_cannot_be_changed_through_the_callers_list() -> None:
    matchers = [Matcher("alertname", "=", "ApiDown")]
    s = Silence(matchers=matchers, starts_at=NOW, ends_at=NOW + 1)
    matchers.append(Matcher("env", "=", "prod"))
    assert len(s.matchers) == 1


# ---- API JSON in --------------------------------------------------------------------------


def test_api_body_parses_into_a_silence() -> None:
    s = silence_from_api(body(), NOW)
    assert [str(m) for m in s.matchers] == ['alertname="ApiDown"', 'env="prod"']
    assert s.starts_at == NOW and s.ends_at == NOW + HOUR
    assert (s.created_by, s.comment) == ("alice", "deploying the API")
    assert len(s.id) == 36  # a fresh uuid4
    assert silence_from_api(body(id="abc"), NOW).id == "abc"
    assert silence_from_api(body(id=None), NOW).id != "abc"  # null id: a new silence


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"matchers": []}, r"^matchers: at least one matcher is required$"),
        ({"matchers": "alertname=x"}, r"^matchers: at least one"),
        ({"matchers": [{"name": "env", "value": "x", "isRegex": False, "isEqual": False}]}, "empty string"),
        ({"matchers": [{"name": "alertname", "value": ".*", "isRegex": True}]}, "empty string"),
        ({"matchers": [{"name": "check", "value": "api(", "isRegex": True}]}, r"^matchers\[0\]: invalid regex"),
        ({"matchers": [{"name": "check", "value": "x"}]}, r"^matchers\[0\]\.isRegex"),
        ({"matchers": [{"name": "check", "value": 3, "isRegex": False}]}, r"^matchers\[0\]\.value"),
        ({"matchers": [{"name": "a-b", "value": "x", "isRegex": False}]}, r"^matchers\[0\]: invalid label name"),
        ({"matchers": ["alertname"]}, r"^matchers\[0\]: must be an object"),
        ({"startsAt": "yesterday"}, r"^startsAt: not an RFC 3339 timestamp"),
        ({"startsAt": "2023-11-14T22:13:20"}, r"^startsAt: not an RFC 3339"),  # no zone: ambiguous
        ({"endsAt": "2023-13-01T00:00:00Z"}, r"^endsAt: not an RFC 3339"),
        ({"endsAt": None}, r"^endsAt: required"),
        ({"endsAt": rfc3339(NOW, fixed_millis=True)}, r"^endsAt: must be after startsAt$"),
        ({"endsAt": rfc3339(NOW - 60, fixed_millis=True)}, r"^endsAt: must be after startsAt$"),
        ({"startsAt": rfc3339(NOW - 120, fixed_millis=True), "endsAt": rfc3339(NOW - 60, fixed_millis=True)}, "in the past"),
        ({"createdBy": ""}, r"^createdBy: required"),
        ({"comment": None}, r"^comment: required"),
        ({"id": 7}, r"^id: must be a non-empty string"),
    ],
)
def test_api_body_errors_name_the_field_on_one_line(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message) as caught:
        silence_from_api(body(**overrides), NOW)
    assert "\n" not in str(caught.value)


def test_api_body_must_be_an_object() -> None:
    with pytest.raises(ValueError, match="JSON object"):
        silence_from_api([body()], NOW)


def test_rfc3339_accepts_offsets_and_nanoseconds() -> None:
    assert parse_rfc3339("2023-11-14T22:13:20Z") == NOW
    assert parse_rfc3339("2023-11-15T00:13:20+02:00") == NOW
    # Go clients (amtool, Grafana) send nanoseconds, more than datetime holds.
    assert parse_rfc3339("2023-11-14T22:13:20.123456789Z") == pytest.approx(NOW + 0.123456789)
    assert rfc3339(NOW + 0.25, fixed_millis=True) == "2023-11-14T22:13:20.250Z"


# ---- API JSON out, and the store's record -------------------------------------------------


def test_gettable_silence_has_alertmanagers_fields() -> None:
    book = SilenceBook()
    sid = book.add(silence_from_api(body(), NOW), NOW)
    got = book.get(sid)
    assert got is not None
    out = got.to_api(NOW + 1)
    assert out == {
        "id": sid,
        "status": {"state": "active"},
        "updatedAt": "2023-11-14T22:13:20.000Z",
        "matchers": [
            {"name": "alertname", "value": "ApiDown", "isRegex": False, "isEqual": True},
            {"name": "env", "value": "prod", "isRegex": False, "isEqual": True},
        ],
        "startsAt": "2023-11-14T22:13:20.000Z",
        "endsAt": "2023-11-14T23:13:20.000Z",
        "createdBy": "alice",
        "comment": "deploying the API",
    }
    # What the API prints, the API accepts back (that is how a UI edits a silence).
    again = silence_from_api(json.loads(json.dumps(out)), NOW)
    assert (again.id, again.matchers, again.starts_at, again.ends_at) == (sid, got.matchers, NOW, NOW + HOUR)


finite_times = st.floats(min_value=0, max_value=4e9, allow_nan=False)
label_names = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,8}", fullmatch=True)


@given(
    start=finite_times,
    length=st.floats(min_value=0, max_value=1e8),
    name=label_names,
    value=st.text(min_size=1, max_size=12),
    negative=st.booleans(),
    text=st.text(max_size=20),
    updated=finite_times,
)
def test_record_round_trip_is_lossless(
    start: float, length: float, name: str, value: str, negative: bool, text: str, updated: float
) -> None:
    # `alertname="x"` keeps the silence valid whatever the generated matcher is.
    matchers = [Matcher("alertname", "=", "x"), Matcher(name, "!=" if negative else "=", value)]
    original = Silence(
        matchers=matchers,
        starts_at=start,
        ends_at=start + length,
        created_by=text,
        comment=text[::-1],
        updated_at=updated,
    )
    # Through JSON text, as the store will keep it.
    assert Silence.from_record(json.loads(json.dumps(original.to_record()))) == original


# What the store holds from before matchers were unified (written by the old SilenceMatcher's
# to_api): the record format is unchanged, so it must still read back as it was.
OLD_RECORD = (
    '{"id": "5b0f8a8e-3c1e-4d7a-9a53-2f1c6f0a9d11", "matchers": ['
    '{"name": "alertname", "value": "ApiDown", "isRegex": false, "isEqual": true}, '
    '{"name": "env", "value": "prod|stag", "isRegex": true, "isEqual": true}, '
    '{"name": "team", "value": "ops", "isRegex": false, "isEqual": false}, '
    '{"name": "check", "value": "legacy_.*", "isRegex": true, "isEqual": false}], '
    '"starts_at": 1700000000.0, "ends_at": 1700003600.5, "created_by": "alice", '
    '"comment": "deploy window", "updated_at": 1700000001.25}'
)


def test_record_written_before_the_matcher_unification_still_loads() -> None:
    record = json.loads(OLD_RECORD)
    restored = Silence.from_record(record)
    assert restored.id == "5b0f8a8e-3c1e-4d7a-9a53-2f1c6f0a9d11"
    assert list(restored.matchers) == [
        Matcher("alertname", "=", "ApiDown"),
        Matcher("env", "=~", "prod|stag"),
        Matcher("team", "!=", "ops"),
        Matcher("check", "!~", "legacy_.*"),
    ]
    assert (restored.starts_at, restored.ends_at, restored.updated_at) == (1700000000.0, 1700003600.5, 1700000001.25)
    assert (restored.created_by, restored.comment) == ("alice", "deploy window")
    labels = {"alertname": "ApiDown", "env": "stag", "team": "db", "check": "api_health"}
    assert restored.matches(labels, NOW + 60)
    assert not restored.matches({**labels, "check": "legacy_api"}, NOW + 60)
    # Written back, the record is byte-for-byte what the old code wrote.
    assert json.dumps(restored.to_record()) == OLD_RECORD


def test_a_stored_regex_re2_refuses_is_refused_on_load() -> None:
    # The daemon skips (and logs) a record from_record refuses, rather than run the regex.
    record = json.loads(OLD_RECORD)
    record["matchers"][1]["value"] = "(a+)+$"  # refused by the old guard; RE2 runs it in linear time
    restored = Silence.from_record(record)
    assert restored.matches({"alertname": "ApiDown", "env": "a" * 10_000}, NOW + 60)
    assert not restored.matches({"alertname": "ApiDown", "env": "a" * 10_000 + "b"}, NOW + 60)
    record["matchers"][1]["value"] = "api(?=_health)"
    with pytest.raises(ValueError, match=re.escape("lookahead (?=...) is not supported")):
        Silence.from_record(record)


def test_record_round_trip_keeps_regexes_working_and_rejects_junk() -> None:
    original = silence(Matcher("check", "=~", "api.*"))
    restored = Silence.from_record(original.to_record())
    assert restored.matches({"check": "api_health"}, NOW)
    with pytest.raises(ValueError, match="bad silence record"):
        Silence.from_record({"id": "x"})


# ---- command-line matchers ------------------------------------------------------------------


def test_cli_matcher_args() -> None:
    assert parse_matcher_args(["alertname=ApiDown", "check=~api.*", "env!=dev", "team!~ops|sre"]) == [
        Matcher("alertname", "=", "ApiDown"),
        Matcher("check", "=~", "api.*"),
        Matcher("env", "!=", "dev"),
        Matcher("team", "!~", "ops|sre"),
    ]
    # amtool's shorthand: a bare first word is the alert name.
    assert parse_matcher_args(["ApiDown", "env=prod"])[0] == Matcher("alertname", "=", "ApiDown")
    # Quotes let a value hold spaces and operator characters.
    assert parse_matcher_args(['summary="a = b"']) == [Matcher("summary", "=", "a = b")]
    # str() of a matcher parses back to the same matcher.
    m = Matcher("summary", "!=", 'say "hi", ok')
    assert parse_matcher_args([str(m)]) == [m]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["alertname=ApiDown", "env"], "expected NAME=VALUE"),
        (["check=~api("], "invalid regex"),
        (["bad-name=x"], "invalid label name"),
        (['env="unterminated\\"'], "badly quoted"),
        (["check=~(?!x)"], "negative lookahead"),
        (["check=~" + "x" * 2000], "over the limit of 1024"),
    ],
)
def test_cli_matcher_errors(args: list[str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_matcher_args(args)


# ---- the book: add, update, expire, prune ---------------------------------------------------


def silenced_by(book: SilenceBook, labels: Mapping[str, str], now: float) -> list[str]:
    """Ids of the silences that mute ``labels`` at ``now`` (the book itself only says whether)."""
    return [s.id for s in book.list() if s.matches(labels, now)]



def test_book_mutes_by_active_silences_only() -> None:
    book = SilenceBook()
    now_id = book.add(silence(Matcher("alertname", "=", "ApiDown")), NOW)
    later_id = book.add(silence(Matcher("env", "=", "prod"), start=NOW + HOUR, end=NOW + 2 * HOUR), NOW)
    labels = {"alertname": "ApiDown", "env": "prod"}
    assert silenced_by(book, labels, NOW) == [now_id]
    assert silenced_by(book, labels, NOW + HOUR) == [later_id]  # the first ended as this began
    assert silenced_by(book, {"alertname": "Other", "env": "staging"}, NOW) == []
    assert book.mutes(labels, NOW) and book.mutes(labels, NOW + HOUR)
    assert not book.mutes(labels, NOW + 2 * HOUR) and not book.mutes({"alertname": "Other", "env": "staging"}, NOW)
    assert [s.id for s in book.active(NOW)] == [now_id]
    assert {s.id for s in book.list()} == {now_id, later_id}


def test_new_silence_starting_in_the_past_starts_now() -> None:
    book = SilenceBook()
    sid = book.add(silence(start=NOW - HOUR, end=NOW + HOUR), NOW)
    stored = book.get(sid)
    assert stored is not None and stored.starts_at == NOW and stored.updated_at == NOW


def test_book_refuses_a_new_silence_that_already_ended() -> None:
    with pytest.raises(ValueError, match="in the past"):
        SilenceBook().add(silence(start=NOW - HOUR, end=NOW - 1), NOW)


def test_extending_an_active_silence_keeps_its_id() -> None:
    book = SilenceBook()
    sid = book.add(silence(), NOW)
    original = book.get(sid)
    assert original is not None
    longer = Silence(
        id=sid, matchers=original.matchers, starts_at=original.starts_at, ends_at=NOW + 3 * HOUR, comment="longer"
    )
    assert book.add(longer, NOW + 60) == sid
    updated = book.get(sid)
    assert updated is not None and updated.ends_at == NOW + 3 * HOUR and updated.updated_at == NOW + 60
    assert len(book) == 1


def test_changing_matchers_of_an_active_silence_expires_it_and_creates_another() -> None:
    book = SilenceBook()
    sid = book.add(silence(Matcher("alertname", "=", "ApiDown")), NOW)
    wider = Silence(
        id=sid, matchers=[Matcher("alertname", "=~", "Api.*")], starts_at=NOW, ends_at=NOW + HOUR
    )
    new_id = book.add(wider, NOW + 60)
    assert new_id != sid
    old, new = book.get(sid), book.get(new_id)
    assert old is not None and new is not None
    # The record keeps what was muted when: the old matchers until the change, then the new.
    assert old.state(NOW + 60) == "expired" and old.ends_at == NOW + 60
    assert new.state(NOW + 60) == "active" and new.starts_at == NOW + 60
    assert silenced_by(book, {"alertname": "ApiSlow"}, NOW + 61) == [new_id]


def test_moving_the_start_of_an_active_silence_makes_a_new_one() -> None:
    book = SilenceBook()
    sid = book.add(silence(), NOW)
    moved = Silence(id=sid, matchers=[Matcher("alertname", "=", "ApiDown")], starts_at=NOW + 30, ends_at=NOW + HOUR)
    assert book.add(moved, NOW + 60) != sid


def test_pending_silence_can_be_rescheduled_in_place() -> None:
    book = SilenceBook()
    sid = book.add(silence(start=NOW + HOUR, end=NOW + 2 * HOUR), NOW)
    moved = Silence(
        id=sid, matchers=[Matcher("alertname", "=", "ApiDown")], starts_at=NOW + 2 * HOUR, ends_at=NOW + 3 * HOUR
    )
    assert book.add(moved, NOW) == sid
    stored = book.get(sid)
    assert stored is not None and stored.starts_at == NOW + 2 * HOUR


def test_updating_an_expired_silence_creates_a_new_one() -> None:
    book = SilenceBook()
    sid = book.add(silence(end=NOW + 60), NOW)
    revived = Silence(id=sid, matchers=[Matcher("alertname", "=", "ApiDown")], starts_at=NOW, ends_at=NOW + HOUR)
    new_id = book.add(revived, NOW + 120)
    assert new_id != sid
    old = book.get(sid)
    assert old is not None and old.ends_at == NOW + 60  # history untouched
    assert silenced_by(book, {"alertname": "ApiDown"}, NOW + 121) == [new_id]


def test_expire_ends_active_and_pending_silences_now() -> None:
    book = SilenceBook()
    active_id = book.add(silence(), NOW)
    pending_id = book.add(silence(start=NOW + HOUR, end=NOW + 2 * HOUR), NOW)
    ended = book.expire(active_id, NOW + 60)
    assert (ended.starts_at, ended.ends_at, ended.state(NOW + 60)) == (NOW, NOW + 60, "expired")
    # A pending silence never muted anything; both ends move to now, so it never reads active.
    never = book.expire(pending_id, NOW + 60)
    assert (never.starts_at, never.ends_at) == (NOW + 60, NOW + 60)
    assert never.state(NOW + 2 * HOUR - 1) == "expired"
    assert silenced_by(book, {"alertname": "ApiDown"}, NOW + 60) == []
    with pytest.raises(ValueError, match="already expired"):
        book.expire(active_id, NOW + 61)
    with pytest.raises(SilenceNotFound):
        book.expire("no-such-id", NOW)


def test_prune_drops_silences_expired_longer_than_retention() -> None:
    book = SilenceBook()
    old = book.add(silence(end=NOW + 60), NOW)
    recent = book.add(silence(end=NOW + 2 * HOUR), NOW)
    current = book.add(silence(end=NOW + 30 * 24 * HOUR), NOW)
    assert DEFAULT_RETENTION == 5 * 24 * HOUR
    # Expired silences are kept for a while so people can see what was muted during an incident.
    assert book.prune(NOW + 2 * HOUR + 1) == []
    assert book.prune(NOW + 60 + DEFAULT_RETENTION + 1) == [old]
    assert book.prune(NOW + 3 * HOUR, retention=HOUR - 1) == [recent]
    assert [s.id for s in book.list()] == [current]


def test_restore_puts_saved_silences_back_as_they_were() -> None:
    saved = Silence(
        matchers=[Matcher("alertname", "=", "ApiDown")],
        starts_at=NOW - 2 * HOUR,
        ends_at=NOW - HOUR,
        updated_at=NOW - HOUR,
    )
    book = SilenceBook([Silence.from_record(saved.to_record())])
    assert book.get(saved.id) == saved  # expired and unchanged, not rejected or restamped


# ---- inhibition -----------------------------------------------------------------------------


DB_MUTES_API = InhibitRule(
    source_matchers=[Matcher("alertname", "=", "DatabaseDown")],
    target_matchers=[Matcher("alertname", "=", "ApiHealthFailing")],
    equal=["env"],
)


def firing(alerts: list[Alert]) -> list[dict[str, str]]:
    """What the dispatcher hands the inhibitor: labels of the alerts still firing."""
    return [a.labels for a in alerts if a.status == "firing"]


def inhibited(inhibitor: Inhibitor, target: Mapping[str, str], sources: list[dict[str, str]]) -> bool:
    """The inhibition stage the dispatcher makes for a flush while ``sources`` fire, asked about ``target``."""
    return inhibitor.with_sources(sources).mutes(target, NOW)


def alert(name: str, env: str, *, resolved: bool = False) -> Alert:
    return Alert(
        fingerprint=f"{name}-{env}",
        labels={"alertname": name, "env": env, "severity": "critical"},
        annotations={},
        starts_at=NOW,
        ends_at=NOW + 60 if resolved else None,
    )


def test_database_down_mutes_api_alerts_of_the_same_env_only() -> None:
    inhibitor = Inhibitor([DB_MUTES_API])
    alerts = [alert("DatabaseDown", "prod")]
    assert inhibited(inhibitor, alert("ApiHealthFailing", "prod").labels, firing(alerts))
    assert not inhibited(inhibitor, alert("ApiHealthFailing", "staging").labels, firing(alerts))
    # The cause itself is not a target, so it still pages.
    assert not inhibited(inhibitor, alerts[0].labels, firing(alerts))


def test_resolved_source_no_longer_inhibits() -> None:
    inhibitor = Inhibitor([DB_MUTES_API])
    alerts = [alert("DatabaseDown", "prod", resolved=True)]
    assert not inhibited(inhibitor, alert("ApiHealthFailing", "prod").labels, firing(alerts))


def test_equal_label_missing_on_both_sides_counts_as_equal() -> None:
    inhibitor = Inhibitor([DB_MUTES_API])
    assert inhibited(inhibitor, {"alertname": "ApiHealthFailing"}, [{"alertname": "DatabaseDown"}])
    assert not inhibited(inhibitor, {"alertname": "ApiHealthFailing"}, [{"alertname": "DatabaseDown", "env": "prod"}])


def test_without_equal_labels_any_firing_source_inhibits() -> None:
    inhibitor = Inhibitor([InhibitRule(DB_MUTES_API.source_matchers, DB_MUTES_API.target_matchers)])
    assert inhibited(inhibitor, alert("ApiHealthFailing", "staging").labels, firing([alert("DatabaseDown", "prod")]))


def test_an_alert_never_inhibits_itself() -> None:
    # critical mutes warning-or-critical of the same check: a critical alert matches both sides.
    rule = InhibitRule(
        source_matchers=[Matcher("severity", "=", "critical")],
        target_matchers=[Matcher("severity", "=~", "warning|critical")],
        equal=["check"],
    )
    inhibitor = Inhibitor([rule])
    critical = {"alertname": "ApiHealthFailing", "check": "api_health", "severity": "critical"}
    assert not inhibited(inhibitor, critical, [critical])
    # Nor do two two-sided alerts mute each other, or neither would ever be heard of.
    other_critical = {**critical, "alertname": "SlowApi"}
    assert not inhibited(inhibitor, critical, [critical, other_critical])
    # A one-sided target is still muted by the critical one.
    warning = {**critical, "alertname": "SlowApi", "severity": "warning"}
    assert inhibited(inhibitor, warning, [critical, warning])


def test_no_rules_inhibit_nothing() -> None:
    assert not inhibited(Inhibitor([]), {"alertname": "ApiHealthFailing"}, [{"alertname": "DatabaseDown"}])


# ---- bounds -------------------------------------------------------------------------------------

def test_live_silences_are_capped_and_expiring_one_makes_room(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.alerting.silences as silences_mod

    monkeypatch.setattr(silences_mod, "MAX_LIVE_SILENCES", 3)
    book = SilenceBook()
    ids = [book.add(silence_from_api(body(), NOW), NOW) for _ in range(3)]
    with pytest.raises(silences_mod.SilenceLimit, match="3 silences are active or pending already"):
        book.add(silence_from_api(body(), NOW), NOW)
    book.add(dataclasses_replace(book.get(ids[0]), ends_at=NOW + 2 * HOUR), NOW)  # an update needs no room
    book.expire(ids[1], NOW)
    book.add(silence_from_api(body(), NOW), NOW)
    assert len([s for s in book.list() if s.state(NOW) != "expired"]) == 3


def test_expired_silences_beyond_the_cap_are_pruned_oldest_first(monkeypatch: pytest.MonkeyPatch) -> None:
    import monitor.alerting.silences as silences_mod

    monkeypatch.setattr(silences_mod, "MAX_LIVE_SILENCES", 2)
    book = SilenceBook()
    made = []
    for i in range(5):  # churn: make one, expire it
        made.append(book.add(silence_from_api(body(), NOW + i), NOW + i))
        book.expire(made[-1], NOW + i + 0.5)
    assert sorted(book.prune(NOW + 10)) == sorted(made[:3])  # within retention, but over the cap
    assert {s.id for s in book.list()} == set(made[3:])


@pytest.mark.parametrize("overrides, message", [
    ({"matchers": [{"name": f"l{i}", "value": "x", "isRegex": False} for i in range(65)]}, "at most 64 matchers"),
    ({"comment": "x" * 1025}, "comment: at most 1024 characters"),
    ({"createdBy": "x" * 1025}, "createdBy: at most 1024 characters"),
    ({"endsAt": rfc3339(NOW + 367 * 86400, fixed_millis=True)}, "at most 366 days"),
])
def test_oversized_silences_are_refused(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        silence_from_api(body(**overrides), NOW)


def dataclasses_replace(silence: Silence | None, **changes: Any) -> Silence:
    import dataclasses

    assert silence is not None
    return dataclasses.replace(silence, **changes)
