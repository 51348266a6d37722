"""`python -m study analyze ANSWERS --target METHOD --out DIR`: the full report.

Exclusion rules come from a rules file (`--rules`, JSON/YAML: the rules object, or
any object with an `exclusions` section), from a study spec (`--spec`: its
`attention.max_failures` and, if present, `exclusions`), then from flags, later ones
overriding earlier ones.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from study.analysis.exclusions import DUPLICATE_POLICIES, ExclusionRules
from study.analysis.mannwhitney import ALTERNATIVES, METHODS
from study.errors import StudyError


def _load_mapping(path: Path) -> dict:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise StudyError(f"{path}: cannot read ({exc.strerror or exc})") from None
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(text)
        else:
            import yaml
            data = yaml.safe_load(text)
    except Exception as exc:  # json.JSONDecodeError, yaml.YAMLError
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise StudyError(f"{path}: not valid JSON/YAML ({first})") from None
    if not isinstance(data, dict):
        raise StudyError(f"{path}: expected an object at the top level")
    return data


def rules_from_args(args: argparse.Namespace) -> ExclusionRules:
    """Merge rules file, study spec and flags (flags win)."""
    fields: dict = {}
    if args.rules:
        data = _load_mapping(Path(args.rules))
        section = data.get("exclusions", data)
        if not isinstance(section, dict):
            raise StudyError(f"{args.rules}: field 'exclusions' must be an object")
        fields.update(dataclasses.asdict(ExclusionRules.from_mapping(section, str(args.rules))))
    if args.spec:
        data = _load_mapping(Path(args.spec))
        att = data.get("attention")
        if isinstance(att, dict) and "max_failures" in att:
            v = att["max_failures"]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise StudyError(f"{args.spec}: field 'attention.max_failures' must be an "
                                 f"integer >= 0, got {v!r}")
            fields["max_attention_failures"] = v
        if isinstance(data.get("exclusions"), dict):
            fields.update(dataclasses.asdict(
                ExclusionRules.from_mapping(data["exclusions"], f"{args.spec}: exclusions")))
    if args.keep_failed_attention:
        fields["attention"] = False
    if args.max_attention_failures is not None:
        fields["max_attention_failures"] = args.max_attention_failures
    if args.keep_unfinished:
        fields["unfinished"] = False
    if args.min_median_ms is not None:
        fields["min_median_response_ms"] = args.min_median_ms
    if args.duplicate_workers is not None:
        fields["duplicate_workers"] = args.duplicate_workers
    return ExclusionRules(**fields)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study analyze", description=__doc__.splitlines()[0])
    p.add_argument("answers", help="answers CSV (FORMATS.md §6, unblinded export)")
    p.add_argument("--target", help="the method expected to score higher (required for saliency)")
    p.add_argument("--baseline", action="append", dest="baselines", metavar="METHOD",
                   help="a baseline to compare with (repeatable; default: every other method)")
    p.add_argument("--out", required=True, help="report folder to create")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    p.add_argument("--alternative", choices=ALTERNATIVES, default="greater")
    p.add_argument("--mw-method", choices=METHODS, default="asymptotic",
                   help="p-value of the Mann-Whitney test (default: asymptotic, tie-corrected)")
    p.add_argument("--permutations", type=int, default=10_000,
                   help="resamples for --mw-method permutation")
    p.add_argument("--no-continuity", action="store_true",
                   help="no continuity correction in the asymptotic Mann-Whitney test")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="CIs of rank-biserial/CLES by a seeded bootstrap of N resamples "
                        "(default: DeLong normal approximation)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--alpha", type=float, default=0.05)
    p.add_argument("--confidence", type=float, default=0.95)
    p.add_argument("--rules", help="exclusion rules file (JSON/YAML)")
    p.add_argument("--spec", help="study spec YAML: reads attention.max_failures (and exclusions)")
    p.add_argument("--keep-failed-attention", action="store_true")
    p.add_argument("--max-attention-failures", type=int, default=None)
    p.add_argument("--keep-unfinished", action="store_true")
    p.add_argument("--min-median-ms", type=float, default=None,
                   help="exclude participants whose median response time is below this")
    p.add_argument("--duplicate-workers", choices=DUPLICATE_POLICIES, default=None,
                   help="all (default): drop every participant id of a repeated worker; "
                        "first: keep the earliest; keep: rule off")
    p.add_argument("--no-png", action="store_true", help="do not try PNG export of figures")
    p.add_argument("--metrics", action="append", metavar="METHOD=PATH",
                   help="automatic metrics of a method (metrics.json or atlas folder, python -m core metrics): "
                        "ratings per prototype next to them, Spearman with CI (repeatable; needs --key)")
    p.add_argument("--key", help="study folder or its private/key.json (maps items to prototypes; for --metrics)")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from study.analysis.output import write_analysis
    from study.analysis.pipeline import AnalysisOptions, analyze

    options = AnalysisOptions(
        target=args.target, baselines=tuple(args.baselines) if args.baselines else None,
        alternative=args.alternative, mw_method=args.mw_method,
        continuity=not args.no_continuity, confidence=args.confidence, alpha=args.alpha,
        bootstrap=args.bootstrap, n_resamples=args.permutations, seed=args.seed,
        rules=rules_from_args(args))
    res = analyze(args.answers, options)
    joined = None
    if args.metrics:
        from study.analysis.metrics_join import metrics_join_for, write_metrics_join
        joined = metrics_join_for(args.answers, options, args.key, args.metrics)
    files = write_analysis(res, args.out, png=not args.no_png, force=args.force)
    if joined is not None:
        files += write_metrics_join(joined, args.out)
        for r in joined.correlations.itertuples():
            print(f"{r.method} mean rating ~ {r.metric}: rho={r.rho:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}] "
                  f"n={r.n} p={r.p_value:.3g}")
    excl = res.exclusions.iloc[-1]
    print(f"analysed {res.rows} answers; excluded {excl['participants_excluded']} participant(s); "
          f"wrote {len(files)} files to {args.out}", file=sys.stderr)
    if res.mann_whitney is not None:
        pooled = res.mann_whitney[res.mann_whitney["family"] == "pooled"]
        for r in pooled.itertuples():
            print(f"{r.target} vs {r.baseline}: U={r.U:.1f} z={r.z:.3f} p={r.p_value:.3g} "
                  f"p_holm={r.p_holm:.3g} r_rb={r.rank_biserial:.3f}")
    if res.consistency_tests is not None:
        r = res.consistency_tests.iloc[-1]
        print(f"consistency (all versions): {r['k']}/{r['n']} data-dependent, "
              f"undecided {r['undecided']}, p={r['p_value']:.3g}")
    return 0
