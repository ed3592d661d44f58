"""Errors that reach the user as one line and exit code 2.

At the package root on purpose: every layer raises UsageError (datasets, verify, proposers, the engine,
the CLI, which turns it into the exit code) and it imports nothing, so in any one package it would make
all the others depend on that package.
"""


class UsageError(Exception):
    """Bad input or environment, refused before any work.

    The message names the problem and the fix, e.g.
    "dyck2 (fn_h) needs a length divisible by 4, got 30: pick one of 20, 40, 60, 80, 100".
    """
