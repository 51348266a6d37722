"""One self-contained HTML page with every table and figure of an analysis.

Why self-contained: the report is mailed, archived and opened offline years later, so
plotly.js is inlined once from the installed plotly package (never a CDN) and every
figure is a div that uses it. Every piece of text from the data (method, data set,
version names, file names, notes) is HTML-escaped here; figure JSON is produced by
Plotly, which escapes "</" inside its script blocks.
"""
from __future__ import annotations

import html
import math

import pandas as pd
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from study.analysis.consistency import POOLED_VERSION
from study.analysis.figures import CONSISTENCY_FIGURE
from study.analysis.pipeline import AnalysisResult
from study.analysis.plan import PRIMARIES
from study.analysis.ratings import POOLED
from study.analysis.sentence import _is_consistency, study_sentences

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1260px;
color:#222;line-height:1.4;padding:0 1em}
h1{font-size:1.6em}h2{border-bottom:1px solid #ccc;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:.6em 0 1.2em;font-size:.86em}
th,td{border:1px solid #ddd;padding:.25em .55em;text-align:right}
th{background:#f3f3f3}td.t,th.t{text-align:left}
.note{color:#555;font-size:.9em}.label{display:inline-block;background:#eef;border-radius:4px;
padding:0 .4em;font-size:.8em;margin-left:.5em;vertical-align:middle}
.label.primary{background:#1b5e20;color:#fff}.label.secondary{background:#eee;color:#444}
.tw{max-width:100%;overflow-x:auto}
"""


def scoped_css(scope: str) -> str:
    """The report's rules for its tables, labels and notes, limited to elements inside
    `scope` (a CSS selector), for embedding the report's sections in another page."""
    rules = []
    for rule in CSS.replace("\n", "").split("}"):
        if "{" not in rule:
            continue
        selectors, body = rule.split("{", 1)
        if selectors.strip() == "body":
            continue
        rules.append(",".join(f"{scope} {sel.strip()}" for sel in selectors.split(",")) + "{" + body + "}")
    return "".join(rules)


def esc(v) -> str:
    return html.escape(str(v), quote=True)


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if math.isnan(v):
            return "–"
        if v != 0 and (abs(v) < 1e-3 or abs(v) >= 1e6):
            return f"{v:.3g}"
        return f"{v:.4g}" if not v.is_integer() else f"{v:.0f}"
    return str(v)


def html_table(df: pd.DataFrame, columns: list[str] | None = None) -> str:
    """An escaped HTML table; text columns left-aligned."""
    cols = [c for c in (columns or list(df.columns)) if c in df.columns]
    text_cols = {c for c in cols if df[c].dtype == object or isinstance(df[c].dtype, pd.StringDtype)}
    # a header may break after an underscore (<wbr>) when the table is narrower than its names
    head = "".join(f'<th class="{"t" if c in text_cols else ""}">{esc(c).replace("_", "_<wbr>")}</th>'
                   for c in cols)
    body = []
    for row in df[cols].itertuples(index=False):
        cells = []
        for c, v in zip(cols, row):
            v = v.item() if hasattr(v, "item") else v
            cells.append(f'<td class="{"t" if c in text_cols else ""}">{esc(_fmt(v))}</td>')
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure_div(fig: go.Figure, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False})


def with_ci(df: pd.DataFrame, est: str, lo: str, hi: str, name: str | None = None,
            digits: int = 3) -> pd.DataFrame:
    """Replace three columns by one "estimate [low, high]" text column (narrower tables)."""
    if est not in df.columns or lo not in df.columns or hi not in df.columns:
        return df
    def cell(e, a, b):
        if e is None or (isinstance(e, float) and math.isnan(e)):
            return "–"
        return f"{e:.{digits}g} [{a:.{digits}g}, {b:.{digits}g}]"
    out = df.copy()
    pos = list(out.columns).index(est)
    text = [cell(e, a, b) for e, a, b in zip(out[est], out[lo], out[hi])]
    out = out.drop(columns=[est, lo, hi])
    out.insert(pos, name or f"{est} [CI]", pd.Series(text, index=out.index, dtype=object))
    return out


def section_label(role: str, unit: str | None = None) -> str:
    parts = [f"<span class='label {esc(role)}'>{esc(role)}</span>"]
    if unit:
        parts.append(f"<span class='label'>unit: {esc(unit)}</span>")
    return "".join(parts)


MW_COLS = ["family", "dataset", "baseline", "n_x", "n_y", "U", "z", "p_value", "p_holm", "reject",
           "rank_biserial [CI]", "cles [CI]", "p_method"]
WIL_COLS = ["family", "dataset", "baseline", "n_pairs", "n_nonzero", "mean diff [CI]",
            "median_difference", "W", "z", "p_value", "p_holm", "reject", "rank_biserial",
            "p_method"]
PRIMARY_COLS = ["study", "comparison", "unit", "effect", "estimate [CI]", "ci_method", "statistic",
                "value", "p_value", "p_holm", "reject", "alternative", "n"]
CONTRAST_COLS = ["baseline", "log_odds_ratio", "se", "odds ratio [profile CI]", "odds ratio [CI]",
                 "lr_chi2", "p_lr", "p_bootstrap", "p_value", "p_holm", "reject", "z", "p_wald",
                 "alternative"]


def _isnan(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _reference_row(df: pd.DataFrame) -> pd.DataFrame:
    df = df.copy()
    df.loc[df["is_reference"], "odds ratio vs reference [CI]"] = "1 (reference)"
    return df


def _multi_source_section(res: AnalysisResult, role) -> list[str]:
    """Consistency with more than two pair sources: model, per-source preferences,
    participant win rates (Friedman), per-comparison binomial tests."""
    m = res.consistency_multi
    src = ", ".join(m["sources"])
    parts = [
        "<h2>Consistency choices</h2>",
        f"<p class='note'>Pair sources compared two at a time: {esc(src)} (reference "
        f"{esc(m['sources'][0])}). Undecided answers are counted and left out of every test.</p>",
        _table(one_family(res.consistency_counts, "version", POOLED_VERSION), None,
               "Choices per questionnaire version"),
    ]
    if "model" in m:
        r = m["model"].iloc[0]
        parts += [
            "<h3>Bradley-Terry logistic mixed model" + section_label(
                role("clmm"), "answer in participant × pair") + "</h3>",
            "<p class='note'>R: <code>" + esc(f"glmer({r['model'].split(',')[0]}, family = binomial)")
            + "</code>, x<sub>s</sub> = +1 when s is the question's earlier source (declared "
            "order), −1 when the later: logit P(earlier chosen) = β<sub>earlier</sub> − "
            "β<sub>later</sub> + u<sub>participant, earlier</sub> − u<sub>participant, later</sub> "
            "+ b<sub>pair</sub> (each participant's own worth of every source, correlated), "
            "β of the reference = 0, Laplace approximation; likelihood-ratio test of no source "
            "preferred (all β = 0), parametric bootstrap of the ratio when participants or pairs "
            "number fewer than 10. Odds ratios against the reference (median participant and "
            "pair) with Wald intervals and Holm-adjusted Wald tests are follow-ups; the worth "
            "β<sub>s</sub> − mean β is the source's preference against the average source.</p>",
            _table(m["model"], ["sources", "n", "undecided", "participants", "pairs",
                                "comparisons", "lr_chi2", "df", "p_value", "p_method",
                                "participant_sd", "participant_corr", "pair_sd", "converged"],
                   "Test of no source preferred"),
            _table(_reference_row(with_ci(with_ci(m["preferences"], "odds_ratio", "or_ci_low",
                                                  "or_ci_high", "odds ratio vs reference [CI]"),
                                          "worth", "worth_ci_low", "worth_ci_high", "worth [CI]")),
                   ["source", "shown", "chosen", "win_rate", "odds ratio vs reference [CI]",
                    "p_wald", "p_holm", "p_over_reference", "worth [CI]"],
                   "Preference per pair source"),
        ]
    part = m["participant"]
    parts += [
        "<h3>Participant level" + section_label(role("participant"), "participant") + "</h3>",
        "<p class='note'>Each participant's win rate per source (chosen / shown among decided "
        "answers; ½ for every source when none is preferred); mean with its t interval; "
        "Friedman test across sources over the participants who saw every source.</p>",
        _table(with_ci(part["win_rates"], "mean_win_rate", "ci_low", "ci_high",
                       "mean win rate [CI]"), ["source", "participants", "mean win rate [CI]"],
               "Participant win rates per source"),
        _table(part["friedman"], ["participants", "sources", "chi2", "df", "p_value"],
               "Friedman test across sources"),
    ]
    ans = m["answer"]
    parts += [
        "<h3>Answer level" + section_label(role("answer"), "answer") + "</h3>",
        "<p class='note'>Per comparison, two-sided binomial test of the earlier source against "
        "½ (Clopper-Pearson interval, Holm); overall, Pearson chi-square that every comparison "
        "is 50/50. Treats answers as independent.</p>",
        _table(with_ci(ans["comparisons"], "proportion", "ci_low", "ci_high", "proportion [CI]"),
               ["comparison", "undecided", "k", "n", "proportion [CI]", "p_value", "p_holm"],
               "Binomial tests per comparison"),
        _table(ans["overall"], ["comparisons", "n", "chi2", "df", "p_value"],
               "Every comparison 50/50"),
    ]
    return parts


def _primary_box(res: AnalysisResult) -> list[str]:
    """Per study of the primary table: model formula (R syntax), unit of analysis, n
    participants / items / answers, estimate with its interval, the test, the fit."""
    out = []
    for study in dict.fromkeys(res.primary["study"].tolist()):
        rows = res.primary[res.primary["study"] == study]
        first = rows.iloc[0]
        items = "pairs" if _is_consistency(str(study)) else "items"
        n = (f"{_fmt(first['n_participants'])} participants, {_fmt(first['n_items'])} {items}, "
             f"{_fmt(first['n_answers'])} answers") if first.get("model") else str(first["n"])
        lines = []
        if first.get("model"):
            lines.append(f"<li>Model (R syntax): <code>{esc(first['model'])}</code></li>")
        lines.append(f"<li>Unit of analysis: {esc(first['unit'])}; n = {esc(n)}</li>")
        for r in rows.itertuples():
            test = (f"{esc(r.statistic)} = {esc(_fmt(r.value))}, p = {esc(_fmt(r.p_value))}"
                    + (f", Holm p = {esc(_fmt(r.p_holm))}" if r.p_holm != r.p_value
                       and not _isnan(r.p_holm) else "")
                    + f" ({esc(r.alternative)})") if r.statistic else ""
            if _isnan(r.estimate):      # an omnibus test (several pair sources): no estimate
                lines.append(f"<li>{esc(r.comparison)}: <strong>{test}</strong></li>")
                continue
            lines.append(
                f"<li>{esc(r.comparison)}: {esc(r.effect)} <strong>{esc(_fmt(r.estimate))}</strong> "
                f"[{esc(_fmt(r.ci_low))}, {esc(_fmt(r.ci_high))}] ({esc(r.ci_method or 'Wald')} "
                f"{res.options.confidence:.0%} interval)" + (f"; {test}" if test else "") + "</li>")
        if first.get("fit"):
            lines.append(f"<li>Fit: {esc(first['fit'])}</li>")
        # the result in words first (study/analysis/sentence.py), then its numbers
        words = "".join(f"<p class='headline'><strong>{esc(s)}</strong></p>"
                        for s in study_sentences(res, study))
        out.append(f"<div class='primary-box' data-study='{esc(study)}'>"
                   f"<h3>Primary result: {esc(study)}</h3>{words}<ul>{''.join(lines)}</ul></div>")
    return out


def _primary_section(res: AnalysisResult) -> list[str]:
    from study.analysis.primary import primary_description
    opt = res.options
    desc = primary_description(opt.primary, saliency=res.cube is not None,
                               consistency=res.consistency_counts is not None)
    parts = ["<h2>Primary analysis" + section_label("primary") + "</h2>",
             f"<p>Declared primary analysis: <strong>{esc(opt.primary)}</strong> — "
             f"{esc(desc)}. Every other test in this report is secondary.</p>"]
    pr = res.preregistration
    if pr is not None:
        if pr["deviations"]:
            parts.append(f"<p><strong>Deviations from the preregistration</strong> "
                         f"(<code>{esc(pr['file'])}</code>, sha256 {esc(pr['sha256'][:16])}…):</p>"
                         "<ul>" + "".join(f"<li>{esc(d)}</li>" for d in pr["deviations"]) + "</ul>")
        else:
            parts.append(f"<p><strong>As preregistered</strong> (<code>{esc(pr['file'])}</code>, "
                         f"sha256 {esc(pr['sha256'][:16])}…).</p>")
    else:
        parts.append("<p class='note'>No preregistration was given (--prereg).</p>")
    if res.primary is not None and len(res.primary):
        parts += _primary_box(res)
        table = with_ci(res.primary, "estimate", "ci_low", "ci_high", "estimate [CI]")
        parts += ["<h4>Primary results, one row per test</h4>", html_table(table, PRIMARY_COLS)]
    if res.clmm is not None and PRIMARIES[opt.primary].role("clmm") == "primary":
        parts.append(f"<p class='note'>CLMM fit: {esc(res.clmm['convergence'].iloc[0]['summary'])}."
                     "</p>")
    return parts


def one_family(df: pd.DataFrame, column: str, pooled: str) -> pd.DataFrame:
    """With a single data set (or version) the per-set rows repeat the pooled ones: keep
    the pooled rows only."""
    if column not in df.columns:
        return df
    others = df[df[column] != pooled]
    if others[column].nunique() <= 1 and (df[column] == pooled).any():
        return df[df[column] == pooled]
    return df


def alpha_band(alpha: float) -> str:
    """Krippendorff's conventional bands: >= 0.8 reliable, >= 0.667 tentative."""
    if not math.isfinite(alpha):
        return "–"
    if alpha >= 0.8:
        return "reliable (≥ 0.8)"
    if alpha >= 0.667:
        return "tentative (≥ 0.667)"
    return "unreliable (< 0.667)"


def _table(df: pd.DataFrame, columns: list[str] | None = None, title: str = "") -> str:
    """A table under its own heading (escaped) in a scrolling wrapper."""
    head = f"<h4>{esc(title)}</h4>" if title else ""
    return f"{head}<div class='tw'>{html_table(df, columns)}</div>"


def _clmm_section(res: AnalysisResult, role: str, alternative: str) -> list[str]:
    c, opt = res.clmm, res.options
    assert c is not None
    st = c["structure"].iloc[0] if "structure" in c else None
    contrasts = with_ci(c["contrasts"], "odds_ratio", "or_ci_low", "or_ci_high",
                        "odds ratio [CI]")
    if "or_profile_ci_low" in contrasts:
        contrasts["odds ratio [profile CI]"] = [
            f"{e:.3g} [{lo:.3g}, {hi:.3g}]" for e, lo, hi in
            zip(c["contrasts"]["odds_ratio"], contrasts["or_profile_ci_low"],
                contrasts["or_profile_ci_high"])]
    coefs = c["coefficients"]
    thresholds = coefs[coefs["kind"] == "threshold"]
    fixed = coefs[coefs["kind"] != "threshold"]
    parts = [
        "<h3>Cumulative link mixed model" + section_label(role, "answer in participant × item")
        + "</h3>",
        (f"<p>{esc(st['line'])}</p>" if st is not None else ""),
        "<p class='note'>logit P(rating ≤ j) = θ<sub>j</sub> − method − data set − random "
        "effects (normal; structure as fitted above), Laplace approximation; the target is "
        "the reference level. Contrast: log odds ratio of a higher rating, target − baseline; "
        f"test: likelihood ratio against the model with target = baseline (signed root for a "
        f"one-sided alternative; alternative: {alternative}), Holm; "
        f"{opt.confidence:.0%} profile-likelihood and Wald intervals of the odds ratio; Wald z "
        f"beside it. Fit: {esc(c['convergence'].iloc[0]['summary'])}.</p>",
        _table(contrasts, [col for col in CONTRAST_COLS if col not in ("p_lr", "p_bootstrap")
                           or contrasts[col].notna().any() and "p_bootstrap" in contrasts
                           and contrasts["p_bootstrap"].notna().any()],
               "Contrasts: target − baseline (" + str(c["contrasts"]["test"].iloc[0]) + ")"),
    ]
    if "attempts" in c:
        parts.append(_table(c["attempts"], ["structure", "formula", "used", "reason", "loglik"],
                            "Declared random-effects structures, in the order tried"))
    parts += [
        _table(c["lrt"], ["effect", "df", "chi2", "p_value", "loglik_full", "loglik_reduced"],
               "Likelihood-ratio test of the method effect (null: the model without method)"),
        _table(with_ci(fixed, "estimate", "ci_low", "ci_high", "estimate [CI]"),
               ["term", "estimate [CI]", "se", "z", "p_value"],
               "Fixed effects (log odds of a higher rating; Wald)"),
        _table(thresholds, ["term", "estimate", "se"],
               "Thresholds (cut points on the logit scale; not tested)"),
        _table(c["variance"], None, "Random effects (SD and correlations)"),
    ]
    if "probabilities" in c and len(c["probabilities"]):
        pr = with_ci(c["probabilities"], "p_equal", "p_equal_ci_low", "p_equal_ci_high",
                     "P(rating = k) [CI]")
        pr = with_ci(pr, "p_at_least", "p_at_least_ci_low", "p_at_least_ci_high",
                     "P(rating ≥ k) [CI]")
        for kind in ("conditional", "population-averaged"):
            sub = pr[pr["kind"] == kind]
            wide = sub.pivot(index="category", columns="method",
                             values="P(rating ≥ k) [CI]").reset_index()
            wide = wide.rename(columns={"category": "k"})
            parts.append(_table(wide, None, f"Predicted P(rating ≥ k) per method, {kind}: "
                                            f"{sub['meaning'].iloc[0]}"))
        parts.append(_table(pr, ["method", "kind", "category", "P(rating = k) [CI]",
                                 "P(rating ≥ k) [CI]"],
                            "Predicted probability of each rating per method "
                            f"({opt.confidence:.0%} delta-method intervals)"))
    if "proportional_odds" in c and len(c["proportional_odds"]):
        parts += [_table(c["proportional_odds"], ["term", "df", "lr_chi2", "p_value"],
                         "Diagnostic: proportional odds (nominal-effects likelihood-ratio test "
                         "on the model without random effects, as R's nominal_test)"),
                  f"<p class='note'>{esc(c.get('proportional_odds_advice', ''))}</p>"]
    return parts


def render_report(res: AnalysisResult, figures: dict[str, go.Figure], *,
                  notes: list[str] | None = None, files: list[str] | None = None) -> str:
    """The full HTML page as a string: the primary result first, then everything else."""
    return "\n".join([
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<title>Study analysis</title>", f"<style>{CSS}</style>",
        f"<script type='text/javascript'>{get_plotlyjs()}</script></head><body>",
        "<h1>Study analysis</h1>",
        *report_sections(res, figures, notes=notes, files=files),
        "</body></html>",
    ])


def report_sections(res: AnalysisResult, figures: dict[str, go.Figure] | None, *,
                    notes: list[str] | None = None, files: list[str] | None = None,
                    primary: bool = True) -> list[str]:
    """The report's body as HTML fragments, every text escaped: the primary result, then
    exclusions, the secondary tests and descriptives, each table narrowed to fit a
    1300 px window (estimates with their intervals in one column). `figures=None` leaves
    the figures out (the app shows them with its own Plotly component); `primary=False`
    leaves out the primary section (the app shows it as a field-by-value table)."""
    figures = figures or {}
    opt = res.options
    role = PRIMARIES[opt.primary].role
    parts = [
        f"<p>Answers: <code>{esc(res.source)}</code> — {res.rows} rows "
        f"({esc(', '.join(f'{k}: {v}' for k, v in res.kinds.items()))}).</p>",
        *(_primary_section(res) if primary else []),
        "<h2>Exclusions</h2>",
        "<p class='note'>Rules run in this order; <em>flagged</em> counts a rule on its own, "
        "<em>excluded</em> what it removed after the earlier rules.</p>",
        _table(res.exclusions, None, "Exclusion rules"),
    ]
    if res.cube is not None:
        a = {"greater": "target &gt; baseline", "less": "target &lt; baseline",
             "two-sided": "target ≠ baseline"}[opt.alternative]
        parts += [
            "<h2>Saliency ratings</h2>",
            f"<p>Target: <strong>{esc(opt.target)}</strong>; baselines: "
            f"{esc(', '.join(res.baselines))}. Scale {res.cube.scale[0]}–{res.cube.scale[-1]}.</p>",
        ]
        if res.clmm is not None:
            parts += _clmm_section(res, role("clmm"), a)
        wil = with_ci(one_family(res.participant["wilcoxon"], "dataset", POOLED),
                      "mean_difference", "ci_low", "ci_high",
                      "mean diff [CI]")
        mw = with_ci(one_family(res.mann_whitney, "dataset", POOLED), "rank_biserial", "rank_biserial_ci_low",
                     "rank_biserial_ci_high", "rank_biserial [CI]")
        mw = with_ci(mw, "cles", "cles_ci_low", "cles_ci_high", "cles [CI]")
        parts += [
            "<h3>Participant-level tests" + section_label(role("participant"), "participant")
            + "</h3>",
            "<p class='note'>Each participant's mean rating per method. Wilcoxon signed-rank "
            f"test (paired, alternative: {a}; zero differences dropped; "
            "rank-biserial = matched-pairs rank-biserial correlation), Holm within each family; "
            f"mean difference with its {opt.confidence:.0%} t interval over participants; "
            "Friedman test across methods on participants who rated all of them "
            "(Kendall's W as effect size).</p>",
            _table(wil, WIL_COLS, "Wilcoxon signed-rank tests, target − baseline"),
            _table(one_family(res.participant["friedman"], "dataset", POOLED), None,
                   "Friedman test across methods"),
            _table(with_ci(one_family(res.participant["method_means"], "dataset", POOLED),
                           "mean", "ci_low", "ci_high", "mean [CI]"),
                   ["method", "dataset", "participants", "mean [CI]"],
                   f"Mean of participant means per method ({opt.confidence:.0%} t interval "
                   "over participants)"),
            "<h3>Answer-level test" + section_label(role("answer"), "answer") + "</h3>",
            f"<p class='note'>Mann-Whitney U, alternative: {a}. "
            "U is the target's; z is tie-corrected. Effect sizes: rank-biserial correlation and "
            "common-language effect size (CLES = P(target &gt; baseline) + ½P(tie)), with "
            f"{esc(res.mann_whitney['ci_method'].iloc[0] if 'ci_method' in res.mann_whitney else '')} "
            "confidence intervals. Holm's correction within each family (pooled; per data "
            "set). Answers of one participant are not independent: read this next to the "
            "participant-level and mixed-model analyses.</p>",
            _table(mw, MW_COLS, "Mann-Whitney U tests, target vs baseline"),
            "<h3>Counts of each score" + section_label("descriptive") + "</h3>",
            _table(one_family(res.counts, "dataset", POOLED), None, "Answers per score"),
            "<h3>Descriptive statistics" + section_label("descriptive") + "</h3>",
            f"<p class='note'>{opt.confidence:.0%} interval of the mean: Student's t interval "
            "(answers treated as independent; see the participant-level intervals above).</p>",
            _table(with_ci(one_family(res.descriptives, "dataset", POOLED), "mean", "ci_low",
                           "ci_high", "mean [CI]"),
                   ["method", "dataset", "n", "mean [CI]", "median", "sd"],
                   "Ratings per method and data set"),
        ]
        for key in ("ratings_diverging", "score_distribution"):
            if key in figures:
                parts.append(_figure_div(figures[key], key))
    if res.consistency_multi is not None:
        parts += _multi_source_section(res, role)
        if CONSISTENCY_FIGURE in figures:
            parts.append(_figure_div(figures[CONSISTENCY_FIGURE], CONSISTENCY_FIGURE))
    elif res.consistency_counts is not None:
        parts += [
            "<h2>Consistency choices</h2>",
            "<p class='note'>Answers preferring the data-dependent or the Euclidean pair set, "
            "and undecided; undecided answers are left out of every test.</p>",
            _table(one_family(res.consistency_counts, "version", POOLED_VERSION), None,
                   "Choices per questionnaire version"),
        ]
        if res.consistency_mixed is not None:
            parts += [
                "<h3>Logistic mixed model" + section_label(role("clmm"),
                                                          "answer in participant × pair")
                + "</h3>",
                "<p class='note'>R: <code>glmer(choice ~ 1 + (1 | participant) + (1 | pair), "
                "family = binomial)</code>: logit P(data-dependent) = μ + b<sub>participant</sub> "
                "+ b<sub>pair</sub>, Laplace approximation; likelihood-ratio test of μ = 0 (no "
                "preference), two-sided (parametric bootstrap of the ratio when participants or "
                "pairs number fewer than 10); proportion of the median participant and pair "
                "with its Wald interval.</p>",
                _table(with_ci(one_family(res.consistency_mixed, "version", POOLED_VERSION),
                               "proportion_median_participant", "ci_low",
                               "ci_high", "P(dd) median participant [CI]"),
                       ["version", "n", "k", "clusters", "pairs", "P(dd) median participant [CI]",
                        "log_odds", "se", "lr_chi2", "p_value", "p_method", "participant_sd",
                        "pair_sd", "converged"], "Logistic mixed model per version"),
            ]
        parts += [
            "<h3>Participant level" + section_label(role("participant"), "participant") + "</h3>",
            "<p class='note'>Each participant's proportion of data-dependent choices; mean with "
            "its t interval; Wilcoxon signed-rank test against ½ (two-sided).</p>",
            _table(with_ci(one_family(res.consistency_participant, "version", POOLED_VERSION),
                           "mean_proportion", "ci_low", "ci_high", "mean proportion [CI]"),
                   ["version", "participants", "mean proportion [CI]", "W", "p_value",
                    "p_method"], "Participant proportions, Wilcoxon against ½"),
            "<h3>Answer level" + section_label(role("answer"), "answer") + "</h3>",
            "<p class='note'>Two-sided binomial test of data-dependent vs Euclidean against ½; "
            "interval: Clopper-Pearson (exact). Treats answers as independent.</p>",
            _table(with_ci(one_family(res.consistency_tests, "version", POOLED_VERSION),
                           "proportion", "ci_low", "ci_high", "proportion [CI]"),
                   ["version", "undecided", "k", "n", "proportion [CI]", "p_value"],
                   "Binomial tests against ½"),
        ]
        if CONSISTENCY_FIGURE in figures:
            parts.append(_figure_div(figures[CONSISTENCY_FIGURE], CONSISTENCY_FIGURE))
    for analysis in res.analyses:      # sections an analysis brings itself (study/kinds/analyses.py)
        parts += analysis.report_sections(res, role)
    if res.agreement is not None and len(res.agreement):
        parts += [
            "<h2>Agreement between participants" + section_label("secondary") + "</h2>",
            "<p class='note'>Krippendorff's alpha over items (ordinal metric for ratings, "
            f"nominal for choices); {opt.confidence:.0%} percentile bootstrap interval over "
            "items. 1 = perfect agreement, 0 = chance. Conventional bands (Krippendorff): "
            "α ≥ 0.8 reliable, 0.667 ≤ α &lt; 0.8 tentative conclusions only, below 0.667 "
            "unreliable; read the band of the interval's lower end too.</p>",
            _table(with_ci(res.agreement.assign(
                band=[alpha_band(v) for v in res.agreement["alpha"]],
                band_of_ci_low=[alpha_band(v) for v in res.agreement["ci_low"]]),
                "alpha", "ci_low", "ci_high", "alpha [CI]"),
                ["answers", "method", "metric", "units", "pairable_values", "alpha [CI]", "band",
                 "band_of_ci_low", "resamples"], "Krippendorff's alpha"),
        ]
    all_notes = list(res.notes) + list(notes or [])
    if all_notes:
        parts.append("<h2>Notes</h2><ul>" + "".join(f"<li>{esc(n)}</li>" for n in all_notes)
                     + "</ul>")
    if files:
        parts.append("<h2>Files</h2><ul>" + "".join(f"<li><code>{esc(f)}</code></li>" for f in files)
                     + "</ul>")
    return parts
