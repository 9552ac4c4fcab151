"""The package's architecture, checked rather than described.

import-linter holds the one-way data flow (``pyproject.toml``, ``[tool.importlinter]``); the
layers contract is exhaustive, so a new top-level package fails here until it is placed.
"""

import shutil
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "workbench"


def test_import_contracts_hold() -> None:
    lint = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert lint, "import-linter is not installed (make setup installs the dev extra)"
    result = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_every_module_name_says_one_thing() -> None:
    """No two modules share a name: ``bronze.py`` in two packages would mean two things."""
    by_name: dict[str, list[str]] = defaultdict(list)
    for path in PACKAGE.rglob("*.py"):
        if path.name != "__init__.py":
            by_name[path.stem].append(str(path.relative_to(ROOT)))
    repeated = {name: paths for name, paths in by_name.items() if len(paths) > 1}
    assert not repeated, f"module names used twice: {repeated}"


def test_no_empty_packages() -> None:
    """A package holds at least two modules of its own; a lone module belongs somewhere else."""
    thin = [
        str(package.relative_to(ROOT))
        for package in PACKAGE.iterdir()
        if package.is_dir()
        and package.name != "__pycache__"
        and len([p for p in package.glob("*.py") if p.name != "__init__.py"]) < 2
    ]
    assert not thin, f"near-empty packages: {thin}"


def test_no_top_level_package_but_workbench_is_installed() -> None:
    """The wheel ships ``workbench`` alone (benchmarks are ``workbench.bench``)."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert config["tool"]["setuptools"]["packages"]["find"]["include"] == ["workbench*"]
    assert not (ROOT / "benchmarks" / "__init__.py").exists()
