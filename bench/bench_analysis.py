"""Benchmark: analyse one million answers (no bootstrap, no power) and print the figures.

    .venv/bin/python bench/bench_analysis.py [--participants 16000] [--repeat 3]

Generates seeded synthetic answers (FORMATS.md §6; 3 methods x 2 data sets x 10 items
+ 1 attention + 5 consistency answers per participant = 66 rows), writes them as CSV
(not timed), then times `analyze()` stage by stage (best of --repeat runs), the whole
`python -m study analyze` report (tables, LaTeX, figures, HTML), and the count-based
Mann-Whitney test against scipy.stats.mannwhitneyu on the raw pooled answers.
The mixed models are off here (primary "answer"): bench/bench_clmm.py times the CLMM.
Target: the analysis of 1M answers in at most 5 s on the 2-core CI machine.
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scipy import stats  # noqa: E402

from study.analysis.exclusions import ExclusionRules  # noqa: E402
from study.analysis.mannwhitney import mwu_from_counts  # noqa: E402
from study.analysis.output import write_analysis  # noqa: E402
from study.analysis.pipeline import AnalysisOptions, analyze  # noqa: E402
from study.analysis.synthetic import synthetic_answers  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--participants", type=int, default=15_152)  # x 66 rows = 1,000,032
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "answers.csv"
        t = time.perf_counter()
        df = synthetic_answers(args.participants, consistency_versions=4, attention_fail_rate=0.05,
                               unfinished_rate=0.02, fast_rate=0.02, duplicate_workers=50, seed=0)
        df.to_csv(path, index=False)
        print(f"rows: {len(df):,}  csv: {path.stat().st_size / 1e6:.0f} MB  "
              f"(generated + written in {time.perf_counter() - t:.1f} s, not timed)")
        print(f"cpus: {os.cpu_count()}  load average: {os.getloadavg()[0]:.1f}")

        for label, rules in (("default rules", ExclusionRules()),
                             ("all rules (fast responders, keep-first duplicates)",
                              ExclusionRules(min_median_response_ms=1000, duplicate_workers="first"))):
            best = None
            for _ in range(args.repeat):
                t = time.perf_counter()
                res = analyze(path, AnalysisOptions(target="ProtoPool", rules=rules,
                                                    primary="answer", mixed=False))
                total = time.perf_counter() - t
                if best is None or total < best[0]:
                    best = (total, dict(res.seconds))
            total, parts = best
            print(f"\nanalyze() with {label}, mixed models off: {total:.2f} s for "
                  f"{res.rows:,} answers (best of {args.repeat})")
            for k, v in sorted(parts.items(), key=lambda kv: -kv[1]):
                print(f"  {k:<28} {v:6.3f} s  ({100 * v / total:4.1f}%)")

        t = time.perf_counter()
        files = write_analysis(res, Path(tmp) / "report", png=False)
        print(f"\nwriting the report ({len(files)} files, incl. 145k-row participant_means.csv "
              f"and 4.8 MB plotly.js): {time.perf_counter() - t:.2f} s")

        # count-based U/z vs SciPy on the raw pooled answers of two methods
        sal = df[df["kind"] == "saliency"]
        x = sal.loc[sal["method"] == "ProtoPool", "answer"].astype(int).to_numpy()
        y = sal.loc[sal["method"] == "ProtoTree", "answer"].astype(int).to_numpy()
        t = time.perf_counter()
        ref = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
        t_scipy = time.perf_counter() - t
        t = time.perf_counter()
        cx, cy = np.bincount(x, minlength=6)[1:], np.bincount(y, minlength=6)[1:]
        ours = mwu_from_counts(cx, cy, "greater")
        t_ours = time.perf_counter() - t
        assert np.isclose(ours["U"], ref.statistic) and np.isclose(ours["p"], ref.pvalue, rtol=1e-9,
                                                                   atol=1e-300)
        print(f"\nMann-Whitney on {len(x):,} vs {len(y):,} answers: scipy {t_scipy * 1e3:.1f} ms, "
              f"counts (incl. bincount) {t_ours * 1e3:.2f} ms, ratio {t_scipy / t_ours:.0f}x, "
              f"same U and p")


if __name__ == "__main__":
    main()
