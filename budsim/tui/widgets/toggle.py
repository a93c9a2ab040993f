"""A checkbox whose mark is blank when off, so its state reads without colour (256-colour, tmux)."""

from __future__ import annotations

from textual.widgets import Checkbox


class Toggle(Checkbox):
    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802 - textual's name
        return "X" if self.value else " "
