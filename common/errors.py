"""The one error root of the toolkit.

Every error the toolkit raises for bad input (a file, field or value the user can fix)
derives from `ToolkitError`: `core.errors.UserFacingError` (and its DataError,
CheckpointError, FormatError), `study.errors.StudyError`, `app.upload.UploadError`,
`common.images.ImageLimitError` and `common.atlas.AtlasError`. A caller that shows
errors as one line (the command lines, the app's pages) catches this one class; its
message already names the file, field or value and the fix.
"""
from __future__ import annotations


class ToolkitError(Exception):
    """Bad input from the user: its message is one line naming the file, field or value."""
