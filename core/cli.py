"""`python -m core COMMAND ...`: one entry point, one module per command.

Each command lives in its own module with a `main(argv) -> int`; the registry maps the
command name to that module so importing the CLI stays cheap (torch is imported only by
the commands that need it). The dispatcher is `common.cli.dispatch` (shared with
`python -m study`). Every module named here is part of core (tests/test_layering.py reads
this table): the demo workspace, studies included, is built by `python -m app demo`.
"""
from __future__ import annotations

from common.cli import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "make-synthetic": ("core.data.synthetic", "Generate the synthetic CUB-format birds."),
    "train": ("core.training.cli", "Train a ProtoPool / ProtoPNet model from a YAML config."),
    "evaluate": ("core.training.evaluate_cli", "Evaluate a checkpoint on a split."),
    "project": ("core.training.project_cli", "Project prototypes onto training patches."),
    "atlas": ("core.atlas.build_cli", "Build an atlas (prototypes, names, heatmaps) from a checkpoint."),
    "image-set": ("core.atlas.identity", "Record the identity of the image set an atlas explains (older atlases)."),
    "import-heatmaps": ("core.atlas.import_cli", "Import another method's heatmaps into an atlas."),
    "name": ("core.naming.cli", "Name prototypes from CUB attributes given their nearest patches."),
    "explain": ("core.explain.explain_cli", "Explain an image: the prediction and its prototype contributions."),
    "sharing": ("core.explain.sharing", "Which classes share prototypes: graph and histogram to HTML/JSON."),
    "merge-prune": ("core.protopshare.cli", "ProtoPShare data-dependent merge-pruning."),
    "metrics": ("core.metrics.cli", "Part consistency, stability, purity and box share of the prototypes."),
    "import-checkpoint": ("core.imports.cli", "Import a checkpoint trained with the official ProtoPool/ProtoPNet/ProtoPShare code."),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m core", COMMANDS, argv)
