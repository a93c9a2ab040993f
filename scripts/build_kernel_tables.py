"""Build the kernel-table artefact (pretrained/kernels/) from NVIDIA AIConfigurator's measured tables.

Usage::

    python scripts/build_kernel_tables.py --data ../shared/data --out pretrained/kernels

Reads ``<data>/kernels/aiconfigurator/INVENTORY.csv`` and the parquet tables it lists, and writes one
``<system>__<engine>.npz`` per (system, engine) plus ``manifest.json`` (sources with sha256 and row
counts, outputs with sha256 and size, the table version per family). The runtime reader is
budsim.core.kernels (numpy only); the layout is described in budsim/core/kernels/artefact.py. Running
the script twice gives byte-identical files.

Which tables
    Per (system, engine, family) the INVENTORY rows with ``selection`` ``newest``; where that is a
    partial re-collection the ``older-full`` table is merged under it, the newest table replacing the
    older one's rows for every key it measured (a key is one latency curve: e.g. one MoE shape x dtype x
    distribution x TP x EP, one NCCL op x GPU count). Used: gemm_perf, context/generation_attention_perf,
    moe_perf, context/generation_mla_perf, mla_context/generation_module_perf, custom_allreduce_perf,
    nccl_perf (stored with every engine of its system), and the DeepEP dispatch / combine tables
    (moe_a2a_perf of TRT-LLM and vLLM, SGLang's wideep_deepep_ll / wideep_deepep_normal) as
    family moe_a2a. Not used: the other wide-EP tables (wideep_*_moe, wideep_*_mla) and
    DeepSeek-V4 MegaMoE (dsv4_*).

Rows kept
    - Dropped as garbage: latency NaN or <= 0.
    - GEMM: formats bfloat16, fp8, fp8_block, nvfp4, sq (int8 SmoothQuant), int8_wo, int4_wo.
    - Attention and MLA: where a cell was measured with an fp8 attention kernel and a bf16 one for an
      fp8 KV cache, the fp8 one is kept (the engines' path for an fp8 cache); otherwise bf16.
      Context attention with the KV format matched by key (layout, window, kv).
    - Attention and MLA: where one cell was measured by several kernel sources (SGLang on B200:
      trtllm_mha / flashinfer / triton), the table's most frequent source is kept (the engine's
      default backend).
    - MoE: distributions balanced, power_law_1.01, power_law_1.2; several kernel sources for one cell
      (TRT-LLM nvfp4: cutlass and min_latency) keep the fastest, as TRT-LLM picks min_latency for
      small batches. Two labels per key (one latency curve): ``gated``, 0 for the shapes a TRT-LLM
      table measured with non-gated experts (kernel source moe_torch_flow_nongated: the Nemotron-3
      models, which AIConfigurator's TRT-LLM and SGLang collectors run with relu2 up/down experts;
      its vLLM collector builds gate+up weights for every model, so vLLM rows stay gated), else 1;
      ``kernel``, the crc32 of the kernel_source that measured most of the key's rows (engines run
      different MoE kernels for different models; lookups do not average across kernels).
    - DeepEP (moe_a2a): low-latency and normal (high-throughput) kernels, dispatch and combine, per
      (hidden, topk, experts, EP); TRT-LLM's bfloat16 payload rows (its fp8 / nvfp4 payloads are
      not used), vLLM's deepep_ll / deepep_ht (not deepep_v2_*), SGLang's normal kernels at
      DeepEP's default 20 SMs (transmit + notify time) and its low-latency kernels, EP 8 (one node
      of 8 GPUs; the SGLang tables name no EP). Latencies are in us in these tables, stored in ms.
    - Custom all-reduce: the CUDA-graph rows (vllm_graph, sglang_graph; TRT-LLM has one kind).
      NCCL: the fp16 rows. ``message_size`` counts elements in both; stored as bytes (x2).
    - Repeated measurements of one cell keep the fastest (repeats differ by noise or a first-run
      JIT outlier; the spread is < 2 % at the median, up to 1.6x).
    - MLA decode module tables count ``step`` as the sequence length including the new token; stored
      as cached tokens (step - 1) like every other decode table.
    - Not filtered here but when a lookup reads the tables (budsim.core.kernels.grid.LatencyGrid):
      latencies are made non-decreasing along each size axis (m, batch, sequence length, tokens,
      bytes) by lowering a point to the fastest larger size. This removes first-run JIT and tile-
      choice outliers (about 1-3 % of GEMM rows are > 1.5x slower than a larger m of the same n, k)
      but also lowers noisy flat stretches to their minimum (a few % on small GEMMs); the stored
      values are the measurements as they are.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from budsim.core.kernels.artefact import (  # noqa: E402
    EngineTables,
    file_name,
    sha256_file,
    write_npz,
)
from budsim.core.kernels.families import FAMILIES  # noqa: E402
from budsim.core.kernels.grid import GridTable  # noqa: E402
from budsim.core.kernels.systems import ENGINES, SYSTEMS  # noqa: E402

INVENTORY = Path("kernels/aiconfigurator/INVENTORY.csv")
MAX_FILE_BYTES = 5 * 1024 * 1024

# parquet table name -> artefact family
TABLE_FAMILY = {
    "gemm_perf.parquet": "gemm",
    "context_attention_perf.parquet": "context_attention",
    "generation_attention_perf.parquet": "generation_attention",
    "moe_perf.parquet": "moe",
    "context_mla_perf.parquet": "mla_context",
    "generation_mla_perf.parquet": "mla_generation",
    "mla_context_module_perf.parquet": "mla_context_module",
    "mla_generation_module_perf.parquet": "mla_generation_module",
    "custom_allreduce_perf.parquet": "allreduce",
    "moe_a2a_perf.parquet": "moe_a2a",
    "wideep_deepep_ll_perf.parquet": "moe_a2a",
    "wideep_deepep_normal_perf.parquet": "moe_a2a",
    "nccl_perf.parquet": "nccl",
}
KV_CODE = {"bfloat16": 0, "fp8": 1}


@dataclass
class Source:
    path: str  # relative to the data dir
    system: str
    family: str
    framework: str
    version: str
    table: str
    selection: str
    rows: int


def _codes(values: pd.Series, vocab: Sequence[str]) -> pd.Series:
    return values.map({name: i for i, name in enumerate(vocab)})


def _clean(df: pd.DataFrame) -> pd.DataFrame:
    lat = pd.to_numeric(df["latency"], errors="coerce")
    return df[lat.notna() & (lat > 0)].assign(latency=lat)


def _prefer_matching_compute(df: pd.DataFrame, compute_col: str, cell: list[str]) -> pd.DataFrame:
    """Per cell: an fp8 attention kernel for an fp8 cache where measured, else the bf16 kernel."""
    match = (df[compute_col] == df["kv_cache_dtype"]).astype(int)
    df = df.assign(_rank=-match)
    best = df.groupby(cell, sort=False)["_rank"].transform("min")
    return df[df["_rank"] == best].drop(columns="_rank")


def _prefer_common_source(df: pd.DataFrame, cell: list[str]) -> pd.DataFrame:
    """Per cell: rows of the table's most frequent kernel source among those that measured it."""
    if "kernel_source" not in df or df["kernel_source"].nunique() < 2:
        return df
    freq = df["kernel_source"].value_counts()
    rank = df["kernel_source"].map({s: -int(n) for s, n in freq.items()})
    df = df.assign(_rank=rank)
    best = df.groupby(cell, sort=False)["_rank"].transform("min")
    return df[df["_rank"] == best].drop(columns="_rank")


