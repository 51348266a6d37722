"""`python -m core COMMAND ...`: one entry point, one module per command.

Each command lives in its own module with a `main(argv) -> int`; the registry maps the
command name to that module so importing the CLI stays cheap (torch is imported only by
the commands that need it).
"""
from __future__ import annotations

import importlib
import sys

from core.errors import UserFacingError

COMMANDS: dict[str, tuple[str, str]] = {
    "make-synthetic": ("core.data.synthetic", "Generate the synthetic CUB-format birds."),
    "train": ("core.training.cli", "Train a ProtoPool / ProtoPNet model from a YAML config."),
    "evaluate": ("core.training.evaluate_cli", "Evaluate a checkpoint on a split."),
    "project": ("core.training.project_cli", "Project prototypes onto training patches."),
    "atlas": ("core.atlas.build_cli", "Build an atlas (prototypes, names, heatmaps) from a checkpoint."),
    "import-heatmaps": ("core.atlas.import_cli", "Import another method's heatmaps into an atlas."),
    "name": ("core.naming.cli", "Name prototypes from CUB attributes given their nearest patches."),
    "merge-prune": ("core.protopshare.cli", "ProtoPShare data-dependent merge-pruning."),
    "demo": ("app.demo", "Build the demo workspace (synthetic birds, models, atlases, studies; app/demo.py)."),
    "metrics": ("core.metrics.cli", "Part consistency, stability, purity and box share of the prototypes."),
    "import-checkpoint": ("core.imports.cli", "Import a checkpoint trained with the official ProtoPool/ProtoPNet/ProtoPShare code."),
}


def _usage() -> str:
    lines = ["usage: python -m core COMMAND [options]", "", "commands:"]
    for name, (_, help_text) in COMMANDS.items():
        lines.append(f"  {name:<16} {help_text}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in {"-h", "--help"}:
        print(_usage())
        return 0
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        print(f"error: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(COMMANDS[name][0])
    try:
        return int(module.main(rest) or 0)
    except UserFacingError as exc:  # one clear line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return 1
