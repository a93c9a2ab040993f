"""`budsim optimize` end to end, as a user runs it: wall time of the whole command, process start,
imports, table loading, the search, the run store and the printed report included.

Issue 15 sets the targets on 2 cores: <= 2 s for Llama-3.1-8B on 8 x H100 at concurrency 256 and
for Llama-3.1-70B on 16 x H100 (two nodes) at concurrency 128, and <= 10 s for `--exhaustive` over
about 40k configurations. Each scenario runs `--repeats` times in fresh processes against a
throw-away run store (BUDSIM_HOME in a temporary folder); the table gives the median and range.

Usage (from the repo root):
    .venv/bin/python benchmarks/optimize_cli.py --out benchmarks/optimize_cli.md
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BUDSIM = [sys.executable, "-m", "budsim"]

# (name, target s, arguments after `budsim optimize`)
SCENARIOS: list[tuple[str, float, list[str]]] = [
    (
        "Llama-3.1-8B, 8 x H100, C256, 1024/256",
        2.0,
        "-m meta-llama/Llama-3.1-8B --hardware h100-sxm -n 8 --input-len 1024 "
        "--output-len 256 -c 256 --seed 0".split(),
    ),
    (
        "Llama-3.1-70B, 16 x H100 (2 nodes), C128, 1024/256",
        2.0,
        "-m meta-llama/Llama-3.1-70B --hardware h100-sxm -n 16 --nodes 2 --input-len 1024 "
        "--output-len 256 -c 128 --seed 0".split(),
    ),
    (
        "--exhaustive: Llama-3.1-8B, 8 x H100, C64, 1024/256",
        10.0,
        "-m meta-llama/Llama-3.1-8B --hardware h100-sxm -n 8 --input-len 1024 "
        "--output-len 256 -c 64 --exhaustive".split(),
    ),
]

_EVALUATED = re.compile(r"([\d,]+)\s+configurations evaluated of ([\d,]+)")


def run_once(args: list[str], home: str) -> tuple[float, str]:
    env = {**os.environ, "BUDSIM_HOME": home, "COLUMNS": "80"}
    t0 = time.perf_counter()
    done = subprocess.run(
        [*BUDSIM, "optimize", *args], env=env, cwd=ROOT, capture_output=True, text=True
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"budsim optimize {' '.join(args)} failed:\n{done.stderr}")
    return wall, " ".join(done.stdout.split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--note", default="", help="A line on the conditions (e.g. other work on the machine)."
    )
    ns = parser.parse_args(argv)
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    ).stdout.strip()
    rows = []
    with tempfile.TemporaryDirectory() as home:
        for name, target, args in SCENARIOS:
            walls, text = [], ""
            for _ in range(ns.repeats):
                wall, text = run_once(args, home)
                walls.append(wall)
            m = _EVALUATED.search(text)
            evaluated = f"{m.group(1)} of {m.group(2)}" if m else "?"
            median = statistics.median(walls)
            rows.append(
                f"| {name} | {median:.2f} | {min(walls):.2f}-{max(walls):.2f} | {evaluated} "
                f"| {target:g} | {'yes' if median <= target else 'no'} |"
            )
            print(rows[-1], flush=True)
    lines = [
        "# `budsim optimize` end to end",
        "",
        "Made by `.venv/bin/python benchmarks/optimize_cli.py --out benchmarks/optimize_cli.md` "
        "(see the script's docstring).",
        "",
        f"- commit {commit}, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}; default settings (GA population 100, 2 prediction "
        "processes on 2 cores); each command run "
        f"{ns.repeats} times in a fresh process",
        # set, every start compiles budsim's modules from source (about 0.1 s of the start)
        f"- bytecode cache: {'off (PYTHONDONTWRITEBYTECODE set)' if sys.dont_write_bytecode else 'on'}",
        *([f"- {ns.note}"] if ns.note else []),
        "",
        "| command | wall s, median | range | configurations evaluated | target s | met |",
        "|---|---:|---:|---:|---:|---|",
        *rows,
        "",
    ]
    text = "\n".join(lines)
    if ns.out:
        ns.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
