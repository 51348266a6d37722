"""Cumulative link (mixed) models for ordinal ratings, on NumPy/SciPy.

The model (logit link, flexible thresholds, as R's `ordinal::clm`/`clmm`):

    logit P(Y_i <= j) = theta_j - x_i'beta - b_participant(i) - b_item(i),
    b_participant ~ N(0, sd_p^2),  b_item ~ N(0, sd_i^2)  (crossed, independent)

so a positive beta means higher ratings. No Python package fits this model, so it
is written here and tested against R's `ordinal::clmm` (tests/test_analysis_clmm.py).

How it is fitted:
- The random effects are integrated out by the Laplace approximation (any number of
  crossed factors, in practice participant and item), or by adaptive Gauss-Hermite
  quadrature when there is a single random factor (`nagq` > 1), as clmm does.
- Inner problem: for given parameters, the mode of the random effects (standardised,
  b = sd·u) by Newton's method with step halving. Its Hessian H = I + Λ Z'WZ Λ has
  diagonal blocks (each answer has one participant and one item), so the larger
  factor is eliminated and only a dense Schur complement of the smaller one is
  factorised: log det H = Σ log diag(H_bb) + log det S.
- Outer problem: L-BFGS-B on (theta as first cut + log increments, beta, log sd) with
  the exact gradient of the Laplace objective (implicit-function derivative of the
  mode, third derivatives of the link), then Newton steps with a finite-difference
  Hessian of that gradient, which also gives the standard errors.
- Convergence report: optimiser message, iterations, max |gradient|, condition
  number of the Hessian, whether every inner problem converged, variances at zero.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import linalg, optimize, stats
from scipy.special import expit

from study.errors import StudyError

GRAD_TOL = 1e-3          # L-BFGS-B stops here; Newton steps then polish to max |gradient| < 1e-9
INNER_TOL = 1e-10        # inner convergence: max |gradient| in the random effects
MAX_DENSE = 6000         # largest factor kept dense in the Schur complement
BOUNDARY_SD = 1e-3       # a random-effect SD below this is reported as a variance at zero
MIN_LOG_SD = float(np.log(1e-4))   # lower bound of log SD for the optimiser


# ---------------------------------------------------------------------------
# per-answer terms of log P(Y = y) = log(F(z1) - F(z2)), z1 = upper cut - eta
# ---------------------------------------------------------------------------

def _link_terms(z1: np.ndarray, z2: np.ndarray, order: int) -> dict[str, np.ndarray]:
    """log pi and derivatives of l = log(F(z1) - F(z2)) for the logistic F.

    order 2: logpi, l_eta (= dl/deta), w (= -d2l/deta2), l1, l2 (dl/dz1, dl/dz2).
    order 3 adds w1, w2 (dw/dz1, dw/dz2), w_eta, le1, le2 (d l_eta / dz1, dz2).
    Infinite cuts give F in {0, 1} and zero densities, so the formulas need no cases.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return _link_terms_raw(z1, z2, order)


def _link_terms_raw(z1, z2, order):
    F1, G1 = expit(z1), expit(-z1)
    F2, G2 = expit(z2), expit(-z2)
    pi = np.where(z2 > 0, G2 - G1, F1 - F2)   # no cancellation in either tail
    logpi = np.log(pi)
    f1, f2 = F1 * G1, F2 * G2
    d1, d2 = f1 * (G1 - F1), f2 * (G2 - F2)      # f' = f (1 - 2F)
    a, b = f1 / pi, f2 / pi
    ap, bp = d1 / pi, d2 / pi
    l11, l22, l12 = ap - a * a, -bp - b * b, a * b
    out = {"logpi": logpi, "l1": a, "l2": -b, "l_eta": b - a,
           "w": -(l11 + 2 * l12 + l22)}
    if order >= 3:
        app, bpp = f1 * (1 - 6 * f1) / pi, f2 * (1 - 6 * f2) / pi   # f'' = f (1 - 6f)
        l111 = app - 3 * a * ap + 2 * a ** 3
        l222 = -bpp - 3 * b * bp - 2 * b ** 3
        l112 = ap * b - 2 * a * a * b
        l122 = a * bp + 2 * a * b * b
        w1 = -(l111 + 2 * l112 + l122)
        w2 = -(l112 + 2 * l122 + l222)
        out.update(w1=w1, w2=w2, w_eta=-(w1 + w2), le1=-(l11 + l12), le2=-(l12 + l22))
    return out


