"""`python -m study power`: participants needed for 80% power, by seeded simulation.

Either from pilot answers (`--pilot ANSWERS.csv`; by default whole pilot participants
are resampled, keeping their within-person correlation; `--mode multinomial` pools the
pilot's score distributions and treats answers as independent) or from assumed score
distributions (`--assume METHOD=p1,p2,p3,p4,p5`, needs `--items`). The test planned
for is the primary analysis (`--test`, default: the spec's analysis.primary, else
clmm): `clmm` fits the cumulative link mixed model to each simulated study (crossed
participant and item intercepts; parameters from a CLMM fit to the pilot, or from
--assume/--log-odds-ratio with --participant-sd and --item-sd) and counts one-sided
Wald rejections; `wilcoxon` is the participant-level Wilcoxon signed-rank test;
`mannwhitney` the answer-level U test. Each power comes with its Monte Carlo error,
and n is the smallest whose lower 95% Monte Carlo bound reaches --power. The study
needs the largest of the per-baseline numbers.

Every registered question kind is planned: `--kind` (default: the spec's kind, else the
first registered) picks the kind, and the kind's analysis (study/kinds/) names its power
simulation and turns the options into its parameters. Rating kinds take the options
above; the others take assumed parameters (--log-odds-ratio or --odds-ratio, --items,
--participant-sd, --item-sd and the kind's own, e.g. --k, --intercept, --gap, --p-correct).
`--participants N` prints the power at N participants instead of searching for n.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from common.atomic import write_atomic
from study.analysis.io import RATING_KINDS, SCALE, Needs, load_answers
from study.analysis.power import (pilot_participant_counts, plan_from_pilot, plan_from_pmfs)
from study.kinds import ATTENTION, KINDS, kind_of
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


# the assumed effect and random-effect sizes, and the kinds' own parameters (all default None)
EFFECT_OPTIONS = (
    ("--log-odds-ratio", float, "clmm with --assume: assumed log odds ratio of a higher rating, target "
                                "vs baseline (default: fitted to the --assume distributions)"),
    ("--participant-sd", float, "clmm with --assume: SD of participant intercepts (default 0.8)"),
    ("--slope-sd", float, "clmm with --assume: SD of the by-participant method effect "
                          "(default: the spec's power.slope_sd, else 0.3)"),
    ("--item-sd", float, "clmm with --assume: SD of item intercepts (default 0.5)"),
    ("--odds-ratio", float, "the effect as an odds ratio (instead of --log-odds-ratio)"),
    ("--k", int, "choices per question where chance is 1/k (default: the spec's, else the kind's default)"),
    ("--intercept", float, "log odds of a correct answer above chance under the baseline (default 0)"),
    ("--gap", float, "log odds ratio of higher confidence for right vs wrong predictions under the "
                     "baseline (default 1.0)"),
    ("--p-correct", float, "share of shown predictions that are right (default 0.5)"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study power",
                                description=__doc__.splitlines()[0])
    p.add_argument("--pilot", help="pilot answers CSV (FORMATS.md §6)")
    p.add_argument("--assume", action="append", default=[], metavar="METHOD=P1,..,P5",
                   help="assumed score distribution of a method (repeatable)")
    p.add_argument("--kind", default=None,
                   help="question kind to plan (default: the spec's kind, else the first "
                        f"registered); one of {', '.join(KINDS)}")
    p.add_argument("--target", default=None, help="target method (rating kinds: required)")
    p.add_argument("--baseline", action="append", dest="baselines", metavar="METHOD")
    p.add_argument("--dataset", help="use only this data set's pilot answers")
    p.add_argument("--mode", choices=("bootstrap", "multinomial"), default=None,
                   help="pilot: bootstrap participants (default) or multinomial")
    p.add_argument("--test", choices=("clmm", "wilcoxon", "mannwhitney"), default=None,
                   help="planned test (default: the primary analysis of --spec, else clmm): "
                        "cumulative link mixed model, participant-level Wilcoxon signed-rank "
                        "(needs --pilot, bootstrap mode) or answer-level Mann-Whitney U")
    p.add_argument("--spec", help="study spec YAML: its analysis.primary, alpha and power "
                                  "section give the defaults")
    for flag, kind, text in EFFECT_OPTIONS:
        p.add_argument(flag, type=kind, default=None, help=text)
    p.add_argument("--alternative", choices=("greater", "less", "two-sided"), default=None,
                   help="mixed-model kinds: the test's alternative (default: the spec's, greater)")
    p.add_argument("--participants", type=int, default=None,
                   help="print the power at this many participants instead of searching n")
    p.add_argument("--items", type=int, default=None,
                   help="answers per participant and method (multinomial mode)")
    p.add_argument("--power", type=float, default=None, help="target power (default 0.8)")
    p.add_argument("--alpha", type=float, default=None, help="default 0.05")
    p.add_argument("--sims", type=int, default=None,
                   help="simulated studies per n (default 2000; 200 for clmm, which fits each)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-participants", type=int, default=None,
                   help="search limit (default 100000; 400 for clmm)")
    p.add_argument("--out", help="write the plan and power curve as JSON here")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from study.analysis.plan import AnalysisPlan
    plan_decl, spec = AnalysisPlan(), None
    if args.spec:
        from study.spec import load_spec
        spec = load_spec(args.spec)
        plan_decl = spec.analysis
    name = args.kind or (spec.kind if spec is not None else KINDS[0])
    kind = kind_of(name)
    args.kind = kind.name
    if args.odds_ratio is not None:
        if args.log_odds_ratio is not None or args.odds_ratio <= 0:
            raise StudyError("--odds-ratio must be positive and not given with --log-odds-ratio")
        args.log_odds_ratio = float(np.log(args.odds_ratio))
    return kind.analysis().power_plan(args, plan_decl, kind, spec)


def _search_options(args, plan_decl, *, sims: int, max_participants: int) -> None:
    """Default --power, --alpha, --sims (to `sims`), --max-participants (to
    `max_participants`) and --seed from the spec's analysis plan, and check them."""
    pw = plan_decl.power
    args.power = args.power if args.power is not None else pw.power
    args.alpha = args.alpha if args.alpha is not None else plan_decl.alpha
    args.sims = args.sims if args.sims is not None else sims
    args.max_participants = args.max_participants or max_participants
    if args.seed == 0 and pw.seed is not None:
        args.seed = pw.seed
    if not 0 < args.power < 1 or not 0 < args.alpha < 1 or args.sims < 10:
        raise StudyError("--power and --alpha must be in (0, 1) and --sims >= 10")


