"""Exceptions that separate a user's bad input (exit code 2) from bugs (exit code 1)."""


class UserError(Exception):
    """Bad input: a config key, an argument, a missing or hostile file. The message says what to fix."""
