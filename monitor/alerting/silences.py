"""Silences: time-boxed mutes that people add by label matchers (Alertmanager's model).

A silence mutes every alert whose labels satisfy all of its matchers while ``now`` lies in
``[starts_at, ends_at)``. The shapes follow Alertmanager's API v2 so that its users, amtool
habits and scripts carry over: ``PostableSilence`` in, ``GettableSilence`` out.

Matchers are :class:`monitor.alerting.matchers.Matcher`, the type routes and inhibit rules
use, so a matcher means the same everywhere, and a regex from the API or the CLI is compiled
by RE2 (linear-time matching) just like one from config. Silences add one rule of their own:
label names are the classic ``[a-zA-Z_][a-zA-Z0-9_]*`` (names our alerts can carry).
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from monitor.alerting.matchers import Matcher
from monitor.core.labels import is_label_name
from monitor.core.regex import shown
from monitor.core.timestamps import parse_rfc3339, rfc3339

SilenceState = Literal["pending", "active", "expired"]

# Alertmanager keeps expired silences for five days (--data.retention default 120h) so that
# people can look up what was muted during an incident and re-create it.
DEFAULT_RETENTION = 5 * 24 * 3600.0
# Bounds (docs/http-api.md, "Silences"): what one token holder can make the daemon keep in
# memory, in the store and in every listing. Generous for people, small for a script gone wrong.
MAX_LIVE_SILENCES = 1000  # active or pending at once
MAX_MATCHERS = 64
MAX_TEXT = 1024  # characters of comment, and of createdBy
MAX_LIFETIME = 366 * 24 * 3600.0  # endsAt at most a year (and a day) ahead


class SilenceLimit(ValueError):
    """The book holds as many live silences as it may (``MAX_LIVE_SILENCES``)."""


class SilenceNotFound(LookupError):
    """No silence with that id (the HTTP layer turns this into a 404)."""


# --------------------------------------------------------------------------------------
# Matchers
# --------------------------------------------------------------------------------------


def silence_matcher(name: str, value: str, is_regex: bool = False, is_equal: bool = True) -> Matcher:
    """A matcher from API v2's fields, with the label-name rule silences add."""
    _check_label_name(name)
    return Matcher.from_api(name, value, is_regex, is_equal)


def _check_label_name(name: str) -> None:
    # Prometheus' classic label-name syntax; names that cannot occur on our alerts are typos.
    if not is_label_name(name):
        raise ValueError(f"invalid label name {name!r}")


_MATCHER_ARG = re.compile(r"\s*([^=!~\s]+)\s*(=~|!~|!=|=)(.*)", re.DOTALL)


def parse_matcher_args(args: Sequence[str]) -> list[Matcher]:
    """Matchers from command-line words: ``alertname=ApiDown``, ``check=~api.*``, ``env!=dev``.

    Like amtool, a first word without an operator is the alert name (``monitor silence add
    ApiDown env=prod``), and a value may be double-quoted to hold spaces or operator characters.
    """
    matchers: list[Matcher] = []
    for position, arg in enumerate(args):
        found = _MATCHER_ARG.fullmatch(arg)
        if found is None:
            if position == 0 and is_label_name(arg.strip()):
                matchers.append(Matcher("alertname", "=", arg.strip()))
                continue
            raise ValueError(f"matcher {arg!r}: expected NAME=VALUE, NAME!=VALUE, NAME=~REGEX or NAME!~REGEX")
        name, op, raw = found.groups()
        value = raw.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            try:
                decoded = json.loads(value)
            except json.JSONDecodeError:
                raise ValueError(f"matcher {arg!r}: badly quoted value") from None
            value = str(decoded)
        try:
            matchers.append(silence_matcher(name, value, is_regex="~" in op, is_equal=op[0] == "="))
        except ValueError as exc:  # the arg cut short: the reason says what is wrong with it
            raise ValueError(f"matcher {shown(arg, 100)}: {exc}") from None
    return matchers


# --------------------------------------------------------------------------------------
# Silence
# --------------------------------------------------------------------------------------