def ratings_plan(args, plan_decl, kind, spec) -> int:
    """The plan of a ratings primary (saliency-style ratings of one method's map)."""
    pw = plan_decl.power
    if not args.target:
        raise StudyError(f"{kind.name}: --target METHOD is needed")
    if args.participants is not None:
        raise StudyError(f"--participants: {kind.name} plans search the participants needed "
                         "(drop --participants)")
    from study.analysis.plan import PRIMARIES
    args.test = args.test or PRIMARIES[plan_decl.primary].power_test
    if bool(args.pilot) == bool(args.assume):
        raise StudyError("give either --pilot ANSWERS or --assume METHOD=... (not both)")
    clmm = args.test == "clmm"
    _search_options(args, plan_decl, sims=pw.sims if clmm else 2000,
                    max_participants=pw.max_participants if clmm else 100_000)
    common = dict(target_power=args.power, alpha=args.alpha, sims=args.sims, seed=args.seed,
                  n_max=args.max_participants)
    if args.assume:
        pmfs = _parse_assume(args.assume)
        methods = list(pmfs)
        mode = "multinomial"
    else:
        answers = load_answers(args.pilot, Needs(attention=False, finished=False,
                                                 worker_id=False))
        sal = answers[answers["kind"].isin(RATING_KINDS)]
        if sal.empty:
            kinds = sorted(str(k) for k in answers["kind"].unique() if k != ATTENTION)
            raise StudyError(f"{args.pilot}: power plans saliency studies (ratings per method, --target against "
                             f"baselines); these answers hold no saliency ratings (kinds: {', '.join(kinds) or 'none'})")
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

    clmm_params = None
    if clmm:
        from study.analysis.power import clmm_parameters_from_pmf, plan_clmm
        items = args.items or pw.items_per_method
        if args.assume:
            if not items or items < 1:
                raise StudyError("--assume needs --items (answers per participant and method)")
            lor = args.log_odds_ratio if args.log_odds_ratio is not None else pw.log_odds_ratio
            sd_p = args.participant_sd if args.participant_sd is not None else pw.participant_sd
            sd_i = args.item_sd if args.item_sd is not None else pw.item_sd
            sd_s = args.slope_sd if args.slope_sd is not None else pw.slope_sd
            clmm_params = {b: clmm_parameters_from_pmf(pmfs[b], pmfs[args.target],
                                                       log_odds_ratio=lor, participant_sd=sd_p,
                                                       item_sd=sd_i, slope_sd=sd_s)
                           for b in baselines}
            mode = "assumed"
        else:
            from study.analysis.mixed import clmm_ratings, random_sds
            counts, _ = pilot_participant_counts(answers, methods, SCALE, args.dataset)
            per = counts.sum(axis=2)
            items = items or int(np.median(per[per > 0]))
            pilot = answers if args.dataset is None else \
                answers[answers["dataset"].astype(str) == args.dataset]
            clmm_params = {}
            for b in baselines:
                fitted = clmm_ratings(pilot, args.target, [b], scale=SCALE, profile=False)
                fit, c = fitted["fit"], fitted["contrasts"].iloc[0]
                sds = random_sds(fit)
                clmm_params[b] = {"thresholds": fit.thresholds.tolist(),
                                  "log_odds_ratio": float(c["log_odds_ratio"]),
                                  "participant_sd": sds["participant"],
                                  "item_sd": sds["item"], "slope_sd": sds["slope"]}
            mode = "pilot CLMM fit"
        plan, curve = plan_clmm(clmm_params, items_per_method=items, target_power=args.power,
                                alpha=args.alpha, sims=args.sims, seed=args.seed,
                                n_max=args.max_participants, mode=mode)
    elif args.assume:
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
    test = {"wilcoxon": "Wilcoxon signed-rank", "mannwhitney": "Mann-Whitney",
            "clmm": "CLMM Wald"}[args.test]
    doc = {"mode": mode, "pilot": args.pilot, "clmm_parameters": clmm_params,
           "assumed": {k: v.tolist() for k, v in pmfs.items()} if args.assume else None}
    return report(args, plan, curve, baselines, test, doc)


