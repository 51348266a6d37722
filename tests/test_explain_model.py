"""Nearest patches and local explanations against a small randomly initialised model."""
import numpy as np
import pytest
import torch

from core.data import load_dataset
from core.data.synthetic import make_synthetic
from core.explain.local import explain_image
from core.explain.nearest import nearest_patches, patch_boxes
from core.model.similarity import log_similarity
from core.architectures import build_model
from core.model.config import ModelConfig


def small_model(architecture="protopool", seed=0):
    torch.manual_seed(seed)
    cfg = ModelConfig(architecture=architecture, backbone="resnet18", weights="none", truncate="layer3",
                      prototype_depth=16, num_prototypes=12 if architecture == "protopool" else None,
                      num_slots=3, prototypes_per_class=2, num_classes=4)
    model = build_model(cfg).eval()
    with torch.no_grad():  # off-class weights too, so every slot/prototype matters
        model.last_layer.weight.copy_(torch.randn_like(model.last_layer.weight))
    return model


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = make_synthetic(tmp_path_factory.mktemp("syn") / "birds", classes=4, images_per_class=6, size=96, seed=1)
    return load_dataset("cub", root, split="trainval", image_size=64)


def brute_force(model, ds):
    with torch.no_grad():
        x = torch.stack([ds[i][0] for i in range(len(ds))])
        return model.patch_distances(x)  # (N, M, H, W)


def test_streaming_top_k_matches_brute_force(data):
    model = small_model()
    k = 4
    near = nearest_patches(model, data, k=k, batch_size=5, device="cpu")
    dist = brute_force(model, data)
    n, m, h, w = dist.shape
    per_image = dist.reshape(n, m, h * w).min(dim=2)
    for p in range(m):
        order = torch.argsort(per_image.values[:, p], stable=True)[:k]
        assert near.indices[p].tolist() == order.tolist()
        assert np.allclose(near.distances[p], per_image.values[order, p].numpy(), rtol=1e-5, atol=1e-6)
        cells = per_image.indices[order, p].numpy()
        assert (near.cells[p, :, 0] * w + near.cells[p, :, 1]).tolist() == cells.tolist()
        # the map kept is the contract's activation map: log((d + 1) / (d + eps)) of the distances
        assert np.allclose(near.maps[p, 0], log_similarity(dist[order[0], p], model.epsilon).numpy(), atol=1e-5)
        assert np.allclose(near.scores[p], near.maps[p].reshape(k, -1).max(axis=1))
        assert len(set(near.indices[p].tolist())) == k  # at most one patch per image


def test_class_specific_and_padding(data):
    model = small_model()
    near = nearest_patches(model, data, k=len(data) + 3, batch_size=7, device="cpu", class_specific=True)
    classes = model.prototype_classes()
    labels = data.labels
    for p in range(model.num_prototypes):
        valid = near.valid(p)
        assert all(labels[near.indices[p, j]] in classes[p] for j in valid)
        assert len(valid) == int(np.isin(labels, classes[p]).sum())
        assert all(near.indices[p, j] == -1 for j in range(len(valid), near.indices.shape[1]))


def test_patch_boxes_in_original_pixels(data):
    model = small_model()
    near = nearest_patches(model, data, k=3, batch_size=8, device="cpu")
    for p in range(3):
        for patch in patch_boxes(near, data, p):
            g = data.geometry(patch["index"])
            x0, y0, x1, y1 = patch["box"]
            cx0, cy0, cx1, cy1 = g.crop
            assert cx0 - 1 <= x0 < x1 <= cx1 + 1 and cy0 - 1 <= y0 < y1 <= cy1 + 1
            assert patch["image_id"] == data.records[patch["index"]].image_id


@pytest.mark.parametrize("architecture", ["protopool", "protopnet"])
def test_contributions_sum_to_the_logit(data, architecture):
    model = small_model(architecture)
    for index in (0, 5):
        expl = explain_image(model, data, index, classes=[0, 1, 2, 3], device="cpu")
        with torch.no_grad():
            x = data[index][0][None]
            logits = model(x).logits[0]
            sim_maps = model.patch_similarities(x)[0]
        assert expl.predicted == int(torch.argmax(logits))
        assert set(expl.classes) == {0, 1, 2, 3}
        for c, ce in expl.classes.items():
            assert ce.logit == pytest.approx(float(logits[c]), abs=1e-5)
            assert ce.total == pytest.approx(ce.logit, rel=1e-4, abs=1e-4)
            own = [r for r in ce.rows if r.own]
            assert own and ce.rows[: len(own)] == own  # the class's own slots come first
            for r in ce.rows:
                assert r.contribution == pytest.approx(r.similarity * r.weight)
                assert np.allclose(r.activation_map, sim_maps[r.prototype].numpy(), atol=1e-5)
        row = expl.classes[expl.predicted].rows[0]
        assert expl.overlay(row).shape == (64, 64, 3)
        x0, y0, x1, y1 = expl.box(row)
        assert 0 <= x0 < x1 <= 64 and 0 <= y0 < y1 <= 64


def test_protopool_slots_name_their_prototype(data):
    model = small_model("protopool")
    expl = explain_image(model, data, 2, device="cpu")
    hard = model.hard_assignment()
    for r in expl.classes[expl.predicted].rows:
        c, k = r.slot
        assert hard[c, k, r.prototype] == 1.0
        assert r.own == (c == expl.predicted)


def test_source_patches_from_projection(data):
    from core.training.projection import project_prototypes
    model = small_model("protopool")
    records = project_prototypes(model, data, batch_size=16)
    paths = {r.image_id: r.path for r in data.records}
    expl = explain_image(model, data, 1, projection=records, image_paths=paths, device="cpu")
    rows = expl.classes[expl.predicted].rows
    own = [r for r in rows if r.own]
    assert all(r.source is not None and r.source["prototype"] == r.prototype for r in own)
    for r in own:
        x0, y0, x1, y1 = r.source["box"]
        assert r.source_patch.shape[:2] == (int(np.ceil(y1 - 1e-6)) - int(np.floor(y0 + 1e-6)),
                                            int(np.ceil(x1 - 1e-6)) - int(np.floor(x0 + 1e-6)))
    assert expl.classes[expl.predicted].total == pytest.approx(expl.classes[expl.predicted].logit, abs=1e-4)
