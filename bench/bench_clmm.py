"""Benchmark: the saliency CLMM with its maximal random-effects structure on 10,000
answers, and the level of both primary tests under heterogeneous nulls. Prints figures.

    .venv/bin/python bench/bench_clmm.py [--repeat 2] [--consistency-sims 500]
        [--saliency-sims 300] [--no-r] [--r-timeout 1800] [--only fit|consistency|saliency]
        [--seed 0]

1. Fit time of the maximal model `rating ~ method + dataset + (1 + method | participant)
   + (1 | item)` (study/analysis/clmm_re.py, Laplace) on seeded data from that model:
   80 participants x 125 items = 10,000 answers, 3 methods, 2 data sets. Target: 5 s on
   2 cores. BLAS runs on one thread during the fit (threadpoolctl). When Rscript is
   present, R's ordinal::clmm on the same data: its time and max |ours - R|.
2. Consistency primary (logistic mixed model, crossed participant and pair intercepts,
   likelihood-ratio test; study.analysis.mixed.glmm_proportion) on null studies with
   heterogeneous participants AND pairs: 30 participants x 2 versions x 20 pairs, each
   participant's preference p_i ~ Beta(2, 2), undecided rate ~ Beta(1, 9), pair effect
   N(0, 0.8^2) on the logit scale. Rejection rate at 0.05 with its Monte Carlo SE;
   target [0.035, 0.065]. Answer-level binomial and participant-level Wilcoxon beside it.
3. Saliency primary (the declared structure with its fallback, likelihood-ratio test of
   target vs the first baseline, one-sided "greater") on null studies where the method
   effect varies over participants (slope SD 0.6, mean effect 0): 24 participants x 18
   items, 3 methods. Target [0.03, 0.07].
The machine may be shared: the load average is printed beside every time.
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

from study.analysis.clmm_re import convergence_text, fit_clmm_re, make_term  # noqa: E402
from study.analysis.mixed import (fit_structure, fit_with_fallback, glmm_proportion,  # noqa: E402
                                  ratings_design)
from study.analysis.participant_level import wilcoxon_paired  # noqa: E402

THETA = np.array([-1.5, -0.5, 0.4, 1.3])
CHOL = np.array([[0.9, 0.0, 0.0], [0.45, 0.6, 0.0], [-0.3, 0.25, 0.7]])


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def slopes_data(participants: int, items: int, *, rng: np.random.Generator, chol=CHOL,
                effects=(0.5, -0.3), sd_item: float = 0.6) -> pd.DataFrame:
    """Ratings from the maximal CLMM (items nested in 3 methods, 2 data sets)."""
    meth, ds = np.arange(items) % 3, (np.arange(items) // 3) % 2
    p, i = np.meshgrid(np.arange(participants), np.arange(items), indexing="ij")
    p, i = p.ravel(), i.ravel()
    b = rng.normal(size=(participants, 3)) @ np.asarray(chol).T
    m = meth[i]
    eta = (np.array([0.0, *effects])[m] + 0.3 * ds[i] + b[p, 0]
           + np.where(m > 0, b[p, m], 0.0) + rng.normal(0, sd_item, items)[i])
    cum = 1 / (1 + np.exp(-(THETA[None, :] - eta[:, None])))
    y = (rng.random(len(p))[:, None] > cum).sum(axis=1)
    return pd.DataFrame({"participant": [f"p{k:03d}" for k in p], "item": [f"t{k:03d}" for k in i],
                         "method": [f"m{k}" for k in m], "dataset": [f"d{k}" for k in ds[i]],
                         "rating": y + 1})


def maximal_design(df: pd.DataFrame):
    D = np.column_stack([df.method == "m1", df.method == "m2"]).astype(float)
    X = np.column_stack([D, df.dataset == "d1"]).astype(float)
    Z = np.column_stack([np.ones(len(df)), D])
    terms = [make_term("participant", df.participant, Z, ["(Intercept)", "methodm1", "methodm2"]),
             make_term("item", df.item)]
    return df.rating.to_numpy() - 1, X, terms


R_SCRIPT = r"""
suppressMessages(library(ordinal))
d <- read.csv("data.csv"); d$rating <- factor(d$rating, ordered = TRUE)
t0 <- proc.time()[["elapsed"]]
m <- clmm(rating ~ method + dataset + (1 + method | participant) + (1 | item), data = d)
t1 <- proc.time()[["elapsed"]]
sds <- c(); cors <- c()
for (k in names(m$ST)) { S <- m$ST[[k]] %*% t(m$ST[[k]]); sds <- c(sds, sqrt(diag(S)))
  if (nrow(S) > 1) { C <- cov2cor(S); cors <- c(cors, C[lower.tri(C)]) } }
