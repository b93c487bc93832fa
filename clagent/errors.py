"""Errors meant for the user: the CLI prints their message on one line and exits non-zero."""


class ClagentError(Exception):
    """A problem the user can act on; its message is shown as is."""
