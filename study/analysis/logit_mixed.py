"""Logistic mixed model with crossed participant and item random intercepts, any fixed
design and an offset, as tidy tables.

    logit P(y_i = 1) = offset_i + x_i'beta + b_participant(i) + b_item(i),
    b_participant ~ N(0, s_p^2), b_item ~ N(0, s_i^2) independently.

Fitted by the Laplace approximation, as R's `lme4::glmer(..., family = binomial)` does by
default (nAGQ = 1): the binary case of the CLMM engine in clmm_re.py with its threshold
held at 0 (P(y = 1) = expit(eta - theta), theta = 0), so the intercept is an ordinary
column of the design. Standard errors come from the inverse Hessian of the Laplace
log-likelihood in all parameters (fixed effects and random-effect SDs), as glmer's
default `vcov` (use.hessian = TRUE) does.

The offset carries a known part of the linear predictor. For the HIVE distinction task
(pick the model's class among k) the offset logit(1/k) (`chance_offset`, k may vary per
answer) makes the intercept the log odds of a correct pick *above chance*: intercept 0
is guessing.

Tests: `lr_test` (likelihood ratio of a term, refitting without its columns: chi-square
with as many df as columns), `method_contrasts` (Wald z of target - baseline for each
baseline, with Holm's correction over the baselines), `logit_mixed_primary` (both, and
the coefficient, variance and model tables, in one call).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.clmm_re import ReFit, fit_clmm_re, make_term
from study.analysis.clmm_re import convergence_text as re_text
from study.analysis.corrections import holm
from study.analysis.design import INTERCEPT, Design, design_matrix, require_columns
from study.errors import StudyError

ALTERNATIVES = ("two-sided", "greater", "less")


def chance_offset(k) -> np.ndarray:
    """logit(1/k) per answer: the offset under which intercept 0 means guessing among k."""
    k = np.asarray(k, dtype=np.float64)
    if (k < 2).any() or not np.isfinite(k).all():
        raise StudyError(f"number of choices k must be >= 2, got {np.min(k)}")
    return -np.log(k - 1.0)


def p_value(z, alternative: str):
    """Normal p-value of z for the alternative (two-sided, greater, less)."""
    if alternative not in ALTERNATIVES:
        raise StudyError(f"alternative {alternative!r}: expected one of {', '.join(ALTERNATIVES)}")
    z = np.asarray(z, dtype=np.float64)
    if alternative == "greater":
        return stats.norm.sf(z)
    if alternative == "less":
        return stats.norm.cdf(z)
    return 2 * stats.norm.sf(np.abs(z))


def binary_response(data: pd.DataFrame, response: str) -> np.ndarray:
    """0/1 outcomes of `response` (bool or 0/1); one error line otherwise or when every
    answer is the same (the model cannot be fitted)."""
    require_columns(data, [response])
    if len(data) == 0:
        raise StudyError("no answers to fit")
    v = data[response]
    try:
        y = v.astype(np.float64).to_numpy()
    except (TypeError, ValueError):
        raise StudyError(f"column {response!r} must be 0/1 or true/false, got "
                         f"{v.iloc[0]!r}") from None
    bad = ~np.isin(y, (0.0, 1.0))
    if bad.any():
        raise StudyError(f"column {response!r} must be 0/1 or true/false, got "
                         f"{v.to_numpy()[bad][0]} (row {int(np.flatnonzero(bad)[0])})")
    if (y == y[0]).all():
        raise StudyError(f"cannot fit the logistic model: every answer in {response!r} is "
                         f"{int(y[0])}")
    return y.astype(np.int64)


@dataclass
class LogitMixedFit:
    """A fitted logistic mixed model: the engine's fit, its design and the pieces
    needed to refit reduced models."""

    fit: ReFit
    design: Design
    y: np.ndarray
    offset: np.ndarray
    terms: list           # clmm_re.RandomTerm
    response: str
    formula: str

    @property
    def beta(self) -> np.ndarray:
        return self.fit.beta

    @property
    def vcov(self) -> np.ndarray:
        return self.fit.vcov

    @property
    def loglik(self) -> float:
        return self.fit.loglik

    def contrast(self, weights) -> tuple[float, float]:
        return self.fit.contrast(np.asarray(weights, dtype=np.float64))

    def coefficients(self, confidence: float = 0.95, alternative: str = "two-sided"
                     ) -> pd.DataFrame:
        """One row per fixed effect: estimate, se, z, p, Wald CI (two-sided, at
        `confidence`), alternative."""
        zq = stats.norm.ppf(0.5 + confidence / 2)
        se = self.fit.se
        est = self.beta
        with np.errstate(invalid="ignore", divide="ignore"):
            z = est / se
        return pd.DataFrame({"term": self.design.names, "estimate": est, "se": se, "z": z,
                             "p_value": p_value(z, alternative), "ci_low": est - zq * se,
                             "ci_high": est + zq * se, "ci_level": confidence,
                             "alternative": alternative})

    def variance(self) -> pd.DataFrame:
        return self.fit.variance_components()

    def model(self) -> pd.DataFrame:
        """One row: formula, answers, levels, logLik, AIC, convergence and its line."""
        c = self.fit.convergence
        n_par = len(self.beta) + sum(len(t["sd"]) for t in self.fit.terms)
        row = {"model": self.formula, "family": "binomial logit", "method": "Laplace",
               "answers": int(self.fit.n_obs),
               **{f"levels_{t['factor']}": int(t["levels"]) for t in self.fit.terms},
               "loglik": self.loglik, "aic": -2 * self.loglik + 2 * n_par,
               "converged": bool(c["converged"]), "singular": bool(c["singular"]),
               "max_abs_gradient": c["max_abs_gradient"], "convergence": re_text(self.fit)}
        return pd.DataFrame([row])

    def refit(self, drop: list[int], *, hessian: bool = True) -> ReFit:
        """The model without the given design columns (warm-started at this fit; with
        `hessian` the fit is polished by Newton steps, as the likelihood ratio needs)."""
        X = np.delete(self.design.X, drop, axis=1)
        start = np.delete(np.asarray(self.fit.nat), drop)
        kw = {"n_categories": 2, "theta_fixed": np.zeros(1), "offset": self.offset,
              "hessian": hessian}
        warm = fit_clmm_re(self.y, X, self.terms, start=start, **kw)
        # a variance at 0 is a stationary point of the Laplace objective: a warm start
        # that steps onto it stays there, so a newly singular fit is refitted from the
        # default start and the better one kept
        if not warm.singular or self.fit.singular:
            return warm
        cold = fit_clmm_re(self.y, X, self.terms, **kw)
        return cold if cold.loglik > warm.loglik else warm


def random_terms(data: pd.DataFrame, participant: str | None, item: str | None) -> list:
    """Crossed random intercepts for the grouping columns that have >= 2 levels."""
    terms = []
    for name in (participant, item):
        if name is None:
            continue
        require_columns(data, [name])
        labels = data[name].astype(str).to_numpy()
        if len(np.unique(labels)) >= 2:
            terms.append(make_term(name, labels))
    return terms


def _offset(data: pd.DataFrame, offset) -> np.ndarray:
    if offset is None:
        return np.zeros(len(data))
    if isinstance(offset, str):
        require_columns(data, [offset])
        off = data[offset].to_numpy().astype(np.float64)
    else:
        off = np.asarray(offset, dtype=np.float64).reshape(-1)
        if off.size == 1:
            off = np.full(len(data), float(off[0]))
    if len(off) != len(data) or not np.isfinite(off).all():
        raise StudyError("offset: needs one finite value per answer")
    return off


def _given_design(X: pd.DataFrame, n: int) -> Design:
    if len(X) != n or X.shape[1] == 0:
        raise StudyError(f"design matrix: needs {n} rows and at least one column, got "
                         f"{X.shape[0]} x {X.shape[1]}")
    try:
        M = X.to_numpy(dtype=np.float64)
    except (TypeError, ValueError):
        raise StudyError("design matrix: every column must be numeric") from None
    if not np.isfinite(M).all():
        raise StudyError("design matrix: missing or non-finite values")
    names = [str(c) for c in X.columns]
    if np.linalg.matrix_rank(M) < M.shape[1]:
        raise StudyError(f"design matrix: the columns ({', '.join(names)}) are not all "
                         "identifiable (linearly dependent)")
    return Design(M, names, {c: [j] for j, c in enumerate(names)}, {})


def r_formula(response: str, design: Design, terms: list, offset: bool) -> str:
    fixed = " + ".join(["1" if INTERCEPT in design.term_columns else "0"]
                       + [t for t in design.term_columns if t != INTERCEPT])
    ran = "".join(f" + (1 | {t.factor})" for t in terms)
    return f"{response} ~ {fixed}{ran}" + (" + offset(offset)" if offset else "")


def fit_logit_mixed(data: pd.DataFrame, response: str, fixed=("method",), *,
                    participant: str | None = "participant", item: str | None = "item",
                    offset=None, levels: dict | None = None) -> LogitMixedFit:
    """Fit logit P(response = 1) = offset + fixed design + participant + item intercepts.

    `fixed`: terms for design.design_matrix (an intercept is always included), or a
    DataFrame that is the design itself (numeric columns named as they are reported, one
    row per answer; no intercept is added: give a "(Intercept)" column of ones);
    `levels`: level order per categorical column, reference first (e.g. the target
    method); `offset`: None, a number, a column name or one value per row (see
    `chance_offset`). `item=None` (or one item) leaves out the item intercept."""
    y = binary_response(data, response)
    if isinstance(fixed, pd.DataFrame):
        design = _given_design(fixed, len(data))
    else:
        design = design_matrix(data, fixed, levels=levels, intercept=True)
    off = _offset(data, offset)
    terms = random_terms(data, participant, item)
    fit = fit_clmm_re(y, design.X, terms, n_categories=2, theta_fixed=np.zeros(1),
                      offset=off, beta_names=design.names)
    formula = r_formula(response, design, terms, offset is not None)
    return LogitMixedFit(fit, design, y, off, terms, response, formula)


def lr_test(model: LogitMixedFit, term: str) -> pd.DataFrame:
    """Likelihood-ratio test of one term (all its design columns at 0): one row with
    term, df, statistic (chi-square), p_value, both log-likelihoods and whether the
    reduced model converged."""
    cols = model.design.columns_of(term)
    red = model.refit(cols)
    lr = max(0.0, 2 * (model.loglik - red.loglik))
    return pd.DataFrame([{"term": term, "test": "likelihood ratio", "df": len(cols),
                          "statistic": lr, "p_value": float(stats.chi2.sf(lr, len(cols))),
                          "loglik_full": model.loglik, "loglik_reduced": red.loglik,
                          "reduced_converged": bool(red.convergence["converged"])}])


def method_contrasts(model: LogitMixedFit, factor: str = "method", *,
                     alternative: str = "greater", confidence: float = 0.95,
                     alpha: float = 0.05) -> pd.DataFrame:
    """Wald contrasts target - baseline (log odds ratio) for each non-reference level of
    `factor` (the reference level is the target), with Holm-adjusted p-values."""
    lv = model.design.levels.get(factor)
    if not lv:
        raise StudyError(f"{factor!r} is not a categorical term of the model")
    zq = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for b in lv[1:]:
        j = model.design.names.index(f"{factor}[{b}]")
        w = np.zeros(len(model.beta))
        w[j] = -1.0
        est, se = model.contrast(w)
        z = est / se if se > 0 else np.nan
        rows.append({"target": lv[0], "baseline": b, "estimate": est, "se": se, "z": z,
                     "p_value": float(p_value(z, alternative)), "ci_low": est - zq * se,
                     "ci_high": est + zq * se, "odds_ratio": float(np.exp(est)),
                     "or_ci_low": float(np.exp(est - zq * se)),
                     "or_ci_high": float(np.exp(est + zq * se)), "ci_level": confidence,
                     "alternative": alternative})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    out["test"] = "Wald z, Holm over baselines"
    return out


def level_estimates(model: LogitMixedFit, factor: str = "method", *,
                    alternative: str = "greater", confidence: float = 0.95) -> pd.DataFrame:
    """Per level of `factor`, the linear predictor at that level with every other column
    at 0 (intercept + level effect): with a chance offset, each method's log odds of a
    correct pick above chance, its Wald test against 0 and the probability at the median
    participant and item (at the offset's mean k, when it is the chance offset)."""
    lv = model.design.levels.get(factor)
    if not lv:
        raise StudyError(f"{factor!r} is not a categorical term of the model")
    zq = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for level in lv:
        w = np.zeros(len(model.beta))
        w[model.design.names.index(INTERCEPT)] = 1.0
        if level != lv[0]:
            w[model.design.names.index(f"{factor}[{level}]")] = 1.0
        est, se = model.contrast(w)
        z = est / se if se > 0 else np.nan
        rows.append({factor: level, "estimate": est, "se": se, "z": z,
                     "p_value": float(p_value(z, alternative)), "ci_low": est - zq * se,
                     "ci_high": est + zq * se, "ci_level": confidence,
                     "alternative": alternative})
    return pd.DataFrame(rows)


def logit_mixed_primary(data: pd.DataFrame, response: str, *, target: str,
                        baselines: list[str], method: str = "method", covariates=(),
                        participant: str = "participant", item: str | None = "item",
                        offset=None, alternative: str = "greater", confidence: float = 0.95,
                        alpha: float = 0.05) -> dict[str, pd.DataFrame]:
    """The logistic mixed-model primary: response ~ method (+ covariates) with crossed
    participant and item intercepts (and an offset), target as the reference level.
    Returns tables: contrasts (target - each baseline, Wald, Holm), lrt (method as a
    whole), coefficients, levels (per-method log odds, above chance with a chance
    offset), variance, model (one row: logLik, convergence)."""
    require_columns(data, [method])
    methods = [target] + list(baselines)
    if len(set(methods)) < 2:
        raise StudyError("the method comparison needs a target and at least one baseline")
    sub = data[data[method].astype(str).isin(methods)]
    present = set(sub[method].astype(str))
    missing = [m for m in methods if m not in present]
    if missing:
        raise StudyError(f"no answers for method {missing[0]!r} in column {method!r}")
    keep = data[method].astype(str).isin(methods).to_numpy()
    off = offset if offset is None or isinstance(offset, str) else _offset(data, offset)[keep]
    model = fit_logit_mixed(sub, response, [method, *covariates], participant=participant,
                            item=item, offset=off, levels={method: methods})
    return {"contrasts": method_contrasts(model, method, alternative=alternative,
                                          confidence=confidence, alpha=alpha),
            "lrt": lr_test(model, method),
            "coefficients": model.coefficients(confidence),
            "levels": level_estimates(model, method, alternative=alternative,
                                      confidence=confidence),
            "variance": model.variance(), "model": model.model(), "fit": model}