Shape = tuple[int, int, int, int]  # MoE (hidden, inter, topk, experts)


def nongated_shapes(frames: list[tuple[Source, pd.DataFrame]]) -> frozenset[Shape]:
    """MoE shapes that a TRT-LLM table measured with non-gated experts (kernel source
    moe_torch_flow_nongated): the Nemotron-3 models, whose experts are up/down with relu2."""
    shapes: set[Shape] = set()
    for src, df in frames:
        if src.family != "moe" or src.framework != "trtllm" or "kernel_source" not in df:
            continue
        rows = df[df["kernel_source"].astype(str).str.contains("nongated")]
        cols = rows[["hidden_size", "inter_size", "topk", "num_experts"]].drop_duplicates()
        shapes.update((int(h), int(i), int(k), int(e)) for h, i, k, e in cols.to_numpy())
    return frozenset(shapes)


def rows_for(
    family: str, df: pd.DataFrame, framework: str = "", nongated: frozenset[Shape] = frozenset()
) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """(key columns, axis columns, latency ms) of one parquet table's usable rows."""
    if family == "moe_a2a":
        return _a2a_rows(df)
    df = _clean(df)
    spec = FAMILIES[family]
    if family == "gemm":
        df = df.assign(dtype=_codes(df["gemm_dtype"], spec.vocab["dtype"])).dropna(subset=["dtype"])
        keys = {"dtype": df["dtype"]}
        axes = {"m": df["m"], "n": df["n"], "k": df["k"]}
    elif family in ("context_attention", "generation_attention"):
        if "window_size" not in df:
            df = df.assign(window_size=0)
        df = df.assign(kv=_codes(df["kv_cache_dtype"], list(KV_CODE))).dropna(subset=["kv"])
        size = "isl" if family == "context_attention" else "step"
        layout = ["num_heads", "num_key_value_heads", "head_dim", "window_size", "kv"]
        cell = [*layout, "batch_size", size]
        df = _prefer_matching_compute(df, "attn_dtype", layout)
        df = _prefer_common_source(df, cell)
        keys = {
            "heads": df["num_heads"],
            "kv_heads": df["num_key_value_heads"],
            "head_dim": df["head_dim"],
            "window": df["window_size"],
            "kv": df["kv"],
        }
        axes = {"batch": df["batch_size"], spec.axis_names[1]: df[size]}
    elif family == "moe":
        df = df.assign(
            dtype=_codes(df["moe_dtype"], spec.vocab["dtype"]),
            dist=_codes(df["distribution"], spec.vocab["dist"]),
        ).dropna(subset=["dtype", "dist"])
        keys = {
            "dtype": df["dtype"],
            "dist": df["dist"],
            "hidden": df["hidden_size"],
            "inter": df["inter_size"],
            "topk": df["topk"],
            "experts": df["num_experts"],
            "tp": df["moe_tp_size"],
            "ep": df["moe_ep_size"],
            "gated": _gated(df, framework, nongated),
        }
        # the curve a kernel label belongs to: the key without its gated label, as measured
        keys["kernel"] = _dominant_kernel(df, {k: v for k, v in keys.items() if k != "gated"})
        axes = {"tokens": df["num_tokens"]}
    elif family.startswith("mla_"):
        df = df.assign(kv=_codes(df["kv_cache_dtype"], list(KV_CODE))).dropna(subset=["kv"])
        context = family.startswith("mla_context")
        size = "isl" if context else "step"
        if family == "mla_generation_module":
            df = df.assign(step=df["step"] - 1)
            df = df[df["step"] > 0]
        keys = {"kv": df["kv"]}
        group = ["kv"]
        if family.endswith("_module"):
            df = df.assign(gemm=_codes(df["gemm_type"], spec.vocab["gemm"])).dropna(subset=["gemm"])
            keys = {"kv": df["kv"], "gemm": df["gemm"]}
            group = ["kv", "gemm"]
        cell = [*group, "num_heads", "batch_size", size]
        df = _prefer_matching_compute(df, "mla_dtype", group)
        df = _prefer_common_source(df, cell)
        keys = {k: df[k] for k in group}
        axes = {"heads": df["num_heads"], "batch": df["batch_size"], spec.axis_names[2]: df[size]}
    elif family == "allreduce":
        if "backend" in df:
            df = df[df["backend"].str.endswith("_graph")]
        keys = {"n": df["num_gpus"]}
        axes = {"bytes": df["message_size"] * 2}
    elif family == "nccl":
        df = df[df["nccl_dtype"] == "half"]
        df = df.assign(op=_codes(df["op_name"], spec.vocab["op"])).dropna(subset=["op"])
        keys = {"op": df["op"], "n": df["num_gpus"]}
        axes = {"bytes": df["message_size"] * 2}
    else:
        raise ValueError(family)
    as_int = {k: v.to_numpy().astype(np.int64) for k, v in keys.items()}
    ax_int = {k: v.to_numpy().astype(np.int64) for k, v in axes.items()}
    return as_int, ax_int, df["latency"].to_numpy(dtype=np.float64)


