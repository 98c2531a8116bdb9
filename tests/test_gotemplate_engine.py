"""The Go text/template engine (monitor.alerting.templating), construct by construct.

Expected strings are what Go's text/template prints for the same template and data (Go's
documented semantics: trim markers eat all white space on their side, maps range in key
order, fmt's %v of a float switches to an exponent at 1e+06, Sprint puts spaces only
between non-string operands...).
"""

from __future__ import annotations

from typing import Any

import pytest

from monitor.alerting.templating import ExecError, TemplateSet, TemplateSyntaxError
from monitor.alerting.templating.values import KV

DATA: dict[str, Any] = {
    "m": {"b": "2", "a": "1", "c": "3"},
    "kv": KV({"job": "api", "alertname": "Down"}),
    "s": "b",
    "l": ["p", "q", "r"],
    "n": 3,
    "f": 2.5,
    "empty": [],
    "none": None,
    "nested": {"inner": {"x": "deep"}},
}


def render(text: str, data: Any = DATA) -> str:
    return TemplateSet.defaults().render(text, data)


CASES = [
    # text, actions, comments, trim markers
    ("plain text", "plain text"),
    ('{{ "abc" }}', "abc"),
    ("a {{/* a comment */}} b", "a  b"),
    ("a {{- /* trimmed */ -}} b", "ab"),
    ("x  \n\t {{- 1 }}", "x1"),
    ("{{ 1 -}} \n\n y", "1y"),
    ("{{- 1 -}}", "1"),
    ("{{ -1 }}", "-1"),  # `{{-1` is a number: the dash needs a space to be a trim marker
    ("a\n{{- if true }}\n  b\n{{- end }}\nc", "a\n  b\nc"),
    # literals
    ("{{ 42 }} {{ 0x1F }} {{ 1_000 }} {{ 017 }} {{ 'a' }}", "42 31 1000 15 97"),
    ("{{ 1.5 }} {{ 1e3 }} {{ 1e6 }} {{ 123456.0 }} {{ 0.0001 }} {{ 0.00001 }}", "1.5 1000 1e+06 123456 0.0001 1e-05"),
    ('{{ "tab\\there" }}|{{ `raw\\n` }}|{{ "\\u00e9" }}', "tab\there|raw\\n|é"),
    ("{{ true }} {{ false }}", "true false"),
    # fields, maps, methods
    ("{{ .s }}", "b"),
    ("{{ .nested.inner.x }}", "deep"),
    ("{{ .kv.job }}|{{ .kv.missing }}|", "api||"),  # a missing label is "" (missingkey=zero)
    ("{{ .m.missing }}", "<no value>"),  # a generic map's missing key prints <no value>
    ("{{ .none.field }}", "<no value>"),  # a field of nil is the zero value
    ("{{ .kv }}", "alertname=Down, job=api"),  # KV has a String method
    ("{{ .kv.SortedPairs.Values }}", "[Down api]"),
    ("{{ .kv.Names.Join \",\" }}", "alertname,job"),
    ("{{ .m }}", "map[a:1 b:2 c:3]"),
    ("{{ .l }}", "[p q r]"),
    # variables
    ("{{ $x := 5 }}{{ $x }}", "5"),
    ("{{ $x := 1 }}{{ $x = 2 }}{{ $x }}", "2"),
    ("{{ $x := 1 }}{{ range .l }}{{ $x = . }}{{ end }}{{ $x }}", "r"),
    ("{{ with .nested }}{{ $.s }}{{ .inner.x }}{{ end }}", "bdeep"),
    ("{{ $m := .m }}{{ $m.a }}", "1"),
    # if / else if / else, with
    ('{{ if eq .s "a" }}A{{ else if eq .s "b" }}B{{ else }}C{{ end }}', "B"),
    ("{{ if .empty }}x{{ else }}empty list is false{{ end }}", "empty list is false"),
    ("{{ if 0 }}x{{ else if 0.0 }}y{{ else if \"\" }}z{{ else }}all false{{ end }}", "all false"),
    ("{{ if .kv }}a struct or non-empty map is true{{ end }}", "a struct or non-empty map is true"),
    ("{{ with .s }}[{{ . }}]{{ end }}", "[b]"),
    ("{{ with .none }}x{{ else }}none{{ end }}", "none"),
    ("{{ with .none }}x{{ else with .s }}{{ . }}{{ end }}", "b"),
    # range
    ("{{ range .l }}{{ . }},{{ end }}", "p,q,r,"),
    ("{{ range $i, $e := .l }}{{ $i }}={{ $e }} {{ end }}", "0=p 1=q 2=r "),
    ("{{ range $k, $v := .m }}{{ $k }}{{ $v }}{{ end }}", "a1b2c3"),  # maps in key order
    ("{{ range $v := .m }}{{ $v }}{{ end }}", "123"),
    ("{{ range .empty }}x{{ else }}none{{ end }}", "none"),
    ("{{ range .none }}x{{ else }}nil ranges zero times{{ end }}", "nil ranges zero times"),
    ("{{ range 3 }}{{ . }}{{ end }}", "012"),
    ("{{ range .l }}{{ if eq . \"q\" }}{{ break }}{{ end }}{{ . }}{{ end }}", "p"),
    ("{{ range .l }}{{ if eq . \"q\" }}{{ continue }}{{ end }}{{ . }}{{ end }}", "pr"),
    ("{{ range .l }}{{ $.s }}{{ end }}", "bbb"),
    # define / template / block
    ('{{ define "t" }}<{{ . }}>{{ end }}{{ template "t" "x" }}{{ template "t" }}', "<x><<no value>>"),
    ('{{ define "t" }}{{ $ }}{{ end }}{{ template "t" .s }}', "b"),
    ('{{ block "b" .s }}[{{ . }}]{{ end }}', "[b]"),
    # pipelines and parentheses
    ('{{ .s | printf "%s!" }}', "b!"),
    ('{{ "abc" | toUpper | printf "%s-%s" "x" }}', "x-ABC"),
    ("{{ (index .l 1) }}{{ len (slice .l 1) }}", "q2"),
    ("{{ (.nested.inner).x }}", "deep"),
    # builtins
    ("{{ and 1 0 2 }} {{ and 1 2 }} {{ or 0 \"\" }} {{ or 0 \"x\" 1 }} {{ not 0 }}", "0 2  x true"),
    ("{{ and .none .none.x }}{{ or 1 .undefined_is_never_evaluated }}", "<no value>1"),
    ('{{ len .l }} {{ len .m }} {{ len "héllo" }}', "3 3 6"),  # len of a string is bytes
    ('{{ index .l 0 }} {{ index .m "b" }} {{ index .nested "inner" "x" }} {{ index .kv "none" }}|', "p 2 deep |"),
    ('{{ slice "abcdef" 1 3 }} {{ slice .l 2 }} {{ slice .l 0 0 }}', "bc [r] []"),
    ('{{ print 1 2 "a" "b" 3 }}', "1 2ab3"),
    ('{{ println 1 "a" }}', "1 a\n"),
    ('{{ eq 1 1 }} {{ eq "a" "b" "a" }} {{ ne 1 2 }} {{ lt 1 2 }} {{ le 2 2 }} {{ gt "b" "a" }} {{ ge 1.5 2.5 }}',
     "true true true true true true false"),
    ("{{ eq .none nil }}", "true"),
    ('{{ html "<a href=\'x\'>&" }}', "&lt;a href=&#39;x&#39;&gt;&amp;"),
    ('{{ js "it\'s <b>" }}', "it\\'s \\u003Cb\\u003E"),
    ('{{ urlquery "a b&c/d" }}', "a+b%26c%2Fd"),
    # Alertmanager's string functions
    ('{{ title "hello wORLD-x they\'re foo_bar" }}', "Hello World-X They're Foo_bar"),
    ('{{ toUpper "straße" }} {{ toLower "ÀB" }} [{{ trimSpace "\\t x \\n" }}]', "STRAßE àb [x]"),
    ('{{ reReplaceAll "a(b)" "[$1]" "xabyab" }} {{ reReplaceAll "a*" "X" "baaac" }} {{ reReplaceAll "(?P<n>b)" "${n}$1x" "ab" }}',
     "x[b]y[b] XbXcX ab"),
    ('{{ join ", " (stringSlice "a" "b") }} {{ .kv.Values.Join "+" }}', "a, b Down+api"),
]


