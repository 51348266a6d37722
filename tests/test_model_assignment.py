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


def test_softmax_mode_is_the_papers_w_o_gumbel_at_temperature_one():
    """The paper's "w/o Gumbel" (the code without --pp_gumbel): softmax(q), tau ignored."""
    slots = SlotAssignment(2, 3, 5, "softmax")
    slots.tau.fill_(0.25)
    slots.train()
    torch.testing.assert_close(slots(), torch.softmax(slots.logits, dim=-1))
    torch.testing.assert_close(slots(), slots())
    slots.eval()
    assert torch.equal(slots(), slots.hard())          # hard at test


def test_softmax_annealed_mode_is_noise_free_at_the_current_tau():
    slots = SlotAssignment(2, 3, 5, "softmax-annealed")
    slots.tau.fill_(0.25)
    slots.train()
    torch.testing.assert_close(slots(), torch.softmax(slots.logits / 0.25, dim=-1))
    torch.testing.assert_close(slots(), slots())


def test_soft_evaluation_is_softmax_at_temperature_one():
    from core.errors import UserFacingError

    slots = SlotAssignment(2, 3, 5, "softmax")
    slots.eval()
    slots.set_eval_assignment("soft")
    torch.testing.assert_close(slots(), torch.softmax(slots.logits, dim=-1))
    with pytest.raises(UserFacingError) as err:
        slots.set_eval_assignment("gumbel")
    assert "'gumbel'" in str(err.value) and "hard, soft" in str(err.value) and "\n" not in str(err.value)


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
    with pytest.raises(UserFacingError, match="model.assignment") as err:
        SlotAssignment(2, 2, 3, "sinkhorn")
    text = str(err.value)
    assert "'sinkhorn'" in text and "gumbel, softmax, softmax-annealed" in text and "\n" not in text


def test_tau_schedule_scaled_to_a_short_run():
    from core.model.prototype_pool import tau_alpha

    # alpha=None: derived so that tau reaches the floor exactly at end_epoch
    assert tau_alpha(30) == pytest.approx(1 / (1e-6 * 30))
    assert tau_schedule(0, None, 15) == 1.0
    assert tau_schedule(1, None, 15) == pytest.approx(1 / math.sqrt(tau_alpha(15)))
    assert tau_schedule(14.999, None, 15) == pytest.approx(1e-3, rel=1e-3)
    assert tau_schedule(15, None, 15) == 1e-3


def test_slot_logits_start_xavier_normal_and_binarisation_is_measured_at_tau_one():
    from core.model.prototype_pool import xavier_normal_std

    torch.manual_seed(0)
    slots = SlotAssignment(200, 10, 202)
    # the official (C, M, K) tensor's Xavier-normal std: fan_in = M*K, fan_out = C*K
    ref = torch.empty(200, 202, 10)
    torch.nn.init.xavier_normal_(ref)
    assert xavier_normal_std(200, 10, 202) == pytest.approx(float(ref.std()), rel=0.02)
    assert float(slots.logits.detach().std()) == pytest.approx(xavier_normal_std(200, 10, 202), rel=0.02)
    # binarisation ignores tau: it looks at softmax(q) at temperature 1
    slots.tau.fill_(1e-3)
    assert slots.binarisation(0.9) == 0.0
    slots.logits.data[:100] = torch.nn.functional.one_hot(torch.arange(100 * 10) % 202, 202).float().reshape(
        100, 10, 202) * 12.0
    assert slots.binarisation(0.9) == pytest.approx(0.5)
