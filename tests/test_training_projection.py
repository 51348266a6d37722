"""Projection lands every assigned prototype exactly on its nearest eligible training patch."""

import pytest
import torch

from core.data import load_dataset, make_synthetic
from core.architectures import build_model
from core.model.similarity import squared_distances
from core.training.projection import project_prototypes


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    root = make_synthetic(tmp_path_factory.mktemp("proj") / "birds", classes=4, images_per_class=6, size=64, seed=3)
    return load_dataset("cub", root, split="train", image_size=48, val_fraction=0.0)


def _model(num_classes):
    torch.manual_seed(0)
    model = build_model(dict(architecture="protopool", backbone="resnet18", weights="none", truncate="layer2",
                             num_classes=num_classes, num_prototypes=12, num_slots=2, prototype_depth=16))
    with torch.no_grad():  # a definite assignment: classes use prototypes 0..7, prototypes 8..11 unused
        logits = torch.full_like(model.slots.logits, -5.0)
        for c in range(num_classes):
            logits[c, 0, 2 * c] = 5.0
            logits[c, 1, (2 * c + 3) % 8] = 5.0
        model.slots.logits.copy_(logits)
    return model.eval()


def test_projection_lands_on_nearest_patch_of_assigned_class(birds):
    model = _model(birds.num_classes)
    before = model.prototypes.detach().clone()
    classes = model.prototype_classes()
    records = project_prototypes(model, birds, batch_size=5)   # several batches: running minimum
    after = model.prototypes.detach()
    with torch.no_grad():
        feats = torch.cat([model.features(torch.stack([birds[i][0] for i in range(j, min(j + 7, len(birds)))]))
                           for j in range(0, len(birds), 7)])
    labels = torch.as_tensor(birds.labels)
    h, w = feats.shape[2:]
    for p in range(model.num_prototypes):
        rec = records[p]
        if not classes[p]:
            assert rec is None
            assert torch.equal(after[p], before[p]), "unassigned prototypes stay untouched"
            continue
        assert rec["label"] in classes[p] and rec["classes"] == classes[p]
        r, c = rec["cell"]
        patch = feats[rec["index"], :, r, c]
        torch.testing.assert_close(after[p], patch, rtol=0, atol=1e-5)
        # nearest among all patches of images of its classes (brute force)
        eligible = torch.isin(labels, torch.tensor(classes[p]))
        d = squared_distances(feats[eligible], before[p:p + 1]).flatten()
        assert rec["distance"] == pytest.approx(float(d.min()), rel=1e-4, abs=1e-5)
        assert birds.records[rec["index"]].image_id == rec["image_id"]
        box = birds.geometry(rec["index"]).cell_to_original_box(r, c, (h, w))
        assert rec["box"] == pytest.approx(list(box))
        x0, y0, x1, y1 = rec["box"]
        crop = birds.geometry(rec["index"]).crop
        assert crop[0] - 1e-6 <= x0 < x1 <= crop[2] + 1e-6 and crop[1] - 1e-6 <= y0 < y1 <= crop[3] + 1e-6


def test_projection_is_deterministic_and_batch_independent(birds):
    a, b = _model(birds.num_classes), _model(birds.num_classes)
    ra = project_prototypes(a, birds, batch_size=4)
    rb = project_prototypes(b, birds, batch_size=11)
    assert [None if r is None else (r["image_id"], r["cell"]) for r in ra] == \
           [None if r is None else (r["image_id"], r["cell"]) for r in rb]
    torch.testing.assert_close(a.prototypes, b.prototypes, rtol=0, atol=1e-5)
