"""Torch-free reader of atlases for studies (FORMATS.md section 4).

The one reader is `common.atlas.read_atlas` (shared with core); a study gets the typed
`Atlas` with its errors as `StudyError` lines naming `atlas.json` and the field. Files
are checked when a stimulus is actually selected (`Atlas.file`), so a large atlas is
not walked in full; every path must stay inside the atlas folder, which is made
absolute on reading, so nothing later depends on the current folder (FORMATS.md §0).
"""
from __future__ import annotations

from pathlib import Path

from common.atlas import ATLAS_FORMAT, ATLAS_VERSION, Atlas  # noqa: F401 (re-exported)
from common.atlas import read_atlas as _read_atlas
from common.names import PAIR_SOURCES  # noqa: F401 (re-exported)
from study.errors import StudyError


def read_atlas(root: str | Path) -> Atlas:
    """Read and validate `root/atlas.json`; one StudyError naming file and field on failure."""
    return _read_atlas(root, check_files=False, error=StudyError)
