"""Static checks of the Dockerfile (no Docker engine is needed, or available, to run them)."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
import tomllib
from pathlib import Path

import pytest

from monitor.config.loader import load_config

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    logical: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if current and line.startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        logical.append(current + line)
        current = ""
    if current:
        logical.append(current)
    result = []
    for item in logical:
        word, _, rest = item.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def args_of(name: str) -> list[str]:
    return [rest for word, rest in instructions() if word == name]


def final_stage() -> list[tuple[str, str]]:
    items = instructions()
    last_from = max(i for i, (word, _) in enumerate(items) if word == "FROM")
    return items[last_from:]


def test_base_images_pinned_to_a_full_version() -> None:
    froms = args_of("FROM")
    assert len(froms) >= 2, "expected a multi-stage build"
    for value in froms:
        image = value.split()[0]
        assert ":" in image, f"{image} has no tag"
        name, tag = image.split("@")[0].rsplit(":", 1)
        assert name == "python"
        assert tag != "latest"
        assert re.fullmatch(r"3\.11\.\d+-slim-[a-z]+", tag), f"{image} is not pinned to a full version"
    assert len({v.split()[0] for v in froms}) == 1, "build and runtime stages use different bases"


def test_runs_as_non_root() -> None:
    users = [rest for word, rest in final_stage() if word == "USER"]
    assert users, "no USER in the final stage"
    user = users[-1].split(":")[0]
    assert user not in ("root", "0")
    assert user == "10001"


def test_entrypoint_and_cmd() -> None:
    assert json.loads(args_of("ENTRYPOINT")[-1]) == ["monitor"]
    assert json.loads(args_of("CMD")[-1]) == ["run"]
    assert args_of("STOPSIGNAL")[-1] == "SIGTERM"
    assert "9464" in args_of("EXPOSE")[-1].split()


def test_healthcheck_uses_python_against_healthz() -> None:
    checks = [rest for word, rest in final_stage() if word == "HEALTHCHECK"]
    assert checks, "no HEALTHCHECK"
    assert "/healthz" in checks[-1]
    assert "python" in checks[-1] and "curl" not in checks[-1]


def env_of_final_stage() -> dict[str, str]:
    env: dict[str, str] = {}
    for word, rest in final_stage():
        if word == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", rest):
                env[key] = value
    return env


def test_runtime_environment() -> None:
    env = env_of_final_stage()
    assert env["MONITOR_CONFIG"] == "/etc/monitor/monitor.yaml"
    assert env["MONITOR_LISTEN"] == "0.0.0.0:9464"
    assert env["MONITOR_STATE"] == "sqlite:////var/lib/monitor/monitor.db"
    assert [rest for word, rest in final_stage() if word == "WORKDIR"][-1] == "/var/lib/monitor"


def copy_sources() -> list[str]:
    sources = []
    for rest in args_of("COPY"):
        parts = [p for p in rest.split() if not p.startswith("--")]
        if any(p.startswith("--from") for p in rest.split()):
            continue
        sources.extend(parts[:-1])
    return sources


def ignored(path: str) -> bool:
    """Docker's .dockerignore semantics, simplified: the last matching pattern wins."""
    result = False
    for raw in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines():
        pattern = raw.strip()
        if not pattern or pattern.startswith("#"):
            continue
        negate = pattern.startswith("!")
        pattern = pattern.lstrip("!").rstrip("/")
        parts = Path(path).parts
        candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if any(fnmatch.fnmatch(c, pattern) or fnmatch.fnmatch(c, pattern.replace("**/", "")) for c in candidates):
            result = not negate
    return result


def test_every_copy_source_exists_and_is_not_ignored() -> None:
    sources = copy_sources()
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY source {source} does not exist"
        assert not ignored(source.rstrip("/")), f"COPY source {source} is excluded by .dockerignore"


def test_uninstalls_test_extras_but_no_runtime_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]

    def name(requirement: str) -> str:
        return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].lower().replace("_", "-")

    runtime = {name(r) for r in project["dependencies"]}
    test_extras = {name(r) for r in project["optional-dependencies"]["test"]}
    build = next(rest for word, rest in instructions() if word == "RUN" and "pip uninstall" in rest)
    removed_part = build.split("pip uninstall -y", 1)[1].split("&&", 1)[0]
    removed = {n.lower() for n in removed_part.split()}
    assert test_extras <= removed, f"test extras left in the image: {test_extras - removed}"
    assert not (runtime & removed), f"runtime dependencies removed: {runtime & removed}"
    locked = {line.split("==")[0].lower() for line in (ROOT / "requirements.lock").read_text().splitlines() if "==" in line and not line.startswith(" ")}
    assert removed <= locked, f"not in requirements.lock: {removed - locked}"


def test_image_default_config_loads(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """/etc/monitor as the image lays it out, loaded with the image's ENV and nothing else."""
    etc = tmp_path / "etc" / "monitor"
    etc.mkdir(parents=True)
    shutil.copy(ROOT / "monitor.yaml", etc / "monitor.yaml")
    shutil.copytree(ROOT / "checks", etc / "checks")
    shutil.copytree(ROOT / "alert_rules", etc / "alert_rules")
    import os

    for key in list(os.environ):
        if key.startswith("MONITOR_"):
            monkeypatch.delenv(key)
    environ: dict[str, str] = {}
    for key, value in env_of_final_stage().items():
        if key.startswith("MONITOR_"):
            monkeypatch.setenv(key, value)
            environ[key] = value
    config = load_config(etc / "monitor.yaml", environ=environ)
    assert config.settings.listen == "0.0.0.0:9464"
    assert config.settings.state == "sqlite:////var/lib/monitor/monitor.db"
    assert config.checks
