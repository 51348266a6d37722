"""One owner per closed vocabulary: question kinds (study/kinds/), crowd platforms
(study/platforms/), primary analyses (study/analysis/plan.py). This test reads the sources
of study/ and app/ and fails on a name of one of them compared as a string (==, !=, in,
not in, pandas isin, or a literal dict/tuple of such names tested in an `if`), a `match`
case on such a name, or a dict literal keyed by such names (a lookup table standing in
for an `if name == ...` chain) outside its registry.

KNOWN_DEBT lists the comparisons left when the registries were introduced (issue 28), per
file: the count may only go down (it reached 0: the primaries' wording lives in
study.analysis.plan.PRIMARIES, their per-primary code paths are chosen by
`Primary.pick(clmm=..., participant=..., answer=...)` and `Primary.role`, and the
consistency rows are found by `study.analysis.consistency.choice_kinds()`). A new
comparison fails with the file, line and name; loop over the registry instead
(docs/INTERFACES.md).
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
KNOWN_DEBT: dict[str, int] = {}


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
        elif isinstance(node, ast.match_case):
            found += [(node.pattern.lineno, n) for n in _case_names(node.pattern)]
        elif isinstance(node, ast.Dict):
            found += [(node.lineno, n) for n in _keyed_by(node)]
    return found


def _case_names(pattern: ast.pattern) -> list[str]:
    """Vocabulary names a `case` pattern matches (`case "likert":`, `case "a" | "b":`)."""
    if isinstance(pattern, ast.MatchValue):
        return _names(pattern.value)
    if isinstance(pattern, ast.MatchOr):
        return [n for p in pattern.patterns for n in _case_names(p)]
    if isinstance(pattern, ast.MatchAs) and pattern.pattern is not None:
        return _case_names(pattern.pattern)
    return []


def _keyed_by(node: ast.Dict) -> list[str]:
    """Vocabulary names a dict literal is keyed by when it is a lookup table of them: two or
    more keys, every one a registry name (a record such as {"prototype": ..., "similarity":
    ...} or a spec's {"attention": ...} field is not one)."""
    keys = [k for k in node.keys if k is not None]
    names = [n for k in keys for n in _names(k)]
    return names if len(names) > 1 and len(names) == len(keys) else []


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


def test_the_checker_sees_lookup_tables_and_match(tmp_path):
    src = tmp_path / "x.py"
    src.write_text('words = {"clmm": "CLMM", "participant": "Wilcoxon"}[primary]\n'
                   'row = {"participant": 1, "answer": 2, "item": 3, "similarity": 4}\n'  # a record
                   'spec = {"attention": {"count": 1}}\n'                 # a spec field
                   'shape = {"saliency": 1, "likert": 2, **rest}\n'
                   'match kind:\n    case "likert" | "x":\n        pass\n    case "mturk":\n        pass\n'
                   '    case other:\n        pass\n')
    assert sorted(n for _, n in comparisons(src)) == ["clmm", "likert", "likert", "mturk", "participant", "saliency"]


def test_a_per_primary_choice_names_every_primary():
    import pytest

    from study.analysis.plan import PRIMARIES

    plan = PRIMARIES["participant"]
    assert plan.pick(clmm=1, participant=2, answer=3) == 2
    with pytest.raises(TypeError, match="one value per primary analysis"):
        plan.pick(clmm=1, participant=2)                  # a new primary left unhandled fails here
    assert plan.role("participant") == "primary" and plan.role("clmm") == "secondary"
    with pytest.raises(KeyError, match="not a primary analysis"):
        plan.role("wilcoxon")