def _gated(df: pd.DataFrame, framework: str, nongated: frozenset[Shape]) -> pd.Series:
    """1 where the experts were run gated (gate, up, down), 0 where non-gated (up, down)."""
    if framework == "vllm":  # vLLM's collector builds gate+up weights for every model
        return pd.Series(1, index=df.index)
    shape = zip(df["hidden_size"], df["inter_size"], df["topk"], df["num_experts"], strict=True)
    flag = [int((int(h), int(i), int(k), int(e)) not in nongated) for h, i, k, e in shape]
    if "kernel_source" in df:
        flag = [
            0 if "nongated" in str(src) else f
            for f, src in zip(flag, df["kernel_source"], strict=True)
        ]
    return pd.Series(flag, index=df.index)


def _dominant_kernel(df: pd.DataFrame, keys: dict[str, pd.Series]) -> pd.Series:
    """Per MoE key (one curve over tokens, its columns `keys`): a code of the kernel
    implementation that measured most of its rows (crc32 of the table's kernel_source name; 0
    where the table does not name it)."""
    if "kernel_source" not in df:
        return pd.Series(0, index=df.index)
    code = df["kernel_source"].astype(str).map(lambda name: zlib.crc32(name.encode()) & 0x7FFFFFFF)
    frame = pd.DataFrame(keys).assign(code=code)
    group = list(frame.columns[:-1])
    counts = frame.groupby([*group, "code"], sort=True).size().rename("n").reset_index()
    # most rows first, ties to the smallest code: deterministic
    counts = counts.sort_values(
        [*group, "n", "code"], ascending=[True] * len(group) + [False, True]
    )
    best = counts.drop_duplicates(group)[[*group, "code"]]
    return frame[group].merge(best, on=group, how="left")["code"].set_axis(df.index)