def report(args, plan, curve, baselines: list[str], test: str, doc: dict) -> int:
    """Print the plan (one line per baseline and the study's n) and write --out."""
    for r in plan.itertuples():
        if r.participants is None:
            print(f"{args.target} > {r.baseline}: more than {args.max_participants} participants "
                  f"(power {args.power} not reached; the target shows no clear advantage) [{r.mode}]")
        else:
            print(f"{args.target} > {r.baseline}: {int(r.participants)} participants "
                  f"(power {r.power:.3f} ± {r.mc_se:.3f} Monte Carlo SE, 95% interval "
                  f"{r.power_ci_low:.3f}–{r.power_ci_high:.3f}) [{r.mode}, {r.test}]")
    needed = plan["participants"]
    if needed.notna().all():
        print(f"study needs {int(needed.max())} participants for power {args.power} "
              f"at alpha {args.alpha} (one-sided {test}, {args.sims} simulations, "
              f"seed {args.seed}; n chosen where the lower Monte Carlo bound reaches the target)")
    if args.out:
        out = Path(args.out)
        doc = {"format": "protoproto-power", "version": 1, "kind": args.kind, "target": args.target,
               "baselines": baselines, "mode": doc.pop("mode"), "test": args.test, "power": args.power,
               "alpha": args.alpha, "sims": args.sims, "seed": args.seed, "pilot": doc.pop("pilot"),
               "criterion": "smallest n whose lower 95% Wilson bound of the simulated power "
                            "reaches the target", **doc,
               "plan": records(plan), "curve": records(curve)}
        write_atomic(out, json.dumps(doc, indent=2, allow_nan=False))
        print(f"wrote {out}", file=sys.stderr)
    return 0


