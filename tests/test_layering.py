"""The package layers (DESIGN.md): `common` (standard library only) under `core` (the model
side) and `study` (questionnaires, torch-free), with `app` above both. Each check imports
every module of a package in a fresh interpreter, from another current folder, and looks
at what ended up in sys.modules; the source checks also read imports inside functions and
lazy registries (module paths written as strings: command tables, lazy exports), which
importing a module does not follow. Inside `core`, its parts (sub-packages and top-level
modules) import each other without loops, so each can be read from the bottom up."""
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


REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("common", "core", "study", "app")


def _module_file(name: str) -> Path | None:
    """The file of a module of this repository named `name` (dotted), or None."""
    parts = name.split(".")
    if parts[0] not in PACKAGES or not all(p.isidentifier() for p in parts):
        return None
    base = REPO.joinpath(*parts)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def _module_of(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def references(path: Path) -> list[tuple[int, str, str]]:
    """(line, module name, how) for every module `path` names: `import` statements at any
    depth (how: "import" at module level, "local import" inside a function or class) and
    strings that are exactly the dotted name of a module of this repository ("registry":
    `COMMANDS = {"demo": ("app.demo", ...)}`, lazy `_EXPORTS`), which are imported later."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = _module_of(path) if path.name == "__init__.py" else _module_of(path).rpartition(".")[0]
    nested: set[int] = set()
    for scope in ast.walk(tree):
        if isinstance(scope, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            nested |= {id(n) for n in ast.walk(scope) if n is not scope}
    found = []
    for node in ast.walk(tree):
        how = "local import" if id(node) in nested else "import"
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name, how) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:   # relative: resolve against this module's package
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            found.append((node.lineno, module, how))
            # `from core import cli`: the name may be a module of its own
            found += [(node.lineno, f"{module}.{a.name}", how) for a in node.names
                      if _module_file(f"{module}.{a.name}") is not None]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and _module_file(node.value):
            found.append((node.lineno, node.value, "registry"))
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_module_imports_them_even_inside_a_function(package):
    """Imports inside functions (lazy, for speed) are imports too, and so are module paths in
    lazy registries (core's command table must name nothing of app/ or study/): read
    every module's source."""
    root = REPO / package
    found = []
    for path in sorted(root.rglob("*.py")):
        for line, name, how in references(path):
            top = name.split(".")[0]
            if top in FORBIDDEN[package]:
                found.append(f"{path.relative_to(REPO)}:{line} {how} {name}")
    assert not found, "\n".join(found)


def test_the_reader_sees_lazy_registries_and_local_imports():
    """The source reader finds what the checks rely on (else they would pass vacuously)."""
    core_cli = {(name, how) for _, name, how in references(REPO / "core" / "cli.py")}
    assert ("core.training.cli", "registry") in core_cli and ("common.cli", "import") in core_cli
    app_main = {(name, how) for _, name, how in references(REPO / "app" / "__main__.py")}
    assert ("app.demo", "registry") in app_main
    explain = {(name, how) for _, name, how in references(REPO / "core" / "explain" / "explain_cli.py")}
    assert ("core.training.checkpoint", "local import") in explain


def test_every_registered_command_module_exists_and_has_main():
    """Each command table (`python -m core`, `python -m study`, `python -m app`) names
    modules that exist and define `main`, read without importing them."""
    import importlib

    for table in ("core.cli", "study.cli", "app.__main__"):
        commands = importlib.import_module(table).COMMANDS
        assert commands, table
        for name, (module, _) in commands.items():
            path = _module_file(module)
            assert path is not None, f"{table}: command {name!r} names {module!r}, which does not exist"
            tree = ast.parse(path.read_text(encoding="utf-8"))
            assert any(isinstance(n, ast.FunctionDef) and n.name == "main" for n in tree.body), (table, name)


def _core_part(module: str) -> str | None:
    """The part of core a module belongs to: its sub-package, or the top-level module."""
    parts = module.split(".")
    return parts[1] if parts[0] == "core" and len(parts) > 1 else None


def core_part_graph() -> dict[tuple[str, str], list[str]]:
    """(part, other part) -> where: every import and registry entry between core's parts."""
    edges: dict[tuple[str, str], list[str]] = {}
    for path in sorted((REPO / "core").rglob("*.py")):
        source = _core_part(_module_of(path)) or "__init__"
        for line, name, how in references(path):
            target = _core_part(name)
            if target is not None and target != source:
                edges.setdefault((source, target), []).append(f"{path.relative_to(REPO)}:{line} {how} {name}")
    return edges


def test_core_parts_import_each_other_without_loops():
    """No import inside core climbs back: if part A imports part B (at module level, inside a
    function, or through a registry), nothing in B reaches A again. A function-local import
    that closes a loop hides it from the import-time checks above; this reads the source."""
    edges = core_part_graph()
    graph: dict[str, set[str]] = {}
    for a, b in edges:
        graph.setdefault(a, set()).add(b)

    def reaches(start: str, goal: str) -> bool:
        seen, todo = set(), [start]
        while todo:
            node = todo.pop()
            if node == goal:
                return True
            if node not in seen:
                seen.add(node)
                todo += sorted(graph.get(node, ()))
        return False

    loops = [f"core.{a} -> core.{b} ({'; '.join(where)}), and core.{b} reaches core.{a} back"
             for (a, b), where in sorted(edges.items()) if reaches(b, a)]
    assert ("atlas", "protopshare") in edges and ("metrics", "explain") in edges   # the graph is read
    assert not loops, "\n".join(loops)


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
