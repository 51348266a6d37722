"""Benchmark: the level of the multi-source consistency primary (Bradley-Terry logistic
mixed model, study/analysis/multisource.py) under a heterogeneous null. Prints figures.

    .venv/bin/python bench/bench_multisource.py [--sims 200] [--sources 3] [--seed 0]
        [--participants 30] [--per 6]

Null studies: S pair sources compared two at a time, 30 participants x 2 versions, each
version its own 6 questions per comparison; no source is preferred on average, but every
participant has their own worth per source, u ~ N(0, 0.8^2) (so their preferences in the
comparisons are correlated; the model's by-participant source slopes hold that), every question its own effect N(0, 0.8^2) on the logit, undecided rate per
participant ~ Beta(1, 9). Rejection rate at 0.05 with its Monte Carlo SE for the primary
likelihood-ratio test of "no source preferred" (target [0.035, 0.065]), beside the
participant-level Friedman test and the answer-level chi-square (answers as independent).
The machine may be shared: the load average is printed beside the time.
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from study.analysis.multisource import answer_level, bt_glmm, participant_level  # noqa: E402


def load() -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.1f} / {five:.1f} / {fifteen:.1f} on {os.cpu_count()} CPUs"


def null_study(rng: np.random.Generator, sources, participants=30, versions=2, per=6) -> pd.DataFrame:
    comps = list(itertools.combinations(sources, 2))
    rows = []
    q_effect = rng.normal(0, 0.8, versions * len(comps) * per)
    for p in range(participants):
        v = p % versions
        worth = dict(zip(sources, rng.normal(0, 0.8, len(sources))))
        undecided = rng.beta(1, 9)
        for c, (a, b) in enumerate(comps):
            for k in range(per):
                q = (v * len(comps) + c) * per + k
                if rng.random() < undecided:
                    choice = "undecided"
                else:
                    eta = worth[a] - worth[b] + q_effect[q]
                    choice = "first" if rng.random() < 1 / (1 + np.exp(-eta)) else "second"
                rows.append((f"p{p}", f"q{q}", v, a, b, f"{a} vs {b}", choice, choice == "first"))
    return pd.DataFrame(rows, columns=["participant", "pair", "version", "first", "second",
                                       "comparison", "choice", "first_wins"])


def rate_line(name: str, k: int, sims: int, target=None) -> str:
    rate = k / sims
    se = np.sqrt(rate * (1 - rate) / sims)
    out = f"  {name}: {k}/{sims} = {rate:.3f} (Monte Carlo SE {se:.3f})"
    if target:
        out += f"; target [{target[0]}, {target[1]}]: {'met' if target[0] <= rate <= target[1] else 'NOT met'}"
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sims", type=int, default=200)
    ap.add_argument("--sources", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--participants", type=int, default=30)
    ap.add_argument("--per", type=int, default=6, help="questions per comparison and version")
    args = ap.parse_args()
    sources = tuple(["data_dependent", "euclidean", "cosine", "manhattan", "random"][:args.sources])
    rng = np.random.default_rng(4242 + args.seed)
    rej = {"Bradley-Terry mixed model, LR (primary)": 0, "participant-level Friedman": 0,
           "answer-level chi-square": 0}
    unconverged = 0
    t0 = time.perf_counter()
    for _ in range(args.sims):
        comp = null_study(rng, sources, participants=args.participants, per=args.per)
        res = bt_glmm(comp, sources, bootstrap=0)
        m = res["model"].iloc[0]
        unconverged += not m["converged"]
        rej["Bradley-Terry mixed model, LR (primary)"] += m["p_value"] < 0.05
        rej["participant-level Friedman"] += participant_level(comp, sources)["friedman"].iloc[0]["p_value"] < 0.05
        rej["answer-level chi-square"] += answer_level(comp, sources)["overall"].iloc[0]["p_value"] < 0.05
    secs = time.perf_counter() - t0
    print(f"Multi-source consistency primary ({len(sources)} sources), false-positive rate at 0.05 on "
          f"{args.sims} null studies ({args.participants} participants x 2 versions x {args.per} questions "
          "per comparison; "
          f"participant worths N(0, 0.8^2) per source, question effect N(0, 0.8^2), undecided ~ Beta(1,9); "
          f"{secs:.0f} s, {load()}):")
    for j, (name, k) in enumerate(rej.items()):
        print(rate_line(name, k, args.sims, (0.035, 0.065) if j == 0 else None))
    print(f"  primary fits not converged: {unconverged}")


if __name__ == "__main__":
    main()
