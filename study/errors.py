"""Errors shown to the user as one line (the CLI prints them without a traceback)."""

from common.errors import ToolkitError


class StudyError(ToolkitError):
    """Bad input (spec, atlas, answers file, results CSV): one line naming file, field or value."""
