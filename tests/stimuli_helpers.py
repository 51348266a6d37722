"""The demo atlases with their `predictions` section, built once per test session from the
shipped demo checkpoints (checkpoints/demo-protopool-*.pt) on the demo birds
(core.training.demo.DEMO_BIRDS), with few heatmaps and pairs so the build stays short."""
from __future__ import annotations

from pathlib import Path

from core.demo import VARIANTS
from core.training.demo import DEMO_BIRDS, committed_demo_model


def build_demo_atlases(base: Path, predictions: int = 40, birds: Path | None = None) -> dict[str, Path]:
    """{variant key: atlas folder} for both demo models (ProtoPool, ProtoPool w/o focal),
    on `birds` (the demo birds; drawn under `base` when None)."""
    from core.atlas.build import AtlasOptions, build_atlas
    from core.data.synthetic import make_synthetic

    root = birds if birds is not None else base / "data" / "synthetic-birds"
    if not (root / "CUB_200_2011" / "images.txt").is_file():
        make_synthetic(root, **DEMO_BIRDS, overwrite=True)
    out = {}
    for v in VARIANTS:
        atlas = base / "atlases" / v.atlas
        if not (atlas / "atlas.json").is_file():
            # nearest patches from the validation split only: a short pass (the sources then come from there)
            opts = AtlasOptions(images=2, k=3, pairs=2, seed=0, device="cpu", threads=2, predictions=predictions,
                                nearest_split="val")
            build_atlas(committed_demo_model(v.similarity), atlas, data_root=root, method=v.method,
                        name=v.atlas, opts=opts)
        out[v.key] = atlas
    return out
