"""Everything is reachable from the keyboard: footer bindings and command-palette entries."""

from __future__ import annotations

from pathlib import Path

from budsim.tui.app import BudsimApp
from budsim.tui.screens.history import HistoryScreen
from budsim.tui.screens.results import ResultsScreen
from budsim.tui.views import view_from_response

from .conftest import async_test, load_json, wait_for


@async_test
async def test_bindings_and_palette_commands(db_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        keys = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert {"run", "toggle_advanced", "history", "quit"} <= keys
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Run the search", "History", "Toggle advanced settings"} <= titles

        app.push_screen(ResultsScreen(view_from_response(load_json("response.json"))))
        await pilot.pause()
        keys = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert {"export", "copy_json", "sort", "new_search", "back"} <= keys
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Export", "Copy configuration JSON", "Sort results"} <= titles

        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        keys = {b.binding.action for b in app.active_bindings.values() if b.binding.show}
        assert {"open", "mark", "compare", "edit", "delete", "refresh", "back"} <= keys

        # the palette opens from the keyboard
        await pilot.press("ctrl+p")
        await pilot.pause()
        assert app.screen.__class__.__name__ == "CommandPalette"
        await pilot.press("escape")
