"""TUI benchmark: time to first frame, and the worst UI-thread stall while a GA runs.

1. First frame: start the real `budsim` entry point in a pseudo-terminal (80x24, TERM=xterm-256color)
   and time from spawn until the setup screen's first frame reaches the terminal (its title bar text),
   then until the catalog has loaded (the engine list is drawn). Quits with Ctrl+Q. Repeated --repeat
   times; median and worst are reported. Also lists which heavy modules (xgboost, transformers,
   pandas, sklearn, deap) were imported by the time the catalog was ready.
2. UI stall: run the app headless (80x24) with a 10 ms interval timer inside it that records how late
   each tick fires, start a search through the app (the real worker, store and predictor) and keep
   the timer running until the search ends. The worst lateness is the longest the UI thread was
   blocked: message handlers, throttled chart redraws, plus whatever the GA thread's GIL holds cost.
   Cancel latency (cancel -> worker returned) is measured on a second, cancelled run.

Usage (from the repo root):
    .venv/bin/python benchmarks/tui_bench.py --out benchmarks/tui.md
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import pty
import select
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
FIRST_FRAME_MARK = b"offline LLM deployment planner"
CATALOG_MARK = b"pick a model"
HEAVY = ("xgboost", "transformers", "pandas", "sklearn", "deap")


# ---------------------------------------------------------------------------------- first frame


BASELINE_APP = """
from textual.app import App
from textual.widgets import Footer, Static
class Baseline(App):
    def compose(self):
        yield Static("offline LLM deployment planner")
        yield Footer()
