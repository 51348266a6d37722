"""`python -m core atlas` end to end on the synthetic birds with a small random model."""
import json

import cv2
import numpy as np
import pytest
import torch

from core import cli
from core.atlas.build import choose_images
from core.atlas.format import read_atlas
from core.data import load_dataset
from core.data.synthetic import make_synthetic
from core.explain.local import explain_image
from core.architectures import build_model
from core.model.config import ModelConfig
from core.training.checkpoint import save_checkpoint
from core.training.evaluate import evaluate
from core.training.projection import project_prototypes


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    base = tmp_path_factory.mktemp("atlas")
    root = make_synthetic(base / "birds", classes=4, images_per_class=8, size=96, seed=2)
    torch.manual_seed(0)
    cfg = ModelConfig(architecture="protopool", backbone="resnet18", weights="none", truncate="layer3",
                      prototype_depth=16, num_prototypes=10, num_slots=2, num_classes=4)
    model = build_model(cfg).eval()
    with torch.no_grad():
        model.last_layer.weight.add_(0.1 * torch.randn_like(model.last_layer.weight))
    data = {"dataset": "cub", "root": str(root), "image_size": 64, "crop_to_bbox": True, "val_fraction": 0.1,
            "split_seed": 0}
    train = load_dataset("cub", root, split="train", image_size=64)
    records = project_prototypes(model, train, batch_size=16)
    ckpt = save_checkpoint(base / "model.pt", model, config={"model": cfg.to_dict(), "data": data},
                           class_names=train.class_names, history=[{"phase": "last_layer", "val_accuracy": 0.5}],
                           projection=records)
    out = base / "atlases" / "pool"
    argv = ["atlas", "--checkpoint", str(ckpt), "--out", str(out), "--images", "6", "--k", "3",
            "--cub-root", str(root), "--pairs", "5", "--batch-size", "7", "--quiet", "--device", "cpu"]
    assert cli.main(argv) == 0
    return root, model, ckpt, out, argv


