"""Errors shown to the user as one line (the CLI prints them without a traceback)."""

from common.errors import ToolkitError


class UserFacingError(ToolkitError):
    """Bad input from the user: printed as one line naming the file, field or value."""


class DataError(UserFacingError):
    """A data set on disk is missing a file, has inconsistent ids or an unreadable image."""


class CheckpointError(UserFacingError):
    """A checkpoint is missing, corrupted, or does not match the requested model."""


class FormatError(UserFacingError):
    """An artifact (atlas, nearest-patch file, manifest) is malformed or of another version."""
