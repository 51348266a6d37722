"""Where the app finds its artifacts: one workspace folder holding atlases, studies,
the answer store and reports. The demo workspace is `.demo/` in the repository.

Configured by environment variables so the launcher, the Streamlit process and the
tests agree:
  PROTOPROTO_HOME      workspace folder (default: <repo>/.demo)
  PROTOPROTO_DB        answer-store URL or SQLite path (default: each study's own
                       studies/ID/answers.sqlite, the same file `python -m study ...`
                       uses without --db, so the app and the command line agree)
  PROTOPROTO_PASSWORD  researcher password (else Streamlit secret `password`)
  PROTOPROTO_BASE_URL  public address of the app, for participant links (optional)
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Workspace:
    home: Path

    @property
    def atlases(self) -> Path:
        return self.home / "atlases"

    @property
    def studies(self) -> Path:
        return self.home / "studies"

    @property
    def reports(self) -> Path:
        return self.home / "reports"

    @property
    def uploads(self) -> Path:
        return self.home / "uploads"

    @property
    def specs(self) -> Path:
        return self.home / "specs"

    @property
    def db(self) -> str | None:
        """The `db` argument of `StudyRunner.open` (None: the study folder's SQLite file)."""
        return os.environ.get("PROTOPROTO_DB") or None

    @property
    def base_url(self) -> str:
        return os.environ.get("PROTOPROTO_BASE_URL") or "http://127.0.0.1:8501/"

    def atlas_names(self) -> list[str]:
        if not self.atlases.is_dir():
            return []
        return sorted(p.name for p in self.atlases.iterdir() if (p / "atlas.json").is_file())

    def study_ids(self) -> list[str]:
        if not self.studies.is_dir():
            return []
        return sorted(p.name for p in self.studies.iterdir()
                      if not p.name.startswith(".") and (p / "study.json").is_file())


def current() -> Workspace:
    return Workspace(Path(os.environ.get("PROTOPROTO_HOME") or REPO / ".demo").resolve())
