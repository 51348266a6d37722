"""Bradley-Terry model of paired choices: each method's worth (log-ability) with CIs.

MINIMAL FIXED-EFFECTS VERSION, written to test the pairwise analysis: logit P(i beats j) =
w_i - w_j, the first method the reference (w = 0), fitted by Newton-Raphson (IRLS) on the
difference design; Wald intervals; likelihood-ratio test of "all worths equal". No
participant effects yet: the version with participant random effects (issue 28) replaces
this file behind the same `bradley_terry` signature.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.errors import StudyError


def bradley_terry(winner, loser, methods: list[str] | None = None, *, participant=None,
                  confidence: float = 0.95, max_iter: int = 100) -> pd.DataFrame:
    """One row per method: worth (log-ability against the reference, the first of
    `methods`), se, ci_low, ci_high, odds of beating the reference (exp worth) with its CI,
    wins, comparisons, and the omnibus likelihood-ratio test (lr_chi2, df, p_value, the same
    on every row). `participant` is accepted for the mixed version and ignored here."""
    winner = np.asarray(winner, dtype=object).astype(str)
    loser = np.asarray(loser, dtype=object).astype(str)
    if len(winner) != len(loser) or not len(winner):
        raise StudyError("Bradley-Terry: needs at least one decided comparison")
    names = list(methods) if methods else sorted(set(winner) | set(loser))
    index = {m: i for i, m in enumerate(names)}
    k = len(names)
    if k < 2:
        raise StudyError("Bradley-Terry: needs at least two methods")
    X = np.zeros((len(winner), k))
    X[np.arange(len(winner)), [index[w] for w in winner]] = 1.0
    X[np.arange(len(winner)), [index[v] for v in loser]] -= 1.0
    X = X[:, 1:]                      # reference: the first method
    beta = np.zeros(k - 1)
    converged = False
    for _ in range(max_iter):         # every row is a win of the +1 side: y = 1
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        grad = X.T @ (1.0 - p)
        info = (X * (p * (1 - p))[:, None]).T @ X + 1e-10 * np.eye(k - 1)
        step = np.linalg.solve(info, grad)
        beta += np.clip(step, -5, 5)
        if np.max(np.abs(step)) < 1e-10:
            converged = True
            break
    p = 1.0 / (1.0 + np.exp(-(X @ beta)))
    info = (X * (p * (1 - p))[:, None]).T @ X
    cov = np.linalg.pinv(info)
    loglik = float(np.sum(np.log(np.clip(p, 1e-300, None))))
    lr = max(0.0, 2 * (loglik - len(winner) * np.log(0.5)))
    p_omni = float(stats.chi2.sf(lr, k - 1))
    z = stats.norm.ppf(0.5 + confidence / 2)
    worth = np.concatenate([[0.0], beta])
    se = np.concatenate([[0.0], np.sqrt(np.clip(np.diag(cov), 0, None))])
    rows = []
    for i, m in enumerate(names):
        lo, hi = (worth[i], worth[i]) if i == 0 else (worth[i] - z * se[i], worth[i] + z * se[i])
        rows.append({"method": m, "is_reference": i == 0, "worth": float(worth[i]), "se": float(se[i]),
                     "ci_low": float(lo), "ci_high": float(hi), "odds_vs_reference": float(np.exp(worth[i])),
                     "odds_ci_low": float(np.exp(lo)), "odds_ci_high": float(np.exp(hi)),
                     "wins": int((winner == m).sum()), "comparisons": int(((winner == m) | (loser == m)).sum()),
                     "lr_chi2": lr, "df": k - 1, "p_value": p_omni, "ci_level": confidence,
                     "converged": converged,
                     "model": "logit P(i beats j) = w_i - w_j, fixed effects, Wald CI"})
    return pd.DataFrame(rows)
