"""One owner per closed vocabulary: question kinds (study/kinds/), crowd platforms
(study/platforms/), primary analyses (study/analysis/plan.py). This test reads the sources
of study/ and app/ and fails on a name of one of them compared as a string (==, !=, in,
not in, or a literal dict/tuple of such names tested in an `if`) outside its registry.

KNOWN_DEBT lists the comparisons left when the registries were introduced (issue 28), per
file: the count may only go down. A new comparison anywhere, or one more in a listed file,
fails with the file, line and name; loop over the registry instead (docs/INTERFACES.md).
"""
from __future__ import annotations

import ast
from pathlib import Path

from study.analysis.plan import PRIMARY_ANALYSES
from study.kinds import ATTENTION, KINDS
from study.platforms.registry import PLATFORMS

REPO = Path(__file__).resolve().parent.parent
VOCAB = {**{k: "question kind" for k in (*KINDS, ATTENTION)}, **{p: "platform" for p in PLATFORMS},
         **{p: "primary analysis" for p in PRIMARY_ANALYSES}}
# the registries themselves own their names
OWNERS = ("study/kinds/", "study/platforms/", "study/analysis/plan.py")
# comparisons left when the registries came (file -> count); may only shrink
# (the analysis modules written per kind before the registry: saliency/consistency tables,
# report sections and prereg text keyed by kind or primary name)
KNOWN_DEBT: dict[str, int] = {
    "study/analysis/cli.py": 9, "study/analysis/consistency.py": 2, "study/analysis/metrics_join.py": 3,
    "study/analysis/mixed.py": 1, "study/analysis/multisource.py": 2,
    "study/analysis/primary.py": 10, "study/analysis/report.py": 4, "study/analysis/sentence.py": 4,
}


def _names(node: ast.AST) -> list[str]:
    """Vocabulary names a comparison operand holds: a string, or a tuple/list/set of them."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in VOCAB else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [n for e in node.elts for n in _names(e)]
    return []


def _counts(name: str, other: str) -> bool:
    """A primary-analysis name ("participant", "answer" are also ordinary words: a random-effect
    factor, a column) counts only when compared with something named *primary*."""
    return VOCAB[name] != "primary analysis" or "primary" in other


def comparisons(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Compare) and any(
                isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
            sides = [node.left, *node.comparators]
            for side in sides:
                other = " ".join(ast.unparse(s) for s in sides if s is not side)
                found += [(node.lineno, n) for n in _names(side) if _counts(n, other)]
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "isin":
            found += [(node.lineno, n) for a in node.args for n in _names(a)]   # pandas: s.isin([...])
        elif isinstance(node, (ast.If, ast.IfExp)) and isinstance(node.test, ast.Subscript):
            found += [(node.lineno, n) for n in _names(node.test.slice)]
    return found


def _sources() -> list[Path]:
    return sorted(p for d in ("study", "app") for p in (REPO / d).rglob("*.py"))


def test_no_vocabulary_name_is_compared_outside_its_registry():
    problems = []
    for path in _sources():
        rel = path.relative_to(REPO).as_posix()
        if rel.startswith(OWNERS):
            continue
        found = comparisons(path)
        if len(found) > KNOWN_DEBT.get(rel, 0):
            shown = ", ".join(f"line {line} {name!r} ({VOCAB[name]})" for line, name in found)
            problems.append(f"{rel}: {len(found)} comparison(s) of registry names "
                            f"(allowed {KNOWN_DEBT.get(rel, 0)}): {shown}")
    assert not problems, "\n".join(problems)


def test_known_debt_only_shrinks():
    """A file listed in KNOWN_DEBT that has fewer comparisons now must have its count lowered."""
    stale = []
    for rel, allowed in KNOWN_DEBT.items():
        path = REPO / rel
        n = len(comparisons(path)) if path.exists() else 0
        if n < allowed:
            stale.append(f"{rel}: {n} comparison(s) left, KNOWN_DEBT says {allowed}: lower it")
    assert not stale, "\n".join(stale)


def test_the_checker_sees_a_comparison(tmp_path):
    src = tmp_path / "x.py"
    src.write_text('if kind == "likert" or p in ("prolific", "x"):\n    pass\nok = kind == "other"\n'
                   'rows = df[df["kind"].isin(["pairwise"])]\n')
    assert sorted(n for _, n in comparisons(src)) == ["likert", "pairwise", "prolific"]
