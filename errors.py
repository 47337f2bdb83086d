"""The one exception type the CLI turns into a clear one-line message."""


class UserError(Exception):
    """Bad input or environment the user can fix: printed as one line, exit code 1, no traceback."""
