"""Theorem 1's diagnostic on hand-made cases, and the class-sharing graph."""
import math

import numpy as np
import pytest
import torch

from core.protopshare.bound import delta_bound, theorem1_diagnostic, theta
from core.protopshare.graph import classes_per_prototype, sharing_graph, sharing_matrix, sharing_summary, to_networkx
from core.protopshare.merge import HeadState, merge
from core.protopshare.similarity import ActivationCache


def _case(cells_differ: bool = False):
    # prototypes 0, 1 serve class 0; prototype 2 serves class 1; merge 1 -> 0 (gap 0.01)
    protos = torch.tensor([[0.0, 0.0], [0.01, 0.0], [5.0, 5.0]])
    identity = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    weight = identity.t().clone()                            # h with 1 / 0 weights, as the theorem assumes
    before = HeadState(torch.arange(3), weight, identity)
    after = merge(before, [(1, 0)])
    labels = torch.tensor([0, 0, 1, 1])
    min_d = torch.full((4, 3), 0.25)                          # closest patch at distance 0.5 from every prototype
    cells = torch.zeros(4, 3, dtype=torch.int32)
    if cells_differ:
        cells[0, 1] = 7                                      # image 0: p1's closest patch is not p0's
    acts = torch.log((min_d + 1) / (min_d + 1e-4))
    val = ActivationCache(acts, acts, min_d, cells, labels)
    return protos, before, after, val


def test_bound_formula_and_theta():
    assert delta_bound(3, 0.5).item() == pytest.approx(3 * math.log(1.5 * 1.5))
    assert theta(0.2).item() == pytest.approx(min(math.sqrt(1.2) - 1, 1 - 1 / math.sqrt(1.8)))


def test_close_merge_satisfies_assumptions_and_bound_holds():
    protos, before, after, val = _case()
    d = theorem1_diagnostic(protos, [(1, 0)], before, after, val, 1e-4)
    assert d["merges"] == 1 and d["merges_satisfying"] == 1
    assert d["images"] == 4 and d["images_covered"] == 4
    delta_own = (1 + 0.01 / 0.5) ** 2 - 1                   # smallest delta with (b): ratio 0.02
    assert d["bound_max"] == pytest.approx(math.log((1 + delta_own) * (2 - delta_own)), rel=1e-9)
    assert d["bound_mean"] == pytest.approx(d["bound_max"] / 2)   # class-1 images lose no prototype: bound 0
    assert d["observed_max_drop"] == pytest.approx(0.0, abs=1e-9)  # equal activations: the logit keeps its value
    assert d["observed_exceeds_bound"] == 0


def test_assumption_fails_when_closest_patches_differ_or_pair_is_far():
    protos, before, after, val = _case(cells_differ=True)
    d = theorem1_diagnostic(protos, [(1, 0)], before, after, val, 1e-4)
    assert d["merges_satisfying"] == 0 and d["images_covered"] == 3
    far = protos.clone()
    far[1] = torch.tensor([0.4, 0.0])                         # gap 0.4 vs patch distance 0.5: ratio 0.8
    _, before, after, val = _case()
    d = theorem1_diagnostic(far, [(1, 0)], before, after, val, 1e-4)
    assert d["merges_satisfying"] == 0 and d["images_covered"] == 0 and d["bound_max"] is None


def test_sharing_matrix_graph_and_summary():
    mask = np.array([[1, 1, 0, 0],
                     [0, 1, 1, 0],
                     [0, 1, 0, 1]], dtype=bool)              # prototype 1 shared by all three classes
    shared = sharing_matrix(mask)
    assert shared.tolist() == [[2, 1, 1], [1, 2, 1], [1, 1, 2]]
    assert classes_per_prototype(mask).tolist() == [1, 3, 1, 1]
    graph = sharing_graph(mask, ["a", "b", "c"])
    assert [n["name"] for n in graph["nodes"]] == ["a", "b", "c"]
    assert {(e["source"], e["target"], e["weight"]) for e in graph["edges"]} == {(0, 1, 1), (0, 2, 1), (1, 2, 1)}
    summary = sharing_summary(torch.as_tensor(mask))
    assert summary == {"shared_prototypes": 1, "graph_edges": 3, "classes_per_prototype": {"1": 3, "3": 1}}
    g = to_networkx(graph)
    assert g.number_of_edges() == 3 and g.nodes[0]["prototypes"] == 2
    with pytest.raises(ValueError):
        sharing_graph(mask, ["only one"])
