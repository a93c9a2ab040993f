"""What the tmux walk-through (scripts/tui_walkthrough.py) found cut or unclear at 80x24, whole
now: the results title with its SLO and the whole search line, a failed run's reason, the run
screen's title, progress line and error, History without a column cut at the edge, the run bar's
reason."""

from __future__ import annotations

from pathlib import Path

from budsim.tui.app import BudsimApp
from budsim.tui.screens.results import ResultsScreen
from budsim.tui.screens.run import RunScreen
from budsim.tui.state import RunState
from budsim.tui.views import view_from_response

from .conftest import (
    async_test,
    best_result,
    fixture_progress,
    load_json,
    open_history,
    screen_lines,
    wait_for,
)
from .test_history import fill

ERROR = (
    "no configuration meets the constraints; ttft_ms_p99 cannot be met: the best any "
    "configuration reaches is 59.84 vs 5; closest: vllm tp=1 w=fp8 kv=fp8 seqs=64 "
    "(ttft_ms_p99 59.84 > 5)"
)


def flat(lines: list[str]) -> str:
    """The screen's words in order, one space apart (a text folded over lines reads whole)."""
    return " ".join(" ".join(lines).split())


@async_test
async def test_results_title_names_the_slo_and_the_whole_search(db_path: Path) -> None:
    response = load_json("response.json")
    response["request"]["constraints"].update(ttft_ms=500.0, percentile="p99")
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.push_screen(ResultsScreen(view_from_response(response)))
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        await pilot.pause()
        lines = screen_lines(app)
        # the catalog id (the run was saved under an alias), hardware and target; then the
        # workload and the SLO with its percentile, as History shows it; then the search, whole
        assert lines[1].strip() == "meta-llama/Meta-Llama-3.1-8B on 8× h100-sxm · target throughput"
        assert lines[2].strip() == "concurrency 32 · ISL 1024 / OSL 256 · SLO TTFT p99 ≤ 500 ms"
        assert lines[3].strip().endswith("60 evaluated · 4 generations · seed 7"), lines[3]
        # the candidates' header keeps TTFT p50 whole (the columns after it scroll sideways)
        header = next(line for line in lines if "tok/s/dev" in line)
        assert "TTFT p50" in header, header


@async_test
async def test_results_detail_says_what_the_prediction_rests_on(db_path: Path) -> None:
    """The detail under the table names what the best prediction rests on (predict's line), so
    a physics-only number is never mistaken for a calibrated one."""
    from textual.widgets import Static

    response = load_json("response.json")
    rests = "physics only (TTFT, TPOT: no learned correction beat physics in validation)"
    response["predicted_performance"]["rests_on"] = rests
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.push_screen(ResultsScreen(view_from_response(response)))
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        await pilot.pause()
        detail = str(app.screen.query_one("#detail-config", Static).render())
        assert f"rests on: {rests}" in flat([detail]), detail


@async_test
async def test_failed_run_shows_why_above_its_closest_configuration(db_path: Path) -> None:
    view = view_from_response(load_json("response.json"))
    view.status, view.error = "failed", ERROR
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        app.push_screen(ResultsScreen(view))
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        await pilot.pause()
        lines = screen_lines(app)
        assert lines[3].split()[0] == "failed"
        at = next(i for i, line in enumerate(lines) if line.strip().startswith("no configuration"))
        assert ERROR in flat(lines[at : at + 3])  # whole, under the table, before the detail
        assert "best #0" in flat(lines[at + 3 : at + 5])


@async_test
async def test_run_screen_title_progress_and_error_fit(db_path: Path) -> None:
    from budsim.core.search.optimize import OptimizationRequest

    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        request = OptimizationRequest.from_dict(load_json("response.json")["request"])
        state = RunState(99, request)
        state.run_id = "5eed0000c0ffee00aa11bb22cc33dd44"
        state.progress = fixture_progress()[:3]
        state.touch()
        app.run_state = state
        app.push_screen(RunScreen())
        await pilot.pause(0.3)
        lines = screen_lines(app)
        # on two lines that break between its parts, each whole
        for part in (
            "meta-llama/Llama-3.1-8B on 8× h100-sxm",
            "target throughput",
            f"population {request.ga.population}",
            f"{request.ga.generations} generations",
            "run 5eed0000",
        ):
            assert any(part in line for line in lines[1:3]), (part, lines[1:3])
        progress = lines[3].split(" · ")
        # one line: where the search is, its ETA, and the feasible share, each whole
        assert progress[0].strip().startswith("gen"), lines[3]
        assert any(part.startswith("ETA ") for part in progress), lines[3]
        assert any(part.strip().endswith("feasible") for part in progress), lines[3]

        state.status, state.error = "failed", ERROR
        state.touch()
        await pilot.pause(0.5)
        lines = screen_lines(app)
        at = next(i for i, line in enumerate(lines) if "✖" in line)
        assert f"✖ {ERROR}" in flat(lines[at : at + 4])


