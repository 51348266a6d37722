"""The summary JSON of an analysis (FORMATS.md §7): every number, machine-readable.

Why a fixed schema with format/version: other tools (the app, a paper's build script)
read these numbers; NaN becomes null so the file is strict JSON.
"""
from __future__ import annotations

import dataclasses
import math
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from study.analysis.pipeline import AnalysisResult
from study.analysis.plan import PRIMARIES
from study.kinds import KINDS

FORMAT = "protoproto-analysis"
VERSION = 1


def _clean(v):
    if isinstance(v, (np.integer,)):
        return int(v)
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return None if math.isnan(f) or math.isinf(f) else f
    if isinstance(v, (np.bool_,)):
        return bool(v)
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def records(df: pd.DataFrame | None) -> list[dict] | None:
    """A DataFrame as a list of JSON-safe row objects (NaN -> null)."""
    if df is None:
        return None
    return [_clean(r) for r in df.to_dict(orient="records")]


def summary_dict(res: AnalysisResult, *, input_sha256: str | None = None,
                 files: list[str] | None = None, notes: list[str] | None = None) -> dict:
    """Build the summary object (see FORMATS.md §7 for each field)."""
    opt = res.options
    options = {k: v for k, v in dataclasses.asdict(opt).items() if k != "rules"}
    out: dict = {
        "format": FORMAT,
        "version": VERSION,
        "created_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "input": {"answers": res.source, "sha256": input_sha256, "rows": res.rows,
                  "kinds": res.kinds},
        "options": _clean(options),
        "exclusions": {"rules": _clean(opt.rules.to_dict()), "table": records(res.exclusions)},
        "primary": None,
        "preregistration": res.preregistration,
        **dict.fromkeys(KINDS),            # one section per question kind; None when absent
        "agreement": records(res.agreement),
        "files": files or [],
        "notes": list(res.notes) + list(notes or []),
    }
    if res.primary is not None:
        from study.analysis.primary import primary_description
        from study.analysis.sentence import primary_sentence
        out["primary"] = {"analysis": opt.primary,
                          "description": primary_description(
                              opt.primary, saliency=res.cube is not None,
                              consistency=res.consistency_counts is not None,
                              pairwise=res.pairwise is not None),
                          "sentence": primary_sentence(res), "results": records(res.primary)}

    role = PRIMARIES[opt.primary].role
    if res.cube is not None:
        out[res.rating_kind or "saliency"] = {
            "target": opt.target,
            "baselines": res.baselines,
            "methods": list(res.cube.methods),
            "datasets": list(res.cube.datasets),
            "scale": list(res.cube.scale),
            "counts": records(res.counts),
            "descriptives": records(res.descriptives),
            "answer_level": {
                "role": role("answer"),
                "unit": "answer (treats answers as independent)",
                "test": "Mann-Whitney U",
                "alternative": opt.alternative,
                "holm_families": "pooled: one test per baseline; per dataset: all data sets x baselines",
                "results": records(res.mann_whitney),
            },
            "participant_level": {
                "role": role("participant"),
                "unit": "participant (mean rating per participant and method)",
                "wilcoxon": records(res.participant["wilcoxon"]),
                "friedman": records(res.participant["friedman"]),
                "method_means": records(res.participant.get("method_means")),
            },
            "mixed_model": None if res.clmm is None else {
                "role": role("clmm"),
                "model": "cumulative link mixed model, logit link, flexible thresholds; "
                         "logit P(Y <= j) = theta_j - x'beta - b_participant - b_item",
                "contrasts": records(res.clmm["contrasts"]),
                "coefficients": records(res.clmm["coefficients"]),
                "variance": records(res.clmm["variance"]),
                "lrt": records(res.clmm["lrt"]),
                "structure": records(res.clmm["structure"])[0] if "structure" in res.clmm
                else None,
                "attempts": records(res.clmm["attempts"]) if "attempts" in res.clmm else [],
                "probabilities": records(res.clmm["probabilities"])
                if "probabilities" in res.clmm else [],
                "proportional_odds": records(res.clmm["proportional_odds"])
                if "proportional_odds" in res.clmm else [],
                "convergence": records(res.clmm["convergence"])[0],
            },
        }
    if res.consistency_multi is not None:
        m = res.consistency_multi
        out["consistency"] = {
            "test": "pair sources compared two at a time; Bradley-Terry logistic mixed model, "
                    "likelihood ratio of no source preferred, undecided excluded",
            "sources": list(m["sources"]),
            "counts": records(res.consistency_counts),
            "mixed_model": None if "model" not in m else {
                "role": role("clmm"), "results": records(m["model"]),
                "preferences": records(m["preferences"])},
            "participant_level": {"role": role("participant"),
                                  "win_rates": records(m["participant"]["win_rates"]),
                                  "friedman": records(m["participant"]["friedman"])},
            "answer_level": {"role": role("answer"),
                             "comparisons": records(m["answer"]["comparisons"]),
                             "overall": records(m["answer"]["overall"])},
        }
    elif res.consistency_counts is not None:
        out["consistency"] = {
            "test": "two-sided binomial test of data_dependent vs euclidean against 1/2, "
                    "undecided excluded",
            "counts": records(res.consistency_counts),
            "binomial": records(res.consistency_tests),
            "binomial_role": role("answer"),
            "participant_level": {"role": role("participant"),
                                  "results": records(res.consistency_participant)},
            "mixed_model": None if res.consistency_mixed is None else {
                "role": role("clmm"), "results": records(res.consistency_mixed)},
        }
    for analysis in res.analyses:      # sections an analysis brings itself (study/kinds/analyses.py)
        out.update(analysis.summary(res, role))
    return out
