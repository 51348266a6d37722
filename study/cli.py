"""`python -m study COMMAND ...`: one entry point, one module per command."""
from __future__ import annotations

import importlib
import sys

from study.errors import StudyError

COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("study.build_cli", "Build a study folder from a spec and atlases."),
    "links": ("study.platforms.links_cli", "Print participant links (open, Prolific, personal)."),
    "check": ("study.check_cli", "Check a study before launch (links, codes, media, attention, MTurk) and preview it."),
    "export-mturk": ("study.platforms.mturk_export_cli", "Export a Mechanical Turk batch."),
    "check-mturk": ("study.platforms.mturk_check_cli", "Check that an MTurk export's media URLs resolve."),
    "import-mturk": ("study.platforms.mturk_import_cli", "Import Mechanical Turk results."),
    "simulate": ("study.simulate_cli", "Answers of simulated participants (own store), to try the pipeline."),
    "export-answers": ("study.export_cli", "Export answers as a long CSV."),
    "analyze": ("study.analysis.cli", "Analyse answers: tables, tests, figures, report."),
    "power": ("study.analysis.power_cli", "Sample-size planning by simulation."),
    "prereg": ("study.analysis.prereg", "Write a preregistration (OSF template) from a spec."),
}


def _usage() -> str:
    lines = ["usage: python -m study COMMAND [options]", "", "commands:"]
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
    except StudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
