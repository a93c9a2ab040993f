"""Kernel-level cross-validation of the measured-kernel lookups (budsim.core.kernels).

For every (system, engine) of the artefact and every family, groups of measured points are held out,
the lookup is rebuilt from the remaining points only, and the held-out points are predicted on the
system that measured them (no device scaling):

- GEMM: each (n, k) weight shape per format (leave-one-shape-out; the shape's whole m curve);
- context / generation attention: each head layout (num_heads, num_key_value_heads, head_dim), with
  all its windows and KV formats;
- MoE: each model shape (hidden, inter, topk, experts) with all its formats, distributions, TP, EP;
- MLA (attention-only and module tables): each num_heads;
- communication (custom all-reduce, NCCL): each message size (interpolation), and separately each
  GPU count (utilisation interpolated in log n between the remaining counts, held beyond them).

The truth is the stored measured latency of each point (after the build's garbage and duplicate
rules, before the monotone envelope a lookup applies). Reports median and p90 absolute percentage error (APE) and
the number of points per (system, engine, family, format) and overall.

    python benchmarks/kernel_accuracy.py --out benchmarks/kernel_accuracy.md
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budsim.core.hardware import Device  # noqa: E402
from budsim.core.kernels import artefact  # noqa: E402
from budsim.core.kernels.artefact import EngineTables, load_engine_tables  # noqa: E402
from budsim.core.kernels.families import (  # noqa: E402
    A2A_KERNELS,
    A2A_PHASES,
    COLLECTIVES,
    DISTRIBUTIONS,
    GEMM_DTYPES,
    KV_DTYPES,
    MLA_GEMMS,
    MOE_DTYPES,
    source_sol,  # noqa: E402
)
from budsim.core.kernels.grid import GridTable, fill_holes  # noqa: E402
from budsim.core.kernels.sol import PROFILES  # noqa: E402
from budsim.core.kernels.source import KernelSource, _Plan  # noqa: E402
from budsim.core.kernels.systems import ENGINES, SYSTEMS, source_device  # noqa: E402

GEMM_API = {
    "bfloat16": "bf16",
    "fp8": "fp8",
    "fp8_block": "fp8_block",
    "nvfp4": "nvfp4",
    "sq": "int8",
    "int8_wo": "fp8",  # fp8 on A100 runs as w8a16, answered by the int8_wo table
    "int4_wo": "int4",
}


@dataclass
class Fold:
    family: str
    dtype: str
    predicted: np.ndarray
    measured: np.ndarray


def _source(device: Device, engine: str, tables: EngineTables) -> KernelSource:
    def provide(system: str, name: str) -> EngineTables | None:
        return tables if (system, name) == (tables.system, engine) else None

    return KernelSource(device, engine, provide)


def _with(et: EngineTables, family: str, table: GridTable, util: np.ndarray | None) -> EngineTables:
    """`et` with one family replaced (and its utilisation, where it is known not to change)."""
    tables = EngineTables(et.system, et.engine, {family: table}, et.versions)
    if util is not None:
        tables.cache[f"log_util.{family}"] = util
    return tables


def _cells(table: GridTable, key: int | np.integer) -> tuple[list[np.ndarray], np.ndarray]:
    """Coordinates and latencies (s) of the measured cells of one key."""
    grid = table.latency_ms[key]
    idx = np.nonzero(~np.isnan(grid))
    coords = [table.axes[i][idx[i]].astype(np.float64) for i in range(len(table.axes))]
    return coords, grid[idx] * 1e-3


def cv_gemm(
    et: EngineTables, device: Device, max_shapes: int, rng: np.random.Generator
) -> Iterator[Fold]:
    table = et.tables["gemm"]
    for row, code in enumerate(table.column("dtype")):
        dtype = GEMM_DTYPES[code]
        single = table.select(np.arange(len(table.keys)) == row)
        measured = ~np.isnan(single.latency_ms[0])
        shapes = np.argwhere(measured.any(axis=0))  # (n index, k index) pairs with data
        if len(shapes) > max_shapes:
            shapes = shapes[np.sort(rng.choice(len(shapes), max_shapes, replace=False))]
        for i, j in shapes:
            cells = np.zeros(single.latency_ms.shape, dtype=bool)
            cells[0, :, i, j] = True
            fold = _with(et, "gemm", single.masked(cells), None)
            ks = _source(device, et.engine, fold)
            m_idx = np.flatnonzero(measured[:, i, j])
            n, k = int(table.axes[1][i]), int(table.axes[2][j])
            pred = ks.gemm(table.axes[0][m_idx], n, k, GEMM_API[dtype])
            yield Fold("gemm", dtype, pred, single.latency_ms[0, m_idx, i, j] * 1e-3)


def cv_attention(et: EngineTables, family: str, device: Device) -> Iterator[Fold]:
    table = et.tables[family]
    util = et.log_util(family)  # per key, so removing keys leaves the others' utilisation as is
    layout = table.keys[:, :3]
    for lay in np.unique(layout, axis=0):
        held = (layout == lay).all(axis=1)
        fold = _with(et, family, table.select(~held), util[~held])
        ks = _source(device, et.engine, fold)
        call = ks.context_attention if family == "context_attention" else ks.generation_attention
        heads, kv_heads, head_dim = (int(v) for v in lay)
        for key in np.flatnonzero(held):
            (b, s), lat = _cells(table, key)
            window = int(table.column("window")[key])
            kv = KV_DTYPES[table.column("kv")[key]]
            pred = call(b, s, heads, kv_heads, head_dim, kv, window)
            yield Fold(family, kv, pred, lat)


def cv_moe(et: EngineTables, device: Device) -> Iterator[Fold]:
    table = et.tables["moe"]
    util = et.log_util("moe")
    floors, work = et.moe_overhead()  # per key: removing keys leaves the others' as they are
    shape_cols = [table.key_names.index(c) for c in ("hidden", "inter", "topk", "experts")]
    shapes = table.keys[:, shape_cols]
    for shape in np.unique(shapes, axis=0):
        held = (shapes == shape).all(axis=1)
        fold = _with(et, "moe", table.select(~held), util[~held])
        fold.cache["moe_overhead"] = (floors[~held], work[~held])
        hidden, inter, topk, experts = (int(v) for v in shape)
        for key in np.flatnonzero(held):
            dtype = MOE_DTYPES[table.column("dtype")[key]]
            dist = int(table.column("dist")[key])
            cand = fold.tables["moe"]
            if not (
                (cand.column("dtype") == MOE_DTYPES.index(dtype)) & (cand.column("dist") == dist)
            ).any():
                continue  # the only shape of its format: nothing to transfer from
            ks = _source(device, et.engine, fold)
            # evaluate the table's own format (the API maps some formats to others on this device)
            ks._cache[("moe_plan", "bf16", DISTRIBUTIONS[dist])] = _Plan(
                fold, dtype, PROFILES[dtype], "", dist=dist
            )
            (tokens,), lat = _cells(table, key)
            pred = ks.moe(
                tokens,
                hidden,
                inter,
                topk,
                experts,
                int(table.column("tp")[key]),
                int(table.column("ep")[key]),
                "bf16",
                DISTRIBUTIONS[dist],
                gated=bool(table.column("gated")[key]),
            )
            yield Fold("moe", dtype, pred, lat)


def cv_a2a(et: EngineTables, device: Device) -> Iterator[Fold]:
    """DeepEP dispatch / combine: each (hidden, topk, experts) shape held out with both kernels and
    phases, predicted from the other shapes with the key's own kernel (mode forced)."""
    table = et.tables["moe_a2a"]
    util = et.log_util("moe_a2a")
    shape_cols = [table.key_names.index(c) for c in ("hidden", "topk", "experts")]
    shapes = table.keys[:, shape_cols]
    for shape in np.unique(shapes, axis=0):
        held = (shapes == shape).all(axis=1)
        fold = _with(et, "moe_a2a", table.select(~held), util[~held])
        ks = _source(device, et.engine, fold)
        hidden, topk, experts = (int(v) for v in shape)
        for key in np.flatnonzero(held):
            kernel = A2A_KERNELS[table.column("kernel")[key]]
            phase = A2A_PHASES[table.column("phase")[key]]
            rest = fold.tables["moe_a2a"]
            if not (
                (rest.column("kernel") == table.column("kernel")[key])
                & (rest.column("phase") == table.column("phase")[key])
            ).any():
                continue
            (tokens,), lat = _cells(table, key)
            ep = int(table.column("ep")[key])
            pred = ks.moe_alltoall(tokens, hidden, topk, experts, ep, phase, mode=kernel)
            yield Fold("moe_alltoall", f"{kernel} {phase}", pred, lat)


