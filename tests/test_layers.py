"""The layer rule (docs/architecture.md) is enforced by import-linter's contract in
pyproject.toml: these tests run it on the package, show that a back-edge breaks it, and make
sure no module escapes the contract by sitting outside every layer."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"


def lint_imports(project: Path) -> subprocess.CompletedProcess[str]:
    # PYTHONPATH: import-linter imports the package it analyses; it must be this copy.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo", str(project / "pyproject.toml")],
                          cwd=project, env={"PYTHONPATH": str(project), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=120)


def layers() -> list[str]:
    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    (layered,) = [c for c in contracts if c["type"] == "layers"]
    return [name.strip() for layer in layered["layers"] for name in layer.split("|")]


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_a_back_edge_breaks_the_contract(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "monitor", tmp_path / "monitor", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    clock = tmp_path / "monitor" / "core" / "clock.py"
    clock.write_text(clock.read_text() + "\nimport monitor.daemon  # a core module reaching up\n")
    result = lint_imports(tmp_path)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "monitor.core.clock -> monitor.daemon" in result.stdout


def test_every_module_is_in_a_layer() -> None:
    packages = {name.removeprefix("monitor.") for name in layers()}
    outside = sorted(
        str(path.relative_to(ROOT)) for path in (ROOT / "monitor").rglob("*.py")
        if path.relative_to(ROOT / "monitor").parts[0].removesuffix(".py") not in packages
        and path != ROOT / "monitor" / "__init__.py"
    )
    assert outside == [], f"modules outside every layer (add them to one in pyproject.toml): {outside}"
