"""Exceptions a user can cause, each tied to a documented exit code.

Library code raises these; only the CLI turns them into messages and exit codes, so a
user never sees a traceback unless they pass ``--debug``.
"""

from __future__ import annotations

EXIT_OK = 0
EXIT_FAILURE = 1  # something failed while running (data, training, I/O)
EXIT_USAGE = 2  # bad config, bad command-line usage; nothing was written
EXIT_GATE = 3  # a --fail-under / --fail-over metric gate was not met
EXIT_DATA = 4  # a dataset is missing, unreadable or malformed
EXIT_DIVERGED = 5  # the loss or a weight became NaN or infinite (or a saved model holds one)
EXIT_STORAGE = 6  # the run directory could not be written (disk full, permissions)
EXIT_SIGINT = 130  # interrupted by Ctrl-C; a checkpoint was written
EXIT_SIGTERM = 143  # terminated (SIGTERM, e.g. preemption); a checkpoint was written


class TrainerError(Exception):
    """Base class: a message that says what happened, where, and how to fix it."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


class ConfigError(TrainerError):
    """The config (or an override of it) is invalid. Carries one line per problem."""

    exit_code = EXIT_USAGE

    def __init__(self, source: str, problems: list[str]) -> None:
        self.source = source
        self.problems = problems
        plural = "s" if len(problems) != 1 else ""
        body = "\n".join(f"  - {p}" for p in problems)
        super().__init__(f"invalid config {source} ({len(problems)} problem{plural}):\n{body}")


class UsageError(TrainerError):
    """The command line asks for something impossible (bad --set, missing run, ...)."""

    exit_code = EXIT_USAGE


class DataError(TrainerError):
    """A dataset is missing, unreadable or malformed."""

    exit_code = EXIT_DATA


class DivergedError(TrainerError):
    """The loss or a weight became NaN or infinite; the last finite checkpoint was kept."""

    exit_code = EXIT_DIVERGED


class StorageError(TrainerError):
    """The run directory could not be written; the previous checkpoint is intact."""

    exit_code = EXIT_STORAGE


class Interrupted(TrainerError):
    """A signal stopped training after a checkpoint was written."""

    def __init__(self, message: str, exit_code: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.exit_code = exit_code


class RunError(TrainerError):
    """Training or evaluation failed while running."""


class GateError(TrainerError):
    """A metric did not clear the bar set with --fail-under / --fail-over."""

    exit_code = EXIT_GATE