def cv_mla(et: EngineTables, family: str, device: Device) -> Iterator[Fold]:
    table = et.tables[family]
    phase = "context" if family.startswith("mla_context") else "generation"
    module = family.endswith("_module")
    for h_idx, heads in enumerate(table.axes[0]):
        cells = np.zeros(table.latency_ms.shape, dtype=bool)
        cells[:, h_idx] = True
        for key in range(len(table.keys)):
            if np.isnan(table.latency_ms[key, h_idx]).all():
                continue
            single = table.select(np.arange(len(table.keys)) == key)
            fold = _with(et, family, single.masked(cells[key : key + 1]), None)
            ks = _source(device, et.engine, fold)
            grid = table.latency_ms[key, h_idx]
            idx = np.nonzero(~np.isnan(grid))
            b, s = (table.axes[1 + i][idx[i]].astype(np.float64) for i in range(2))
            kv = KV_DTYPES[table.column("kv")[key]]
            gemm = MLA_GEMMS[table.column("gemm")[key]] if module else "bfloat16"
            fmt = {"bfloat16": "bf16", "fp8_block": "fp8_block", "nvfp4": "nvfp4"}[gemm]
            call = ks.mla_context if phase == "context" else ks.mla_generation
            pred, _ = call(b, s, int(heads), kv, fmt)
            label = f"{kv} kv" + (f", {gemm}" if module else "")
            yield Fold(family, label, pred, grid[idx] * 1e-3)


