"""Bradley–Terry model of pairwise choices among two or more methods, with participant
effects, as tidy tables.

Each answer shows two methods' explanations of one image, one first (left) and one
second (right), and the participant picks one. The Bradley–Terry model gives method m a
log-worth lambda_m (the reference method's is 0):

    logit P(first chosen) = delta + lambda_first - lambda_second
                          + (b_participant,first - b_participant,second)

written, as R's BradleyTerry2 does, as a logistic model on the design
x_m = 1[first = m] - 1[second = m] (one column per non-reference method), fitted by the
logistic mixed model of logit_mixed.py (Laplace, as lme4::glmer).

Choices documented here (the "documented equivalent" of a BT model with participant
effects):
- delta, a fixed intercept, is a preference for the first-shown position. It is
  identified because the display order is randomised; with `position=False` it is left
  out (use it when "first" carries no display meaning).
- Participant effects are participant-specific worths: uncorrelated random slopes on
  the worth columns, b_participant,m ~ N(0, s_m^2) (glmer: `(0 + x_b + x_c ||
  participant)`). A random intercept would be a participant-specific position bias,
  which does not make the worths' standard errors honest; participants who prefer
  different methods do, which is what the slopes model. Correlations between the slopes
  are not estimated (they need many participants per method pair). The slopes are
  deviations from the reference method, so s_m is how much participants differ in
  their preference between the reference and m (with the target as reference: in
  their target-vs-m preference); the variances are not invariant to the choice of
  reference, the worths and their differences are estimated either way.
- Fallback (declared): when a participant has fewer than two answers on average, fewer
  than q + 1 participants (q = methods - 1) answered, or the mixed fit does not converge,
  the fixed-effects Bradley–Terry model (plain logistic regression, glm) is fitted and
  the reason reported. A slope variance at 0 is kept (its maximum-likelihood estimate).

Reported per method: log-worth (relative to the reference) with Wald SE, z, p and CI,
and worth normalised to sum 1, pi_m = exp(lambda_m) / sum exp(lambda), with a CI from
the delta method on logit(pi_m) (so it stays in (0, 1)). Contrasts target - each
baseline come with Holm's correction; the method effect as a whole by likelihood ratio.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.clmm_re import fit_clmm_re, make_term
from study.analysis.corrections import holm
from study.analysis.design import INTERCEPT, Design, require_columns
from study.analysis.logit_mixed import LogitMixedFit, lr_test, p_value
from study.errors import StudyError

RANDOM = ("worth", "none")


def bt_design(data: pd.DataFrame, methods: list[str], *, first: str, second: str,
              chosen: str, position: bool) -> tuple[np.ndarray, Design]:
    """(y = 1 when the first-shown method was chosen, the BT design)."""
    require_columns(data, [first, second, chosen])
    a = data[first].astype(str).to_numpy()
    b = data[second].astype(str).to_numpy()
    c = data[chosen].astype(str).to_numpy()
    if len(data) == 0:
        raise StudyError("no pairwise answers to fit")
    known = set(methods)
    for col, v in ((first, a), (second, b)):
        bad = ~np.isin(v, list(known))
        if bad.any():
            raise StudyError(f"column {col!r}, row {int(np.flatnonzero(bad)[0])}: method "
                             f"{str(v[bad][0])!r} is not one of {', '.join(methods)}")
    same = a == b
    if same.any():
        raise StudyError(f"row {int(np.flatnonzero(same)[0])}: both sides show method {str(a[same][0])!r}")
    bad = (c != a) & (c != b)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StudyError(f"column {chosen!r}, row {i}: chosen {str(c[i])!r} is neither "
                         f"{str(a[i])!r} nor {str(b[i])!r}")
    for m in methods:
        inv = (a == m) | (b == m)
        if not inv.any():
            raise StudyError(f"method {m!r} is in no pair: its worth cannot be estimated")
        won = (c == m)[inv]
        if won.all() or not won.any():
            raise StudyError(f"cannot fit the Bradley-Terry model: method {m!r} "
                             f"{'won' if won.all() else 'lost'} every comparison it was in "
                             "(its worth is infinite)")
    y = (c == a).astype(np.int64)
    cols, names = [], []
    if position:
        cols.append(np.ones(len(a)))
        names.append(INTERCEPT)
    for m in methods[1:]:
        cols.append((a == m).astype(np.float64) - (b == m).astype(np.float64))
        names.append(f"worth[{m}]")
    X = np.column_stack(cols)
    if np.linalg.matrix_rank(X) < X.shape[1]:
        raise StudyError("the worths are not identifiable: the pairs shown do not connect "
                         "every method (or the first position never changes)")
    owned = {"method": list(range(int(position), X.shape[1]))}
    if position:
        owned = {INTERCEPT: [0], **owned}
    return y, Design(X, names, owned, {"method": list(methods)})


def _worth_table(model: LogitMixedFit, methods: list[str], confidence: float,
                 alternative: str) -> pd.DataFrame:
    d = model.design
    idx = [d.names.index(f"worth[{m}]") for m in methods[1:]]
    lam = np.concatenate([[0.0], model.beta[idx]])
    V = np.zeros((len(methods), len(methods)))
    V[1:, 1:] = model.vcov[np.ix_(idx, idx)]
    se = np.sqrt(np.maximum(np.diag(V), 0.0))
    zq = stats.norm.ppf(0.5 + confidence / 2)
    pi = np.exp(lam - lam.max())
    pi /= pi.sum()
    rows = []
    for m, name in enumerate(methods):
        # delta method for logit(pi_m): d/d lambda_j = 1[j = m] - (1 - 1[j = m]) pi_j / (1 - pi_m)
        g = -pi / (1 - pi[m])
        g[m] = 1.0
        se_l = float(np.sqrt(max(g @ V @ g, 0.0)))
        lg = np.log(pi[m] / (1 - pi[m]))
        with np.errstate(invalid="ignore", divide="ignore"):
            z = lam[m] / se[m] if m else np.nan
        rows.append({"method": name, "reference": m == 0, "log_worth": lam[m],
                     "se": se[m] if m else 0.0, "z": z,
                     "p_value": float(p_value(z, alternative)) if m else np.nan,
                     "ci_low": lam[m] - zq * se[m], "ci_high": lam[m] + zq * se[m],
                     "worth": pi[m], "worth_ci_low": 1 / (1 + np.exp(-(lg - zq * se_l))),
                     "worth_ci_high": 1 / (1 + np.exp(-(lg + zq * se_l))),
                     "ci_level": confidence, "alternative": alternative})
    return pd.DataFrame(rows)


def _contrasts(model: LogitMixedFit, methods: list[str], target: str, confidence: float,
               alternative: str, alpha: float) -> pd.DataFrame:
    d = model.design
    zq = stats.norm.ppf(0.5 + confidence / 2)
    rows = []
    for b in [m for m in methods if m != target]:
        w = np.zeros(len(model.beta))
        if target != methods[0]:
            w[d.names.index(f"worth[{target}]")] += 1.0
        if b != methods[0]:
            w[d.names.index(f"worth[{b}]")] -= 1.0
        est, se = model.contrast(w)
        z = est / se if se > 0 else np.nan
        rows.append({"target": target, "baseline": b, "estimate": est, "se": se, "z": z,
                     "p_value": float(p_value(z, alternative)), "ci_low": est - zq * se,
                     "ci_high": est + zq * se,
                     "p_target_chosen": float(1 / (1 + np.exp(-est))),
                     "ci_level": confidence, "alternative": alternative})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy())
    out["reject"] = out["p_holm"] < alpha
    out["test"] = "Wald z of the log-worth difference, Holm over baselines"
    return out


def _fallback_reason(data: pd.DataFrame, participant: str, q: int) -> str:
    n_p = data[participant].nunique()
    if n_p < q + 1:
        return f"{n_p} participants: the {q} participant worth variances need at least {q + 1}"
    if len(data) < 2 * n_p:
        return "fewer than two answers per participant: participant worths are not identified"
    return ""


def fit_bradley_terry(data: pd.DataFrame, methods: list[str], *, first: str = "first",
                      second: str = "second", chosen: str = "chosen",
                      participant: str = "participant", random: str = "worth",
                      position: bool = True) -> tuple[LogitMixedFit, str, str]:
    """Fit the BT model (see the module docstring); `methods[0]` is the reference.
    Returns (fit, random structure used: "worth" or "none", fallback reason or '')."""
    if random not in RANDOM:
        raise StudyError(f"random {random!r}: expected one of {', '.join(RANDOM)}")
    methods = [str(m) for m in methods]
    if len(set(methods)) < 2:
        raise StudyError(f"the Bradley-Terry model needs at least two methods, got {methods}")
    if len(set(methods)) < len(methods):
        raise StudyError(f"methods repeat: {methods}")
    y, design = bt_design(data, methods, first=first, second=second, chosen=chosen,
                          position=position)
    if position and (y == y[0]).all():
        raise StudyError(f"cannot fit the position effect: the {'first' if y[0] else 'second'} "
                         "shown method was chosen every time")
    reason = ""
    used = random
    wcols = design.columns_of("method")
    if random == "worth":
        require_columns(data, [participant])
        reason = _fallback_reason(data, participant, len(wcols))
    def fit_with(structure: str) -> LogitMixedFit:
        terms = []
        if structure == "worth":
            terms = [make_term(participant, data[participant].astype(str).to_numpy(),
                               design.X[:, wcols], [design.names[j] for j in wcols],
                               correlated=False)]
        fit = fit_clmm_re(y, design.X, terms, n_categories=2, theta_fixed=np.zeros(1),
                          beta_names=design.names)
        ran = (f" + (0 + {' + '.join(design.names[j] for j in wcols)} || {participant})"
               if structure == "worth" else "")
        formula = (f"first_chosen ~ {'1' if position else '0'} + "
                   f"{' + '.join(design.names[j] for j in wcols)}{ran}")
        return LogitMixedFit(fit, design, y, np.zeros(len(y)), terms, "first_chosen", formula)

    if used == "worth" and not reason:
        model = fit_with("worth")
        if model.fit.convergence["converged"]:
            return model, "worth", ""
        reason = f"the mixed fit did not converge ({model.model()['convergence'].iloc[0]})"
    model = fit_with("none")
    if not model.fit.convergence["converged"]:
        raise StudyError("cannot fit the Bradley-Terry model: the fixed-effects fit did not "
                         f"converge ({model.model()['convergence'].iloc[0]})")
    return model, "none", reason


def bradley_terry(data: pd.DataFrame, methods: list[str], *, target: str | None = None,
                  first: str = "first", second: str = "second", chosen: str = "chosen",
                  participant: str = "participant", random: str = "worth",
                  position: bool = True, alternative: str = "greater",
                  confidence: float = 0.95, alpha: float = 0.05) -> dict:
    """Bradley–Terry analysis of pairwise choices. `methods[0]` is the reference (log-worth
    0); `target` (default methods[0]) is compared with every other method.

    Returns tables: worths (one row per method: log_worth, se, z, p_value, ci_low,
    ci_high, worth normalised to sum 1 and its CI), contrasts (target - each baseline:
    log-worth difference, Wald z, p, CI, the probability the target is chosen over it,
    Holm), lrt (the method effect: all worths equal), coefficients (position effect and
    worth columns), variance (participant worth SDs), model (one row: formula, random
    structure used, fallback reason, logLik, convergence); and the fit under "fit"."""
    model, used, reason = fit_bradley_terry(data, methods, first=first, second=second,
                                            chosen=chosen, participant=participant,
                                            random=random, position=position)
    methods = [str(m) for m in methods]
    target = methods[0] if target is None else str(target)
    if target not in methods:
        raise StudyError(f"target {target!r} is not one of {', '.join(methods)}")
    info = model.model()
    info.insert(1, "random", used)
    info.insert(2, "fallback_reason", reason)
    info["family"] = "Bradley-Terry (binomial logit)"
    return {"worths": _worth_table(model, methods, confidence, alternative),
            "contrasts": _contrasts(model, methods, target, confidence, alternative, alpha),
            "lrt": lr_test(model, "method"), "coefficients": model.coefficients(confidence),
            "variance": model.variance(), "model": info, "fit": model}
