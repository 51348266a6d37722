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

from common import cli as options
from common.yamlfile import DuplicateKeyError, load_yaml
from study.analysis.exclusions import DUPLICATE_POLICIES, ExclusionRules
from study.analysis.mannwhitney import ALTERNATIVES, METHODS
from study.analysis.io import SCALE
from study.analysis.plan import PRIMARIES, PRIMARY_ANALYSES
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
            data = load_yaml(text, str(path))
    except DuplicateKeyError as exc:
        raise StudyError(str(exc)) from None
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


def plan_from_args(args: argparse.Namespace):
    """The declared analysis of --spec (its `analysis` section), or the defaults."""
    from study.analysis.plan import AnalysisPlan, parse_analysis_plan
    if not args.spec:
        return AnalysisPlan()
    data = _load_mapping(Path(args.spec))
    return parse_analysis_plan(data.get("analysis"), args.spec)


def sources_from_args(args: argparse.Namespace) -> tuple[str, ...] | None:
    """--sources, else the spec's `sources` field, else None (the two default sources)."""
    from study.spec import parse_sources
    if args.sources is not None:
        return parse_sources(Path("--sources"), [s.strip() for s in args.sources.split(",")])
    if args.spec:
        data = _load_mapping(Path(args.spec))
        raw = data.get("sources")
        return None if raw is None else parse_sources(Path(args.spec), raw, data.get("kind"))
    return None


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study analyze", description=__doc__.splitlines()[0])
    p.add_argument("answers", help="answers CSV (FORMATS.md §6, unblinded export)")
    p.add_argument("--target", help="the method expected to score higher (required for saliency)")
    p.add_argument("--baseline", action="append", dest="baselines", metavar="METHOD",
                   help="a baseline to compare with (repeatable; default: every other method)")
    p.add_argument("--out", required=True, help="report folder to create")
    options.add_overwrite(p, "--out", dest="force")
    p.add_argument("--primary", choices=PRIMARY_ANALYSES, default=None,
                   help="the primary analysis (default: the spec's analysis.primary, else clmm: "
                        "cumulative link mixed model); every other test is reported as secondary")
    p.add_argument("--no-mixed", action="store_true",
                   help="skip the mixed models (only when the primary analysis is not clmm)")
    p.add_argument("--prereg", metavar="PREREG.json",
                   help="preregistration (python -m study prereg): check this run against it")
    p.add_argument("--allow-deviations", action="store_true",
                   help="run even if the primary analysis differs from --prereg (listed as a deviation)")
    p.add_argument("--agreement-resamples", type=int, default=1000,
                   help="bootstrap resamples of Krippendorff's alpha (0: no interval)")
    p.add_argument("--alternative", choices=ALTERNATIVES, default=None,
                   help="default: the spec's analysis.alternative, else greater")
    p.add_argument("--mw-method", choices=METHODS, default="asymptotic",
                   help="p-value of the Mann-Whitney test (default: asymptotic, tie-corrected)")
    p.add_argument("--permutations", type=int, default=10_000,
                   help="resamples for --mw-method permutation")
    p.add_argument("--no-continuity", action="store_true",
                   help="no continuity correction in the asymptotic Mann-Whitney test")
    p.add_argument("--bootstrap", type=int, default=0, metavar="N",
                   help="CIs of rank-biserial/CLES by a seeded bootstrap of N resamples "
                        "(default: DeLong normal approximation)")
    p.add_argument("--clmm-bootstrap", type=int, default=0, metavar="N",
                   help="p-values of the CLMM contrasts by a parametric bootstrap of the "
                        "likelihood ratio with N draws (for very small studies; default: "
                        "chi-square)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale-points", type=int, default=None, metavar="N",
                   help="points of the rating scale (1..N; default: the spec's wording.scale.points "
                        "with --spec, else 5), e.g. 7 for a 7-point likert study")
    p.add_argument("--sources", metavar="A,B[,C...]", default=None,
                   help="consistency: the declared pair sources, in order (default: the spec's "
                        "sources, else data_dependent,euclidean); more than two are compared "
                        "two at a time by a Bradley-Terry mixed model")
    p.add_argument("--alpha", type=float, default=None, help="default: the spec's, else 0.05")
    p.add_argument("--confidence", type=float, default=None, help="default: the spec's, else 0.95")
    p.add_argument("--rules", help="exclusion rules file (JSON/YAML)")
    p.add_argument("--spec", help="study spec YAML: reads attention.max_failures, exclusions and "
                                  "the declared analysis (primary, target, alternative, alpha)")
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


