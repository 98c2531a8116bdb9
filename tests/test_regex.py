"""User-supplied regexes (matchers, silences, templates) compiled with RE2: linear-time
matching whatever the pattern, and a clear one-line refusal for what RE2 leaves out."""

from __future__ import annotations

import re

import pytest

from monitor.alerting.matchers import Matcher
from monitor.alerting.silences import Silence
from monitor.core.regex import MAX_PATTERN_LENGTH, compile_regex, shown

NOW = 1_700_000_000.0
# Forty `.*` then a literal: Python's `re` tries every way of splitting the value among the
# forty stars before giving up, which never finishes on a long value.
FORTY_STARS = ".*" * 40 + "X"
LONG_VALUE = "a" * 100_000  # 100 kB label value


def test_forty_stars_then_x_on_a_100_kb_label_value_gives_the_right_answer() -> None:
    regex = compile_regex(FORTY_STARS)
    assert regex.fullmatch(LONG_VALUE) is False
    assert regex.fullmatch(LONG_VALUE + "X") is True
    assert regex.search(LONG_VALUE) is None


def test_a_silence_with_forty_stars_then_x_matches_a_100_kb_label_value() -> None:
    silence = Silence(matchers=[Matcher("alertname", "=", "ApiDown"), Matcher("check", "=~", FORTY_STARS)],
                      starts_at=NOW, ends_at=NOW + 3600)
    assert not silence.matches({"alertname": "ApiDown", "check": LONG_VALUE}, NOW)
    assert silence.matches({"alertname": "ApiDown", "check": LONG_VALUE + "X"}, NOW)


@pytest.mark.parametrize(("pattern", "matching", "not_matching"), [
    # Shapes the old backtracking guard refused: RE2 runs them in time linear in the value.
    ("(a+)+$", "a" * 100_000, "a" * 100_000 + "b"),
    ("(a+)+", "a" * 100_000, "a" * 100_000 + "b"),
    ("(x*)*y", "x" * 100_000 + "y", "x" * 100_000),
    ("(a|aa)+", "a" * 100_000, "a" * 100_000 + "!"),
    ("(?:a|a)*b", "a" * 100_000 + "b", "a" * 100_000),
    ("((ab)+c)+", "abc" * 30_000, "abc" * 30_000 + "ab"),
    ("(.*a){12}", "a" * 100_000, "b" * 100_000),
    ("[[:alpha:]]+", "abc", "ab1"),  # RE2's POSIX classes, which Python's re reads differently
])
def test_patterns_the_old_guard_refused_are_accepted_and_answer_right(
        pattern: str, matching: str, not_matching: str) -> None:
    regex = compile_regex(pattern)
    assert regex.fullmatch(matching)
    assert not regex.fullmatch(not_matching)
    assert Matcher("job", "=~", pattern).matches({"job": matching})
    assert Matcher("job", "!~", pattern).matches({"job": not_matching})


@pytest.mark.parametrize("pattern", ["api|web", ".*-prod", "5..", "(api|web)-.*", "[a-z]+-[0-9]{1,3}", "(?i)crit.*",
                                     "(a+)?", "x" * MAX_PATTERN_LENGTH])
