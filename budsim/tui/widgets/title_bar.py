"""A one-line title bar: app name and where you are (no clock, nothing that changes on its own)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static


class TitleBar(Static):
    DEFAULT_CSS = """
    TitleBar {
        dock: top;
        width: 100%;
        height: 1;
        background: $panel;
        color: $foreground;
        padding: 0 1;
    }
    """

    def __init__(self, where: str) -> None:
        super().__init__(id="title-bar")
        self.where = where

    def on_mount(self) -> None:
        text = Text()
        text.append("≋ budsim", style="bold")
        text.append("  offline LLM deployment planner", style="dim")
        text.append(f"  ·  {self.where}", style="bold")
        self.update(text)
