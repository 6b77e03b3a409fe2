"""Errors that the command line turns into one clear line and exit code 2."""


class SemilabelError(Exception):
    """Base class: a user-facing problem, reported as one line."""


class DataError(SemilabelError):
    """Input data is missing, malformed or inconsistent (names the file and row)."""


class ConfigError(SemilabelError):
    """A configuration key, value or flag is wrong (names the key)."""


class CheckpointError(SemilabelError):
    """A checkpoint is corrupt or was made for another label schema."""


class OutputExistsError(SemilabelError):
    """An output path exists and overwriting was not asked for."""


class Interrupted(SemilabelError):
    """Training stopped on Ctrl-C (or SIGTERM) after saving last.pt; exit code 130.

    `quiet` is set on the ranks of a multi-process run that should not print it."""

    exit_code = 130

    def __init__(self, message: str, quiet: bool = False):
        super().__init__(message)
        self.quiet = quiet