@pytest.mark.parametrize(("text", "expected"), CASES)
def test_construct(text: str, expected: str) -> None:
    assert render(text) == expected


PRINTF = [
    ('{{ printf "%s|%q|%v|%d" "x" "a\\"b" 1.5 42 }}', 'x|"a\\"b"|1.5|42'),
    ('{{ printf "%.2f|%8.3f|%-6d|%06d|%+d|% d" 3.14159 2.0 7 -42 5 5 }}', "3.14|   2.000|7     |-00042|+5| 5"),
    ('{{ printf "%5s|%-5s|%.2s" "ab" "ab" "abcdef" }}', "   ab|ab   |ab"),
    ('{{ printf "%x|%X|%o|%b|%#x|%c|%U" 255 255 8 5 255 65 65 }}', "ff|FF|10|101|0xff|A|U+0041"),
    ('{{ printf "%e|%g|%g|%G" 123456.789 0.00001 100000.0 1e21 }}', "1.234568e+05|1e-05|100000|1E+21"),
    ('{{ printf "%t|%v|%v" true .l .m }}', "true|[p q r]|map[a:1 b:2 c:3]"),
    ('{{ printf "%T %T %T %T" 1 "s" 1.5 .l }}', "int string float64 []interface {}"),
    ('{{ printf "%*d|%-*d|" 4 7 3 7 }}', "   7|7  |"),
    ('{{ printf "100%%" }}', "100%"),
    ('{{ printf "%d" "x" }}', "%!d(string=x)"),
    ('{{ printf "%s" 1 }}', "%!s(int=1)"),
    ('{{ printf "%f" 1 }}', "%!f(int=1)"),  # an int is not a float, as in Go
    ('{{ printf "%d %d" 1 }}', "1 %!d(MISSING)"),
    ('{{ printf "%d" 1 2 "x" }}', "1%!(EXTRA int=2, string=x)"),
    ('{{ printf "%z" 1 }}', "%!z(int=1)"),
    ('{{ printf "%q" 65 }}', "'A'"),
]