def scale_from_args(args) -> tuple[int, ...]:
    """The rating scale: --scale-points, else the spec's wording.scale.points, else 1..5."""
    points = args.scale_points
    if points is None and getattr(args, "spec", None):
        from study.kinds import RATING, REGISTRY
        try:    # only the scale is read here (the spec may be partial: exclusions, analysis)
            raw = load_yaml(Path(args.spec).read_text(encoding="utf-8"), args.spec) or {}
        except Exception:   # noqa: BLE001 -- a bad spec is reported by the plan reader, not here
            raw = {}
        raw = raw if isinstance(raw, dict) else {}
        kind = REGISTRY.get(str(raw.get("kind")))
        if kind is not None and kind.answer == RATING:
            wording = raw.get("wording")
            scale = wording.get("scale") if isinstance(wording, dict) else None
            given = scale.get("points") if isinstance(scale, dict) else None
            points = given if isinstance(given, int) and not isinstance(given, bool) \
                else int(kind.wording["scale"]["points"])
    if points is None:
        return SCALE
    if not 2 <= points <= 11:
        raise StudyError(f"--scale-points: must be between 2 and 11 (got {points})")
    return tuple(range(1, points + 1))


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    from study.analysis.output import write_analysis
    from study.analysis.pipeline import AnalysisOptions, analyze

    plan = plan_from_args(args)
    baselines = args.baselines or (list(plan.baselines) if plan.baselines else None)
    options = AnalysisOptions(
        target=args.target or plan.target, baselines=tuple(baselines) if baselines else None,
        alternative=args.alternative or plan.alternative, mw_method=args.mw_method,
        continuity=not args.no_continuity,
        confidence=args.confidence if args.confidence is not None else plan.confidence,
        alpha=args.alpha if args.alpha is not None else plan.alpha,
        bootstrap=args.bootstrap, n_resamples=args.permutations, seed=args.seed,
        rules=rules_from_args(args), primary=args.primary or plan.primary,
        mixed=not args.no_mixed, agreement_resamples=args.agreement_resamples,
        clmm_bootstrap=args.clmm_bootstrap, sources=sources_from_args(args),
        scale=scale_from_args(args))
    prereg_check = None
    if args.prereg:
        from study.analysis.prereg import check_against_prereg
        prereg_check = check_against_prereg(args.prereg, options,
                                            allow_deviations=args.allow_deviations)
    res = analyze(args.answers, options)
    res.preregistration = prereg_check
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
    for line in result_lines(res):
        print(line)
    return 0


