"""Effects a reader understands, and the proportional-odds check of the saliency CLMM.

Predicted probabilities per method, from a fitted CLMM (clmm_re.ReFit or clmm.ClmmFit):
- conditional: a typical participant and item (every random effect at 0, its mode);
- population-averaged: integrated over the random effects, P(Y <= j | method) =
  E expit(theta_j - x'beta - s Z), Z ~ N(0, 1), s^2 = z' Sigma_participant z + sd_item^2
  for the method's random-effect design z (Gauss-Hermite quadrature, 40 nodes).
Fixed effects other than method (data set) are averaged over the answers' data sets.
Intervals: delta method on the logit of each probability, from the covariance of
thresholds and fixed effects (the random-effect variances are held at their estimates).

Proportional odds: the nominal-effects likelihood-ratio test of R's
`ordinal::nominal_test` on the fixed-effects model (clm): for each term, the model
whose thresholds vary with that term against the model where it only shifts them.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import optimize, stats
from scipy.special import expit, logit

GH_NODES = 40


def _fixed(fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    K1, p = len(fit.thresholds), len(fit.beta)
    V = np.asarray(fit.vcov)[:K1 + p, :K1 + p]
    return np.asarray(fit.thresholds), np.asarray(fit.beta), V


def _random_scale(fit, zp: np.ndarray) -> float:
    """SD of the random part of the linear predictor for participant design zp."""
    var = 0.0
    terms = getattr(fit, "terms", None)
    if terms is not None:                              # clmm_re.ReFit
        for t in terms:
            L = np.asarray(t["chol"])
            z = zp[:L.shape[0]] if t["factor"] == "participant" else np.ones(L.shape[0])
            var += float(z @ (L @ L.T) @ z)
    else:                                              # clmm.ClmmFit: intercepts only
        var = float(np.sum(np.asarray(fit.sd) ** 2))
    return float(np.sqrt(var))


def _cum_probs(theta, eta, scale, averaged: bool) -> np.ndarray:
    """P(Y <= j), j = 0..K-2, at linear predictor eta."""
    if not averaged or scale == 0:
        return expit(theta - eta)
    x, w = np.polynomial.hermite_e.hermegauss(GH_NODES)
    w = w / w.sum()
    return (expit(theta[:, None] - eta - scale * x[None, :]) * w[None, :]).sum(axis=1)


def predicted_probabilities(fit, design: dict, methods: list[str], *,
                            confidence: float = 0.95) -> pd.DataFrame:
    """One row per (method, kind, category): P(rating = k) and P(rating >= k) with
    delta-method CIs; `kind` is 'conditional' or 'population-averaged'."""
    theta, beta, V = _fixed(fit)
    K1, k = len(theta), design["n_method_columns"]
    cats = design["categories"]
    Xrest = design["X"][:, k:]
    rest_mean = Xrest.mean(axis=0) if Xrest.shape[1] else np.zeros(0)
    zq = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for mi, m in enumerate(methods):
        dummies = np.zeros(k)
        if mi > 0:
            dummies[mi - 1] = 1.0
        x = np.concatenate([dummies, rest_mean])
        zp = np.concatenate([[1.0], dummies])
        scale = _random_scale(fit, zp)
        for averaged in (False, True):
            def probs(par, x=x, scale=scale, averaged=averaged):
                th, be = par[:K1], par[K1:]
                cum = _cum_probs(th, float(x @ be), scale, averaged)
                cum = np.concatenate([[0.0], cum, [1.0]])
                p_eq = np.diff(cum)
                p_ge = 1.0 - cum[:-1]
                return np.concatenate([p_eq, p_ge[1:]])   # P(>= first) = 1: left out
            par = np.concatenate([theta, beta])
            val = probs(par)
            lg = logit(np.clip(val, 1e-12, 1 - 1e-12))
            J = np.empty((len(val), len(par)))
            for i in range(len(par)):
                h = 1e-6 * max(1.0, abs(par[i]))
                e = np.zeros(len(par))
                e[i] = h
                J[:, i] = (logit(np.clip(probs(par + e), 1e-12, 1 - 1e-12))
                           - logit(np.clip(probs(par - e), 1e-12, 1 - 1e-12))) / (2 * h)
            se = np.sqrt(np.maximum(np.einsum("ij,jk,ik->i", J, V, J), 0.0))
            kind = "population-averaged" if averaged else "conditional"
            K = K1 + 1
            for c in range(K):
                row = {"method": m, "kind": kind, "category": cats[c],
                       "p_equal": val[c], "p_equal_ci_low": expit(lg[c] - zq * se[c]),
                       "p_equal_ci_high": expit(lg[c] + zq * se[c])}
                if c == 0:
                    row.update(p_at_least=1.0, p_at_least_ci_low=1.0, p_at_least_ci_high=1.0)
                else:
                    i = K + c - 1
                    row.update(p_at_least=val[i], p_at_least_ci_low=expit(lg[i] - zq * se[i]),
                               p_at_least_ci_high=expit(lg[i] + zq * se[i]))
                rows.append(row)
    out = pd.DataFrame(rows)
    out["ci_level"] = confidence
    out["meaning"] = out["kind"].map({
        "conditional": "a typical participant rating a typical item (random effects at 0)",
        "population-averaged": "averaged over participants and items (random effects "
                               "integrated out)"})
    return out


# ---------------------------------------------------------------------------
# proportional odds: nominal effects test as ordinal::nominal_test on the clm
# ---------------------------------------------------------------------------

def _clm_loglik(y: np.ndarray, K: int, X_loc: np.ndarray, X_nom: np.ndarray, start=None):
    """Maximised log-likelihood of logit P(Y <= j) = theta_j + X_nom gamma_j - X_loc beta,
    and the estimate. `start`: a feasible starting point (ordered thresholds everywhere)."""
    n, p, q = len(y), X_loc.shape[1], X_nom.shape[1]
    K1 = K - 1
    N = np.column_stack([np.ones(n), X_nom])             # threshold design per answer

    def nll(par):
        T = par[:K1 * (q + 1)].reshape(q + 1, K1)          # rows: intercept, nominal columns
        beta = par[K1 * (q + 1):]
        cuts = N @ T - (X_loc @ beta)[:, None]             # (n, K1)
        ext = np.column_stack([np.full(n, -np.inf), cuts, np.full(n, np.inf)])
        hi, lo = ext[np.arange(n), y + 1], ext[np.arange(n), y]
        pr = expit(hi) - expit(lo)
        if (pr <= 0).any():
            return 1e100
        return -np.log(pr).sum()

    if start is None:
        counts = np.bincount(y, minlength=K).astype(float)
        cum = np.cumsum(counts)[:-1] / counts.sum()
        start = np.concatenate([np.log(cum / (1 - cum)), np.zeros(K1 * q + p)])
    x, f = np.asarray(start, float), nll(start)
    for _ in range(3):     # BFGS restarts: the infeasible region stops its line searches
        res = optimize.minimize(nll, x, method="BFGS", options={"gtol": 1e-9, "maxiter": 5000})
        if f - res.fun < 1e-10:
            x, f = res.x, min(f, float(res.fun))
            break
        x, f = res.x, float(res.fun)
    return -f, x


def nominal_test(design: dict, terms: dict[str, list[int]]) -> pd.DataFrame:
    """For each term (name -> its columns of design['X']), the likelihood-ratio test of
    nominal (category-specific) effects against proportional odds, on the clm without
    random effects, as ordinal::nominal_test."""
    y, X = design["y"], design["X"]
    K = len(design["categories"])
    K1 = K - 1
    base, est = _clm_loglik(y, K, X, np.zeros((len(y), 0)))
    theta, beta = est[:K1], est[K1:]
    rows = []
    for name, cols in terms.items():
        rest = np.delete(X, cols, axis=1)
        # start at the proportional-odds estimate: gamma_j = -beta for every cut
        gam = np.repeat(-beta[cols][:, None], K1, axis=1)
        start = np.concatenate([theta, gam.ravel(), np.delete(beta, cols)])
        ll, _ = _clm_loglik(y, K, rest, X[:, cols], start)
        df = (K - 2) * len(cols)
        lr = max(0.0, 2 * (ll - base))
        rows.append({"term": name, "df": df, "loglik_proportional": base,
                     "loglik_nominal": ll, "lr_chi2": lr,
                     "p_value": float(stats.chi2.sf(lr, df)) if df else np.nan})
    return pd.DataFrame(rows)


def nominal_advice(table: pd.DataFrame, alpha: float = 0.05) -> str:
    """One line: what the diagnostic says and what to do when it fails."""
    bad = table[table["p_value"] < alpha]["term"].tolist()
    if not bad:
        return ("Proportional odds: no evidence against it (nominal-effects likelihood-ratio "
                f"test, all p ≥ {alpha}); one odds ratio per contrast summarises the method effect.")
    return (f"Proportional odds doubtful for {', '.join(bad)} (nominal-effects test p < {alpha}): "
            "the odds ratio averages effects that differ across the scale; read the predicted "
            "probability of each rating per method, and consider a partial proportional-odds "
            "model (R: clm(..., nominal = ~ " + bad[0] + ")) as a sensitivity analysis.")
