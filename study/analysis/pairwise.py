"""Analysis of pairwise choices between methods (question kind `pairwise`).

Each decided answer ("undecided" left out) is a choice between the two methods shown; for
the target method and each baseline the answers of the questions that showed those two
are the target's wins and losses. Declared primary (`clmm`): the share of choices for the
target in a logistic mixed model with participant and item (question) random intercepts,
tested against 1/2 by likelihood ratio (one-sided as declared: signed root), Holm over the
baselines. Secondaries: participant level (each participant's share, Wilcoxon signed-rank
against 1/2), answer level (binomial test of the pooled choices), and with more than two
methods a Bradley-Terry model of every method's worth (study/analysis/bradley_terry.py).
"""
from __future__ import annotations

import time

import numpy as np
import pandas as pd
from scipy import stats

from study.analysis.comparisons import check_target
from study.analysis.corrections import holm
from study.analysis.plan import PRIMARIES
from study.errors import StudyError

UNDECIDED = "undecided"


def pairwise_frame(answers: pd.DataFrame, kinds: list[str]) -> pd.DataFrame:
    """The pairwise rows as plain columns: participant, item, left, right, choice."""
    rows = answers[answers["kind"].isin(kinds)]
    return pd.DataFrame({"participant": rows["participant_id"].astype(str).to_numpy(),
                         "item": rows["item_id"].astype(str).to_numpy(),
                         "left": rows["left_source"].astype(str).to_numpy(),
                         "right": rows["right_source"].astype(str).to_numpy(),
                         "choice": rows["choice_source"].astype(str).to_numpy()})


def pairwise_methods(frame: pd.DataFrame) -> list[str]:
    return sorted(set(frame["left"]) | set(frame["right"]))


def contrast_choices(frame: pd.DataFrame, target: str, baseline: str) -> pd.DataFrame:
    """Decided answers of the questions showing target and baseline; `success`: target chosen."""
    shown = ((frame["left"] == target) & (frame["right"] == baseline)) | \
            ((frame["left"] == baseline) & (frame["right"] == target))
    sub = frame[shown & (frame["choice"] != UNDECIDED)]
    return sub.assign(success=(sub["choice"] == target).to_numpy())


def logistic_mixed_share(success, participant, item, *, alternative: str = "greater",
                         confidence: float = 0.95, seed: int = 0) -> dict:
    """Share of successes in a logistic mixed model, H0: P = 1/2:
    `success ~ 1 + (1 | participant) + (1 | item)`, binomial logit, Laplace (the model of
    lme4::glmer; study.analysis.logit_mixed). The intercept is tested by the likelihood
    ratio against the model without it, one-sided as declared by the signed root; the
    share at the median participant and item is expit(intercept) with its Wald interval.
    One participant or one item leaves that intercept out. `seed` is unused (no
    resampling) and kept for the callers."""
    from study.analysis.design import INTERCEPT
    from study.analysis.logit_mixed import fit_logit_mixed

    del seed
    success = np.asarray(success, dtype=bool)
    participant, item = np.asarray(participant).astype(str), np.asarray(item).astype(str)
    n_p, n_i = len(np.unique(participant)), len(np.unique(item))
    base = {"n": int(len(success)), "k": int(success.sum()), "clusters": int(n_p),
            "pairs": int(n_i), "ci_level": confidence, "alternative": alternative}
    if not len(success) or success.all() or not success.any():
        return {**base, "log_odds": np.nan, "se": np.nan, "z": np.nan, "lr_chi2": np.nan,
                "p_value": np.nan, "p_method": "", "proportion_median_participant": np.nan,
                "ci_low": np.nan, "ci_high": np.nan, "participant_sd": np.nan, "pair_sd": np.nan,
                "converged": False, "model": "", "convergence": "not fitted (needs both choices)"}
    data = pd.DataFrame({"success": success.astype(int), "participant": participant, "item": item})
    model = fit_logit_mixed(data, "success", (), participant="participant" if n_p > 1 else None,
                            item="item" if n_i > 1 else None)
    mu, se = float(model.beta[0]), float(model.fit.se[0])
    reduced = model.refit(model.design.columns_of(INTERCEPT), hessian=True)
    lr = max(0.0, 2 * (model.loglik - reduced.loglik))
    signed = float(np.sign(mu) * np.sqrt(lr))
    p = {"greater": stats.norm.sf(signed), "less": stats.norm.cdf(signed),
         "two-sided": 2 * stats.norm.sf(abs(signed))}[alternative]
    zq = stats.norm.ppf(0.5 + confidence / 2)
    expit = lambda v: float(1.0 / (1.0 + np.exp(-v)))  # noqa: E731
    sds = {t["factor"]: float(t["sd"][0]) for t in model.fit.terms}
    c = model.fit.convergence
    return {**base, "log_odds": mu, "se": se, "z": mu / se if se > 0 else np.nan, "lr_chi2": lr,
            "p_value": float(p), "p_method": "likelihood ratio, signed root"
            + ("" if alternative == "two-sided" else f" ({alternative})"),
            "loglik": model.loglik, "loglik_null": reduced.loglik,
            "proportion_median_participant": expit(mu),
            "ci_low": expit(mu - zq * se), "ci_high": expit(mu + zq * se),
            "participant_sd": sds.get("participant", 0.0), "pair_sd": sds.get("item", 0.0),
            "converged": bool(c["converged"]) and bool(reduced.convergence["converged"]),
            "model": model.formula.replace("success ~", "choice ~") + ", binomial logit, Laplace",
            "convergence": model.model()["convergence"].iloc[0]}


