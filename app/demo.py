"""The demo workspace: synthetic birds, the small demo models, two atlases, two studies.

    python -m app demo [--home DIR] [--quiet]       (default DIR: <repo>/.demo)
    ensure_demo(Path(".demo"))                        (what `python -m app` calls)

Why it exists: on a fresh clone `python -m app` must open on something real without a
download. It sits above `core/` and `study/` (core knows nothing of studies): the model
side (data, models, atlases) is `core.demo`, the studies are `study.build`. Every step
is idempotent (a finished artifact is kept) and atomic (each builder writes into a
temporary sibling and renames), so an interrupted build resumes where it stopped and
never leaves a half-written folder behind. The layout is the app's workspace
(app/workspace.py):

    HOME/data/synthetic-birds/      core.data.synthetic (CUB layout)
    HOME/checkpoints/<variant>/     demo models (ProtoPool, ProtoPool without focal similarity)
    HOME/atlases/<name>/            core.atlas.build, prototypes named from the attributes
    HOME/specs/<study>.yaml         study specs (the researcher can edit and rebuild)
    HOME/studies/<study>/           study.build: a saliency and a consistency study
    HOME/demo.json                  written last: what was built, with which seed
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from common.atomic import write_atomic
from core.demo import REPO, SEED, VARIANTS, Variant, ensure_atlas, ensure_data, ensure_model  # noqa: F401

MARKER = "demo.json"
# what `python -m app demo` (and `python -m app` on first start) prints before it starts (README: measured times)
EXPECTED = ("about 1 minute on 2 free cores, 2 or more on a busy machine (about 6 minutes more if the shipped "
            "models do not match the birds and are retrained)")
STUDIES = ("demo-saliency", "demo-consistency")


def study_specs(home: Path) -> dict[str, dict]:
    """The two demo specs, sized to what the atlases hold (atlas paths relative to specs/)."""
    from study.atlas_reader import read_atlas

    atlases = [read_atlas(home / "atlases" / v.atlas) for v in VARIANTS]
    heatmaps = min(len(a.heatmaps) for a in atlases)
    pool = max(1, min(10, heatmaps))
    methods = [f"../atlases/{v.atlas}" for v in VARIANTS]
    first = atlases[0].pairs
    n_pairs = max(1, min(8, len(first["data_dependent"]), len(first["euclidean"])))
    per_version = max(1, min(5, n_pairs))
    return {
        "demo-saliency": {
            "id": "demo-saliency", "kind": "saliency", "seed": SEED, "methods": methods,
            "pool_size": pool, "items_per_version": max(1, min(4, pool)), "versions": 2, "order": "random",
            "attention": {"count": 1, "max_failures": 0},
            "codes": {"completion": "DEMO1234", "screen_out": "DEMOSCRN"},
        },
        "demo-consistency": {
            "id": "demo-consistency", "kind": "consistency", "seed": SEED, "methods": methods[:1],
            "pool_size": n_pairs, "items_per_version": per_version, "versions": 2, "order": "random",
            "attention": {"count": 1, "max_failures": 0},
            "codes": {"completion": "DEMO5678", "screen_out": "DEMOSCRN"},
        },
    }


def ensure_studies(home: Path) -> list[Path]:
    """Write the specs (if missing) and build each study that is not built yet."""
    import yaml

    from study.build import build_study

    built = []
    for study_id, spec in study_specs(home).items():
        spec_path = home / "specs" / f"{study_id}.yaml"
        if not spec_path.is_file():
            write_atomic(spec_path, yaml.safe_dump(spec, sort_keys=False))
        out = home / "studies" / study_id
        if not (out / "study.json").is_file():
            build_study(spec_path, out)
        built.append(out)
    return built


def _relative(path: Path, home: Path) -> str:
    path = Path(path).resolve()
    return path.relative_to(home).as_posix() if path.is_relative_to(home) else str(path)


def is_complete(home: Path) -> bool:
    return (Path(home) / MARKER).is_file()


def ensure_demo(home: Path, progress: bool = True) -> Path:
    """Build whatever part of the demo workspace is missing; a complete one returns at once."""
    home = Path(home).resolve()
    if is_complete(home):
        return home
    home.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    steps = 1 + 2 * len(VARIANTS) + 1  # data, a model and an atlas per variant, studies
    checkpoints: dict[str, Path] = {}
    done = [0]

    def say(text: str) -> None:
        if progress:
            print(text, file=sys.stderr, flush=True)

    def step(label: str, work):
        """One stage: its number and name first, then how long it took (inner bars between)."""
        done[0] += 1
        say(f"[{done[0]}/{steps}] {label} ...")
        t0 = time.monotonic()
        result = work()
        say(f"[{done[0]}/{steps}] {label}: done in {time.monotonic() - t0:.1f} s "
            f"({time.monotonic() - started:.0f} s so far)")
        return result

    say(f"Building the demo workspace in {home}: {steps} stages, {EXPECTED}. Each finished stage is kept.")
    data_root = step("synthetic birds (10 classes x 100 images, 448 px)", lambda: ensure_data(home))
    for v in VARIANTS:
        checkpoints[v.key] = step(f"model {v.key} (the shipped checkpoint, checked against the birds)",
                                  lambda v=v: ensure_model(home, v, data_root, progress=progress))
    for v in VARIANTS:
        step(f"atlas {v.atlas} (nearest patches, names, heatmaps, pairs)",
             lambda v=v: ensure_atlas(home, v, checkpoints[v.key], data_root, progress=progress))
    step(f"studies ({', '.join(STUDIES)})", lambda: ensure_studies(home))
    marker = {"format": "protoproto-demo", "version": 1, "seed": SEED, "seconds": round(time.monotonic() - started, 1),
              # paths relative to HOME (FORMATS.md section 0), so a copied workspace stays right
              "data": _relative(data_root, home),
              "checkpoints": {k: _relative(p, home) for k, p in checkpoints.items()},
              "atlases": [v.atlas for v in VARIANTS], "studies": list(STUDIES)}
    write_atomic(home / MARKER, json.dumps(marker, indent=1))
    return home


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m app demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", default=str(REPO / ".demo"), help="workspace folder (default: .demo)")
    parser.add_argument("--quiet", action="store_true", help="no stage lines or progress bars")
    args = parser.parse_args(argv)
    home = ensure_demo(Path(args.home), progress=not args.quiet)
    print(f"demo workspace ready: {home}")
    return 0
