"""The trainer's numbers are pinned: tiny fixed-seed ProtoPool and ProtoPNet runs give the
loss history, logits and prototypes recorded before the trainer became a phase runner over
the architecture contract (tests/trainer_reference.py records and explains them)."""
from __future__ import annotations

import pytest
import torch

from tests.trainer_reference import REFERENCE, RUNS, compare, make_birds, run


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return make_birds(tmp_path_factory.mktemp("reference"))


@pytest.mark.parametrize("name", sorted(RUNS))
def test_tiny_run_equals_the_recorded_reference(name, birds, tmp_path):
    reference = torch.load(REFERENCE, weights_only=True)[name]
    result = run(name, birds, tmp_path / name)
    assert compare(result, reference) <= 1e-6, compare(result, reference)
