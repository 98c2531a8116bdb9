"""YAML loading: line numbers, ${VAR} expansion, and hostile documents."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core.durations import format_duration, parse_duration
from monitor.config.errors import ConfigError
from monitor.config.yaml_source import expand_env, load_yaml


def write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_lines_are_recorded_for_nested_values(tmp_path: Path) -> None:
    data, source = load_yaml(write(tmp_path, "a:\n  b:\n    - x: 1\n    - y: 2\n"))
    assert data == {"a": {"b": [{"x": 1}, {"y": 2}]}}
    assert source.line_of(data, ("a", "b", 1, "y")) == 4
    assert source.line_of(data, ("a", "b", 0)) == 3
    # A missing key points at the deepest existing parent.
    assert source.line_of(data, ("a", "b", 0, "missing")) == 3


def test_env_expansion_with_defaults_and_literal_dollar() -> None:
    env = {"HOST": "db", "EMPTY": ""}
    assert expand_env("postgresql://${HOST}/x", env) == "postgresql://db/x"
    assert expand_env("${PORT:-5432}", env) == "5432"
    assert expand_env("${EMPTY:-fallback}", env) == "fallback"
    assert expand_env("cost $$5", env) == "cost $5"
    with pytest.raises(KeyError):
        expand_env("${MISSING}", env)
    with pytest.raises(ValueError):
        expand_env("${not valid}", env)


def test_missing_variable_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, "a: 1\nb: ${NOPE_NOT_SET}\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(path, environ={})
    (problem,) = err.value.problems
    assert (problem.line, problem.file) == (2, str(path))
    assert "NOPE_NOT_SET" in problem.message


def test_expansion_cannot_change_the_document_structure(tmp_path: Path) -> None:
    # A secret with YAML syntax in it stays one string.
    data, _ = load_yaml(write(tmp_path, "pw: ${PW}\n"), environ={"PW": "a: b # c\n- d"})
    assert data == {"pw": "a: b # c\n- d"}


@pytest.mark.parametrize(
    ("text", "line", "needle"),
    [
        ("a: [1, 2\n", 2, "invalid YAML"),
        ("a: 1\na: 2\n", 2, "duplicate key"),
        ("a: !!python/object:os.system x\n", 1, "invalid YAML"),
        ("a:\n\tb: 1\n", 2, "invalid YAML"),
    ],
)
def test_malformed_yaml_gives_file_line(tmp_path: Path, text: str, line: int, needle: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(write(tmp_path, text))
    assert err.value.problems[0].line == line
    assert needle in err.value.problems[0].message


def test_alias_bomb_is_refused(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        lines.append(f"a{i}: &a{i} [{', '.join(['*a' + str(i - 1)] * 10)}]")
    with pytest.raises(ConfigError) as err:
        load_yaml(write(tmp_path, "\n".join(lines) + "\n"))
    assert "alias" in str(err.value)


def test_unreadable_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_yaml(tmp_path / "nope.yaml")
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError):
        load_yaml(binary)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("15s", 15), ("5m", 300), ("1h30m", 5400), ("7d", 604800)])
def test_durations(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert parse_duration(format_duration(seconds)) == seconds


@pytest.mark.parametrize("text", ["", "5", "5x", "m5", "1h 30m", "-5s", "5s5"])
def test_bad_durations(text: str) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration(text)


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_any_text_either_loads_or_fails_with_a_located_problem(text: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzz.yaml"
        path.write_bytes(text.encode("utf-8", "replace"))
        try:
            load_yaml(path, environ={})
        except ConfigError as err:
            assert err.problems
            for problem in err.problems:
                assert problem.file == str(path) and problem.line >= 0 and problem.message
