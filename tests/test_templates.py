"""Annotation templates: Prometheus' documented behaviour, load-time errors, and renders that never raise."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.rules.templates import (
    MISSING_LABEL,
    NO_VALUE,
    OUTPUT_LIMIT,
    REGEX_INPUT_LIMIT,
    Template,
    compile_template,
)


def render(text: str, labels: dict[str, str] | None = None, value: float | None = None, url: str = "") -> str:
    return compile_template(text).render(labels or {}, value, url)


# ---- functions, with the examples from Prometheus' template reference / examples ------------------

@pytest.mark.parametrize(("text", "value", "expected"), [
    ("{{ humanize $value }}", 1234567.0, "1.235M"),
    ("{{ humanize $value }}", 1234.0, "1.234k"),
    ("{{ humanize $value }}", 0.0012, "1.2m"),
    ("{{ humanize $value }}", 0.0, "0"),
    ("{{ humanize $value }}", -1234.0, "-1.234k"),
    ("{{ humanize $value }}", 12.0, "12"),
    ("{{ humanize $value }}", 2.5e-7, "250n"),
    ("{{ humanize $value }}", math.inf, "+Inf"),
    ("{{ humanize $value }}", math.nan, "NaN"),
    ("{{ humanize1024 $value }}", 1048576.0, "1Mi"),
    ("{{ humanize1024 $value }}", 1536.0, "1.5ki"),  # Prometheus spells kibi "ki"
    ("{{ humanize1024 $value }}", 0.5, "0.5"),
    ("{{ humanize1024 $value }}", 1099511627776.0, "1Ti"),
    ("{{ humanizeDuration $value }}", 899.99, "14m 59s"),
    ("{{ humanizeDuration $value }}", 3723.0, "1h 2m 3s"),
    ("{{ humanizeDuration $value }}", 90061.0, "1d 1h 1m 1s"),
    ("{{ humanizeDuration $value }}", 86400.0, "1d 0h 0m 0s"),
    ("{{ humanizeDuration $value }}", 1.5, "1.5s"),
    ("{{ humanizeDuration $value }}", 0.25, "250ms"),
    ("{{ humanizeDuration $value }}", 0.0000015, "1.5us"),
    ("{{ humanizeDuration $value }}", 0.0, "0s"),
    ("{{ humanizeDuration $value }}", -90.0, "-1m 30s"),
    ("{{ humanizePercentage $value }}", 0.1234567, "12.35%"),
    ("{{ humanizePercentage $value }}", 0.256, "25.6%"),
    ("{{ humanizePercentage $value }}", 1.0, "100%"),
    ("{{ $value | humanizeTimestamp }}", 1435065584.128, "2015-06-23 13:19:44.128 +0000 UTC"),
    ("{{ humanizeTimestamp $value }}", 1767323045.0, "2026-01-02 03:04:05 +0000 UTC"),
    ("{{ humanizeTimestamp $value }}", 0.0, "1970-01-01 00:00:00 +0000 UTC"),
    ("{{ humanizeTimestamp $value }}", -1.5, "1969-12-31 23:59:58.5 +0000 UTC"),
])
def test_humanize_functions(text: str, value: float, expected: str) -> None:
    assert render(text, value=value) == expected


def test_humanize_functions_accept_numeric_label_strings() -> None:
    # Like Prometheus' ConvertToFloat: a label holding a number can be humanized.
    assert render("{{ $labels.bytes | humanize1024 }}", {"bytes": "2048"}) == "2ki"
    assert render("{{ humanize $labels.x }}", {"x": "1e6"}) == "1M"


@pytest.mark.parametrize(("text", "expected"), [
    ('{{ "aa bb CC" | title }}', "Aa Bb CC"),  # Go's strings.Title leaves the rest of a word alone
    ('{{ title "hello_world o\'neil" }}', "Hello_world O'Neil"),
    ('{{ "aa bb CC" | toUpper }}', "AA BB CC"),
    ('{{ "aA bB CC" | toLower }}', "aa bb cc"),
    ('{{ urlquery "a b&c/d" }}', "a+b%26c%2Fd"),
    ('{{ match "a+" "aa" }}', "true"),
    ('{{ match "^b" "aa" }}', "false"),
    ('{{ reReplaceAll "localhost:(.*)" "my.domain:$1" "localhost:3000" }}', "my.domain:3000"),
    ('{{ reReplaceAll "(?P<host>[^:]+):(\\\\d+)" "${host}/$2" "db:5432" }}', "db/5432"),
    ('{{ reReplaceAll "(a)" "$1x|${1}x|$$|$9" "a" }}', "|ax|$|"),  # Go: "$1x" names group "1x"
    ('{{ reReplaceAll "a*" "-" "baaac" }}', "-b-c-"),  # Go's empty-match rule, not Python's
    ("{{ reReplaceAll `\\d+` \"N\" \"a1b22\" }}", "aNbN"),  # raw strings spare the escaping
])
def test_string_and_regex_functions(text: str, expected: str) -> None:
    assert render(text) == expected


def test_prometheus_documented_label_examples() -> None:
    labels = {"instance": "localhost:3000", "alertname": "DiskFull", "check": "disk"}
    assert render('{{ reReplaceAll "localhost:(.*)" "my.domain:$1" $labels.instance }}', labels) == "my.domain:3000"
    assert render('{{ match "a+" $labels.instance }}', {"instance": "aa"}) == "true"
    assert render("Disk {{ $labels.check }} is {{ $value | humanizePercentage }} full", labels, 0.256) == \
        "Disk disk is 25.6% full"
    assert render("https://x/runbook#{{ $labels.alertname }}", labels) == "https://x/runbook#DiskFull"


# ---- variables and values ---------------------------------------------------------------------------

def test_variables_and_go_style_aliases() -> None:
    labels = {"job": "api", "instance": "h:1"}
    assert render("{{ $labels.job }} {{ .Labels.instance }}", labels) == "api h:1"
    assert render("{{ $value }} {{ .Value }}", value=0.5) == "0.5 0.5"
    assert render("{{ $externalURL }}/alerts", url="http://mon:9090") == "http://mon:9090/alerts"


def test_missing_label_and_missing_value() -> None:
    # Prometheus renders with missingkey=zero, so a missing label is the empty string.
    assert MISSING_LABEL == ""
    assert render("[{{ $labels.nosuch }}]", {"job": "x"}) == "[]"
    assert render("{{ $value }}", value=None) == NO_VALUE == "<no value>"


@pytest.mark.parametrize(("value", "expected"), [
    (0.5, "0.5"), (3.0, "3"), (1e21, "1e+21"), (100000.0, "100000"), (1234567.0, "1.234567e+06"),
    (0.0001, "0.0001"), (0.00001, "1e-05"), (-2.25, "-2.25"), (123456.7, "123456.7"),
    (math.nan, "NaN"), (math.inf, "+Inf"), (-math.inf, "-Inf"), (0.1 + 0.2, "0.30000000000000004"),
])
def test_value_prints_like_go_percent_v(value: float, expected: str) -> None:
    assert render("{{ $value }}", value=value) == expected


def test_literals() -> None:
    assert render('{{ "a\\"b\\\\c\\u00e9\\n" }}') == 'a"b\\cé\n'
    assert render("{{ `raw \\d` }} {{ 42 }} {{ -1.5 }} {{ true }} {{ false }}") == "raw \\d 42 -1.5 true false"


# ---- pipelines, printf, if/else, whitespace, comments ----------------------------------------------------

def test_pipelines_pass_the_value_as_the_last_argument() -> None:
    assert render("{{ $value | humanize | toUpper }}", value=1234.0) == "1.234K"
    assert render('{{ $labels.instance | reReplaceAll ":.*" "" }}', {"instance": "h:9100"}) == "h"
    assert render('{{ "x" | printf "%s-%s" "a" }}') == "a-x"
    assert render('{{ printf "%s is %s" $labels.job (humanize $value) }}', {"job": "api"}, 2048.0) == "api is 2.048k"
    assert render('{{ (printf "%d" 3) | printf "<%s>" }}') == "<3>"


@pytest.mark.parametrize(("text", "expected"), [
    ('{{ printf "%.2f" $value }}', "1234.57"),
    ('{{ printf "%.0f%%" 99.6 }}', "100%"),
    ('{{ printf "%d items" 3 }}', "3 items"),
    ('{{ printf "%d" $value }}', "%!d(float64=1234.5678)"),  # Go: %d of a fraction is a bad verb
    ('{{ printf "%d" 3.0 }}', "3"),
    ('{{ printf "%s=%v" "a" $value }}', "a=1234.5678"),
    ('{{ printf "%g|%g|%.3g" 1e7 0.5 $value }}', "1e+07|0.5|1.23e+03"),
    ('{{ printf "%e" 1234.5 }}', "1.234500e+03"),
    ('{{ printf "%q" "x\\"y" }}', '"x\\"y"'),
    ('{{ printf "%5s|%-5s|%05.1f|%+d|%x" "a" "b" 3.14159 4 255 }}', "    a|b    |003.1|+4|ff"),
    ('{{ printf "%.3s" "abcdef" }}', "abc"),
    ('{{ printf "%f" "1.5" }}', "1.500000"),
    ('{{ printf "%d" "abc" }}', "%!d(string=abc)"),
    ('{{ printf "%d %d" 1 }}', "1 %!d(MISSING)"),
    ('{{ printf "%d" 1 2 }}', "1%!(EXTRA int=2)"),
    ('{{ printf "100%" }}', "100%!(NOVERB)"),
    ('{{ printf "%z" 1 }}', "%!z(int=1)"),
    ('{{ printf "%f" $labels.nosuch }}', "%!f(string=)"),
])
def test_printf(text: str, expected: str) -> None:
    assert render(text, value=1234.5678) == expected


def test_printf_width_cannot_allocate_gigabytes() -> None:
    out = render('{{ printf "%999999999d" 1 }}')
    assert len(out) < 100


@pytest.mark.parametrize(("value", "expected"), [(0.95, "high"), (0.6, "mid"), (0.1, "low"), (None, "low")])
def test_if_else_if_else(value: float | None, expected: str) -> None:
    text = ("{{ if match \"^0[.]9\" (printf \"%v\" $value) }}high{{ else if $labels.warn }}mid"
            "{{ else }}low{{ end }}")
    labels = {"warn": "yes"} if value == 0.6 else {}
    assert render(text, labels, value) == expected


@pytest.mark.parametrize(("condition", "truthy"), [
    ("$value", True), ("0", False), ("0.0", False), ('""', False), ('"0"', True), ("$labels.nosuch", False),
    ("$labels.job", True), ("false", False), ("true", True), ('match "x" "y"', False), ("$labels.job | toUpper", True),
])
def test_if_truthiness(condition: str, truthy: bool) -> None:
    assert render(f"{{{{ if {condition} }}}}yes{{{{ else }}}}no{{{{ end }}}}", {"job": "a"}, 1.0) == \
        ("yes" if truthy else "no")
    assert render("{{ if $value }}yes{{ end }}", value=None) == ""


def test_nested_if() -> None:
    text = "{{ if $labels.a }}A{{ if $labels.b }}B{{ else }}b{{ end }}{{ else }}-{{ end }}!"
    assert render(text, {"a": "1", "b": "1"}) == "AB!"
    assert render(text, {"a": "1"}) == "Ab!"
    assert render(text, {}) == "-!"


def test_trim_markers_and_comments() -> None:
    assert render("a  \n {{- $labels.x -}} \n  b", {"x": "X"}) == "aXb"
    assert render("a {{/* a comment, with }} inside */}} b") == "a  b"
    assert render("a {{- /* trimmed both sides */ -}} b") == "ab"
    assert render("{{ -3 }}") == "-3"  # "{{-3" is a number, not a trim marker
    assert render("no actions at all }} {") == "no actions at all }} {"
    assert render('{{ "}}" }}') == "}}"


# ---- compile-time errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "message", "column"), [
    ("abc {{ $value", "unclosed action", 5),
    ("{{ $value }", "unclosed action", 1),
    ("{{ nosuch 1 }}", "unknown function 'nosuch'", 4),
    ("{{ $value | nosuch }}", "unknown function 'nosuch'", 13),
    ("{{ $foo }}", "unknown variable '$foo'", 4),
    ("{{ .Foo }}", "unknown variable '.Foo'", 4),
    ("{{ $labels.a.b }}", "unknown variable", 4),
    ("{{ . }}", "unknown variable", 4),
    ("{{ $externalLabels.x }}", "unknown variable", 4),
    ("{{ $labels }}", "$labels is a map; use $labels.NAME", 4),
    ("{{ .Labels }}", ".Labels is a map", 4),
    ("{{ humanize }}", "humanize takes 1 argument(s), got 0", 4),
    ("{{ humanize 1 2 }}", "humanize takes 1 argument(s), got 2", 4),
    ("{{ 1 | humanize 2 }}", "got 2 (counting the piped value)", 8),
    ("{{ reReplaceAll \"a\" \"b\" }}", "reReplaceAll takes 3 argument(s), got 2", 4),
    ("{{ printf }}", "printf takes at least 1 argument(s), got 0", 4),
    ('{{ "abc }}', "unterminated string", 4),
    ("{{ `abc }}", "unterminated string", 4),
    ('{{ "a\\d" }}', "bad escape in \"a\\d\"", 4),
    ("{{ if $value }}x", "'if' without matching '{{ end }}'", 1),
    ("x{{ end }}", "'end' without 'if'", 2),
    ("{{ else }}", "'else' without 'if'", 1),
    ("{{ if 1 }}{{ else }}{{ else }}{{ end }}", "unexpected 'else' after 'else'", 21),
    ("{{ if }}{{ end }}", "'if' needs a condition", 1),
    ("{{ if 1 }}{{ end x }}", "unexpected 'x' after 'end'", 11),
    ("{{ range $labels }}{{ end }}", "'range' is not supported", 1),
    ("{{ }}", "empty action", 1),
    ("{{ $value | }}", "missing function after '|'", 11),
    ("{{ 1 | 2 }}", "only a function can follow '|'", 8),
    ("{{ $value 1 }}", "is not a function", 4),
    ("{{ printf \"%s\" humanize }}", "needs parentheses", 16),
    ("{{ (humanize 1 }}", "unclosed '('", 4),
    ("{{ 1 ) }}", "unexpected ')'", 6),
    ("{{ $x := 1 }}", "unexpected character ':'", 7),
    ("{{/* never closed }}", "unclosed comment", 1),
    ("{{ 99999999999999999999 }}", "out of range", 4),
    ("{{ 1e999 }}", "out of range", 4),
    ('{{ match "(" "x" }}', "invalid regex", 4),
    ('{{ match "a(?=b)" "x" }}', "lookahead (?=...) is not supported", 4),
    ('{{ match "a++" "x" }}', "possessive quantifiers", 4),
    ('{{ match "(a)\\\\1" "x" }}', "backreferences", 4),
    ('{{ match "[[:alphabet:]]" "x" }}', "invalid regex", 4),
    ('{{ match "(?x) a" "x" }}', "(?x) flag", 4),
    ('{{ match "(?<=a)b" "x" }}', "lookbehind (?<=...) is not supported", 4),
    ("first line\n  {{ nosuch }}", "at line 2, column 6", 6),
])
def test_compile_errors(text: str, message: str, column: int) -> None:
    with pytest.raises(ValueError) as excinfo:
        compile_template(text)
    assert message in str(excinfo.value)
    assert f"column {column}" in str(excinfo.value)


@pytest.mark.parametrize(("text", "expected"), [
    # Refused by the old backtracking guard; RE2 (Go's engine, as in Prometheus) runs them in linear time.
    ('{{ match "(a+)+$" "aaa" }}', "true"),
    ('{{ match "(a|aa)*b" "aab" }}', "true"),
    ('{{ match ".*.*.*.*.*x" "abx" }}', "true"),
    ('{{ match "^[[:alpha:]]+$" "abc" }}', "true"),  # RE2's POSIX classes, which Python's re reads differently
    ('{{ match "^[[:alpha:]]+$" "ab1" }}', "false"),
])
def test_patterns_the_old_guard_refused_compile_and_run(text: str, expected: str) -> None:
    assert render(text) == expected


def test_deep_nesting_is_a_compile_error_not_a_crash() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        compile_template("{{ " + "(" * 500 + "1" + ")" * 500 + " }}")
    with pytest.raises(ValueError, match="nested too deeply"):
        compile_template("{{ if 1 }}" * 500 + "{{ end }}" * 500)


def test_compiled_template_keeps_its_source() -> None:
    template = compile_template("{{ $value }}")
    assert isinstance(template, Template) and template.source == "{{ $value }}"


# ---- render never raises -------------------------------------------------------------------------------------

def test_runtime_problems_render_in_place() -> None:
    out = render("a {{ humanize $labels.check }} b {{ $labels.check }}", {"check": "disk"})
    assert out == "a <error: can't convert string 'disk' to a number> b disk"
    assert render("{{ humanize $value }}", value=None).startswith("<error: ")
    assert render("{{ humanizeTimestamp 1e300 }}").startswith("<error: ")
    assert render("{{ if humanize $labels.x }}y{{ end }}!", {"x": "?"}).endswith("!")
    assert render("{{ match $labels.re \"x\" }}", {"re": "("}).startswith("<error: invalid regex")


def test_output_is_capped() -> None:
    out = render("{{ $labels.big }}{{ $labels.big }}", {"big": "x" * 100_000})
    assert len(out) == OUTPUT_LIMIT and out.endswith("[truncated]")
    out = render('{{ reReplaceAll "" $labels.r $labels.s }}', {"r": "y" * 10_000, "s": "a" * 4000})
    assert len(out) <= OUTPUT_LIMIT and "too long" in out


def test_regex_input_is_bounded() -> None:
    labels = {"long": "a" * (REGEX_INPUT_LIMIT + 1)}
    assert "over the limit of 4096" in render('{{ match "b" $labels.long }}', labels)
    assert render('{{ match "b" $labels.long | printf "%.4096s" }}', labels) != ""  # (the error is text)


def test_catastrophic_regexes_return() -> None:
    # Exponential shapes in Python's re (`(a+)+$` on this text runs for hours there) are plain
    # patterns for RE2, from a label as from a literal, and answer right away.
    evil = {"re": "(a+)+$", "text": "a" * 40 + "b"}
    assert render("{{ match $labels.re $labels.text }}", evil) == "false"
    assert render('{{ reReplaceAll $labels.re "" $labels.text }}', evil) == "a" * 40 + "b"
    assert render('{{ match "(a+)+$" $labels.text }}', {"text": "a" * 4000}) == "true"
    # Polynomial ones too: `(.*):(.*)x` on 4 KiB of "a:" takes ~50 s in Python's re.
    text = "{{ match `(.*):(.*)x` $labels.text }}"
    assert render(text, {"text": "a:" * 2048}) == "false"
    assert render(text, {"text": "a:" * 100}) == "false"
    assert render("{{ match `(.*)x` $labels.text }}", {"text": "a" * REGEX_INPUT_LIMIT}) == "false"


# ---- properties ------------------------------------------------------------------------------------------------

_EVERY_FUNCTION = (
    "{{ $labels.a }} {{ .Labels.b }} {{ $value }} {{ .Value }} {{ $externalURL }}"
    "{{ humanize $labels.a }}{{ humanize1024 $value }}{{ humanizeDuration $value }}"
    "{{ humanizePercentage $labels.b }}{{ humanizeTimestamp $value }}{{ $labels.a | title | toUpper | toLower }}"
    '{{ printf "%d %s %.2f %v %q %x %g %e" $value $labels.a $labels.b $value $labels.a $value $value $labels.b }}'
    '{{ urlquery $labels.a }}{{ match $labels.a $labels.b }}{{ reReplaceAll $labels.a "$1${x}" $labels.b }}'
    '{{ reReplaceAll "(.)" "<$1>" $labels.b }}{{ if $labels.a }}A{{ else if $value }}V{{ else }}-{{ end }}'
)
_labels = st.dictionaries(st.sampled_from(["a", "b", "c"]) | st.text(max_size=5), st.text(max_size=50), max_size=4)
_values = st.none() | st.floats() | st.sampled_from([0.0, 1e300, -1e-300, 9.3e18, 1435065584.128])


@given(labels=_labels, value=_values, url=st.text(max_size=10))
@settings(max_examples=300, deadline=None)
def test_render_never_raises_for_any_labels_and_value(labels: dict[str, str], value: float | None, url: str) -> None:
    out = compile_template(_EVERY_FUNCTION).render(labels, value, url)
    assert isinstance(out, str) and len(out) <= OUTPUT_LIMIT


_FRAGMENTS = [
    "{{", "}}", "{{- ", " -}}", " ", "\n", "$labels.a", "$labels", "$value", ".Value", ".Labels.b", "$externalURL",
    "|", "(", ")", "if", "else", "end", "1", "-2.5", "1e3", '"%d"', '"x"', '"a+"', "`(.)`", '"\\n"', '"',
    "humanize", "humanize1024", "humanizeDuration", "humanizePercentage", "humanizeTimestamp", "printf",
    "toUpper", "toLower", "title", "urlquery", "match", "reReplaceAll", "true", "/*", "*/", "text", "$$", "%",
]


@given(parts=st.lists(st.sampled_from(_FRAGMENTS), max_size=25), labels=_labels, value=_values)
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_generated_templates_compile_or_fail_cleanly_and_render(
    parts: list[str], labels: dict[str, str], value: float | None
) -> None:
    text = "".join(parts)
    try:
        template = compile_template(text)
    except ValueError as err:
        assert "column " in str(err)
        return
    out = template.render(labels, value, "http://x")
    assert isinstance(out, str) and len(out) <= OUTPUT_LIMIT


@given(text=st.text(max_size=60))
@settings(max_examples=500, deadline=None)
def test_arbitrary_text_compiles_or_raises_value_error(text: str) -> None:
    try:
        template = compile_template(text)
    except ValueError:
        return
    assert isinstance(template.render({"a": "1"}, 1.0), str)


@given(pattern=st.text(alphabet="ab()|*+?{}12,[]^\\.$", max_size=12))
@settings(max_examples=1000, deadline=None)
def test_any_pattern_from_a_label_renders(pattern: str) -> None:
    out = render("{{ reReplaceAll $labels.re \"-\" $labels.s }}", {"re": pattern, "s": "ab" * 50})
    assert isinstance(out, str)
