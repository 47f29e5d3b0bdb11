"""The base of every error that a user's input can cause.

The command line turns a `UserError` into a one-line message and a non-zero exit;
anything else is a bug and keeps its traceback.
"""


class UserError(Exception):
    """Bad input from the user: a missing file, a malformed manifest, a wrong key.

    The message names the file or key and says what is wrong.
    """


class TrainingError(UserError):
    """Training cannot start: no data, unreadable inputs, a config that does not match the run."""