def simulated_plan(args, plan_decl, kind, spec) -> int:
    """The plan of a kind whose analysis simulates assumed parameters: its declared
    `power_simulation` called with the keyword arguments its `power_arguments` makes."""
    import importlib

    from study.analysis.power import _plan_row, required_participants
    analysis = kind.analysis()
    if args.pilot or args.assume:
        raise StudyError(f"{kind.name}: power is planned from assumed parameters "
                         "(--log-odds-ratio or --odds-ratio, --items, ...), not --pilot/--assume")
    pw = plan_decl.power
    args.alternative = args.alternative or plan_decl.alternative
    _search_options(args, plan_decl, sims=pw.sims, max_participants=pw.max_participants)
    if args.log_odds_ratio is None:
        args.log_odds_ratio = pw.log_odds_ratio
    if args.log_odds_ratio is None:
        raise StudyError(f"{kind.name}: give the effect (--log-odds-ratio L or --odds-ratio R)")
    args.items = args.items or pw.items_per_method
    if not args.items or args.items < 1:
        raise StudyError(f"{kind.name}: give --items (questions per participant and method)")
    args.participant_sd = args.participant_sd if args.participant_sd is not None else pw.participant_sd
    args.item_sd = args.item_sd if args.item_sd is not None else pw.item_sd
    if analysis.needs_target:
        args.target = args.target or plan_decl.target or "target"
        baselines = args.baselines or list(plan_decl.baselines or ()) or ["baseline"]
    else:                                  # no target method: one source against the other
        args.target, baselines = "one pair source", ["the other"]
    alpha = args.alpha / len(baselines)       # Bonferroni-safe plan of the Holm family
    module, _, fn_name = analysis.power_simulation.rpartition(".")
    simulate = getattr(importlib.import_module(module), fn_name)
    kwargs, reported = analysis.power_arguments(args, kind, spec)
    args.test = fn_name.removeprefix("simulate_power_")
    cache: dict[int, float] = {}

    def at(n: int) -> float:
        if n not in cache:
            cache[n] = simulate(n, **kwargs, sims=args.sims, alpha=alpha, seed=args.seed)
        return cache[n]
    if args.participants is not None:
        if args.participants < 2:
            raise StudyError("--participants must be at least 2")
        row = _plan_row(at, args.participants, args.sims)
        print(f"{kind.name}: power {row['power']:.3f} ± {row['mc_se']:.3f} Monte Carlo SE "
              f"(95% interval {row['power_ci_low']:.3f}–{row['power_ci_high']:.3f}) at "
              f"{args.participants} participants, alpha {alpha:g} [{args.test}, {args.sims} "
              f"simulations, seed {args.seed}; {_params_text(reported)}]")
        return 0
    plans, curves = [], []
    for b in baselines:
        n, curve = required_participants(at, target_power=args.power, n_min=4,
                                         n_max=args.max_participants, sims=args.sims)
        plans.append({"baseline": b, "participants": n, **_plan_row(at, n, args.sims),
                      "mode": "assumed", "test": args.test, **reported})
        curves.append(curve.assign(baseline=b))
    import pandas as pd
    plan, curve_table = pd.DataFrame(plans), pd.concat(curves, ignore_index=True)
    return report(args, plan, curve_table, baselines, analysis.power_test,
                  {"mode": "assumed", "pilot": None, "parameters": reported})


def _params_text(reported: dict) -> str:
    return ", ".join(f"{k} {v:g}" if isinstance(v, (int, float)) else f"{k} {v}"
                     for k, v in reported.items())
