"""Optimiser benchmark: GA wall time with the real predictor, and GA quality against the exhaustive optimum.

For each scenario of issue 4 it
1. runs one full optimisation (population 100, up to 50 generations, seed 0) with the real predictor and
   splits its wall time into predictor time and GA overhead;
2. evaluates the whole space once (the exhaustive reference; cached on disk, keyed by the space, the
   workload and a hash of the budsim core sources, so reruns are free until the predictor changes);
3. replays the GA for N seeds against the cached predictions (identical scores, no predictor cost) and
   reports how close each seed's best gets to the exhaustive optimum and what share of the space it
   evaluated.

Usage (from the repo root):
    .venv/bin/python benchmarks/optimize_bench.py --seeds 10 --workers 2 --out benchmarks/optimize.md
    .venv/bin/python benchmarks/optimize_bench.py --scenarios llama8b-2xxeon --max-exhaustive 0

`--max-exhaustive N` skips the exhaustive reference for spaces above N configurations (0 = no limit).
"""

from __future__ import annotations

import argparse
import functools
import gzip
import hashlib
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from budsim import __version__
from budsim.core.deployment import Deployment, Workload
from budsim.core.search.exhaustive import run_exhaustive
from budsim.core.search.ga import GASettings, run_ga
from budsim.core.search.optimize import (
    OptimizationRequest,
    PredictEvaluator,
    prepare,
    run_optimization,
)
from budsim.core.search.space import Genome, SearchSpace

ROOT = Path(__file__).resolve().parents[1]

# The prediction keys the Scorer reads: enough to replay a score exactly.
SCORE_KEYS = (
    "fits",
    "devices",
    "output_tok_s",
    "output_tok_s_per_device",
    "tok_s_per_user",
    "requests_per_s",
    "e2e_s_mean",
    "e2e_s_p50",
    "weights_gb_per_device",
    "kv_cache_gb_per_device",
    "ttft_ms_mean",
    "ttft_ms_p50",
    "ttft_ms_p90",
    "ttft_ms_p99",
    "tpot_ms_mean",
    "tpot_ms_p50",
    "tpot_ms_p90",
    "tpot_ms_p99",
)

GPU_LOAD = Workload(scenario="concurrency", input_len=1024, output_len=256, concurrency=64)
CPU_LOAD = Workload(scenario="concurrency", input_len=512, output_len=128, concurrency=8)


@dataclass(frozen=True)
class Scenario:
    name: str
    model: str
    hardware: str
    devices: int
    nodes: int | None = None
    workload: Workload = GPU_LOAD
    target: str = "throughput"

    def request(self, seed: int | None = 0) -> OptimizationRequest:
        return OptimizationRequest(
            model=self.model,
            hardware=self.hardware,
            devices=self.devices,
            nodes=self.nodes,
            workload=self.workload,
            optimization_target=self.target,
            ga=GASettings(seed=seed),
        )


SCENARIOS: tuple[Scenario, ...] = (
    Scenario("llama8b-8xh100", "meta-llama/Meta-Llama-3.1-8B", "h100-sxm", 8),
    Scenario("llama70b-16xh100-2nodes", "meta-llama/Meta-Llama-3.1-70B", "h100-sxm", 16, 2),
    Scenario("mixtral8x7b-8xh200", "mistralai/Mixtral-8x7B-v0.1", "h200-sxm", 8),
    Scenario("qwen3-235b-a22b-8xh200", "Qwen/Qwen3-235B-A22B", "h200-sxm", 8),
    Scenario("llama70b-8xgaudi2", "meta-llama/Meta-Llama-3.1-70B", "gaudi2", 8),
    Scenario("llama8b-2xxeon", "meta-llama/Meta-Llama-3.1-8B", "xeon-8480", 2, 1, CPU_LOAD),
)


