"""Human ratings next to automatic prototype metrics (study.analysis.metrics_join)."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.analysis.metrics_join import join_metrics, parse_metrics_args, read_key, spearman_ci
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError

ROOT = Path(__file__).resolve().parent.parent


def test_spearman_ci_is_scipys_rho_with_fieller_fisher_z():
    rng = np.random.default_rng(0)
    x = rng.normal(size=25)
    y = x + rng.normal(size=25)
    r = spearman_ci(x, y, confidence=0.9)
    ref = stats.spearmanr(x, y)
    assert r["rho"] == pytest.approx(ref.statistic) and r["p_value"] == pytest.approx(ref.pvalue)
    half = stats.norm.ppf(0.95) * math.sqrt(1.06 / 22)
    assert r["ci_low"] == pytest.approx(math.tanh(math.atanh(ref.statistic) - half))
    assert r["ci_high"] == pytest.approx(math.tanh(math.atanh(ref.statistic) + half))
    assert r["n"] == 25 and "Fieller" in r["ci_method"]
    b1 = spearman_ci(x, y, bootstrap=300, seed=4)
    assert b1 == spearman_ci(x, y, bootstrap=300, seed=4)          # seeded
    assert b1["ci_low"] < b1["rho"] < b1["ci_high"] and "bootstrap" in b1["ci_method"]
    with_nan = spearman_ci(np.r_[x, np.nan], np.r_[y, 1.0])
    assert with_nan["n"] == 25 and with_nan["rho"] == pytest.approx(ref.statistic)
    assert math.isnan(spearman_ci([1, 2, 3], [1, 1, 1])["rho"])    # constant metric: no correlation


def _study(tmp_path: Path):
    """Answers of 8 participants on 12 items (6 prototypes of A, 6 of B), a key and metrics."""
    df = synthetic_answers(8, methods={"A": 3.5, "B": 3.0}, datasets=("cub",), items_per_cell=6,
                           attention_items=0, seed=1)
    items = sorted(df.loc[df["kind"] == "saliency", "item_id"].unique(), key=lambda s: int(s[1:]))
    method_of = df.drop_duplicates("item_id").set_index("item_id")["method"].to_dict()
    key_items = {iid: {"kind": "saliency", "dataset": "cub", "method": method_of[iid], "atlas": method_of[iid],
                       "heatmap": f"h{i}", "image_id": i, "prototype": 10 + i % 6} for i, iid in enumerate(items)}
    # ratings grow with the prototype for A, fall for B (plus a little noise)
    rng = np.random.default_rng(2)
    proto = df["item_id"].map(lambda i: key_items[i]["prototype"] - 10)
    base = np.where(df["method"] == "A", 1 + proto * 4 / 5, 5 - proto * 4 / 5)
    df["answer"] = np.clip(np.round(base + rng.normal(0, 0.3, len(df))), 1, 5).astype(int).astype(str)
    study = tmp_path / "study"
    (study / "private").mkdir(parents=True)
    (study / "private" / "key.json").write_text(json.dumps(
        {"format": "protoproto-study-key", "version": 1, "study_id": "s", "items": key_items,
         "methods": [{"label": "A", "atlas": "A", "dataset": "cub"}, {"label": "B", "atlas": "B", "dataset": "cub"}],
         "private_terms": []}))
    metrics = {}
    for m in ("A", "B"):
        protos = [{"id": p, "classes": [0], "n_images": 5, "stability": 0.5 + p / 40, "box_share": 0.7,
                   "consistency": {"consistent": p >= 13, "part": "beak", "frequency": p / 20},
                   "purity": {"purity": p / 16, "part": "beak"}} for p in range(16)]
        path = tmp_path / f"metrics-{m}.json"
        path.write_text(json.dumps({"format": "protoproto-metrics", "version": 1, "settings": {}, "model": {},
                                    "prototypes": protos}))
        metrics[m] = path
    answers = tmp_path / "answers.csv"
    df.to_csv(answers, index=False)
    return answers, study, metrics, df


def test_join_puts_mean_ratings_next_to_metrics(tmp_path):
    from study.analysis.io import load_answers

    answers, study, metrics, df = _study(tmp_path)
    res = join_metrics(load_answers(answers), read_key(study), metrics)
    assert len(res.table) == 12 and set(res.table["prototype"]) == set(range(10, 16))
    a = res.table[res.table["method"] == "A"].sort_values("prototype")
    assert (a["n_ratings"] == 8).all()
    assert a["purity"].tolist() == pytest.approx([p / 16 for p in range(10, 16)])
    assert a["consistent"].tolist() == [0, 0, 0, 1, 1, 1]
    cor = res.correlations.set_index(["method", "metric"])
    assert cor.loc[("A", "purity"), "rho"] > 0.8 and cor.loc[("B", "purity"), "rho"] < -0.8
    assert cor.loc[("A", "purity"), "rho"] == pytest.approx(stats.spearmanr(a["mean_rating"], a["purity"]).statistic)
    assert math.isnan(cor.loc[("A", "box_share"), "rho"])        # a constant metric
    assert cor.loc[("(all)", "purity"), "n"] == 12
    # a rated prototype without metrics, an unknown item, a method without ratings: one clear error each
    bad = tmp_path / "few.json"
    bad.write_text(json.dumps({"format": "protoproto-metrics", "version": 1, "prototypes": [{"id": 10}]}))
    with pytest.raises(StudyError, match="prototype 11 of method 'A' was rated but has no metrics"):
        join_metrics(load_answers(answers), read_key(study), {"A": bad})
    with pytest.raises(StudyError, match="method 'C' has no rated prototypes"):
        join_metrics(load_answers(answers), read_key(study), {"C": metrics["A"]})
    key = read_key(study)
    key["items"].pop(sorted(key["items"])[0])
    with pytest.raises(StudyError, match="is not in the study key"):
        join_metrics(load_answers(answers), key, metrics)
    with pytest.raises(StudyError, match="METHOD=PATH"):
        parse_metrics_args(["A"])


def test_analyze_command_writes_the_join_from_another_folder(tmp_path):
    answers, study, metrics, _ = _study(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    cmd = [sys.executable, "-m", "study", "analyze", str(answers), "--target", "A", "--out", "rep", "--no-png",
           "--metrics", f"A={metrics['A']}", "--metrics", f"B={metrics['B']}", "--key", str(study)]
    out = subprocess.run(cmd, cwd=elsewhere, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "A mean rating ~ purity: rho=" in out.stdout
    table = pd.read_csv(elsewhere / "rep" / "tables" / "metrics_correlations.csv")
    assert set(table["method"]) == {"A", "B", "(all)"} and len(table) == 15
    doc = json.loads((elsewhere / "rep" / "metrics_join.json").read_text())
    assert doc["format"] == "protoproto-metrics-join" and len(doc["prototypes"]) == 12
    # --metrics without --key: one error line, no report
    bad = subprocess.run(cmd[:-2] + ["--out", "rep2"], cwd=elsewhere, env=env, capture_output=True, text=True,
                         timeout=300)
    assert bad.returncode != 0 and "--key" in bad.stderr and not (elsewhere / "rep2").exists()


def test_consistency_choices_agree_with_the_metric(tmp_path):
    """Ten people, four consistency questions of method A (left = data-dependent pair).
    Everyone picks the purer pair, except P0 (always undecided) and P1 (always the other)."""
    from study.analysis.io import load_answers

    pairs = {f"c{i}": ([2 * i, 2 * i + 1], [8 + 2 * i, 9 + 2 * i]) for i in range(4)}
    purity = {p: (p / 16 if p < 8 else 0.1) for p in range(16)}      # c1's left pair is purer, c0's right ...
    purity.update({12: 0.9, 13: 0.9, 14: 0.95, 15: 0.95})               # ... and c2's and c3's right pairs
    rows = []
    for person in range(10):
        for item, (left, right) in pairs.items():
            left_better = np.mean([purity[p] for p in left]) > np.mean([purity[p] for p in right])
            pick_left = left_better if person != 1 else not left_better
            answer = "undecided" if person == 0 else ("A" if pick_left else "B")
            choice = {"A": "data_dependent", "B": "euclidean", "undecided": "undecided"}[answer]
            rows.append({"participant_id": f"P{person}", "item_id": item, "kind": "consistency", "answer": answer,
                         "version": 0, "left_source": "data_dependent", "right_source": "euclidean",
                         "choice_source": choice, "dataset": "cub", "method": "", "finished": 1,
                         "worker_id": f"W{person}"})
    key = {"format": "protoproto-study-key", "items": {
        item: {"kind": "consistency", "dataset": "cub", "method": "A", "left_source": "data_dependent",
               "right_source": "euclidean", "left_pair": left, "right_pair": right}
        for item, (left, right) in pairs.items()}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "protoproto-metrics", "version": 1, "prototypes": [
        {"id": p, "purity": {"purity": v}, "stability": 0.5} for p, v in purity.items()]}))
    res = join_metrics(load_answers(pd.DataFrame(rows)), key, {"A": path})
    choice = res.choices.set_index("metric")
    assert choice.loc["purity", "decided"] == 36 and choice.loc["purity", "n"] == 36
    assert choice.loc["purity", "agree"] == 32
    ref = stats.binomtest(32, 36, 0.5)
    assert choice.loc["purity", "p_value"] == pytest.approx(ref.pvalue)
    assert choice.loc["purity", "ci_low"] == pytest.approx(ref.proportion_ci(0.95, "exact").low)
    assert choice.loc["stability", "n"] == 0                        # equal for both pairs: not compared
    shown = res.pairs.set_index(["a", "b"])
    assert shown.loc[(0, 1), "shown"] == 10 and shown.loc[(0, 1), "undecided"] == 1
    assert shown.loc[(0, 1), "purity"] == pytest.approx(1 / 32)
    assert shown.loc[(12, 13), "chosen"] == 8                      # c2's purer right pair: all but P0 and P1
