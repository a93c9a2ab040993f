"""The one exception type the CLI and TUI turn into a one-line message."""

from __future__ import annotations


class BudsimError(ValueError):
    """A user-facing error: bad input, impossible request, unknown id.

    The message must be one line that tells the user what is wrong and, where possible, what to do.
    """

    exit_code: int = 2

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split()))
