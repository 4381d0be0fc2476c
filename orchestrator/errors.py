"""The two kinds of failure the CLI reports, and the exit code each one maps to."""


class FedsageError(Exception):
    """A failure reported to the user as one line; subclasses choose the exit code."""

    exit_code = 1


class BadInput(FedsageError):
    """Input the user can fix (config, data, arguments): exit code 2, nothing written."""

    exit_code = 2


class RunFailed(FedsageError):
    """A run that started but could not finish (a client died, a timeout): exit code 1."""

    exit_code = 1
