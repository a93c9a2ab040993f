"""Shared screen behaviour: typed access to the app, deterministic cursors for tests."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import ModalScreen, Screen
from textual.widgets import Input

if TYPE_CHECKING:
    from ..app import BudsimApp


def breakpoint_classes(app: Any, width: int, height: int) -> set[str]:
    """The responsive classes Textual would give a screen of this size (see App.*_BREAKPOINTS)."""
    out: set[str] = set()
    for size, points in (
        (width, app.HORIZONTAL_BREAKPOINTS or []),
        (height, app.VERTICAL_BREAKPOINTS or []),
    ):
        for minimum, name in sorted(points, reverse=True):
            if size >= minimum:
                out.add(name)
                break
    return out


class BudsimScreen(Screen[Any]):
    def __init__(self) -> None:
        # Start with the breakpoint classes the first resize would set: changing classes after
        # mount restyles every widget on the screen, a visible cost at start-up and screen changes.
        classes: set[str] = set()
        try:
            width, height = self.app.size
            classes = breakpoint_classes(self.app, width, height)
        except Exception:  # noqa: BLE001 - no running app (tests building screens directly)
            pass
        super().__init__(classes=" ".join(sorted(classes)) or None)

    @property
    def budsim(self) -> BudsimApp:
        return cast("BudsimApp", self.app)

    def on_mount(self) -> None:
        if not self.budsim.cursor_blink:
            for field in self.query(Input):
                field.cursor_blink = False


class BudsimModal(ModalScreen[Any]):
    @property
    def budsim(self) -> BudsimApp:
        return cast("BudsimApp", self.app)
