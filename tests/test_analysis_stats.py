"""Every statistic of the analysis against SciPy on the same data, and small hand cases."""
from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from study.analysis.consistency import binomial_test, consistency_counts, consistency_tests
from study.analysis.corrections import holm
from study.analysis.io import validate_answers, Needs
from study.analysis.mannwhitney import (
    bootstrap_auc_ci, delong_ci, exact_distribution, mann_whitney, mann_whitney_counts,
    mwu_from_counts, to_counts, u_statistic)
from study.analysis.participant_level import (friedman, participant_tests, signed_rank_exact_p,
                                              wilcoxon_paired)
from study.analysis.ratings import describe_counts
from study.errors import StudyError

RNG = np.random.default_rng(12345)


def _ratings(n, probs, rng=RNG):
    return rng.choice(np.arange(1, 6), size=n, p=probs)


# ---------------------------------------------------------------- Mann-Whitney, asymptotic

@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("continuity", [True, False])
def test_mwu_counts_match_scipy_asymptotic(alternative, continuity):
    rng = np.random.default_rng(7)
    for n1, n2 in [(5, 7), (30, 30), (200, 150), (1000, 900)]:
        x = _ratings(n1, [0.1, 0.2, 0.3, 0.25, 0.15], rng)
        y = _ratings(n2, [0.2, 0.25, 0.3, 0.15, 0.1], rng)
        cx, cy, _ = to_counts(x, y)
        ours = mwu_from_counts(cx, cy, alternative, continuity)
        ref = stats.mannwhitneyu(x, y, alternative=alternative, method="asymptotic",
                                 use_continuity=continuity)
        assert ours["U"] == pytest.approx(ref.statistic, abs=1e-9)
        assert ours["p"] == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-300)


def test_mwu_vectorised_over_many_tables_matches_scipy_each():
    rng = np.random.default_rng(3)
    cx = rng.integers(0, 20, size=(50, 5))
    cy = rng.integers(0, 20, size=(50, 5))
    batch = mwu_from_counts(cx, cy, "greater")
    levels = np.arange(1, 6)
    for i in range(50):
        x, y = np.repeat(levels, cx[i]), np.repeat(levels, cy[i])
        ref = stats.mannwhitneyu(x, y, alternative="greater", method="asymptotic")
        assert batch["U"][i] == pytest.approx(ref.statistic)
        assert batch["p"][i] == pytest.approx(ref.pvalue, rel=1e-9)


def test_u_by_hand():
    # x = [1, 2, 3], y = [2, 2]: pairs x>y: 3>2 twice = 2; ties 2=2 twice = 1 -> U = 3
    cx, cy, _ = to_counts([1, 2, 3], [2, 2])
    assert float(u_statistic(cx, cy)) == 3.0
    # tie-corrected sigma^2 = n1 n2 / 12 * ((N+1) - sum(t^3-t)/(N(N-1)))
    # N=5, ties: level 2 has t=3 -> 24; sigma^2 = 6/12 * (6 - 24/20) = 2.4
    r = mwu_from_counts(cx, cy, "greater", continuity=False)
    assert r["z"] == pytest.approx((3 - 3) / np.sqrt(2.4))
    assert r["auc"] == pytest.approx(0.5)
    assert r["rank_biserial"] == pytest.approx(0.0)


def test_rank_biserial_and_cles_definitions():
    x = np.array([3, 4, 5, 5, 2])
    y = np.array([1, 2, 3, 3])
    row = mann_whitney(x, y).iloc[0]
    gt = sum(a > b for a in x for b in y)
    eq = sum(a == b for a in x for b in y)
    lt = sum(a < b for a in x for b in y)
    n = len(x) * len(y)
    assert row["cles"] == pytest.approx((gt + 0.5 * eq) / n)
    assert row["rank_biserial"] == pytest.approx((gt - lt) / n)
    assert row["alternative"] == "greater" and "tie-corrected" in row["p_method"]


