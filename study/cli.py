"""`python -m study COMMAND ...`: one entry point, one module per command (the dispatcher
is `common.cli.dispatch`, shared with `python -m core`)."""
from __future__ import annotations

from common.cli import dispatch

COMMANDS: dict[str, tuple[str, str]] = {
    "build": ("study.build_cli", "Build a study folder from a spec and atlases."),
    "links": ("study.platforms.links_cli", "Print participant links (open, Prolific, personal)."),
    "check": ("study.check_cli", "Check a study before launch (links, codes, media, attention, MTurk) and preview it."),
    "export-mturk": ("study.platforms.mturk_export_cli", "Export a Mechanical Turk batch."),
    "check-mturk": ("study.platforms.mturk_check_cli", "Check that an MTurk export's media URLs resolve."),
    "import-mturk": ("study.platforms.mturk_import_cli", "Import Mechanical Turk results."),
    "simulate": ("study.simulate_cli", "Answers of simulated participants (own store), to try the pipeline."),
    "status": ("study.status", "Where a study stands: participants per version, finished, answers, refusals."),
    "export-answers": ("study.export_cli", "Export answers as a long CSV."),
    "analyze": ("study.analysis.cli", "Analyse answers: tables, tests, figures, report."),
    "power": ("study.analysis.power_cli", "Sample-size planning by simulation."),
    "prereg": ("study.analysis.prereg", "Write a preregistration (OSF template) from a spec."),
}


def main(argv: list[str] | None = None) -> int:
    return dispatch("python -m study", COMMANDS, argv)
