"""One-process gloo DistributedDataParallel step equals the plain step."""
import copy

import pytest
import torch
import torch.distributed as dist

from core.architectures import build_model
from core.model.losses import LossWeights
from core.training.config import Config
from core.training.distributed import DistInfo, all_reduce_sum, wrap_ddp
from core.training.evaluate import autocast_for
from core.training.loop import make_optimizer, train_step


@pytest.fixture()
def gloo(tmp_path):
    if not dist.is_available():
        pytest.skip("torch.distributed not available")
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    yield DistInfo(rank=0, world_size=1, local_rank=0, enabled=True)
    dist.destroy_process_group()


def test_one_process_gloo_ddp_step_matches_plain_step(gloo):
    torch.manual_seed(0)
    net = build_model(dict(architecture="protopool", backbone="resnet18", weights="none", truncate="layer2",
                           num_classes=3, num_prototypes=6, num_slots=2, prototype_depth=8))
    twin = copy.deepcopy(net)
    initial = net.prototypes.detach().clone()
    joint = Config().train.joint
    x, y = torch.randn(4, 3, 32, 32), torch.tensor([0, 1, 2, 1])
    results = []
    for model, wrap in ((net, True), (twin, False)):
        model.set_trainable(list(joint.lr))
        model.set_tau(0.5)
        opt = make_optimizer(model, joint, (0.9, 0.999))
        wrapped = wrap_ddp(model, gloo, torch.device("cpu")) if wrap else model
        if wrap:
            assert isinstance(wrapped, torch.nn.parallel.DistributedDataParallel)
        wrapped.train()
        torch.manual_seed(1)   # same Gumbel noise in both runs
        _, terms = train_step(wrapped, model, opt, x, y, LossWeights(), autocast_for(torch.device("cpu"), "none"))
        results.append((float(terms["loss"]), model.state_dict()))
    assert results[0][0] == pytest.approx(results[1][0], rel=1e-6)
    for key, value in results[0][1].items():
        torch.testing.assert_close(value, results[1][1][key], rtol=1e-5, atol=1e-6, msg=key)
    assert not torch.equal(results[0][1]["prototype_layer.prototypes"], initial)  # the step did something
    assert all_reduce_sum([1.0, 2.0], gloo, torch.device("cpu")) == [1.0, 2.0]
