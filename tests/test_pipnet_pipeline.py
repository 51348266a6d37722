"""PIP-Net end to end on the synthetic birds, through the same commands as ProtoPool: a tiny
training by the real trainer, then explain, name, metrics, atlas (with predictions), a
saliency study of PIP-Net against ProtoPool built from the atlases, simulated answers,
the analysis, and the app's pages on the PIP-Net atlas. One trained checkpoint per module;
accuracy is irrelevant here (a few images, one epoch per phase)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from core.cli import main as core_main
from study.cli import main as study_main

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SHORT = ["--set", "data.image_size=64", "--set", "data.batch_size=16", "--no-progress"]
PIPNET_SHORT = [f"--set=train.phases.{p}.epochs=1" for p in ("pretrain_prototypes", "finetune", "frozen", "joint")]
PROTOPOOL_SHORT = ["--set=train.pretrain.epochs=0", "--set=train.warmup.epochs=1", "--set=train.joint.epochs=1",
                   "--set=train.last_layer.epochs=1"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """The birds, a tiny PIP-Net and a tiny ProtoPool trained by `python -m core train`, and
    both atlases (`python -m core atlas`, names from the birds' CUB attributes)."""
    from core.data import make_synthetic

    base = tmp_path_factory.mktemp("pipnet-pipeline")
    birds = make_synthetic(base / "birds", classes=3, images_per_class=10, size=96, seed=0)
    torch.manual_seed(0)
    for name, config, extra in (("pipnet", "pipnet-tiny-synthetic.yaml", PIPNET_SHORT),
                                ("protopool", "tiny-synthetic.yaml", PROTOPOOL_SHORT)):
        assert core_main(["train", "--config", str(CONFIGS / config), "--set", f"data.root={birds}", *SHORT,
                          *extra, "--out", str(base / "runs" / name)]) == 0
        assert core_main(["atlas", "--checkpoint", str(base / "runs" / name / "model.pt"), "--cub-root", str(birds),
                          "--images", "6", "--pairs", "5", "--predictions", "6", "--device", "cpu", "--quiet",
                          "--out", str(base / "ws" / "atlases" / f"birds-{name}")]) == 0
    return base, birds


def _atlas(base: Path, name: str = "pipnet") -> dict:
    return json.loads((base / "ws" / "atlases" / f"birds-{name}" / "atlas.json").read_text())


def test_training_ends_with_the_authors_zeroing_and_a_pipnet_checkpoint(run):
    from core.training.checkpoint import load_checkpoint

    base, _ = run
    model, meta = load_checkpoint(base / "runs" / "pipnet" / "model.pt")
    assert model.config.architecture == "pipnet"
    phases = [h["phase"] for h in meta["history"]]
    assert phases[-1] == "absent" and "joint" in phases          # the zeroing runs last, once
    weight = model.classifier.weight.detach()
    assert bool((weight >= 0).all()) and bool(model.prototypes_in_use().any())


def test_maps_are_prototype_maps_with_peaks_inside_the_image(run):
    from core.training.checkpoint import load_checkpoint
    from core.training.data import checkpoint_dataset

    base, birds = run
    model, meta = load_checkpoint(base / "runs" / "pipnet" / "model.pt")
    test = checkpoint_dataset(meta, "test", root=str(birds))
    x = torch.stack([test[i][0] for i in range(2)])
    with torch.no_grad():
        maps = model.patch_similarities(x)
        out = model.evidence(x)
    m, side = model.num_prototypes, 64 // model.image_stride
    assert maps.shape == (2, m, side, side) and bool(((maps >= 0) & (maps <= 1)).all())
    torch.testing.assert_close(maps.sum(dim=1), torch.ones(2, side, side))     # softmax over prototypes
    torch.testing.assert_close(out.similarities, maps.amax(dim=(2, 3)))
    atlas = _atlas(base)
    for h in atlas["heatmaps"]:
        saved = np.load(base / "ws" / "atlases" / "birds-pipnet" / h["map"])
        assert saved.shape == (side, side)
        x0, y0, x1, y1 = h["box"]
        width, height = (int(v) for v in _image_size(base / "ws" / "atlases" / "birds-pipnet" / h["image"]))
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height


def _image_size(path: Path) -> tuple[int, int]:
    import cv2

    img = cv2.imread(str(path))
    return img.shape[1], img.shape[0]


def test_explain_cli_contributions_sum_to_the_logit(run, capsys):
    base, _ = run
    out = base / "explanation"
    atlas = base / "ws" / "atlases" / "birds-pipnet"
    assert core_main(["explain", "--atlas", str(atlas), "--test-index", "0", "--out", str(out)]) == 0
    doc = json.loads((out / "explanation.json").read_text())
    top = doc["classes"][0]
    assert top["label"] == doc["predicted"] and top["rows"]
    assert top["sum"] == pytest.approx(top["logit"], abs=1e-4)          # no bias: presences x relu(W)
    assert all(r["slot"] is None and r["weight"] > 0 for r in top["rows"])   # positive reasoning, no slots
    assert list(out.glob("class-*-prototype-*.png")) and (out / "explanation.html").is_file()
    assert "prediction:" in capsys.readouterr().out


def test_atlas_records_pipnet_names_from_the_vocabulary_and_predictions(run):
    from core.data.cub import read_cub_annotations
    from core.naming.vocabulary import compose, term

    base, birds = run
    atlas = _atlas(base)
    assert atlas["method"] == "PIP-Net" and atlas["model"]["model"]["architecture"] == "pipnet"
    from common.atlas import read_atlas

    assert read_atlas(base / "ws" / "atlases" / "birds-pipnet").architecture == "pipnet"
    in_use = [p for p in atlas["prototypes"] if p["classes"]]
    assert in_use and all(p["nearest"] for p in in_use)
    for p in in_use:           # a PIP-Net patch is scored by its similarity (no distances)
        scores = [n["similarity"] for n in p["nearest"]]
        assert all("distance" not in n for n in p["nearest"]) and scores == sorted(scores, reverse=True)
    attributes = set(read_cub_annotations(birds).attribute_names)
    named = [p for p in atlas["prototypes"] if p["name"]]
    assert named, "no PIP-Net prototype was named"
    for p in named:
        chosen = p["naming"]["name_attributes"]
        assert set(chosen) <= attributes and p["name"] == compose([term(a) for a in chosen])
    assert atlas["pairs"]["euclidean"] == [] and atlas["pairs"]["data_dependent"]   # no prototype vectors
    items = atlas["predictions"]["items"]
    assert items
    for item in items:
        for entry in item["top"]:
            shown = sum(e["contribution"] for e in entry["evidence"])
            assert shown + entry["other"] == pytest.approx(entry["logit"], abs=1e-4)
            assert all(int(e["prototype"]) in {p["id"] for p in in_use} for e in entry["evidence"])


def test_metrics_of_the_pipnet_prototypes(run):
    base, birds = run
    atlas = base / "ws" / "atlases" / "birds-pipnet"
    assert core_main(["metrics", "--checkpoint", str(base / "runs" / "pipnet" / "model.pt"), "--cub-root",
                      str(birds), "--atlas", str(atlas), "--metrics", "consistency,purity", "--device", "cpu",
                      "--quiet"]) == 0
    doc = json.loads((atlas / "metrics.json").read_text())
    assert doc["method"] == "PIP-Net"
    text = json.dumps(doc)
    assert "consistency" in text and "purity" in text


def test_a_study_of_pipnet_against_protopool_is_built_simulated_and_analysed(run):
    import pandas as pd

    base, _ = run
    ws = base / "ws"
    spec = ws / "sal.yaml"
    spec.write_text("kind: saliency\nseed: 2026\nmethods:\n  - atlas: atlases/birds-pipnet\n"
                    "  - atlas: atlases/birds-protopool\npool_size: 4\nitems_per_version: 3\nversions: 2\n"
                    "order: random\nattention: {count: 1, max_failures: 0}\n")
    study = ws / "studies" / "sal"
    assert study_main(["build", str(spec), "--out", str(study)]) == 0
    assert study_main(["simulate", str(study), "--participants", "8", "--effect", "PIP-Net=0.6",
                       "--db", str(base / "sim.sqlite")]) == 0
    assert study_main(["export-answers", str(study), "--db", str(base / "sim.sqlite"),
                       "--out", str(base / "answers.csv")]) == 0
    answers = pd.read_csv(base / "answers.csv")
    assert set(answers.loc[answers["kind"] == "saliency", "method"]) == {"PIP-Net", "ProtoPool"}
    assert study_main(["analyze", str(base / "answers.csv"), "--target", "PIP-Net", "--out",
                       str(base / "report"), "--no-png"]) == 0
    summary = json.loads((base / "report" / "summary.json").read_text())
    assert summary.get("primary"), summary.keys()
    assert "PIP-Net" in json.dumps(summary["primary"])


def test_the_app_lists_the_pipnet_prototypes_and_explains_with_it(run, monkeypatch):
    from streamlit.testing.v1 import AppTest

    base, _ = run
    password = "pipnet-pipeline-pw"
    monkeypatch.setenv("PROTOPROTO_HOME", str(base / "ws"))
    monkeypatch.setenv("PROTOPROTO_PASSWORD", password)
    monkeypatch.delenv("PROTOPROTO_DB", raising=False)
    at = AppTest.from_file(str(ROOT / "app" / "main.py"), default_timeout=60)
    at.run()
    at.text_input(key="password").input(password)
    at.button[0].click().run()
    at.sidebar.radio(key="page").set_value("Models").run()
    assert not at.exception, [e.value for e in at.exception]
    at.selectbox(key="atlas").set_value("birds-pipnet").run()
    atlas = _atlas(base)
    assert [m.value for m in at.metric][:1] == ["PIP-Net"]
    c = max(range(3), key=lambda k: sum(k in p["classes"] for p in atlas["prototypes"]))
    at.selectbox(key="class").set_value(c).run()
    protos = [p for p in atlas["prototypes"] if c in p["classes"]]
    assert protos and at.subheader[0].value.endswith(f"{len(protos)} prototypes")
    assert len(at.get("image")) >= sum(len(p["nearest"]) for p in protos)     # no source patch: no projection
    at.sidebar.radio(key="page").set_value("Explain an image").run()
    at.selectbox(key="explain_atlas").set_value("birds-pipnet").run()
    assert not at.exception, [e.value for e in at.exception]
    line = next(m.value for m in at.markdown if "= sum of" in m.value)
    logit = float(line.split("logit ")[1].split(" ")[0])
    why = at.dataframe[1].value
    assert why["contribution"].sum() == pytest.approx(logit, abs=0.01)
    at.sidebar.radio(key="page").set_value("Sharing").run()       # no slots: the figures, no assignment matrix
    at.selectbox(key="sharing_atlas").set_value("birds-pipnet").run()
    assert not at.exception, [e.value for e in at.exception]
    assert len(at.get("plotly_chart")) == 3