def pairwise_mixed(frame: pd.DataFrame, target: str, baselines: list[str], *, alternative: str,
                   alpha: float, confidence: float, seed: int = 0) -> pd.DataFrame:
    """Declared primary: one row per target-baseline contrast (tidy), Holm over contrasts."""
    rows = []
    for b in baselines:
        sub = contrast_choices(frame, target, b)
        r = logistic_mixed_share(sub["success"].to_numpy(), sub["participant"].to_numpy(),
                                 sub["item"].to_numpy(), alternative=alternative,
                                 confidence=confidence, seed=seed)
        rows.append({"target": target, "baseline": b, "share": r["proportion_median_participant"],
                     "ci_low": r["ci_low"], "ci_high": r["ci_high"], "log_odds": r["log_odds"],
                     "se": r["se"], "statistic": "LR chi2 (1 df, signed root)" if r["lr_chi2"] == r["lr_chi2"]
                     else "Wald z", "value": r["lr_chi2"] if np.isfinite(r["lr_chi2"]) else r["z"],
                     "p_value": r["p_value"], "p_method": r["p_method"], "alternative": alternative,
                     "n": r["n"], "wins": r["k"], "participants": r["clusters"], "items": r["pairs"],
                     "participant_sd": r["participant_sd"], "item_sd": r["pair_sd"],
                     "converged": r["converged"], "convergence": r["convergence"], "model": r["model"],
                     "ci_level": confidence})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    out["reject"] = out["p_holm"] < alpha
    return out


def pairwise_participant(frame: pd.DataFrame, target: str, baselines: list[str], *,
                         alternative: str, alpha: float, confidence: float) -> pd.DataFrame:
    """Participant level: each participant's share of target choices per baseline; mean with
    a t interval, Wilcoxon signed-rank against 1/2 (Holm)."""
    from study.analysis.participant_level import mean_difference_ci, wilcoxon_paired

    rows = []
    for b in baselines:
        sub = contrast_choices(frame, target, b)
        share = sub.groupby("participant", sort=True)["success"].mean().to_numpy(dtype=float)
        ci = mean_difference_ci(share - 0.5, confidence)
        w = wilcoxon_paired(share, np.full(len(share), 0.5), alternative) if len(share) else {}
        rows.append({"target": target, "baseline": b, "participants": int(len(share)),
                     "mean_share": float(share.mean()) if len(share) else np.nan,
                     "ci_low": ci["ci_low"] + 0.5, "ci_high": ci["ci_high"] + 0.5,
                     "statistic": "Wilcoxon W", "value": w.get("W", np.nan),
                     "p_value": w.get("p_value", np.nan), "p_method": w.get("p_method", ""),
                     "rank_biserial": w.get("rank_biserial", np.nan), "alternative": alternative,
                     "ci_level": confidence})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    out["reject"] = out["p_holm"] < alpha
    return out


def pairwise_answer(frame: pd.DataFrame, target: str, baselines: list[str], *, alternative: str,
                    alpha: float, confidence: float) -> pd.DataFrame:
    """Answer level: binomial test of the pooled decided choices against 1/2 (Holm)."""
    from study.analysis.consistency import binomial_test

    rows = []
    for b in baselines:
        sub = contrast_choices(frame, target, b)
        r = binomial_test(int(sub["success"].sum()), len(sub), alternative=alternative, confidence=confidence)
        rows.append({"target": target, "baseline": b, "share": r["proportion"], "ci_low": r["ci_low"],
                     "ci_high": r["ci_high"], "statistic": "binomial k", "value": r["k"], "n": r["n"],
                     "p_value": r["p_value"], "alternative": alternative, "ci_method": r["ci_method"],
                     "ci_level": confidence,
                     "cohen_h": 2 * np.arcsin(np.sqrt(r["proportion"])) - 2 * np.arcsin(np.sqrt(0.5))
                     if r["n"] else np.nan})
    out = pd.DataFrame(rows)
    out["p_holm"] = holm(out["p_value"].to_numpy()) if len(out) else []
    out["reject"] = out["p_holm"] < alpha
    return out