def result_lines(res) -> list[str]:
    """What the CLI prints: the primary result first, then every secondary test, labelled."""
    from study.analysis.primary import primary_description
    opt = res.options
    lines = []
    if res.preregistration is not None:
        pr = res.preregistration
        lines.append(f"preregistration {pr['file']} (sha256 {pr['sha256'][:12]}): {pr['status']}")
        lines += [f"  deviation: {d}" for d in pr["deviations"]]
    desc = primary_description(opt.primary, saliency=res.cube is not None,
                               consistency=res.consistency_counts is not None, pairwise=res.pairwise is not None)
    lines.append(f"PRIMARY ({opt.primary}: {desc})")
    from study.analysis.sentence import primary_sentences
    lines += [f"  {sentence}" for sentence in primary_sentences(res)]
    for r in res.primary.itertuples():
        lines.append(f"  [primary] {r.study}: {r.comparison}: {r.effect} {r.estimate:.3f} "
                     f"[{r.ci_low:.3f}, {r.ci_high:.3f}] {r.statistic}={r.value:.3f} "
                     f"p={r.p_value:.3g} p_holm={r.p_holm:.3g} ({r.alternative}; {r.n})")
    if res.clmm is not None:
        if "structure" in res.clmm:
            lines.append(f"  CLMM {res.clmm['structure'].iloc[0]['line']}")
        lines.append(f"  CLMM {res.clmm['convergence'].iloc[0]['summary']}")
    sec = "[secondary]"
    plan = PRIMARIES[opt.primary]

    def secondary(name: str) -> bool:      # a primary analysis of the registry, not the declared one
        return plan.role(name) == "secondary"

    if res.clmm is not None and secondary("clmm"):
        for r in res.clmm["contrasts"].itertuples():
            lines.append(f"{sec} CLMM {r.target} vs {r.baseline}: OR={r.odds_ratio:.3f} "
                         f"z={r.z:.3f} p={r.p_value:.3g} p_holm={r.p_holm:.3g}")
    if res.clmm is not None:
        r = res.clmm["lrt"].iloc[0]
        lines.append(f"{sec} CLMM likelihood-ratio test of method: chi2={r['chi2']:.3f} "
                     f"df={r['df']} p={r['p_value']:.3g}")
    if res.participant is not None and secondary("participant"):
        wil = res.participant["wilcoxon"]
        for r in wil[wil["family"] == "pooled"].itertuples():
            lines.append(f"{sec} participant level {r.target} vs {r.baseline}: W={r.W:.1f} "
                         f"p={r.p_value:.3g} p_holm={r.p_holm:.3g} mean diff {r.mean_difference:.3f} "
                         f"[{r.ci_low:.3f}, {r.ci_high:.3f}] (n={r.n_pairs})")
    if res.mann_whitney is not None and secondary("answer"):
        pooled = res.mann_whitney[res.mann_whitney["family"] == "pooled"]
        for r in pooled.itertuples():
            lines.append(f"{sec} answer level {r.target} vs {r.baseline}: U={r.U:.1f} z={r.z:.3f} "
                         f"p={r.p_value:.3g} p_holm={r.p_holm:.3g} r_rb={r.rank_biserial:.3f}")
    if res.consistency_tests is not None and secondary("answer"):
        r = res.consistency_tests.iloc[-1]
        lines.append(f"{sec} consistency answer level (all versions): {r['k']}/{r['n']} "
                     f"data-dependent, undecided {r['undecided']}, binomial p={r['p_value']:.3g}")
    if res.consistency_mixed is not None and secondary("clmm"):
        r = res.consistency_mixed.iloc[-1]
        lines.append(f"{sec} consistency mixed model (all versions): P(dd)={r['proportion_median_participant']:.3f} "
                     f"p={r['p_value']:.3g}")
    if res.consistency_participant is not None and secondary("participant"):
        r = res.consistency_participant.iloc[-1]
        lines.append(f"{sec} consistency participant level (all versions): mean proportion "
                     f"{r['mean_proportion']:.3f} p={r['p_value']:.3g} (n={r['participants']})")
    m = res.consistency_multi
    if m is not None:
        if "model" in m and secondary("clmm"):
            r = m["model"].iloc[0]
            lines.append(f"{sec} consistency Bradley-Terry mixed model ({r['sources']}): LR "
                         f"chi2={r['lr_chi2']:.3f} df={r['df']} p={r['p_value']:.3g}")
        if secondary("participant"):
            r = m["participant"]["friedman"].iloc[0]
            lines.append(f"{sec} consistency participant level: Friedman chi2={r['chi2']:.3f} "
                         f"df={r['df']} p={r['p_value']:.3g} (n={r['participants']})")
        if secondary("answer"):
            r = m["answer"]["overall"].iloc[0]
            lines.append(f"{sec} consistency answer level: every comparison 50/50, chi2="
                         f"{r['chi2']:.3f} df={r['df']} p={r['p_value']:.3g}")
    if res.agreement is not None:
        for r in res.agreement.itertuples():
            if r.method in ("(all methods)", ""):
                lines.append(f"{sec} agreement ({r.answers}): Krippendorff's alpha ({r.metric}) "
                             f"{r.alpha:.3f} [{r.ci_low:.3f}, {r.ci_high:.3f}]")
    return lines
