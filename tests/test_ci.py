"""`.ci/run`: install from the repository's files, lint and type-check, then run exactly the
README's test command (last). The linters are test requirements and configured in
pyproject.toml."""
from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_ci_runs_the_readme_test_command_last_after_lint_and_types():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    (test_command,) = re.findall(r"^bash scripts/setup\.sh --test && .*pytest.*$", readme, re.M)
    steps = [line.split("#")[0].strip() for line in (ROOT / ".ci" / "run").read_text().splitlines()]
    steps = [s for s in steps if s and not s.startswith(("set ", "cd "))]
    assert steps[-1] == test_command
    assert steps.index(".venv/bin/ruff check .") < len(steps) - 1
    assert steps.index(".venv/bin/mypy") < len(steps) - 1
    requirements = (ROOT / "requirements-test.txt").read_text()
    assert re.search(r"^ruff==", requirements, re.M) and re.search(r"^mypy==", requirements, re.M)
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "[tool.ruff.lint]" in pyproject and "[tool.mypy]" in pyproject
