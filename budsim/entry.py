"""The `budsim` entry point: bare `budsim` opens the TUI without loading the CLI's command set."""

from __future__ import annotations

import sys


def main() -> None:
    if len(sys.argv) == 1:
        from budsim.tui import run_tui

        run_tui()
        return
    from budsim.cli import main as cli_main

    cli_main()
