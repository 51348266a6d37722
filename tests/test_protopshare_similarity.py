"""ProtoPShare similarities: d_DD against the direct formula, Euclidean, pair ranking, pairs."""
import math

import pytest
import torch

from core.protopshare.similarity import (dd_squared_differences, data_dependent_similarity, euclidean_similarity,
                                         ranked_pairs)
from core.protopshare.pairs import pairs_from_similarities


def test_dd_matches_direct_double_loop():
    gen = torch.Generator().manual_seed(1)
    a = torch.rand(13, 7, generator=gen) * 9.0 + 0.5          # log-similarities are positive, up to ~9.2
    a[:, 4] = a[:, 1] + 1e-3                                  # a near-duplicate column
    fast = data_dependent_similarity(a)
    for p in range(7):
        for q in range(7):
            if p == q:
                assert math.isinf(fast[p, q])
                continue
            direct = 1.0 / sum((float(a[x, p]) - float(a[x, q])) ** 2 for x in range(13))
            assert fast[p, q].item() == pytest.approx(direct, rel=1e-9)
    assert fast.dtype == torch.float64
    assert torch.equal(fast, fast.t())


def test_dd_identical_columns_are_infinitely_similar_and_diagonal_zero():
    a = torch.rand(20, 4, dtype=torch.float64)
    a[:, 3] = a[:, 0]
    sq = dd_squared_differences(a)
    assert sq[0, 3] == 0 and torch.all(torch.diagonal(sq) == 0)
    assert (sq[~torch.eye(4, dtype=torch.bool)][[0, 1]] > 0).all()
    assert math.isinf(data_dependent_similarity(a)[0, 3])


def test_dd_precision_with_large_common_offset():
    """Row centring keeps float64 exact even when every activation sits near the same large value."""
    gen = torch.Generator().manual_seed(2)
    base = torch.full((500, 3), 9.0, dtype=torch.float64)
    a = base + torch.rand(500, 3, generator=gen, dtype=torch.float64) * 1e-4
    direct = ((a[:, 0] - a[:, 2]) ** 2).sum()
    assert dd_squared_differences(a)[0, 2].item() == pytest.approx(direct.item(), rel=1e-6)


def test_euclidean_similarity_is_inverse_distance():
    p = torch.tensor([[0.0, 0.0], [3.0, 4.0], [0.0, 1.0]])
    s = euclidean_similarity(p)
    assert s[0, 1].item() == pytest.approx(1 / 5) and s[0, 2].item() == pytest.approx(1.0)
    assert s[1, 2].item() == pytest.approx(1 / math.sqrt(9 + 9))
    assert torch.isinf(torch.diagonal(s)).all() and torch.equal(s, s.t())


def test_ranked_pairs_symmetric_sorted_without_self_pairs():
    gen = torch.Generator().manual_seed(3)
    s = data_dependent_similarity(torch.rand(30, 9, generator=gen))
    a, b, score = ranked_pairs(s)
    assert a.numel() == 9 * 8 // 2
    assert (a < b).all()
    assert torch.all(score[:-1] >= score[1:])
    assert len({(int(x), int(y)) for x, y in zip(a, b)}) == a.numel()
    # same ranking whichever triangle holds the values: the matrix is symmetric
    torch.testing.assert_close(score, s.t()[a, b])
    eligible = torch.tensor([True, False] * 4 + [True])
    a2, b2, _ = ranked_pairs(s, n=3, eligible=eligible)
    assert a2.numel() == 3 and eligible[a2].all() and eligible[b2].all()


def test_pairs_object_matches_formats_and_excludes_common_and_identical():
    gen = torch.Generator().manual_seed(4)
    acts = torch.rand(40, 8, generator=gen)
    protos = torch.rand(8, 5, generator=gen)
    protos[6] = protos[2]                       # identical prototypes: infinite similarity, left out
    acts[:, 6] = acts[:, 2]
    dd, eu = data_dependent_similarity(acts), euclidean_similarity(protos)
    eligible = torch.ones(8, dtype=torch.bool)
    pairs = pairs_from_similarities(dd, eu, 4, eligible, exclude_common=True)
    assert set(pairs) == {"data_dependent", "euclidean"}
    for items in pairs.values():
        assert len(items) == 4
        assert all(p["a"] < p["b"] and math.isfinite(p["score"]) for p in items)
        assert (2, 6) not in {(p["a"], p["b"]) for p in items}
        assert [p["score"] for p in items] == sorted((p["score"] for p in items), reverse=True)
    dd_set = {(p["a"], p["b"]) for p in pairs["data_dependent"]}
    eu_set = {(p["a"], p["b"]) for p in pairs["euclidean"]}
    assert not dd_set & eu_set
    plain = pairs_from_similarities(dd, eu, 4, eligible, exclude_common=False)
    top_dd = ranked_pairs(dd, n=1, finite_only=True)
    assert (plain["data_dependent"][0]["a"], plain["data_dependent"][0]["b"]) == (int(top_dd[0]), int(top_dd[1]))


