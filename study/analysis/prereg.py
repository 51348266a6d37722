"""`python -m study prereg SPEC.yaml --out DIR`: a preregistration from the study spec.

Writes DIR/prereg.md (to paste into OSF) and DIR/prereg.json: the answers to the
questions of the OSF Preregistration template (Study information, Design plan,
Sampling plan, Variables, Analysis plan, Other), plus the machine-readable plan
(primary analysis, direction, alpha, exclusion rules, power plan, seed) and a SHA-256
of the canonical JSON, so a later edit shows. `python -m study analyze --prereg
DIR/prereg.json` checks a run against it: a different primary analysis is refused
(unless --allow-deviations), every other difference is listed as a deviation, and the
report says "as preregistered" when there is none.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from common import cli as options
from study.analysis.plan import PRIMARIES, PRIMARY_ANALYSES
from study.errors import StudyError

FORMAT = "protoproto-prereg"
VERSION = 1
TEMPLATE = "OSF Preregistration"
FILES = ("prereg.md", "prereg.json")


def canonical_sha256(doc: dict) -> str:
    body = {k: v for k, v in doc.items() if k != "sha256"}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _rules_for_spec(spec) -> dict:
    from study.analysis.exclusions import ExclusionRules
    fields = {"max_attention_failures": spec.attention.max_failures}
    if isinstance(spec.raw.get("exclusions"), dict):
        fields.update(dataclasses.asdict(ExclusionRules.from_mapping(
            spec.raw["exclusions"], f"{spec.path}: exclusions")))
    return ExclusionRules(**fields)


def _power_section(plan, power_file: str | None) -> dict:
    pw = plan.power
    out = {"declared": dataclasses.asdict(pw), "simulation": None}
    if power_file:
        path = Path(power_file)
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StudyError(f"{path}: cannot read the power plan ({exc})") from None
        if not isinstance(doc, dict) or doc.get("format") != "protoproto-power":
            raise StudyError(f"{path}: not a power plan of `python -m study power --out`")
        out["simulation"] = {k: doc.get(k) for k in ("test", "mode", "power", "alpha", "sims",
                                                     "seed", "plan", "criterion", "assumed",
                                                     "clmm_parameters")}
        out["simulation"]["file"] = path.name
    return out


def _power_text(power: dict) -> str:
    sim = power["simulation"]
    d = power["declared"]
    if sim and sim.get("plan"):
        needed = [r.get("participants") for r in sim["plan"]]
        n = max(needed) if needed and all(v is not None for v in needed) else None
        rows = "; ".join(
            f"vs {r.get('baseline')}: {r.get('participants')} participants, simulated power "
            f"{r.get('power') if r.get('power') is not None else 'n/a'}"
            + (f" (Monte Carlo 95% interval {r.get('power_ci_low'):.3f}–{r.get('power_ci_high'):.3f})"
               if r.get("power_ci_low") is not None else "")
            for r in sim["plan"])
        return (f"Simulation-based power analysis for the primary test ({sim.get('test')}, "
                f"{sim.get('sims')} simulated studies per sample size, seed {sim.get('seed')}, "
                f"alpha {sim.get('alpha')}): the sample size is the smallest n whose lower Monte "
                f"Carlo bound reaches power {sim.get('power')}. {rows}. "
                + (f"We will recruit {n} participants (after exclusions)." if n else ""))
    if d.get("participants"):
        return (f"We will recruit {d['participants']} participants (after exclusions); target "
                f"power {d['power']}.")
    return "No power analysis was run (state the sample size here before registering)."


def build_prereg(spec_path: str | Path, *, power_file: str | None = None) -> dict:
    """The preregistration document (dict) for a spec file."""
    from study.spec import load_spec

    spec = load_spec(spec_path)
    plan = spec.analysis
    rules = _rules_for_spec(spec)
    labels = [m.label or m.atlas.name for m in spec.methods]
    target = plan.target
    baselines = list(plan.baselines) if plan.baselines else (
        [m for m in labels if m != target] if target else None)
    secondary = [a for a in PRIMARY_ANALYSES if a != plan.primary]
    hypotheses = list(plan.hypotheses)
    from study.kinds import kind_of
    kind = kind_of(spec.kind)
    analysis = kind.analysis()
    from study.spec import DEFAULT_SOURCES
    multi = kind.pair_sources and tuple(spec.sources) != DEFAULT_SOURCES
    if not hypotheses:
        hypotheses = analysis.default_hypotheses(spec, target, baselines or [], plan.alternative)
    power = _power_section(plan, power_file)
    excl = rules.describe()
    from study.analysis.mixed import STRUCTURES, r_formula

    order = ([target] + list(baselines or [])) if target else labels
    structures = {k: r_formula(k, list(order), list(spec.datasets or [None]))
                  for k in STRUCTURES}
    sections = [
        {"section": "Study information", "questions": [
            {"id": "title", "question": "Title", "answer": spec.id or spec.path.stem},
            {"id": "description", "question": "Description",
             "answer": f"A {spec.kind} study of prototype explanations comparing "
                       f"{', '.join(labels)}"
                       + (f" on the data sets {', '.join(spec.datasets)}" if spec.datasets else "")
                       + "."},
            {"id": "hypotheses", "question": "Hypotheses", "answer": hypotheses},
        ]},
        {"section": "Design plan", "questions": [
            {"id": "study_type", "question": "Study type",
             "answer": "Experiment: participants are shown blinded explanations."},
            {"id": "blinding", "question": "Blinding",
             "answer": "Participants do not know which method produced an explanation "
                       "(method names never reach the participant's pages)."},
            {"id": "study_design", "question": "Study design",
             "answer": f"Within-participant: every participant rates items of every method; "
                       f"{spec.versions} questionnaire version(s) of {spec.items_per_version} "
                       f"items from a pool of {spec.pool_size} per method and data set; "
                       f"{spec.attention.count} attention check(s)."},
            {"id": "randomization", "question": "Randomization",
             "answer": f"Item order: {spec.order}; seed {spec.seed}."},
        ]},
        {"section": "Sampling plan", "questions": [
            {"id": "existing_data", "question": "Existing data",
             "answer": "Registration prior to creation of data."},
            {"id": "sample_size", "question": "Sample size",
             "answer": _power_text(power)},
            {"id": "sample_size_rationale", "question": "Sample size rationale",
             "answer": "Simulation-based power analysis of the primary analysis "
                       "(python -m study power)." if power["simulation"] else
                       "Declared in the spec (analysis.power)."},
            {"id": "stopping_rule", "question": "Stopping rule",
             "answer": "Data collection stops when the planned number of participants who "
                       "pass the exclusion rules is reached."},
        ]},
        {"section": "Variables", "questions": [
            {"id": "manipulated_variables", "question": "Manipulated variables",
             "answer": f"Explanation method ({', '.join(labels)})"
                       + ("; data set" if spec.datasets and len(spec.datasets) > 1 else "") + "."},
            {"id": "measured_variables", "question": "Measured variables",
             "answer": analysis.measured(spec) + "; response time; attention-check answers."},
        ]},
        {"section": "Analysis plan", "questions": [
            {"id": "statistical_models", "question": "Statistical models",
             "answer": f"Primary: {analysis.model_text(plan.primary)}. Secondary: "
                       + "; ".join(analysis.model_text(a) for a in secondary)
                       + "".join(f"; {d}" for d in analysis.extra_secondaries(spec))
                       + "; Friedman test across methods; Krippendorff's alpha (ordinal for "
                         "ratings, nominal for choices) with a bootstrap interval."},
            {"id": "inference_criteria", "question": "Inference criteria",
             "answer": f"alpha = {plan.alpha}, alternative: {plan.alternative}; Holm's "
                       f"correction over the baselines; {plan.confidence:.0%} intervals."},
            {"id": "data_exclusion", "question": "Data exclusion",
             "answer": "; ".join(f"{k.replace('_', ' ')}: {v}" for k, v in excl.items())},
            {"id": "missing_data", "question": "Missing data",
             "answer": "Unfinished participants are excluded as above; the mixed models use "
                       "every remaining answer."},
            {"id": "exploratory_analysis", "question": "Exploratory analysis",
             "answer": "Per data set tests and every secondary analysis are exploratory."},
        ]},
        {"section": "Other", "questions": [
            {"id": "other", "question": "Other",
             "answer": "Generated by `python -m study prereg` from the study spec."}]},
    ]
    if multi:
        from study.analysis.multisource import r_formula as bt_formula
        sections[-2]["questions"][0]["answer"] += (
            f" Pair sources {', '.join(spec.sources)} (reference {spec.sources[0]}), compared "
            "two at a time: the consistency mixed model is the Bradley-Terry logistic mixed "
            f"model {bt_formula(spec.sources)}, likelihood-ratio test of no source preferred "
            f"({len(spec.sources) - 1} df; parametric bootstrap below 10 participants or pairs); "
            "participant level: Friedman test of participants' win rates per source; answer "
            "level: binomial test per comparison (Holm) and Pearson chi-square that every "
            "comparison is 50/50.")
    ratings_model = PRIMARIES[plan.primary].mixed and analysis.rating_structures
    if ratings_model:
        doc_models = sections[-2]["questions"][0]
        doc_models["answer"] += (" Random-effects structures of the ratings model, fitted in "
                                 "this order until one is identifiable, converges and (the "
                                 "maximal one) is not singular: "
                                 + "; ".join(f"{k}: {v}" for k, v in structures.items()) + ".")
    doc = {
        "format": FORMAT, "version": VERSION, "template": TEMPLATE,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spec": {"file": spec.path.name,
                 "sha256": hashlib.sha256(spec.path.read_bytes()).hexdigest()},
        "study_id": spec.id, "kind": spec.kind, "seed": spec.seed,
        "primary": {"analysis": plan.primary, "description": analysis.model_text(plan.primary),
                    "target": target, "baselines": baselines, "alternative": plan.alternative,
                    "alpha": plan.alpha, "confidence": plan.confidence,
                    **({"random_effects": structures} if ratings_model else {}),
                    **({"sources": list(spec.sources)} if multi else {})},
        "secondary": [{"analysis": a, "description": analysis.model_text(a)} for a in secondary]
        + [{"analysis": "secondary", "description": d} for d in analysis.extra_secondaries(spec)],
        "hypotheses": hypotheses,
        "exclusions": rules.to_dict(),
        "power": power,
        "sections": sections,
    }
    doc["sha256"] = canonical_sha256(doc)
    return doc


def prereg_markdown(doc: dict) -> str:
    lines = [f"# Preregistration: {doc['sections'][0]['questions'][0]['answer']}", "",
             f"Template: {doc['template']}. Generated {doc['created_at']} from "
             f"`{doc['spec']['file']}` (sha256 {doc['spec']['sha256']}).", ""]
    for sec in doc["sections"]:
        lines += [f"## {sec['section']}", ""]
        for q in sec["questions"]:
            lines.append(f"### {q['question']}")
            lines.append("")
            if isinstance(q["answer"], list):
                lines += [f"{i + 1}. {a}" for i, a in enumerate(q["answer"])]
            else:
                lines.append(str(q["answer"]))
            lines.append("")
    p = doc["primary"]
    lines += ["## Machine-readable plan", "",
              f"- Primary analysis: `{p['analysis']}` (target {p['target']}, baselines "
              f"{', '.join(p['baselines'] or []) or '–'}, alternative {p['alternative']}, "
              f"alpha {p['alpha']})",
              f"- Secondary analyses: {', '.join(s['analysis'] for s in doc['secondary'])}",
              f"- Seed: {doc['seed']}",
              f"- Exclusion rules: `{json.dumps(doc['exclusions'], sort_keys=True)}`", "",
              f"SHA-256 of prereg.json (canonical, without this field): `{doc['sha256']}`", ""]
    return "\n".join(lines)


def write_prereg(doc: dict, out: str | Path, *, force: bool = False) -> list[Path]:
    """Write prereg.md and prereg.json into `out`, both or neither."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise StudyError(f"--out {out}: exists and is not a folder")
    if any((out / f).exists() for f in FILES) and not force:
        raise StudyError(f"--out {out}: already holds a preregistration (use --force to replace it)")
    out.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".prereg.tmp-", dir=out))
    try:
        (tmp / "prereg.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n",
                                         encoding="utf-8")
        (tmp / "prereg.md").write_text(prereg_markdown(doc), encoding="utf-8")
        for f in FILES:
            os.replace(tmp / f, out / f)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return [out / f for f in FILES]