def cv_comm(et: EngineTables, family: str, device: Device) -> Iterator[Fold]:
    table = et.tables[family]
    util = et.log_util(family)
    for key in range(len(table.keys)):
        op = COLLECTIVES[table.column("op")[key]] if family == "nccl" else "all_reduce"
        n = int(table.column("n")[key])
        single = table.select(np.arange(len(table.keys)) == key)

        def call(ks: KernelSource, size: np.ndarray, n: int = n, op: str = op) -> np.ndarray:
            return ks.allreduce(size, n) if family == "allreduce" else ks.collective(op, size, n)

        # each message size held out: interpolation along size
        for i in np.flatnonzero(~np.isnan(single.latency_ms[0])):
            cells = np.zeros(single.latency_ms.shape, dtype=bool)
            cells[0, i] = True
            ks = _source(device, et.engine, _with(et, family, single.masked(cells), None))
            size = table.axes[0][i : i + 1].astype(np.float64)
            yield Fold(
                f"{family} (size)", op, call(ks, size), single.latency_ms[0, i : i + 1] * 1e-3
            )
        # the GPU count held out: ring scaling from the nearest remaining count
        same_op = np.ones(len(table.keys), dtype=bool)
        if family == "nccl":
            same_op = table.column("op") == table.column("op")[key]
        rest = np.flatnonzero((np.arange(len(table.keys)) != key) & same_op)
        if len(rest) == 0:
            continue
        keep = np.zeros(len(table.keys), dtype=bool)
        keep[rest] = True
        ks = _source(device, et.engine, _with(et, family, table.select(keep), util[keep]))
        (size,), lat = _cells(table, key)
        yield Fold(f"{family} (gpus)", op, call(ks, size), lat)


def _latency_space(family: str, table: GridTable, device: Device) -> np.ndarray:
    """families.log_util with the holes filled in log latency instead of log utilisation."""
    axes = [np.log(a.astype(np.float64)) for a in table.axes]
    filled = fill_holes(np.log(table.latency_ms * 1e-3), axes)
    return np.log(source_sol(family, table, device)) - filled


