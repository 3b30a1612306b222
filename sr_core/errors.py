"""Errors a user can act on: the CLI prints them as one line and exits with code 2."""


class UserError(Exception):
    """A problem with the user's input (file, option, checkpoint), not a bug."""
