"""Krippendorff's alpha: a published example by hand, the `krippendorff` package, the
bootstrap interval."""
from __future__ import annotations

import numpy as np
import pytest

from study.analysis.agreement import agreement_table, alpha_with_ci, krippendorff_alpha
from study.analysis.io import load_answers
from study.analysis.synthetic import synthetic_answers

# Krippendorff (2011), "Computing Krippendorff's alpha-reliability", section C:
# 4 observers x 12 units, values 1..5, "." missing. Published: nominal 0.743,
# ordinal 0.815 (interval 0.849, not used here).
K2011 = ["1 2 3 3 2 1 4 1 2 . . .",
         "1 2 3 3 2 2 4 1 2 5 . 3",
         ". 3 3 3 2 3 4 2 2 5 1 .",
         "1 2 3 3 2 4 4 1 2 5 1 ."]


def _long(rows):
    units, values = [], []
    for row in rows:
        for u, v in enumerate(row.split()):
            if v != ".":
                units.append(u)
                values.append(int(v))
    return np.array(units), np.array(values)


def test_published_example():
    units, values = _long(K2011)
    assert krippendorff_alpha(units, values, metric="nominal") == pytest.approx(0.743, abs=5e-4)
    assert krippendorff_alpha(units, values, metric="ordinal") == pytest.approx(0.815, abs=5e-4)


@pytest.mark.parametrize("metric", ["nominal", "ordinal"])
def test_matches_the_krippendorff_package(metric):
    kd = pytest.importorskip("krippendorff", reason="pip install krippendorff (requirements-test.txt)")
    rng = np.random.default_rng(7)
    for _ in range(5):
        data = rng.integers(1, 6, (6, 25)).astype(float)
        data[:, :12] = np.clip(data[0, :12] + rng.integers(-1, 2, (6, 12)), 1, 5)
        data[rng.random(data.shape) < 0.3] = np.nan
        ref = kd.alpha(reliability_data=data, level_of_measurement=metric,
                       value_domain=[1, 2, 3, 4, 5])
        coder, unit = np.nonzero(~np.isnan(data))
        ours = krippendorff_alpha(unit, data[coder, unit].astype(int), metric=metric,
                                  levels=[1, 2, 3, 4, 5])
        assert ours == pytest.approx(ref, abs=1e-12)


def test_bootstrap_interval_is_seeded_and_brackets_alpha():
    units, values = _long(K2011)
    a = alpha_with_ci(units, values, metric="ordinal", resamples=500, seed=3)
    b = alpha_with_ci(units, values, metric="ordinal", resamples=500, seed=3)
    assert a == b
    assert a["ci_low"] < a["alpha"] < a["ci_high"] and a["units"] == 11  # unit 11 is unpairable


def test_perfect_agreement_is_one_and_table_from_answers():
    assert krippendorff_alpha([0, 0, 1, 1, 2, 2], [1, 1, 3, 3, 5, 5], metric="ordinal") == 1.0
    table = load_answers(synthetic_answers(12, consistency_versions=2, seed=1))
    out = agreement_table(table, None, (1, 2, 3, 4, 5), resamples=50)
    assert list(out["metric"]) == ["ordinal"] * 4 + ["nominal"]
    assert out["alpha"].between(-1, 1).all() and (out["ci_low"] <= out["ci_high"]).all()