def pairwise_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Per pair of methods shown: wins of each and undecided answers."""
    rows = []
    pair = [tuple(sorted(v)) for v in zip(frame["left"], frame["right"])]
    f = frame.assign(pair=pair)
    for (a, b), sub in f.groupby("pair", sort=True):
        rows.append({"method_a": a, "method_b": b, "wins_a": int((sub["choice"] == a).sum()),
                     "wins_b": int((sub["choice"] == b).sum()),
                     "undecided": int((sub["choice"] == UNDECIDED).sum()), "answers": len(sub)})
    return pd.DataFrame(rows)


def pairwise_bradley_terry(frame: pd.DataFrame, methods: list[str], confidence: float) -> pd.DataFrame:
    """Every method's worth from all decided choices (secondary; more than two methods):
    the Bradley-Terry model with participant-specific worths and a position effect
    (study/analysis/bradley_terry.py; the fixed-effects model as its declared fallback).
    One row per method: log_worth against the reference (the target) with its CI, the
    worth normalised to sum 1, wins, comparisons, and the likelihood-ratio test of equal
    worth with the random structure used."""
    from study.analysis.bradley_terry import bradley_terry

    dec = frame[frame["choice"] != UNDECIDED]
    data = pd.DataFrame({"first": dec["left"].astype(str).to_numpy(), "second": dec["right"].astype(str).to_numpy(),
                         "chosen": dec["choice"].astype(str).to_numpy(),
                         "participant": dec["participant"].astype(str).to_numpy()})
    out = bradley_terry(data, methods, target=methods[0], confidence=confidence)
    worths = out["worths"].copy()
    choice = dec["choice"].astype(str)
    shown = pd.concat([dec["left"], dec["right"]]).astype(str)
    worths["wins"] = [int((choice == m).sum()) for m in worths["method"]]
    worths["comparisons"] = [int((shown == m).sum()) for m in worths["method"]]
    lrt, model = out["lrt"].iloc[0], out["model"].iloc[0]
    worths["lr_chi2"], worths["df"], worths["p_equal_worth"] = lrt["statistic"], lrt["df"], lrt["p_value"]
    worths["random"], worths["fallback_reason"] = model["random"], model["fallback_reason"]
    return worths


# --- the pipeline, primary-table rows, sentence and report section of this analysis ---------
# (called through study.kinds.analyses.Pairwise; nothing outside names them)
def pairwise_analysis(kinds: list[str], kept: pd.DataFrame, options, res) -> bool:
    """Choices between two methods' maps: declared primary (logistic mixed model of the
    target's share), participant and answer level, Bradley-Terry with more than two methods."""
    t0 = time.perf_counter()
    frame = pairwise_frame(kept, kinds)
    if not len(frame):
        res.notes.append(f"Every {' and '.join(kinds)} answer was excluded; no {' and '.join(kinds)} analysis.")
        return False
    methods = pairwise_methods(frame)
    _, baselines = check_target(methods, options, res, " and ".join(kinds), "choices")
    common = dict(alternative=options.alternative, alpha=options.alpha, confidence=options.confidence)
    tables = {"kind": kinds[0], "methods": methods, "target": options.target, "baselines": baselines,
              "counts": pairwise_counts(frame),
              "participant": pairwise_participant(frame, options.target, baselines, **common),
              "answer": pairwise_answer(frame, options.target, baselines, **common)}
    if options.mixed:
        tables["mixed"] = pairwise_mixed(frame, options.target, baselines, seed=options.seed, **common)
    if len(methods) > 2:
        try:
            tables["bradley_terry"] = pairwise_bradley_terry(frame, [options.target] + [
                m for m in methods if m != options.target], options.confidence)
        except StudyError as exc:
            res.notes.append(f"Bradley-Terry model not fitted: {exc}")
    res.pairwise = tables
    res.seconds["pairwise"] = time.perf_counter() - t0
    return True


PAIRWISE_EFFECT = "share of choices for the target (median participant and item)"


