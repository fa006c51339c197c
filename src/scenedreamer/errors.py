"""Errors that reach the user as one line (the CLI prints ``str(err)`` and exits non-zero).

Library code raises these for bad *input* (files, parameters, missing weights); programming
errors stay ordinary exceptions so that they keep their traceback.
"""

from __future__ import annotations


class UserInputError(Exception):
    """Bad input from the user: the message names what and where. CLI exit code 2."""

    exit_code = 2


class MissingWeightsError(UserInputError):
    """A requested real model has no weights locally and cannot be downloaded. Exit code 2."""


class RunLockedError(UserInputError):
    """Another process holds the run folder's lock (it is still writing the run). Exit code 2."""


class RunFailedError(Exception):
    """The run could not go on for an environmental reason (disk full, ...). CLI exit code 1."""

    exit_code = 1
