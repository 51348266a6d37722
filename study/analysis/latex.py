"""LaTeX counts table (booktabs), the layout user-study papers print.

Why escape: method and data-set names come from the answers file; LaTeX's special
characters (& % $ # _ { } ~ ^ \\) in them would break or alter the document.
"""
from __future__ import annotations

import pandas as pd

from study.analysis.ratings import POOLED

_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#",
            "_": r"\_", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
            "^": r"\textasciicircum{}"}


def latex_escape(text) -> str:
    """Escape LaTeX's special characters in a plain-text string."""
    return "".join(_SPECIAL.get(ch, ch) for ch in str(text))


def counts_latex(counts: pd.DataFrame, descriptives: pd.DataFrame, scale,
                 caption: str = "Saliency ratings: number of answers with each score.",
                 label: str = "tab:saliency-counts") -> str:
    """A booktabs table: per data set (then pooled) and method, the count of each
    score, n and the mean score. Needs \\usepackage{booktabs}."""
    means = {(r.method, r.dataset): r.mean for r in descriptives.itertuples()}
    cols = [str(s) for s in scale]
    datasets = [d for d in dict.fromkeys(counts["dataset"]) if d != POOLED] + [POOLED]
    lines = [
        r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{latex_escape(label)}}}",
        r"\begin{tabular}{ll" + "r" * len(cols) + "rr}", r"\toprule",
        "Data set & Method & " + " & ".join(cols) + r" & $n$ & Mean \\", r"\midrule",
    ]
    for i, d in enumerate(datasets):
        sub = counts[counts["dataset"] == d]
        name = "All" if d == POOLED else latex_escape(d)
        for j, r in enumerate(sub.itertuples(index=False)):
            row = r._asdict()
            cells = [name if j == 0 else "", latex_escape(row["method"])]
            cells += [str(int(counts.loc[sub.index[j], c])) for c in cols]
            cells += [str(int(row["n"])), f"{means[(row['method'], d)]:.2f}"]
            lines.append(" & ".join(cells) + r" \\")
        if i < len(datasets) - 1:
            lines.append(r"\midrule")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)


def _p(p: float) -> str:
    if p != p:  # NaN
        return "--"
    return "$<0.001$" if p < 0.001 else f"{p:.3f}"


def primary_latex(primary: pd.DataFrame, analysis: str,
                  caption: str | None = None, label: str = "tab:primary") -> str:
    """A booktabs table of the declared primary result: comparison, effect with its
    interval, test statistic, p and Holm-adjusted p, n. Needs \\usepackage{booktabs}."""
    caption = caption or f"Primary analysis ({analysis})."
    lines = [
        r"\begin{table}[t]", r"\centering", rf"\caption{{{latex_escape(caption)}}}",
        rf"\label{{{latex_escape(label)}}}", r"\begin{tabular}{llrrrrl}", r"\toprule",
        r"Comparison & Effect & Estimate [95\% CI] & Statistic & $p$ & $p_\mathrm{Holm}$ & $n$ \\",
        r"\midrule",
    ]
    for r in primary.itertuples(index=False):
        est = f"{r.estimate:.2f} [{r.ci_low:.2f}, {r.ci_high:.2f}]"
        lines.append(" & ".join([latex_escape(r.comparison), latex_escape(r.effect), est,
                                 f"{latex_escape(r.statistic)} = {r.value:.2f}", _p(r.p_value),
                                 _p(r.p_holm), latex_escape(r.n)]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}", ""]
    return "\n".join(lines)
