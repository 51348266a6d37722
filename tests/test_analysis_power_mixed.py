"""Simulation power of the logistic mixed-model primary and the interaction CLMM
(study/analysis/power_mixed.py): high power under a clear effect, about alpha under the
null, a plan table, and a clear error for a missing parameter."""
from __future__ import annotations

import pytest

from study.analysis.power_mixed import (plan_logit_mixed, simulate_power_clmm_interaction,
                                        simulate_power_logit_mixed)
from study.errors import StudyError

LOGIT = {"intercept": 0.3, "log_odds_ratio": 0.7, "participant_sd": 0.6, "item_sd": 0.5, "k": 4}
AGREE = {"thresholds": [-1.0, 0.2, 1.3], "gap_baseline": 0.3, "interaction": 1.2,
         "participant_sd": 0.7, "item_sd": 0.4, "p_correct": 0.6}


def test_logit_power_under_effect_and_null():
    hit = simulate_power_logit_mixed(30, LOGIT, items_per_method=8, sims=30, seed=1)
    null = simulate_power_logit_mixed(30, {**LOGIT, "log_odds_ratio": 0.0},
                                      items_per_method=8, sims=30, seed=1)
    assert hit >= 0.8 and null <= 0.2
    # the same seed gives the same power (common random numbers)
    assert simulate_power_logit_mixed(30, LOGIT, items_per_method=8, sims=30, seed=1) == hit


def test_logit_plan_table():
    plans, curve = plan_logit_mixed({"B": {**LOGIT, "log_odds_ratio": 2.5}}, items_per_method=6,
                                    sims=20, n_min=8, n_max=16)
    row = plans.iloc[0]
    assert row["baseline"] == "B" and row["participants"] == 8 and row["power"] >= 0.9
    assert row["test"] == "logit_mixed" and row["k"] == 4
    assert {"participants", "power", "power_ci_low"} <= set(curve.columns)


def test_interaction_power_under_effect():
    assert simulate_power_clmm_interaction(30, AGREE, items_per_method=8, sims=8, seed=2) >= 0.75


def test_missing_parameter_is_one_line():
    with pytest.raises(StudyError, match="parameter 'item_sd' is missing"):
        simulate_power_logit_mixed(10, {k: v for k, v in LOGIT.items() if k != "item_sd"},
                                   items_per_method=4, sims=2)