def compare_spaces(max_gemm_shapes: int, seed: int) -> pd.DataFrame:
    """GEMM (n, k) and MLA head-count interpolation in log utilisation vs log latency. The fold
    tables compute their utilisation through artefact.log_util, swapped here for the variant."""
    rows = []
    original = artefact.log_util
    try:
        for space, fill in (("utilisation", original), ("latency", _latency_space)):
            artefact.log_util = fill
            for system in ("h200_sxm", "b200_sxm", "l40s", "a100_sxm"):
                device = source_device(system)
                for engine in ("vllm", "trtllm"):
                    et = load_engine_tables(system, engine)
                    if et is None:
                        continue
                    rng = np.random.default_rng(seed)
                    folds = list(cv_gemm(et, device, max_gemm_shapes, rng))
                    for family in ("mla_context_module", "mla_context"):
                        if family in et.tables:
                            folds += list(cv_mla(et, family, device))
                            break
                    for fold in folds:
                        ape = np.abs(fold.predicted / fold.measured - 1.0) * 100.0
                        label = "gemm" if fold.family == "gemm" else "mla_context (+module)"
                        rows += [{"space": space, "family": label, "ape": float(a)} for a in ape]
    finally:
        artefact.log_util = original
    return pd.DataFrame(rows)


def run(max_gemm_shapes: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows: list[dict[str, object]] = []
    for system in SYSTEMS:
        device = source_device(system)
        for engine in ENGINES:
            et = load_engine_tables(system, engine)
            if et is None:
                continue
            jobs: list[Iterator[Fold]] = []
            for family in sorted(et.tables):
                if family == "gemm":
                    jobs.append(cv_gemm(et, device, max_gemm_shapes, rng))
                elif family.endswith("attention"):
                    jobs.append(cv_attention(et, family, device))
                elif family == "moe":
                    jobs.append(cv_moe(et, device))
                elif family == "moe_a2a":
                    jobs.append(cv_a2a(et, device))
                elif family.startswith("mla"):
                    jobs.append(cv_mla(et, family, device))
                elif family == "nccl" and engine != "vllm":
                    continue  # one NCCL table per system: evaluated once
                else:
                    jobs.append(cv_comm(et, family, device))
            for job in jobs:  # generators: each runs when iterated
                t0 = time.perf_counter()
                count = 0
                for fold in job:
                    ape = np.abs(fold.predicted / fold.measured - 1.0) * 100.0
                    count += len(ape)
                    for value in ape:
                        rows.append(
                            {
                                "system": system,
                                "engine": "nccl" if fold.family.startswith("nccl") else engine,
                                "family": fold.family,
                                "dtype": fold.dtype,
                                "ape": float(value),
                            }
                        )
                print(
                    f"{system} {engine}: {count} points in {time.perf_counter() - t0:.1f}s",
                    flush=True,
                )
    return pd.DataFrame(rows)


def _summary(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    g = df.groupby(by, sort=True)["ape"]
    out = pd.DataFrame(
        {"median APE %": g.median(), "p90 APE %": g.quantile(0.9), "n": g.size()}
    ).reset_index()
    return out


def _md(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for row in df.itertuples(index=False):
        cells = []
        for value in row:
            cells.append(f"{value:.1f}" if isinstance(value, float) else str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


TARGETS = {"gemm": 5.0}

# Median APE % of the previous model (commit ed764d2's committed kernel_accuracy.md).
BEFORE: dict[tuple[str, str], float] = {
    ("moe", "overall"): 13.8,
    ("moe", "a100_sxm"): 6.3,
    ("moe", "b200_sxm"): 18.1,
    ("moe", "h100_sxm"): 12.7,
    ("moe", "h200_sxm"): 13.8,
    ("moe", "l40s"): 11.0,
    ("allreduce (gpus)", "overall"): 11.8,
    ("allreduce (gpus)", "a100_sxm"): 8.1,
    ("allreduce (gpus)", "b200_sxm"): 9.6,
    ("allreduce (gpus)", "h100_sxm"): 10.2,
    ("allreduce (gpus)", "h200_sxm"): 10.6,
    ("allreduce (gpus)", "l40s"): 48.8,
    ("nccl (gpus)", "overall"): 13.9,
    ("nccl (gpus)", "a100_sxm"): 9.2,
    ("nccl (gpus)", "b200_sxm"): 14.0,
    ("nccl (gpus)", "h100_sxm"): 9.3,
    ("nccl (gpus)", "h200_sxm"): 9.6,
    ("nccl (gpus)", "l40s"): 59.4,
}


def _before_after(by_system: pd.DataFrame, overall: pd.DataFrame) -> list[str]:
    now = {(r.family, r.system): r[2] for r in by_system.itertuples(index=False)}
    now.update({(r.family, "overall"): r[1] for r in overall.itertuples(index=False)})
    return [
        f"| {family} | {system} | {before:.1f} | {now.get((family, system), float('nan')):.1f} |"
        for (family, system), before in BEFORE.items()
    ]


def report(df: pd.DataFrame, spaces: pd.DataFrame, args: argparse.Namespace, seconds: float) -> str:
    overall = _summary(df, ["family"])
    overall["target"] = [f"<= {TARGETS.get(f, 10.0):.0f} %" for f in overall["family"]]
    by_system = _summary(df, ["family", "system"])
    focus = df[df["family"].isin(["moe", "moe_alltoall", "allreduce (gpus)", "nccl (gpus)"])]
    by_engine = _summary(focus, ["family", "system", "engine"])
    detail = _summary(df, ["system", "engine", "family", "dtype"])
    machine = f"{platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}"
    return "\n".join(
        [
            "# Kernel lookup cross-validation",
            "",
            "Generated by `python benchmarks/kernel_accuracy.py --out benchmarks/kernel_accuracy.md"
            + (f" --gemm-shapes {args.gemm_shapes}" if args.gemm_shapes != 60 else "")
            + "`",
            f"on {machine}, in {seconds:.0f} s. Artefact: `pretrained/kernels/` (see its manifest.json).",
            "",
            "Each group is held out, the lookup is rebuilt from the rest of its table, and the held-out",
            "points are predicted on the GPU that measured them (no device scaling). Groups: GEMM, each",
            "(n, k) weight shape per format (its whole m curve); attention, each head layout (num_heads,",
            "num_key_value_heads, head_dim) with all windows and KV formats; MoE, each model shape",
            "(hidden, inter, topk, experts) with all formats, distributions, TP and EP (the key's",
            "gated label passed, as a caller states its model's); DeepEP all-to-all (moe_alltoall),",
            "each (hidden, topk, experts) with both kernels and phases, predicted with the key's",
            "kernel; MLA, each num_heads; communication, each message size (interpolation) and",
            "separately each GPU count (the alpha-beta SOL of the held-out count from the two other",
            "counts, residual utilisation interpolated in log n, held beyond). Truth: the stored",
            "measured latency (after the build's garbage and duplicate rules, before the monotone",
            "envelope a lookup applies).",
            f"GEMM is subsampled: {args.gemm_shapes} random (n, k) shapes per (system, engine, format)",
            f"(seed {args.seed}); every other family holds out every group. APE = |predicted /",
            "measured - 1|. MoE shapes that are the only measured shape of their format (nothing to",
            "transfer from) are skipped.",
            "",
            "## Overall",
            "",
            _md(overall),
            "",
            "Reading: every family meets its target overall. Per (system, engine), next table:",
            "MoE is under 10 % everywhere but B200 SGLang, just above (its bf16 and fp8_block",
            "tables mix two MoE kernels, FlashInfer TRT-LLM and Triton, chosen per model, which a",
            "held-out shape cannot know: bf16 alone is ~20 %); communication across GPU counts is",
            "under 10 % on every NVLink system but not on L40S (PCIe): its bus bandwidth falls from",
            "~19 GB/s at 2 GPUs to ~4 at 4 and ~3 at 8, which three counts cannot pin down. DeepEP",
            "all-to-all is 4-9 % for SGLang and TRT-LLM, 10-12 % for vLLM (its low-latency combine",
            "is the worst, ~17 %).",
            "",
            "## MoE, DeepEP and communication by system and engine",
            "",
            _md(by_engine),
            "",
            "## Before and after this change (median APE %, same script and holdouts)",
            "",
            "Before: commit ed764d2 (its committed kernel_accuracy.md, same machine kind). After:",
            "this file.",
            "",
            "| family | system | before | after |",
            "|---|---|---|---|",
            *_before_after(by_system, overall),
            "",
            "## How the MoE and communication models were chosen",
            "",
            "MoE. latency = fixed overhead + SOL / utilisation. The SOL is that of the rank the",
            "benchmark times under its routing (balanced: a 1/ep share of the token-expert pairs, at",
            "least one; power law: the most loaded rank of a fixed-seed emulation of the generator),",
            "counting the touched experts' weights, the GEMM flops, and each pair's rows through",
            "permutation, activation and the weighted sum; gated (gate/up/down) or not (up/down, the",
            "Nemotron-3 shapes in TRT-LLM and SGLang). The overhead of a measured curve is the largest",
            "constant that leaves every point at least its SOL. A held-out shape borrows both from",
            "the 2 nearest keys by an equal-weight log2 distance over hidden, inter/tp, experts/ep,",
            "the rank's weights, topk, EP and matrices per expert, among keys that ran the nearest",
            "key's kernel, at equal tokens per expert. Protocol: designs were compared on H200 and",
            "L40S (all engines) and confirmed on A100, H100 and B200. Chosen on H200/L40S: the SOL",
            "and overhead model, spreading the emulated router's tie overflow over all experts, the",
            "distance features (equal weights, no fitted weights; the previous CV-tuned weights were",
            "dropped) and 2 rather than 4 neighbours. After the first confirmation run B200 SGLang",
            "stayed at 12 %; the same-kernel rule was added then and re-checked on every system",
            "(B200 SGLang 12.2 -> 10.1 % with 4 neighbours, the others unchanged or better), so it",
            "is partly chosen on a confirmation system. Tried and dropped: matching rows per expert",
            "of the timed rank instead of tokens x topk / experts (no change), restricting to the",
            "same TP/EP (worse), the format's majority kernel instead of the nearest key's (mixed).",
            "",
            "Communication across GPU counts. Each measured count's curve gets an alpha-beta SOL",
            "spanning it: the time of its smallest messages and the bus bandwidth of its largest (as a",
            "fraction of the link). For another count the latency term is linear in the ring's n - 1",
            "steps and the bus bandwidth a power law in n, both through the two nearest counts; the",
            "residual utilisation is interpolated in log n and held beyond. Compared on H200 and",
            "L40S, confirmed on A100, H100 and B200: latency linear in n - 1 rather than a power law",
            "(chosen on H200/L40S), residual utilisation held rather than extrapolated (held; the",
            "trend was worse on H200). Bounding the bus bandwidth beyond the largest count by the",
            "best measured fraction of the link is a guard for multi-node extrapolation; it was",
            "checked on all systems (NVLink medians moved by at most 1 point).",
            "",
            "DeepEP (moe_alltoall): tables only for H100, H200, B200 at EP 8 on one node, so EP",
            "scaling and the scale-out link are untested here; low-latency kernels up to 128 tokens",
            "per rank, normal kernels above.",
            "",
            "## By system",
            "",
            _md(by_system),
            "",
            "## Design check: interpolate utilisation or latency?",
            "",
            "Holes of the grid (a held-out GEMM (n, k) shape, a held-out MLA head count) filled in",
            "log utilisation (what the lookup does) or in log latency; H200, B200, L40S, A100 with",
            f"vLLM and TRT-LLM, {args.gemm_shapes // 2} GEMM shapes per table. Attention layouts and",
            "MoE shapes transfer between keys, where only utilisation makes sense (the SOL carries the",
            "shape difference).",
            "",
            _md(_summary(spaces, ["family", "space"])),
            "",
            "## By system, engine, family and format",
            "",
            _md(detail),
            "",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/kernel_accuracy.md")
    parser.add_argument("--gemm-shapes", type=int, default=60, help="(n, k) shapes per GEMM table")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="systems to run (comma-separated), for checks")
    args = parser.parse_args()
    if args.only:
        global SYSTEMS
        SYSTEMS = tuple(s for s in SYSTEMS if s in args.only.split(","))
    t0 = time.perf_counter()
    df = run(args.gemm_shapes, args.seed)
    spaces = compare_spaces(args.gemm_shapes // 2, args.seed)
    text = report(df, spaces, args, time.perf_counter() - t0)
    Path(args.out).write_text(text)
    print(_md(_summary(df, ["family"])))


if __name__ == "__main__":
    main()
