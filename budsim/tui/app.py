"""Placeholder app until the TUI issue lands."""

from __future__ import annotations

from textual.app import App, ComposeResult
from textual.widgets import Footer, Header, Static


class BudsimApp(App[None]):
    TITLE = "budsim"
    BINDINGS = [("q", "quit", "Quit")]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("budsim: offline LLM deployment planner. Try `budsim --help`.", id="welcome")
        yield Footer()
