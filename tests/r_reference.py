"""Running R reference fits from tests: one Rscript call per module, skipped cleanly
when R or a package is absent (Debian: r-base-core r-cran-ordinal r-cran-lme4;
`scripts/setup.sh --test` installs them)."""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pandas as pd
import pytest

# R helpers: numbers as JSON without jsonlite (not a dependency of ordinal or lme4)
R_JSON = r"""
num <- function(v) paste0("[", paste(ifelse(is.finite(v), sprintf("%.12g", v), "null"),
                                     collapse = ","), "]")
obj <- function(l) paste0("{", paste(sprintf('"%s": %s', names(l), unlist(l)), collapse = ", "), "}")
"""


def run_r(folder: Path, script: str, frames: dict[str, pd.DataFrame], *,
          packages=("ordinal",), timeout: int = 300) -> dict:
    """Write the frames as CSV, run the script (which cats one JSON object) and parse it."""
    if shutil.which("Rscript") is None:
        pytest.skip("Rscript is not installed (Debian: r-base-core r-cran-ordinal r-cran-lme4; "
                    "scripts/setup.sh --test installs them)")
    for name, df in frames.items():
        df.to_csv(folder / f"{name}.csv", index=False)
    libs = "".join(f"suppressMessages(library({p}))\n" for p in packages)
    (folder / "fit.R").write_text(libs + R_JSON + script)
    run = subprocess.run(["Rscript", "--vanilla", "fit.R"], cwd=folder, capture_output=True,
                         text=True, timeout=timeout)
    if "there is no package called" in run.stderr:
        pytest.skip(f"an R package is missing: {run.stderr.strip().splitlines()[-1]}")
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout.strip().splitlines()[-1])
