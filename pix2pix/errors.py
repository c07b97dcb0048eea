"""Project exceptions: expected failures whose message tells a person what went wrong and how to fix it.

The CLI and the stages turn any :class:`Pix2PixError` into one red line and a non-zero exit code;
anything else is a bug and keeps its traceback.
"""


class Pix2PixError(Exception):
    """An expected failure; ``str(error)`` names the file or value at fault and the fix."""


class ConfigError(Pix2PixError):
    """A parameter has a value the pipeline cannot use."""


class DataError(Pix2PixError):
    """Input data (an image, a folder, a split list) is missing, corrupt or in an unknown layout."""


class ArchiveError(DataError):
    """An archive is truncated, corrupt, or holds a member that would be unsafe to extract."""


class DownloadError(Pix2PixError):
    """A file could not be fetched, or what was fetched is not the expected file."""


class ChecksumError(DownloadError):
    """A file's size or hash differs from the pinned value."""


class TrainingError(Pix2PixError):
    """Training cannot continue (non-finite loss, unusable checkpoint, ...)."""
