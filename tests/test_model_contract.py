"""The model contract (core.model.contract), tested once for every registered architecture:
evidence shapes, class connections, patch similarity, declared phases, and a tiny run of
all of an architecture's phases on the synthetic birds. A new architecture gets these
tests by its registry line and a tiny config in TINY_CONFIGS."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from core.architectures import ARCHITECTURES, architecture, build_model
from core.data import make_synthetic
from core.model.contract import Batch, OncePhase, PrototypeArchitecture, TrainPhase
from core.training.checkpoint import load_checkpoint
from core.training.config import load_config
from core.training.loop import Trainer

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
# the tiny synthetic-birds config of each architecture (every registered one needs one)
TINY_CONFIGS = {"protopool": "tiny-synthetic.yaml", "protopnet": "protopnet-tiny-synthetic.yaml",
                "pipnet": "pipnet-tiny-synthetic.yaml"}
NAMES = sorted(ARCHITECTURES)


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return make_synthetic(tmp_path_factory.mktemp("contract") / "birds", classes=3, images_per_class=8, size=64,
                          seed=0)


def _config(name: str, birds: Path, *overrides: str):
    return load_config(CONFIGS / TINY_CONFIGS[name], [f"data.root={birds}", "runtime.progress=false",
                                                      "runtime.tensorboard=false", "runtime.device=cpu",
                                                      "train.paper=", *overrides])


def _model(name: str, birds: Path) -> PrototypeArchitecture:
    config = _config(name, birds)
    config.model.num_classes = 3
    torch.manual_seed(0)
    return build_model(config.model).eval()


def test_every_architecture_has_a_tiny_config():
    assert sorted(TINY_CONFIGS) == NAMES


@pytest.mark.parametrize("name", NAMES)
def test_evidence_shapes_and_class_connections(name, birds):
    model = _model(name, birds)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model(x)
        maps = model.patch_similarities(x)
    c, m = model.num_classes, model.num_prototypes
    assert out.logits.shape == (2, c) and out.similarities.shape == (2, m)
    h = w = 64 // model.image_stride
    assert maps.shape == (2, m, h, w) and torch.isfinite(maps).all()
    connections, mask = model.class_connections(), model.class_prototype_mask()
    assert connections.shape == (c, m) and mask.shape == (c, m) and mask.dtype == torch.bool
    assert bool((connections[mask] > 0).all())          # a prototype's own classes read it positively
    # the logits are the prototypes' presences through the class connections
    torch.testing.assert_close(out.logits, out.similarities @ connections.t(), rtol=1e-4, atol=1e-4)
    assert model.prototype_classes() == [torch.nonzero(col).flatten().tolist() for col in mask.t()]
    in_use = model.prototypes_in_use()
    assert in_use.shape == (m,) and in_use.dtype == torch.bool and bool(in_use.any())


@pytest.mark.parametrize("name", NAMES)
def test_patch_similarity_of_one_cell_is_its_activation_map_value(name, birds):
    model = _model(name, birds)
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        z = model.features(x)
        maps = model.patch_similarities(x)
        one = model.prototype_maps(z[0, :, 2, 3][None, :, None, None])
    assert one.shape == (1, model.num_prototypes, 1, 1)
    torch.testing.assert_close(one[0, :, 0, 0], maps[0, :, 2, 3], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_explanation_evidence_decomposes_the_logits(name, birds):
    """What explanations read (core/explain, core/atlas, core/metrics): `evidence` gives the
    maps of `patch_similarities`, and its logits are the presences through the decision
    layer, whose weight @ routing is `class_connections`; the optional capabilities are
    tensors of the documented shapes or None."""
    model = _model(name, birds)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        out = model.evidence(x)
        maps = model.patch_similarities(x)
        layer = model.decision_layer()
        z = model.features(x)
        distances = model.prototype_distances(z)
    c, m = model.num_classes, model.num_prototypes
    torch.testing.assert_close(out.maps, maps)
    torch.testing.assert_close(out.logits, model(x).logits, rtol=1e-5, atol=1e-5)
    j = layer.weight.shape[1]
    assert layer.weight.shape == (c, j) and layer.routing.shape == (j, m)
    assert bool(((layer.routing == 0) | (layer.routing == 1)).all()) and bool((layer.routing.sum(dim=1) <= 1).all())
    if layer.slots_per_class is not None:
        assert j == c * layer.slots_per_class
    torch.testing.assert_close(layer.weight @ layer.routing, model.class_connections())
    torch.testing.assert_close(out.logits, (out.similarities @ layer.routing.t()) @ layer.weight.t(),
                               rtol=1e-4, atol=1e-4)
    if distances is not None:       # distance-based: the maps are a decreasing function of the distances
        assert distances.shape == maps.shape and bool((distances >= 0).all())
        flat_d, flat_s = distances.flatten(2), maps.flatten(2)
        assert torch.equal(flat_d.argmin(dim=2), flat_s.argmax(dim=2))
    vectors, slots = model.prototype_vectors(), model.slot_assignment()
    assert vectors is None or vectors.shape[0] == m
    assert slots is None or (slots.shape[0] == c and slots.shape[2] == m)


@pytest.mark.parametrize("name", NAMES)
def test_declared_phases_name_groups_the_model_has(name, birds):
    config = _config(name, birds)
    entry = architecture(name)
    model = _model(name, birds)
    groups = model.parameter_groups()
    assert set(groups) <= set(entry.groups)
    phases = entry.phases(config)
    names = [p.name for p in phases]
    assert len(names) == len(set(names)) and any(isinstance(p, TrainPhase) for p in phases)
    for phase in phases:
        if isinstance(phase, TrainPhase) and phase.epochs and phase.module is None:
            assert phase.settings.lr and set(phase.settings.lr) <= set(groups), (phase.name, phase.settings.lr)
            assert all(groups[g] for g in phase.settings.lr), phase.name     # each trained group has parameters
    # a phase's settings are the config's own objects: --set and this test can change them
    for phase in phases:
        if isinstance(phase, TrainPhase):
            phase.settings.epochs = 7
    assert all(p.epochs == 7 for p in entry.phases(config) if isinstance(p, TrainPhase))
    model.set_trainable([])
    assert not any(p.requires_grad for p in model.parameters())


@pytest.mark.parametrize("name", NAMES)
def test_a_tiny_run_trains_every_declared_phase(name, birds, tmp_path):
    config = _config(name, birds, "train.prototype_init=kmeans++", "data.batch_size=8")
    phases = architecture(name).phases(config)
    for phase in phases:
        if isinstance(phase, TrainPhase):
            phase.settings.epochs = 1
    path = Trainer(config, tmp_path / "run").run()
    model, meta = load_checkpoint(path)
    trained = [h["phase"] for h in meta["history"]]
    for phase in phases:
        if isinstance(phase, TrainPhase):
            assert trained.count(phase.name) == 1, (phase.name, trained)
    assert [p.name for p in phases if isinstance(p, OncePhase) and p.logs_row] == \
        [h["phase"] for h in meta["history"] if "loss" not in h]
    assert all(torch.isfinite(torch.tensor(h["loss"])) for h in meta["history"] if "loss" in h)
    assert isinstance(model, PrototypeArchitecture) and model.num_classes == 3


def test_settings_of_other_phases_are_read_and_checked(birds):
    """train.phases holds the settings of phases other than ProtoPool's by name; a name the
    architecture does not declare is one error line naming its phases."""
    from core.errors import UserFacingError
    from core.model.contract import PhaseConfig

    with pytest.raises(UserFacingError, match=r"train.phases.prototypes_ssl: protopool has no phase .*warmup"):
        _config("protopool", birds, "train.phases.prototypes_ssl.epochs=2")
    with pytest.raises(UserFacingError, match=r"train.phases.x.lr.colour: unknown parameter group"):
        _config("protopool", birds, "train.phases.x.lr.colour=0.1")
    entry = dataclasses.replace(ARCHITECTURES["protopnet"], name="with-ssl",
                                phases=lambda c: [TrainPhase("ssl", c.train.phases["ssl"], lambda *a: None)])
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(ARCHITECTURES, "with-ssl", entry)
        config = _config("protopnet", birds, "model.architecture=with-ssl", "train.phases.ssl.epochs=2",
                         "train.phases.ssl.lr.add_on=0.01")
    assert config.train.phases["ssl"] == PhaseConfig(epochs=2, lr={"add_on": 0.01})
    assert config.to_dict()["train"]["phases"]["ssl"]["epochs"] == 2


def test_a_two_view_phase_sees_each_image_twice_differently_augmented(birds, tmp_path, monkeypatch):
    """The data hook: a phase with views=2 gets (view 1 of every image, then view 2) and the
    labels repeated; with augmentation the two views differ."""
    from core.model.losses import compute_losses
    from core.model.phases import protopnet_phases

    seen: list[Batch] = []

    def two_view_phases(config):
        def loss(net, out, batch):
            seen.append(batch)
            return compute_losses(net, out, batch.targets, config.loss)

        phases = protopnet_phases(config)
        return [dataclasses.replace(p, views=2, mixup=False, loss=loss) if p.name == "warmup" else p for p in phases]

    entry = dataclasses.replace(ARCHITECTURES["protopnet"], name="two-views", phases=two_view_phases)
    monkeypatch.setitem(ARCHITECTURES, "two-views", entry)
    config = _config("protopnet", birds, "model.architecture=two-views", "data.augment=true", "data.batch_size=4",
                     "train.warmup.epochs=1", "train.joint.epochs=0", "train.last_layer.epochs=0",
                     "train.project=false")
    Trainer(config, tmp_path / "run").run()
    assert seen and all(b.views == 2 for b in seen)
    first = seen[0]
    assert first.inputs.shape[0] == 2 * 4 and first.labels.shape == (8,)
    assert torch.equal(first.labels[:4], first.labels[4:])
    assert not torch.equal(first.inputs[:4], first.inputs[4:])       # two independent augmentations