A2A_BACKENDS = {  # moe_a2a_perf comm_backend -> DeepEP kernel
    "trtllm_deepep_ll": "low_latency",
    "trtllm_deepep_ht": "normal",
    "deepep_ll": "low_latency",
    "deepep_ht": "normal",
}
A2A_DTYPES = ("bfloat16", "default")  # TRT-LLM also measured fp8 / nvfp4 payloads: not used
DEEPEP_SMS = 20  # DeepEP's default SM count for its normal kernels (SGLang swept 4..24)
GPUS_PER_NODE = 8  # SGLang's DeepEP tables ran on one node of 8 GPUs (EP 8)


def _a2a_rows(df: pd.DataFrame) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """DeepEP dispatch / combine rows of a moe_a2a_perf table (latency in us) or of SGLang's
    wideep_deepep_ll (dispatch_avg_t_us, combine_avg_t_us) / wideep_deepep_normal
    (*_transmit_us + *_notify_us at DEEPEP_SMS SMs) tables; latency stored in ms."""
    spec = FAMILIES["moe_a2a"]
    kernel_code = {name: i for i, name in enumerate(spec.vocab["kernel"])}
    phase_code = {name: i for i, name in enumerate(spec.vocab["phase"])}
    parts: list[pd.DataFrame] = []
    if "comm_backend" in df:
        rows = df[df["comm_backend"].isin(list(A2A_BACKENDS)) & df["comm_dtype"].isin(A2A_DTYPES)]
        rows = _clean(rows)
        parts.append(
            pd.DataFrame(
                {
                    "kernel": rows["comm_backend"].map(A2A_BACKENDS).map(kernel_code),
                    "phase": rows["phase"].map(phase_code),
                    "hidden": rows["hidden_size"],
                    "topk": rows["topk"],
                    "experts": rows["num_experts"],
                    "ep": rows["ep_size"],
                    "tokens": rows["num_tokens"],
                    "latency": rows["latency"] * 1e-3,
                }
            )
        )
    else:
        normal = "dispatch_transmit_us" in df
        if normal:
            df = df[(df["dispatch_sms"] == DEEPEP_SMS) & (df["combine_sms"] == DEEPEP_SMS)]
        for phase in spec.vocab["phase"]:
            if normal:
                us = df[f"{phase}_transmit_us"] + df[f"{phase}_notify_us"]
            else:
                us = df[f"{phase}_avg_t_us"]
            parts.append(
                pd.DataFrame(
                    {
                        "kernel": kernel_code["normal" if normal else "low_latency"],
                        "phase": phase_code[phase],
                        "hidden": df["hidden_size"],
                        "topk": df["num_topk"],
                        "experts": df["num_experts"],
                        "ep": df["node_num"] * GPUS_PER_NODE,
                        "tokens": df["num_token"],
                        "latency": pd.to_numeric(us, errors="coerce") * 1e-3,
                    }
                )
            )
    out = pd.concat(parts, ignore_index=True).dropna()
    out = out[out["latency"] > 0]
    keys = {k: out[k].to_numpy().astype(np.int64) for k in spec.key_names}
    axes = {"tokens": out["tokens"].to_numpy().astype(np.int64)}
    return keys, axes, out["latency"].to_numpy(dtype=np.float64)


