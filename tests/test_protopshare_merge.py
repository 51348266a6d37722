"""ProtoPShare merge step and loop on tiny ProtoPNets (no data set needed)."""
import pytest
import torch

from core.errors import UserFacingError
from core.architectures import build_model
from core.protopshare.merge import (HeadState, apply_head_state, finetune_last_layer, head_state, merge,
                                    merge_prune, select_merges)
from core.protopshare.similarity import ActivationCache, collect_activations, data_dependent_similarity


def _protopnet(classes=3, per_class=3, **kw):
    cfg = dict(architecture="protopnet", backbone="resnet18", weights="none", truncate="layer2",
               num_classes=classes, num_prototypes=None, prototypes_per_class=per_class, prototype_depth=8,
               similarity="protopnet")
    cfg.update(kw)
    torch.manual_seed(0)
    return build_model(cfg).eval()


def _cache_from_acts(acts: torch.Tensor, labels: torch.Tensor) -> ActivationCache:
    n, m = acts.shape
    return ActivationCache(acts, acts, torch.ones(n, m), torch.zeros(n, m, dtype=torch.int32), labels)


def test_merging_identical_prototypes_keeps_every_prediction_and_sums_weights():
    model = _protopnet()
    with torch.no_grad():
        model.prototypes[3] = model.prototypes[0]           # class 1's first prototype := class 0's first
        model.last_layer.weight.normal_()                    # any h, not only the 1 / -0.5 init
    x = torch.randn(6, 3, 32, 32)
    with torch.no_grad():
        before = model(x).logits
    w0 = model.last_layer.weight.detach().clone()
    acts = collect_activations(model, [(x, torch.zeros(6, dtype=torch.long))], device="cpu")
    sim = data_dependent_similarity(acts.max_log_sim)
    assert select_merges(sim, 1) == [(3, 0)]                 # the identical pair is the most similar
    state = merge(head_state(model), [(3, 0)])
    apply_head_state(model, state)
    with torch.no_grad():
        after = model(x).logits
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-4)
    assert model.num_prototypes == 8
    torch.testing.assert_close(model.last_layer.weight[:, 0], w0[:, 0] + w0[:, 3])
    torch.testing.assert_close(model.last_layer.weight[:, 1:3], w0[:, 1:3])
    torch.testing.assert_close(model.last_layer.weight[:, 3:], w0[:, 4:])
    assert model.prototype_classes()[0] == [0, 1]            # the kept prototype serves both classes
    assert model.config.num_prototypes == 8


def test_merge_sums_columns_and_ors_identities_for_several_merges():
    c, m = 3, 6
    weight = torch.arange(c * m, dtype=torch.float32).reshape(c, m)
    identity = torch.eye(c).repeat_interleave(2, dim=0)      # prototypes 2k, 2k+1 serve class k
    state = HeadState(torch.arange(10, 16), weight, identity)
    new = merge(state, [(5, 0), (3, 0), (4, 1)])
    assert new.kept.tolist() == [10, 11, 12]
    torch.testing.assert_close(new.weight[:, 0], weight[:, 0] + weight[:, 5] + weight[:, 3])
    torch.testing.assert_close(new.weight[:, 1], weight[:, 1] + weight[:, 4])
    torch.testing.assert_close(new.weight[:, 2], weight[:, 2])
    assert new.identity.tolist() == [[1, 1, 1], [1, 0, 1], [0, 1, 0]]
    with pytest.raises(ValueError):
        merge(state, [(1, 0), (0, 2)])                       # 0 both kept and removed


def test_select_merges_resolves_chains_and_conflicts():
    m = 6
    sim = torch.zeros(m, m, dtype=torch.float64)
    ranked = [(0, 1, 10.0), (1, 2, 9.0), (0, 2, 8.0), (2, 3, 7.0), (3, 4, 6.0), (4, 5, 5.0)]
    for a, b, s in ranked:
        sim[a, b] = sim[b, a] = s
    merges = select_merges(sim, 3)
    removed = [r for r, _ in merges]
    kept = [k for _, k in merges]
    assert len(merges) == 3 and len(set(removed)) == 3
    assert not set(removed) & set(kept)                      # never merged into a removed prototype
    assert merges[0] == (1, 0)                               # fresh pair: the higher index goes
    assert merges[1] == (2, 0)                               # (1, 2) skipped: 1 is removed; 0 absorbs 2
    assert merges[2] == (4, 3)                               # (2, 3) skipped: 2 is removed
    assert len(select_merges(sim, 100)) <= m - 1


