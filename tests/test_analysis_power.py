"""Power simulation: calibrated under H0, agrees with SciPy draw by draw, and the CLI."""
from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats

from study.analysis.power import (required_participants, simulate_power_bootstrap,
                                  simulate_power_multinomial)
from study.analysis.power_cli import main as power_main
from study.analysis.synthetic import synthetic_answers
from study.errors import StudyError

P_T = [0.05, 0.15, 0.3, 0.3, 0.2]
P_B = [0.1, 0.2, 0.35, 0.25, 0.1]


def test_type_one_error_near_alpha():
    power = simulate_power_multinomial(10, P_B, P_B, items_per_method=10, sims=4000, seed=1)
    assert 0.035 <= power <= 0.065


def test_simulated_decisions_match_scipy_on_the_same_draws():
    sims, n = 200, 30
    power = simulate_power_multinomial(3, P_T, P_B, items_per_method=10, sims=sims, seed=5)
    rng = np.random.default_rng(5)  # the same draws, in the same order
    cx = rng.multinomial(n, P_T, size=sims)
    cy = rng.multinomial(n, P_B, size=sims)
    levels = np.arange(1, 6)
    hits = 0
    for i in range(sims):
        p = stats.mannwhitneyu(np.repeat(levels, cx[i]), np.repeat(levels, cy[i]),
                               alternative="greater", method="asymptotic").pvalue
        hits += p < 0.05
    assert power == pytest.approx(hits / sims)


def test_power_grows_with_participants_and_search_finds_threshold():
    def at(n):
        return simulate_power_multinomial(n, P_T, P_B, items_per_method=10, sims=1000, seed=0)
    n, curve = required_participants(at, target_power=0.8)
    assert at(n) >= 0.8 and at(n - 1) < 0.8
    assert curve["power"].is_monotonic_increasing or curve["power"].diff().min() > -0.03
    assert 5 < n < 200


def test_search_with_a_known_function():
    n, curve = required_participants(lambda k: min(1.0, k / 100), target_power=0.8)
    assert n == 80 and curve["participants"].is_monotonic_increasing
    n, _ = required_participants(lambda k: 0.1, target_power=0.8, n_max=64)
    assert n is None


def test_bootstrap_keeps_participants_together():
    # each pilot participant's ratings of both methods move together (leniency)
    rng = np.random.default_rng(0)
    lenient = rng.random(40) < 0.5
    tx = np.where(lenient[:, None], [0, 0, 2, 4, 4], [2, 4, 4, 0, 0])
    ty = np.where(lenient[:, None], [0, 1, 3, 4, 2], [3, 4, 3, 0, 0])
    p1 = simulate_power_bootstrap(10, tx, ty, sims=500, seed=3)
    p2 = simulate_power_bootstrap(10, tx, ty, sims=500, seed=3)
    assert p1 == p2 and 0 <= p1 <= 1
    assert simulate_power_bootstrap(40, tx, ty, sims=500, seed=3) >= p1
    with pytest.raises(StudyError):
        simulate_power_bootstrap(5, tx, ty[:3], sims=10)


def test_power_cli_pilot_and_assumed(tmp_path, capsys):
    pilot = tmp_path / "pilot.csv"
    synthetic_answers(12, seed=7).to_csv(pilot, index=False)
    out = tmp_path / "plan.json"
    assert power_main(["--pilot", str(pilot), "--target", "ProtoPool", "--sims", "300",
                       "--test", "mannwhitney", "--out", str(out)]) == 0
    doc = json.loads(out.read_text())
    assert doc["format"] == "protoproto-power" and doc["mode"] == "bootstrap"
    assert {p["baseline"] for p in doc["plan"]} == {"ProtoPool w/o focal", "ProtoTree"}
    assert all(p["participants"] >= 2 and p["power_ci_low"] >= 0.8 for p in doc["plan"])
    assert all(p["mc_se"] == pytest.approx(np.sqrt(p["power"] * (1 - p["power"]) / 300))
               for p in doc["plan"])
    assert "study needs" in capsys.readouterr().out
    assert power_main(["--assume", "A=1,2,3,2,1", "--assume", "B=2,2,3,1,1", "--target", "A",
                       "--items", "20", "--sims", "300", "--test", "mannwhitney"]) == 0
    with pytest.raises(StudyError, match="--items"):
        power_main(["--assume", "A=1,2,3,2,1", "--assume", "B=2,2,3,1,1", "--target", "A",
                    "--test", "mannwhitney"])
    with pytest.raises(StudyError, match="5 non-negative weights"):
        power_main(["--assume", "A=1,2,3", "--assume", "B=2,2,3,1,1", "--target", "A",
                    "--items", "3"])
    with pytest.raises(StudyError, match="--target 'Z'"):
        power_main(["--pilot", str(pilot), "--target", "Z"])


@pytest.mark.parametrize("n", [4, 12, 30, 70])
def test_vectorised_wilcoxon_matches_the_analysis_row_by_row(n):
    from study.analysis.participant_level import wilcoxon_paired, wilcoxon_pvalues

    rng = np.random.default_rng(n)
    d = np.vstack([rng.normal(0.3, 1, (40, n)),               # no ties: exact up to 50
                   np.round(rng.normal(0.3, 1, (40, n)) * 2) / 2])  # ties and zeros
    ours = wilcoxon_pvalues(d, "greater")
    ref = np.array([wilcoxon_paired(r, np.zeros(n), "greater")["p_value"] for r in d])
    assert np.allclose(np.nan_to_num(ours, nan=-1), np.nan_to_num(ref, nan=-1), rtol=1e-9)