def test_all_ties_give_p_one_not_crash():
    for cc in (True, False):
        r = mwu_from_counts(np.array([0, 0, 4, 0, 0]), np.array([0, 0, 3, 0, 0]), "greater", cc)
        assert r["p"] == 1.0 and r["z"] == 0.0 and r["U"] == 6.0


# ---------------------------------------------------------------- exact and permutation

def _pair_u(a, b):
    return (a[:, None] > b[None, :]).sum() + 0.5 * (a[:, None] == b[None, :]).sum()


def _brute_force_p(x, y, alternative):
    pooled = np.concatenate([x, y])
    n1 = len(x)
    u_obs = _pair_u(x, y)
    us = []
    for idx in itertools.combinations(range(len(pooled)), n1):
        mask = np.zeros(len(pooled), dtype=bool)
        mask[list(idx)] = True
        us.append(_pair_u(pooled[mask], pooled[~mask]))
    us = np.array(us)
    g, l_ = np.mean(us >= u_obs - 1e-9), np.mean(us <= u_obs + 1e-9)
    return {"greater": g, "less": l_, "two-sided": min(1.0, 2 * min(g, l_))}[alternative]


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_exact_matches_enumeration_of_all_splits(alternative):
    rng = np.random.default_rng(11)
    for _ in range(3):
        x = rng.integers(1, 6, 6)
        y = rng.integers(1, 6, 5)
        ours = mann_whitney(x, y, alternative=alternative, method="exact").iloc[0]
        assert ours["p_value"] == pytest.approx(_brute_force_p(x, y, alternative), rel=1e-9)
        assert ours["p_method"].startswith("exact")


def test_exact_matches_scipy_permutation_test_exhaustive():
    x = np.array([4, 5, 3, 4, 5, 2, 4])
    y = np.array([2, 3, 3, 1, 4, 2])
    ref = stats.permutation_test(
        (x, y), lambda a, b, axis: stats.mannwhitneyu(a, b, axis=axis).statistic,
        permutation_type="independent", alternative="greater", n_resamples=np.inf,
        vectorized=True)
    ours = mann_whitney(x, y, method="exact").iloc[0]
    assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)


def test_exact_distribution_sums_to_one_and_has_right_mean():
    cx, cy = np.array([3, 1, 0, 2, 4]), np.array([1, 2, 2, 1, 0])
    u, p = exact_distribution(cx, cy)
    assert p.sum() == pytest.approx(1.0)
    assert (u * p).sum() == pytest.approx(cx.sum() * cy.sum() / 2)


def test_exact_refuses_large_samples():
    with pytest.raises(StudyError, match="permutation"):
        mann_whitney_counts(np.array([100, 100, 100, 100, 100]), np.array([90] * 5),
                            method="exact")


def test_permutation_close_to_exact_and_seeded():
    x = np.array([4, 5, 3, 4, 5, 2, 4, 5, 3])
    y = np.array([2, 3, 3, 1, 4, 2, 3, 2])
    exact = mann_whitney(x, y, method="exact").iloc[0]["p_value"]
    perm = mann_whitney(x, y, method="permutation", n_resamples=20000, seed=4).iloc[0]
    assert perm["p_value"] == pytest.approx(exact, abs=0.01)
    again = mann_whitney(x, y, method="permutation", n_resamples=20000, seed=4).iloc[0]
    assert again["p_value"] == perm["p_value"]


# ---------------------------------------------------------------- effect-size intervals

def test_delong_variance_matches_placement_formula_on_raw_data():
    rng = np.random.default_rng(5)
    x = _ratings(40, [0.1, 0.1, 0.3, 0.3, 0.2], rng)
    y = _ratings(35, [0.2, 0.3, 0.3, 0.1, 0.1], rng)
    # structural components computed pairwise from the raw samples
    h = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    auc = h.mean()
    v10, v01 = h.mean(axis=1), h.mean(axis=0)
    var = v10.var(ddof=1) / len(x) + v01.var(ddof=1) / len(y)
    cx, cy, _ = to_counts(x, y)
    se, lo, hi = delong_ci(cx, cy)
    assert float(se) == pytest.approx(np.sqrt(var), rel=1e-12)
    z = stats.norm.ppf(0.975)
    assert float(lo) == pytest.approx(auc - z * np.sqrt(var))
    assert float(hi) == pytest.approx(auc + z * np.sqrt(var))
    row = mann_whitney(x, y).iloc[0]
    assert row["rank_biserial_ci_low"] == pytest.approx(2 * float(lo) - 1)


