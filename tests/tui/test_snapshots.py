"""Snapshots of each screen at 80x24 and 120x40 (pytest-textual-snapshot).

Deterministic: no clock in the title bar, no cursor blink, a temporary run store with fixed ids and
timestamps, and the run/results/history screens drawn from hand-written fixtures (tests/tui/fixtures,
round made-up numbers, not predictor output; test_fixtures.py holds them to that) so a retuned
predictor neither moves nor re-blesses them.
Update after an intended change with `pytest tests/tui --snapshot-update` and look at the SVGs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from budsim.tui.app import BudsimApp
from budsim.tui.messages import MemoryPlanned
from budsim.tui.screens.results import ResultsScreen
from budsim.tui.screens.run import RunScreen
from budsim.tui.state import RunState
from budsim.tui.views import view_from_response

from .conftest import best_result, fixture_progress, load_json, open_history, type_text, wait_for

SIZES = [pytest.param((80, 24), id="80x24"), pytest.param((120, 40), id="120x40")]
RUN_ID = "5eed0000c0ffee00aa11bb22cc33dd44"


class SnapshotApp(BudsimApp):
    """The real app with the memory-plan worker answered from the fixture."""

    def plan_memory(self, key: str, config: Any, request: Any) -> None:  # type: ignore[override]
        self.post_message(MemoryPlanned(key, load_json("memory_plan.json")))


def make_app(db_path: Path) -> SnapshotApp:
    return SnapshotApp(db_path=db_path, cursor_blink=False)


@pytest.mark.parametrize("size", SIZES)
def test_setup_screen(snap_compare: Any, size: tuple[int, int], db_path: Path) -> None:
    app = make_app(db_path)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        await type_text(pilot, "Qwen/Qwen3-0.6B")
        await wait_for(pilot, lambda: ("Qwen/Qwen3-0.6B", False) in app.model_cache)
        await pilot.press("escape")
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_run_screen(snap_compare: Any, size: tuple[int, int], db_path: Path) -> None:
    from budsim.core.search.optimize import OptimizationRequest

    app = make_app(db_path)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        response = load_json("response.json")
        state = RunState(99, OptimizationRequest.from_dict(response["request"]))
        state.run_id = RUN_ID
        state.progress = fixture_progress()[:3]
        state.touch()
        app.run_state = state
        app.push_screen(RunScreen())
        await pilot.pause(0.3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)


@pytest.mark.parametrize("size", SIZES)
def test_results_screen(snap_compare: Any, size: tuple[int, int], db_path: Path) -> None:
    app = make_app(db_path)

    async def run_before(pilot: Any) -> None:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.push_screen(ResultsScreen(view_from_response(load_json("response.json"))))
        await wait_for(
            pilot,
            lambda: isinstance(app.screen, ResultsScreen) and any(app.screen.memory.values()),
            what="memory plan",
        )

    assert snap_compare(app, terminal_size=size, run_before=run_before)


def fill_store(db_path: Path) -> None:
    """Three runs with fixed ids and times: completed with a p90 TTFT SLO, cancelled with p95
    TTFT and TPOT SLOs, interrupted without one."""
    from budsim.core.store import open_store

    response = load_json("response.json")
    inputs = response["request"]
    best = best_result(response)
    p90 = {**inputs["constraints"], "ttft_ms": 500.0, "percentile": "p90"}
    p95 = {**inputs["constraints"], "ttft_ms": 500.0, "tpot_ms": 50.0, "percentile": "p95"}
    rows = [
        ("1111aaaa" + "0" * 24, "completed", "2025-03-01T09:30:00.000+00:00", 5, 48, p90),
        ("2222bbbb" + "0" * 24, "cancelled", "2025-03-02T14:05:00.000+00:00", 2, 24, p95),
        ("3333cccc" + "0" * 24, "interrupted", "2025-03-03T18:45:00.000+00:00", 1, 12, None),
    ]
    with open_store(db_path) as store:
        for run_id, status, created, generations, evaluations, slos in rows:
            store.create_run(
                inputs={**inputs, "constraints": slos or inputs["constraints"]},
                model=inputs["model"],
                hardware=inputs["hardware"],
                devices=inputs["devices"],
                objective="throughput",
                run_id=run_id,
            )
            store.finish_run(run_id, status, results=[best] if status != "interrupted" else [])
            store.conn.execute(
                "UPDATE runs SET created_at = ?, generations = ?, evaluations = ? WHERE id = ?",
                (created, generations, evaluations, run_id),
            )
            store.conn.commit()


@pytest.mark.parametrize("size", SIZES)
def test_history_screen(snap_compare: Any, size: tuple[int, int], db_path: Path) -> None:
    fill_store(db_path)
    app = make_app(db_path)

    async def run_before(pilot: Any) -> None:
        await open_history(pilot, 3)

    assert snap_compare(app, terminal_size=size, run_before=run_before)
