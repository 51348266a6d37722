"""Errors shown to the user as one line (the CLI prints them without a traceback)."""


class StudyError(Exception):
    """Bad input (spec, atlas, answers file, results CSV): one line naming file, field or value."""