def test_delong_interval_covers_true_auc_most_of_the_time():
    rng = np.random.default_rng(9)
    px, py = np.array([0.1, 0.2, 0.3, 0.25, 0.15]), np.array([0.2, 0.25, 0.3, 0.15, 0.1])
    # true AUC from the two pmfs
    below = np.cumsum(py) - py
    true_auc = float((px * (below + 0.5 * py)).sum())
    cx = rng.multinomial(80, px, size=2000)
    cy = rng.multinomial(80, py, size=2000)
    _, lo, hi = delong_ci(cx, cy)
    coverage = np.mean((lo <= true_auc) & (true_auc <= hi))
    assert 0.93 <= coverage <= 0.97


def test_bootstrap_ci_is_seeded_and_brackets_estimate():
    cx, cy = np.array([2, 5, 10, 8, 5]), np.array([6, 8, 9, 5, 2])
    a = bootstrap_auc_ci(cx, cy, 1000, seed=1)
    b = bootstrap_auc_ci(cx, cy, 1000, seed=1)
    auc = float(u_statistic(cx, cy)) / (cx.sum() * cy.sum())
    assert a == b and a[0] < auc < a[1]
    row = mann_whitney_counts(cx, cy, bootstrap=1000, seed=1)
    assert row["cles_ci_low"] == a[0] and "bootstrap" in row["ci_method"]


# ---------------------------------------------------------------- Holm, descriptives

def test_holm_by_hand():
    # p sorted: 0.01, 0.02, 0.04, 0.5 -> 4*0.01=0.04, 3*0.02=0.06, 2*0.04=0.08, 1*0.5=0.5
    adj = holm([0.04, 0.01, 0.5, 0.02])
    assert adj.tolist() == pytest.approx([0.08, 0.04, 0.5, 0.06])
    # monotone step-down: 3*0.03 = 0.09 < 4*0.03 -> kept at the running max
    assert holm([0.03, 0.03, 0.03, 0.9]).tolist() == pytest.approx([0.12, 0.12, 0.12, 0.9])
    out = holm([np.nan, 0.2, 0.3])
    assert np.isnan(out[0]) and out[1:].tolist() == pytest.approx([0.4, 0.4])


@pytest.mark.parametrize("n", [1, 2, 7, 10, 333])
def test_descriptives_from_counts_match_numpy(n):
    x = _ratings(n, [0.1, 0.2, 0.3, 0.25, 0.15], np.random.default_rng(n))
    c = np.bincount(x, minlength=6)[1:]
    d = describe_counts(c, [1, 2, 3, 4, 5])
    assert d["n"] == n
    assert d["mean"] == pytest.approx(x.mean())
    assert d["median"] == np.median(x)
    if n > 1:
        assert d["sd"] == pytest.approx(x.std(ddof=1))
        if x.std() == 0:
            assert d["ci_low"] == d["ci_high"] == x.mean()
        else:
            lo, hi = stats.t.interval(0.95, n - 1, loc=x.mean(), scale=stats.sem(x))
            assert d["ci_low"] == pytest.approx(lo) and d["ci_high"] == pytest.approx(hi)


def test_median_by_hand_even_count():
    # 1, 2, 4, 5 -> (2 + 4) / 2 = 3
    assert describe_counts(np.array([1, 1, 0, 1, 1]), [1, 2, 3, 4, 5])["median"] == 3.0


# ---------------------------------------------------------------- participant level