# ---------------------------------------------------------------------------
# the Hessian of the inner problem: I + Λ Z'WZ Λ for 0, 1 or 2 crossed factors
# ---------------------------------------------------------------------------

class _InnerHessian:
    """H for the current weights w, with solve, log det and the pieces of H^-1 needed."""

    def __init__(self, model: _Model, w: np.ndarray, sd: np.ndarray):
        self.m, self.sd = model, sd
        R = model.R
        self.diag = [1.0 + sd[r] ** 2 * np.bincount(model.groups[r], w, model.nlev[r])
                     for r in range(R)]
        if R == 2:
            a, b = model.dense, 1 - model.dense
            na, nb = model.nlev[a], model.nlev[b]
            C = np.bincount(model.pair, w, na * nb).reshape(na, nb) * (sd[0] * sd[1])
            self.G = C / self.diag[b][None, :]                       # C A_b^-1
            S = np.diag(self.diag[a]) - self.G @ C.T
            self.chol = linalg.cho_factor(S, lower=True, check_finite=False)
            self.C = C

    def solve(self, rhs: list[np.ndarray]) -> list[np.ndarray]:
        m = self.m
        if m.R < 2:
            return [rhs[r] / self.diag[r] for r in range(m.R)]
        a, b = m.dense, 1 - m.dense
        xa = linalg.cho_solve(self.chol, rhs[a] - self.G @ rhs[b], check_finite=False)
        xb = (rhs[b] - self.C.T @ xa) / self.diag[b]
        out = [None, None]
        out[a], out[b] = xa, xb
        return out

    def logdet(self) -> float:
        m = self.m
        if m.R < 2:
            return float(sum(np.log(d).sum() for d in self.diag))
        b = 1 - m.dense
        return float(np.log(self.diag[b]).sum() + 2 * np.log(np.diag(self.chol[0])).sum())

    def inverse_pieces(self) -> tuple[list[np.ndarray], np.ndarray]:
        """(diagonal of H^-1 per factor, q_i = z_i Λ H^-1 Λ z_i' per answer)."""
        m, sd = self.m, self.sd
        if m.R == 0:
            return [], np.zeros(m.n)
        if m.R == 1:
            d = 1.0 / self.diag[0]
            return [d], sd[0] ** 2 * d[m.groups[0]]
        a, b = m.dense, 1 - m.dense
        na = m.nlev[a]
        Sinv = linalg.cho_solve(self.chol, np.eye(na), check_finite=False)
        SG = Sinv @ self.G                                          # S^-1 C A_b^-1
        diag = [None, None]
        diag[a] = np.diag(Sinv).copy()
        diag[b] = 1.0 / self.diag[b] + np.einsum("ij,ij->j", self.G, SG)
        ga, gb = m.groups[a], m.groups[b]
        off = -SG[ga, gb]                                          # [H^-1]_ab at answers
        q = sd[a] ** 2 * diag[a][ga] + sd[b] ** 2 * diag[b][gb] + 2 * sd[a] * sd[b] * off
        return diag, q


# ---------------------------------------------------------------------------
# the model: data, inner Newton, Laplace objective and its gradient, AGQ
# ---------------------------------------------------------------------------

