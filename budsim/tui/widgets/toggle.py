"""Checkboxes whose mark is blank when off, so their state reads without colour (256-colour, tmux)."""

from __future__ import annotations

from rich.segment import Segment
from textual import events
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList


class Toggle(Checkbox):
    @property
    def BUTTON_INNER(self) -> str:  # type: ignore[override]  # noqa: N802 - textual's name
        return "X" if self.value else " "


class CheckList(SelectionList[str]):
    """A SelectionList whose unticked entries show ▐ ▌ (Textual draws ▐X▌ for both and tells them
    apart by colour only), with the cursor on the first entry once focused, so that Space toggles
    it at once (an OptionList starts with no cursor: the first Space did nothing)."""

    def _on_focus(self, event: events.Focus) -> None:
        super()._on_focus(event)
        if self.highlighted is None and self.option_count:
            self.highlighted = 0

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        segments = list(strip)
        index = self.scroll_offset.y + y
        if (
            len(segments) > 1
            and index < self.option_count
            and self.get_option_at_index(index).value not in self.selected
        ):
            text, style, control = segments[1]
            segments[1] = Segment(" " * len(text), style, control)
            return Strip(segments, strip.cell_length)
        return strip
