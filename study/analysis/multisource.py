"""Consistency studies with more than two pair sources: which source participants prefer.

Why a Bradley–Terry model: each question shows pairs from two of the study's declared
sources, so an answer is one paired comparison. With the declared order s_1, ..., s_S
(s_1 the reference) and a question comparing s_a and s_b (a before b), the primary is
the logistic mixed model

    logit P(s_a chosen) = (β_a + u_pa) − (β_b + u_pb) + v_pair,   β_1 = u_p1 = 0,

R: `glmer(choice ~ 0 + x_2 + ... + x_S + (0 + x_2 + ... + x_S | participant) + (1 | pair),
family = binomial)` with x_s = +1 when s is the earlier source of the question, −1 when
the later, 0 otherwise. β_s is the log odds that a median participant chooses s over the
reference on a median pair. Each participant has their own worth of every source
(u_p ~ N(0, Σ), Σ unstructured: the by-participant slopes of the maximal structure), and
each question its own effect v ~ N(0, σ²), crossed. With two sources x_2 = −1 on every
row, so the participant term is today's participant intercept and the model is exactly
`mixed.glmm_proportion`. (Independent participant × comparison intercepts instead reject
a heterogeneous null 10.7% of the time at 0.05, bench/bench_multisource.py: a
participant's preferences in the comparisons are tied by their worths.) "No source
preferred" (β_2 = ... = β_S = 0) is tested by the likelihood ratio, chi-square S − 1 df,
or by a parametric bootstrap of that ratio when participants or pairs number fewer than
`mixed.BOOTSTRAP_BELOW` (the declared rule of the two-source primary). Measured level at
0.05 on heterogeneous nulls (bench/bench_multisource.py, 3 sources): 0.068 (Monte Carlo
SE 0.008, 1000 studies of 30 participants, 6 questions per comparison and version) and
0.064 (SE 0.011, 500 studies of 60 participants, 10 questions): slightly liberal, as
likelihood-ratio tests of GLMM fixed effects are in small samples. Undecided answers are
left out of every test and counted.

Secondaries: participant level, each participant's win rate per source (chosen / shown
among decided answers; under the null every source wins half of its comparisons), the
mean with its t interval, and Friedman's test across sources over the participants who
saw every source; answer level, per comparison a two-sided binomial test of the earlier
source against ½ (Holm), and Pearson's chi-square that every comparison is 50/50
(answers treated as independent).
"""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.consistency import consistency_answers
from study.analysis.corrections import holm
from study.analysis.io import SOURCES, UNDECIDED
from study.errors import StudyError

DEFAULT_SOURCES = SOURCES[:2]          # data_dependent, euclidean
MULTI_EFFECT = "no source preferred"   # the omnibus row of the primary table


def declared_sources(answers: pd.DataFrame, sources=None) -> tuple[str, ...]:
    """The study's pair sources in declared order: `sources` when given, else the two
    defaults followed by any other source the consistency rows use (in order of name)."""
    if sources:
        return tuple(sources)
    con = consistency_answers(answers)
    used: set[str] = set()
    for col in ("choice_source", "left_source", "right_source"):
        if col in con.columns:
            used |= set(con[col].astype(str).tolist())
    used -= {"", UNDECIDED}
    extra = sorted(used - set(DEFAULT_SOURCES))
    return tuple(DEFAULT_SOURCES) + tuple(extra)


def is_multi(answers: pd.DataFrame, sources=None) -> bool:
    """Whether the consistency answers need the multi-source analysis (more than the
    two default sources declared or used)."""
    return len(declared_sources(answers, sources)) > 2 or (
        bool(sources) and tuple(sources) != DEFAULT_SOURCES)


