"""Keeping secrets out of everything the daemon shows: logs, the API and status page, CLI
output, config errors and notifications.

Two kinds of knowledge, applied together by :func:`redact`:

* **Values.** The config loader registers every secret it can find in the loaded config
  (``SecretStr`` fields, DSN and URL passwords, credential-looking URL query values and
  header values). Any text that contains one of them, however it got there (a target that
  echoes a header back, a library that quotes its input), has it replaced by ``***``.
* **Shapes.** Credentials that were never configured but have a recognisable form:
  ``user:password@`` in a URL, ``api_key=…``-style pairs whose name says "credential",
  ``Bearer <token>``.

The registry is process-wide and only grows. A reload registers the new config's values
again (registering is idempotent); values of a check that was removed stay registered.
That is deliberate: a value that was a secret is still one (it may still be valid
somewhere), a late log line or notification about the removed check must stay clean, and
masking a string that no longer needs it costs nothing but a few ``***``.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote, quote_plus

MASK = "***"
# Shorter values would scrub ordinary words and numbers everywhere; a credential that
# short protects little anyway.
MIN_SECRET_LENGTH = 4

# Words that, as a part of a key, header or query-parameter name, mark its value as a
# credential: `api_key`, `X-Dash-Key`, `access_token`, `X-Amz-Signature`, `sessionId`...
_CREDENTIAL_WORDS = frozenset({
    "password", "passwd", "pwd", "passphrase", "secret", "token", "key", "apikey",
    "signature", "sig", "auth", "authorization", "credential", "credentials", "session",
    "sessionid", "cookie", "jwt",
})  # fmt: skip
# The same words glued to a prefix without a separator: `apiKey` (after camel-case
# splitting it is api+key anyway), `accesstoken`, `xsessionid`.
_CREDENTIAL_SUFFIXES = ("password", "passwd", "secret", "token", "key", "signature", "credential",
                        "credentials", "sessionid", "cookie")
_CAMEL = re.compile(r"([a-z0-9])([A-Z])")
_NAME_PARTS = re.compile(r"[^a-z0-9]+")


def credential_name(name: str) -> bool:
    """Does a key/header/parameter called ``name`` hold a credential?

    Errs on the side of yes (``monkey`` ends in ``key``): a masked harmless value is a
    nuisance, a shown credential is an incident.
    """
    lowered = _CAMEL.sub(r"\1_\2", name).lower()
    if any(part in _CREDENTIAL_WORDS for part in _NAME_PARTS.split(lowered)):
        return True
    return lowered.replace("_", "").replace("-", "").endswith(_CREDENTIAL_SUFFIXES)


# user:password@ (or a bare token@) right after a scheme.
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s]*@")
# name=value, the form of URL query strings, libpq DSNs and most log-ish text. The value
# stops at whitespace, `&` (next query parameter) and quotes (the end of a repr).
_KEY_VALUE = re.compile(r"(?<![\w.-])(?P<name>[A-Za-z_][\w.-]*)=(?P<value>[^\s&'\"]+)")
# A bearer token (RFC 6750's token68), but not the auth-params of a challenge such as
# `WWW-Authenticate: Bearer realm="api"`, which hold no credential.
_BEARER = re.compile(r"(?i)\b(bearer)\s+(?![A-Za-z0-9\-._~+/]+=\")[A-Za-z0-9\-._~+/]+=*")
# A URL inside any text, up to whitespace, a quote or an angle bracket, not counting
# punctuation that ends it in prose: "(last: http://h/p?a=1)".
_URL = re.compile(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>).,;:]")
_QUERY_VALUE = re.compile(r"(?P<name>[?&;][^=&;#\s]*=)[^&;#\s]*")

_lock = threading.Lock()
_values: frozenset[str] = frozenset()
# The compiled matcher for _values. Readers take this one reference without the lock;
# register() builds a new one and swaps it in whole.
_pattern: re.Pattern[str] | None = None


def register(values: Iterable[str]) -> None:
    """Add secret values; each is also matched as it appears in a URL or a JSON string."""
    global _values, _pattern
    new: set[str] = set()
    for value in values:
        if not isinstance(value, str) or len(value.strip()) < MIN_SECRET_LENGTH:
            continue
        new.update(_spellings(value))
    with _lock:
        if new <= _values:
            return
        values_now = _values | new
        _pattern = _compile(values_now)
        _values = values_now


def registered() -> frozenset[str]:
    return _values


def clear() -> None:
    """Forget every registered value. For tests only: the daemon never forgets (see above)."""
    global _values, _pattern
    with _lock:
        _values, _pattern = frozenset(), None


def redact(text: str) -> str:
    """Registered values, URL userinfo, credential-named ``name=value`` pairs and bearer
    tokens replaced by ``***``. Registered values go first, so a secret that contains
    ``=`` or ``@`` is replaced whole instead of being cut in two by the shape rules."""
    pattern = _pattern
    if pattern is not None:
        text = pattern.sub(MASK, text)
    text = _USERINFO.sub(r"\g<scheme>***@", text)
    text = _BEARER.sub(r"\1 ***", text)
    return _KEY_VALUE.sub(_mask_pair, text)


def mask_url_queries(text: str) -> str:
    """Every URL in ``text`` with the value of each query parameter replaced by ``***``:
    what a URL looks like wherever it is shown to a person (errors, logs)."""
    return _URL.sub(_mask_url, text)


def scrub(text: str) -> str:
    """:func:`redact` plus :func:`mask_url_queries`: for text shown to a person."""
    return mask_url_queries(redact(text))


def scrub_deep(value: Any) -> Any:
    """:func:`scrub` applied to every string inside dicts, lists and tuples (JSON-like data)."""
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {key: scrub_deep(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [scrub_deep(item) for item in value]
    return value


def _mask_pair(match: re.Match[str]) -> str:
    if not credential_name(match.group("name")):
        return match.group(0)
    return f"{match.group('name')}={MASK}"


def _mask_url(match: re.Match[str]) -> str:
    url = match.group(0)
    start = url.find("?")
    if start < 0:
        return url
    return url[:start] + _QUERY_VALUE.sub(rf"\g<name>{MASK}", url[start:])


def _spellings(value: str) -> set[str]:
    # How the same secret may appear in text: as written, percent-encoded in a URL, and
    # escaped inside a JSON string (a log line, an API answer).
    return {value, quote(value, safe=""), quote_plus(value, safe=""), json.dumps(value)[1:-1],
            json.dumps(value, ensure_ascii=False)[1:-1]}


def _compile(values: frozenset[str]) -> re.Pattern[str]:
    """One regex for all values, shaped as a trie, so matching costs about the same for ten
    values as for ten thousand (an alternation would try each value at every position).
    At any position the longest registered value wins, so a secret containing another is
    replaced whole."""
    try:
        return re.compile(_trie_regex(values))
    except (RecursionError, OverflowError, re.error):
        # Pathological nesting (values that are prefixes of each other thousands deep):
        # the plain alternation is slower but always compiles.
        return re.compile("|".join(re.escape(v) for v in sorted(values, key=len, reverse=True)))


def _trie_regex(values: Iterable[str]) -> str:
    root: dict[str, Any] = {}
    for value in values:
        node = root
        for char in value:
            node = node.setdefault(char, {})
        node[""] = {}  # "" (never a character) marks the end of a value
    # Post-order without recursion: values can be thousands of characters long.
    regex: dict[int, str] = {}
    stack: list[tuple[dict[str, Any], bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if not children_done:
            stack.append((node, True))
            stack.extend((child, False) for char, child in node.items() if char)
            continue
        branches = [re.escape(char) + regex.pop(id(child)) for char, child in node.items() if char]
        if not branches:
            regex[id(node)] = ""
        elif len(branches) == 1 and "" not in node:
            regex[id(node)] = branches[0]
        else:
            group = "(?:" + "|".join(branches) + ")"
            # A value ending here that others extend: greedy `?` tries the longer ones first.
            regex[id(node)] = group + "?" if "" in node else group
    return regex[id(root)]
