"""Command-line equivalents of the app's pages: `python -m core explain` ("Explain an
image"), `python -m core sharing` ("Sharing"), `python -m study status` ("Run and
monitor"). Each runs as a subprocess from another current folder on the app tests'
tiny demo workspace."""
from __future__ import annotations

import json
import re
import subprocess
import sys

import numpy as np
import pytest

import app_helpers

ATLAS = "protopool-birds"
EXTERNAL_SCRIPT = re.compile(r"<script[^>]*\bsrc=", re.IGNORECASE)   # pages must open offline


def run(*args, cwd):
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    return app_helpers.workspace(tmp_path_factory.mktemp("cli-pages") / "ws")


def test_explain_matches_the_library_and_sums_to_the_logit(home, tmp_path):
    from core.atlas.format import read_atlas
    from core.explain.local import explain_image
    from core.training.checkpoint import load_checkpoint
    from core.training.data import checkpoint_dataset

    atlas_dir = home / "atlases" / ATLAS
    done = run("-m", "core", "explain", "--atlas", str(atlas_dir), "--test-index", "2", "--class", "0",
               "--json", "e.json", "--out", "expl", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "e.json").read_text())
    assert "prediction: " in done.stdout and "logit" in done.stdout

    atlas = read_atlas(atlas_dir)
    checkpoint = atlas.created_from_path("checkpoint")
    model, meta = load_checkpoint(checkpoint)
    test = checkpoint_dataset(meta, "test", root=str(atlas.created_from_path("data_root")), checkpoint=checkpoint)
    expl = explain_image(model, test, 2, classes=[0], projection=meta.get("projection"), device="cpu")
    assert doc["predicted"] == expl.predicted and doc["true_label"] == expl.true_label
    np.testing.assert_allclose(doc["logits"], expl.logits, rtol=1e-5, atol=1e-5)
    assert {c["label"] for c in doc["classes"]} == {expl.predicted, 0}
    named = {p["id"]: p.get("name") for p in atlas.doc["prototypes"]}
    for c in doc["classes"]:
        assert c["sum"] == pytest.approx(c["logit"], abs=1e-3)                  # rows add up to the logit
        assert c["sum"] == pytest.approx(sum(r["contribution"] for r in c["rows"]), abs=1e-6)
        assert all(r["name"] == named.get(r["prototype"]) for r in c["rows"])  # names from the atlas
    out = tmp_path / "expl"
    assert json.loads((out / "explanation.json").read_text()) == doc
    page = (out / "explanation.html").read_text()
    assert not EXTERNAL_SCRIPT.search(page) and page.count("sum to the logit") == len(doc["classes"])
    assert list(out.glob("class-*-prototype-*.png")) and (out / "input.png").read_bytes()[:4] == b"\x89PNG"