def comparisons(answers: pd.DataFrame, sources) -> pd.DataFrame:
    """One row per consistency answer: participant, pair (item), version, first and
    second source of the question (declared order), comparison ('first vs second'),
    choice ('first', 'second' or 'undecided') and first_wins (bool, decided rows)."""
    con = consistency_answers(answers)
    order = {s: i for i, s in enumerate(sources)}
    if len(con) == 0:
        raise StudyError("no consistency answers")
    for col in ("left_source", "right_source"):
        if col not in con.columns or (con[col].astype(str) == "").any():
            raise StudyError(f"answers: column {col!r} is needed on every consistency row "
                             f"when more than two pair sources are compared ({', '.join(sources)})")
    left = con["left_source"].astype(str).to_numpy()
    right = con["right_source"].astype(str).to_numpy()
    choice = con["choice_source"].astype(str).to_numpy()
    same = left == right
    if same.any():
        raise StudyError(f"answers: a consistency row shows {left[same][0]!r} on both sides "
                         f"(item {con['item_id'].astype(str).to_numpy()[same][0]!r})")
    swap = np.array([order[a] > order[b] for a, b in zip(left, right)], dtype=bool)
    first = np.where(swap, right, left)
    second = np.where(swap, left, right)
    bad = (choice != UNDECIDED) & (choice != first) & (choice != second)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise StudyError(f"answers: item {con['item_id'].astype(str).to_numpy()[i]!r} compares "
                         f"{first[i]!r} and {second[i]!r} but the choice is {choice[i]!r}")
    return pd.DataFrame({
        "participant": con["participant_id"].astype(str).to_numpy(),
        "pair": con["item_id"].astype(str).to_numpy(), "version": con["version"].to_numpy(),
        "first": first, "second": second,
        "comparison": [f"{a} vs {b}" for a, b in zip(first, second)],
        "choice": np.where(choice == UNDECIDED, UNDECIDED,
                           np.where(choice == first, "first", "second")),
        "first_wins": choice == first})


def bt_design(comp: pd.DataFrame, sources) -> np.ndarray:
    """x_s = +1 (first source), −1 (second), columns for sources[1:]."""
    X = np.zeros((len(comp), len(sources) - 1))
    for j, s in enumerate(sources[1:]):
        X[:, j] = (comp["first"].to_numpy() == s).astype(float) - \
            (comp["second"].to_numpy() == s).astype(float)
    return X


