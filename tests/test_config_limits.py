"""Hostile config files: too big, nested too deep, aliases that expand without end.

The deep cases used to crash the process inside libyaml (a C stack overflow, SIGSEGV), so
a reload of such a file killed a running daemon; each is tested where a user meets it:
the loader, `monitor validate` (a subprocess: a crash there is an exit status, not a
crashed test run), and `POST /-/reload` on a running daemon.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from monitor.config.errors import ConfigError
from monitor.config.yaml_source import MAX_DEPTH, MAX_FILE_BYTES, load_yaml
from monitor.daemon import Daemon
from tests.test_cli import config as cli_config
from tests.test_cli import monitor
from tests.test_http_api import CHECKS, daemon  # noqa: F401  (the in-process daemon fixture)

DEEP = 30_000
FLOW = "checks: " + "[" * DEEP + "]" * DEEP + "\n"
BLOCK = "checks:\n  " + "- " * DEEP + "x\n"  # compact nested block sequences, all on line 2
FLOW_MAPPINGS = "checks: " + "{a: " * DEEP + "1" + "}" * DEEP + "\n"


def write(tmp_path: Path, text: str, name: str = "f.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def only_problem(err: pytest.ExceptionInfo[ConfigError]) -> str:
    (problem,) = err.value.problems
    return str(problem)


LINE = {FLOW: 1, BLOCK: 2, FLOW_MAPPINGS: 1}


@pytest.mark.parametrize("text", [FLOW, BLOCK, FLOW_MAPPINGS], ids=["flow", "block", "flow-mappings"])
def test_deep_nesting_is_refused_before_composing(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, text)
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert only_problem(err) == f"{path}:{LINE[text]}: nesting deeper than {MAX_DEPTH} levels"
    assert time.monotonic() - started < 2


def test_nesting_limit_boundary_and_line(tmp_path: Path) -> None:
    # The mapping at the top is one level; MAX_DEPTH - 1 lists inside it are fine.
    fits = "a: " + "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1) + "\n"
    data, _ = load_yaml(write(tmp_path, fits))
    assert isinstance(data["a"], list)
    too_deep = "a: 1\nb:\n  c: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH + "\n"
    with pytest.raises(ConfigError) as err:
        load_yaml(write(tmp_path, too_deep))
    assert err.value.problems[0].line == 3


def test_block_mappings_nested_by_indentation_are_counted_too(tmp_path: Path) -> None:
    text = "".join(" " * i + f"k{i}:\n" for i in range(MAX_DEPTH + 5)) + " " * (MAX_DEPTH + 5) + "v\n"
    with pytest.raises(ConfigError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        load_yaml(write(tmp_path, text))


def test_file_larger_than_the_limit_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "big.yaml"
    with path.open("w") as file:
        file.write("a: 1\n")
        file.write(("#" * 1023 + "\n") * (MAX_FILE_BYTES // 1024))
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert only_problem(err) == f"{path}:0: file is larger than 10 MiB"


def test_billion_laughs_is_refused_quickly(tmp_path: Path) -> None:
    # Nine levels of ten aliases each: 10^9 values if expanded. Refused from the node graph
    # (it was refused before too, but only after building a million values: seconds and
    # hundreds of MB).
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 10)]
    started = time.monotonic()
    with pytest.raises(ConfigError) as err:
        load_yaml(write(tmp_path, "\n".join(lines) + "\n"))
    assert "alias" in str(err.value)
    assert time.monotonic() - started < 1


def test_alias_inside_its_own_anchor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_yaml(write(tmp_path, "a: &loop [1, *loop]\n"))
    assert "recursive alias" in str(err.value)


def test_chain_of_aliases_deeper_than_the_limit_is_refused(tmp_path: Path) -> None:
    # Each anchor holds the previous one: 200 lines, each one level deep, nest 200 levels.
    lines = ["a0: &a0 [x]"] + [f"a{i}: &a{i} [*a{i - 1}]" for i in range(1, 200)]
    with pytest.raises(ConfigError, match=f"nesting deeper than {MAX_DEPTH} levels"):
        load_yaml(write(tmp_path, "\n".join(lines) + "\n"))


def test_ordinary_anchors_and_merge_keys_still_load(tmp_path: Path) -> None:
    text = "defaults: &d {interval: 30s, labels: {team: core}}\nchecks:\n" + "".join(
        f"  - <<: *d\n    name: c{i}\n" for i in range(200))
    data, _ = load_yaml(write(tmp_path, text))
    assert data["checks"][199] == {"interval": "30s", "labels": {"team": "core"}, "name": "c199"}


@pytest.mark.parametrize("text", [FLOW, BLOCK], ids=["flow", "block"])
def test_validate_refuses_deep_nesting_in_one_line(tmp_path: Path, text: str) -> None:
    path = cli_config(tmp_path, "checks: []\n")
    (tmp_path / "checks.yaml").write_text(text)
    done = monitor("validate", "-c", str(path))
    assert done.returncode == 2, (done.returncode, done.stderr[-500:])  # was -11 (SIGSEGV)
    assert done.stderr == f"{tmp_path}/checks.yaml:{LINE[text]}: nesting deeper than {MAX_DEPTH} levels\n"


@pytest.mark.parametrize("text", [FLOW, BLOCK], ids=["flow", "block"])
async def test_reload_of_deep_nesting_keeps_the_old_config(daemon: tuple[Daemon, httpx.AsyncClient],  # noqa: F811
                                                           tmp_path: Path, text: str) -> None:
    d, client = daemon
    before = [s.check.name for s in d.statuses.all()]
    (tmp_path / "checks.yaml").write_text(text)
    answer = await client.post("/-/reload", headers={"Authorization": "Bearer t0ken"})
    assert answer.status_code == 400
    assert answer.json()["message"] == f"{tmp_path}/checks.yaml:{LINE[text]}: nesting deeper than {MAX_DEPTH} levels"
    assert [s.check.name for s in d.statuses.all()] == before == ["beat", "db"]
    assert "monitor_config_last_reload_successful 0.0" in (await client.get("/metrics")).text
    assert (await client.get("/healthz")).status_code == 200
    # And the daemon still takes a good config afterwards.
    (tmp_path / "checks.yaml").write_text(CHECKS)
    assert (await client.post("/-/reload", headers={"Authorization": "Bearer t0ken"})).status_code == 200
