"""Prototype metrics (core.metrics): the published definitions, checked three ways.

1. The reductions against direct ports of the authors' loops (Huang et al.'s
   EvalProtoPNet evaluation with OpenCV's INTER_CUBIC, PIP-Net's purity CSV evaluation).
2. End to end on the synthetic birds, whose part locations are known: an explanation
   source that always peaks on the bill scores consistent, stable, pure and inside the
   box; one that peaks at random does not.
3. The command line on a real (tiny, untrained) checkpoint, from another folder, with
   the atlas section.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from core.data import load_dataset
from core.data.cub import read_cub_annotations
from core.errors import FormatError
from core.metrics import read_metrics, regions, scores
from core.metrics.compute import MetricSettings, compute_metrics
from tests.data_fixtures import synthetic_set

ROOT = Path(__file__).resolve().parent.parent


# -- 1. against the authors' code ---------------------------------------------------------

def _official_region_hits(act: np.ndarray, size: int, half: int, part_labels) -> np.ndarray:
    """EvalProtoPNet util/eval_interpretability.py, one (image, prototype), as written there."""
    up = cv2.resize(act, dsize=(size, size), interpolation=cv2.INTER_CUBIC)
    idx = np.where(up == up.max())
    idx = (idx[0][0], idx[1][0])
    region = (max(0, idx[0] - half), min(size, idx[0] + half), max(0, idx[1] - half), min(size, idx[1] + half))
    out = np.zeros(15)
    for part_id, x, y in part_labels:
        if region[0] <= y <= region[1] and region[2] <= x <= region[3]:
            out[part_id] = 1
    return out


@pytest.mark.parametrize("size,grid", [(224, 7), (64, 8)])
def test_region_hits_equal_the_official_opencv_loop(size, grid):
    rng = np.random.default_rng(1)
    half = int(round(36 * size / 224))
    maps = rng.random((6, 4, grid, grid)).astype(np.float32)
    parts = rng.integers(-3, size + 3, size=(6, 15, 2))          # (row, col), some outside the image
    visible = rng.random((6, 15)) < 0.8
    up = regions.upsample(torch.from_numpy(maps), size)
    ours = regions.parts_in_regions(regions.peak_regions(up, half), torch.from_numpy(parts),
                                    torch.from_numpy(visible)).numpy()
    for b in range(6):
        labels = [(j, parts[b, j, 1], parts[b, j, 0]) for j in range(15) if visible[b, j]]
        for k in range(4):
            np.testing.assert_array_equal(ours[b, k], _official_region_hits(maps[b, k], size, half, labels))


def test_consistency_and_stability_follow_the_official_aggregation():
    rng = np.random.default_rng(2)
    visible = (rng.random((20, 15)) < 0.7).astype(float)
    visible[:, 3] = 0                                            # a part never visible: 0 / 1
    hits = (rng.random((20, 15)) < 0.5) * visible
    hits[:17, 5] = visible[:17, 5]                                # part 5 hit whenever visible in 17 images
    ok, freq = scores.consistency(hits, visible, 0.8)
    # the official: sum / where(sum == 0, 1, sum), then >= 0.8
    denom = visible.sum(0)
    official = hits.sum(0) / np.where(denom == 0, denom + 1, denom)
    np.testing.assert_allclose(freq, official)
    assert ok == bool((official >= 0.8).any())
    assert freq[3] == 0.0
    codes = regions.pack_bits(torch.from_numpy(hits.astype(bool))).numpy()
    noisy = codes.copy()
    noisy[:5] += 1
    # official: mean over images of (|o - o_noise|.sum(-1) == 0)
    assert scores.stability(codes, noisy) == pytest.approx(15 / 20)
    assert scores.stability(codes, codes) == 1.0


def _pipnet_purity(presences, visibles, names):
    """PIP-Net util/eval_cub_csv.py: the dict bookkeeping per patch and the purity loop."""
    name_to_id = {n: str(i + 1) for i, n in enumerate(names)}
    dup = [(name_to_id[n], name_to_id[n.replace("left", "right")]) for n in names if "left" in n]
    pres: dict = {}
    for presence, vis in zip(presences, visibles):
        part_dict = {str(j + 1) for j in range(len(names)) if vis[j]}
        for part in sorted(part_dict, key=int):
            pres.setdefault(part, []).append(int(presence[int(part) - 1]))
        for a, b in dup:
            if a in part_dict:
                if b in part_dict:
                    if pres[a][-1] > pres[b][-1]:
                        pres[b][-1] = pres[a][-1]
                    del pres[a]
                else:
                    pres.setdefault(b, []).append(pres[a][-1])
                    del pres[a]
    best, best_sum = 0.0, 0
    for part in pres:
        value, total = np.mean(pres[part]), np.array(pres[part]).sum()
        if value > best:
            best, best_sum = value, total
        elif value == best and (value == 0.0 or total > best_sum):
            best, best_sum = value, total
    return best


def test_purity_equals_pipnet_bookkeeping():
    ann_names = ["back", "beak", "belly", "breast", "crown", "forehead", "left eye", "left leg", "left wing",
                 "nape", "right eye", "right leg", "right wing", "tail", "throat"]
    rng = np.random.default_rng(3)
    for trial in range(30):
        vis = rng.random((10, 15)) < 0.7
        pres = (rng.random((10, 15)) < rng.random()) & vis
        merged, mvis, names = scores.merge_left_right(pres, vis, ann_names)
        assert len(names) == 12 and "left eye" not in names
        ours = scores.purity(merged, mvis, names)["purity"]
        # PIP-Net's dicts only hold parts visible in that patch's image; a whole-zero merge
        # in the dict version still adds the entry, as ours does
        assert ours == pytest.approx(_pipnet_purity(pres, vis, ann_names)), trial


# -- 2. the synthetic birds, with part-aware explanation sources -------------------------------

class OracleSource:
    """Four prototypes serving every class, maps on an 8 x 8 grid:

    0 peaks on the bill (from the annotation, as a well-behaved part prototype would);
    1 peaks at a random cell (seeded by the image); 2 follows the pixels themselves
    (the red channel, pooled), so noise moves its peak; 3 covers the cells inside the bird's box.
    """

    num_prototypes = 4

    def __init__(self, ann, num_classes):
        self.ann, self.num_classes = ann, num_classes
        self.beak = ann.part_names.index("beak")

    def prototype_classes(self):
        return [list(range(self.num_classes))] * 4

    def maps(self, images, dataset, index):
        b, _, s, _ = images.shape
        out = torch.zeros(b, 4, 8, 8)
        yy, xx = torch.meshgrid(torch.arange(8) + 0.5, torch.arange(8) + 0.5, indexing="ij")
        for i, n in enumerate(index):
            rec = dataset.records[int(n)]
            xy = self.ann.part_locs[self.ann.row_of(rec.image_id), self.beak, :2]
            u, v = dataset.geometry(int(n)).to_model_points(xy[None])[0] * 8 / s
            out[i, 0] = torch.exp(-((xx - u) ** 2 + (yy - v) ** 2) / 0.5)
            out[i, 1] = torch.from_numpy(np.random.default_rng(int(rec.image_id)).random((8, 8))).float()
            x0, y0, x1, y1 = (c * 8 / s for c in dataset.geometry(int(n)).to_model_box(rec.bbox))
            out[i, 3] = ((xx > x0) & (xx < x1) & (yy > y0) & (yy < y1)).float()
        step = s // 8   # one pixel per cell: its value, and so the peak, moves with the noise
        out[:, 2] = images[:, 0, step // 2::step, step // 2::step][:, :8, :8]
        return out


@pytest.fixture(scope="module")
def birds(tmp_path_factory):
    return synthetic_set(tmp_path_factory, classes=4, images_per_class=8, size=96, seed=3)


def _datasets(root, size=64):
    crop = load_dataset("cub", root, split="test", image_size=size, crop_to_bbox=True)
    full = load_dataset("cub", root, split="test", image_size=size, crop_to_bbox=False)
    return crop, full, read_cub_annotations(root, parts=True, attributes=False)


def test_a_bill_prototype_is_consistent_stable_pure_and_inside_the_box(birds):
    crop, full, ann = _datasets(birds)
    result = compute_metrics(OracleSource(ann, crop.num_classes), crop, full, ann, MetricSettings(purity_k=8))
    bill, rand, pixels, centre = result["prototypes"]
    assert bill["n_images"] == len(crop) == 16
    assert bill["consistency"]["consistent"] and bill["consistency"]["part"] == "beak"
    assert bill["consistency"]["frequency"] == 1.0
    assert not rand["consistency"]["consistent"] and rand["consistency"]["frequency"] < 0.8
    assert bill["stability"] == 1.0 and rand["stability"] == 1.0     # their maps ignore the pixels
    assert pixels["stability"] < 1.0                                 # a pixel-driven peak moves under noise
    assert bill["purity"]["purity"] == 1.0 and bill["purity"]["part"] == "beak"
    assert len(bill["purity"]["patches"]) == 8
    assert rand["purity"]["purity"] < 1.0
    assert centre["box_share"] > 0.55 and centre["box_share"] > rand["box_share"] + 0.2
    model = result["model"]
    assert model["consistency_score"] == pytest.approx(sum(
        p["consistency"]["consistent"] for p in result["prototypes"]) / 4)
    assert model["part_related_prototypes"] >= 1
    assert result["derived"]["half_size"] == 10 and result["derived"]["purity_patch"] == 9


def test_noise_is_seeded_and_metrics_can_be_chosen(birds):
    crop, full, ann = _datasets(birds)
    src = OracleSource(ann, crop.num_classes)
    a = compute_metrics(src, crop, full, ann, MetricSettings(metrics=["stability"], seed=5, noise_std=1.0))
    b = compute_metrics(src, crop, full, ann, MetricSettings(metrics=["stability"], seed=5, noise_std=1.0))
    assert a == b
    assert set(a["prototypes"][0]) == {"id", "classes", "n_images", "stability"}
    assert set(a["model"]) == {"num_prototypes", "evaluated_prototypes", "stability_score"}


# -- 3. the command line on a real checkpoint, and the atlas section -----------------------------

def _tiny_checkpoint(path: Path, root: Path, architecture: str) -> Path:
    from core.architectures import build_model
    from core.training.checkpoint import save_checkpoint
    from core.training.config import Config

    cfg = Config.from_dict({"data": {"root": str(root), "image_size": 64},
                            "model": {"architecture": architecture, "backbone": "resnet18", "weights": "none",
                                      "truncate": "layer2", "prototype_depth": 16, "num_prototypes": 8,
                                      "num_slots": 2, "prototypes_per_class": 2, "num_classes": 4}})
    torch.manual_seed(0)
    model = build_model(cfg)
    names = [f"class{i}" for i in range(4)]
    return save_checkpoint(path, model, config=cfg.to_dict(), class_names=names)


def _small_atlas(path: Path, num_prototypes: int, num_classes: int = 4) -> Path:
    from core.atlas.format import AtlasWriter, empty_manifest

    manifest = empty_manifest("tiny", "ProtoPNet", "birds", [f"class{i}" for i in range(num_classes)])
    manifest["prototypes"] = [{"id": i, "classes": [], "source": None, "nearest": [], "name": None, "naming": None}
                              for i in range(num_prototypes)]
    with AtlasWriter(path) as w:
        return w.commit(manifest)


def _run(args, cwd):
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "core", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


def test_cli_writes_metrics_into_an_atlas_from_another_folder(birds, tmp_path):
    from core.atlas.format import read_atlas

    ckpt = _tiny_checkpoint(tmp_path / "model.pt", birds, "protopnet")
    atlas = _small_atlas(tmp_path / "atlas", 8)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out = _run(["metrics", "--checkpoint", str(ckpt), "--cub-root", str(birds), "--atlas", str(atlas),
                "--out", "m.json", "--quiet", "--device", "cpu", "--batch-size", "8"], elsewhere)
    assert out.returncode == 0, out.stderr
    assert "consistency" in out.stdout
    doc = read_metrics(atlas)                                    # through atlas.json's `metrics` field
    assert read_atlas(atlas).doc["metrics"] == "metrics.json"
    from study.atlas_reader import read_atlas as study_read_atlas
    study_read_atlas(atlas)                                      # studies still read the atlas
    assert doc == json.loads((elsewhere / "m.json").read_text())
    assert doc["method"] == "ProtoPNet" and len(doc["prototypes"]) == 8
    for p in doc["prototypes"]:
        assert p["classes"] == [p["id"] // 2] and p["n_images"] == 4
        assert 0.0 <= p["stability"] <= 1.0 and 0.0 <= p["box_share"] <= 1.0
        assert p["purity"]["part"] is not None and isinstance(p["consistency"]["consistent"], bool)
    assert 0.0 <= doc["model"]["consistency_score"] <= 1.0


def test_cli_refuses_another_models_atlas_and_writes_nothing(birds, tmp_path):
    ckpt = _tiny_checkpoint(tmp_path / "model.pt", birds, "protopool")
    atlas = _small_atlas(tmp_path / "atlas", 12)
    before = (atlas / "atlas.json").read_text()
    out = _run(["metrics", "--checkpoint", str(ckpt), "--cub-root", str(birds), "--atlas", str(atlas),
                "--quiet", "--device", "cpu", "--metrics", "purity"], tmp_path)
    assert out.returncode == 1
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("error: ") and "atlas prototype 8 has no metrics" in lines[-1], out.stderr
    assert "Traceback" not in out.stderr
    assert (atlas / "atlas.json").read_text() == before and not (atlas / "metrics.json").exists()
    bad = _run(["metrics", "--checkpoint", str(ckpt), "--cub-root", str(birds), "--out", "x.json",
                "--metrics", "purity,colour"], tmp_path)
    assert bad.returncode == 1 and "--metrics" in bad.stderr and not (tmp_path / "x.json").exists()


def test_read_metrics_names_the_bad_field(tmp_path):
    path = tmp_path / "m.json"
    path.write_text(json.dumps({"format": "protoproto-metrics", "version": 1, "settings": {}, "model": {},
                                "prototypes": [{"id": 0, "stability": 1.5}]}))
    with pytest.raises(FormatError, match=r"prototypes\[0\]\.stability"):
        read_metrics(path)


def test_prototypes_serving_no_class_are_not_evaluated(birds):
    crop, full, ann = _datasets(birds)

    class Unassigned(OracleSource):
        def prototype_classes(self):
            return [[], [], [], []]

    result = compute_metrics(Unassigned(ann, crop.num_classes), crop, full, ann, MetricSettings())
    assert result["model"]["evaluated_prototypes"] == 0 and result["model"]["consistency_score"] is None
    for p in result["prototypes"]:
        assert p["consistency"] is None and p["stability"] is None and p["purity"] is None
        assert p["box_share"] is None and p["n_images"] == 0
