"""The whole flow through the keyboard, with a small GA: fill the form, run, watch progress, read the
results, export, find the run in history, re-open it, re-run it with edits, compare and delete."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Button, DataTable, Input, Static

from budsim.tui.app import BudsimApp
from budsim.tui.messages import GenerationDone
from budsim.tui.screens.history import HistoryScreen
from budsim.tui.screens.modals import CompareScreen, ConfirmScreen, ExportScreen
from budsim.tui.screens.results import ResultsScreen
from budsim.tui.screens.run import RunScreen
from budsim.tui.screens.setup import SetupScreen

from .conftest import async_test, type_text, wait_for


async def fill_small_search(pilot: Any, model: str = "Qwen/Qwen3-0.6B") -> None:
    """Type the model, set 8 x 2 generations with a fixed seed, all from the keyboard."""
    app = pilot.app
    await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
    assert app.focused is not None and app.focused.id == "model"
    await type_text(pilot, model)
    screen = app.screen
    assert isinstance(screen, SetupScreen)
    await wait_for(pilot, lambda: (model, False) in app.model_cache, what="model facts")
    await pilot.press("escape")  # close the match list
    await pilot.press("f3")  # advanced: focuses population
    assert app.focused.id == "population"
    await pilot.press("ctrl+u", "8", "tab", "ctrl+u", "2", "tab", *"42")
    await pilot.pause()


@async_test
async def test_full_flow(db_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    progress_seen: list[int] = []
    async with app.run_test(size=(100, 32), message_hook=_hook(progress_seen)) as pilot:
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        run_button = setup.query_one("#run", Button)
        assert run_button.disabled  # no model yet
        assert "model" in str(setup.query_one("#reason", Static).render())
        await fill_small_search(pilot)
        assert not run_button.disabled, setup.check.errors
        facts = str(setup.query_one("#facts", Static).render())
        assert "28" in facts and "KV/token" in facts  # layers and KV per token are shown

        await pilot.press("ctrl+r")  # the run screen shows, then gives way to the results
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        state = app.run_state
        assert state is not None and state.status == "completed" and state.run_id
        # one message per generation, initial population first, then the local-search rounds
        assert progress_seen == list(range(len(progress_seen))) and len(progress_seen) >= 3
        assert [p.method for p in state.progress][:3] == ["ga"] * 3
        assert all(p.method == "local" for p in state.progress[3:])
        assert [p.generation for p in state.progress] == progress_seen

        results = app.screen
        assert isinstance(results, ResultsScreen)
        view = results.view
        assert view.run_id == state.run_id and view.best is not None
        assert view.best.configuration["model"] == "Qwen/Qwen3-0.6B"
        table = results.query_one("#candidates", DataTable)
        assert table.row_count == len(view.rows) >= 1
        why = str(results.query_one("#detail-why", Static).render())
        assert "gives the best tok/s per device" in why
        await wait_for(pilot, lambda: any(results.memory.values()), what="memory plan")
        memory = str(results.query_one("#detail-memory", Static).render())
        assert "KV cache" in memory and "weights" in memory

        # sort by tok/s per user: the table reorders, the rows stay the same
        await pilot.press("s", "s")
        assert sorted(r.rank for r in results.order) == [r.rank for r in view.rows]
        second = [r.metric("tok_s_per_user") for r in results.order]
        assert second == sorted(second, reverse=True)

        # export: the launch script of the selected configuration, copied over OSC 52
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, ExportScreen), what="export")
        export = app.screen
        assert isinstance(export, ExportScreen)
        assert "#!/usr/bin/env bash" in export.text or '"engine"' in export.text
        await pilot.press("c")
        assert app.clipboard == export.text
        await pilot.press("escape")
        await pilot.press("y")
        assert '"predicted_performance"' in app.clipboard

        # history: the run is there; enter re-opens it
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await wait_for(pilot, lambda: len(history.runs) == 1, what="history rows")
        assert history.runs[0]["id"] == state.run_id
        assert history.runs[0]["status"] == "completed"
        await pilot.press("enter")
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and app.screen is not results,
            what="re-opened results",
        )
        reopened = app.screen
        assert isinstance(reopened, ResultsScreen)
        assert reopened.view.run_id == state.run_id
        assert reopened.view.best is not None
        assert reopened.view.best.configuration == view.best.configuration
        await pilot.press("escape")
        assert app.screen is history

        # re-run with edits: the form comes back with the run's settings
        await pilot.press("e")
        await wait_for(pilot, lambda: isinstance(app.screen, SetupScreen), what="setup")
        form = app.screen
        assert isinstance(form, SetupScreen)
        assert form.query_one("#population", Input).value == "8"
        assert form.query_one("#seed", Input).value == "42"
        form.query_one("#generations", Input).value = "1"
        await pilot.pause()
        await pilot.press("ctrl+r")
        await wait_for(
            pilot,
            lambda: (
                app.run_state is not None
                and app.run_state.token == 2
                and app.run_state.status == "completed"
            ),
            what="second run",
        )
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results 2")

        # compare the two runs, then delete one
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history 2")
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await wait_for(pilot, lambda: len(history.runs) == 2, what="two runs")
        await pilot.press("space", "down", "space", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        assert {r["id"] for r in compare.comparison["runs"]} == {r["id"] for r in history.runs}
        await pilot.press("escape")
        await pilot.press("d")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmScreen), what="confirm")
        await pilot.press("y")
        await wait_for(pilot, lambda: len(history.runs) == 1, what="deleted")


def _hook(seen: list[int]) -> Any:
    def hook(message: Any) -> None:
        if isinstance(message, GenerationDone):
            seen.append(message.progress.generation)

    return hook


@async_test
async def test_bad_model_and_impossible_request_do_not_crash(db_path: Path, tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{ not json")
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        await type_text(pilot, str(bad))
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        await wait_for(pilot, lambda: (str(bad), False) in app.model_cache, what="model check")
        await pilot.pause()
        facts, error = app.model_cache[(str(bad), False)]
        assert facts is None and error
        assert setup.query_one("#run", Button).disabled
        assert "model" in setup.check.errors
        assert setup.query_one("#facts").has_class("-error")

        # a model that cannot fit: DeepSeek-V3 on one L4
        model = setup.query_one("#model", Input)
        model.value = "deepseek-ai/DeepSeek-V3"
        setup.query_one("#hardware").value = "l4"  # type: ignore[attr-defined]
        setup.query_one("#devices", Input).value = "1"
        await pilot.press("f3")  # the advanced fields mount when the section first opens
        setup.query_one("#population", Input).value = "4"
        setup.query_one("#generations", Input).value = "1"
        await wait_for(
            pilot, lambda: ("deepseek-ai/DeepSeek-V3", False) in app.model_cache, what="facts"
        )
        await pilot.pause()
        assert setup.check.ok, setup.check.errors
        await pilot.press("ctrl+r")
        await wait_for(
            pilot,
            lambda: app.run_state is not None and app.run_state.status == "failed",
            what="failure",
        )
        assert isinstance(app.screen, RunScreen)
        assert "GB of weights" in (app.run_state.error or "")
        await pilot.pause(0.4)  # the run screen redraws from the state
        message = str(app.screen.query_one("#run-message", Static).render())
        assert "GB of weights" in message
        await pilot.press("escape")
        assert isinstance(app.screen, SetupScreen)


@async_test
async def test_broken_hardware_file_is_a_notification(
    db_path: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    config = tmp_path / "config" / "budsim"
    config.mkdir(parents=True)
    (config / "hardware.toml").write_text("[h100-sxm]\nmemory_gb = 'lots'\n")
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        assert app.catalog is not None and app.catalog.errors
        assert "h100-sxm" in app.catalog.devices  # the bundled table still loads
        await pilot.pause()
        assert any("hardware" in str(n.message) for n in app._notifications)


@async_test
async def test_burstiness_field_reaches_the_request(db_path: Path) -> None:
    """A rate with bursty arrivals is set up from the form; a bad value blocks the run button."""
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        await type_text(pilot, "Qwen/Qwen3-0.6B")
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        await wait_for(pilot, lambda: ("Qwen/Qwen3-0.6B", False) in app.model_cache, what="facts")
        setup.query_one("#scenario").value = "rate"  # type: ignore[attr-defined]
        setup.query_one("#load", Input).value = "5"
        burstiness = setup.query_one("#burstiness", Input)
        burstiness.value = "lots"
        await pilot.pause()
        assert setup.query_one("#run", Button).disabled
        assert "burstiness" in str(setup.query_one("#reason", Static).render())
        burstiness.value = "0.5"
        await pilot.pause()
        assert setup.check.ok, setup.check.errors
        request = setup.check.request
        assert request is not None
        assert (request.workload.scenario, request.workload.rate) == ("rate", 5.0)
        assert request.workload.burstiness == 0.5


@async_test
async def test_speculative_and_prefix_cache_fields_run_end_to_end(db_path: Path) -> None:
    """At 80x24: ask for EAGLE-3 beside plain decoding and a shared prompt prefix, run, and read
    the speculative plan on the results screen."""
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_small_search(pilot)
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        setup.query_one("#load", Input).value = "1"
        setup.query_one("#input_len", Input).value = "2048"
        setup.query_one("#shared_prefix_len", Input).value = "1536"
        setup.query_one("#target").value = "latency"  # type: ignore[attr-defined]
        spec = setup.query_one("#speculative", Input)
        spec.value = "medusa"
        await pilot.pause()
        assert setup.query_one("#run", Button).disabled
        assert "spec decode: unknown speculative method 'medusa'" in str(
            setup.query_one("#reason", Static).render()
        )
        spec.value = "eagle3"
        await pilot.pause()
        assert setup.check.ok, setup.check.errors
        request = setup.check.request
        assert request is not None and request.speculative == ("eagle3",)
        assert request.workload.shared_prefix_len == 1536
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        state = app.run_state
        assert state is not None and state.status == "completed"
        results = app.screen
        text = " ".join(str(w.render()) for w in results.query(Static))
        table = results.query(DataTable)
        cells = " ".join(str(c) for t in table for row in t.rows for c in t.get_row(row))
        # at one request in flight the draft's tokens ride on the weight reads: EAGLE-3 wins
        assert "EAGLE-3" in text + cells


@async_test
async def test_compare_xpyd_toggle_runs_the_comparison(db_path: Path) -> None:
    """The Advanced section's "compare xPyD" asks the search for the best's prefill/decode
    splits; the results' why-text gives the verdict."""
    from textual.widgets import Checkbox

    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await fill_small_search(pilot)
        setup = app.screen
        assert isinstance(setup, SetupScreen)
        setup.query_one("#disagg", Checkbox).value = True
        await pilot.pause()
        request = setup.check.request
        assert request is not None and request.disagg
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        await pilot.pause()
        why = str(app.screen.query_one("#detail-why", Static).render())
        assert "Disaggregated (" in why and "P prefill + D decode over 8 devices" in why