Baseline().run()
"""


def _cpu_seconds(pid: int) -> float | None:
    """User + system CPU time a process has used so far (Linux /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def first_frame_once(
    db: Path, timeout: float = 20.0, cmd: list[str] | None = None
) -> tuple[float, float | None, float | None]:
    """(seconds to the first frame, seconds until the catalog is drawn, CPU seconds the process
    used up to the first frame) for one launch."""
    exe = ROOT / ".venv" / "bin" / "budsim"
    if cmd is None:
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "budsim"]
    master, slave = pty.openpty()
    termios.tcsetwinsize(slave, (24, 80)) if hasattr(termios, "tcsetwinsize") else None
    try:
        import fcntl

        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    except OSError:
        pass
    env = dict(os.environ, TERM="xterm-256color", COLUMNS="80", LINES="24", BUDSIM_DB=str(db))
    env.pop("COLORTERM", None)  # 256 colours, as in a plain tmux
    started = time.perf_counter()
    proc = subprocess.Popen(
        cmd, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=ROOT, close_fds=True
    )
    os.close(slave)
    seen = b""
    first: float | None = None
    ready: float | None = None
    cpu: float | None = None
    deadline = started + timeout
    try:
        while time.perf_counter() < deadline and ready is None:
            r, _, _ = select.select([master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
            now = time.perf_counter()
            if first is None and FIRST_FRAME_MARK in seen:
                first = now - started
                cpu = _cpu_seconds(proc.pid)
            if first is not None and (CATALOG_MARK in seen or cmd[-1] == BASELINE_APP):
                ready = now - started
        os.write(master, b"\x11")  # Ctrl+Q
        end = time.perf_counter() + 5
        while proc.poll() is None and time.perf_counter() < end:
            r, _, _ = select.select([master], [], [], 0.05)
            if r:
                try:
                    os.read(master, 65536)
                except OSError:
                    break
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        os.close(master)
    if first is None:
        raise RuntimeError(f"no first frame within {timeout} s; output: {seen[-400:]!r}")
    return first, ready, cpu


def heavy_modules_at_ready() -> list[str]:
    """Heavy modules imported once the app has painted and loaded its catalog (headless)."""
    code = """
import asyncio, sys
from budsim.tui.app import BudsimApp
async def main():
    app = BudsimApp(cursor_blink=False)
    async with app.run_test(size=(80, 24)) as pilot:
        while app.catalog is None:
            await pilot.pause(0.05)
        await pilot.pause(0.2)
        print(",".join(m for m in {heavy!r} if m in sys.modules))
asyncio.run(main())
""".replace("{heavy!r}", repr(HEAVY))
    env = dict(os.environ, BUDSIM_DB=str(Path(tempfile.mkdtemp()) / "runs.db"))
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if out.returncode:
        raise RuntimeError(out.stderr[-2000:])
    line = out.stdout.strip().splitlines()[-1] if out.stdout.strip() else ""
    return [m for m in line.split(",") if m]


# ---------------------------------------------------------------------------------- UI stall


@dataclass
class StallResult:
    scenario: str
    generations: int
    evaluations: int
    search_s: float
    ticks: int
    worst_ms: float  # worst lateness over the whole run (screen switches included)
    p99_ms: float
    median_ms: float
    over_50ms: int
    steady_worst_ms: float  # worst lateness between the first generation and the end
    cpu_worst_ms: float  # worst UI-thread CPU time between two ticks (contention-free view)
    steady_cpu_worst_ms: float  # the same between the first generation and the end
    cancel_ms: float | None = None


async def _stall(request: Any, cancel_after: int | None, label: str) -> StallResult:
    from budsim.tui.app import BudsimApp

    db = Path(tempfile.mkdtemp()) / "runs.db"
    app = BudsimApp(db_path=db, cursor_blink=False)
    late: list[float] = []
    steady: list[float] = []
    cpu: list[float] = []
    steady_cpu: list[float] = []
    async with app.run_test(size=(80, 24)) as pilot:
        while app.catalog is None:
            await pilot.pause(0.05)
        await pilot.pause(1.0)  # let the prediction pool start
        last = [time.perf_counter(), time.thread_time()]

        def tick() -> None:
            now, cpu_now = time.perf_counter(), time.thread_time()
            gap = max(0.0, now - last[0] - 0.010)
            late.append(gap)
            cpu.append(max(0.0, cpu_now - last[1]))
            if state.progress and not state.done.is_set():
                steady.append(gap)
                steady_cpu.append(max(0.0, cpu_now - last[1]))
            last[0], last[1] = now, cpu_now

        app.start_run(request)
        state = app.run_state
        assert state is not None
        last[0], last[1] = time.perf_counter(), time.thread_time()
        timer = app.set_interval(0.010, tick)
        started = time.perf_counter()
        while not state.done.is_set():
            await asyncio.sleep(0.02)
            if cancel_after is not None and len(state.progress) >= cancel_after:
                if not state.cancel.is_set():
                    app.cancel_run()
        search_s = time.perf_counter() - started
        await pilot.pause(0.3)  # the last messages and the switch to the results screen
        timer.stop()
        cancel_ms = None
        if state.cancel_requested_at is not None and state.worker_ended_at is not None:
            cancel_ms = (state.worker_ended_at - state.cancel_requested_at) * 1000
        last_progress = state.progress[-1] if state.progress else None
    ms = sorted(x * 1000 for x in late)
    return StallResult(
        scenario=label,
        generations=len(state.progress),
        evaluations=last_progress.evaluations if last_progress else 0,
        search_s=search_s,
        ticks=len(ms),
        worst_ms=ms[-1] if ms else 0.0,
        p99_ms=ms[int(0.99 * (len(ms) - 1))] if ms else 0.0,
        median_ms=statistics.median(ms) if ms else 0.0,
        over_50ms=sum(1 for x in ms if x > 50),
        steady_worst_ms=max(steady, default=0.0) * 1000,
        cpu_worst_ms=max(cpu, default=0.0) * 1000,
        steady_cpu_worst_ms=max(steady_cpu, default=0.0) * 1000,
        cancel_ms=cancel_ms,
    )


def scenarios(quick: bool) -> list[tuple[str, Any, int | None]]:
    from budsim.core.deployment import Workload
    from budsim.core.search.ga import GASettings
    from budsim.core.search.optimize import OptimizationRequest

    def req(model: str, hw: str, n: int, pop: int, gens: int) -> Any:
        return OptimizationRequest(
            model=model,
            hardware=hw,
            devices=n,
            workload=Workload(input_len=1024, output_len=256, concurrency=32),
            ga=GASettings(population=pop, generations=gens, seed=1, patience=None),
        )

    pop, gens = (30, 4) if quick else (100, 10)
    return [
        (
            f"Llama-3.1-8B, 8x h100-sxm, pop {pop}, {gens} gens",
            req("meta-llama/Llama-3.1-8B", "h100-sxm", 8, pop, gens),
            None,
        ),
        (
            f"Qwen3-30B-A3B (MoE), 8x h100-sxm, pop {pop}, {gens} gens",
            req("Qwen/Qwen3-30B-A3B", "h100-sxm", 8, pop, gens),
            None,
        ),
        (
            "Llama-3.1-8B, pop 100, cancelled after 2 gens",
            req("meta-llama/Llama-3.1-8B", "h100-sxm", 8, 100, 50),
            2,
        ),
    ]


# ---------------------------------------------------------------------------------- report


def machine() -> str:
    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import textual

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (
        f"{cpu}, {os.cpu_count()} CPUs, Linux {platform.release()}, Python "
        f"{platform.python_version()}, textual {textual.__version__}; load average "
        f"{load:.1f} at the start"
    )


def _ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.0f} ms" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="launches for the first-frame time")
    parser.add_argument("--quick", action="store_true", help="smaller GA for the stall test")
    parser.add_argument("--out", type=Path, help="write a markdown report here")
    args = parser.parse_args()

    header = machine()
    print(header)
    db = Path(tempfile.mkdtemp()) / "runs.db"
    firsts: list[float] = []
    readies: list[float] = []
    cpus: list[float] = []
    base_runs: list[tuple[float, float | None, float | None]] = []
    for i in range(args.repeat):
        # interleaved with the baseline so both see the same machine load
        base_runs.append(first_frame_once(db, cmd=[sys.executable, "-c", BASELINE_APP]))
        first, ready, cpu = first_frame_once(db)
        firsts.append(first)
        if cpu is not None:
            cpus.append(cpu)
        if ready is not None:
            readies.append(ready)
        print(
            f"launch {i + 1}: first frame {first * 1000:.0f} ms (process CPU "
            f"{_ms([cpu] if cpu is not None else [])}), catalog drawn "
            f"{(ready or float('nan')) * 1000:.0f} ms"
        )
    baseline = [r[0] for r in base_runs]
    base_cpu = [r[2] for r in base_runs if r[2] is not None]
    print(
        f"baseline (a two-widget Textual app): median {statistics.median(baseline) * 1000:.0f} ms"
    )
    heavy = heavy_modules_at_ready()
    print(f"heavy modules imported once the catalog is ready: {heavy or 'none'}")

    stalls: list[StallResult] = []
    for label, request, cancel_after in scenarios(args.quick):
        result = asyncio.run(_stall(request, cancel_after, label))
        stalls.append(result)
        print(
            f"{label}: {result.generations} generations, {result.evaluations} evaluated in "
            f"{result.search_s:.1f} s; worst UI stall {result.worst_ms:.1f} ms (between "
            f"generations {result.steady_worst_ms:.1f} ms; UI CPU {result.cpu_worst_ms:.1f} ms, "
            f"between generations {result.steady_cpu_worst_ms:.1f} ms), "
            f"p99 {result.p99_ms:.1f} ms, {result.over_50ms} ticks > 50 ms"
            + (f"; cancel {result.cancel_ms:.0f} ms" if result.cancel_ms is not None else "")
        )

    if args.out:
        lines = [
            "# TUI benchmark",
            "",
            f"Machine: {header}.",
            "Produced by `benchmarks/tui_bench.py` (targets from issue 5: first frame <= 0.8 s, "
            "no UI-thread stall > 50 ms while a GA runs, cancel <= 0.5 s).",
            "",
            "## Time to first frame (`budsim` in an 80x24 pty, TERM=xterm-256color)",
            "",
            "| measure | median | worst | CPU used by then (median) | launches |",
            "|---|---:|---:|---:|---:|",
            f"| first frame (setup screen drawn) | {statistics.median(firsts) * 1000:.0f} ms | "
            f"{max(firsts) * 1000:.0f} ms | {_ms(cpus)} | {len(firsts)} |",
        ]
        lines.append(
            f"| baseline: a two-widget Textual app, same pty | "
            f"{statistics.median(baseline) * 1000:.0f} ms | {max(baseline) * 1000:.0f} ms | "
            f"{_ms(base_cpu)} | {len(baseline)} |"
        )
        extra = [a - b for a, b in zip(firsts, baseline, strict=True)]
        lines.append(
            f"| budsim minus the baseline, launch by launch | "
            f"{statistics.median(extra) * 1000:.0f} ms | {max(extra) * 1000:.0f} ms | - | "
            f"{len(extra)} |"
        )
        if readies:
            lines.append(
                f"| catalog loaded and drawn (worker after the first paint) | "
                f"{statistics.median(readies) * 1000:.0f} ms | {max(readies) * 1000:.0f} ms | - | "
                f"{len(readies)} |"
            )
        lines += [
            "",
            "Heavy modules imported by the time the catalog is ready: "
            + (
                ", ".join(heavy)
                if heavy
                else "none (xgboost, transformers, pandas, sklearn, deap all still unloaded)"
            )
            + ".",
            "",
            "## UI-thread stalls while a search runs (headless app, 10 ms timer inside it)",
            "",
            "| scenario | generations | evaluated | search s | ticks | median late ms | "
            "p99 late ms | worst late ms | worst late ms between generations | "
            "worst UI-thread CPU ms per gap | the same between generations | ticks > 50 ms | "
            "cancel → worker done |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for s in stalls:
            cancel = f"{s.cancel_ms:.0f} ms" if s.cancel_ms is not None else "-"
            lines.append(
                f"| {s.scenario} | {s.generations} | {s.evaluations} | {s.search_s:.1f} | "
                f"{s.ticks} | {s.median_ms:.1f} | {s.p99_ms:.1f} | {s.worst_ms:.1f} | "
                f"{s.steady_worst_ms:.1f} | {s.cpu_worst_ms:.1f} | {s.steady_cpu_worst_ms:.1f} | "
                f"{s.over_50ms} | {cancel} |"
            )
        lines += [
            "",
            "Lateness is how much later than 10 ms after the previous tick each tick fired, so it "
            "includes every handler, redraw and screen switch on the UI thread, and any wait for "
            'the GIL or for a CPU. "Between generations" leaves out the two screen switches '
            '(setup → run at the start, run → results at the end). "UI-thread CPU" is the '
            "CPU time the UI thread itself used between two ticks (`time.thread_time`): the "
            "stall the app causes on an idle machine, whatever the load. The GA runs in a thread "
            "worker; its predictions run in a pool of spawned processes (`budsim.tui.runner."
            "PredictionPool`), so the GA thread mostly waits with the GIL released.",
            "",
        ]
        end_load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
        lines.insert(
            3,
            f"The machine was shared with other jobs (load average {end_load:.1f} at the end, "
            f"on {os.cpu_count()} CPUs), so wall-clock numbers include waiting for a CPU; the CPU "
            "columns are what the app itself spent.",
        )
        args.out.write_text("\n".join(lines))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
