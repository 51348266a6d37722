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
from study.analysis.corrections import holm
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
    sal = answers[answers["kind"] == "saliency"]
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
            "n_method_columns": len(methods) - 1}


def clmm_ratings(answers: pd.DataFrame, target: str, baselines: list[str], *, scale,
                 alternative: str = "greater", alpha: float = 0.05,
                 confidence: float = 0.95, nagq: int = 1) -> dict:
    """The primary mixed-model analysis of saliency ratings.

    Returns a dict of DataFrames: contrasts (target vs each baseline: log odds ratio,
    SE, z, p, Holm, odds ratio and its CI), coefficients (thresholds and fixed
    effects as R's clmm prints them), variance (random-effect SDs), lrt (method
    effect), convergence (one row), and the fit itself under "fit".
    """
    methods = [target] + list(baselines)
    d = ratings_design(answers, methods, scale)
    groups = [d["participant"], d["item"]]
    terms = ["participant", "item"]
    if len(np.unique(d["item"])) < 2:
        groups, terms = groups[:1], terms[:1]
    fit = fit_clmm(d["y"], d["X"], groups, n_categories=len(d["categories"]),
                   beta_names=d["names"], term_names=terms, category_names=d["categories"],
                   nagq=nagq if len(groups) == 1 else 1)
    zq = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for j, b in enumerate(baselines):
        w = np.zeros(len(fit.beta))
        w[j] = -1.0                        # target − baseline
        est, se = fit.contrast(w)
        z = est / se if se > 0 else np.nan
        rows.append({"target": target, "baseline": b, "log_odds_ratio": est, "se": se, "z": z,
                     "p_value": float(_one_sided(np.array(z), alternative)),
                     "odds_ratio": float(np.exp(est)), "or_ci_low": float(np.exp(est - zq * se)),
                     "or_ci_high": float(np.exp(est + zq * se)), "alternative": alternative})
    contrasts = pd.DataFrame(rows)
    contrasts["p_holm"] = holm(contrasts["p_value"].to_numpy())
    contrasts["reject"] = contrasts["p_holm"] < alpha
    contrasts["alpha"] = alpha
    contrasts["ci_level"] = confidence
    contrasts["test"] = f"CLMM Wald z ({fit.method})"
    # likelihood-ratio test of the method effect: refit without the method columns
    k = d["n_method_columns"]
    reduced = fit_clmm(d["y"], d["X"][:, k:], groups, n_categories=len(d["categories"]),
                       beta_names=d["names"][k:], term_names=terms,
                       category_names=d["categories"],
                       nagq=nagq if len(groups) == 1 else 1)
    lr = max(0.0, 2 * (fit.loglik - reduced.loglik))
    lrt = pd.DataFrame([{"effect": "method", "df": k, "chi2": lr,
                         "p_value": float(stats.chi2.sf(lr, k)) if k else np.nan,
                         "loglik_full": fit.loglik, "loglik_reduced": reduced.loglik,
                         "reduced_converged": reduced.convergence["converged"]}])
    conv = {"method": fit.method, "answers": fit.n_obs,
            **{f"levels_{t}": n for t, n in zip(fit.term_names, fit.n_levels)},
            "loglik": fit.loglik, **{k2: v for k2, v in fit.convergence.items()
                                     if k2 != "variance_at_boundary"},
            "variance_at_boundary": ", ".join(fit.convergence["variance_at_boundary"]),
            "summary": convergence_text(fit), "dropped_scores": ", ".join(
                str(s) for s in d["dropped_scores"])}
    return {"fit": fit, "contrasts": contrasts, "coefficients": fit.coefficients(confidence),
            "variance": fit.variance_components(), "lrt": lrt,
            "convergence": pd.DataFrame([conv])}


def glmm_proportion(success: np.ndarray, cluster: np.ndarray, *, confidence: float = 0.95,
                    nagq: int = CONSISTENCY_NAGQ) -> dict:
    """Logistic mixed model logit P(success) = μ + b_cluster; Wald test of μ = 0.

    Returns μ, its SE, z, two-sided p, the probability at the median cluster
    (expit μ) with its CI, the random-effect SD and a convergence line.
    """
    success = np.asarray(success, dtype=bool)
    n = len(success)
    base = {"n": int(n), "k": int(success.sum()), "clusters": int(len(np.unique(cluster))),
            "ci_level": confidence}
    if n == 0 or success.all() or not success.any():
        return {**base, "log_odds": np.nan, "se": np.nan, "z": np.nan, "p_value": np.nan,
                "proportion_median_participant": np.nan, "ci_low": np.nan, "ci_high": np.nan,
                "participant_sd": np.nan, "converged": False,
                "convergence": "not fitted (needs both choices)"}
    y = success.astype(np.int64)  # category 0 = Euclidean, 1 = data-dependent
    n_clusters = base["clusters"]
    fit: ClmmFit = fit_clmm(y, None, [cluster] if n_clusters > 1 else [],
                            n_categories=2, term_names=["participant"],
                            nagq=nagq if n_clusters > 1 else 1)
    mu, se = -float(fit.thresholds[0]), float(fit.se[0])
    z = mu / se if se > 0 else np.nan
    zq = stats.norm.ppf(0.5 + confidence / 2)
    expit = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    return {**base, "log_odds": mu, "se": se, "z": z, "p_value": float(2 * stats.norm.sf(abs(z))),
            "proportion_median_participant": float(expit(mu)),
            "ci_low": float(expit(mu - zq * se)), "ci_high": float(expit(mu + zq * se)),
            "participant_sd": float(fit.sd[0]) if len(fit.sd) else 0.0,
            "converged": bool(fit.convergence["converged"]),
            "convergence": convergence_text(fit)}


def consistency_mixed(answers: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Per version and pooled: the logistic mixed model of data-dependent vs Euclidean
    choices (undecided excluded) with participant as the cluster."""
    from study.analysis.consistency import POOLED_VERSION

    con = answers[answers["kind"] == "consistency"]
    src = con["choice_source"].astype(str).to_numpy()
    keep = src != "undecided"
    ver = con["version"].to_numpy()[keep]
    pid = con["participant_id"].astype(str).to_numpy()[keep]
    dd = src[keep] == "data_dependent"
    rows = []
    for v in sorted(set(ver.tolist())) + [None]:
        sel = np.ones(len(dd), dtype=bool) if v is None else ver == v
        rows.append({"version": POOLED_VERSION if v is None else str(v),
                     **glmm_proportion(dd[sel], pid[sel], confidence=confidence)})
    out = pd.DataFrame(rows)
    out["test"] = f"logistic mixed model, participant random intercept, AGQ({CONSISTENCY_NAGQ})"
    return out
