"""Parsing a scrape: the Prometheus text format 0.0.4 and OpenMetrics 1.0, as Prometheus 2.42 ingests them.

The format is chosen by the answer's Content-Type as Prometheus does: OpenMetrics for
``application/openmetrics-text``, the classic text format for anything else. One invalid
line rejects the whole scrape (Prometheus marks the target down and keeps nothing from
it); the error names the line. OpenMetrics sample names are kept as exposed
(``requests_total``, ``requests_created``, ``build_info``): Prometheus 2.42 stores them so.

Unlike Prometheus, a series exposed twice in one answer is an error here: Prometheus keeps
the first sample and only counts the rest (``prometheus_target_scrapes_sample_duplicate_timestamp_total``),
so a target that publishes two different values for one series is silently half-read there.

Speed: every line goes through one compiled regular expression; the label text of a series
is parsed once and then looked up in ``cache`` (pass the same dict on every scrape of one
target). bench/ measures it against prometheus_client's parser.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass

# What Prometheus 2.42 sends (measured against /usr/bin/prometheus): OpenMetrics preferred.
ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
          "text/plain;version=0.0.4;q=0.5,*/*;q=0.1")

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL_NAME = r"[a-zA-Z_][a-zA-Z0-9_]*"
_LABEL_VALUE = r'"(?:[^"\\\n]|\\.)*"'
_LABEL = rf"[ \t]*{_LABEL_NAME}[ \t]*=[ \t]*{_LABEL_VALUE}[ \t]*"
_LABELS = rf"\{{(?:{_LABEL}(?:,{_LABEL})*,?)?[ \t]*\}}"
# name, label text (with braces), value, timestamp, rest (exemplar in OpenMetrics)
_SAMPLE = re.compile(rf"[ \t]*({_NAME})[ \t]*({_LABELS})?[ \t]*([^ \t#{{}}]+)(?:[ \t]+([^ \t#]+))?[ \t]*(#.*)?")
_LABEL_PAIR = re.compile(rf"[ \t]*({_LABEL_NAME})[ \t]*=[ \t]*\"((?:[^\"\\\n]|\\.)*)\"[ \t]*,?")
_NAME_RE = re.compile(_NAME)
_LABELS_RE = re.compile(_LABELS)
_ESCAPE = re.compile(r"\\(.)")
_EXEMPLAR = re.compile(rf"#[ \t]+{_LABELS}[ \t]+[^ \t]+(?:[ \t]+[^ \t]+)?[ \t]*")
_METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "summary", "untyped"})
_OM_METRIC_TYPES = frozenset({"counter", "gauge", "histogram", "gaugehistogram", "summary", "info", "stateset",
                              "unknown"})

Labels = dict[str, str]
# The parsed identity of one label text: (labels without __name__, the series key).
ParseCache = dict[str, tuple[Labels, tuple[tuple[str, str], ...]]]


class ExpositionError(ValueError):
    """The answer is not valid exposition text; the message names the line."""


@dataclass(frozen=True, slots=True)
class Scrape:
    """One parsed answer: (name, labels without ``__name__``, value, timestamp in seconds or
    None) of each sample whose name was asked for; ``count`` counts every sample."""

    samples: list[tuple[str, Labels, float, float | None]]
    count: int
    openmetrics: bool


def is_openmetrics(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower() == "application/openmetrics-text"


def parse(text: str, content_type: str = "text/plain", cache: ParseCache | None = None,
          cache_limit: int = 100_000, names: frozenset[str] | None = None) -> Scrape:
    """Parse one answer; raises ExpositionError (one line, with the line number).

    With ``names``, only samples of those metric names are returned (and their label sets
    cached); every line is still checked, since one bad line fails the scrape."""
    openmetrics = is_openmetrics(content_type)
    if cache is None:
        cache = {}
    elif len(cache) > cache_limit:
        cache.clear()  # a target whose label values churn must not grow it for ever
    samples: list[tuple[str, Labels, float, float | None]] = []
    seen: set[tuple[str, tuple[tuple[str, str], ...]]] = set()
    seen_raw: set[tuple[str, str]] = set()  # series not asked for, by their text
    append, add = samples.append, seen.add
    lines = text.split("\n")
    if openmetrics:
        if lines and lines[-1] == "":
            lines.pop()
        if not lines or lines[-1].rstrip("\r") != "# EOF":
            raise ExpositionError("data does not end with # EOF")
        lines.pop()
    checked: set[str] = set()  # metric names already checked in this answer
    count = 0
    for number, line in enumerate(lines, 1):
        if not line or line.isspace():
            if openmetrics:
                raise _error(number, "empty line", line)
            continue
        if line[0] == "#" or line.lstrip()[:1] == "#":
            _comment(number, line, openmetrics)
            continue
        brace = line.find("{")
        if openmetrics and "#" in line:  # an exemplar may hold braces too: the full grammar
            name, label_text, value_text, ts_text = _slow(number, line, openmetrics)
        elif brace < 0:
            parts = line.split()
            if not 2 <= len(parts) <= 3:
                raise _error(number, _why(line), line)
            name, label_text, value_text = parts[0], None, parts[1]
            ts_text = parts[2] if len(parts) == 3 else None
        else:
            close = line.rfind("}")
            if close < brace:
                raise _error(number, "invalid label set", line)
            name, label_text = line[:brace].strip(), line[brace:close + 1]
            parts = line[close + 1:].split()
            if not 1 <= len(parts) <= 2:
                raise _error(number, _why(line), line)
            value_text, ts_text = parts[0], parts[1] if len(parts) == 2 else None
        if name not in checked:
            if _NAME_RE.fullmatch(name) is None:
                raise _error(number, _why(line), line)
            checked.add(name)
        count += 1
        if names is not None and name not in names:
            # Not read by the query: checked, never parsed into labels or kept.
            if label_text is not None and _LABELS_RE.fullmatch(label_text) is None:
                raise _error(number, "invalid label set", line)
            if _float(value_text) is None:
                raise _error(number, f"invalid value {value_text!r}", line)
            if ts_text is not None and _timestamp(ts_text, openmetrics) is None:
                raise _error(number, f"invalid timestamp {ts_text!r}", line)
            raw = (name, label_text or "")
            if raw in seen_raw:
                raise _error(number, "duplicate series in one scrape", line)
            seen_raw.add(raw)
            continue
        if label_text is None:
            labels: Labels = {}
            key: tuple[tuple[str, str], ...] = ()
        else:
            hit = cache.get(label_text)
            if hit is None:
                hit = _labels(number, label_text, line)
                cache[label_text] = hit
            labels, key = hit
        value = _float(value_text)
        if value is None:
            raise _error(number, f"invalid value {value_text!r}", line)
        ts: float | None = None
        if ts_text is not None:
            ts = _timestamp(ts_text, openmetrics)
            if ts is None:
                raise _error(number, f"invalid timestamp {ts_text!r}", line)
        series = (name, key)
        if series in seen:
            raise _error(number, "duplicate series in one scrape", line)
        add(series)
        append((name, labels, value, ts))
    return Scrape(samples, count, openmetrics)


def _slow(number: int, line: str, openmetrics: bool) -> tuple[str, str | None, str, str | None]:
    m = _SAMPLE.fullmatch(line)
    if m is None:
        raise _error(number, _why(line), line)
    name, label_text, value_text, ts_text, rest = m.groups()
    if rest is not None and (not openmetrics or _EXEMPLAR.fullmatch(rest) is None):
        raise _error(number, "unexpected text after the value", line)
    return name, label_text, value_text, ts_text


def _labels(number: int, text: str, line: str) -> tuple[Labels, tuple[tuple[str, str], ...]]:
    if _LABELS_RE.fullmatch(text) is None:
        raise _error(number, "invalid label set", line)
    pairs: list[tuple[str, str]] = _LABEL_PAIR.findall(text, 1, len(text) - 1)
    if "\\" in text:
        pairs = [(k, _ESCAPE.sub(_unescape, v) if "\\" in v else v) for k, v in pairs]
    labels: Labels = dict(pairs)
    if len(labels) != len(pairs):
        names = [k for k, _ in pairs]
        twice = next(k for k in names if names.count(k) > 1)
        raise _error(number, f"label {twice!r} given twice", line)
    if "__name__" in labels:
        raise _error(number, "__name__ given as a label", line)
    # Prometheus drops empty label values: `a=""` is the same series as no `a`.
    if '""' in text:
        for name in [n for n, v in labels.items() if v == ""]:
            del labels[name]
    return labels, tuple(sorted(labels.items()))


def _unescape(m: re.Match[str]) -> str:
    char = m.group(1)
    return "\n" if char == "n" else char if char in '\\"' else "\\" + char


def _float(text: str) -> float | None:
    # Go's ParseFloat: decimal, exponent, Inf/NaN spelled in any case; no `_` separators.
    if "_" in text:
        return None
    try:
        return float(text)
    except ValueError:
        return None


def _timestamp(text: str, openmetrics: bool) -> float | None:
    if openmetrics:  # seconds, possibly fractional
        value = _float(text)
        return value if value is not None and math.isfinite(value) else None
    try:  # milliseconds, an integer
        return int(text) / 1000.0
    except ValueError:
        return None


def _comment(number: int, line: str, openmetrics: bool) -> None:
    body = line.lstrip()[1:]
    parts = body.split(None, 3) if body[:1] in (" ", "\t") else []
    keyword = parts[0] if parts else ""
    if keyword in ("HELP", "TYPE", "UNIT"):
        if len(parts) < 2 or _NAME_RE.fullmatch(parts[1]) is None:
            raise _error(number, f"invalid metric name in {keyword}", line)
        if keyword == "TYPE":
            kind = parts[2].strip() if len(parts) > 2 else ""
            allowed = _OM_METRIC_TYPES if openmetrics else _METRIC_TYPES
            if kind not in allowed:
                raise _error(number, f"invalid metric type {kind!r}", line)
        elif keyword == "UNIT" and not openmetrics:
            return  # a plain comment in the classic format
        return
    if keyword == "EOF" and openmetrics:
        raise _error(number, "unexpected data after # EOF", line)
    if openmetrics:  # OpenMetrics has no free-form comments
        raise _error(number, "invalid comment (only # HELP, # TYPE, # UNIT and # EOF)", line)


def _why(line: str) -> str:
    stripped = line.lstrip()
    if re.match(_NAME, stripped) is None:
        return f"{stripped[:1]!r} is not a valid start of a sample"
    if "{" in stripped and re.search(_LABELS, stripped) is None:
        return "invalid label set"
    return "expected a metric name, optional labels, a value and an optional timestamp"


def _error(number: int, reason: str, line: str) -> ExpositionError:
    shown = line.strip()
    shown = shown if len(shown) <= 80 else shown[:79] + "…"
    return ExpositionError(f"invalid exposition at line {number}: {reason}: {shown!r}")


def label_items(labels: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))
