"""Mixed models on study answers: the CLMM of saliency ratings and the logistic mixed
model of consistency choices, as tidy tables.

Why: answers are nested in participants and the images (items) are a sample too, so
the primary test of "target rated higher than baseline" is a cumulative link mixed
model with crossed random intercepts for participant and item (`clmm.fit_clmm`).
Method (target as the reference level) and data set are fixed effects. For each
baseline the contrast target − baseline is a log odds ratio of a higher rating:
positive means the target is rated higher. The method effect as a whole is tested by
a likelihood-ratio test against the model without method.

Consistency choices (data-dependent vs Euclidean, undecided excluded) are binary; the
logistic mixed model logit P(data-dependent) = μ + b_participant, b ~ N(0, σ²), is the
two-category case of the same model (μ = −θ), fitted by adaptive Gauss-Hermite
quadrature. μ = 0 is the null "no preference"; the Wald test of μ keeps its level
when participants differ in preference, unlike the answer-level binomial test.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.clmm import ClmmFit, convergence_text, fit_clmm
from study.analysis.consistency import consistency_answers
from study.analysis.corrections import holm
from study.analysis.io import RATING_KINDS
from study.errors import StudyError

CONSISTENCY_NAGQ = 10


def _one_sided(z: np.ndarray, alternative: str) -> np.ndarray:
    if alternative == "greater":
        return stats.norm.sf(z)
    if alternative == "less":
        return stats.norm.cdf(z)
    return 2 * stats.norm.sf(np.abs(z))


def ratings_design(answers: pd.DataFrame, methods: list[str], scale) -> dict:
    """Response, fixed effects and random factors of the saliency answers.

    `methods[0]` is the reference level (the target). Scores that nobody gave are
    dropped from the scale (their thresholds are not identified) and reported.
    """
    sal = answers[answers["kind"].isin(RATING_KINDS)]
    sal = sal[sal["method"].astype(str).isin(methods)]
    if len(sal) == 0:
        raise StudyError("no saliency answers for the mixed model")
    score = sal["score"].to_numpy().astype(np.int64)
    used = [s for s in scale if (score == s).any()]
    y = np.searchsorted(np.asarray(used), score)   # scale is increasing
    meth = sal["method"].astype(str).to_numpy()
    ds = sal["dataset"].astype(str).to_numpy()
    datasets = sorted(set(ds.tolist()))
    cols, names = [], []
    for m in methods[1:]:
        cols.append((meth == m).astype(np.float64))
        names.append(f"method[{m}]")
    for d in datasets[1:]:
        cols.append((ds == d).astype(np.float64))
        names.append(f"dataset[{d}]")
    X = np.column_stack(cols) if cols else np.zeros((len(sal), 0))
    return {"y": y, "X": X, "names": names, "categories": [str(s) for s in used],
            "dropped_scores": [s for s in scale if s not in used],
            "participant": sal["participant_id"].astype(str).to_numpy(),
            "item": sal["item_id"].astype(str).to_numpy(), "datasets": datasets,
            "method": meth,
            "n_method_columns": len(methods) - 1}


# The declared random-effects structures of the saliency primary, most complex first
# (Barr et al. 2013, "keep it maximal"). Declared rule: a structure is left when it is
# not identifiable on the design or does not converge, and the maximal one also when it
# is singular (a correlation at ±1 or a variance at 0). A singular uncorrelated fit is
# kept: a slope variance at 0 is its maximum-likelihood estimate, and dropping the
# slopes that do vary would make the method test anti-conservative (measured by
# bench/bench_clmm.py). Every attempt and why it was left is reported.
STRUCTURES = ("maximal", "uncorrelated", "intercepts")
STRUCTURE_LABELS = {
    "maximal": "by-participant correlated random intercept and method slopes, item intercept",
    "uncorrelated": "by-participant random intercept and uncorrelated method slopes, "
                    "item intercept",
    "intercepts": "crossed participant and item random intercepts",
}


def r_formula(structure: str, methods: list[str], datasets: list[str], *,
              response: str = "rating") -> str:
    """The model as R's ordinal::clmm writes it (method and dataset as factors, the
    target first; the uncorrelated slopes as numeric 0/1 columns m_<method>)."""
    fixed = " + ".join(["method"] + (["dataset"] if len(datasets) > 1 else []))
    if structure == "maximal":
        ran = "(1 + method | participant) + (1 | item)"
    elif structure == "uncorrelated":
        ran = " + ".join(["(1 | participant)"]
                         + [f"(0 + m_{m} | participant)" for m in methods[1:]] + ["(1 | item)"])
    else:
        ran = "(1 | participant) + (1 | item)"
    return f"{response} ~ {fixed} + {ran}"


def _terms(d: dict, structure: str) -> list:
    from study.analysis.clmm_re import make_term

    k = d["n_method_columns"]
    D = d["X"][:, :k]
    has_items = len(np.unique(d["item"])) >= 2
    if structure == "intercepts" or k == 0:
        terms = [make_term("participant", d["participant"])]
    else:
        Z = np.column_stack([np.ones(len(D)), D])
        cols = ["(Intercept)"] + d["names"][:k]
        terms = [make_term("participant", d["participant"], Z, cols,
                           correlated=structure == "maximal")]
    if has_items:
        terms.append(make_term("item", d["item"]))
    return terms


def participants_with_several_methods(participant: np.ndarray, method: np.ndarray) -> int:
    """How many participants rated more than one method (they identify the slopes)."""
    per = pd.DataFrame({"p": participant, "m": method}).groupby("p")["m"].nunique()
    return int((per >= 2).sum())


def _structure_check(d: dict, structure: str, n_methods: int) -> str:
    """'' if `structure` can be fitted on this design, else the reason (one line).

    Declared rule: by-participant method slopes need participants who rated more than
    one method; the maximal structure needs at least q(q+1)/2 + 1 of them (q = number
    of methods: its covariance parameters + 1), the uncorrelated one at least q + 1."""
    if structure == "intercepts":
        return ""
    if n_methods < 2:
        return "one method only: no method slopes"
    multi = participants_with_several_methods(d["participant"], d["method"])
    if multi == 0:
        return ("every participant rated one method only: by-participant method slopes "
                "are not identifiable")
    q = n_methods
    need = q * (q + 1) // 2 + 1 if structure == "maximal" else q + 1
    if multi < need:
        return (f"only {multi} participants rated more than one method; the {structure} "
                f"structure's covariance parameters need at least {need}")
    from study.analysis.clmm_re import MAX_RANDOM

    n_re = len(np.unique(d["participant"])) * q + len(np.unique(d["item"]))
    if n_re > MAX_RANDOM:
        return f"{n_re} random effects: more than the {MAX_RANDOM} the slope model holds"
    return ""


def _start_without(fit, columns) -> np.ndarray | None:
    """The fit's parameters with the given fixed-effect columns removed (warm start of a
    reduced or profiled model), or None for a fit of clmm.py."""
    nat = getattr(fit, "nat", None)
    if nat is None:
        return None
    K1 = len(fit.thresholds)
    return np.delete(nat, [K1 + c for c in columns])


def fit_structure(d: dict, structure: str, X=None, *, offset=None, start=None,
                  hessian: bool = True):
    """Fit one declared structure to the design `d` (ratings_design); X replaces d['X']
    (for reduced models: the method columns of the random part stay)."""
    from study.analysis.clmm_re import MAX_RANDOM, fit_clmm_re

    X = d["X"] if X is None else X
    names = d["names"] if X is d["X"] else None
    terms = _terms(d, structure)
    n_re = sum(t.nlev * t.q for t in terms)
    if structure == "intercepts" and n_re > MAX_RANDOM:
        if offset is not None:
            raise StudyError(f"{n_re} random effects: too many for profile intervals")
        # large crossed-intercept designs: the Schur-complement engine (clmm.py)
        groups = [t.groups for t in terms]
        return fit_clmm(d["y"], X, groups, n_categories=len(d["categories"]),
                        beta_names=names, term_names=[t.factor for t in terms],
                        category_names=d["categories"])
    return fit_clmm_re(d["y"], X, terms, n_categories=len(d["categories"]), beta_names=names,
                       category_names=d["categories"], offset=offset, start=start,
                       hessian=hessian)


def reduced_fit(d: dict, structure: str, fit, columns, *, offset=None, hessian: bool = False):
    """The model without the fixed-effect `columns` (a likelihood-ratio null or a profile
    point), warm-started at `fit`. A variance at 0 is a stationary point of the Laplace
    objective, so a warm start whose optimiser steps onto it stays there (seen: an LR
    inflated by 0.093 in ordinal_design): when the reduced fit is singular and the full
    one is not, it is refitted from the default start and the better fit kept (as
    logit_mixed.py and ordinal_design.py do)."""
    X = np.delete(d["X"], list(columns), axis=1)
    start = _start_without(fit, columns)
    warm = fit_structure(d, structure, X, offset=offset, start=start, hessian=hessian)
    if start is None or not _singular(warm) or _singular(fit):
        return warm
    cold = fit_structure(d, structure, X, offset=offset, hessian=hessian)
    return cold if cold.loglik > warm.loglik else warm


def random_sds(fit) -> dict[str, float]:
    """Participant intercept SD, SD of the (first) method slope and item SD of a fit of
    either engine (0 where the fitted structure has no such term)."""
    out = {"participant": 0.0, "slope": 0.0, "item": 0.0}
    terms = getattr(fit, "terms", None)
    if terms is None:
        for name, sd in zip(fit.term_names, fit.sd):
            out[name] = float(sd)
        return out
    for t in terms:
        if t["factor"] == "item":
            out["item"] = float(t["sd"][0])
        elif t["factor"] == "participant":
            out["participant"] = float(t["sd"][0])
            if len(t["sd"]) > 1:
                out["slope"] = float(t["sd"][1])
    return out


def _fit_text(fit) -> str:
    from study.analysis.clmm_re import ReFit
    from study.analysis.clmm_re import convergence_text as re_text

    return re_text(fit) if isinstance(fit, ReFit) else convergence_text(fit)


def _singular(fit) -> bool:
    from study.analysis.clmm_re import ReFit

    if isinstance(fit, ReFit):
        return fit.singular
    return bool(fit.convergence["variance_at_boundary"])


def fit_with_fallback(d: dict, methods: list[str], *, start: str = "maximal"):
    """Fit the declared structures in order from `start`; returns (fit, structure,
    attempts table, fallback reason ('' when the first was kept))."""
    attempts, reasons = [], []
    order = STRUCTURES[STRUCTURES.index(start):]
    chosen: tuple | None = None
    for structure in order:
        why = _structure_check(d, structure, len(methods))
        fit = None
        if not why:
            fit = fit_structure(d, structure)
            if not fit.convergence["converged"]:
                why = f"did not converge ({_fit_text(fit)})"
            elif _singular(fit) and structure == "maximal":
                why = "singular fit (a variance at zero or a correlation at ±1)"
        formula = r_formula(structure, methods, d["datasets"])
        attempts.append({"structure": structure, "formula": formula,
                         "used": not why or structure == order[-1],
                         "reason": why or "", "loglik": fit.loglik if fit is not None else np.nan})
        if not why or structure == order[-1]:
            chosen = (fit, structure)
            if fit is None:
                raise StudyError(f"no declared random-effects structure can be fitted: {why}")
            break
        reasons.append(f"{structure}: {why}")
    if chosen is None:  # pragma: no cover - the last structure always ends the loop
        raise StudyError("no declared random-effects structure was tried")
    fit, structure = chosen
    return fit, structure, pd.DataFrame(attempts), "; ".join(reasons)


def contrast_profile_ci(d: dict, structure: str, j: int, fit, confidence: float
                        ) -> tuple[float, float]:
    """Profile-likelihood interval of target − baseline j (= −beta_j) in `structure`."""
    from study.analysis.clmm_re import profile_interval

    X = d["X"]

    def refit(b: float) -> float:          # beta_j held at -b
        return reduced_fit(d, structure, fit, [j], offset=-b * X[:, j]).loglik

    est, se = fit.contrast(-np.eye(len(fit.beta))[j])
    return profile_interval(refit, fit.loglik, est, se, confidence=confidence)


def bootstrap_contrast_p(d: dict, structure: str, j: int, fit, reduced, lr: float,
                         draws: int, seed: int = 0, alternative: str = "greater") -> float:
    """Parametric-bootstrap p-value of the likelihood ratio of contrast j: studies drawn
    from the fitted null model (baseline j = target), both models refitted to each.
    One-sided alternatives use the signed root, as the chi-square test does."""
    from study.analysis.clmm import _one_blas_thread
    from study.analysis.clmm_re import ReFit, _fit, simulate

    if not isinstance(reduced, ReFit):
        raise StudyError("the parametric bootstrap needs the random-slope engine (too many "
                         "random effects for it)")
    rest = np.delete(d["X"], j, axis=1)
    terms = _terms(d, structure)
    K = len(d["categories"])
    est = -float(fit.beta[j])
    observed = float(np.sign(est) * np.sqrt(lr))

    def stat(value: float) -> float:
        return {"greater": value, "less": -value, "two-sided": abs(value)}[alternative]

    rng = np.random.default_rng(seed)
    exceed = 0
    with _one_blas_thread():
        for _ in range(draws):
            ys = simulate(reduced, rest, terms, rng)
            if len(np.unique(ys)) < K:           # a category never drawn: count as extreme
                exceed += 1
                continue
            red_s = _fit(ys, rest, terms, n_categories=K, start=reduced.nat, hessian=False)
            start = np.insert(np.asarray(reduced.nat), len(reduced.thresholds) + j, 0.0)
            full_s = _fit(ys, d["X"], terms, n_categories=K, start=start, hessian=False)
            lr_s = max(0.0, 2 * (full_s.loglik - red_s.loglik))
            signed = float(np.sign(-full_s.beta[j]) * np.sqrt(lr_s))
            exceed += stat(signed) >= stat(observed)
    return (1 + exceed) / (draws + 1)


def clmm_ratings(answers: pd.DataFrame, target: str, baselines: list[str], *, scale,
                 alternative: str = "greater", alpha: float = 0.05,
                 confidence: float = 0.95, nagq: int = 1, structure: str = "maximal",
                 profile: bool = True, bootstrap: int = 0, seed: int = 0) -> dict:
    """The primary mixed-model analysis of saliency ratings.

    Fits the declared structures (STRUCTURES, from `structure`) and keeps the first that
    is identifiable, converges and is not singular. Returns a dict of DataFrames:
    contrasts (target vs each baseline: log odds ratio, SE, Wald z and p, the
    likelihood-ratio test of the contrast (the test that is reported), Holm, odds ratio
    and its Wald CI), coefficients, variance (random-effect SDs and correlations), lrt
    (method effect as a whole), convergence (one row), structure (one row: fitted
    formula, fallback reason), attempts (every structure tried), and the fit under "fit".
    `nagq` is accepted for compatibility and must be 1 (Laplace).
    """
    if nagq != 1:
        raise StudyError("the saliency CLMM is fitted by the Laplace approximation (nagq 1)")
    if structure not in STRUCTURES:
        raise StudyError(f"random-effects structure {structure!r}: expected one of "
                         f"{', '.join(STRUCTURES)}")
    methods = [target] + list(baselines)
    d = ratings_design(answers, methods, scale)
    fit, used, attempts, reason = fit_with_fallback(d, methods, start=structure)
    k = d["n_method_columns"]
    zq = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for j, b in enumerate(baselines):
        w = np.zeros(len(fit.beta))
        w[j] = -1.0                        # target − baseline
        est, se = fit.contrast(w)
        z = est / se if se > 0 else np.nan
        # likelihood-ratio test of this contrast: the model with baseline j = target
        red = reduced_fit(d, used, fit, [j])
        lr = max(0.0, 2 * (fit.loglik - red.loglik))
        signed = float(np.sign(est) * np.sqrt(lr))
        p_lr = float(_one_sided(np.array(signed), alternative))
        p_boot = bootstrap_contrast_p(d, used, j, fit, red, lr, bootstrap, seed + j,
                                      alternative) if bootstrap else np.nan
        lo, hi = (np.nan, np.nan)
        if profile:
            try:
                lo, hi = contrast_profile_ci(d, used, j, fit, confidence)
            except StudyError:   # too large for the dense solver: the Wald interval stays
                lo, hi = (np.nan, np.nan)
        rows.append({"target": target, "baseline": b, "log_odds_ratio": est, "se": se, "z": z,
                     "p_wald": float(_one_sided(np.array(z), alternative)),
                     "lr_chi2": lr, "signed_root": signed, "p_lr": p_lr,
                     "p_bootstrap": p_boot,
                     "p_value": p_boot if bootstrap else p_lr,
                     "reduced_converged": bool(red.convergence["converged"]),
                     "odds_ratio": float(np.exp(est)), "or_ci_low": float(np.exp(est - zq * se)),
                     "or_ci_high": float(np.exp(est + zq * se)),
                     "profile_ci_low": lo, "profile_ci_high": hi,
                     "or_profile_ci_low": float(np.exp(lo)), "or_profile_ci_high": float(np.exp(hi)),
                     "alternative": alternative})
    contrasts = pd.DataFrame(rows)
    contrasts["p_holm"] = holm(contrasts["p_value"].to_numpy())
    contrasts["reject"] = contrasts["p_holm"] < alpha
    contrasts["alpha"] = alpha
    contrasts["ci_level"] = confidence
    contrasts["test"] = f"CLMM likelihood ratio ({fit.method}, {used} structure)" + (
        f", parametric bootstrap ({bootstrap} draws)" if bootstrap else ", chi-square 1 df")
    # likelihood-ratio test of the method effect: refit without the method columns
    reduced = reduced_fit(d, used, fit, range(k))
    lr = max(0.0, 2 * (fit.loglik - reduced.loglik))
    lrt = pd.DataFrame([{"effect": "method", "df": k, "chi2": lr,
                         "p_value": float(stats.chi2.sf(lr, k)) if k else np.nan,
                         "loglik_full": fit.loglik, "loglik_reduced": reduced.loglik,
                         "reduced_converged": reduced.convergence["converged"]}])
    levels = {"participant": len(np.unique(d["participant"])),
              "item": len(np.unique(d["item"]))}
    conv = {"method": fit.method, "answers": fit.n_obs,
            **{f"levels_{t}": n for t, n in levels.items()},
            "loglik": fit.loglik, **{k2: v for k2, v in fit.convergence.items()
                                     if k2 not in ("variance_at_boundary", "singular_terms")},
            "variance_at_boundary": ", ".join(fit.convergence.get("variance_at_boundary",
                                                                  fit.convergence.get(
                                                                      "singular_terms", []))),
            "summary": _fit_text(fit), "dropped_scores": ", ".join(
                str(s) for s in d["dropped_scores"])}
    formula = r_formula(used, methods, d["datasets"])
    fitted_line = f"fitted: {formula}" + (f"; fallback because {reason}" if reason else "")
    struct = pd.DataFrame([{"declared": r_formula(structure, methods, d["datasets"]),
                            "fitted": formula, "structure": used,
                            "description": STRUCTURE_LABELS[used], "fallback_reason": reason,
                            "line": fitted_line}])
    variance = fit.variance_components()
    from study.analysis.effects import nominal_advice, nominal_test, predicted_probabilities

    probabilities = predicted_probabilities(fit, d, methods, confidence=confidence)
    po_terms = {"method": list(range(k))}
    if len(d["datasets"]) > 1:
        po_terms["dataset"] = list(range(k, d["X"].shape[1]))
    po = nominal_test(d, po_terms) if k else pd.DataFrame()
    coefficients = fit.coefficients(confidence)
    thresholds = coefficients["kind"] == "threshold"
    coefficients.loc[thresholds, ["z", "p_value"]] = np.nan   # a cut point is not tested
    return {"fit": fit, "contrasts": contrasts, "coefficients": coefficients,
            "variance": variance, "lrt": lrt, "convergence": pd.DataFrame([conv]),
            "structure": struct, "attempts": attempts, "design": d,
            "probabilities": probabilities, "proportional_odds": po,
            "proportional_odds_advice": nominal_advice(po, alpha) if len(po) else "",
            "n": {"participants": levels["participant"], "items": levels["item"],
                  "answers": int(fit.n_obs)}}


# Declared inference rule of the consistency primary: the likelihood-ratio test of
# log odds 0 (chi-square, 1 df) when both the participants and the pairs number at least
# BOOTSTRAP_BELOW; below that, a parametric bootstrap of the same statistic from the
# fitted null model (BOOTSTRAP_RESAMPLES draws).
BOOTSTRAP_BELOW = 10
BOOTSTRAP_RESAMPLES = 199


def clmm_contrasts(answers: pd.DataFrame, target: str, baselines: list[str], *, scale, **kwargs
                   ) -> pd.DataFrame:
    """The CLMM's target-baseline contrasts as a tidy table (pingouin style), one row per
    contrast: test, statistic (the likelihood ratio, signed root), value, p_value, p_holm,
    reject, alternative, effect size odds_ratio with its interval, and the fit's convergence.
    Same numbers as `clmm_ratings(...)["contrasts"]` (its other tables: `clmm_ratings`)."""
    res = clmm_ratings(answers, target, baselines, scale=scale, **kwargs)
    c = res["contrasts"].copy()
    c.insert(0, "test", "CLMM likelihood ratio" if "lr_chi2" in c else "CLMM Wald")
    c.insert(1, "statistic", "LR chi2 (1 df, signed root)" if "lr_chi2" in c else "z")
    c.insert(2, "value", c["lr_chi2"] if "lr_chi2" in c else c["z"])
    conv = res["convergence"].iloc[0]
    c["converged"] = bool(conv["converged"])
    c["model"] = res["structure"].iloc[0]["fitted"] if "structure" in res else ""
    return c


def bootstrap_draws(n_participants: int, n_pairs: int, asked: int | None = None) -> int:
    """The declared rule: 0 (likelihood-ratio chi-square) when both factors have at least
    BOOTSTRAP_BELOW levels, else BOOTSTRAP_RESAMPLES; `asked` overrides it."""
    if asked is not None:
        return int(asked)
    return BOOTSTRAP_RESAMPLES if min(n_participants, n_pairs) < BOOTSTRAP_BELOW else 0


def _binary_fit(y: np.ndarray, terms: list, theta_fixed=None, **kw):
    from study.analysis.clmm_re import _fit

    return _fit(y, None, terms, n_categories=2, theta_fixed=theta_fixed, **kw)


def _simulate_null(rng: np.random.Generator, null_fit, terms: list) -> np.ndarray:
    n = len(terms[0].groups)
    eta = np.zeros(n)
    for t, info in zip(terms, null_fit.terms):
        eta += rng.normal(0.0, info["sd"][0], t.nlev)[t.groups]
    return (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int64)


def glmm_proportion(success: np.ndarray, cluster: np.ndarray, *, pair: np.ndarray | None = None,
                    confidence: float = 0.95, nagq: int = CONSISTENCY_NAGQ,
                    bootstrap: int | None = None, seed: int = 0) -> dict:
    """Logistic mixed model logit P(success) = μ + b_participant [+ b_pair]; test of μ = 0.

    With `pair` (the question each answer belongs to) the participant and pair random
    intercepts are crossed and the model is fitted by the Laplace approximation (as
    lme4::glmer with nAGQ = 1); without it, participant only, by adaptive Gauss-Hermite
    quadrature with `nagq` nodes. μ = 0 is tested by the likelihood ratio against the
    model with μ fixed at 0, or by a parametric bootstrap of that ratio when either
    factor has fewer than BOOTSTRAP_BELOW levels (or `bootstrap` resamples are asked
    for). Returns μ, its SE, the Wald z, the LR statistic, the p-value of the declared
    test, the probability at the median participant and pair (expit μ) with its Wald
    CI, the random-effect SDs and a convergence line.
    """
    from study.analysis.clmm_re import convergence_text as re_text
    from study.analysis.clmm_re import make_term

    success = np.asarray(success, dtype=bool)
    n = len(success)
    n_pairs = int(len(np.unique(pair))) if pair is not None else 0
    base = {"n": int(n), "k": int(success.sum()), "clusters": int(len(np.unique(cluster))),
            "pairs": n_pairs, "ci_level": confidence}
    empty = {**base, "log_odds": np.nan, "se": np.nan, "z": np.nan, "lr_chi2": np.nan,
             "p_value": np.nan, "p_method": "", "proportion_median_participant": np.nan,
             "ci_low": np.nan, "ci_high": np.nan, "participant_sd": np.nan, "pair_sd": np.nan,
             "converged": False, "model": ""}
    if n == 0 or success.all() or not success.any():
        return {**empty, "convergence": "not fitted (needs both choices)"}
    y = success.astype(np.int64)  # category 0 = Euclidean, 1 = data-dependent
    n_clusters = base["clusters"]
    expit = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    zq = stats.norm.ppf(0.5 + confidence / 2)
    if pair is not None and n_pairs > 1 and n_clusters > 1:
        from study.analysis.clmm import _one_blas_thread

        terms = [make_term("participant", cluster), make_term("pair", pair)]
        with _one_blas_thread():
            fit = _binary_fit(y, terms)
            null = _binary_fit(y, terms, theta_fixed=np.zeros(1))
        mu, se = -float(fit.thresholds[0]), float(fit.se[0])
        lr = max(0.0, 2 * (fit.loglik - null.loglik))
        B = bootstrap_draws(int(n_clusters), n_pairs, bootstrap)
        if B:
            rng = np.random.default_rng(seed)
            exceed = 0
            with _one_blas_thread():
                for _ in range(B):
                    ys = _simulate_null(rng, null, terms)
                    if ys.all() or not ys.any():
                        exceed += lr <= 0
                        continue
                    # warm starts at the fitted null, no Hessian: only likelihoods are needed
                    s0 = null.nat
                    s1 = np.concatenate([[0.0], s0])
                    lr_s = 2 * (_binary_fit(ys, terms, start=s1, hessian=False).loglik
                                - _binary_fit(ys, terms, theta_fixed=np.zeros(1), start=s0,
                                              hessian=False).loglik)
                    exceed += lr_s >= lr
            p = (1 + exceed) / (B + 1)
            p_method = f"parametric bootstrap of the likelihood ratio ({B} draws)"
        else:
            p = float(stats.chi2.sf(lr, 1))
            p_method = "likelihood ratio, chi-square 1 df"
        sds = {t["factor"]: float(t["sd"][0]) for t in fit.terms}
        return {**base, "log_odds": mu, "se": se, "z": mu / se if se > 0 else np.nan,
                "lr_chi2": lr, "p_value": float(p), "p_method": p_method,
                "loglik": fit.loglik, "loglik_null": null.loglik,
                "proportion_median_participant": float(expit(mu)),
                "ci_low": float(expit(mu - zq * se)), "ci_high": float(expit(mu + zq * se)),
                "participant_sd": sds["participant"], "pair_sd": sds["pair"],
                "converged": bool(fit.convergence["converged"]),
                "model": "choice ~ 1 + (1 | participant) + (1 | pair), binomial logit, Laplace",
                "convergence": re_text(fit)}
    fit1: ClmmFit = fit_clmm(y, None, [cluster] if n_clusters > 1 else [],
                             n_categories=2, term_names=["participant"],
                             nagq=nagq if n_clusters > 1 else 1)
    mu, se = -float(fit1.thresholds[0]), float(fit1.se[0])
    z = mu / se if se > 0 else np.nan
    return {**base, "log_odds": mu, "se": se, "z": z, "lr_chi2": np.nan,
            "p_value": float(2 * stats.norm.sf(abs(z))), "p_method": "Wald z",
            "proportion_median_participant": float(expit(mu)),
            "ci_low": float(expit(mu - zq * se)), "ci_high": float(expit(mu + zq * se)),
            "participant_sd": float(fit1.sd[0]) if len(fit1.sd) else 0.0, "pair_sd": np.nan,
            "converged": bool(fit1.convergence["converged"]),
            "model": f"choice ~ 1 + (1 | participant), binomial logit, AGQ({nagq})",
            "convergence": convergence_text(fit1)}


def consistency_mixed(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per version and pooled: the logistic mixed model of data-dependent vs Euclidean
    choices (undecided excluded), crossed participant and pair (item) random intercepts.
    The parametric bootstrap, where the declared rule asks for it, runs for the pooled
    row (the primary test); per-version rows use the likelihood-ratio chi-square."""
    from study.analysis.consistency import POOLED_VERSION

    con = consistency_answers(answers)
    src = con["choice_source"].astype(str).to_numpy()
    keep = src != "undecided"
    ver = con["version"].to_numpy()[keep]
    pid = con["participant_id"].astype(str).to_numpy()[keep]
    pair = con["item_id"].astype(str).to_numpy()[keep]
    dd = src[keep] == "data_dependent"
    rows = []
    for v in sorted(set(ver.tolist())) + [None]:
        sel = np.ones(len(dd), dtype=bool) if v is None else ver == v
        rows.append({"version": POOLED_VERSION if v is None else str(v),
                     **glmm_proportion(dd[sel], pid[sel], pair=pair[sel],
                                       confidence=confidence,
                                       bootstrap=None if v is None else 0)})
    out = pd.DataFrame(rows)
    out["test"] = "logistic mixed model, crossed participant and pair random intercepts"
    return out