@pytest.mark.parametrize("architecture", ["protopnet", "protopool"])
def test_one_pass_collects_max_log_similarity_and_model_activations(architecture):
    from core.architectures import build_model
    from core.protopshare.similarity import collect_activations

    torch.manual_seed(0)
    model = build_model(dict(architecture=architecture, backbone="resnet18", weights="none", truncate="layer2",
                             num_classes=3, num_prototypes=None if architecture == "protopnet" else 5,
                             prototypes_per_class=2, num_slots=2, prototype_depth=8,
                             similarity="protopnet" if architecture == "protopnet" else "focal")).eval()
    x = torch.randn(5, 3, 32, 32)
    labels = torch.tensor([0, 1, 2, 0, 1])
    batches = [(x[:3], labels[:3], torch.arange(3)), (x[3:], labels[3:], torch.arange(3, 5))]
    cache = collect_activations(model, batches, device="cpu")
    with torch.no_grad():
        sims = model.patch_similarities(x).flatten(2)                 # (B, M, H*W)
        out = model(x)
    torch.testing.assert_close(cache.max_log_sim, sims.amax(dim=2))
    torch.testing.assert_close(cache.activations, out.similarities)
    torch.testing.assert_close(cache.min_distances, out.min_distances)
    assert torch.equal(cache.labels, labels) and cache.cells.dtype == torch.int32
    assert torch.equal(cache.cells.long(), model.patch_distances(x).flatten(2).argmin(dim=2))
    if architecture == "protopool":                                    # focal activation is not the max
        assert not torch.allclose(cache.activations, cache.max_log_sim)


def test_few_prototypes_keep_common_pairs_once_and_both_lists_filled():
    # 5 prototypes = 10 pairs, n_pairs = 8: leaving common pairs out of both lists emptied them
    gen = torch.Generator().manual_seed(7)
    acts = torch.rand(30, 5, generator=gen)
    protos = torch.rand(5, 4, generator=gen)
    dd, eu = data_dependent_similarity(acts), euclidean_similarity(protos)
    eligible = torch.ones(5, dtype=torch.bool)
    for eu_matrix in (eu, dd):          # dd twice: every pair is common, ranked alike
        pairs = pairs_from_similarities(dd, eu_matrix, 8, eligible)
        dd_set = {(p["a"], p["b"]) for p in pairs["data_dependent"]}
        eu_set = {(p["a"], p["b"]) for p in pairs["euclidean"]}
        assert dd_set and eu_set and not dd_set & eu_set
        assert len(dd_set) + len(eu_set) == 10 and min(len(dd_set), len(eu_set)) == 5   # shared evenly
        for items in pairs.values():
            assert [p["score"] for p in items] == sorted((p["score"] for p in items), reverse=True)
        assert pairs == pairs_from_similarities(dd, eu_matrix, 8, eligible)   # deterministic
    same = pairs_from_similarities(dd, dd, 8, eligible)
    ranking = list(zip(*(t.tolist() for t in ranked_pairs(dd, finite_only=True)[:2])))
    # identical rankings: the lists alternate down it, data_dependent first (ties)
    assert [(p["a"], p["b"]) for p in same["data_dependent"]] == ranking[0::2]
    assert [(p["a"], p["b"]) for p in same["euclidean"]] == ranking[1::2]


def test_common_pair_goes_to_the_list_where_it_ranks_higher():
    eligible = torch.ones(4, dtype=torch.bool)

    def sym(values):    # pairs (0,1) (0,2) (0,3) (1,2) (1,3) (2,3)
        s = torch.zeros(4, 4)
        a, b = torch.triu_indices(4, 4, offset=1)
        s[a, b] = torch.tensor(values, dtype=torch.float)
        return s + s.t()

    dd = sym([6, 5, 4, 3, 2, 1])   # dd ranking: (0,1) (0,2) (0,3) (1,2) ...
    eu = sym([1, 6, 2, 5, 3, 4])   # eu ranking: (0,2) (1,2) (2,3) (1,3) ...
    pairs = pairs_from_similarities(dd, eu, 2, eligible)
    # (0,2) is in both top twos: rank 0 for euclidean, rank 1 for data_dependent -> euclidean only
    assert [(p["a"], p["b"]) for p in pairs["data_dependent"]] == [(0, 1), (0, 3)]
    assert [(p["a"], p["b"]) for p in pairs["euclidean"]] == [(0, 2), (1, 2)]
    # without the rule both keep their own top two, (0,2) in both
    plain = pairs_from_similarities(dd, eu, 2, eligible, exclude_common=False)
    assert [(p["a"], p["b"]) for p in plain["data_dependent"]] == [(0, 1), (0, 2)]
