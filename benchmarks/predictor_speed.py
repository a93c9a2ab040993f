"""Speed of the physics predictor (one core).

    python benchmarks/predictor_speed.py --out benchmarks/predictor_speed.md

1. `simulate_serving` in each scenario, as a finite run of 1,000 requests (target: <= 50 ms
   each) and as the steady state (the default of a prediction).
2. The batch predictor (`predict_cases`, what `budsim predict --cases` runs) over a grid of 1,080
   distinct cases (target: >= 2,000 cases/s): cold (first sight of each deployment), warm (the same
   deployments with new workloads) and the same cases again (answered by the simulation cache).
   Each pass runs in RUNS fresh processes (a cold pass must not find anything cached); the table
   gives the median and the range, because a shared machine's timings move by several percent.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

from budsim.core.deployment import Deployment, Workload
from budsim.core.memory import plan_memory
from budsim.core.predict import predict_cases, resolve, step_model
from budsim.core.simulator import simulate_serving


def bench_simulator() -> list[tuple[str, float, int]]:
    d = Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine="vllm")
    r = resolve(d)
    step = step_model(d)
    plan = plan_memory(r.model, r.device, r.engine, r.deployment, 2048)
    spread = {"input_len_spread": 0.5, "output_len_spread": 0.5}
    cases = {
        "concurrency 32, 1000 req": Workload(concurrency=32, num_requests=1000),
        "concurrency 256, 1000 req": Workload(concurrency=256, num_requests=1000),
        "rate 10/s, 1000 req": Workload(scenario="rate", rate=10, num_requests=1000),
        "static 1000": Workload(scenario="static", batch_size=1000),
        "concurrency 64, lengths +-50 %, 1000 req": Workload(
            concurrency=64, num_requests=1000, **spread
        ),
        "concurrency 32, steady state": Workload(concurrency=32),
        "concurrency 33, steady state": Workload(concurrency=33),
        "concurrency 256, steady state": Workload(concurrency=256),
        "rate 10/s, steady state": Workload(scenario="rate", rate=10),
        "concurrency 64, lengths +-50 %, steady state": Workload(concurrency=64, **spread),
    }
    cases = {name: replace(w, input_len=1024, output_len=512) for name, w in cases.items()}
    out = []
    for name, w in cases.items():
        best = float("inf")
        for _ in range(5):
            t0 = time.perf_counter()
            res = simulate_serving(
                step,
                r.engine,
                w,
                kv_capacity_tokens=plan.kv_capacity_tokens,
                max_num_seqs=r.deployment.max_num_seqs or 256,
                max_num_batched_tokens=r.deployment.max_num_batched_tokens or 8192,
            )
            best = min(best, time.perf_counter() - t0)
        out.append((name, best * 1e3, res.steps))
    return out


def cases() -> list[tuple[Deployment, Workload]]:
    models = [
        "meta-llama/Llama-3.1-8B",
        "meta-llama/Llama-3.1-70B",
        "Qwen/Qwen3-32B",
        "mistralai/Mixtral-8x7B-v0.1",
    ]
    grid = itertools.product(
        models,
        ["h100-sxm", "h200-sxm", "a100-sxm-80gb"],
        ["vllm", "sglang", "trtllm"],
        [2, 4, 8],
        [1, 4, 16, 64, 128],
        [(512, 128), (2048, 256)],
    )
    out = []
    for model, hw, engine, tp, conc, (isl, osl) in grid:
        out.append(
            (
                Deployment(model=model, hardware=hw, engine=engine, tp=tp),
                Workload(concurrency=conc, input_len=isl, output_len=osl),
            )
        )
    return out[:2000]


def bench_batch() -> tuple[int, float, float, float]:
    """cases/s: cold (nothing seen), warm (deployments seen, new workloads), repeated cases."""
    todo = cases()
    t0 = time.perf_counter()
    predict_cases(todo, calibrated=False)
    cold = time.perf_counter() - t0
    # one more client per case: the step-time models are reused, every simulation is new
    shifted = [(dep, replace(w, concurrency=w.concurrency + 1)) for dep, w in todo]
    t0 = time.perf_counter()
    predict_cases(shifted, calibrated=False)
    warm = time.perf_counter() - t0
    t0 = time.perf_counter()
    predict_cases(todo, calibrated=False)  # the first pass again: from the simulation cache
    repeated = time.perf_counter() - t0
    n = len(todo)
    return n, n / cold, n / warm, n / repeated


RUNS = 5


def batch_in_fresh_processes(runs: int) -> tuple[int, list[tuple[float, float, float]]]:
    """bench_batch in `runs` new interpreters (each pinned to one core like this one)."""
    rates = []
    n = 0
    for _ in range(runs):
        done = subprocess.run(
            [sys.executable, __file__, "--batch-only"], capture_output=True, text=True, check=True
        )
        n, *rate = json.loads(done.stdout)
        rates.append(tuple(rate))
    return n, rates


def _spread(values: list[float]) -> str:
    return f"{statistics.median(values):,.0f} | {min(values):,.0f}-{max(values):,.0f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/predictor_speed.md")
    ap.add_argument("--batch-only", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    try:
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core
    except (AttributeError, OSError):
        pass
    if args.batch_only:
        print(json.dumps(bench_batch()))
        return
    sim = bench_simulator()
    n, rates = batch_in_fresh_processes(RUNS)
    cold, warm, repeated = ([r[i] for r in rates] for i in range(3))
    lines = [
        "# Predictor speed",
        "",
        f"`python benchmarks/predictor_speed.py` on {platform.machine()}, {os.cpu_count()} cores "
        f"(pinned to one), Python {platform.python_version()}.",
        "",
        "## simulate_serving (best of 5)",
        "",
        "| scenario | ms | engine steps simulated |",
        "|---|---|---|",
        *[f"| {name} | {ms:.1f} | {steps} |" for name, ms, steps in sim],
        "",
        f"## Batch predictor over {n} distinct cases (physics only), {RUNS} fresh processes",
        "",
        "| pass | cases/s, median | range |",
        "|---|---|---|",
        f"| cold (every deployment new) | {_spread(cold)} |",
        f"| warm (deployments seen before, every workload new) | {_spread(warm)} |",
        f"| the same cases again (simulation cache) | {_spread(repeated)} |",
        "",
        "The grid: 4 models x 3 GPUs x 3 engines x TP 2/4/8 x concurrency 1/4/16/64/128 x two length",
        "pairs (512/128 and 2,048/256), closed loops in steady state; the warm pass adds a client to",
        "each. Steady state costs one period of the loop's schedule (see docs/architecture.md): a",
        "completion or two when the clients divide the decode steps of a request's lifetime (the cold",
        "pass's 1/4/16/64/128 clients mostly do), two windows of 16 completions when they do not, and a",
        "whole lifetime when some clients must share a phase (129 clients of 128 output tokens: the",
        "warm pass's slowest cases). Loops that preempt are sampled directly.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