f <- function(v) paste(sprintf("%.10g", v), collapse = ",")
cat(sprintf('{"seconds": %.3f, "coef": [%s], "sd": [%s], "corr": [%s], "names": [%s], "loglik": %.10g}\n',
    t1 - t0, f(coef(m)), f(sds), f(cors), paste0('"', names(m$ST), '"', collapse = ","),
    as.numeric(logLik(m))))
"""


def bench_fit(repeat: int, with_r: bool, r_timeout: int) -> None:
    df = slopes_data(80, 125, rng=np.random.default_rng(0))
    y, X, terms = maximal_design(df)
    best, fit = np.inf, None
    for _ in range(repeat):
        t0 = time.perf_counter()
        fit = fit_clmm_re(y, X, terms)
        best = min(best, time.perf_counter() - t0)
    assert fit is not None
    print(f"Maximal CLMM, {len(df)} answers ({df.participant.nunique()} participants x "
          f"{df.item.nunique()} items, 3 methods, 2 data sets): {best:.2f} s (best of {repeat}; "
          f"{load()}; the machine is shared with other jobs)")
    print(f"  {convergence_text(fit)}")
    sds = {t["factor"]: np.round(t["sd"], 4).tolist() for t in fit.terms}
    print(f"  thresholds {np.round(fit.thresholds, 4).tolist()}, beta "
          f"{np.round(fit.beta, 4).tolist()}, SDs {sds}, loglik {fit.loglik:.4f}")
    print(f"  target 5 s: {'met' if best <= 5 else 'NOT met'}")
    if not with_r:
        return
    if shutil.which("Rscript") is None:
        print("  R comparison skipped: Rscript not installed")
        return
    with tempfile.TemporaryDirectory() as tmp:
        df.to_csv(Path(tmp) / "data.csv", index=False)
        (Path(tmp) / "fit.R").write_text(R_SCRIPT)
        try:
            run = subprocess.run(["Rscript", "--vanilla", "fit.R"], cwd=tmp, capture_output=True,
                                 text=True, timeout=r_timeout)
        except subprocess.TimeoutExpired:
            print(f"  R ordinal::clmm: more than {r_timeout} s ({load()}); stopped")
            return
    if run.returncode:
        print(f"  R failed: {run.stderr.strip().splitlines()[-1:]}")
        return
    r = json.loads(run.stdout.strip().splitlines()[-1])
    ours = np.concatenate([fit.thresholds, fit.beta])
    by = {t["factor"]: t for t in fit.terms}
    our_sd = np.concatenate([by[k]["sd"] for k in r["names"]])
    our_corr = np.concatenate([by[k]["corr"][np.tril_indices(len(by[k]["sd"]), -1)]
                               for k in r["names"]])
    print(f"  R ordinal::clmm on the same data: {r['seconds']:.1f} s ({load()}); "
          f"max |ours - R|: coefficients {np.abs(ours - r['coef']).max():.1e}, SDs "
          f"{np.abs(our_sd - r['sd']).max():.1e}, correlations "
          f"{np.abs(our_corr - r['corr']).max():.1e}, loglik {abs(fit.loglik - r['loglik']):.1e}")


def rate_line(name: str, k: int, sims: int, target: tuple[float, float] | None = None) -> str:
    rate = k / sims
    se = np.sqrt(rate * (1 - rate) / sims)
    out = f"  {name}: {k}/{sims} = {rate:.3f} (Monte Carlo SE {se:.3f})"
    if target:
        out += f"; target [{target[0]}, {target[1]}]: {'met' if target[0] <= rate <= target[1] else 'NOT met'}"
    return out


def consistency_null(rng: np.random.Generator, participants=30, versions=2, pairs=20):
    version = np.arange(participants) % versions
    pref = rng.beta(2, 2, participants)
    undecided = rng.beta(1, 9, participants)
    pair_effect = rng.normal(0, 0.8, versions * pairs)
    pid = np.repeat(np.arange(participants), pairs)
    pair = (version[:, None] * pairs + np.arange(pairs)[None, :]).ravel()
    logit = np.log(pref / (1 - pref))[pid] + pair_effect[pair]
    dd = rng.random(len(pid)) < 1 / (1 + np.exp(-logit))
    keep = rng.random(len(pid)) >= undecided[pid]
    return dd[keep], pid[keep], pair[keep]


def bench_consistency(sims: int, seed: int = 0) -> None:
    rng = np.random.default_rng(2027 + seed)
    rej = {"logistic mixed model, participant x pair, LR (primary)": 0,
           "answer-level binomial": 0, "participant-level Wilcoxon": 0}
    unconverged = 0
    t0 = time.perf_counter()
    for _ in range(sims):
        dd, pid, pair = consistency_null(rng)
        g = glmm_proportion(dd, pid, pair=pair)
        unconverged += not g["converged"]
        rej["logistic mixed model, participant x pair, LR (primary)"] += g["p_value"] < 0.05
        rej["answer-level binomial"] += stats.binomtest(int(dd.sum()), len(dd)).pvalue < 0.05
        prop = pd.Series(dd.astype(float)).groupby(pid).mean().to_numpy()
        w = wilcoxon_paired(prop, np.full(len(prop), 0.5), "two-sided")["p_value"]
        rej["participant-level Wilcoxon"] += w < 0.05
    secs = time.perf_counter() - t0
    print(f"Consistency primary, false-positive rate at 0.05 on {sims} null studies (30 "
          "participants x 2 versions x 20 pairs; preference ~ Beta(2,2), undecided ~ Beta(1,9), "
          f"pair effect N(0, 0.8^2) on the logit; {secs:.0f} s, {load()}):")
    for j, (name, k) in enumerate(rej.items()):
        print(rate_line(name, k, sims, (0.035, 0.065) if j == 0 else None))
    print(f"  primary fits not converged: {unconverged}")


def bench_saliency(sims: int, seed: int = 0) -> None:
    rng = np.random.default_rng(2028 + seed)
    chol = np.array([[0.8, 0.0, 0.0], [0.0, 0.6, 0.0], [0.0, 0.3, 0.5]])
    rejections, structures = 0, {}
    t0 = time.perf_counter()
    for _ in range(sims):
        df = slopes_data(24, 18, rng=rng, chol=chol, effects=(0.0, 0.0), sd_item=0.5)
        answers = pd.DataFrame({"kind": "saliency", "participant_id": df.participant,
                                "item_id": df.item, "method": df.method,
                                "dataset": df.dataset, "score": df.rating})
        methods = ["m0", "m1", "m2"]
        d = ratings_design(answers, methods, (1, 2, 3, 4, 5))
        fit, used, _att, _why = fit_with_fallback(d, methods)
        structures[used] = structures.get(used, 0) + 1
        red = fit_structure(d, used, np.delete(d["X"], 0, axis=1))
        est = -fit.beta[0]                 # target m0 - baseline m1
        signed = np.sign(est) * np.sqrt(max(0.0, 2 * (fit.loglik - red.loglik)))
        rejections += stats.norm.sf(signed) < 0.05
    secs = time.perf_counter() - t0
    print(f"Saliency primary, false-positive rate at 0.05 (one-sided LR, target vs first "
          f"baseline) on {sims} null studies with participant-varying method effects (24 "
          f"participants x 18 items, 3 methods, slope SDs 0.6 and 0.58; {secs:.0f} s, {load()}):")
    print(rate_line("CLMM, declared structure with fallback, LR (primary)", rejections, sims,
                    (0.03, 0.07)))
    print(f"  structures used: {structures}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--consistency-sims", type=int, default=500)
    ap.add_argument("--saliency-sims", type=int, default=300)
    ap.add_argument("--no-r", action="store_true", help="skip R's ordinal::clmm")
    ap.add_argument("--r-timeout", type=int, default=1800)
    ap.add_argument("--only", choices=("fit", "consistency", "saliency"))
    ap.add_argument("--seed", type=int, default=0, help="added to the null studies' seeds")
    args = ap.parse_args()
    if args.only in (None, "fit"):
        bench_fit(args.repeat, not args.no_r, args.r_timeout)
    if args.only in (None, "consistency"):
        bench_consistency(args.consistency_sims, args.seed)
    if args.only in (None, "saliency"):
        bench_saliency(args.saliency_sims, args.seed)


if __name__ == "__main__":
    main()
