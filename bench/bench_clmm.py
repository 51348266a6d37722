"""Benchmark: the cumulative link mixed model on 10,000 answers, and the level of the
consistency tests under heterogeneous participants. Prints the figures.

    .venv/bin/python bench/bench_clmm.py [--answers 10000] [--repeat 3] [--sims 300] [--r]

1. Fit time of `fit_clmm` (Laplace, crossed participant and item intercepts, method
   and data set fixed effects) on seeded CLMM data with `--answers` answers
   (80 participants x 125 items for 10,000), best of --repeat. Target: under 10 s on
   the 2-core CI machine (fit_clmm runs BLAS on one thread via threadpoolctl, whatever
   OMP_NUM_THREADS says: its dense blocks are small).
   With --r, also R's ordinal::clmm on the same data (time and the max |difference|
   of every estimate).
2. Type I error at nominal 5% of the consistency tests when the median participant
   is indifferent but participants differ in preference (logit SD 1.5, 30
   participants x 6 questions): answer-level binomial, participant-level Wilcoxon,
   logistic mixed model (primary).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from scipy import stats  # noqa: E402

from study.analysis.clmm import convergence_text, fit_clmm  # noqa: E402
from study.analysis.mixed import glmm_proportion  # noqa: E402
from study.analysis.participant_level import wilcoxon_paired  # noqa: E402

THETA = np.array([-1.5, -0.5, 0.4, 1.3])


def clmm_data(n_answers: int, seed: int = 0) -> pd.DataFrame:
    # unequal numbers of levels: R's clmm mislabels the two SDs when they tie
    participants = max(2, int(round(0.8 * np.sqrt(n_answers))))
    items = int(np.ceil(n_answers / participants))
    rng = np.random.default_rng(seed)
    b_p, b_i = rng.normal(0, 0.8, participants), rng.normal(0, 0.6, items)
    meth, ds = np.arange(items) % 3, (np.arange(items) // 3) % 2
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    p, i = p.ravel()[:n_answers], i.ravel()[:n_answers]
    eta = np.array([0.0, 0.7, -0.4])[meth[i]] + 0.3 * ds[i] + b_p[p] + b_i[i]
    cum = 1 / (1 + np.exp(-(THETA[None, :] - eta[:, None])))
    y = (rng.random(len(p))[:, None] > cum).sum(axis=1)
    return pd.DataFrame({"participant": [f"p{k:04d}" for k in p], "item": [f"t{k:04d}" for k in i],
                         "method": [f"m{k}" for k in meth[i]], "dataset": [f"d{k}" for k in ds[i]],
                         "rating": y + 1})


def design(df: pd.DataFrame):
    X = np.column_stack([df.method == "m1", df.method == "m2", df.dataset == "d1"]).astype(float)
    return df.rating.to_numpy() - 1, X, [df.participant.to_numpy(), df.item.to_numpy()]


R_SCRIPT = r"""
suppressMessages(library(ordinal))
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
t0 <- proc.time()[["elapsed"]]
m <- clmm(rating ~ method + dataset + (1|participant) + (1|item), data = d)
t1 <- proc.time()[["elapsed"]]
st <- unlist(m$ST)
cat(sprintf('{"seconds": %.3f, "coef": [%s], "st": {%s}, "loglik": %.10g}\n', t1 - t0,
    paste(sprintf("%.10g", coef(m)), collapse = ","),
    paste(sprintf('"%s": %.10g', names(st), st), collapse = ","), as.numeric(logLik(m))))
"""


def bench_fit(n_answers: int, repeat: int, with_r: bool) -> None:
    df = clmm_data(n_answers)
    y, X, groups = design(df)
    best, fit = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        fit = fit_clmm(y, X, groups, term_names=["participant", "item"])
        best = min(best, time.perf_counter() - t0)
    print(f"CLMM fit, {len(df)} answers ({df.participant.nunique()} participants x "
          f"{df.item.nunique()} items, 3 methods, 2 data sets): {best:.2f} s (best of {repeat}; "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}, "
          f"{os.cpu_count()} CPUs visible, load average {os.getloadavg()[0]:.1f})")
    print(f"  {convergence_text(fit)}")
    print(f"  thresholds {np.round(fit.thresholds, 4).tolist()}, beta {np.round(fit.beta, 4).tolist()}, "
          f"sd {np.round(fit.sd, 4).tolist()}, loglik {fit.loglik:.4f}")
    print(f"  target under 10 s: {'yes' if best < 10 else 'NO'}")
    if with_r:
        if shutil.which("Rscript") is None:
            print("  R comparison skipped: Rscript not installed")
            return
        with tempfile.TemporaryDirectory() as tmp:
            df.to_csv(Path(tmp) / "data.csv", index=False)
            (Path(tmp) / "fit.R").write_text(R_SCRIPT)
            run = subprocess.run(["Rscript", "--vanilla", "fit.R"], cwd=tmp, capture_output=True,
                                 text=True)
        if run.returncode:
            print(f"  R failed: {run.stderr.strip().splitlines()[-1:]}")
            return
        r = json.loads(run.stdout)
        ours = np.concatenate([fit.thresholds, fit.beta])
        sd = dict(zip(fit.term_names, fit.sd))
        print(f"  R ordinal::clmm: {r['seconds']:.2f} s; max |ours - R|: coefficients "
              f"{np.abs(ours - r['coef']).max():.2e}, SDs "
              f"{max(abs(sd[k] - v) for k, v in r['st'].items()):.2e}, "
              f"loglik {abs(fit.loglik - r['loglik']):.2e}")


def bench_level(sims: int) -> None:
    rng = np.random.default_rng(0)
    participants, questions = 30, 6
    cluster = np.repeat(np.arange(participants), questions)
    rej = {"answer-level binomial": 0, "participant-level Wilcoxon": 0,
           "logistic mixed model (primary)": 0}
    t0 = time.perf_counter()
    for _ in range(sims):
        pref = rng.normal(0, 1.5, participants)
        y = rng.random((participants, questions)) < 1 / (1 + np.exp(-pref[:, None]))
        rej["answer-level binomial"] += stats.binomtest(int(y.sum()), y.size).pvalue < 0.05
        w = wilcoxon_paired(y.mean(axis=1), np.full(participants, 0.5), "two-sided")["p_value"]
        rej["participant-level Wilcoxon"] += w < 0.05
        rej["logistic mixed model (primary)"] += glmm_proportion(y.ravel(), cluster)["p_value"] < 0.05
    secs = time.perf_counter() - t0
    print(f"Type I error at nominal 5%, consistency, {sims} simulated studies "
          f"({participants} participants x {questions} questions, preference SD 1.5 on the logit "
          f"scale, median participant indifferent; {secs:.1f} s):")
    for name, k in rej.items():
        rate = k / sims
        print(f"  {name}: {rate:.3f} (Monte Carlo SE {np.sqrt(rate * (1 - rate) / sims):.3f})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--answers", type=int, default=10_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--sims", type=int, default=300)
    ap.add_argument("--r", action="store_true", help="also fit with R's ordinal::clmm")
    args = ap.parse_args()
    bench_fit(args.answers, args.repeat, args.r)
    bench_level(args.sims)


if __name__ == "__main__":
    main()