def new_silence_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class Silence:
    """One silence. Immutable: the book replaces it whole on update or expiry.

    Invariants (checked on construction, so no invalid silence exists anywhere): at least
    one matcher, not all of them matching the empty string, and ``ends_at >= starts_at``.
    Equality is allowed only for a silence expired before it started (Alertmanager sets both
    to "now"); new silences from the API must have ``endsAt`` strictly after ``startsAt``.
    """

    id: str = field(default_factory=new_silence_id)
    matchers: Sequence[Matcher]
    starts_at: float  # unix seconds
    ends_at: float  # unix seconds; muting stops at this instant
    created_by: str = ""
    comment: str = ""
    updated_at: float = 0.0

    def __post_init__(self) -> None:
        # A tuple, so a caller holding a list cannot change a silence behind the book's back.
        object.__setattr__(self, "matchers", tuple(self.matchers))
        if not self.id:
            raise ValueError("id must not be empty")
        if not self.matchers:
            raise ValueError("a silence needs at least one matcher")
        for matcher in self.matchers:
            _check_label_name(matcher.name)
        # Alertmanager refuses these: a silence every alert satisfies (e.g. only `env!=x`
        # or `foo=~.*`) would mute the whole system, almost always by mistake.
        if all(m.matches({}) for m in self.matchers):
            raise ValueError("at least one matcher must not match the empty string")
        if self.ends_at < self.starts_at:
            raise ValueError("endsAt must not be before startsAt")

    def state(self, now: float) -> SilenceState:
        # Expired wins at ends_at itself, so expire(now) takes effect at once (and a pending
        # silence expired with starts_at == ends_at == now reads as expired, not pending).
        if now >= self.ends_at:
            return "expired"
        if now < self.starts_at:
            return "pending"
        return "active"

    def matches(self, labels: Mapping[str, str], now: float) -> bool:
        """Whether this silence mutes an alert with these labels right now."""
        return self.state(now) == "active" and all(m.matches(labels) for m in self.matchers)

    # ---- API v2 JSON (GettableSilence) -----------------------------------------------

    def to_api(self, now: float) -> dict[str, Any]:
        return {
            "id": self.id,
            "status": {"state": self.state(now)},
            "updatedAt": rfc3339(self.updated_at, fixed_millis=True),
            "matchers": [m.to_api() for m in self.matchers],
            "startsAt": rfc3339(self.starts_at, fixed_millis=True),
            "endsAt": rfc3339(self.ends_at, fixed_millis=True),
            "createdBy": self.created_by,
            "comment": self.comment,
        }

    # ---- lossless record for the store -----------------------------------------------

    def to_record(self) -> dict[str, Any]:
        """A JSON-safe dict that ``from_record`` turns back into an equal silence.

        Times stay floats (JSON keeps a float's exact repr), unlike the API's millisecond
        RFC 3339 text.
        """
        return {
            "id": self.id,
            "matchers": [m.to_api() for m in self.matchers],
            "starts_at": self.starts_at,
            "ends_at": self.ends_at,
            "created_by": self.created_by,
            "comment": self.comment,
            "updated_at": self.updated_at,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> Silence:
        try:
            return cls(
                id=str(record["id"]),
                # The record's matchers are API v2's shape; a stored regex is compiled like a
                # new one (the daemon skips, with a warning, a record it refuses).
                matchers=[
                    silence_matcher(str(m["name"]), str(m["value"]), bool(m["isRegex"]), bool(m["isEqual"]))
                    for m in record["matchers"]
                ],
                starts_at=float(record["starts_at"]),
                ends_at=float(record["ends_at"]),
                created_by=str(record["created_by"]),
                comment=str(record["comment"]),
                updated_at=float(record["updated_at"]),
            )
        except (KeyError, TypeError) as exc:
            raise ValueError(f"bad silence record: missing or malformed {exc}") from None


# --------------------------------------------------------------------------------------
# API v2 input (PostableSilence)
# --------------------------------------------------------------------------------------

def silence_from_api(body: object, now: float) -> Silence:
    """Validate a ``PostableSilence`` (the JSON body of ``POST /api/v1/silences``).

    Raises ``ValueError`` with a one-line message naming the first bad field. An ``id`` asks
    to update that silence; ``SilenceBook.add`` decides whether that is possible (the HTTP
    handler should answer 404 when ``SilenceBook.get`` does not know the id, as Alertmanager
    does). ``updated_at`` is left to the book, which stamps it when it stores the silence.
    """
    if not isinstance(body, Mapping):
        raise ValueError("silence must be a JSON object")
    raw_matchers = body.get("matchers")
    if not isinstance(raw_matchers, list) or not raw_matchers:
        raise ValueError("matchers: at least one matcher is required")
    if len(raw_matchers) > MAX_MATCHERS:
        raise ValueError(f"matchers: at most {MAX_MATCHERS} matchers")
    matchers = [_matcher_from_api(i, m) for i, m in enumerate(raw_matchers)]
    starts_at = _timestamp_field(body, "startsAt")
    ends_at = _timestamp_field(body, "endsAt")
    if ends_at <= starts_at:
        raise ValueError("endsAt: must be after startsAt")
    if ends_at <= now:
        raise ValueError("endsAt: must not be in the past")
    if ends_at - max(starts_at, now) > MAX_LIFETIME:
        raise ValueError("endsAt: a silence lasts at most 366 days; make a new one when it ends")
    # Who and why are what people need when they find an alert unexpectedly muted at 3 am,
    # so both are required (amtool requires a comment by default too).
    created_by = _text_field(body, "createdBy")
    comment = _text_field(body, "comment")
    raw_id = body.get("id")
    if raw_id is not None and (not isinstance(raw_id, str) or not raw_id.strip()):
        raise ValueError("id: must be a non-empty string when given")
    try:
        return Silence(
            id=raw_id or new_silence_id(),
            matchers=matchers,
            starts_at=starts_at,
            ends_at=ends_at,
            created_by=created_by,
            comment=comment,
        )
    except ValueError as exc:  # the match-everything check
        raise ValueError(f"matchers: {exc}") from None


def _matcher_from_api(index: int, raw: object) -> Matcher:
    where = f"matchers[{index}]"
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: must be an object with name, value and isRegex")
    name, value = raw.get("name"), raw.get("value")
    if not isinstance(name, str):
        raise ValueError(f"{where}.name: must be a string")
    if not isinstance(value, str):
        raise ValueError(f"{where}.value: must be a string")
    is_regex, is_equal = raw.get("isRegex"), raw.get("isEqual", True)
    if not isinstance(is_regex, bool):
        raise ValueError(f"{where}.isRegex: must be true or false")
    if not isinstance(is_equal, bool):  # optional in API v2; absent means `=`/`=~`
        raise ValueError(f"{where}.isEqual: must be true or false")
    try:
        return silence_matcher(name, value, is_regex, is_equal)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def _timestamp_field(body: Mapping[str, object], key: str) -> float:
    raw = body.get(key)
    if not isinstance(raw, str):
        raise ValueError(f"{key}: required, an RFC 3339 timestamp")
    try:
        return parse_rfc3339(raw)
    except ValueError as exc:
        raise ValueError(f"{key}: {exc}") from None


def _text_field(body: Mapping[str, object], key: str) -> str:
    raw = body.get(key)
    if not isinstance(raw, str) or not raw.strip():
        raise ValueError(f"{key}: required, a non-empty string")
    if len(raw) > MAX_TEXT:
        raise ValueError(f"{key}: at most {MAX_TEXT} characters")
    return raw


# --------------------------------------------------------------------------------------
# The book of silences
# --------------------------------------------------------------------------------------


class SilenceBook:
    """All known silences, in memory. Used from the event loop only, so no locking.

    Persistence is the store's job: it saves ``to_record()`` of what changed and puts saved
    silences back with ``restore``.
    """

    def __init__(self, silences: Iterable[Silence] = ()) -> None:
        self._silences: dict[str, Silence] = {}
        for silence in silences:
            self.restore(silence)

    def add(self, silence: Silence, now: float) -> str:
        """Create or update a silence; returns the id that now carries it.

        Alertmanager's rules, so a silence's history stays truthful:

        - unknown id: a new silence under that id;
        - known id, same matchers, and the change is possible in place (a pending silence
          whose new start is not in the past; an active silence whose start is unchanged
          and whose new end is not in the past): updated in place, same id;
        - anything else (matchers changed, start of an active silence moved, or the old
          silence already expired): the old one is expired if it was not already, and the
          new one gets a fresh id. Changing *what* is muted is a new silence, so the record
          shows what was muted when.

        A new silence that would start in the past starts now instead.
        """
        previous = self._silences.get(silence.id)
        if previous is not None and _can_update(previous, silence, now):
            self._silences[silence.id] = dataclasses.replace(silence, updated_at=now)
            return silence.id
        if silence.ends_at <= now:
            raise ValueError("endsAt: must not be in the past")
        live = sum(1 for s in self._silences.values() if s.state(now) != "expired")
        if live - (previous is not None and previous.state(now) != "expired") >= MAX_LIVE_SILENCES:
            raise SilenceLimit(f"{MAX_LIVE_SILENCES} silences are active or pending already; expire some first")
        fresh_id = silence.id if previous is None else new_silence_id()
        if previous is not None and previous.state(now) != "expired":
            self.expire(previous.id, now)
        self._silences[fresh_id] = dataclasses.replace(
            silence, id=fresh_id, starts_at=max(silence.starts_at, now), updated_at=now
        )
        return fresh_id

    def restore(self, silence: Silence) -> None:
        """Put back a saved silence as it was (no update rules, no time stamping)."""
        self._silences[silence.id] = silence

    def get(self, silence_id: str) -> Silence | None:
        return self._silences.get(silence_id)

    def expire(self, silence_id: str, now: float) -> Silence:
        """End a silence now. Raises SilenceNotFound, or ValueError if it already expired."""
        silence = self._silences.get(silence_id)
        if silence is None:
            raise SilenceNotFound(f"silence {silence_id} not found")
        state = silence.state(now)
        if state == "expired":
            raise ValueError(f"silence {silence_id} already expired")
        # A pending silence never muted anything: both ends move to now, as in Alertmanager,
        # so it reads as expired without ever having been active.
        starts_at = now if state == "pending" else silence.starts_at
        ended = dataclasses.replace(silence, starts_at=starts_at, ends_at=now, updated_at=now)
        self._silences[silence_id] = ended
        return ended

    def list(self) -> builtins.list[Silence]:
        """Every silence, expired ones included until pruned."""
        return builtins.list(self._silences.values())

    def active(self, now: float) -> builtins.list[Silence]:
        return [s for s in self._silences.values() if s.state(now) == "active"]

    def mutes(self, labels: Mapping[str, str], now: float) -> bool:
        """Whether an active silence mutes an alert with these labels (the book is the
        silence stage, a :class:`monitor.alerting.muting.Muter`)."""
        return any(s.matches(labels, now) for s in self._silences.values())

    def prune(self, now: float, retention: float = DEFAULT_RETENTION) -> builtins.list[str]:
        """Forget silences that expired more than ``retention`` seconds ago, and the oldest
        expired ones beyond as many as may be live (so churn cannot grow the book); returns
        their ids."""
        expired = sorted((s for s in self._silences.values() if s.state(now) == "expired"), key=lambda s: s.ends_at)
        gone = [s.id for s in expired if s.ends_at + retention < now]
        surplus = len(expired) - len(gone) - MAX_LIVE_SILENCES
        if surplus > 0:
            gone += [s.id for s in expired if s.ends_at + retention >= now][:surplus]
        for silence_id in gone:
            del self._silences[silence_id]
        return gone

    def __len__(self) -> int:
        return len(self._silences)


def _can_update(previous: Silence, new: Silence, now: float) -> bool:
    if previous.matchers != new.matchers:
        return False
    match previous.state(now):
        case "active":
            # Moving the start of something already muting would rewrite history.
            return new.starts_at == previous.starts_at and new.ends_at > now
        case "pending":
            return new.starts_at >= now
        case _:
            return False