class TimedEvaluator:
    """Wraps an evaluator and adds up the time spent inside it."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.seconds = 0.0
        self.count = 0

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]:
        start = time.perf_counter()
        out = self.inner.evaluate(deployments)
        self.seconds += time.perf_counter() - start
        self.count += len(deployments)
        return list(out)


class ReplayEvaluator:
    """Answers from the exhaustive table (the exact predictions, trimmed to the scored keys)."""

    def __init__(self, space: SearchSpace, table: dict[Genome, dict[str, Any] | None]) -> None:
        self.by_deployment = {space.deployment(g): p for g, p in table.items()}

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]:
        return [self.by_deployment[d] for d in deployments]


@functools.cache
def source_hash() -> str:
    """Hash of everything a prediction depends on, taken once (the modules in use were loaded at
    start): the core sources with their subpackages (calibration, search), the catalog, and the
    shipped calibration models."""
    digest = hashlib.sha256()
    core = ROOT / "budsim" / "core"
    files = sorted(core.rglob("*.py")) + sorted((core / "catalog").rglob("*"))
    files += sorted((ROOT / "pretrained").rglob("*"))
    for path in files:
        if path.is_file() and "__pycache__" not in path.parts:
            digest.update(str(path.relative_to(ROOT)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def cache_file(cache_dir: Path, scenario: Scenario, space: SearchSpace) -> Path:
    key = json.dumps(
        {
            "space": space.describe(),
            "workload": scenario.workload.__dict__,
            "src": source_hash(),
        },
        sort_keys=True,
        default=str,
    )
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return cache_dir / f"{scenario.name}-{digest}.json.gz"


def exhaustive_table(
    scenario: Scenario, space: SearchSpace, workers: int, cache_dir: Path
) -> tuple[dict[Genome, dict[str, Any] | None], float, bool]:
    """genome -> trimmed prediction for the whole space; (table, seconds, from_cache)."""
    path = cache_file(cache_dir, scenario, space)
    if path.exists():
        with gzip.open(path, "rt") as fh:
            rows = json.load(fh)
        return {tuple(g): p for g, p in rows}, 0.0, True
    evaluator = PredictEvaluator(scenario.workload, workers=workers)
    table: dict[Genome, dict[str, Any] | None] = {}
    start = time.perf_counter()
    batch: list[Genome] = []
    done = 0

    def flush() -> None:
        nonlocal done
        preds = evaluator.evaluate([space.deployment(g) for g in batch])
        for g, p in zip(batch, preds, strict=True):
            table[g] = None if p is None else {k: p.get(k) for k in SCORE_KEYS}
        done += len(batch)
        rate = done / (time.perf_counter() - start)
        print(
            f"  exhaustive {scenario.name}: {done}/{space.size} ({rate:.0f}/s)",
            file=sys.stderr,
            flush=True,
        )
        batch.clear()

    try:
        for genome in space.enumerate():
            batch.append(genome)
            if len(batch) >= 2000:
                flush()
        if batch:
            flush()
    finally:
        evaluator.close()
    seconds = time.perf_counter() - start
    cache_dir.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as fh:
        json.dump([[list(g), p] for g, p in table.items()], fh)
    return table, seconds, False


@dataclass
class Row:
    scenario: Scenario
    size: int = 0
    wall_s: float | None = None
    predictor_s: float | None = None
    generations: int | None = None
    evaluations: int | None = None
    best_real: str = ""
    best_real_target: float | None = None
    exhaustive_s: float | None = None
    exhaustive_cached: bool = False
    optimum: float | None = None
    optimum_config: str = ""
    ratios: list[float] = field(default_factory=list)
    seed_evals: list[int] = field(default_factory=list)
    seed_gens: list[int] = field(default_factory=list)
    seed_local: list[int] = field(default_factory=list)
    local_rounds: int | None = None
    note: str = ""


def describe(dep: Deployment) -> str:
    bits = [dep.engine, f"TP{dep.tp}"]
    for axis in ("pp", "dp", "ep"):
        if getattr(dep, axis) > 1:
            bits.append(f"{axis.upper()}{getattr(dep, axis)}")
    if dep.replicas > 1:
        bits.append(f"x{dep.replicas}")
    bits.append(dep.weight_dtype if dep.weight_dtype != "auto" else "ckpt")
    if dep.kv_dtype != "auto":
        bits.append(f"kv-{dep.kv_dtype}")
    bits.append(f"seqs{dep.max_num_seqs}")
    bits.append(f"tok{dep.max_num_batched_tokens}")
    bits.append(f"mem{dep.gpu_memory_utilization}")
    return " ".join(bits)


def run_scenario(scenario: Scenario, args: argparse.Namespace) -> Row:
    print(f"[{scenario.name}]", file=sys.stderr, flush=True)
    problem = prepare(scenario.request())
    space = problem.space
    row = Row(scenario, size=space.size)

    if not args.skip_timing:
        timed = TimedEvaluator(PredictEvaluator(scenario.workload, workers=args.workers))
        start = time.perf_counter()
        result = run_optimization(scenario.request(seed=0), evaluator=timed, problem=problem)
        row.wall_s = time.perf_counter() - start
        timed.inner.close()
        row.predictor_s = timed.seconds
        row.generations = result.outcome.generations
        row.local_rounds = result.outcome.local_rounds
        row.evaluations = result.outcome.evaluations
        if result.best is not None:
            row.best_real = describe(result.best.deployment)
            row.best_real_target = result.best.target
        print(
            f"  GA seed 0: {row.wall_s:.1f}s wall, {row.predictor_s:.1f}s predictor, "
            f"{row.evaluations} evaluations",
            file=sys.stderr,
            flush=True,
        )

    limit = args.max_exhaustive
    if limit and space.size > limit and not cache_file(args.cache, scenario, space).exists():
        row.note = f"exhaustive skipped: {space.size:,} configurations > --max-exhaustive {limit:,}"
        return row
    table, seconds, cached = exhaustive_table(scenario, space, args.workers, args.cache)
    row.exhaustive_s, row.exhaustive_cached = seconds, cached
    replay = ReplayEvaluator(space, table)
    reference = run_exhaustive(space, replay, problem.scorer)
    best = reference.best
    if best is None or not best.feasible:
        row.note = "no feasible configuration in the space"
        return row
    row.optimum = best.target
    row.optimum_config = describe(best.deployment)
    for seed in range(args.seeds):
        out = run_ga(space, replay, problem.scorer, GASettings(seed=seed))
        got = out.best.target if out.best is not None and out.best.feasible else 0.0
        row.ratios.append(got / best.target if best.target else 0.0)
        row.seed_evals.append(out.evaluations)
        row.seed_gens.append(out.generations)
        row.seed_local.append(out.local_rounds)
    return row


def git_head() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "budsim/core", "pretrained"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
    except OSError:
        return "unknown"
    head = out.stdout.strip() or "unknown"
    return head + (" + uncommitted core or model changes" if dirty.stdout.strip() else "")


def fmt(value: float | None, spec: str = ".2f") -> str:
    return "-" if value is None else format(value, spec)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return (
        f"{cpu}, {cores} cores available, Python {platform.python_version()}, {platform.system()}"
    )


def report(rows: list[Row], args: argparse.Namespace, elapsed: float) -> str:
    lines = [
        "# Optimiser benchmark",
        "",
        "Made by `.venv/bin/python benchmarks/optimize_bench.py "
        + " ".join(args.argv)
        + "` (see the script's docstring).",
        "",
        f"- budsim {__version__}, commit {args.head}, core source hash `{source_hash()}`",
        f"- machine: {machine()}",
        f"- prediction workers: {args.workers}; benchmark wall time {elapsed / 60:.1f} min",
        "- GA: population 100, up to 50 generations, crossover 0.8, mutation 0.2, tournament 3,"
        " elite 10, early stop after 10 generations without front improvement, then up to 8"
        " rounds of local search (hill-climbing from the best of each engine and weight format)",
        "- workloads: GPUs/HPU closed loop, concurrency 64, ISL 1024, OSL 256; Xeon concurrency 8,"
        " ISL 512, OSL 128; target = max output tok/s per device, no SLO",
        "",
        "## Wall time of one full optimisation (real predictor, seed 0)",
        "",
        "| scenario | space | GA wall s | predictor s | GA overhead s | ms / prediction |"
        " evaluations | generations + local rounds | best found | tok/s/device |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rows:
        overhead = None if r.wall_s is None or r.predictor_s is None else r.wall_s - r.predictor_s
        per = (
            None
            if not r.evaluations or r.predictor_s is None
            else 1000 * r.predictor_s / r.evaluations
        )
        lines.append(
            f"| {r.scenario.name} | {r.size:,} | {fmt(r.wall_s)} | {fmt(r.predictor_s)} | "
            f"{fmt(overhead)} | {fmt(per, '.1f')} | {r.evaluations or '-'} | "
            f"{r.generations if r.generations is not None else '-'} + {r.local_rounds} | "
            f"{r.best_real or '-'} | "
            f"{fmt(r.best_real_target, '.1f')} |"
        )
    lines += [
        "",
        f"## GA vs exhaustive optimum ({args.seeds} seeds, replayed on the exhaustive predictions)",
        "",
        "| scenario | space | exhaustive optimum (tok/s/device) | optimum configuration |"
        " GA best / optimum: min · median | seeds within 1 % | evaluations: max (% of space) |"
        " generations + local rounds: median | note |",
        "|---|---:|---:|---|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        if r.ratios:
            within = sum(1 for x in r.ratios if x >= 0.99)
            worst = max(r.seed_evals)
            lines.append(
                f"| {r.scenario.name} | {r.size:,} | {fmt(r.optimum, '.1f')} | {r.optimum_config} | "
                f"{min(r.ratios):.4f} · {statistics.median(r.ratios):.4f} | "
                f"{within}/{len(r.ratios)} | {worst:,} ({worst / r.size:.1%}) | "
                f"{statistics.median(r.seed_gens):.0f} + {statistics.median(r.seed_local):.0f} | "
                f"{r.note} |"
            )
        else:
            lines.append(f"| {r.scenario.name} | {r.size:,} | - | - | - | - | - | - | {r.note} |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default="all", help="comma-separated names, or all")
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-exhaustive", type=int, default=20_000)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument(
        "--cache",
        type=Path,
        default=Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "budsim-bench",
    )
    parser.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    args = parser.parse_args(argv)
    args.argv = argv if argv is not None else sys.argv[1:]
    chosen = (
        SCENARIOS
        if args.scenarios == "all"
        else tuple(s for s in SCENARIOS if s.name in args.scenarios.split(","))
    )
    if not chosen:
        parser.error(f"no scenario matches; known: {', '.join(s.name for s in SCENARIOS)}")
    source_hash()  # fix the hash of the code this process runs
    args.head = git_head()
    start = time.perf_counter()
    rows = [run_scenario(s, args) for s in chosen]
    text = report(rows, args, time.perf_counter() - start)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