def load_prereg(path: str | Path) -> dict:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise StudyError(f"{path}: cannot read the preregistration ({exc.strerror or exc})") from None
    except ValueError:
        raise StudyError(f"{path}: not valid JSON") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise StudyError(f"{path}: not a preregistration of `python -m study prereg`")
    if doc.get("sha256") != canonical_sha256(doc):
        raise StudyError(f"{path}: content does not match its sha256 (edited after it was written?)")
    return doc


def check_against_prereg(path: str | Path, options, *, allow_deviations: bool = False) -> dict:
    """Compare an analysis run with the preregistration; refuse a different primary."""
    doc = load_prereg(path)
    p = doc["primary"]
    deviations = []
    if p["analysis"] != options.primary:
        msg = (f"primary analysis is {options.primary!r}, preregistered {p['analysis']!r}")
        if not allow_deviations:
            raise StudyError(f"{path}: {msg}; rerun with --primary {p['analysis']} or pass "
                             f"--allow-deviations to report it as a deviation")
        deviations.append(msg)
    if p["target"] is not None and options.target != p["target"]:
        deviations.append(f"target is {options.target!r}, preregistered {p['target']!r}")
    if p["baselines"] and options.baselines and list(options.baselines) != list(p["baselines"]):
        deviations.append(f"baselines are {list(options.baselines)}, preregistered {p['baselines']}")
    for key in ("alternative", "alpha", "confidence"):
        if getattr(options, key) != p[key]:
            deviations.append(f"{key} is {getattr(options, key)!r}, preregistered {p[key]!r}")
    rules = options.rules.to_dict()
    for key, value in doc["exclusions"].items():
        if rules.get(key) != value:
            deviations.append(f"exclusion rule {key} is {rules.get(key)!r}, preregistered {value!r}")
    if p.get("sources") and list(options.sources or ()) != p["sources"]:
        deviations.append(f"pair sources are {list(options.sources or ())}, preregistered "
                          f"{p['sources']}")
    if options.seed != doc["seed"]:
        deviations.append(f"seed is {options.seed}, preregistered {doc['seed']}")
    status = "as preregistered" if not deviations else \
        f"{len(deviations)} deviation(s) from the preregistration"
    return {"file": str(path), "sha256": doc["sha256"], "status": status,
            "deviations": deviations, "primary": p["analysis"]}


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m study prereg", description=__doc__.splitlines()[0])
    p.add_argument("spec", help="study spec YAML (its analysis section declares the primary analysis)")
    p.add_argument("--out", required=True, help="folder for prereg.md and prereg.json")
    p.add_argument("--power-plan", help="power plan JSON of `python -m study power --out`")
    options.add_overwrite(p, "an existing preregistration", dest="force")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    doc = build_prereg(args.spec, power_file=args.power_plan)
    files = write_prereg(doc, args.out, force=args.force)
    print(f"primary analysis: {doc['primary']['analysis']}; sha256 {doc['sha256']}")
    print(f"wrote {', '.join(str(f) for f in files)}", file=sys.stderr)
    return 0