def merge_sources(
    family: str,
    frames: list[tuple[Source, pd.DataFrame]],
    nongated: frozenset[Shape] = frozenset(),
) -> tuple[GridTable, list[tuple[Source, int]]]:
    """Grid the rows of the newest table and, for keys it lacks, the older full one."""
    frames = sorted(frames, key=lambda f: f[0].selection != "newest")
    parts: list[tuple[dict[str, Any], dict[str, Any], np.ndarray]] = []
    used: list[tuple[Source, int]] = []
    seen: set[tuple[int, ...]] = set()
    for src, df in frames:
        keys, axes, lat = rows_for(family, df, src.framework, nongated)
        # a key is the same curve whichever kernel measured it (the MoE kernel code is a label)
        ident = [v for k, v in keys.items() if not (family == "moe" and k == "kernel")]
        key_rows = [tuple(row) for row in np.stack(ident, axis=1)]
        keep = np.array([row not in seen for row in key_rows], dtype=bool)
        seen.update(key_rows)
        parts.append(
            (
                {k: v[keep] for k, v in keys.items()},
                {k: v[keep] for k, v in axes.items()},
                lat[keep],
            )
        )
        # a SGLang DeepEP row holds both phases: two stored cells per source row
        per_row = 2 if family == "moe_a2a" and "comm_backend" not in df else 1
        used.append((src, int(keep.sum()) // per_row))
    key_cols = {k: np.concatenate([p[0][k] for p in parts]) for k in parts[0][0]}
    axis_cols = {k: np.concatenate([p[1][k] for p in parts]) for k in parts[0][1]}
    lat = np.concatenate([p[2] for p in parts])
    return GridTable.from_rows(key_cols, axis_cols, lat), used


def read_inventory(data: Path) -> list[Source]:
    inv = pd.read_csv(data / INVENTORY)
    out = []
    for row in inv.itertuples(index=False):
        if row.table not in TABLE_FAMILY or row.selection not in ("newest", "older-full"):
            continue
        out.append(
            Source(
                path=str(row.path),
                system=str(row.system),
                family=TABLE_FAMILY[str(row.table)],
                framework=str(row.framework),
                version=str(row.version),
                table=str(row.table),
                selection=str(row.selection),
                rows=int(row.rows),
            )
        )
    return sorted(out, key=lambda s: s.path)


def build(data: Path, out: Path, command: str) -> dict[str, Any]:
    sources = read_inventory(data)
    frames: dict[str, pd.DataFrame] = {}
    source_meta: dict[str, dict[str, Any]] = {}
    for src in sources:
        df = pd.read_parquet(data / src.path)
        frames[src.path] = df
        source_meta[src.path] = {
            "path": src.path,
            "sha256": sha256_file(data / src.path),
            "rows": len(df),
            "rows_used": 0,
            "selection": src.selection,
            "version": src.version,
        }
    nongated = nongated_shapes([(s, frames[s.path]) for s in sources])
    out.mkdir(parents=True, exist_ok=True)
    outputs: list[dict[str, Any]] = []
    total_bytes = 0
    for system in SYSTEMS:
        for engine in ENGINES:
            tables: dict[str, GridTable] = {}
            versions: dict[str, str] = {}
            for family in FAMILIES:
                framework = "nccl" if family == "nccl" else engine
                chosen = [
                    s
                    for s in sources
                    if s.system == system and s.family == family and s.framework == framework
                ]
                if not chosen:
                    continue
                table, used = merge_sources(family, [(s, frames[s.path]) for s in chosen], nongated)
                if table.n_measured == 0:
                    continue
                tables[family] = table.compact()
                versions[family] = "+".join(s.version for s, _ in used)
                for s, n in used:  # NCCL tables serve every engine: count them once
                    source_meta[s.path]["rows_used"] = (
                        max(source_meta[s.path]["rows_used"], n)
                        if family == "nccl"
                        else source_meta[s.path]["rows_used"] + n
                    )
            if not tables:
                continue
            et = EngineTables(system, engine, tables, versions)
            path = out / file_name(system, engine)
            write_npz(path, et.to_arrays())
            size = path.stat().st_size
            total_bytes += size
            if size > MAX_FILE_BYTES:
                raise SystemExit(f"{path} is {size} bytes, over the {MAX_FILE_BYTES} limit")
            outputs.append(
                {
                    "file": path.name,
                    "system": system,
                    "engine": engine,
                    "sha256": sha256_file(path),
                    "bytes": size,
                    "versions": dict(sorted(versions.items())),
                    "cells": {f: t.n_measured for f, t in sorted(tables.items())},
                }
            )
            print(
                f"{path.name}: {size / 1e6:.2f} MB, {sum(t.n_measured for t in tables.values())} cells"
            )
    manifest = {
        "format": 2,
        "built_by": "scripts/build_kernel_tables.py",
        "command": command,
        "data": "NVIDIA AIConfigurator kernel tables (Apache-2.0), " + str(INVENTORY),
        "latency_unit": "ms",
        "sources": [source_meta[s.path] for s in sources],
        "outputs": outputs,
        "total_bytes": total_bytes,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return manifest


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="../shared/data", help="the shared data directory")
    parser.add_argument("--out", default="pretrained/kernels", help="output directory")
    args = parser.parse_args(argv)
    command = "python scripts/build_kernel_tables.py " + " ".join(
        shlex.quote(a) for a in ["--data", args.data, "--out", args.out]
    )
    manifest = build(Path(args.data), Path(args.out), command)
    print(f"total {manifest['total_bytes'] / 1e6:.2f} MB in {len(manifest['outputs'])} files")


if __name__ == "__main__":
    main()