def bt_glmm(comp: pd.DataFrame, sources, *, confidence: float = 0.95,
            bootstrap: int | None = None, seed: int = 0) -> dict:
    """The primary model on the decided rows of `comparisons(...)`. Returns
    "model" (one-row DataFrame: LR test of no source preferred, SDs, convergence) and
    "preferences" (one row per source: log odds vs the reference, SE, Wald CI, odds
    ratio, P(chosen over the reference) of the median participant and pair, and the
    centred worth β_s − mean β with its Wald CI)."""
    from study.analysis.clmm import _one_blas_thread
    from study.analysis.clmm_re import _fit, make_term
    from study.analysis.clmm_re import convergence_text as re_text
    from study.analysis.mixed import bootstrap_draws

    dec = comp[comp["choice"] != UNDECIDED]
    S = len(sources)
    y = dec["first_wins"].to_numpy().astype(np.int64)
    if len(dec) == 0 or y.all() or not y.any():
        raise StudyError("the multi-source model needs decided answers won by both the "
                         "earlier and the later source of some question")
    X = bt_design(dec, sources)
    unseen = [s for j, s in enumerate(sources[1:]) if not X[:, j].any()]
    if unseen:
        raise StudyError(f"pair source {unseen[0]!r} is declared but no decided answer "
                         f"compares it")
    pair = dec["pair"].to_numpy()
    names = [f"source[{s}]" for s in sources[1:]]
    terms = [make_term("participant", dec["participant"].to_numpy(), X, names, correlated=True),
             make_term("pair", pair)]
    zero = np.zeros(1)
    with _one_blas_thread():
        fit = _fit(y, X, terms, n_categories=2, theta_fixed=zero, beta_names=names)
        null = _fit(y, None, terms, n_categories=2, theta_fixed=zero)
    lr = max(0.0, 2 * (fit.loglik - null.loglik))
    df = S - 1
    n_part = int(dec["participant"].nunique())
    n_pairs = int(dec["pair"].nunique())
    B = bootstrap_draws(n_part, n_pairs, bootstrap)
    if B:
        rng = np.random.default_rng(seed)
        exceed = 0
        with _one_blas_thread():
            for _ in range(B):
                ys = simulate_null(rng, null, terms)
                if ys.all() or not ys.any():
                    exceed += lr <= 0
                    continue
                s1 = np.concatenate([np.zeros(df), null.nat])
                lr_s = 2 * (_fit(ys, X, terms, n_categories=2, theta_fixed=zero, start=s1,
                                 hessian=False).loglik
                            - _fit(ys, None, terms, n_categories=2, theta_fixed=zero,
                                   start=null.nat, hessian=False).loglik)
                exceed += lr_s >= lr
        p = (1 + exceed) / (B + 1)
        p_method = f"parametric bootstrap of the likelihood ratio ({B} draws)"
    else:
        p = float(stats.chi2.sf(lr, df))
        p_method = f"likelihood ratio, chi-square {df} df"
    zq = stats.norm.ppf(0.5 + confidence / 2)
    expit = lambda v: 1.0 / (1.0 + np.exp(-v))  # noqa: E731
    rows = []
    for i, s in enumerate(sources):
        w = np.zeros(df)
        if i:
            w[i - 1] = 1.0
        est, se = fit.contrast(w) if i else (0.0, 0.0)
        c = np.full(df, -1.0 / S)           # centred worth: β_s − mean over all S (β_1 = 0)
        if i:
            c[i - 1] += 1.0
        worth, worth_se = fit.contrast(c)
        shown = int(((dec["first"] == s) | (dec["second"] == s)).sum())
        chosen = int((((dec["first"] == s) & dec["first_wins"])
                      | ((dec["second"] == s) & ~dec["first_wins"])).sum())
        rows.append({"source": s, "reference": sources[0], "is_reference": i == 0,
                     "shown": shown, "chosen": chosen,
                     "win_rate": chosen / shown if shown else np.nan,
                     "log_odds": est, "se": se if i else np.nan,
                     "ci_low": est - zq * se if i else np.nan,
                     "ci_high": est + zq * se if i else np.nan,
                     "odds_ratio": float(np.exp(est)),
                     "or_ci_low": float(np.exp(est - zq * se)) if i else np.nan,
                     "or_ci_high": float(np.exp(est + zq * se)) if i else np.nan,
                     "p_wald": float(2 * stats.norm.sf(abs(est / se))) if i and se > 0 else np.nan,
                     "p_over_reference": float(expit(est)),
                     "worth": worth, "worth_se": worth_se,
                     "worth_ci_low": worth - zq * worth_se, "worth_ci_high": worth + zq * worth_se,
                     "ci_level": confidence})
    prefs = pd.DataFrame(rows)
    tested = ~prefs["is_reference"]
    prefs["p_holm"] = np.nan
    prefs.loc[tested, "p_holm"] = holm(prefs.loc[tested, "p_wald"].to_numpy())
    part = next(t for t in fit.terms if t["factor"] == "participant")
    pair_sd = float(next(t for t in fit.terms if t["factor"] == "pair")["sd"][0])
    corr = np.asarray(part["corr"], dtype=float)
    model = pd.DataFrame([{
        "sources": ", ".join(sources), "reference": sources[0], "n": int(len(dec)),
        "undecided": int(len(comp) - len(dec)), "participants": n_part, "pairs": n_pairs,
        "comparisons": int(dec["comparison"].nunique()), "lr_chi2": lr, "df": df,
        "p_value": float(p), "p_method": p_method, "loglik": fit.loglik,
        "loglik_null": null.loglik,
        "participant_sd": ", ".join(f"{s}: {v:.4g}" for s, v in zip(sources[1:], part["sd"])),
        "participant_corr": ", ".join(f"{sources[1 + i]}~{sources[1 + j]}: {corr[i, j]:.3f}"
                                      for i in range(df) for j in range(i)),
        "pair_sd": pair_sd, "converged": bool(fit.convergence["converged"]),
        "singular": bool(fit.singular),
        "convergence": re_text(fit), "model": r_formula(sources),
        "test": "Bradley-Terry logistic mixed model, likelihood ratio of no source preferred"}])
    return {"model": model, "preferences": prefs, "fit": fit}


def simulate_null(rng: np.random.Generator, null_fit, terms: list) -> np.ndarray:
    """Choices drawn from a fitted model without fixed effects: each term's random
    effects from its fitted covariance (SDs and correlations), times its columns."""
    n = len(terms[0].groups)
    eta = np.zeros(n)
    for t, info in zip(terms, null_fit.terms):
        sd = np.asarray(info["sd"], dtype=float)
        corr = np.asarray(info["corr"], dtype=float) if t.q > 1 else np.ones((1, 1))
        cov = corr * np.outer(sd, sd)
        b = rng.multivariate_normal(np.zeros(t.q), cov, size=t.nlev, method="eigh")
        eta += (t.Z * b[t.groups]).sum(axis=1)
    return (rng.random(n) < 1 / (1 + np.exp(-eta))).astype(np.int64)