def test_loop_counts_fall_by_zeta_percent_per_step_and_stop_at_target():
    gen = torch.Generator().manual_seed(0)
    model = _protopnet(classes=5, per_class=3)
    labels = torch.arange(40) % 5
    acts = torch.rand(40, 15, generator=gen) * 3 + torch.nn.functional.one_hot(labels, 5).repeat_interleave(3, 1) * 2
    train, val = _cache_from_acts(acts[:30], labels[:30]), _cache_from_acts(acts[30:], labels[30:])
    result = merge_prune(model, train, val, zeta=20, target=5, iterations=2, lr=1e-3)
    counts = [row["num_prototypes"] for row in result.steps]
    assert counts == [15, 12, 10, 8, 6, 5]                   # round(20% of m), last step capped at target
    assert [len(row["merges"]) for row in result.steps] == [0, 3, 2, 2, 2, 1]
    assert result.stopped == "target" and result.state.num_prototypes == 5
    all_removed = [r for row in result.steps for r, _ in row["merges"]]
    assert len(all_removed) == len(set(all_removed)) == 10
    assert set(result.state.kept.tolist()).isdisjoint(all_removed)
    for row in result.steps[1:]:
        assert 0.0 <= row["val_accuracy"] <= 1.0 and "theorem1" in row and row["reverted"] is False


def test_accuracy_drop_stops_and_undoes_the_step():
    gen = torch.Generator().manual_seed(1)
    model = _protopnet(classes=4, per_class=2)
    labels = torch.arange(48) % 4
    acts = torch.rand(48, 8, generator=gen) + torch.nn.functional.one_hot(labels, 4).repeat_interleave(2, 1) * 3
    train, val = _cache_from_acts(acts[:32], labels[:32]), _cache_from_acts(acts[32:], labels[32:])
    result = merge_prune(model, train, val, zeta=50, target=1, max_drop=0.0, iterations=0)
    last = result.steps[-1]
    assert result.stopped == "accuracy_drop" and last["reverted"] is True
    assert last["val_accuracy"] < result.steps[0]["val_accuracy"]
    assert result.state.num_prototypes == result.steps[-2]["num_prototypes"]


def test_finetune_reduces_loss_and_changes_only_weights():
    gen = torch.Generator().manual_seed(2)
    labels = torch.arange(60) % 3
    acts = torch.rand(60, 6, generator=gen) + torch.nn.functional.one_hot(labels, 3).repeat_interleave(2, 1)
    cache = _cache_from_acts(acts, labels)
    identity = torch.eye(3).repeat_interleave(2, dim=0)
    state = HeadState(torch.arange(6), torch.zeros(3, 6), identity)
    tuned = finetune_last_layer(state, cache, iterations=20, lr=0.05, batch_size=16)
    loss = lambda s: torch.nn.functional.cross_entropy(acts @ s.weight.t(), labels)  # noqa: E731
    assert loss(tuned) < loss(state) - 0.1
    assert torch.equal(tuned.identity, identity) and torch.equal(tuned.kept, state.kept)
    again = finetune_last_layer(state, cache, iterations=20, lr=0.05, batch_size=16)
    assert torch.equal(again.weight, tuned.weight)           # deterministic


def test_protopool_cannot_be_merge_pruned_but_has_a_clear_error():
    torch.manual_seed(0)
    pool = build_model(dict(architecture="protopool", backbone="resnet18", weights="none", truncate="layer2",
                            num_classes=3, num_prototypes=6, num_slots=2, prototype_depth=8))
    with pytest.raises(UserFacingError, match="ProtoPNet"):
        head_state(pool)
    with pytest.raises(UserFacingError, match="--target"):
        merge_prune(_protopnet(), _cache_from_acts(torch.rand(3, 9), torch.zeros(3, dtype=torch.long)),
                    _cache_from_acts(torch.rand(3, 9), torch.zeros(3, dtype=torch.long)), zeta=10, target=9)