@async_test
async def test_history_leaves_columns_out_rather_than_cut_them(db_path: Path) -> None:
    newest, middle, _ = fill(db_path)
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, 3)
        lines = screen_lines(app)
        head = next(i for i, line in enumerate(lines) if "workload · SLO" in line)
        assert lines[head].split() == [
            "run",
            "model",
            "workload",
            "·",
            "SLO",
            "tok/s/dev",
            "hardware",
        ]
        assert "2025-03" not in "\n".join(lines[head:-3])  # no date cut at the right edge
        # the highlighted run's target, date and search size under the table, whole
        details = flat(lines[-3:-1])
        assert f"run {newest[:8]} · target throughput · created 2025-03-03 09:00 UTC" in details
        await pilot.press("down")
        await pilot.pause()
        assert f"run {middle[:8]} ·" in flat(screen_lines(app)[-3:-1])

        await pilot.resize_terminal(120, 40)  # wide: every column in the table
        await pilot.pause(0.3)
        header = next(line for line in screen_lines(app) if "workload · SLO" in line)
        for label in ("hardware", "created (UTC)", "target", "search", "evals"):
            assert label in header, header
        assert "2025-03-02 09:00" in "\n".join(screen_lines(app))


@async_test
async def test_run_bar_reason_fits_or_says_it_is_cut(db_path: Path, tmp_path: Path) -> None:
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
        await pilot.pause()
        bar = screen_lines(app)[-2]
        assert bar.rstrip().endswith(
            "can't run yet: model: choose a model (catalog id, HF id, config.json)"
        )
        missing = str(tmp_path / "nowhere" / "config.json")
        await pilot.press(*missing)
        await wait_for(pilot, lambda: (missing, False) in app.model_cache, what="model check")
        await pilot.pause()
        bar = screen_lines(app)[-2]
        assert bar.rstrip().endswith("…"), bar  # longer than the bar: it ends in an ellipsis


@async_test
async def test_history_counts_a_search_as_its_results_do(db_path: Path) -> None:
    """History said '7 generations saved' (the stored rows: the initial population and each local
    round are rows too) where the run's results said '2 generations + 4 local rounds'; both say
    the latter now, and a run with no summary (interrupted) is counted from its rows the same way."""
    from budsim.core.store import open_store

    response = load_json("response.json")
    best = best_result(response)
    steps = [("ga", 0)] * 3 + [("local", r) for r in range(1, 5)]  # gen 0, 1, 2; 4 rounds
    with open_store(db_path) as store:
        for run_id, status in (("a" * 32, "interrupted"), ("b" * 32, "completed")):
            store.create_run(inputs=response["request"], run_id=run_id)
            for gen, (method, local) in enumerate(steps):
                stats = {"method": method, "local_round": local, "evaluations": 10 * gen}
                store.record_generation(run_id, gen, stats=stats)
            meta = {"generations_evolved": 2, "local_search_rounds": 4, "method": "ga"}
            if status == "completed":
                store.finish_run(run_id, status, results=[best], metadata=meta)
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, 2)
        for _ in range(2):
            details = flat(screen_lines(app)[-3:-1])
            # (the stored row count, 7, must not be shown as generations; the creation time shown
            # beside it may contain a 7)
            assert "2 generations + 4 local rounds" in details, details
            assert "7 generations" not in details and "7 saved" not in details, details
            await pilot.press("down")
            await pilot.pause()
        await pilot.press("up", "enter")  # the completed run's results
        await wait_for(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        assert "2 generations + 4 local rounds" in flat(screen_lines(app)[:6])
