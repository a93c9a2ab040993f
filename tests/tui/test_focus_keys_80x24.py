"""Keyboard and focus at 80x24 (#19): focus reads without colour, checkboxes differ in their glyph,
Space toggles the engine under the cursor at once, Enter in a text field does not start a search."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.style import Style
from textual.widgets import Input, SelectionList

from budsim.tui.app import BudsimApp
from budsim.tui.screens.setup import SetupScreen

from .conftest import async_test, screen_lines, wait_for
from .test_flow import fill_small_search


def styles_of(app: Any, needle: str) -> list[Style]:
    """The styles of the screen's segments whose text holds `needle` (NO_COLOR keeps these)."""
    return [
        segment.style or Style()
        for strip in app.screen._compositor.render_strips()
        for segment in strip
        if needle in segment.text
    ]


def reversed_(app: Any, needle: str) -> bool:
    return any(style.reverse for style in styles_of(app, needle))


@async_test
async def test_focus_shows_in_text_style_not_only_colour(db_path: Path) -> None:
    """The focused field's label is in reverse video (a one-shade background change is lost in
    256 colours and without colour); the list's cursor line is bold and underlined."""
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        assert app.focused is not None and app.focused.id == "model"
        assert reversed_(app, "model") and not reversed_(app, "device")

        app.screen.query_one("#hardware").focus()  # a dropdown
        await pilot.pause()
        assert reversed_(app, "device") and not reversed_(app, "model")

        engines = app.screen.query_one("#engines", SelectionList)
        engines.scroll_visible(animate=False)
        engines.focus()  # a checkbox list: its label, and the line under the cursor
        await pilot.pause()
        assert reversed_(app, "engines:") and not reversed_(app, "device")
        first = str(engines.get_option_at_index(0).prompt)
        assert any(s.underline and s.bold for s in styles_of(app, first))
        app.screen.query_one("#load", Input).focus()
        await pilot.pause()
        assert not any(s.underline for s in styles_of(app, first))  # only while focused


@async_test
async def test_checkbox_glyph_and_space_on_the_first_engine(db_path: Path) -> None:
    """Checked and unchecked differ in the glyph (▐X▌ / ▐ ▌); Space on entering the engine list
    toggles the engine under the cursor without an arrow key first."""
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        engines = app.screen.query_one("#engines", SelectionList)
        await wait_for(pilot, lambda: engines.option_count > 0, what="engines")
        first = engines.get_option_at_index(0)
        assert first.value in engines.selected
        engines.scroll_visible(animate=False)
        engines.focus()
        await pilot.pause()
        label = str(first.prompt)
        assert any(f"▐X▌ {label}" in line for line in screen_lines(app))
        await pilot.press("space")
        await pilot.pause()
        assert first.value not in engines.selected
        assert any(f"▐ ▌ {label}" in line for line in screen_lines(app))
        count = f"engines: {len(engines.selected)} of {engines.option_count}"
        assert any(count in line for line in screen_lines(app))


@async_test
async def test_enter_in_a_text_field_does_not_start_the_search(db_path: Path) -> None:
    """Enter in the form's fields moves nothing on to a run; Ctrl+R does, and the footer and the
    run bar say so."""
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_small_search(pilot)
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        for field in ("seed", "load", "input_len"):
            setup.query_one(f"#{field}", Input).focus()
            await pilot.press("enter")
            await pilot.pause(0.2)
            assert app.run_state is None and app.screen is setup, field
        text = "\n".join(screen_lines(app))
        assert "^r Run" in text
        assert "ready: Ctrl+R or Enter on Run starts the search" in text
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.run_state is not None, what="the search to start")


@async_test
async def test_export_dialog_wraps_instead_of_cutting(db_path: Path) -> None:
    """The export dialog's title, hint and script lines wrap at 80 columns (they were cut at about
    72 characters, 'Esc closes' with them); c still copies the script as written."""
    from textual.widgets import TextArea

    from budsim.tui.screens.modals import ExportScreen

    title = (
        "trtllm launch script · `budsim export <run> -t all` adds docker, k8s, litellm and bench"
    )
    script = "#!/usr/bin/env bash\n# " + "a-long-flag-value " * 8 + "ends-here\n"
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.push_screen(ExportScreen(title, script, "the trtllm script"))
        await pilot.pause(0.3)
        words = " ".join(" ".join(screen_lines(app)).replace("│", " ").split())
        assert "adds docker, k8s, litellm and bench" in words
        assert "Esc closes" in words and "ends-here" in words
        assert app.screen.query_one("#export-text", TextArea).text == script


@async_test
async def test_toasts_take_a_third_of_the_width(db_path: Path) -> None:
    """A pop-up covered half of an 80-column table; it is at most 30 columns and has no blank
    lines around its text."""
    from textual.notifications import Notification
    from textual.widgets._toast import Toast

    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        # a toast as the app's notify() makes one, styled by budsim.tcss (the headless driver
        # shows no toast rack of its own)
        toast = Toast(Notification("search cancelled; the run keeps its finished generations"))
        await app.screen.mount(toast)
        await pilot.pause(0.3)
        assert 0 < toast.outer_size.width <= 30
        assert toast.outer_size.height <= 3  # the text, folded once or twice
        assert app.NOTIFICATION_TIMEOUT <= 3
