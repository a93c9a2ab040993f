"""The Textual front end. Only renders and dispatches; all logic lives in budsim.core.

Importing this package is free: textual loads only when `run_tui()` runs.
"""

from __future__ import annotations


def run_tui() -> None:
    """Open the interactive planner (what `budsim` with no command does)."""
    from budsim.tui.app import BudsimApp

    BudsimApp().run()