@pytest.mark.parametrize(("text", "expected"), PRINTF)
def test_printf(text: str, expected: str) -> None:
    assert render(text) == expected


PARSE_ERRORS = [
    ("{{ ", 1, "unclosed action"),
    ("a\nb\n{{ .x", 3, "unclosed action"),
    ("{{ if true }}x", 1, "unexpected EOF"),
    ("x\n{{ end }}", 2, "unexpected {{end}}"),
    ("{{ else }}", 1, "unexpected {{else}}"),
    ("line1\n{{ toupper .x }}", 2, 'function "toupper" not defined'),
    ("{{ $y }}", 1, "undefined variable \"$y\""),
    ("{{ $y = 1 }}", 1, "undefined variable \"$y\""),
    ("{{ if true }}{{ $x := 1 }}{{ end }}{{ $x }}", 1, "undefined variable \"$x\""),
    ('{{ "abc }}', 1, "unterminated quoted string"),
    ("{{ }}", 1, "missing value for command"),
    ("{{ if }}{{ end }}", 1, "missing value for if"),
    ("{{ break }}", 1, "{{break}} outside {{range}}"),
    ("{{ .x | 1 }}", 1, "non executable command in pipeline stage 2"),
    ("{{/* unclosed", 1, "unclosed comment"),
    ("{{ if true }}\n{{ define \"x\" }}{{ end }}{{ end }}", 2, "unexpected <define> in command"),
    ('{{ define "a" }}1{{ end }}\n{{ define "a" }}2{{ end }}', 2, 'multiple definition of template "a"'),
    ("{{ (1 }}", 1, "unclosed left paren"),
    ("{{ 1) }}", 1, "unexpected right paren"),
    ("{{ 3x }}", 1, "bad number syntax"),
    ('{{ template "nope" }}', 1, 'no such template "nope"'),
    ("{{ range $a, $b, $c := .l }}{{ end }}", 1, "range can only initialize variables"),
]


@pytest.mark.parametrize(("text", "line", "message"), PARSE_ERRORS)
def test_parse_errors_have_their_line(text: str, line: int, message: str) -> None:
    with pytest.raises(TemplateSyntaxError) as caught:
        TemplateSet.defaults().compile(text)
    assert caught.value.line == line
    assert message in caught.value.message


