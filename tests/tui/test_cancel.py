"""The worker and cancel path: cancel lands within 0.5 s, and quitting mid-run leaves the run in the
store as cancelled with the generations it finished."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from budsim.core.store import open_store
from budsim.tui.app import BudsimApp
from budsim.tui.screens.results import ResultsScreen
from budsim.tui.screens.run import RunScreen

from .conftest import async_test, wait_for


def big_request() -> Any:
    from budsim.core.deployment import Workload
    from budsim.core.search.ga import GASettings
    from budsim.core.search.optimize import OptimizationRequest

    # far more work than the test waits for: it only ends by being cancelled
    return OptimizationRequest(
        model="meta-llama/Llama-3.1-8B",
        hardware="h100-sxm",
        devices=8,
        workload=Workload(input_len=1024, output_len=256, concurrency=32),
        ga=GASettings(population=40, generations=200, seed=1, patience=None),
    )


@async_test
async def test_cancel_takes_effect_quickly_and_keeps_generations(db_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.start_run(big_request())
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        state = app.run_state
        assert state is not None
        await wait_for(pilot, lambda: len(state.progress) >= 2, what="two generations")
        await wait_for(pilot, lambda: state.run_id is not None, what="run id")
        cancelled_at = len(state.progress)
        await pilot.press("c")
        assert state.cancel.is_set() and state.status in ("cancelling", "cancelled")
        await wait_for(pilot, lambda: state.done.is_set(), timeout=5, what="worker end")
        assert state.cancel_requested_at is not None and state.worker_ended_at is not None
        latency = state.worker_ended_at - state.cancel_requested_at
        # The 0.5 s target is measured by benchmarks/tui_bench.py (typically 0.15-0.35 s on a
        # loaded 2-CPU box); the bound here leaves room for an overloaded CI machine.
        assert latency < 1.0, f"cancel took {latency:.3f} s"
        assert len(state.progress) <= cancelled_at + 1  # no generation started after the cancel
        await wait_for(pilot, lambda: state.status == "cancelled", what="cancelled status")
        # a cancelled run with a best so far still opens its results
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        assert app.screen.view.status == "cancelled"  # type: ignore[attr-defined]
        finished = len(state.progress)
    with open_store(db_path) as store:
        run = store.get_run(state.run_id)
        assert run["status"] == "cancelled"
        assert run["generations"] == finished >= 2
        assert store.get_results(state.run_id)  # the best so far was kept


@async_test
async def test_quitting_mid_run_leaves_a_cancelled_run(db_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.start_run(big_request())
        state = app.run_state
        assert state is not None
        await wait_for(pilot, lambda: len(state.progress) >= 1, what="first generation")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: state.done.is_set(), timeout=5, what="worker end")
    assert app.return_code in (0, None)
    assert state.done.is_set()
    with open_store(db_path) as store:
        runs = store.list_runs()
        assert len(runs) == 1
        assert runs[0]["status"] == "cancelled"
        assert runs[0]["generations"] >= 1
        generations = store.get_generations(runs[0]["id"])
        assert [g["generation"] for g in generations] == list(range(len(generations)))


@async_test
async def test_second_run_while_running_is_refused(db_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False, save_runs=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.start_run(big_request())
        first = app.run_state
        app.start_run(big_request())
        assert app.run_state is first  # the running search is kept
        assert first is not None
        app.cancel_run()
        await wait_for(pilot, lambda: first.done.is_set(), timeout=5, what="worker end")


@async_test
async def test_exit_by_another_path_still_cancels(db_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.start_run(big_request())
        state = app.run_state
        assert state is not None
        await wait_for(pilot, lambda: len(state.progress) >= 1, what="first generation")
        app.exit()  # not the quit action: on_unmount must still stop the search
        await pilot.pause()
    assert state.done.is_set() and state.cancel.is_set()
    with open_store(db_path) as store:
        assert store.list_runs()[0]["status"] == "cancelled"


@async_test
async def test_the_footer_offers_cancel_only_while_the_search_runs(db_path: Path) -> None:
    """'c Cancel' is in the footer while the search runs and gone once it has ended: a failed
    search stays on its screen with its closest configurations, and its footer had still
    offered to cancel it."""
    from dataclasses import replace

    from textual.widgets import Footer

    from budsim.core.search.ga import GASettings
    from budsim.core.search.scoring import Constraints
    from budsim.tui.widgets.fitness_chart import FitnessChart

    impossible = replace(
        big_request(),
        ga=GASettings(population=8, generations=2, seed=1, polish=0),
        constraints=Constraints(ttft_ms=1.0),  # no configuration is this fast
    )

    def footer_text() -> str:
        footer = app.screen.query_one(Footer)
        return " ".join(str(key.render()) for key in footer.children)

    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.start_run(impossible)
        await pilot.pause()
        assert isinstance(app.screen, RunScreen)
        state = app.run_state
        assert state is not None
        await wait_for(pilot, lambda: state.status == "failed", timeout=60, what="failed")
        await pilot.pause(0.3)
        assert isinstance(app.screen, RunScreen) and state.closest
        assert app.screen.check_action("cancel", ()) is False
        assert "Cancel" not in footer_text() and "Back" in footer_text()
        # the best-so-far chart plots feasible configurations only, and says why it is empty
        chart = app.screen.query_one(FitnessChart)
        assert "nothing feasible yet" in chart.plt.build()
