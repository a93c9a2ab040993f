"""History and its comparison at 80x24 (#19): each run's workload and SLO, percentile included,
and one name per model, whole on screen."""

from __future__ import annotations

from pathlib import Path

from budsim.tui.app import BudsimApp
from budsim.tui.screens.history import HistoryScreen
from budsim.tui.screens.modals import CompareScreen

from .conftest import async_test, best_result, load_json, open_history, screen_lines, wait_for

P90 = {"ttft_ms": 500.0, "tpot_ms": None, "percentile": "p90"}
P95 = {"ttft_ms": 500.0, "tpot_ms": 50.0, "percentile": "p95"}
NONE = {"ttft_ms": None, "tpot_ms": None, "percentile": "p95"}


def fill(db_path: Path) -> list[str]:
    """Three runs of the fixture's request, saved under the alias meta-llama/Llama-3.1-8B (as
    budsim saved them before #19) with a p90 SLO, p95 SLOs and none; newest first."""
    from budsim.core.store import open_store

    response = load_json("response.json")
    inputs = response["request"]
    assert inputs["model"] == "meta-llama/Llama-3.1-8B"
    best = best_result(response)
    ids = []
    with open_store(db_path) as store:
        for i, (constraints, status) in enumerate(
            ((NONE, "cancelled"), (P95, "interrupted"), (P90, "completed"))
        ):
            run_id = f"{i + 1}" * 8 + "0" * 24
            store.create_run(inputs={**inputs, "constraints": constraints}, run_id=run_id)
            store.finish_run(run_id, status, results=[best] if status == "completed" else [])
            store.conn.execute(
                "UPDATE runs SET created_at = ? WHERE id = ?", (f"2025-03-0{i + 1}T09:00", run_id)
            )
            store.conn.commit()
            ids.insert(0, run_id)
    return ids


@async_test
async def test_history_and_compare_show_workload_slo_and_one_model_name(db_path: Path) -> None:
    p90, p95, none = fill(db_path)
    app = BudsimApp(db_path=db_path, cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await open_history(pilot, 3)
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert "meta-llama/Llama-3.1-8B" not in text  # the alias the runs were saved under
        expected = {
            p90: ("done", ["TTFT p90 ≤ 500 ms"]),
            p95: ("INTERRUPTED", ["TTFT p95 ≤ 500 ms", "TPOT p95 ≤ 50 ms"]),
            none: ("cancelled", ["no SLO"]),
        }
        for run_id, (status, slos) in expected.items():
            row = next(i for i, line in enumerate(lines) if run_id[:8] in line)
            # id, model (folded after its org), workload and hardware whole on the first line;
            # status, the model's name and the SLOs, one a line, under them
            first = lines[row].split()
            assert first[:4] == [run_id[:8], "meta-llama/", "1024/256", "C32"]
            assert first[5:7] == ["8×", "h100-sxm"]  # after the tok/s per device
            assert (first[4] != "-") == (status == "done")
            assert lines[row + 1].split()[:2] == [status, "Meta-Llama-3.1-8B"]
            for k, slo in enumerate(slos):
                assert slo in lines[row + 1 + k], (slo, lines[row : row + 3])

        # mark the p90 and p95 runs and compare them
        history = app.screen
        assert isinstance(history, HistoryScreen)
        await pilot.press("space", "down", "space", "c")
        await wait_for(pilot, lambda: isinstance(app.screen, CompareScreen), what="compare")
        await pilot.pause()
        lines = screen_lines(app)
        text = "\n".join(lines)
        assert "…" not in text and "meta-llama/Llama-3.1-8B" not in text
        assert f"A {p90[:8]}" in text and f"B {p95[:8]}" in text

        def row(label: str) -> list[str]:
            at = next(i for i, line in enumerate(lines) if f" {label} " in line)
            return lines[at : at + 2]

        model = row("model")
        assert model[0].split().count("meta-llama/") == 2
        assert model[1].split().count("Meta-Llama-3.1-8B") == 2
        assert row("workload")[0].split().count("1024/256") == 2
        slo = row("SLO")
        assert "TTFT p90 ≤ 500 ms" in slo[0] and "TTFT p95 ≤ 500 ms" in slo[0]
        assert "TPOT p95 ≤ 50 ms" in slo[1]
