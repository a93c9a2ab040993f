"""The Textual front end. Only renders and dispatches; all logic lives in budsim.core."""

from __future__ import annotations


def run_tui() -> None:
    from budsim.tui.app import BudsimApp

    BudsimApp().run()
