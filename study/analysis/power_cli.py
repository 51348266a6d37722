"""`python -m study power`: participants needed for 80% power, by seeded simulation.

Either from pilot answers (`--pilot ANSWERS.csv`; by default whole pilot participants
are resampled, keeping their within-person correlation; `--mode multinomial` pools the
pilot's score distributions and treats answers as independent) or from assumed score
distributions (`--assume METHOD=p1,p2,p3,p4,p5`, needs `--items`). The test planned
for is the one-sided asymptotic Mann-Whitney U of the target against each baseline at
--alpha, or with `--test wilcoxon` the participant-level Wilcoxon signed-rank test;
the study needs the largest of the per-baseline numbers.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from study.analysis.io import SCALE, Needs, load_answers
from study.analysis.power import (pilot_participant_counts, plan_from_pilot, plan_from_pmfs)
from study.analysis.summary import records
from study.errors import StudyError


def _parse_assume(values: list[str]) -> dict[str, np.ndarray]:
    out = {}
    for v in values:
        if "=" not in v:
            raise StudyError(f"--assume {v!r}: expected METHOD=p1,p2,...")
        name, _, probs = v.rpartition("=")
        try:
            p = np.array([float(x) for x in probs.split(",")])
        except ValueError:
            raise StudyError(f"--assume {v!r}: probabilities must be numbers") from None
        if len(p) != len(SCALE) or (p < 0).any() or p.sum() <= 0:
            raise StudyError(f"--assume {v!r}: expected {len(SCALE)} non-negative weights "
                             f"(one per score {SCALE[0]}..{SCALE[-1]})")
        out[name.strip()] = p / p.sum()
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study power",
                                description=__doc__.splitlines()[0])
    p.add_argument("--pilot", help="pilot answers CSV (FORMATS.md §6)")
    p.add_argument("--assume", action="append", default=[], metavar="METHOD=P1,..,P5",
                   help="assumed score distribution of a method (repeatable)")
    p.add_argument("--target", required=True)
    p.add_argument("--baseline", action="append", dest="baselines", metavar="METHOD")
    p.add_argument("--dataset", help="use only this data set's pilot answers")
    p.add_argument("--mode", choices=("bootstrap", "multinomial"), default=None,
                   help="pilot: bootstrap participants (default) or multinomial")
    p.add_argument("--test", choices=("mannwhitney", "wilcoxon"), default="mannwhitney",
                   help="planned test: answer-level Mann-Whitney U (default) or the "
                        "participant-level Wilcoxon signed-rank (needs --pilot, bootstrap mode)")
    p.add_argument("--items", type=int, default=None,
                   help="answers per participant and method (multinomial mode)")
    p.add_argument("--power", type=float, default=0.8)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--sims", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-participants", type=int, default=100_000)
    p.add_argument("--out", help="write the plan and power curve as JSON here")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    if bool(args.pilot) == bool(args.assume):
        raise StudyError("give either --pilot ANSWERS or --assume METHOD=... (not both)")
    if not 0 < args.power < 1 or not 0 < args.alpha < 1 or args.sims < 10:
        raise StudyError("--power and --alpha must be in (0, 1) and --sims >= 10")
    common = dict(target_power=args.power, alpha=args.alpha, sims=args.sims, seed=args.seed,
                  n_max=args.max_participants)
    if args.assume:
        pmfs = _parse_assume(args.assume)
        methods = list(pmfs)
        mode = "multinomial"
    else:
        answers = load_answers(args.pilot, Needs(attention=False, finished=False,
                                                 worker_id=False))
        sal = answers[answers["kind"] == "saliency"]
        methods = sorted(str(m) for m in sal["method"].unique())
        if args.dataset is not None:
            ds = sorted(str(d) for d in sal["dataset"].unique())
            if args.dataset not in ds:
                raise StudyError(f"--dataset {args.dataset!r} is not in the pilot "
                                 f"(data sets: {', '.join(ds) or 'none'})")
        mode = args.mode or "bootstrap"
    if args.test == "wilcoxon" and (args.assume or mode != "bootstrap"):
        raise StudyError("--test wilcoxon needs --pilot answers in bootstrap mode "
                         "(per-participant differences come from the pilot)")
    if args.target not in methods:
        raise StudyError(f"--target {args.target!r} is not among the methods "
                         f"({', '.join(methods) or 'none'})")
    baselines = args.baselines or [m for m in methods if m != args.target]
    for b in baselines:
        if b not in methods or b == args.target:
            raise StudyError(f"--baseline {b!r} is not another method ({', '.join(methods)})")
    if not baselines:
        raise StudyError("no baseline to plan for")

    if args.assume:
        if not args.items or args.items < 1:
            raise StudyError("--assume needs --items (answers per participant and method)")
        plan, curve = plan_from_pmfs(pmfs, args.target, baselines, items_per_method=args.items,
                                     **common)
    else:
        counts, _ = pilot_participant_counts(answers, methods, SCALE, args.dataset)
        if mode == "bootstrap":
            plan, curve = plan_from_pilot(counts, methods, args.target, baselines,
                                          test=args.test, scale=SCALE, **common)
        else:
            per = counts.sum(axis=2)
            items = args.items or int(np.median(per[per > 0]))
            pmfs = {m: counts[:, i].sum(axis=0).astype(float) for i, m in enumerate(methods)}
            for m in [args.target] + baselines:
                if pmfs[m].sum() == 0:
                    raise StudyError(f"pilot: no ratings of {m!r}")
            plan, curve = plan_from_pmfs(pmfs, args.target, baselines, items_per_method=items,
                                         **common)
    for r in plan.itertuples():
        if r.participants is None:
            print(f"{args.target} > {r.baseline}: more than {args.max_participants} participants "
                  f"(power {args.power} not reached; the target shows no clear advantage) [{r.mode}]")
        else:
            print(f"{args.target} > {r.baseline}: {int(r.participants)} participants "
                  f"(power {r.power:.3f}) [{r.mode}, {r.test}]")
    needed = plan["participants"]
    if needed.notna().all():
        test = "Wilcoxon signed-rank" if args.test == "wilcoxon" else "Mann-Whitney"
        print(f"study needs {int(needed.max())} participants for power {args.power} "
              f"at alpha {args.alpha} (one-sided {test}, {args.sims} simulations, "
              f"seed {args.seed})")
    if args.out:
        out = Path(args.out)
        doc = {"format": "protoproto-power", "version": 1, "target": args.target,
               "baselines": baselines, "mode": mode, "test": args.test, "power": args.power, "alpha": args.alpha,
               "sims": args.sims, "seed": args.seed, "pilot": args.pilot,
               "assumed": {k: v.tolist() for k, v in pmfs.items()} if args.assume else None,
               "plan": records(plan), "curve": records(curve)}
        out.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(doc, fh, indent=2, allow_nan=False)
            os.replace(tmp, out)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        print(f"wrote {out}", file=sys.stderr)
    return 0