def test_wilcoxon_matches_scipy_exact_and_asymptotic():
    rng = np.random.default_rng(2)
    # continuous means, no ties: exact
    x, y = rng.normal(3.3, 0.5, 20), rng.normal(3.0, 0.5, 20)
    ours = wilcoxon_paired(x, y, "greater")
    ref = stats.wilcoxon(x, y, alternative="greater", method="exact")
    assert ours["p_method"] == "exact"
    assert ours["W"] == pytest.approx(ref.statistic) and ours["p_value"] == pytest.approx(ref.pvalue)
    # means of 10 ratings: ties and zeros -> asymptotic with zeros dropped
    x = rng.integers(10, 51, 80) / 10
    y = rng.integers(10, 51, 80) / 10
    y[:5] = x[:5]
    ours = wilcoxon_paired(x, y, "greater")
    ref = stats.wilcoxon(x, y, alternative="greater", method="asymptotic", zero_method="wilcox")
    assert ours["p_method"] == "asymptotic" and ours["n_nonzero"] == int((x != y).sum()) < 76
    assert ours["W"] == pytest.approx(ref.statistic)
    assert ours["p_value"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert ours["z"] == pytest.approx(ref.zstatistic)


@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
def test_signed_rank_exact_with_ties_matches_scipy_sign_flips(alternative):
    d = np.array([1, 1, 2, -1, 3, 2, 2, 0.5, 1, -2, 2, 3])
    ref = stats.wilcoxon(d, alternative=alternative,
                         method=stats.PermutationMethod(n_resamples=np.inf))
    t, p = signed_rank_exact_p(d, alternative)
    total = len(d) * (len(d) + 1) / 2
    # SciPy reports min(T+, T-) for two-sided; we always report T+
    expected_t = min(t, total - t) if alternative == "two-sided" else t
    assert expected_t == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue, rel=1e-9)


def test_signed_rank_by_hand():
    # d = 1, 2, 3 all positive: T+ = 6 is the largest of 8 equally likely sign patterns
    assert signed_rank_exact_p(np.array([1.0, 2.0, 3.0]), "greater") == (6.0, 0.125)


def test_matched_pairs_rank_biserial_by_hand():
    # differences 1, 2, -3 -> ranks 1, 2, 3; T+ = 3, T- = 3 -> r = 0
    assert wilcoxon_paired([2, 4, 1], [1, 2, 4])["rank_biserial"] == pytest.approx(0.0)
    # differences 1, 2, 3 -> all positive -> r = 1
    assert wilcoxon_paired([2, 4, 7], [1, 2, 4])["rank_biserial"] == pytest.approx(1.0)


def test_friedman_matches_scipy():
    rng = np.random.default_rng(8)
    means = pd.DataFrame(rng.integers(10, 51, (30, 3)) / 10, columns=["A", "B", "C"])
    table = friedman(means, ["A", "B", "C"])
    assert len(table) == 1 and {"statistic", "p_value", "kendall_w", "alternative"} <= set(table.columns)
    ours = table.iloc[0]
    ref = stats.friedmanchisquare(means["A"], means["B"], means["C"])
    assert ours["chi2"] == pytest.approx(ref.statistic) and ours["p_value"] == pytest.approx(ref.pvalue)
    assert ours["kendall_w"] == pytest.approx(ref.statistic / (30 * 2))


def _long(rows):
    df = pd.DataFrame(rows, columns=["participant_id", "method", "dataset", "answer"])
    df["item_id"] = [f"i{i}" for i in range(len(df))]
    df["kind"] = "saliency"
    return validate_answers(df, "t", Needs(attention=False, finished=False, worker_id=False))


