"""The model side of the demo workspace: synthetic birds, the small demo models, their atlases.

The whole workspace (these plus the demo studies and the marker) is assembled above
`core/` and `study/`, by `app/demo.py` (`python -m app demo`, `python -m app`); `core`
knows nothing of studies. Every step is idempotent (a finished artifact is kept) and
atomic (each builder writes into a temporary sibling and renames):

    HOME/data/synthetic-birds/      core.data.synthetic (CUB layout)
    HOME/checkpoints/<variant>/     demo models (ProtoPool, ProtoPool without focal similarity)
    HOME/atlases/<name>/            core.atlas.build, prototypes named from the attributes
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEED = 0


@dataclass(frozen=True)
class Variant:
    """One demo model and the atlas built from it."""
    key: str          # folder name under checkpoints/
    atlas: str        # folder name under atlases/
    method: str       # the method label reports use (private: never shown to participants)
    similarity: str   # model.similarity (common.names.SIMILARITIES), also core.training.demo's variant


VARIANTS = (
    Variant("protopool", "protopool-birds", "ProtoPool", "focal"),
    Variant("protopool-nofocal", "protopool-nofocal-birds", "ProtoPool w/o focal", "protopnet"),
)


# -- steps -------------------------------------------------------------------------------

def ensure_data(home: Path) -> Path:
    """The synthetic birds the demo models were trained on (core.training.demo.DEMO_BIRDS:
    10 classes x 100 images, 448 px: about 10 s on 2 cores)."""
    from core.data.synthetic import make_synthetic
    from core.training.demo import DEMO_BIRDS

    root = home / "data" / "synthetic-birds"
    if not (root / "CUB_200_2011" / "images.txt").is_file():
        make_synthetic(root, **{**DEMO_BIRDS, "seed": SEED}, overwrite=True)
    return root


def ensure_model(home: Path, variant: Variant, data_root: Path, progress: bool = True) -> Path:
    """The demo checkpoint of one variant, trained by the model package's demo builder
    (`core.training.demo.ensure_demo_model`: configs/tiny-synthetic.yaml, moved into
    place only when complete; an existing checkpoint is checked and kept)."""
    from core.training.demo import ensure_demo_model

    return Path(ensure_demo_model(data_root, home / "checkpoints" / variant.key / "model.pt",
                                  variant=variant.similarity, progress=progress))


def ensure_atlas(home: Path, variant: Variant, checkpoint: Path, data_root: Path, *, images: int = 30,
                 progress: bool = False) -> Path:
    """The atlas of one demo model: nearest patches, names from the synthetic attributes,
    saliency heatmaps on test images, ProtoPShare pairs."""
    from core.atlas.build import AtlasOptions, build_atlas

    out = home / "atlases" / variant.atlas
    if (out / "atlas.json").is_file():
        from core.atlas.identity import record_identity

        record_identity(out)   # an atlas of an older demo: its image-set identity, once
        return out
    opts = AtlasOptions(images=images, k=5, pairs=20, seed=SEED, device="cpu", cub_root=str(data_root),
                        threads=2, progress=progress)
    return build_atlas(checkpoint, out, data_root=data_root, method=variant.method, name=variant.atlas,
                       opts=opts, overwrite=False)
