"""Slot assignment: tau schedule, Gumbel-softmax form, hard one-hot assignment."""
import math

import pytest
import torch

from core.model.prototype_pool import SlotAssignment, tau_schedule


def test_tau_schedule_values():
    assert tau_schedule(0) == 1.0
    assert tau_schedule(30) == 1e-3
    assert tau_schedule(45.5) == 1e-3
    assert tau_schedule(1) == pytest.approx(1 / math.sqrt(3.4e4))
    assert tau_schedule(10) == pytest.approx(1 / math.sqrt(3.4e5))
    assert tau_schedule(20) == pytest.approx(1 / math.sqrt(3.4e4 * 20))
    assert tau_schedule(29.999) == 1e-3  # the formula dips just below 0.001 here: clipped
    assert tau_schedule(1e-9) == 1.0  # clipped to the start value
    values = [tau_schedule(e / 10) for e in range(0, 400)]
    assert all(a >= b for a, b in zip(values, values[1:]))
    assert abs(tau_schedule(29.99) - 1e-3) < 1e-5  # alpha chosen so tau(30) ~ 0.001


def test_gumbel_softmax_noise_is_not_divided_by_tau():
    torch.manual_seed(0)
    slots = SlotAssignment(3, 2, 7, "gumbel")
    slots.logits.data = torch.randn(3, 2, 7)
    slots.tau.fill_(0.5)
    slots.train()
    state = torch.get_rng_state()
    y = slots()
    torch.set_rng_state(state)
    eta = -torch.empty(3, 2, 7).exponential_().log()
    expected = torch.softmax(slots.logits / 0.5 + eta, dim=-1)
    torch.testing.assert_close(y, expected)
    torch.testing.assert_close(y.sum(-1), torch.ones(3, 2))


def test_softmax_mode_is_noise_free():
    slots = SlotAssignment(2, 3, 5, "softmax")
    slots.tau.fill_(0.25)
    slots.train()
    torch.testing.assert_close(slots(), torch.softmax(slots.logits / 0.25, dim=-1))
    torch.testing.assert_close(slots(), slots())


def test_hard_assignment_is_one_hot_and_used_in_eval():
    torch.manual_seed(1)
    slots = SlotAssignment(4, 3, 9, "gumbel")
    slots.eval()
    hard = slots()
    assert set(hard.unique().tolist()) == {0.0, 1.0}
    assert (hard.sum(-1) == 1).all()
    assert torch.equal(hard.argmax(-1), slots.logits.argmax(-1))
    assert torch.equal(slots(), hard)  # no noise at evaluation
    # binarised slots: thresholding softmax(q) at 0.5 gives the same matrix
    slots.logits.data = hard * 20.0
    assert torch.equal((slots.probabilities() > 0.5).float(), slots.hard())


def test_unknown_assignment_mode():
    from core.errors import UserFacingError
    with pytest.raises(UserFacingError, match="model.assignment"):
        SlotAssignment(2, 2, 3, "sinkhorn")