def test_explain_an_image_file_and_one_line_errors(home, tmp_path):
    from core.atlas.format import read_atlas

    atlas_dir = home / "atlases" / ATLAS
    any_image = next((home / "data").rglob("*.jpg"))
    done = run("-m", "core", "explain", "--atlas", str(atlas_dir), "--image", str(any_image), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "prediction: " in done.stdout and "true class" not in done.stdout
    (tmp_path / "fake.png").write_text("not an image")
    from core.png import encode_png
    (tmp_path / "cut.png").write_bytes(encode_png(np.zeros((64, 64, 3), np.uint8))[:60])   # header fine, pixels cut
    for args, message in [(["--image", "fake.png"], "fake.png"), (["--image", "cut.png"], "cut.png"),
                          (["--test-index", "9999"], "--test-index: 9999 is out of range"),
                          (["--test-index", "0", "--class", "99"], "--class: 99 is not a class index")]:
        bad = run("-m", "core", "explain", "--atlas", str(atlas_dir), *args, cwd=tmp_path)
        assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stderr.startswith("error: ") and message in bad.stderr and bad.stderr.count("\n") == 1
    assert read_atlas(atlas_dir).prototypes


def test_sharing_to_json_and_html(home, tmp_path):
    from core.atlas.format import read_atlas
    from core.explain import global_views as gv

    atlas_dir = home / "atlases" / ATLAS
    manifest = atlas_dir / "atlas.json"
    doc = json.loads(manifest.read_text())
    doc["dataset"]["class_names"][0] = "<script>alert(1)</script>"     # names reach HTML escaped
    manifest.write_text(json.dumps(doc))
    done = run("-m", "core", "sharing", "--atlas", str(atlas_dir), "--out", "sh", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "sh" / "sharing.json").read_text())
    atlas = read_atlas(atlas_dir)
    per_prototype = {p["id"]: sorted(set(p["classes"])) for p in atlas.doc["prototypes"]}
    assert result["prototypes"] == len(per_prototype)
    assert [s["prototype"] for s in result["shared"]] == sorted(p for p, cs in per_prototype.items() if len(cs) >= 2)
    assert sum(result["classes_per_prototype"].values()) == len(per_prototype)
    pairs = {(e["a"], e["b"]): e["shared"] for e in result["class_pairs"]}
    for (a, b), n in pairs.items():
        assert n == sum(1 for cs in per_prototype.values() if a in cs and b in cs)
    graph = gv.sharing_graph(list(per_prototype.values()), len(atlas.class_names))
    assert len(pairs) == graph.number_of_edges()
    page = (tmp_path / "sh" / "sharing.html").read_text()
    assert "<script>alert(1)" not in page and not EXTERNAL_SCRIPT.search(page)
    assert f"{result['prototypes']} prototypes, {len(result['shared'])} shared" in done.stdout
    bad = run("-m", "core", "sharing", "--atlas", str(atlas_dir), "--out", "sh", "--format", "pdf", cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: --format: unknown pdf")


def _answer(runner, pid, n=None):
    """Answer `n` items (all when None) the way an attentive participant would."""
    done = 0
    while (view := runner.next_item(pid)) is not None and (n is None or done < n):
        info = runner.key.get(view.item_id, {})
        answer = info["expected"] if info.get("kind") == "attention" else runner.study.option_values[0]
        runner.record_answer(pid, view.item_id, answer)
        done += 1


def test_status_counts_what_the_monitor_shows(home, tmp_path):
    from app.views.monitor import study_counts
    from study.session import StudyRunner

    study = home / "studies" / "demo-saliency"
    empty = run("-m", "study", "status", str(study), cwd=tmp_path)          # no answer store yet: none created
    assert empty.returncode == 0, empty.stderr
    assert "0 finished" in empty.stdout and not (study / "answers.sqlite").exists()

    runner = StudyRunner.open(study)
    first = runner.start().participant_id
    _answer(runner, first)
    runner.finish(first)
    second = runner.start().participant_id
    _answer(runner, second, 1)
    tokens = runner.invite(2)
    runner.decline(token=tokens[0])
    runner.decline(platform="prolific", worker_id="W1")

    done = run("-m", "study", "status", str(study), "--json", "status.json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads((tmp_path / "status.json").read_text())
    counts = study_counts(runner)                                            # the app's monitor
    t = doc["totals"]
    for key in ("started", "active", "finished", "screened_out", "answers", "attention_failures", "invited"):
        assert t[key] == counts[key], key
    assert (t["finished"], t["active"], t["refusals"]) == (1, 1, 2)
    assert doc["refusals_by_platform"] == {"local": 1, "prolific": 1}
    assert t["answers"] == len(runner.study.versions[runner.participant(first).version]) + 1
    assert sum(v["participants"] for v in doc["versions"]) == 2 and len(doc["versions"]) == len(runner.study.versions)
    for v in doc["versions"]:
        assert v["items"] == len(runner.study.versions[v["version"]])
    assert "1 finished, 1 active" in done.stdout and "consent refusals: local 1, prolific 1" in done.stdout
    terms = json.loads((study / "private" / "key.json").read_text())["private_terms"]
    assert terms and not any(t in done.stdout + json.dumps(doc) for t in terms)   # blinded: no method names
    runner.store.close()
    bad = run("-m", "study", "status", str(tmp_path / "nope"), cwd=tmp_path)
    assert bad.returncode == 1 and bad.stderr.startswith("error: ") and "Traceback" not in bad.stderr