def test_wilcoxon_plan_respects_exact_small_sample_limits(tmp_path, capsys):
    # with 4 untied pairs the smallest one-sided exact p is 1/16 > 0.05: never significant
    from study.analysis.power import simulate_power_wilcoxon

    assert simulate_power_wilcoxon(4, [1.0, 2.0, 3.0, 4.5], sims=200) == 0.0
    assert simulate_power_wilcoxon(5, [1.0, 2.0, 3.0, 4.5, 5.5], sims=200) > 0.0
    pilot = tmp_path / "pilot.csv"
    synthetic_answers(10, seed=3).to_csv(pilot, index=False)
    assert power_main(["--pilot", str(pilot), "--target", "ProtoPool", "--test", "wilcoxon",
                       "--sims", "300"]) == 0
    assert "Wilcoxon signed-rank" in capsys.readouterr().out
    with pytest.raises(StudyError, match="--test wilcoxon needs --pilot"):
        power_main(["--assume", "A=1,2,3,2,1", "--assume", "B=2,2,3,1,1", "--target", "A",
                    "--items", "5", "--test", "wilcoxon"])


def test_lower_bound_criterion_needs_more_participants_than_the_estimate():
    from study.analysis.power import monte_carlo_interval

    se, lo, hi = monte_carlo_interval(0.8, 100)
    assert se == pytest.approx(0.04) and lo < 0.8 < hi
    curve = lambda k: min(1.0, k / 100)  # noqa: E731
    n_est, _ = required_participants(curve, target_power=0.8)
    n_low, table = required_participants(curve, target_power=0.8, sims=400)
    assert n_est == 80 and n_low > n_est
    assert curve(n_low) - 1.96 * np.sqrt(curve(n_low) * (1 - curve(n_low)) / 400) > 0.78
    assert {"mc_se", "power_ci_low", "power_ci_high"} <= set(table.columns)


def test_clmm_power_by_simulation(tmp_path, capsys):
    from study.analysis.power import clmm_parameters_from_pmf, simulate_power_clmm

    params = clmm_parameters_from_pmf([0.1, 0.2, 0.35, 0.25, 0.1], [0.05, 0.15, 0.3, 0.3, 0.2])
    assert 0.3 < params["log_odds_ratio"] < 1.0   # the target's distribution is shifted up
    null = dict(params, log_odds_ratio=0.0)
    assert simulate_power_clmm(8, null, items_per_method=6, sims=20, seed=1) <= 0.15
    strong = dict(params, log_odds_ratio=1.5)
    assert simulate_power_clmm(8, strong, items_per_method=6, sims=20, seed=1) >= 0.7
    out = tmp_path / "plan.json"
    assert power_main(["--assume", "A=1,2,3,3,1", "--assume", "B=3,3,3,1,1", "--target", "A",
                       "--items", "6", "--sims", "20", "--max-participants", "16",
                       "--log-odds-ratio", "1.5", "--power", "0.5",
                       "--out", str(out)]) == 0   # clmm is the default planned test
    doc = json.loads(out.read_text())
    assert doc["test"] == "clmm" and doc["plan"][0]["test"] == "clmm"
    assert doc["clmm_parameters"]["B"]["participant_sd"] == 0.8
    row = doc["plan"][0]
    assert 4 <= row["participants"] <= 16 and row["power_ci_low"] >= 0.5
    assert row["log_odds_ratio"] == 1.5
    assert "one-sided CLMM Wald" in capsys.readouterr().out


def test_clmm_power_simulates_the_declared_maximal_primary():
    """The simulated studies carry participant-varying method effects and each is
    analysed by the declared primary: structure with fallback, likelihood-ratio test."""
    from study.analysis.mixed import STRUCTURES
    from study.analysis.power import (clmm_parameters_from_pmf, primary_clmm_p_value,
                                      simulate_clmm_study)

    params = clmm_parameters_from_pmf([0.1, 0.2, 0.35, 0.25, 0.1], log_odds_ratio=0.0,
                                      slope_sd=1.5)
    assert params["slope_sd"] == 1.5
    rng = np.random.default_rng(3)
    y, X, p, i = simulate_clmm_study(rng, 12, params, 6)
    # the method effect varies: per-participant differences spread more than with slope 0
    diff = [y[(p == k) & (X[:, 0] == 1)].mean() - y[(p == k) & (X[:, 0] == 0)].mean()
            for k in range(12)]
    y0, X0, p0, _ = simulate_clmm_study(np.random.default_rng(3), 12, {**params, "slope_sd": 0.0}, 6)
    diff0 = [y0[(p0 == k) & (X0[:, 0] == 1)].mean() - y0[(p0 == k) & (X0[:, 0] == 0)].mean()
             for k in range(12)]
    assert np.std(diff) > np.std(diff0)
    pv, used = primary_clmm_p_value(y, X, p, i, K=5)
    assert 0 <= pv <= 1 and used in STRUCTURES
