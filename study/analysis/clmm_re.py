"""Cumulative link mixed models with vector-valued random effects (random slopes).

The model (logit link, flexible thresholds, as R's `ordinal::clmm`):

    logit P(Y_i <= j) = theta_j - x_i'beta - Σ_t z_ti' b_t,g_t(i),
    b_t,l ~ N(0, Σ_t) independently over terms t and levels l,  Σ_t = L_t L_t'

Each random term t has a grouping factor (participant, item), a design z_t (an
intercept column, method dummies: R's `(1 + method | participant)`) and a covariance
that is either full (correlated: L_t lower triangular) or diagonal (uncorrelated:
R's `(1 | participant) + (0 + m2 | participant) + ...`). A scalar intercept term is
q_t = 1. L_t holds the parameters the optimiser sees, with a diagonal bounded at 0
(the parametrisation of lme4 and of clmm's `ST`), so a singular fit stops on the
boundary instead of drifting.

How it is fitted (the same Laplace approximation as `clmm.py`, written for any design):
- b = Λ u with u ~ N(0, I); A = Z Λ is sparse with one entry per answer and random
  coefficient; the inner Hessian H = I + A'WA is dense (built by `bincount` over the
  pairs of each answer's nonzeros) and factorised by Cholesky. Dense is fine up to a
  few thousand random effects (80 participants x 3 methods + 125 items = 365).
- The Laplace objective's gradient is exact: the envelope term, ½ tr(H^-1 dH) from
  the few entries of H^-1 each answer touches, and the implicit derivative of the mode.
- L-BFGS-B, then Newton steps with a finite-difference Hessian of the exact gradient,
  which also gives the standard errors of thresholds and fixed effects.

Thresholds can be held fixed (`theta_fixed`): a binary model with theta fixed at 0
is the null model "log odds 0" of a logistic mixed model (two categories: P(Y = 1) =
expit(x'beta + z'b - theta), i.e. lme4::glmer's intercept is -theta).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats
from scipy.special import expit

from study.analysis.clmm import _fd_hessian, _link_terms, _one_blas_thread, fit_line
from study.errors import StudyError

MAX_RANDOM = 4000        # largest number of random effects kept in the dense inner Hessian
SINGULAR_TOL = 1e-4      # a Cholesky diagonal below this (relative to the largest) = singular
INNER_TOL = 1e-10


@dataclass
class RandomTerm:
    """One random term: grouping factor codes, design columns and covariance shape."""

    factor: str                 # "participant"
    groups: np.ndarray          # codes 0..nlev-1 per answer
    nlev: int
    Z: np.ndarray               # (n, q) design of the random coefficients
    columns: list[str]          # names of the q coefficients ("(Intercept)", "method[b]")
    correlated: bool = True

    @property
    def q(self) -> int:
        return self.Z.shape[1]

    def param_index(self) -> list[tuple[int, int]]:
        """(row, col) of the free entries of L: lower triangle or the diagonal."""
        q = self.q
        if self.correlated:
            return [(j, k) for k in range(q) for j in range(k, q)]
        return [(j, j) for j in range(q)]


def make_term(factor: str, labels, Z=None, columns=None, *, correlated=True) -> RandomTerm:
    labels = np.asarray(labels)
    uniq, codes = np.unique(labels, return_inverse=True)
    n = len(labels)
    Z = np.ones((n, 1)) if Z is None else np.asarray(Z, dtype=np.float64).reshape(n, -1)
    return RandomTerm(factor, codes.astype(np.int64), len(uniq), Z,
                      list(columns or ["(Intercept)"]), correlated)


class _Model:
    def __init__(self, y, X, terms: list[RandomTerm], K: int, theta_fixed=None, offset=None):
        self.y = np.asarray(y, dtype=np.int64)
        self.n = len(self.y)
        self.offset = np.zeros(self.n) if offset is None else np.asarray(offset, float)
        self.X = np.asarray(X, dtype=np.float64).reshape(self.n, -1)
        self.p = self.X.shape[1]
        self.K, self.terms = K, terms
        self.theta_fixed = None if theta_fixed is None else np.asarray(theta_fixed, float)
        self.n_theta = 0 if theta_fixed is not None else K - 1
        self.offsets = np.cumsum([0] + [t.nlev * t.q for t in terms])
        self.Q = int(self.offsets[-1])
        if self.Q > MAX_RANDOM:
            raise StudyError(f"{self.Q} random effects: more than the {MAX_RANDOM} the dense "
                             "solver of the random-slope model holds")
        # column of each answer's random coefficients (terms in order, k ascending)
        cols = [self.offsets[i] + t.groups[:, None] * t.q + np.arange(t.q)[None, :]
                for i, t in enumerate(terms)]
        self.idx = np.concatenate(cols, axis=1) if cols else np.zeros((self.n, 0), np.int64)
        self.m = self.idx.shape[1]
        self.pair_index = (self.idx[:, :, None] * self.Q + self.idx[:, None, :]).ravel()
        self.cov_index = [(ti, j, k) for ti, t in enumerate(terms) for (j, k) in t.param_index()]
        self.n_cov = len(self.cov_index)
        self.up_ok = self.y <= K - 2
        self.lo_ok = self.y >= 1
        self.u_start = np.zeros(self.Q)
        self.n_inner = self.inner_failures = 0

    # -- parameters -----------------------------------------------------------
    def split(self, nat):
        """natural parameters (theta, beta, cov entries) -> theta, beta, [L_t]."""
        k0 = self.n_theta
        theta = self.theta_fixed if self.theta_fixed is not None else nat[:k0]
        beta = nat[k0:k0 + self.p]
        Ls = [np.zeros((t.q, t.q)) for t in self.terms]
        for v, (ti, j, k) in zip(nat[k0 + self.p:], self.cov_index):
            Ls[ti][j, k] = v
        return theta, beta, Ls

    def vals(self, Ls) -> np.ndarray:
        """(n, m) nonzeros of A = Z Λ: row i, coefficient k of term t: Σ_j z_ij L_t[j, k]."""
        if not self.terms:
            return np.zeros((self.n, 0))
        return np.concatenate([t.Z @ L for t, L in zip(self.terms, Ls)], axis=1)

    def cuts(self, theta, eta):
        ext = np.concatenate([[-np.inf], theta, [np.inf]])
        return ext[self.y + 1] - eta, ext[self.y] - eta

    # -- inner problem --------------------------------------------------------
    def hessian(self, vals, w):
        Hd = np.bincount(self.pair_index, (w[:, None, None] * vals[:, :, None]
                                           * vals[:, None, :]).ravel(), self.Q * self.Q)
        H = Hd.reshape(self.Q, self.Q)
        H[np.diag_indices(self.Q)] += 1.0
        return linalg.cho_factor(H, lower=True, check_finite=False)

    def mode(self, theta, beta, vals, u0, tol=INNER_TOL, max_iter=100):
        fix = self.X @ beta + self.offset

        def evaluate(u):
            eta = fix + (vals * u[self.idx]).sum(axis=1)
            t = _link_terms(*self.cuts(theta, eta), 2)
            return -t["logpi"].sum() + 0.5 * float(u @ u), t

        u = u0.copy()
        f, t = evaluate(u)
        converged = self.Q == 0
        for _ in range(max_iter):
            if self.Q == 0 or not np.isfinite(f):
                break
            grad = u - np.bincount(self.idx.ravel(), (vals * t["l_eta"][:, None]).ravel(),
                                   self.Q)
            if np.abs(grad).max() < tol:
                converged = True
                break
            ch = self.hessian(vals, t["w"])
            step = linalg.cho_solve(ch, grad, check_finite=False)
            factor = 1.0
            for _half in range(60):
                trial = u - factor * step
                f_try, t_try = evaluate(trial)
                if f_try <= f:
                    break
                factor /= 2
            else:
                break
            if f - f_try < 1e-15 * max(1.0, abs(f)) and factor < 1:
                u, f, t = trial, f_try, t_try
                converged = np.abs(grad).max() < 1e-6
                break
            u, f, t = trial, f_try, t_try
        self.n_inner += 1
        if not converged:
            self.inner_failures += 1
        return u, t, f, converged

    # -- Laplace objective and gradient ---------------------------------------
    def laplace(self, nat, *, gradient=True):
        theta, beta, Ls = self.split(nat)
        vals = self.vals(Ls)
        u, t, f, _ok = self.mode(theta, beta, vals, self.u_start)
        if not np.isfinite(f):
            return np.inf, None
        self.u_start = u
        if self.Q:
            ch = self.hessian(vals, t["w"])
            logdet = 2 * np.log(np.diag(ch[0])).sum()
        else:
            logdet = 0.0
        nll = f + 0.5 * logdet
        if not gradient:
            return nll, None
        eta = self.X @ beta + self.offset + (vals * u[self.idx]).sum(axis=1)
        t = _link_terms(*self.cuts(theta, eta), 3)
        if self.Q:
            Hinv = linalg.cho_solve(ch, np.eye(self.Q), check_finite=False)
            # G[i, m'] = (A H^-1)[i, idx[i, m']], q_i = a_i H^-1 a_i'
            Hsub = Hinv[self.idx[:, :, None], self.idx[:, None, :]]
            G = np.einsum("im,imk->ik", vals, Hsub)
            q = (G * vals).sum(axis=1)
            r = 0.5 * np.bincount(self.idx.ravel(), (vals * (q * t["w_eta"])[:, None]).ravel(),
                                  self.Q)
            s = Hinv @ r
            e = (vals * s[self.idx]).sum(axis=1)
        else:
            q = e = np.zeros(self.n)
        cb = -t["l_eta"] + 0.5 * q * t["w_eta"] - e * t["w"]
        parts = []
        if self.n_theta:
            cu = -t["l1"] + 0.5 * q * t["w1"] + e * t["le1"]
            cl = -t["l2"] + 0.5 * q * t["w2"] + e * t["le2"]
            K1 = self.K - 1
            parts.append(np.bincount(self.y[self.up_ok], cu[self.up_ok], K1)
                         + np.bincount(self.y[self.lo_ok] - 1, cl[self.lo_ok], K1))
        parts.append(self.X.T @ cb)
        g_cov = np.zeros(self.n_cov)
        col0 = np.cumsum([0] + [tt.q for tt in self.terms])
        for c, (ti, j, k) in enumerate(self.cov_index):
            term = self.terms[ti]
            zj = term.Z[:, j]
            pos = self.idx[:, col0[ti] + k]
            g_cov[c] = (zj * (u[pos] * cb + t["w"] * G[:, col0[ti] + k]
                              + s[pos] * t["l_eta"])).sum()
        parts.append(g_cov)
        return nll, np.concatenate(parts)


@dataclass
class ReFit:
    """A fitted CLMM with vector random effects, in R's parametrisation."""

    thresholds: np.ndarray
    threshold_names: list[str]
    beta: np.ndarray
    beta_names: list[str]
    terms: list[dict]                # factor, columns, levels, sd, corr, chol, correlated
    loglik: float
    vcov: np.ndarray                 # (theta, beta) block only; NaN where not estimable
    n_obs: int
    method: str
    convergence: dict = field(default_factory=dict)
    nat: np.ndarray | None = None    # the optimiser's parameters at the estimate

    @property
    def se(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.vcov))

    @property
    def singular(self) -> bool:
        return bool(self.convergence.get("singular", False))

    def coefficients(self, confidence: float = 0.95) -> pd.DataFrame:
        """Thresholds (estimate and SE only: a test against 0 means nothing for a cut
        point) and fixed effects (estimate, SE, Wald z, p, Wald CI)."""
        K1, p = len(self.thresholds), len(self.beta)
        est = np.concatenate([self.thresholds, self.beta])
        se = self.se if len(self.se) == K1 + p else np.concatenate(
            [np.full(K1, np.nan), self.se])
        zq = stats.norm.ppf(0.5 + confidence / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = est / se
        z[:K1] = np.nan
        return pd.DataFrame({
            "term": list(self.threshold_names) + list(self.beta_names),
            "kind": ["threshold"] * K1 + ["fixed effect"] * p,
            "estimate": est, "se": se, "z": z, "p_value": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": est - zq * se, "ci_high": est + zq * se})

    def variance_components(self) -> pd.DataFrame:
        """One row per random coefficient: factor, coefficient, levels, variance, SD, and
        its correlation with each earlier coefficient of the same term."""
        rows = []
        for t in self.terms:
            for a, col in enumerate(t["columns"]):
                corr = {t["columns"][b]: float(t["corr"][a, b]) for b in range(a)} \
                    if t["correlated"] else {}
                rows.append({"factor": t["factor"], "coefficient": col, "levels": t["levels"],
                             "variance": float(t["sd"][a] ** 2), "sd": float(t["sd"][a]),
                             "correlations": ", ".join(f"{k}: {v:.3f}" for k, v in corr.items())})
        return pd.DataFrame(rows, columns=["factor", "coefficient", "levels", "variance", "sd",
                                           "correlations"])

    def contrast(self, weights: np.ndarray) -> tuple[float, float]:
        """Estimate and SE of weights·beta."""
        K1, p = len(self.thresholds), len(self.beta)
        w = np.asarray(weights, dtype=np.float64)
        k0 = self.vcov.shape[0] - p
        V = self.vcov[k0:k0 + p, k0:k0 + p]
        del K1
        return float(w @ self.beta), float(np.sqrt(max(w @ V @ w, 0.0)))


def _start(model: _Model, sd0: float) -> np.ndarray:
    counts = np.bincount(model.y, minlength=model.K).astype(np.float64)
    cum = np.cumsum(counts)[:-1] / counts.sum()
    theta = np.log(cum / (1 - cum)) if model.n_theta else np.zeros(0)
    cov = [sd0 if j == k else 0.0 for (_ti, j, k) in model.cov_index]
    return np.concatenate([theta, np.zeros(model.p), cov])


def _to_opt(model: _Model, nat):
    """natural -> optimiser coordinates: first cut and log increments of the cuts."""
    k0 = model.n_theta
    if k0 <= 1:
        return nat.copy()
    th = nat[:k0]
    return np.concatenate([th[:1], np.log(np.diff(th)), nat[k0:]])


def _from_opt(model: _Model, x):
    k0 = model.n_theta
    if k0 <= 1:
        return x.copy()
    th = np.cumsum(np.concatenate([x[:1], np.exp(x[1:k0])]))
    return np.concatenate([th, x[k0:]])


def _opt_grad(model: _Model, x, g):
    k0 = model.n_theta
    if k0 <= 1:
        return g
    out = g.copy()
    tail = np.cumsum(g[:k0][::-1])[::-1]
    out[0] = tail[0]
    out[1:k0] = tail[1:] * np.exp(x[1:k0])
    return out


def fit_clmm_re(*args, **kwargs) -> ReFit:
    """Fit the CLMM with vector random effects (see the module docstring)."""
    with _one_blas_thread():
        return _fit(*args, **kwargs)


def _fit(y, X, terms: list[RandomTerm], *, n_categories: int | None = None,
         beta_names=None, category_names=None, theta_fixed=None, offset=None,
         sd_start: float = 0.5, start: np.ndarray | None = None, hessian: bool = True,
         max_iter: int = 1000) -> ReFit:
    """`start`: natural parameters to start from (a nearby fit: profiles, reduced models).
    `hessian=False` skips the Newton polish and the Hessian (no standard errors): for
    refits whose log-likelihood alone is needed."""
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    K = int(n_categories if n_categories is not None else y.max() + 1)
    X = np.zeros((n, 0)) if X is None else np.asarray(X, dtype=np.float64).reshape(n, -1)
    if n == 0:
        raise StudyError("no answers to fit")
    if K < 2 or y.min() < 0 or y.max() >= K:
        raise StudyError(f"categories must be 0..{K - 1}")
    used = np.bincount(y, minlength=K)
    if (used == 0).any():
        raise StudyError(f"category {int(np.flatnonzero(used == 0)[0])} never occurs: "
                         "its thresholds are not identified")
    model = _Model(y, X, terms, K, theta_fixed, offset)
    k0, p = model.n_theta, model.p
    nat0 = _start(model, sd_start) if start is None else np.asarray(start, float).copy()
    if start is not None:     # keep the start feasible: ordered cuts, diagonal >= 0
        k_diag = [k0 + p + c for c, (_ti, j, k) in enumerate(model.cov_index) if j == k]
        nat0[k_diag] = np.maximum(np.abs(nat0[k_diag]), 1e-3)
    diag_pos = [k0 + p + c for c, (_ti, j, k) in enumerate(model.cov_index) if j == k]
    bounds: list[tuple[float | None, float | None]] = [(None, None)] * len(nat0)
    for i in diag_pos:
        bounds[i] = (0.0, None)

    def fun(x):
        v, g = model.laplace(_from_opt(model, x))
        if g is None:
            return np.inf, np.zeros_like(x)
        return v, _opt_grad(model, x, g)

    res = optimize.minimize(fun, _to_opt(model, nat0), jac=True, method="L-BFGS-B",
                            bounds=bounds, options={"gtol": 1e-6, "ftol": 1e-13,
                                                    "maxiter": max_iter, "maxcor": 20})
    nat = _from_opt(model, res.x)

    def grad_nat(v):
        return model.laplace(v)[1]

    def free_mask(v):   # diagonal entries on the boundary stay there
        m = np.ones(len(v), dtype=bool)
        for i in diag_pos:
            m[i] = v[i] > 1e-6
        return m

    Hn = None
    nat_at_hessian = nat
    g = grad_nat(nat)
    newton = 0
    for _ in range(6 if hessian else 0):
        free = free_mask(nat)
        if g is None or not free.any() or np.abs(g[free]).max() < 1e-8:
            break
        if Hn is None:
            Hn = _fd_hessian(grad_nat, nat)
            nat_at_hessian = nat
        step = np.zeros_like(nat)
        try:
            step[free] = np.linalg.solve(Hn[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            break
        f_old = model.laplace(nat, gradient=False)[0]
        moved = False
        for factor in (1.0, 0.5, 0.25, 0.125):
            trial = nat - factor * step
            if k0 > 1 and (np.diff(trial[:k0]) <= 0).any():
                continue
            if any(trial[i] < 0 for i in diag_pos if free[i]):
                continue
            f_new, g_new = model.laplace(trial)
            if g_new is not None and f_new <= f_old + 1e-12 * max(1.0, abs(f_old)):
                moved = True
                break
        if not moved:
            break
        nat, g = trial, g_new
        newton += 1
    nll, g = model.laplace(nat)
    # the Hessian barely changes over the last Newton steps: computed again only if the
    # estimate moved (it gives the standard errors and the convergence check)
    if not hessian:
        Hn = np.eye(len(nat))
    elif Hn is None or np.abs(nat - nat_at_hessian).max() > 1e-4:
        Hn = _fd_hessian(grad_nat, nat)
    theta, beta, Ls = model.split(nat)
    free = free_mask(nat)
    # standard errors of thresholds and fixed effects from the Hessian of the free part
    fixed_n = k0 + p
    vcov = np.full((fixed_n, fixed_n), np.nan)
    pos_def = False
    cond = np.inf
    if not free.any():          # nothing left to estimate (all variances at zero)
        pos_def, cond = True, 1.0
    else:
        try:
            Hk = Hn[np.ix_(free, free)]
            eig = np.linalg.eigvalsh(Hk)
            pos_def = bool(eig.min() > 0)
            cond = float(eig.max() / eig.min()) if pos_def else np.inf
            vcov = np.linalg.inv(Hk)[:fixed_n, :fixed_n]   # the free set starts with them
        except np.linalg.LinAlgError:
            pass
    gk = g[free] if g is not None else None
    max_grad = float(np.abs(gk).max()) if gk is not None and len(gk) else 0.0
    decrement = np.nan
    if gk is not None and pos_def:
        decrement = float(0.5 * gk @ np.linalg.solve(Hn[np.ix_(free, free)], gk)) \
            if len(gk) else 0.0
    u, _t, _f, inner_ok = model.mode(theta, beta, model.vals(Ls), model.u_start)
    out_terms, singular_terms = [], []
    for t, L in zip(terms, Ls):
        S = L @ L.T
        sd = np.sqrt(np.diag(S))
        with np.errstate(invalid="ignore", divide="ignore"):
            corr = S / np.outer(sd, sd)
        d = np.abs(np.diag(L))
        sing = bool(d.min() < SINGULAR_TOL * max(1.0, d.max()))
        if sing:
            singular_terms.append(t.factor)
        out_terms.append({"factor": t.factor, "columns": list(t.columns), "levels": t.nlev,
                          "sd": sd, "corr": corr, "chol": L, "correlated": t.correlated,
                          "singular": sing})
    converged = bool(pos_def and inner_ok and decrement < 1e-6)
    if not hessian:
        vcov[:] = np.nan
        cond = np.nan
        converged = bool(inner_ok and max_grad < 1e-3)
    conv = {"converged": converged, "optimizer": "L-BFGS-B + Newton",
            "message": f"L-BFGS-B: {res.message} Newton steps after it: {newton}.",
            "iterations": int(res.nit), "newton_steps": newton, "max_abs_gradient": max_grad,
            "loglik_to_gain": decrement, "hessian_condition": cond,
            "hessian_positive_definite": pos_def, "inner_problems": model.n_inner,
            "inner_failures": model.inner_failures, "final_inner_converged": bool(inner_ok),
            "singular": bool(singular_terms), "singular_terms": singular_terms}
    cats = category_names or [str(k + 1) for k in range(K)]
    return ReFit(thresholds=np.asarray(theta, float),
                 threshold_names=[f"{cats[j]}|{cats[j + 1]}" for j in range(K - 1)],
                 beta=beta, beta_names=list(beta_names or [f"x{j}" for j in range(p)]),
                 terms=out_terms, loglik=-float(nll), vcov=vcov, n_obs=n,
                 method="Laplace" if terms else "none (clm)", convergence=conv, nat=nat)


def convergence_text(fit: ReFit) -> str:
    """One line a reader can check: converged or why not, and singular terms."""
    c = fit.convergence
    extra = ""
    if c["singular_terms"]:
        extra = f"; singular (a variance at zero or a correlation at ±1): {', '.join(c['singular_terms'])}"
    return fit_line(c, fit.method, extra)


def profile_interval(refit, full_loglik: float, estimate: float, se: float, *,
                     confidence: float = 0.95, max_width: float = 20.0) -> tuple[float, float]:
    """Profile-likelihood interval of one coefficient.

    `refit(b)` returns the maximised log-likelihood with the coefficient held at b.
    The bounds solve 2 (loglik - refit(b)) = chi2_1(confidence) on each side (Brent's
    method; brackets grown from the Wald interval). A bound that does not exist within
    `max_width` Wald SEs is returned as -inf / inf."""
    crit = stats.chi2.ppf(confidence, 1)

    def dev(b: float) -> float:
        return 2 * (full_loglik - refit(b)) - crit

    se = se if np.isfinite(se) and se > 0 else 1.0
    out = []
    for side in (-1.0, 1.0):
        step = 2.0 * se
        lo, hi = estimate, estimate + side * step
        while dev(hi) < 0:
            lo, hi = hi, hi + side * step
            step *= 2
            if abs(hi - estimate) > max_width * se:
                hi = np.nan
                break
        if not np.isfinite(hi):
            out.append(side * np.inf)
            continue
        out.append(float(optimize.brentq(dev, min(lo, hi), max(lo, hi), xtol=1e-6)))
    return out[0], out[1]


def simulate(fit: ReFit, X: np.ndarray, terms: list[RandomTerm], rng: np.random.Generator,
             offset: np.ndarray | None = None) -> np.ndarray:
    """Categories 0..K-1 drawn from a fitted model (new random effects from its
    covariances), for parametric bootstraps."""
    n = len(terms[0].groups) if terms else X.shape[0]
    eta = (X @ fit.beta if X.shape[1] else np.zeros(n)) + (0 if offset is None else offset)
    for t, info in zip(terms, fit.terms):
        L = np.asarray(info["chol"])
        b = rng.standard_normal((t.nlev, t.q)) @ L.T
        eta = eta + (t.Z * b[t.groups]).sum(axis=1)
    cum = expit(np.asarray(fit.thresholds)[None, :] - eta[:, None])
    return (rng.random(n)[:, None] > cum).sum(axis=1)
