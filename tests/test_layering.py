"""The package layers (DESIGN.md): `common` (standard library only) under `core` (the model
side) and `study` (questionnaires, torch-free), with `app` above both. Each check imports
every module of a package in a fresh interpreter, from another current folder, and looks
at what ended up in sys.modules."""
from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = r"""
import importlib, json, pkgutil, sys
package = importlib.import_module(sys.argv[1])
names = [sys.argv[1]]
for info in pkgutil.walk_packages(package.__path__, prefix=sys.argv[1] + "."):
    if info.name.rsplit(".", 1)[-1] != "__main__":    # __main__ would run the command
        names.append(info.name)
for name in names:
    importlib.import_module(name)
print(json.dumps({"modules": names, "loaded": sorted({m.split(".")[0] for m in sys.modules})}))
"""

# package -> top-level modules it must never load, directly or through another module
FORBIDDEN = {
    "common": {"torch", "torchvision", "numpy", "streamlit", "core", "study", "app"},
    "core": {"study", "streamlit", "app"},
    "study": {"torch", "torchvision", "streamlit", "core", "app"},
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_never_imports_the_layers_it_must_not_know(package, tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-c", PROBE, package], cwd=tmp_path, capture_output=True, text=True,
                         timeout=300, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert len(result["modules"]) > 3   # the walk found the package's modules
    leaked = FORBIDDEN[package] & set(result["loaded"])
    assert not leaked, f"importing every module of {package} loaded {sorted(leaked)}"


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_them_even_inside_a_function(package):
    """Imports inside functions (lazy, for speed) are imports too: read every module's source."""
    root = Path(__file__).resolve().parent.parent / package
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                tops = {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                tops = {node.module.split(".")[0]}
            else:
                continue
            found += [f"{path.relative_to(root.parent)}:{node.lineno} imports {t}" for t in tops & FORBIDDEN[package]]
    assert not found, "\n".join(found)


def test_the_store_is_the_only_module_that_speaks_sql():
    """Answers, participants and refusals are written through study.store.Store only (the
    session, the importers and the app call its methods)."""
    root = Path(__file__).resolve().parent.parent
    speaking = []
    for package in ("common", "core", "study", "app"):
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), rel)):
                names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                         else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
                if any(n.split(".")[0] in ("sqlalchemy", "sqlite3", "psycopg") for n in names):
                    speaking.append(rel)
    # app/errors.py imports the driver's error classes only, to word them as one line
    assert sorted(set(speaking)) == ["app/errors.py", "study/store.py"], speaking