def test_ordinary_patterns_are_accepted(pattern: str) -> None:
    compile_regex(pattern)
    Matcher("job", "=~", pattern)


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        ("(a)\\1", "backreferences such as \\1 are not supported (RE2 syntax)"),
        ("(?P<n>a)(?P=n)", "named backreferences (?P=name) are not supported (RE2 syntax)"),
        ("api(?=-prod)", "lookahead (?=...) is not supported (RE2 syntax)"),
        ("api(?!-dev)", "negative lookahead (?!...) is not supported (RE2 syntax)"),
        ("(?<=prod-)api", "lookbehind (?<=...) is not supported (RE2 syntax)"),
        ("(?<!dev-)api", "negative lookbehind (?<!...) is not supported (RE2 syntax)"),
        ("a++", "possessive quantifiers such as ++ are not supported (RE2 syntax)"),
        ("a*+b", "possessive quantifiers such as *+ are not supported (RE2 syntax)"),
        ("(?>a+)b", "atomic groups (?>...) are not supported (RE2 syntax)"),
        ("(?x) api | web", "the (?x) flag (verbose mode) is not supported (RE2 syntax)"),
        ("(?ix)api", "the (?x) flag (verbose mode) is not supported (RE2 syntax)"),
        ("(?#note)api", "comments (?#...) are not supported (RE2 syntax)"),
        ("(a)?(?(1)b|c)", "conditionals (?(...)...) are not supported (RE2 syntax)"),
        ("api\\Z", "the escape \\Z is not supported (RE2 syntax); RE2 spells end of text \\z"),
        ("(api", "missing ) to close a group"),
        ("a(?=b)\nc", "lookahead (?=...) is not supported (RE2 syntax)"),  # still a one-line error
        ("(api\nweb", "missing ) to close a group"),  # RE2 quotes the pattern; the reason does not
        ("[[:alphabet:]]", "unknown POSIX class [:alphabet:]"),
        ("x{1001}", "repetition {1001} is too large"),
        ("x" * (MAX_PATTERN_LENGTH + 1), "1025 characters long, over the limit of 1024"),
    ],
)
def test_refused_constructs_are_named_in_one_line(pattern: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        compile_regex(pattern)
    with pytest.raises(ValueError) as caught:
        Matcher("job", "=~", pattern)
    message = str(caught.value)
    # One line that says what and where: the pattern (cut short when long), the matcher, the reason.
    assert message.startswith("invalid regex ") and "in matcher job=~: " in message and reason in message
    assert "\n" not in message and len(message) < 300


def test_negative_regex_matchers_are_compiled_too_but_equality_is_not() -> None:
    with pytest.raises(ValueError, match=re.escape("lookahead (?=...) is not supported")):
        Matcher("job", "!~", "a(?=b)")
    # `=` compares text; a lookahead is just an odd value there.
    assert Matcher("job", "=", "a(?=b)").matches({"job": "a(?=b)"})


def test_matching_is_anchored_only_where_asked() -> None:
    regex = compile_regex("crit")
    assert regex.fullmatch("crit") and not regex.fullmatch("critical") and not regex.fullmatch("crit\n")
    found = regex.search("subcritical")
    assert found is not None and (found.start(), found.end(), found[0]) == (3, 7, "crit")


def test_match_offsets_count_characters_not_utf8_bytes() -> None:
    found = compile_regex("(?P<word>é+)").search("xxéé!")
    assert found is not None and (found.start(), found.end()) == (2, 4)
    assert found.groupdict() == {"word": "éé"}
    assert [m[0] for m in compile_regex("é").finditer("éaé")] == ["é", "é"]


def test_lone_surrogates_in_text_do_not_break_matching() -> None:
    # JSON "\ud800" decodes to a lone surrogate, which UTF-8 (and so RE2) cannot encode.
    regex = compile_regex("a.b")
    assert regex.fullmatch("a\ud800b")
    found = regex.search("xa\udfffb")
    assert found is not None and (found.start(), found.end()) == (1, 4)
    assert [m.start() for m in regex.finditer("a\ud800b a\ud800b")] == [0, 4]
    with pytest.raises(ValueError, match="lone surrogate"):
        compile_regex("a\ud800")


def test_shown_quotes_a_pattern_on_one_line_and_cuts_it() -> None:
    assert shown("a\nb") == "'a\\nb'"
    assert shown("x" * 100) == repr("x" * 60) + "..."


def test_remembered_verdicts_are_right_and_bounded() -> None:
    from monitor.core import regex as regex_mod

    pattern = regex_mod.compile_regex("prod-.*")
    for round_ in range(2):  # the second round answers from what was remembered
        assert [pattern.fullmatch(v) for v in ("prod-eu", "staging", "prod-")] == [True, False, True], round_
    for i in range(regex_mod.VERDICT_CACHE * 3):
        assert pattern.fullmatch(f"prod-{i}")
    assert len(pattern._verdicts) <= regex_mod.VERDICT_CACHE
    long_value = "prod-" + "x" * regex_mod.VERDICT_KEY_MAX
    assert pattern.fullmatch(long_value) and long_value not in pattern._verdicts