def test_participant_means_and_tests_from_answers():
    rows = []
    rng = np.random.default_rng(1)
    truth = {}
    for p in range(12):
        for m, shift in (("T", 1), ("B", 0), ("C", 0)):
            for d in ("cub", "cars"):
                s = rng.integers(1, 5, 3) + (shift if p % 3 else 0)
                s = np.clip(s, 1, 5)
                truth.setdefault((f"p{p}", m), []).extend(s.tolist())
                rows += [(f"p{p}", m, d, str(v)) for v in s]
    res = participant_tests(_long(rows), ["T", "B", "C"], "T", ["B", "C"])
    means = res["means"]
    pooled = means[means["dataset"] == "(all)"].set_index(["participant_id", "method"])["mean_score"]
    for (p, m), vals in truth.items():
        assert pooled[(p, m)] == pytest.approx(np.mean(vals))
    wide = pooled.unstack()
    wil = res["wilcoxon"].set_index(["dataset", "baseline"])
    ref = stats.wilcoxon(wide["T"], wide["B"], alternative="greater")  # SciPy's 'auto'
    assert wil.loc[("(all)", "B"), "p_value"] == pytest.approx(ref.pvalue)
    assert wil.loc[("(all)", "B"), "W"] == pytest.approx(ref.statistic)
    fr = res["friedman"].set_index("dataset")
    ref = stats.friedmanchisquare(wide["T"], wide["B"], wide["C"])
    assert fr.loc["(all)", "chi2"] == pytest.approx(ref.statistic)
    assert set(fr.index) == {"(all)", "cub", "cars"}


# ---------------------------------------------------------------- consistency

def test_binomial_matches_scipy_and_clopper_pearson_by_hand():
    r = binomial_test(14, 20)
    ref = stats.binomtest(14, 20)
    assert r["p_value"] == pytest.approx(ref.pvalue)
    # Clopper-Pearson from the beta quantiles
    assert r["ci_low"] == pytest.approx(stats.beta.ppf(0.025, 14, 7))
    assert r["ci_high"] == pytest.approx(stats.beta.ppf(0.975, 15, 6))
    w = ref.proportion_ci(method="wilson")
    assert (r["wilson_low"], r["wilson_high"]) == pytest.approx((w.low, w.high))
    # by hand: k=0 of n=3 -> p = 2 * (1/8) = 0.25
    assert binomial_test(0, 3)["p_value"] == pytest.approx(0.25)


def test_consistency_counts_per_version_and_pooled():
    df = pd.DataFrame({
        "participant_id": ["a"] * 4 + ["b"] * 4,
        "item_id": [f"c{i}" for i in range(8)],
        "kind": "consistency",
        "answer": "A",
        "version": [0, 0, 0, 0, 1, 1, 1, 1],
        "choice_source": ["data_dependent", "data_dependent", "euclidean", "undecided",
                          "data_dependent", "undecided", "undecided", "euclidean"],
    })
    t = validate_answers(df, "t", Needs(attention=False, finished=False, worker_id=False))
    counts = consistency_counts(t)
    assert counts.to_dict("records") == [
        {"version": "0", "data_dependent": 2, "euclidean": 1, "undecided": 1, "n": 4},
        {"version": "1", "data_dependent": 1, "euclidean": 1, "undecided": 2, "n": 4},
        {"version": "(all)", "data_dependent": 3, "euclidean": 2, "undecided": 3, "n": 8}]
    tests = consistency_tests(counts)
    assert tests.iloc[-1]["n"] == 5 and tests.iloc[-1]["k"] == 3
    assert tests.iloc[-1]["p_value"] == pytest.approx(stats.binomtest(3, 5).pvalue)


def test_participant_level_intervals():
    from study.analysis.io import load_answers
    from study.analysis.synthetic import synthetic_answers

    table = load_answers(synthetic_answers(9, seed=5))
    out = participant_tests(table, ["ProtoPool", "ProtoTree"], "ProtoPool", ["ProtoTree"])
    pooled = out["means"][out["means"]["dataset"] == "(all)"].pivot(
        index="participant_id", columns="method", values="mean_score")
    mm = out["method_means"].set_index(["method", "dataset"])
    x = pooled["ProtoPool"].to_numpy()
    ref = stats.ttest_1samp(x, 0).confidence_interval(0.95)
    assert mm.loc[("ProtoPool", "(all)"), "mean"] == pytest.approx(x.mean())
    assert mm.loc[("ProtoPool", "(all)"), "ci_low"] == pytest.approx(ref.low)
    d = x - pooled["ProtoTree"].to_numpy()
    ref = stats.ttest_1samp(d, 0).confidence_interval(0.95)
    w = out["wilcoxon"].iloc[0]
    assert (w["mean_difference"], w["ci_low"], w["ci_high"]) == pytest.approx((d.mean(), ref.low, ref.high))
