"""Errors that reach the user as one line and exit code 2."""


class UsageError(Exception):
    """Bad input or environment, refused before any work.

    The message names the problem and the fix, e.g.
    "dyck2 (fn_h) needs a length divisible by 4, got 30: pick one of 20, 40, 60, 80, 100".
    """
