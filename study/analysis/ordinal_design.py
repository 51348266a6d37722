"""Cumulative link mixed models on any fixed design, for the rating tasks beyond
saliency: HIVE's agreement task (confidence ~ prediction correctness x method) and
the prototype–query similarity task (similarity ~ method).

Model (as R's ordinal::clmm, logit link, flexible thresholds):

    logit P(Y <= j) = theta_j - x'beta - b_participant - b_item,

crossed participant and item random intercepts, fitted by the Laplace approximation of
clmm_re.py. A positive coefficient means higher ratings.

`clmm_interaction`, the agreement primary: x = correct + method + correct:method
(treatment coding, the target method and "incorrect" as references). For each method
the *gap* is how much more confident participants are when the model's prediction is
correct than when it is wrong (the log odds ratio of a higher confidence,
beta_correct + beta_correct:method[m]); the interaction contrast target - baseline,
gap_target - gap_baseline = -beta_correct:method[baseline], answers "does the method
change the gap between correct and incorrect predictions", i.e. do its explanations let
people tell right from wrong predictions better. It is tested by the likelihood ratio of
its column (signed root for one-sided alternatives; Wald z beside it), Holm over
baselines; the interaction as a whole by the likelihood ratio of all its columns.

`clmm_by_method`, the similarity primary: the saliency primary (mixed.clmm_ratings: the
declared random-effects structures with their fallback, LR contrasts, Holm) on any
rating column, by mapping the columns onto the answer table it reads.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.clmm_re import ReFit, fit_clmm_re
from study.analysis.clmm_re import convergence_text as re_text
from study.analysis.corrections import holm
from study.analysis.design import Design, design_matrix, require_columns
from study.analysis.logit_mixed import p_value, random_terms
from study.errors import StudyError


def ordinal_response(data: pd.DataFrame, response: str, scale) -> tuple[np.ndarray, list]:
    """Category codes 0.. of `response` on the ordered `scale`; scores nobody gave are
    left out (their thresholds are not identified). Returns (codes, scores used)."""
    require_columns(data, [response])
    if len(data) == 0:
        raise StudyError("no answers to fit")
    scale = list(scale)
    v = data[response].to_numpy()
    bad = ~pd.Series(v).isin(scale).to_numpy()
    if bad.any():
        raise StudyError(f"column {response!r}, row {int(np.flatnonzero(bad)[0])}: "
                         f"{v[bad][0]} is not on the scale {scale}")
    used = [s for s in scale if (v == s).any()]
    if len(used) < 2:
        raise StudyError(f"cannot fit the CLMM: every answer in {response!r} is {used[0]!r}")
    pos = {s: k for k, s in enumerate(used)}
    return np.array([pos[x] for x in v], dtype=np.int64), used


def _fit(y, design: Design, terms, used, *, drop=(), start=None, hessian=True) -> ReFit:
    X = np.delete(design.X, list(drop), axis=1)
    names = [n for j, n in enumerate(design.names) if j not in set(drop)]
    return fit_clmm_re(y, X, terms, n_categories=len(used), beta_names=names,
                       category_names=[str(s) for s in used], start=start, hessian=hessian)


def _reduced(y, design: Design, terms, used, drop, full: ReFit) -> ReFit:
    """The model without the columns `drop`, warm-started at the full fit. A variance
    at 0 is a stationary point of the Laplace objective, so a warm start whose
    optimiser steps onto it stays there: when the reduced fit is singular and the full
    one is not, it is refitted from the default start and the better fit kept."""
    K1 = len(used) - 1
    start = np.delete(np.asarray(full.nat), [K1 + j for j in drop])
    warm = _fit(y, design, terms, used, drop=drop, start=start)
    if not warm.singular or full.singular:
        return warm
    cold = _fit(y, design, terms, used, drop=drop)
    return cold if cold.loglik > warm.loglik else warm


def clmm_interaction(data: pd.DataFrame, *, target: str, baselines: list[str], scale,
                     response: str = "confidence", correct: str = "correct",
                     method: str = "method", participant: str = "participant",
                     item: str | None = "item", alternative: str = "greater",
                     confidence: float = 0.95, alpha: float = 0.05) -> dict:
    """The agreement primary: CLMM of `response` (ordered `scale`) on correct x method,
    crossed participant and item random intercepts (see the module docstring).

    `correct` is 0/1 or true/false (was the model's prediction right). Returns tables:
    interaction (target - each baseline: difference of gaps, se, z, p_wald, LR
    statistic, p_value (LR), ci_low, ci_high, p_holm, reject, alternative), gaps (per
    method: correct - incorrect log odds ratio with its Wald test), lrt (the interaction
    as a whole), coefficients (thresholds and fixed effects), variance, model (one row:
    formula, logLik, convergence); and the fit under "fit"."""
    methods = [str(target)] + [str(b) for b in baselines]
    if len(set(methods)) < 2:
        raise StudyError("the method comparison needs a target and at least one baseline")
    require_columns(data, [method, correct])
    sub = data[data[method].astype(str).isin(methods)]
    present = set(sub[method].astype(str))
    missing = [m for m in methods if m not in present]
    if missing:
        raise StudyError(f"no answers for method {missing[0]!r} in column {method!r}")
    c = sub[correct]
    try:
        cv = c.astype(np.float64).to_numpy()
    except (TypeError, ValueError):
        raise StudyError(f"column {correct!r} must be 0/1 or true/false, got {c.iloc[0]!r}") from None
    if not np.isin(cv, (0.0, 1.0)).all():
        raise StudyError(f"column {correct!r} must be 0/1 or true/false")
    for m in methods:
        seen = set(cv[sub[method].astype(str).to_numpy() == m].tolist())
        if seen != {0.0, 1.0}:
            raise StudyError(f"method {m!r}: answers only for "
                             f"{'correct' if 1.0 in seen else 'incorrect'} predictions: "
                             "its gap between correct and incorrect cannot be fitted")
    sub = sub.assign(**{correct: cv})
    y, used = ordinal_response(sub, response, scale)
    inter = f"{correct}:{method}"
    design = design_matrix(sub, [correct, method, inter], levels={method: methods},
                           intercept=False)
    terms = random_terms(sub, participant, item)
    fit = _fit(y, design, terms, used)
    icols = design.columns_of(inter)
    zq = stats.norm.ppf(0.5 + confidence / 2)
    j_c = design.names.index(correct)
    rows = []
    for b, j in zip(methods[1:], icols):
        w = np.zeros(len(fit.beta))
        w[j] = -1.0
        est, se = fit.contrast(w)
        z = est / se if se > 0 else np.nan
        red = _reduced(y, design, terms, used, [j], fit)
        lr = max(0.0, 2 * (fit.loglik - red.loglik))
        signed = float(np.sign(est) * np.sqrt(lr))
        rows.append({"target": methods[0], "baseline": b,
                     "contrast": f"gap[{methods[0]}] - gap[{b}]", "estimate": est, "se": se,
                     "z": z, "p_wald": float(p_value(z, alternative)), "lr_chi2": lr,
                     "signed_root": signed, "p_value": float(p_value(signed, alternative)),
                     "ci_low": est - zq * se, "ci_high": est + zq * se,
                     "ci_level": confidence, "alternative": alternative,
                     "reduced_converged": bool(red.convergence["converged"])})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"].to_numpy())
    table["reject"] = table["p_holm"] < alpha
    table["test"] = "CLMM likelihood ratio of the interaction column (Laplace), Holm"
    gaps = []
    for m in methods:
        w = np.zeros(len(fit.beta))
        w[j_c] = 1.0
        if m != methods[0]:
            w[design.names.index(f"{inter}[{m}]")] = 1.0
        est, se = fit.contrast(w)
        z = est / se if se > 0 else np.nan
        gaps.append({method: m, "estimate": est, "se": se, "z": z,
                     "p_value": float(p_value(z, alternative)), "ci_low": est - zq * se,
                     "ci_high": est + zq * se, "odds_ratio": float(np.exp(est)),
                     "ci_level": confidence, "alternative": alternative})
    red = _reduced(y, design, terms, used, icols, fit)
    lr = max(0.0, 2 * (fit.loglik - red.loglik))
    lrt = pd.DataFrame([{"term": inter, "test": "likelihood ratio", "df": len(icols),
                         "statistic": lr, "p_value": float(stats.chi2.sf(lr, len(icols))),
                         "loglik_full": fit.loglik, "loglik_reduced": red.loglik,
                         "reduced_converged": bool(red.convergence["converged"])}])
    ran = "".join(f" + (1 | {t.factor})" for t in terms)
    cv_ = fit.convergence
    model = pd.DataFrame([{
        "model": f"{response} ~ {correct} * {method}{ran}", "family": "cumulative logit",
        "method": fit.method, "answers": int(fit.n_obs),
        **{f"levels_{t['factor']}": int(t["levels"]) for t in fit.terms},
        "loglik": fit.loglik, "converged": bool(cv_["converged"]),
        "singular": bool(cv_["singular"]), "convergence": re_text(fit),
        "dropped_scores": ", ".join(str(s) for s in scale if s not in used)}])
    coefficients = fit.coefficients(confidence)
    coefficients.loc[coefficients["kind"] == "threshold", ["z", "p_value"]] = np.nan
    return {"interaction": table, "gaps": pd.DataFrame(gaps), "lrt": lrt,
            "coefficients": coefficients, "variance": fit.variance_components(),
            "model": model, "fit": fit, "design": design}


def clmm_by_method(data: pd.DataFrame, *, target: str, baselines: list[str], scale,
                   response: str = "similarity", method: str = "method",
                   participant: str = "participant", item: str = "item",
                   dataset: str | None = None, **kwargs) -> dict:
    """The similarity primary: mixed.clmm_ratings (declared random-effects structures
    with fallback, LR contrasts target - each baseline, Holm; keyword arguments pass
    through) on the rating column `response`. The contrasts table gains `estimate` (=
    log_odds_ratio) and `ci_low`/`ci_high` (the profile interval of the log odds ratio)."""
    from study.analysis.mixed import clmm_ratings

    cols = [response, method, participant, item] + ([dataset] if dataset else [])
    require_columns(data, cols)
    methods = [str(target)] + [str(b) for b in baselines]
    if len(set(methods)) < 2:
        raise StudyError("the method comparison needs a target and at least one baseline")
    sub = data[data[method].astype(str).isin(methods)]
    missing = [m for m in methods if m not in set(sub[method].astype(str))]
    if missing:
        raise StudyError(f"no answers for method {missing[0]!r} in column {method!r}")
    ordinal_response(sub, response, scale)          # the scale and "all the same" checks
    answers = pd.DataFrame({"kind": "saliency", "score": sub[response].to_numpy(),
                            "method": sub[method].astype(str).to_numpy(),
                            "dataset": sub[dataset].astype(str).to_numpy() if dataset else "all",
                            "participant_id": sub[participant].astype(str).to_numpy(),
                            "item_id": sub[item].astype(str).to_numpy()})
    out = clmm_ratings(answers, methods[0], methods[1:], scale=list(scale), **kwargs)
    c = out["contrasts"]
    c.insert(2, "estimate", c["log_odds_ratio"])
    c["ci_low"] = c["profile_ci_low"]
    c["ci_high"] = c["profile_ci_high"]
    return out