def test_atlas_manifest(setup):
    root, model, ckpt, out, _ = setup
    atlas = read_atlas(out)
    assert atlas.method == "ProtoPool" and atlas.model["model"]["num_prototypes"] == 10
    assert atlas.doc["created_from"]["checkpoint"] == "../../model.pt"   # relative to the atlas (FORMATS.md §0)
    assert atlas.created_from_path("checkpoint") == ckpt and atlas.accuracy["val"] == 0.5
    test = load_dataset("cub", root, split="test", image_size=64)
    assert atlas.accuracy["test"] == pytest.approx(evaluate(model, test, batch_size=16)["accuracy"])
    assert [p["classes"] for p in atlas.doc["prototypes"]] == model.prototype_classes()
    for p in atlas.doc["prototypes"]:
        assert len(p["nearest"]) == 3 and len({n["image_id"] for n in p["nearest"]}) == 3
        assert [n["distance"] for n in p["nearest"]] == sorted(n["distance"] for n in p["nearest"])
        for n in p["nearest"]:
            h, w = cv2.imread(str(out / n["image"])).shape[:2]
            x0, y0, x1, y1 = n["box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        if p["classes"]:
            assert p["source"] is not None and (out / p["source"]["image"]).is_file()
        assert p["naming"] is not None and p["naming"]["status"] in {"named", "inconsistent", "no_part",
                                                                     "no_attribute", "too_few_patches"}
        assert (p["name"] is not None) == (p["naming"]["status"] == "named")
    assert atlas.doc["naming_rules"]["k"] == 3 and atlas.doc["naming_rules"]["part_consistency"] == 3
    from core.protopshare.pairs import prototype_pairs
    train = load_dataset("cub", root, split="train", image_size=64)
    serving = {p["id"] for p in atlas.doc["prototypes"] if p["classes"]}
    pairable = [p["id"] for p in atlas.doc["prototypes"] if p["nearest"] and p["id"] in serving]
    expected = prototype_pairs(model, train, n_pairs=5, device="cpu", eligible=pairable)
    for source in ("data_dependent", "euclidean"):
        pairs = atlas.pairs[source]
        assert len(pairs) == 5
        assert all(q["a"] in serving and q["b"] in serving for q in pairs)   # no pair on an unused prototype
        assert [(q["a"], q["b"]) for q in pairs] == [(q["a"], q["b"]) for q in expected[source]]
        assert [q["score"] for q in pairs] == pytest.approx([q["score"] for q in expected[source]], rel=1e-4)
    assert [p.name for p in out.parent.iterdir()] == ["pool"]


def test_nearest_patches_record_their_cell_and_naming_uses_it(setup):
    root, model, _, out, _ = setup
    atlas = read_atlas(out)
    train = load_dataset("cub", root, split="train", image_size=64)
    index = {int(r.image_id): i for i, r in enumerate(train.records)}
    grid = np.load(out / atlas.heatmaps[0]["map"]).shape   # the feature grid
    for p in atlas.doc["prototypes"]:
        for n, ev in zip(p["nearest"], p["naming"]["patches"]):
            row, col = n["cell"]
            assert 0 <= row < grid[0] and 0 <= col < grid[1]
            h, w = cv2.imread(str(out / n["image"])).shape[:2]
            x0, y0, x1, y1 = n["cell_box"]
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
            expected = train.geometry(index[n["image_id"]]).cell_to_original_box(row, col, grid)
            assert n["cell_box"] == pytest.approx(expected, abs=0.01)
            # naming located the part with the cell, not with the display box
            assert ev["cell_box"] == n["cell_box"] and ev["box"] == n["box"]
            if ev["part_distance"] is not None and ev["part_location"] is not None:
                cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
                ann_xy = _part_xy(root, n["image_id"], ev["part_location"])
                assert ev["part_distance"] == pytest.approx(float(np.hypot(ann_xy[0] - cx, ann_xy[1] - cy)), abs=0.01)


def _part_xy(root, image_id, part_name):
    from core.data.cub import read_cub_annotations
    ann = _part_xy.cache.setdefault(str(root), read_cub_annotations(root))
    return ann.part_locs[ann.row_of(image_id), ann.part_names.index(part_name), :2]


_part_xy.cache = {}


def test_heatmaps_show_top_contributor_of_true_class(setup):
    root, model, _, out, _ = setup
    atlas = read_atlas(out)
    test = load_dataset("cub", root, split="test", image_size=64)
    by_id = {r.image_id: i for i, r in enumerate(test.records)}
    assert len(atlas.heatmaps) == 6
    assert len({test.labels[by_id[h["image_id"]]] for h in atlas.heatmaps}) == 4  # stratified
    for h in atlas.heatmaps[:3]:
        i = by_id[h["image_id"]]
        assert h["label"] == test.records[i].label
        expl = explain_image(model, test, i, classes=[h["label"]], device="cpu")
        best = max(expl.classes[h["label"]].rows, key=lambda r: r.contribution)
        assert h["prototype"] == best.prototype
        act = np.load(out / h["map"])
        assert act.shape == (4, 4) and np.allclose(act, best.activation_map, atol=1e-4)
        image = cv2.imread(str(out / h["image"]))
        overlay = cv2.imread(str(out / h["overlay"]))
        assert overlay.shape == image.shape
        original = cv2.imread(str(test.records[i].path))
        assert image.shape == original.shape


def test_existing_atlas_is_not_touched_and_bad_input_writes_nothing(setup, tmp_path, capsys):
    root, _, ckpt, out, argv = setup
    before = (out / "atlas.json").read_text()
    assert cli.main(argv) == 1
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "other"
    assert cli.main(["atlas", "--checkpoint", str(ckpt), "--out", str(bad), "--data", str(tmp_path / "nowhere"),
                     "--quiet"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "\n" not in err
    assert not bad.exists() and list(tmp_path.iterdir()) == []
    assert (out / "atlas.json").read_text() == before


def test_helpers():
    labels = np.array([0] * 5 + [1] * 5 + [2] * 2)
    chosen = choose_images(labels, 6, seed=0)
    assert len(chosen) == 6 and sorted(np.bincount(labels[chosen])) == [2, 2, 2]
    assert chosen == choose_images(labels, 6, seed=0) and chosen != choose_images(labels, 6, seed=1)


def test_class_patches_from_atlas(setup):
    from core.explain import global_views as gv
    _, model, _, out, _ = setup
    atlas = read_atlas(out)
    c = next(c for c in range(4) if any(c in cs for cs in model.prototype_classes()))
    ids, patches, names = gv.class_patches_from_atlas(atlas, c)
    assert ids == [p for p, cs in enumerate(model.prototype_classes()) if c in cs]
    assert all(p.ndim == 3 and p.shape[2] == 3 and p.size for p in patches)
    fig = gv.class_prototypes_figure(c, atlas.class_names, ids, patches, names)
    assert len(fig.data) == len(ids)


def test_protopnet_atlas_without_test_pass(setup, tmp_path):
    from core.atlas.build import AtlasOptions, build_atlas_from_model
    root = setup[0]
    torch.manual_seed(1)
    cfg = ModelConfig(architecture="protopnet", backbone="resnet18", weights="none", truncate="layer3",
                      prototype_depth=8, prototypes_per_class=2, num_prototypes=None, num_classes=4)
    model = build_model(cfg).eval()
    train = load_dataset("cub", root, split="train", image_size=64)
    test = load_dataset("cub", root, split="test", image_size=64)
    opts = AtlasOptions(images=3, k=2, test_accuracy=False, device="cpu", batch_size=16, pairs=3)
    out = build_atlas_from_model(model, {"config": {"model": cfg.to_dict()}, "class_names": train.class_names},
                                 train, test, tmp_path / "pnet", opts=opts)
    atlas = read_atlas(out)
    assert atlas.method == "ProtoPNet" and atlas.accuracy == {"val": None, "test": None}
    assert [p["classes"] for p in atlas.doc["prototypes"]] == [[c] for c in range(4) for _ in range(2)]
    assert all(p["source"] is None and p["name"] is None for p in atlas.doc["prototypes"])
    assert len(atlas.heatmaps) == 3
    for h in atlas.heatmaps:
        i = next(i for i, r in enumerate(test.records) if r.image_id == h["image_id"])
        expl = explain_image(model, test, i, classes=[h["label"]], device="cpu")
        assert h["prototype"] == max(expl.classes[h["label"]].rows, key=lambda r: r.contribution).prototype


def test_name_command_reads_an_atlas(setup, tmp_path):
    root, _, _, out, _ = setup
    names = tmp_path / "names.json"
    assert cli.main(["name", "--cub-root", str(root), "--nearest", str(out / "atlas.json"), "--out", str(names),
                     "--k", "3"]) == 0
    doc = json.loads(names.read_text())
    atlas = read_atlas(out)
    assert [r["name"] for r in doc["prototypes"]] == [p["name"] for p in atlas.doc["prototypes"]]
    assert [r["part_votes"] for r in doc["prototypes"]] == [p["naming"]["part_votes"] for p in atlas.doc["prototypes"]]


def test_study_reader_accepts_the_atlas(setup):
    from study.atlas_reader import read_atlas as study_read_atlas
    out = setup[3]
    atlas = study_read_atlas(out)
    assert len(atlas.heatmaps) == 6 and len(atlas.prototypes) == 10
    for h in atlas.heatmaps:
        assert atlas.file(h["overlay"], "overlay").is_file()


def test_stimuli_are_the_crop_at_full_resolution_without_a_border(setup, tmp_path):
    """What a participant sees: the original pixels of the model's crop at 448 px (not the
    64-px model input blown up), the map upsampled straight to that size, no crop frame;
    a saliency study built from the atlas shows exactly these pictures."""
    from core.explain import overlay as ov

    root, _, _, out, _ = setup
    atlas = read_atlas(out)
    test = load_dataset("cub", root, split="test", image_size=64)
    by_id = {r.image_id: i for i, r in enumerate(test.records)}
    for h in atlas.heatmaps:
        stim = h["stimulus"]
        picture = cv2.imread(str(out / stim["image"]))[..., ::-1]
        shown = cv2.imread(str(out / stim["overlay"]))[..., ::-1]
        assert picture.shape == shown.shape and max(picture.shape[:2]) == 448 >= ov.STIMULUS_SIDE
        i = by_id[h["image_id"]]
        original = cv2.imread(str(test.records[i].path))[..., ::-1]
        x0, y0, x1, y1 = ov.crop_region(test.geometry(i).crop, original.shape[:2])
        assert stim["region"] == [x0, y0, x1, y1]
        assert picture.shape[1] / picture.shape[0] == pytest.approx((x1 - x0) / (y1 - y0), rel=0.02)
        # the picture is the original crop resized (bicubic), PNG is lossless
        expected = cv2.resize(np.ascontiguousarray(original[y0:y1, x0:x1]), picture.shape[1::-1],
                              interpolation=cv2.INTER_CUBIC)
        assert np.array_equal(picture, expected)
        # the overlay: 0.5 picture + 0.3 JET of the map upsampled bicubically to the picture's size
        heat = ov.jet_rgb(ov.normalise(ov.upsample(np.load(out / h["map"]), picture.shape[:2])))
        assert np.array_equal(shown, ov.blend(picture, heat))
    # no border rectangle: the full-image overlay is constant JET blue far from the crop (the
    # check below finds it there) and fades into the crop's map near it, without a step at the
    # crop's edge; the stimulus has no frame at all
    h = next(h for h in atlas.heatmaps if h["stimulus"]["region"][1] > 0)
    full = cv2.imread(str(out / h["overlay"]))[..., ::-1].astype(int)
    image = cv2.imread(str(out / h["image"]))[..., ::-1].astype(int)
    rx0, ry0, rx1, ry1 = h["stimulus"]["region"]
    reach = int(np.ceil(ov.FEATHER * max(rx1 - rx0, ry1 - ry0))) + 1
    outside = (full - (image * 0.5).round())[:max(0, ry0 - reach)]   # heat share well above the crop
    assert np.abs(outside - np.array(ov.jet_rgb(np.zeros((1, 1)))[0, 0] * 0.3).round()).max() <= 1
    heat = full - (image * 0.5).round()
    step = np.abs(heat[ry0, rx0:rx1] - heat[ry0 - 1, rx0:rx1]).max()     # across the crop's top edge
    assert step <= max(4, np.abs(np.diff(heat[ry0:ry1, rx0:rx1], axis=0)).max()), step
    stim = cv2.imread(str(out / h["stimulus"]["overlay"]))[..., ::-1].astype(int)
    pic = cv2.imread(str(out / h["stimulus"]["image"]))[..., ::-1].astype(int)
    heat_share = stim - (pic * 0.5).round()
    edge = np.concatenate([heat_share[:3].reshape(-1, 3), heat_share[-3:].reshape(-1, 3),
                           heat_share[:, :3].reshape(-1, 3), heat_share[:, -3:].reshape(-1, 3)])
    blue = np.array(ov.jet_rgb(np.zeros((1, 1)))[0, 0] * 0.3).round()
    assert (np.abs(edge - blue).max(axis=1) > 2).mean() > 0.5    # the map goes on to the edge: no blue frame