class _Model:
    def __init__(self, y: np.ndarray, X: np.ndarray, groups: list[np.ndarray],
                 nlev: list[int], K: int):
        self.y = np.asarray(y, dtype=np.int64)
        self.X = np.asarray(X, dtype=np.float64).reshape(len(self.y), -1)
        self.groups = [np.asarray(g, dtype=np.int64) for g in groups]
        self.nlev = [int(n) for n in nlev]
        self.K, self.n, self.R, self.p = K, len(self.y), len(groups), self.X.shape[1]
        if self.R > 2:
            raise StudyError("the mixed model supports at most two crossed random factors")
        if self.R == 2:
            self.dense = int(np.argmin(self.nlev))
            if self.nlev[self.dense] > MAX_DENSE:
                raise StudyError(f"both random factors have more than {MAX_DENSE} levels; "
                                 "too large for the dense Schur complement")
            b = 1 - self.dense
            self.pair = self.groups[self.dense] * self.nlev[b] + self.groups[b]
        self.up_ok = self.y <= K - 2          # has a finite upper cut theta_y
        self.lo_ok = self.y >= 1              # has a finite lower cut theta_{y-1}
        self.n_inner = 0
        self.inner_failures = 0
        self.u_start = [np.zeros(n) for n in self.nlev]

    # -- parameters ----------------------------------------------------------
    def split(self, psi: np.ndarray):
        K1, p = self.K - 1, self.p
        alpha, beta, tau = psi[:K1], psi[K1:K1 + p], psi[K1 + p:]
        theta = np.cumsum(np.concatenate([alpha[:1], np.exp(alpha[1:])]))
        return theta, beta, np.exp(tau)

    def cuts(self, theta: np.ndarray, eta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        ext = np.concatenate([[-np.inf], theta, [np.inf]])
        return ext[self.y + 1] - eta, ext[self.y] - eta

    def random_part(self, u: list[np.ndarray], sd: np.ndarray) -> np.ndarray:
        b = np.zeros(self.n)
        for r in range(self.R):
            b += sd[r] * u[r][self.groups[r]]
        return b

    # -- inner problem -------------------------------------------------------
    def mode(self, theta, beta, sd, u0=None, *, tol: float = INNER_TOL, max_iter: int = 100):
        """Newton with step halving for the mode of the random effects.

        Returns (u, terms at the mode, inner Hessian, objective, converged)."""
        fix = self.X @ beta
        u = [x.copy() for x in (u0 if u0 is not None else self.u_start)]

        def evaluate(u):
            z1, z2 = self.cuts(theta, fix + self.random_part(u, sd))
            t = _link_terms(z1, z2, 2)
            f = -t["logpi"].sum() + 0.5 * sum(float(x @ x) for x in u)
            return f, t

        f, t = evaluate(u)
        converged = self.R == 0
        for _ in range(max_iter):
            if self.R == 0 or not np.isfinite(f):
                break
            grad = [u[r] - sd[r] * np.bincount(self.groups[r], t["l_eta"], self.nlev[r])
                    for r in range(self.R)]
            if max(np.abs(g).max() for g in grad) < tol:
                converged = True
                break
            H = _InnerHessian(self, t["w"], sd)
            step = H.solve(grad)
            factor = 1.0
            for _half in range(60):
                trial = [u[r] - factor * step[r] for r in range(self.R)]
                f_try, t_try = evaluate(trial)
                if f_try <= f:
                    break
                factor /= 2
            else:
                break
            if f - f_try < 1e-15 * max(1.0, abs(f)) and factor < 1:
                u, f, t = trial, f_try, t_try
                converged = max(np.abs(g).max() for g in grad) < 1e-6
                break
            u, f, t = trial, f_try, t_try
        self.n_inner += 1
        if not converged:
            self.inner_failures += 1
        H = _InnerHessian(self, t["w"], sd) if self.R else None
        return u, t, H, f, converged

    # -- Laplace objective and gradient ---------------------------------------
    def laplace(self, psi: np.ndarray, *, gradient: bool = True):
        """Negative Laplace log-likelihood and its gradient in theta-space
        (d/dtheta, d/dbeta, d/dlog sd)."""
        theta, beta, sd = self.split(psi)
        u, t, H, f, _ok = self.mode(theta, beta, sd, self.u_start)
        if not np.isfinite(f):
            return np.inf, None
        self.u_start = u
        nll = f + (0.5 * H.logdet() if H is not None else 0.0)
        if not gradient:
            return nll, None
        z1, z2 = self.cuts(theta, self.X @ beta + self.random_part(u, sd))
        t = _link_terms(z1, z2, 3)
        if self.R:
            diag, q = H.inverse_pieces()
            r = [0.5 * sd[k] * np.bincount(self.groups[k], q * t["w_eta"], self.nlev[k])
                 for k in range(self.R)]
            s = H.solve(r)
            e = self.random_part(s, sd)
        else:
            q = e = np.zeros(self.n)
        cu = -t["l1"] + 0.5 * q * t["w1"] + e * t["le1"]
        cl = -t["l2"] + 0.5 * q * t["w2"] + e * t["le2"]
        K1 = self.K - 1
        g_theta = (np.bincount(self.y[self.up_ok], cu[self.up_ok], K1)
                   + np.bincount(self.y[self.lo_ok] - 1, cl[self.lo_ok], K1))
        cb = -t["l_eta"] + 0.5 * q * t["w_eta"] - e * t["w"]
        g_beta = self.X.T @ cb
        g_tau = np.zeros(self.R)
        for k in range(self.R):
            uk = sd[k] * u[k][self.groups[k]]
            g_tau[k] = (uk @ cb + self.nlev[k] - diag[k].sum()
                        + sd[k] * (s[k][self.groups[k]] @ t["l_eta"]))
        return nll, np.concatenate([g_theta, g_beta, g_tau])

    def to_alpha_grad(self, psi: np.ndarray, g: np.ndarray) -> np.ndarray:
        """Gradient in theta-space -> in the optimiser's (first cut, log increments)."""
        K1 = self.K - 1
        out = g.copy()
        tail = np.cumsum(g[:K1][::-1])[::-1]
        out[0] = tail[0]
        out[1:K1] = tail[1:] * np.exp(psi[1:K1])
        return out

    # -- adaptive Gauss-Hermite quadrature (one random factor) ----------------
    def agq(self, psi: np.ndarray, nodes: np.ndarray, weights: np.ndarray) -> float:
        """Negative log-likelihood by adaptive Gauss-Hermite quadrature, nodes centred
        at each group's mode and scaled by sqrt(2 / H_gg), as clmm's nAGQ > 1."""
        theta, beta, sd = self.split(psi)
        u, _t, H, f, _ok = self.mode(theta, beta, sd, self.u_start)
        if not np.isfinite(f):
            return np.inf
        self.u_start = u
        g, nl = self.groups[0], self.nlev[0]
        scale = np.sqrt(2.0 / H.diag[0])
        fix = self.X @ beta
        logs = np.empty((len(nodes), nl))
        for k, (x, wk) in enumerate(zip(nodes, weights)):
            uk = u[0] + scale * x
            z1, z2 = self.cuts(theta, fix + sd[0] * uk[g])
            with np.errstate(divide="ignore"):
                lp = np.bincount(g, np.log(np.where(z2 > 0, expit(-z2) - expit(-z1),
                                                    expit(z1) - expit(z2))), nl)
            logs[k] = lp + np.log(wk) + x * x + stats.norm.logpdf(uk) + np.log(scale)
        return float(-np.logaddexp.reduce(logs, axis=0).sum())


# ---------------------------------------------------------------------------
# fitting
# ---------------------------------------------------------------------------

@dataclass
class ClmmFit:
    """A fitted cumulative link (mixed) model. Parameters in R's clmm parametrisation."""

    thresholds: np.ndarray
    threshold_names: list[str]
    beta: np.ndarray
    beta_names: list[str]
    sd: np.ndarray
    term_names: list[str]
    n_levels: list[int]
    loglik: float
    vcov: np.ndarray                 # (theta, beta, log sd) order
    n_obs: int
    method: str                      # "Laplace", "AGQ(n)" or "none (clm)"
    convergence: dict = field(default_factory=dict)
    ranef: list[np.ndarray] = field(default_factory=list)

    @property
    def se(self) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            return np.sqrt(np.diag(self.vcov))

    def coefficients(self, confidence: float = 0.95) -> pd.DataFrame:
        """One row per threshold and fixed effect: estimate, SE, z, two-sided p, CI."""
        K1, p = len(self.thresholds), len(self.beta)
        est = np.concatenate([self.thresholds, self.beta])
        se = self.se[:K1 + p]
        zq = stats.norm.ppf(0.5 + confidence / 2)
        with np.errstate(invalid="ignore", divide="ignore"):
            z = est / se
        return pd.DataFrame({
            "term": list(self.threshold_names) + list(self.beta_names),
            "kind": ["threshold"] * K1 + ["fixed effect"] * p,
            "estimate": est, "se": se, "z": z, "p_value": 2 * stats.norm.sf(np.abs(z)),
            "ci_low": est - zq * se, "ci_high": est + zq * se})

    def variance_components(self) -> pd.DataFrame:
        K1, p = len(self.thresholds), len(self.beta)
        se_log = self.se[K1 + p:]
        return pd.DataFrame({"factor": self.term_names, "levels": self.n_levels,
                             "variance": self.sd ** 2, "sd": self.sd,
                             "sd_se": self.sd * se_log})

    def contrast(self, weights: np.ndarray) -> tuple[float, float]:
        """Estimate and SE of weights·beta."""
        K1, p = len(self.thresholds), len(self.beta)
        w = np.asarray(weights, dtype=np.float64)
        V = self.vcov[K1:K1 + p, K1:K1 + p]
        return float(w @ self.beta), float(np.sqrt(max(w @ V @ w, 0.0)))


def _start(model: _Model, sd0: float) -> np.ndarray:
    counts = np.bincount(model.y, minlength=model.K).astype(np.float64)
    cum = np.cumsum(counts)[:-1] / counts.sum()
    theta = np.log(cum / (1 - cum))
    alpha = np.concatenate([theta[:1], np.log(np.diff(theta))])
    return np.concatenate([alpha, np.zeros(model.p), np.full(model.R, np.log(sd0))])


def _theta_jacobian(model: _Model, psi: np.ndarray) -> np.ndarray:
    """d theta / d alpha (lower triangular) for the chain rule of the Hessian."""
    K1 = model.K - 1
    J = np.zeros((K1, K1))
    J[:, 0] = 1.0
    for j in range(1, K1):
        J[j:, j] = np.exp(psi[j])
    return J


def _natural(model: _Model, psi: np.ndarray) -> np.ndarray:
    theta, beta, sd = model.split(psi)
    return np.concatenate([theta, beta, np.log(sd)])


def _from_natural(model: _Model, nat: np.ndarray) -> np.ndarray:
    K1 = model.K - 1
    theta = nat[:K1]
    if K1 > 1 and (np.diff(theta) <= 0).any():
        raise FloatingPointError("thresholds out of order")
    return np.concatenate([theta[:1], np.log(np.diff(theta)), nat[K1:]])


def _grad_natural(model: _Model, nat: np.ndarray) -> np.ndarray:
    _, g = model.laplace(_from_natural(model, nat))
    return g


def _fd_hessian(fgrad, x: np.ndarray, rel: float = 1e-5) -> np.ndarray:
    n = len(x)
    Hm = np.empty((n, n))
    for i in range(n):
        h = rel * max(1.0, abs(x[i]))
        e = np.zeros(n)
        e[i] = h
        Hm[:, i] = (fgrad(x + e) - fgrad(x - e)) / (2 * h)
    return 0.5 * (Hm + Hm.T)


def _fd_hessian_values(f, x: np.ndarray, rel: float = 1e-3) -> np.ndarray:
    """Hessian from function values (central differences), for the AGQ objective."""
    n = len(x)
    h = rel * np.maximum(1.0, np.abs(x))
    f0 = f(x)
    Hm = np.empty((n, n))
    for i in range(n):
        for j in range(i, n):
            ei, ej = np.zeros(n), np.zeros(n)
            ei[i], ej[j] = h[i], h[j]
            if i == j:
                v = (f(x + ei) - 2 * f0 + f(x - ei)) / h[i] ** 2
            else:
                v = (f(x + ei + ej) - f(x + ei - ej) - f(x - ei + ej) + f(x - ei - ej)) \
                    / (4 * h[i] * h[j])
            Hm[i, j] = Hm[j, i] = v
    return Hm


def _one_blas_thread():
    """The dense blocks are small (the smaller random factor squared): one BLAS thread is
    fastest, and several only contend on a busy machine (measured 17x slower with two
    threads at load 8). threadpoolctl limits it for the fit and restores it after."""
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - listed in requirements.txt
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def fit_clmm(*args, **kwargs) -> ClmmFit:
    """Fit logit P(Y <= j) = theta_j - X beta - Σ b_term by maximum (approximate) likelihood.

    y: categories 0..K-1 (every category must occur). X: (n, p) fixed effects without
    an intercept (may have p = 0). groups: list of integer codes 0..L-1 per random
    factor (0, 1 or 2 factors, crossed). nagq: 1 = Laplace; > 1 adaptive Gauss-Hermite
    quadrature with that many nodes (one random factor only), as clmm's nAGQ.
    """
    with _one_blas_thread():
        return _fit_clmm(*args, **kwargs)


def _fit_clmm(y, X=None, groups=None, *, n_categories: int | None = None,
             beta_names: list[str] | None = None, term_names: list[str] | None = None,
             category_names: list[str] | None = None, nagq: int = 1, sd_start: float = 0.5,
             max_iter: int = 500) -> ClmmFit:
    """Fit logit P(Y <= j) = theta_j - X beta - Σ b_term by maximum (approximate) likelihood.

    y: categories 0..K-1 (every category must occur). X: (n, p) fixed effects without
    an intercept (may have p = 0). groups: list of integer codes 0..L-1 per random
    factor (0, 1 or 2 factors, crossed). nagq: 1 = Laplace; > 1 adaptive Gauss-Hermite
    quadrature with that many nodes (one random factor only), as clmm's nAGQ.
    """
    y = np.asarray(y, dtype=np.int64)
    n = len(y)
    K = int(n_categories if n_categories is not None else y.max() + 1)
    X = np.zeros((n, 0)) if X is None else np.asarray(X, dtype=np.float64).reshape(n, -1)
    groups = list(groups or [])
    if n == 0:
        raise StudyError("no answers to fit")
    if K < 2 or y.min() < 0 or y.max() >= K:
        raise StudyError(f"categories must be 0..{K - 1}")
    used = np.bincount(y, minlength=K)
    if (used == 0).any():
        raise StudyError(f"category {int(np.flatnonzero(used == 0)[0])} never occurs: "
                         "its thresholds are not identified")
    codes, nlev = [], []
    for gr in groups:
        gr = np.asarray(gr)
        uniq, inv = np.unique(gr, return_inverse=True)
        codes.append(inv.astype(np.int64))
        nlev.append(len(uniq))
    if nagq > 1 and len(groups) != 1:
        raise StudyError("adaptive Gauss-Hermite quadrature needs exactly one random factor")
    if X.shape[1] and np.linalg.matrix_rank(np.column_stack([np.ones(n), X])) < X.shape[1] + 1:
        raise StudyError("fixed effects are not identifiable (a column is constant or "
                         "a combination of others)")
    model = _Model(y, X, codes, nlev, K)
    p, R, K1 = X.shape[1], len(groups), K - 1

    def fun(psi):
        v, g = model.laplace(psi)
        if g is None:
            return np.inf, np.zeros_like(psi)
        return v, model.to_alpha_grad(psi, g)

    psi0 = _start(model, sd_start)
    # L-BFGS-B, the log SDs bounded below: a variance at zero stops at the bound instead
    # of drifting towards -inf over a flat likelihood
    bounds = [(None, None)] * (K1 + p) + [(MIN_LOG_SD, None)] * R
    res = optimize.minimize(fun, psi0, jac=True, method="L-BFGS-B", bounds=bounds,
                            options={"gtol": GRAD_TOL, "ftol": 1e-12, "maxiter": max_iter,
                                     "maxcor": 20})
    psi = res.x
    iterations = int(res.nit)

    def free_mask(nat):   # parameters off the boundary: Newton steps move only these
        return np.concatenate([np.ones(K1 + p, dtype=bool), nat[K1 + p:] > np.log(BOUNDARY_SD)])
    # Newton polishing with a finite-difference Hessian of the exact gradient
    # (computed once: L-BFGS-B leaves the iterate close, where it barely changes)
    nat = _natural(model, psi)
    nat_at_hessian = nat
    newton_steps = 0
    Hn = None
    g = _grad_natural(model, nat)
    for _ in range(6):
        free = free_mask(nat)
        if g is None or np.abs(g[free]).max() < 1e-9:
            break
        if Hn is None:
            Hn = _fd_hessian(lambda x: _grad_natural(model, x), nat)
            nat_at_hessian = nat
        step = np.zeros_like(nat)
        try:
            step[free] = np.linalg.solve(Hn[np.ix_(free, free)], g[free])
        except np.linalg.LinAlgError:
            break
        f_old = model.laplace(_from_natural(model, nat), gradient=False)[0]
        moved = False
        for factor in (1.0, 0.5, 0.25, 0.125):
            try:
                trial = _from_natural(model, nat - factor * step)
            except FloatingPointError:
                continue
            f_new, g_new = model.laplace(trial)
            if g_new is not None and f_new <= f_old + 1e-12 * max(1.0, abs(f_old)):
                moved = True
                break
        if not moved:
            break
        nat = nat - factor * step
        g = g_new
        newton_steps += 1
    psi = _from_natural(model, nat)
    nll, g = model.laplace(psi)
    method = "Laplace" if R else "none (clm)"
    if nagq > 1:
        gh_x, gh_w = np.polynomial.hermite.hermgauss(nagq)

        def f_agq(x):
            try:
                return model.agq(_from_natural(model, x), gh_x, gh_w)
            except FloatingPointError:
                return np.inf

        def g_agq(x):
            h = 1e-5 * np.maximum(1.0, np.abs(x))
            eye = np.eye(len(x))
            return np.array([(f_agq(x + h[i] * eye[i]) - f_agq(x - h[i] * eye[i])) / (2 * h[i])
                             for i in range(len(x))])

        # quasi-Newton from the Laplace fit, with the Laplace Hessian as the metric
        H_lap = _fd_hessian(lambda x: _grad_natural(model, x), nat)
        g = g_agq(nat)
        f_cur = f_agq(nat)
        for _ in range(50):
            free = free_mask(nat)
            if np.abs(g[free]).max() < 1e-6:
                break
            step = np.zeros_like(nat)
            step[free] = np.linalg.solve(H_lap[np.ix_(free, free)], g[free])
            for factor in (1.0, 0.5, 0.25, 0.125, 0.0625):
                f_try = f_agq(nat - factor * step)
                if f_try <= f_cur:
                    break
            else:
                break
            nat, f_cur = nat - factor * step, f_try
            g = g_agq(nat)
            iterations += 1
        nll = f_cur
        Hn = _fd_hessian_values(f_agq, nat)
        method = f"AGQ({nagq})"
        psi = _from_natural(model, nat)
    elif Hn is None or np.abs(nat - nat_at_hessian).max() > 1e-4:
        Hn = _fd_hessian(lambda x: _grad_natural(model, x), nat)
    theta, beta, sd = model.split(psi)
    # a variance at zero (log sd drifting to -inf) is left out of the Hessian, as clmm
    # does, so the flat direction does not spoil the other standard errors
    at_zero = np.array([sd[k] < BOUNDARY_SD for k in range(R)], dtype=bool)
    keep = np.concatenate([np.ones(K1 + p, dtype=bool), ~at_zero])
    vcov = np.full_like(Hn, np.nan)
    try:
        Hk = Hn[np.ix_(keep, keep)]
        vcov[np.ix_(keep, keep)] = np.linalg.inv(Hk)
        eig = np.linalg.eigvalsh(Hk)
        cond = float(eig.max() / eig.min()) if eig.min() > 0 else np.inf
        pos_def = bool(eig.min() > 0)
    except np.linalg.LinAlgError:
        cond, pos_def = np.inf, False
    g_kept = g[keep] if g is not None else None
    max_grad = float(np.abs(g_kept).max()) if g_kept is not None else np.nan
    # scale-free criterion: the log-likelihood a Newton step would still gain
    decrement = np.nan
    if g_kept is not None and pos_def:
        decrement = float(0.5 * g_kept @ vcov[np.ix_(keep, keep)] @ g_kept)
    boundary = [term_names[k] if term_names else f"factor {k}" for k in range(R) if at_zero[k]]
    # random effects at the final parameters (inner failures during the line searches of
    # the outer optimiser are reported but do not matter if the final one converged)
    u, _t, _H, _f, final_inner_ok = model.mode(theta, beta, sd, model.u_start)
    converged = bool(pos_def and final_inner_ok and decrement < 1e-6)
    conv = {
        "converged": converged,
        "optimizer": "L-BFGS-B + Newton" + (" + quasi-Newton on the AGQ likelihood" if nagq > 1 else ""),
        "message": f"L-BFGS-B: {res.message} Newton steps after it: {newton_steps}.",
        "iterations": iterations, "newton_steps": newton_steps,
        "max_abs_gradient": max_grad, "loglik_to_gain": decrement, "hessian_condition": cond,
        "hessian_positive_definite": pos_def,
        "inner_problems": model.n_inner, "inner_failures": model.inner_failures,
        "final_inner_converged": bool(final_inner_ok),
        "variance_at_boundary": boundary,
    }
    cats = category_names or [str(k + 1) for k in range(K)]
    return ClmmFit(
        thresholds=theta, threshold_names=[f"{cats[j]}|{cats[j + 1]}" for j in range(K1)],
        beta=beta, beta_names=list(beta_names or [f"x{j}" for j in range(p)]), sd=sd,
        term_names=list(term_names or [f"factor {k}" for k in range(R)]), n_levels=nlev,
        loglik=-float(nll), vcov=vcov, n_obs=n, method=method, convergence=conv,
        ranef=[sd[k] * u[k] for k in range(R)])


def convergence_text(fit: ClmmFit) -> str:
    """One line a reader can check: converged or why not."""
    c = fit.convergence
    extra = ""
    if c["variance_at_boundary"]:
        extra = f"; variance at zero: {', '.join(c['variance_at_boundary'])}"
    return fit_line(c, fit.method, extra)


def fit_line(c: dict, method: str, extra: str = "") -> str:
    """The convergence line shared by every Laplace fit (this module's and clmm_re's)."""
    state = "converged" if c["converged"] else "NOT converged"
    if not c["final_inner_converged"]:
        extra += "; the random-effect modes did not converge at the estimate"
    return (f"{state} ({method}): max|gradient| {c['max_abs_gradient']:.2g}, "
            f"log-likelihood a Newton step would gain {c['loglik_to_gain']:.2g}, "
            f"Hessian condition number {c['hessian_condition']:.3g}, "
            f"{c['iterations']} iterations{extra}")
