"""What the test suite runs on: the interpreter CI made for this run, and every module importable.

A package that only a developer's machine has (installed by hand, left over from an earlier run)
must not make CI pass. ``.ci/run`` creates a fresh virtual environment and names it in
``PAGEVIEW_STREAMS_CI_VENV``; these tests check that the tests really run there, and import each
module of the project so that a dependency missing from ``pyproject.toml``'s extras fails here,
with the module's name, instead of as a collection error of some other test.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import site
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
#: Folders whose .py files are modules of a package importable by name (src/ is installed,
#: bench/ is imported from the repository root, where ``python -m pytest`` runs).
PACKAGE_ROOTS = (ROOT / "src", ROOT)
PACKAGES = ("clients", "contracts", "dashboard", "producers", "stack", "streams", "pinot", "bench")
#: Scripts copied into the image and run by path, not imported as a package.
SCRIPTS = (ROOT / "docker" / "healthcheck.py",)


def _modules() -> list[str]:
    names = []
    for base in PACKAGE_ROOTS:
        for package in PACKAGES:
            folder = base / package
            if not (folder / "__init__.py").is_file():
                continue
            for path in sorted(folder.rglob("*.py")):
                relative = path.relative_to(base).with_suffix("")
                if "tests" in relative.parts:
                    continue  # test modules are imported by pytest itself
                parts = relative.parts[:-1] if relative.name == "__init__" else relative.parts
                names.append(".".join(parts))
    return names


MODULES = _modules()


def test_every_package_is_found() -> None:
    found = {name.split(".")[0] for name in MODULES}
    assert found == set(PACKAGES)
    assert "streams.operators.window_engine" in MODULES
    assert "bench.bytewax_peer" in MODULES


@pytest.mark.parametrize("module", MODULES)
def test_module_imports(module: str) -> None:
    importlib.import_module(module)


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_script_imports(script: Path) -> None:
    spec = importlib.util.spec_from_file_location(f"_script_{script.stem}", script)
    assert spec is not None and spec.loader is not None
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


def test_ci_runs_on_its_own_virtual_environment() -> None:
    venv = os.environ.get("PAGEVIEW_STREAMS_CI_VENV")
    if venv is None:
        if IN_CI:
            pytest.fail("CI=true without PAGEVIEW_STREAMS_CI_VENV: run CI through .ci/run")
        pytest.skip("not under .ci/run: the tests run on whatever environment you chose")
    assert Path(sys.prefix).resolve() == Path(venv).resolve(), (sys.prefix, venv)
    assert sys.prefix != sys.base_prefix
    # Neither the base interpreter's site-packages nor the user's reach the run.
    base_sites = [p for p in sys.path if p.startswith(sys.base_prefix) and "site-packages" in p]
    assert base_sites == []
    assert not site.ENABLE_USER_SITE
    # The project itself is the clone under test, installed in editable mode.
    import streams

    assert Path(streams.__file__).resolve().is_relative_to(ROOT / "src")
