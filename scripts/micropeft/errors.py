"""Errors that the CLI reports as one line on stderr with a non-zero exit."""


class UserError(Exception):
    """Bad input from the user (missing file, wrong format, impossible budget).

    The message is shown as is, so it must say what is wrong and what to do.
    """
