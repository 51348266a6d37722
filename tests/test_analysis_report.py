"""`python -m study analyze`: the report folder, its JSON schema, escaping, atomicity."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from study.analysis.cli import main as analyze_main
from study.analysis.latex import latex_escape
from study.analysis.synthetic import synthetic_answers
from study.cli import main as study_main
from study.errors import StudyError

ROOT = Path(__file__).resolve().parent.parent
EVIL = "<script>alert('x')</script> & 100%_{Pool}"


@pytest.fixture(scope="module")
def answers_csv(tmp_path_factory) -> Path:
    df = synthetic_answers(24, methods={EVIL: 3.6, "ProtoPool w/o focal": 3.1, "ProtoTree": 2.9},
                           consistency_versions=4, attention_fail_rate=0.1, fast_rate=0.1,
                           duplicate_workers=1, seed=2)
    path = tmp_path_factory.mktemp("answers") / "answers.csv"
    df.to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def report(answers_csv, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reports") / "r1"
    rc = analyze_main([str(answers_csv), "--target", EVIL, "--out", str(out),
                       "--min-median-ms", "1000", "--no-png"])
    assert rc == 0
    return out


def test_files_written(report):
    for rel in ("summary.json", "report.html", "counts.tex", "tables/counts.csv",
                "tables/mann_whitney.csv", "tables/wilcoxon.csv", "tables/friedman.csv",
                "tables/descriptives.csv", "tables/participant_means.csv",
                "tables/consistency_counts.csv", "tables/consistency_tests.csv",
                "tables/exclusions.csv", "figures/ratings_diverging.html",
                "figures/score_distribution.html", "figures/consistency.html",
                "figures/plotly.min.js"):
        assert (report / rel).is_file(), rel
    assert not list(report.parent.glob(".r1.tmp-*"))


def test_summary_schema(report, answers_csv):
    s = json.loads((report / "summary.json").read_text())
    assert s["format"] == "protoproto-analysis" and s["version"] == 1
    assert s["input"]["rows"] == len(pd.read_csv(answers_csv))
    assert len(s["input"]["sha256"]) == 64
    assert s["saliency"]["target"] == EVIL
    assert s["saliency"]["baselines"] == ["ProtoPool w/o focal", "ProtoTree"]
    mw = s["saliency"]["answer_level"]["results"]
    assert {r["family"] for r in mw} == {"pooled", "per dataset"}
    for r in mw:
        assert r["alternative"] == "greater" and 0 <= r["p_value"] <= r["p_holm"] <= 1
        assert r["cles_ci_low"] <= r["cles"] <= r["cles_ci_high"]
        assert r["ci_method"] == "DeLong normal approximation"
    assert s["saliency"]["participant_level"]["unit"].startswith("participant")
    assert len(s["consistency"]["binomial"]) == 5  # four versions and pooled
    rules = {r["rule"] for r in s["exclusions"]["table"]}
    assert {"failed_attention", "unfinished", "fast_responder", "duplicate_worker", "total"} <= rules
    assert s["exclusions"]["rules"]["min_median_response_ms"] == 1000
    assert "figures/ratings_diverging.html" in s["files"]
    assert any("PNG export skipped" in n for n in s["notes"])
    # CSV tables agree with the JSON
    mw_csv = pd.read_csv(report / "tables/mann_whitney.csv")
    assert mw_csv["U"].tolist() == pytest.approx([r["U"] for r in mw])


def test_report_html_escaped_offline_and_self_contained(report):
    html = (report / "report.html").read_text()
    assert "<script>alert(" not in html
    assert "&lt;script&gt;alert(" in html
    assert not re.search(r"<script[^>]*\bsrc=", html)  # nothing loaded from elsewhere (no CDN)
    assert html.count("<script type='text/javascript'>") == 1  # plotly.js inlined once
    assert len(html) > 3_000_000  # plotly.js is in it
    assert "unit: participant" in html and "unit: answer" in html
    for div in ("ratings_diverging", "score_distribution", "consistency"):
        assert f'id="{div}"' in html
    # figure JSON never closes the script element early
    for block in re.findall(r"<script type=\"text/javascript\">(.*?)</script>", html, re.S):
        assert "<script>alert" not in block


def test_latex_table(report):
    primary = (report / "primary.tex").read_text()
    assert "Primary analysis (clmm)" in primary and "odds ratio of a higher rating" in primary
    assert latex_escape(EVIL) in primary and r"\_\{Pool\}" in primary
    assert primary.count(r"\\") == 1 + 2 + 1   # header, two baselines, consistency
    tex = (report / "counts.tex").read_text()
    assert latex_escape(EVIL) in tex and r"\_\{Pool\}" in tex and r"100\%" in tex
    assert tex.count(r"\midrule") == 3  # header, between cars/cub, before pooled
    counts = pd.read_csv(report / "tables/counts.csv")
    first = counts.iloc[0]
    assert f"{first['1']} & {first['2']} & {first['3']} & {first['4']} & {first['5']}" in tex


def test_failure_writes_nothing(answers_csv, tmp_path):
    out = tmp_path / "never"
    with pytest.raises(StudyError, match="--target 'Nope'"):
        analyze_main([str(answers_csv), "--target", "Nope", "--out", str(out)])
    assert not out.exists() and list(tmp_path.iterdir()) == []
    bad = tmp_path / "bad.csv"
    df = pd.read_csv(answers_csv, dtype=str, keep_default_na=False)
    df.loc[10, "answer"] = "9"
    df.to_csv(bad, index=False)
    with pytest.raises(StudyError, match=r"row 11 \(line 12\), column 'answer': '9'"):
        analyze_main([str(bad), "--target", EVIL, "--out", str(out)])
    assert not out.exists()


def test_existing_out_needs_force(answers_csv, tmp_path):
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("old")
    with pytest.raises(StudyError, match="--force"):
        analyze_main([str(answers_csv), "--target", EVIL, "--out", str(out), "--no-png"])
    assert (out / "keep.txt").read_text() == "old"
    assert analyze_main([str(answers_csv), "--target", EVIL, "--out", str(out), "--no-png",
                         "--force", "--baseline", "ProtoTree", "--bootstrap", "200",
                         "--duplicate-workers", "first"]) == 0
    assert not (out / "keep.txt").exists()
    s = json.loads((out / "summary.json").read_text())
    assert s["saliency"]["baselines"] == ["ProtoTree"]
    assert s["saliency"]["answer_level"]["results"][0]["ci_method"].startswith("percentile bootstrap")
    assert [p.name for p in tmp_path.iterdir()] == ["r"]


def test_rules_file_and_spec(answers_csv, tmp_path):
    rules = tmp_path / "rules.json"
    rules.write_text(json.dumps({"exclusions": {"attention": False, "min_median_response_ms": 500}}))
    spec = tmp_path / "spec.yaml"
    spec.write_text("kind: saliency\nattention:\n  count: 1\n  max_failures: 2\n")
    out = tmp_path / "o"
    assert analyze_main([str(answers_csv), "--target", EVIL, "--out", str(out), "--no-png",
                         "--rules", str(rules), "--spec", str(spec)]) == 0
    r = json.loads((out / "summary.json").read_text())["exclusions"]["rules"]
    assert r == {"attention": False, "unfinished": True, "min_median_response_ms": 500.0,
                 "duplicate_workers": "all", "max_attention_failures": 2}
    rules.write_text("{not json")
    with pytest.raises(StudyError, match="rules.json: not valid JSON"):
        analyze_main([str(answers_csv), "--target", EVIL, "--out", str(tmp_path / "x"),
                      "--rules", str(rules)])


def test_study_cli_prints_one_error_line(answers_csv, tmp_path, capsys):
    rc = study_main(["analyze", str(answers_csv), "--target", "Nope", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err.strip()
    assert rc == 1 and err.startswith("error: --target 'Nope'") and "\n" not in err


def test_no_torch_imported():
    code = ("import sys, study.analysis.cli, study.analysis.output, study.analysis.power_cli, "
            "study.analysis.pipeline, study.analysis.clmm, study.analysis.mixed, "
            "study.analysis.prereg, study.analysis.agreement, study.analysis.power; "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_figures_content():
    from study.analysis import AnalysisOptions, analyze
    from study.analysis.figures import consistency_bars, ratings_diverging, score_distribution

    df = synthetic_answers(10, consistency_versions=2, seed=5)
    res = analyze(df, AnalysisOptions(target="ProtoPool"))
    fig = ratings_diverging(res.cube)
    assert len(fig.data) == 6  # 1, 2, 3 (left half), 3 (right half), 4, 5
    x = np.array([t.x for t in fig.data], dtype=float)
    assert np.allclose(np.abs(x).sum(axis=0), 100.0)  # each bar spans 100 %
    left = [t for t in fig.data if np.all(np.asarray(t.x) <= 0)]
    assert {t.name for t in left} == {"1", "2", "3"}
    assert len(fig.data[0].y) == 9  # 3 methods x (2 data sets + pooled)
    dist = score_distribution(res.cube)
    assert len(dist.data) == 9 and all(np.isclose(sum(t.y), 100.0) for t in dist.data)
    cons = consistency_bars(res.consistency_counts)
    assert np.allclose(np.array([t.x for t in cons.data]).sum(axis=0), 100.0)


def test_png_export_skips_cleanly_without_renderer(tmp_path, monkeypatch):
    import builtins

    from study.analysis.figures import write_figures

    real_import = builtins.__import__

    def no_kaleido(name, *a, **k):
        if name == "kaleido":
            raise ImportError("no kaleido")
        return real_import(name, *a, **k)

    monkeypatch.setattr(builtins, "__import__", no_kaleido)
    import plotly.graph_objects as go
    files, notes = write_figures({"f": go.Figure(go.Bar(x=[1], y=[1]))}, tmp_path / "figs")
    assert files == ["figures/f.html", "figures/plotly.min.js"]
    assert notes and "kaleido" in notes[0] and not list((tmp_path / "figs").glob("*.png"))


def _png_renderer_available() -> bool:
    import importlib.util
    import shutil

    return importlib.util.find_spec("kaleido") is not None and any(
        shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome"))


@pytest.mark.skipif(not _png_renderer_available(), reason="kaleido or Chromium not installed")
def test_png_export_with_real_renderer(tmp_path):
    import plotly.graph_objects as go

    from study.analysis.figures import write_figures

    fig = go.Figure(go.Bar(x=["a", "b"], y=[1, 2]))
    files, notes = write_figures({"one": fig, "two": fig}, tmp_path / "figs")
    if notes:  # a renderer that is present but cannot start must still skip cleanly
        assert "PNG export skipped" in notes[0] and not list((tmp_path / "figs").glob("*.png"))
        pytest.skip(notes[0])
    for name in ("one", "two"):
        data = (tmp_path / "figs" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 1000
    assert "figures/one.png" in files


def test_consistency_only_study(tmp_path, capsys):
    df = synthetic_answers(12, methods={"M": 3.0}, items_per_cell=1, consistency_versions=4,
                           consistency_probs=(0.7, 0.2, 0.1), seed=9)
    df = df[df["kind"] != "saliency"]
    path = tmp_path / "cons.csv"
    df.to_csv(path, index=False)
    out = tmp_path / "rep"
    assert analyze_main([str(path), "--out", str(out), "--no-png"]) == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["saliency"] is None and s["consistency"]["binomial"][-1]["version"] == "(all)"
    pooled = s["consistency"]["binomial"][-1]
    assert pooled["n"] == pooled["k"] + int((df["choice_source"] == "euclidean").sum())
    assert not (out / "counts.tex").exists()
    printed = capsys.readouterr().out
    assert printed.startswith("PRIMARY (clmm")  # the declared primary result comes first
    assert "[primary] consistency: data-dependent vs Euclidean" in printed
    assert "[secondary] consistency answer level (all versions)" in printed
    with pytest.raises(StudyError, match="no saliency ratings"):
        analyze_main([str(path), "--out", str(tmp_path / "x"), "--target", "M"])
    bad = df.copy()
    bad["version"] = bad["version"].astype(object)
    bad.iloc[3, bad.columns.get_loc("version")] = ""
    bad.to_csv(path, index=False)
    with pytest.raises(StudyError, match=r"row 4 \(line 5\), column 'version'"):
        analyze_main([str(path), "--out", str(tmp_path / "x")])


def test_report_primary_first_and_tables_fit_1300px(report):
    """The primary result is the first section; in headless Chromium at a 1300 px wide
    window no table reaches past the window and the page does not scroll sideways."""
    html = (report / "report.html").read_text()
    assert html.index("<h2>Primary analysis") < html.index("<h2>Exclusions")
    assert html.index("<h2>Primary analysis") < html.index("Answer-level test")
    assert "label secondary" in html and "unit: participant" in html
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip("/usr/bin/chromium is not installed (scripts/setup.sh --test installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium),
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 900})
            page.goto((report / "report.html").as_uri())
            widths = page.evaluate(
                "() => ({page: document.documentElement.scrollWidth,"
                " tables: Array.from(document.querySelectorAll('table'))"
                ".map(t => Math.ceil(t.getBoundingClientRect().right)),"
                " overflow: Array.from(document.querySelectorAll('table'))"
                ".map(t => t.scrollWidth - t.parentElement.clientWidth)})")
        finally:
            browser.close()
    assert len(widths["tables"]) >= 10
    assert max(widths["tables"]) <= 1300, widths
    assert max(widths["overflow"]) <= 1, widths   # no table scrolls inside its box either
    assert widths["page"] <= 1300


def test_primary_box_headings_and_single_dataset(tmp_path):
    """Saliency only, one data set: the primary box carries the R formula, the unit and
    the counts; every table has a heading; thresholds are untested; per-data-set rows
    are not repeated; alpha has its band; the description does not mention consistency."""
    from study.analysis.pipeline import AnalysisOptions, analyze
    from study.analysis.report import render_report

    df = synthetic_answers(14, methods={"T": 3.6, "B": 3.0, "C": 3.2}, datasets=("cub",),
                           items_per_cell=5, seed=11)
    path = tmp_path / "a.csv"
    df.to_csv(path, index=False)
    res = analyze(str(path), AnalysisOptions(target="T", agreement_resamples=50))
    page = render_report(res, {})
    box = page[page.index("<div class='primary-box'"):]
    box = box[:box.index("</div>")]
    assert "Model (R syntax): <code>rating ~ method + (1 + method | participant) + (1 | item)" \
        in box or "fallback because" in box
    assert "Unit of analysis: answer in participant × item" in box
    assert re.search(r"n = 14 participants, \d+ items, \d+ answers", box)
    assert "profile likelihood" in box and "LR chi2" in box
    primary = page[page.index("<h2>Primary analysis"):page.index("<h2>Exclusions")]
    assert "consistency" not in primary.split("Every other test")[0]
    # every table right after a heading
    for m in re.finditer(r"<table>", page):
        before = page[:m.start()]
        assert before.rstrip().endswith("<div class='tw'>") and \
            before[:before.rstrip().rfind("<div class='tw'>")].rstrip().endswith("</h4>") \
            or before.rstrip().endswith("</h4>"), page[m.start() - 200:m.start()]
    thr = page[page.index("<h4>Thresholds"):]
    thr = thr[:thr.index("</table>")]
    assert "p_<wbr>value" not in thr
    assert "per dataset" not in page           # one data set: pooled rows only
    assert re.search(r"(reliable|tentative|unreliable) \(", page)
    row = res.primary.iloc[0]
    assert row["n_participants"] == 14 and row["model"].startswith("rating ~ method")
    assert row["fit"].startswith("fitted: ")
