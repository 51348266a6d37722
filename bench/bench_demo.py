"""Benchmark: does the demo convince? The figures of issue 11 for the shipped demo models.

For checkpoints/demo-protopool-focal.pt (ProtoPool) and demo-protopool-protopnet-sim.pt
(ProtoPool without focal similarity, the paper's ablation), on the demo's synthetic birds
(core.demo.ensure_data, regenerated deterministically in a temp folder):

- test accuracy (target for the focal model: >= 0.90);
- named share: assigned prototypes whose 5 nearest training patches get status `named`
  under the atlas builder's naming rules (target >= 0.60);
- in box: on every test image, the activation maximum of the top prototype of the
  predicted class lies inside the bird's box (target >= 0.90); "on part" is stricter: the
  maximum's feature cell holds a visible part location;
- slot binarisation at temperature 1;
- names against the drawing: of the named prototypes' agreeing patches, the share whose
  feature cell is at least 15% painted with the named part (synthetic birds are redrawn
  from their seed, so the check uses the pixels, not only the part annotations);
- names match the source patch (issue 25, target >= 0.95): of the named prototypes, the
  share whose name (every attribute of it) is what the drawing painted under the
  prototype's own source patch, the patch an atlas shows: the painted value on that image
  and the attribute's region on at least 15% of the patch's cell (the failures are listed);
- of the inconsistent prototypes, how many sit on one painted region (it covers at least
  15% of each of the five patches' cells: only the nearest-part vote split them) and
  between which parts the votes split;
- for the birds themselves: how often a pixel's nearest part location lies on its own
  painted region, and, at the model's resolution, how often the cell a region covers most
  is placed on that region's part by the naming's cell look-up: together they bound how
  consistently the naming's vote can place a region.

    python bench/bench_demo.py [--threads 2] [--checkpoint PATH ...] [--data ROOT]
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

TARGETS = {"test_accuracy": 0.90, "named_share": 0.60, "in_box": 0.90, "names_match_source": 0.95}


def main(argv=None) -> int:
    from core.data.synthetic import part_region_agreement
    from core.demo import ensure_data
    from core.training.demo import VARIANTS, committed_demo_model
    from core.metrics.figures import model_figures

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", nargs="*", default=None, help="default: the two shipped demo models")
    ap.add_argument("--data", default=None, help="synthetic birds root (default: the demo's, in a temp folder)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    torch.set_num_threads(a.threads)
    paths = [Path(p) for p in a.checkpoint] if a.checkpoint else [committed_demo_model(v) for v in VARIANTS]
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        data_root = Path(a.data) if a.data else ensure_data(Path(tmp))
        names = [p.name for p in paths]
        for path in paths:   # by file name, or by path where two share a name (runs/*/model.pt)
            results[path.name if names.count(path.name) == 1 else str(path)] = model_figures(path, data_root)
        agreement, per_region = part_region_agreement(data_root)
    print(f"{'checkpoint':34s} {'test acc':>8s} {'named':>11s} {'in box':>6s} {'on part':>7s} {'bin@tau=1':>9s} "
          f"{'names drawn':>11s} {'match source':>12s}")
    for name, r in results.items():
        print(f"{name:34s} {r['test_accuracy']:8.3f} {r['named']:3d}/{r['assigned']:3d}={r['named_share']:.2f} "
              f"{r['in_box']:6.3f} {r['on_part']:7.3f} {r.get('binarised_slots', float('nan')):9.3f} "
              f"{r.get('named_patches_on_drawn_part', float('nan')):11.2f} "
              f"{r.get('names_match_source', float('nan')):12.2f}")
        print(f"  statuses: {r['statuses']}")
        for f in r.get("names_match_source_failures", []):
            print(f"  name against its source patch: #{f['id']} {f['name']!r}: {'; '.join(f['why'])}")
        if "inconsistent_on_one_region" in r:
            print(f"  inconsistent though on one painted region: {r['inconsistent_on_one_region']}/"
                  f"{r['inconsistent']}, votes split {r['inconsistent_splits']}")
    focal = next((r for n, r in results.items() if "focal" in n and r["similarity"] == "focal"), None)
    if focal is not None:
        ok = {k: focal.get(k, float("nan")) >= t for k, t in TARGETS.items()}
        print("# focal model targets: " + ", ".join(f"{k} >= {t}: {ok[k]}" for k, t in TARGETS.items()))
    print(f"# synthetic birds: nearest part location on the pixel's painted region {agreement:.3f} ("
          + ", ".join(f"{k} {v:.2f}" for k, v in per_region.items()) + ")")
    for name, r in results.items():
        if "region_cells_named" in r:
            print(f"# the cell each region covers most is named for that region's part: {r['region_cells_named']:.3f} ("
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["region_cells_named_by_region"].items())
                  + f") at {name}'s {r['grid'][0]} x {r['grid'][1]} cells; any cell mostly on one region: "
                  f"{r['region_cells_named_any']:.3f} ("
                  + ", ".join(f"{k} {v:.2f}" for k, v in r["region_cells_named_any_by_region"].items()) + ")")
            break
    if a.json:
        Path(a.json).write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