def pairwise_rows(res) -> list[dict]:
    """Rows of the pairwise kind: one per target-baseline contrast of the declared primary."""
    opt, t = res.options, res.pairwise or {}
    kind = t.get("kind", "")
    rows = []
    table = PRIMARIES[opt.primary].pick(clmm=t.get("mixed"), participant=t.get("participant"),
                                        answer=t.get("answer"))
    for r in ([] if table is None else table.to_dict(orient="records")):
        row = {"study": kind, "comparison": f"{r['target']} vs {r['baseline']}", "alternative": r["alternative"],
               "p_value": r["p_value"], "p_holm": r["p_holm"], "reject": bool(r["reject"]),
               "ci_low": r["ci_low"], "ci_high": r["ci_high"], "statistic": r["statistic"], "value": r["value"]}
        if "participants" in r and "mean_share" in r:
            row.update(unit="participant", effect="mean of participant shares of target choices",
                       estimate=r["mean_share"], ci_method="t", n=f"{r['participants']} participants")
        elif "items" in r:
            row.update(unit="answer in participant × item (mixed model)", effect=PAIRWISE_EFFECT,
                       estimate=r["share"], ci_method="Wald",
                       n=f"{r['n']} decided answers, {r['participants']} participants, {r['items']} items",
                       model=r["model"], n_participants=r["participants"], n_items=r["items"],
                       n_answers=r["n"], converged=bool(r["converged"]),
                       fit=f"{r['p_method']}; {r['convergence']}")
        else:
            row.update(unit="answer", effect="proportion of target choices", estimate=r["share"],
                       ci_method="Clopper-Pearson", n=f"{r['n']} decided answers")
        rows.append(row)
    return rows


def choice_sentence(row, *, primary: str, converged: bool | None = None, convergence: str = "",
                    several: bool = False) -> str:
    """The sentence of one row of a kind whose participants chose between two methods."""
    from study.analysis.sentence import _numbers
    numbers = _numbers(row, "Holm-adjusted p" if several else "p")
    method = PRIMARIES[primary].choice_test
    target, _, baseline = str(row["comparison"]).partition(" vs ")
    if converged is False:
        return (f"No conclusion: the primary {method} did not converge ({convergence}), so its estimate for "
                f"{target} vs {baseline} ({numbers}) must not be reported as a result.")
    if bool(row["reject"]):
        side = "more" if row["estimate"] > 0.5 else "less"
        return (f"Participants chose {target} over {baseline} {side} often than not: {numbers}; "
                f"primary analysis: {method}.")
    return (f"The data do not show that participants chose {target} over {baseline} more often than not: "
            f"{numbers}; primary analysis: {method}.")


def pairwise_section(res, role) -> list[str]:
    """Choices between two methods' maps: counts, the mixed model of the target's share,
    participant and answer level, Bradley-Terry worths."""
    from study.analysis.report import esc, section_label, with_ci
    from study.analysis.report import _table
    t = res.pairwise or {}
    parts = [f"<h2>Choices between methods ({esc(t.get('kind', ''))})</h2>",
             "<p class='note'>Decided answers only; undecided answers are left out of every test.</p>",
             _table(t["counts"], None, "Choices per pair of methods")]
    if "mixed" in t:
        parts += ["<h3>Logistic mixed model" + section_label(role("clmm"), "answer in participant × item")
                  + "</h3>",
                  "<p class='note'>R: <code>glmer(chose_target ~ 1 + (1 | participant) + (1 | item), "
                  "family = binomial)</code> per baseline; likelihood-ratio test of a share of ½ "
                  "(signed root for one-sided alternatives); Holm over baselines.</p>",
                  _table(with_ci(t["mixed"], "share", "ci_low", "ci_high", "share [CI]"),
                         ["target", "baseline", "n", "wins", "participants", "items", "share [CI]",
                          "value", "p_value", "p_holm", "reject", "p_method", "converged"],
                         "Share of choices for the target")]
    parts += ["<h3>Participant level" + section_label(role("participant"), "participant") + "</h3>",
              _table(with_ci(t["participant"], "mean_share", "ci_low", "ci_high", "mean share [CI]"),
                     ["target", "baseline", "participants", "mean share [CI]", "value", "p_value", "p_holm",
                      "rank_biserial"], "Participant shares, Wilcoxon against ½"),
              "<h3>Answer level" + section_label(role("answer"), "answer") + "</h3>",
              _table(with_ci(t["answer"], "share", "ci_low", "ci_high", "proportion [CI]"),
                     ["target", "baseline", "n", "value", "proportion [CI]", "p_value", "p_holm", "cohen_h"],
                     "Binomial tests against ½")]
    if "bradley_terry" in t:
        parts += ["<h3>Bradley-Terry worth of every method" + section_label("secondary") + "</h3>",
                  _table(with_ci(with_ci(t["bradley_terry"], "log_worth", "ci_low", "ci_high", "log-worth [CI]"),
                                 "worth", "worth_ci_low", "worth_ci_high", "worth [CI]"),
                         ["method", "reference", "log-worth [CI]", "worth [CI]", "wins", "comparisons",
                          "lr_chi2", "df", "p_equal_worth", "random"],
                         "Bradley-Terry (log-worth against the reference; worth normalised to sum 1)")]
    return parts
