"""Packaging: the distribution claims one import namespace, declares exactly the third-party
packages its code imports, and works from a wheel installed in a clean virtualenv."""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "circleci_analytics"


def _package_files() -> list[Path]:
    """Every Python file the wheel ships (the namespace's symlinked folders resolved)."""
    files = []
    for folder, dirs, names in os.walk(PACKAGE, followlinks=True):  # Path.rglob skips symlinked dirs
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        files += [Path(folder, n) for n in names if n.endswith(".py")]
    return sorted(files)


def _third_party_imports() -> dict[str, set[str]]:
    """Top-level module imported -> files importing it, for modules outside the stdlib and us."""
    found: dict[str, set[str]] = {}
    for path in _package_files():
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names or top in {"circleci_analytics", "__future__"}:
                    continue
                found.setdefault(top, set()).add(str(path.relative_to(ROOT)))
    return found


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    return {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}


def test_every_imported_package_is_declared_and_every_declared_one_is_imported() -> None:
    dists = md.packages_distributions()
    declared = _declared()
    used: set[str] = set()
    undeclared: dict[str, list[str]] = {}
    for module, files in _third_party_imports().items():
        assert module in dists, f"{module} (imported by {sorted(files)}) is installed by no distribution"
        providers = {canonicalize_name(d) for d in dists[module]}  # several for namespaces (dbt.*)
        if providers & declared:
            used |= providers & declared
        else:
            undeclared[module] = sorted(files)
    assert not undeclared, f"imported but no providing distribution in [project.dependencies]: {undeclared}"
    unused = declared - used
    assert not unused, f"declared in [project.dependencies] but imported by no module: {sorted(unused)}"


def _uv() -> str:
    found = shutil.which("uv") or (ROOT / ".tools" / "bin" / "uv")
    if not Path(found).exists():
        pytest.skip("uv is not available (make env bootstraps it into .tools/)")
    return str(found)


@pytest.mark.slow
def test_wheel_in_a_clean_venv_imports_every_module(tmp_path: Path) -> None:
    uv = _uv()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHONPATH", "UV_"))}
    subprocess.run([uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"), str(ROOT)],
                   check=True, capture_output=True, env=env)  # fmt: skip
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    with zipfile.ZipFile(wheel) as zf:
        tops = {n.split("/")[0] for n in zf.namelist()}
        assert any(n.startswith("circleci_analytics/sql/") and n.endswith(".sql") for n in zf.namelist())
    assert {t for t in tops if not t.endswith(".dist-info")} == {"circleci_analytics"}, tops

    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "--python", sys.executable, str(venv)], check=True, capture_output=True, env=env)
    python = venv / "bin" / "python"
    subprocess.run([uv, "pip", "install", "--python", str(python), str(wheel)], check=True, capture_output=True,
                   env=env)  # fmt: skip
    script = (
        "import importlib, pkgutil, circleci_analytics as pkg\n"
        "names = [m.name for m in pkgutil.walk_packages(pkg.__path__, 'circleci_analytics.')]\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "assert 'site-packages' in pkg.__file__, pkg.__file__\n"
        "print(len(names))\n"
    )
    # Run from an empty folder: nothing of the source tree is importable there.
    out = subprocess.run([str(python), "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         env={**env, "PREFECT_HOME": str(tmp_path / "prefect")})  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert int(out.stdout.strip().splitlines()[-1]) >= 40
    cli = subprocess.run([str(venv / "bin" / "circleci-analytics"), "--help"], cwd=tmp_path, capture_output=True,
                         text=True, env=env)  # fmt: skip
    assert cli.returncode == 0 and "demo" in cli.stdout