def r_formula(sources) -> str:
    xs = " + ".join(f"x_{s}" for s in sources[1:])
    return (f"choice ~ 0 + {xs} + (0 + {xs} | participant) + (1 | pair), "
            "binomial logit, Laplace")


def participant_level(comp: pd.DataFrame, sources, confidence: float = 0.95) -> dict:
    """Win rate of each source per participant (decided answers); the mean with its t
    interval per source; Friedman's test across sources over participants who saw all."""
    from study.analysis.participant_level import mean_difference_ci

    dec = comp[comp["choice"] != UNDECIDED]
    long = pd.concat([
        pd.DataFrame({"participant": dec["participant"], "source": dec["first"],
                      "won": dec["first_wins"].astype(float)}),
        pd.DataFrame({"participant": dec["participant"], "source": dec["second"],
                      "won": (~dec["first_wins"]).astype(float)})])
    rates = long.pivot_table(index="participant", columns="source", values="won",
                             aggfunc="mean").reindex(columns=list(sources))
    rows = []
    for s in sources:
        v = rates[s].dropna().to_numpy()
        ci = mean_difference_ci(v - 0.5, confidence)
        rows.append({"source": s, "participants": int(len(v)),
                     "mean_win_rate": float(v.mean()) if len(v) else np.nan,
                     "ci_low": ci["ci_low"] + 0.5, "ci_high": ci["ci_high"] + 0.5,
                     "ci_level": confidence})
    complete = rates.dropna()
    if len(complete) >= 2:
        fr = stats.friedmanchisquare(*[complete[s].to_numpy() for s in sources])
        chi2, p = float(fr.statistic), float(fr.pvalue)
    else:
        chi2, p = np.nan, np.nan
    test = pd.DataFrame([{"participants": int(len(complete)), "sources": len(sources),
                          "chi2": chi2, "df": len(sources) - 1, "p_value": p,
                          "test": "Friedman test of participants' win rates across sources"}])
    return {"win_rates": pd.DataFrame(rows), "friedman": test}


def answer_level(comp: pd.DataFrame, sources, confidence: float = 0.95) -> dict:
    """Per comparison: binomial test of the earlier source against ½ (Holm); overall:
    Pearson chi-square that every comparison is 50/50 (df = number of comparisons)."""
    from study.analysis.consistency import binomial_test

    rows = []
    for a, b in itertools.combinations(sources, 2):
        sel = (comp["first"] == a) & (comp["second"] == b)
        if not sel.any():
            continue
        sub = comp[sel]
        dec = sub[sub["choice"] != UNDECIDED]
        rows.append({"comparison": f"{a} vs {b}", "first": a, "second": b,
                     "undecided": int((sub["choice"] == UNDECIDED).sum()),
                     **binomial_test(int(dec["first_wins"].sum()), int(len(dec)),
                                     confidence=confidence)})
    table = pd.DataFrame(rows)
    table["p_holm"] = holm(table["p_value"].fillna(1.0).to_numpy())
    n = table["n"].to_numpy().astype(float)
    k = table["k"].to_numpy().astype(float)
    ok = n > 0
    chi2 = float((((k - n / 2) ** 2) / (n / 4))[ok].sum())
    dfree = int(ok.sum())
    overall = pd.DataFrame([{"comparisons": dfree, "n": int(n.sum()), "chi2": chi2, "df": dfree,
                             "p_value": float(stats.chi2.sf(chi2, dfree)) if dfree else np.nan,
                             "test": "Pearson chi-square: every comparison 50/50"}])
    return {"comparisons": table, "overall": overall}


def multisource_analysis(answers: pd.DataFrame, sources=None, *, confidence: float = 0.95,
                         mixed: bool = True, seed: int = 0) -> dict:
    """Every multi-source table: sources, counts (per source: shown, chosen; undecided),
    the primary model and preferences (when `mixed`), participant and answer level."""
    src = declared_sources(answers, sources)
    comp = comparisons(answers, src)
    out: dict = {"sources": src, "comparisons_long": comp}
    if mixed:
        out.update(bt_glmm(comp, src, confidence=confidence, seed=seed))
    out["participant"] = participant_level(comp, src, confidence)
    out["answer"] = answer_level(comp, src, confidence)
    return out