RUN_ERRORS = [
    ("{{ index .l 5 }}", "error calling index: index out of range: 5"),
    ("{{ .l.x }}", "can't evaluate field x in type []interface {}"),
    ('{{ toUpper 1 }}', "wrong type for value; expected string; got int"),
    ("{{ lt 1 1.5 }}", "incompatible types for comparison"),
    ("{{ eq .l .l }}", "non-comparable type"),
    ("{{ len 3 }}", "len of type int"),
    ("{{ nil }}", "nil is not a command"),
    ('{{ "x" 1 }}', "can't give argument to non-function"),
    ('{{ .s.Foo }}', "can't evaluate field Foo in type string"),
    ('{{ .kv.job 1 }}', "is not a method but has arguments"),
    ('{{ range .s }}{{ end }}', "range can't iterate over b"),
    ('{{ define "loop" }}{{ template "loop" . }}{{ end }}{{ template "loop" . }}', "exceeded maximum template depth"),
    ('{{ range 100000 }}{{ range 100 }}{{ end }}{{ end }}', "ran more than"),
    ('{{ reReplaceAll "(?=x)" "" "x" }}', "lookahead"),
    ('{{ tz "Nowhere/City" now }}', "unknown time zone Nowhere/City"),
    ('{{ humanizeDuration "one" }}', 'strconv.ParseFloat: parsing "one": invalid syntax'),
    ('{{ base64decode "not-valid-base64!" }}', "illegal base64 data"),
    ('{{ dict "a" }}', "dict requires an even number of arguments"),
    ('{{ dict 1 "value" }}', "dict keys must be strings"),
]


@pytest.mark.parametrize(("text", "message"), RUN_ERRORS)
def test_run_time_errors(text: str, message: str) -> None:
    with pytest.raises(ExecError) as caught:
        render(text)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_run_time_errors_say_which_template_and_line() -> None:
    text = '{{ define "broken" }}\nok\n{{ index .l 9 }}{{ end }}{{ template "broken" . }}'
    with pytest.raises(ExecError, match='template "broken" line 3: error calling index: index out of range: 9'):
        render(text)


def test_output_and_work_are_bounded() -> None:
    with pytest.raises(ExecError, match="output longer than"):
        render('{{ range 2000 }}{{ printf "%0500d" 1 }}{{ end }}')
    with pytest.raises(ExecError, match="^line 1: ran more than 200000 steps$"):
        render("{{ range 1000000000000 }}{{ end }}")  # counted as it goes, never built
    assert render('{{ printf "%99999999d|%.99999999f" 1 }}') == "1|%!f(MISSING)"  # widths over 1e6 are ignored


def test_deeply_nested_parentheses_are_refused_at_parse() -> None:
    with pytest.raises(TemplateSyntaxError, match="nested more than"):
        TemplateSet.defaults().compile("{{ " + "(" * 200 + "1" + ")" * 200 + " }}")


def test_a_later_empty_define_does_not_replace_a_body() -> None:
    templates = TemplateSet.from_sources([
        ("a.tmpl", '{{ define "x" }}body{{ end }}'),
        ("b.tmpl", '{{ define "x" }}  {{ end }}{{ define "y" }}Y{{ end }}'),
        ("c.tmpl", '{{ define "y" }}replaced{{ end }}'),
    ])
    assert templates.render('{{ template "x" }}{{ template "y" }}', None) == "bodyreplaced"


def test_a_file_can_redefine_a_default_and_its_text_is_a_template_named_after_it() -> None:
    templates = TemplateSet.from_sources([("/x/dir/mine.tmpl", 'file body{{ define "__alertmanager" }}AM{{ end }}')])
    assert templates.render('{{ template "__alertmanager" }}|{{ template "mine.tmpl" }}', None) == "AM|file body"
    assert TemplateSet.defaults().render('{{ template "__alertmanager" }}', None) == "Alertmanager"


def test_a_field_may_define_templates_of_its_own() -> None:
    text = '{{ define "local" }}L{{ . }}{{ end }}{{ template "local" 1 }}'
    assert render(text) == "L1"
