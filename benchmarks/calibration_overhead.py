"""Cost of the learned calibration on top of the physics predictor (one core).

    python benchmarks/calibration_overhead.py --out benchmarks/calibration_overhead.md

Times, on the same distinct cases, warm (every deployment seen once, models loaded, the simulation
cache emptied before each pass), best of 3 passes:
- the batch predictor (`predict_cases`) with `calibrated=False` and with `calibrated=True`;
- `apply_calibration_many` alone (per workload group, as predict_cases applies it) on the physics
  predictions of those cases (what calibration adds; this
  is the robust number on a shared machine, where the end-to-end difference is within the noise).
Target: calibration adds at most 25 % to the physics-only time.
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import time
from pathlib import Path

from budsim.core.calibration.apply import apply_calibration_many
from budsim.core.deployment import Deployment, Workload
from budsim.core.predict import (
    Prediction,
    Resolved,
    clear_simulation_cache,
    predict,
    predict_cases,
    predict_physics,
    resolve,
)

MODELS = [
    "meta-llama/Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B",
    "Qwen/Qwen3-32B",
    "mistralai/Mixtral-8x7B-v0.1",
]
HARDWARE = ["h100-sxm", "h200-sxm", "a100-sxm-80gb", "mi300x"]


def serving_cases() -> list[tuple[Deployment, Workload]]:
    grid = itertools.product(
        MODELS,
        HARDWARE,
        ["vllm", "sglang", "trtllm"],
        [2, 4, 8],
        [1, 4, 16, 64, 128],
        [(512, 128), (2048, 256)],
    )
    out = []
    for model, hw, engine, tp, conc, (isl, osl) in grid:
        if hw == "mi300x" and engine == "trtllm":
            continue
        out.append(
            (
                Deployment(model=model, hardware=hw, engine=engine, tp=tp),
                Workload(concurrency=conc, input_len=isl, output_len=osl),
            )
        )
    return out


def static_cases() -> list[tuple[Deployment, Workload]]:
    grid = itertools.product(MODELS, HARDWARE, ["vllm"], [2, 4, 8], [1, 16, 64, 256], [512, 2048])
    return [
        (
            Deployment(model=model, hardware=hw, engine=engine, tp=tp),
            Workload(scenario="static", batch_size=b, input_len=n, output_len=n),
        )
        for model, hw, engine, tp, b, n in grid
    ]


def timed(todo: list[tuple[Deployment, Workload]], calibrated: bool) -> float:
    # every pass simulates afresh: repeated cases would otherwise come from the simulation cache
    clear_simulation_cache()
    t0 = time.perf_counter()
    predict_cases(todo, calibrated=calibrated)
    return time.perf_counter() - t0


def apply_only(todo: list[tuple[Deployment, Workload]]) -> float:
    preds = [(resolve(d), w, predict_physics(d, w)) for d, w in todo]
    fitting = [(r, w, p) for r, w, p in preds if p.fits]
    groups: dict[Workload, list[tuple[Resolved, Prediction]]] = {}
    for r, w, p in fitting:
        groups.setdefault(w, []).append((r, copy.copy(p)))
    t0 = time.perf_counter()
    for w, items in groups.items():  # as predict_cases applies it: once per workload group
        apply_calibration_many(items, w)
    return time.perf_counter() - t0


def compare(todo: list[tuple[Deployment, Workload]], passes: int = 5) -> tuple[float, float, float]:
    timed(todo, False)  # warm every cache (resolve, step models, feature rows, loaded forests)
    timed(todo, True)
    phys, cal, app = float("inf"), float("inf"), float("inf")
    for _ in range(passes):
        phys = min(phys, timed(todo, False))
        cal = min(cal, timed(todo, True))
        app = min(app, apply_only(todo))
    return phys, cal, app


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/calibration_overhead.md")
    ap.add_argument("--passes", type=int, default=3)
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    except (AttributeError, OSError):
        pass
    probe = predict(
        Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine="vllm"),
        Workload(concurrency=8),
    )
    rows = []
    sets = {
        "closed loop (concurrency)": serving_cases(),
        "static batch": static_cases(),
    }
    sets["all of the above"] = sets["closed loop (concurrency)"] + sets["static batch"]
    for name, todo in sets.items():
        phys, cal, app = compare(todo, args.passes)
        rows.append((name, len(todo), phys, cal, app))
    lines = [
        "# Calibration overhead",
        "",
        f"`python benchmarks/calibration_overhead.py` on {platform.machine()} "
        f"({cpu_name()}), {os.cpu_count()} cores (pinned to one), "
        f"Python {platform.python_version()}. Calibration in use: `{probe.calibration}`.",
        "",
        "Warm batch predictor (`predict_cases`), best of "
        f"{args.passes} interleaved passes. Target: calibrated adds <= 25 % to physics-only.",
        "",
        "| cases | n | physics-only ms | calibrated ms | end-to-end difference | "
        "apply_calibration_many ms | apply / physics |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, n, phys, cal, app in rows:
        lines.append(
            f"| {name} | {n} | {phys * 1e3:,.0f} | {cal * 1e3:,.0f} | "
            f"{(cal - phys) / phys * 100:+.1f} % | {app * 1e3:,.1f} ({app / n * 1e6:,.0f} us/case) | "
            f"{app / phys * 100:.1f} % |"
        )
    lines += [
        "",
        "`apply / physics` is the cost of the calibration itself (features, one numpy evaluation "
        "of all trees of the scenario's families per workload group, rescaling) over the physics time of "
        "the same cases; on a shared machine it is the reliable number, while the end-to-end "
        "difference of two separately timed passes also carries the machine's noise.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
