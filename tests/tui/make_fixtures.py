"""Regenerate the fixed data the snapshot tests draw (run: `python -m tests.tui.make_fixtures`).

The snapshots must not move whenever the predictor is retuned, so the run and results screens are
drawn from these files rather than from a live search. Elapsed times are replaced by round numbers.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent / "fixtures"


def request() -> Any:
    from budsim.core.deployment import Workload
    from budsim.core.search.ga import GASettings
    from budsim.core.search.optimize import OptimizationRequest

    return OptimizationRequest(
        model="meta-llama/Llama-3.1-8B",
        hardware="h100-sxm",
        devices=8,
        workload=Workload(input_len=1024, output_len=256, concurrency=32),
        ga=GASettings(population=12, generations=4, seed=7),
    )


def main() -> None:
    from budsim.tui.app import memory_plan
    from budsim.tui.runner import run_search

    progress: list[Any] = []
    outcome = run_search(
        request(), cancel=threading.Event(), on_progress=progress.append, save=False
    )
    response = outcome.response
    response["simulation_id"] = "5eed0000c0ffee00aa11bb22cc33dd44"
    response["simulation_metadata"]["duration_seconds"] = 2.5
    rows = []
    for i, p in enumerate(progress):
        d = dataclasses.asdict(p)
        d["elapsed_s"] = 0.6 * (i + 1)
        rows.append(d)
    best = response["optimal_configuration"]
    plan = memory_plan(best, response["request"])
    HERE.mkdir(exist_ok=True)
    (HERE / "response.json").write_text(json.dumps(response, indent=1, sort_keys=True))
    (HERE / "progress.json").write_text(json.dumps(rows, indent=1, sort_keys=True))
    (HERE / "memory_plan.json").write_text(json.dumps(plan, indent=1, sort_keys=True))
    print(f"wrote {len(rows)} generations; best {best['engine']} tp={best['tp']}")


if __name__ == "__main__":
    main()
