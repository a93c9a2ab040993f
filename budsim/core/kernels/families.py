"""The kernel families of the artefact: their key columns, size axes, vocabularies, and how a family's
measured latencies become utilisation (SOL on the measuring device / latency) ready for lookups."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..hardware import Device
from .grid import FloatArray, GridTable, fill_holes
from .sol import (
    PROFILES,
    ROUTING_ALPHA,
    comm_sol,
    context_attention_sol,
    gemm_sol,
    generation_attention_sol,
    link_bw_gbs,
    mla_context_sol,
    mla_generation_sol,
    moe_alltoall_sol,
    moe_sol,
    ring_factor,
)

__all__ = [
    "A2A_KERNELS",
    "A2A_PHASES",
    "FAMILIES",
    "KV_DTYPES",
    "Family",
    "comm_terms",
    "log_util",
    "moe_overhead",
]

# Fixed vocabularies: string key columns are stored as indices into these.
GEMM_DTYPES = ("bfloat16", "fp8", "fp8_block", "nvfp4", "sq", "int8_wo", "int4_wo")
MOE_DTYPES = (
    "bfloat16",
    "fp8",
    "fp8_block",
    "nvfp4",
    "int4_wo",
    "w4a16_mxfp4",
    "w4a8_mxfp4_mxfp8",
)
KV_DTYPES = ("bf16", "fp8")
KV_BYTES = (2.0, 1.0)
DISTRIBUTIONS = ("balanced", "power_law_1.01", "power_law_1.2")
COLLECTIVES = ("all_reduce", "all_gather", "reduce_scatter", "alltoall")
A2A_KERNELS = ("low_latency", "normal")  # DeepEP low-latency / normal (high-throughput) kernels
A2A_PHASES = ("dispatch", "combine")
MLA_GEMMS = ("bfloat16", "fp8_block", "nvfp4")


@dataclass(frozen=True)
class Family:
    name: str
    key_names: tuple[str, ...]
    axis_names: tuple[str, ...]
    vocab: dict[str, tuple[str, ...]]  # key column -> names of its codes


FAMILIES: dict[str, Family] = {
    f.name: f
    for f in (
        Family("gemm", ("dtype",), ("m", "n", "k"), {"dtype": GEMM_DTYPES}),
        Family(
            "context_attention",
            ("heads", "kv_heads", "head_dim", "window", "kv"),
            ("batch", "isl"),
            {"kv": KV_DTYPES},
        ),
        Family(
            "generation_attention",
            ("heads", "kv_heads", "head_dim", "window", "kv"),
            ("batch", "ctx"),
            {"kv": KV_DTYPES},
        ),
        Family(
            "moe",
            ("dtype", "dist", "hidden", "inter", "topk", "experts", "tp", "ep", "gated", "kernel"),
            ("tokens",),
            {"dtype": MOE_DTYPES, "dist": DISTRIBUTIONS},
        ),
        Family("mla_context", ("kv",), ("heads", "batch", "isl"), {"kv": KV_DTYPES}),
        Family("mla_generation", ("kv",), ("heads", "batch", "ctx"), {"kv": KV_DTYPES}),
        Family(
            "mla_context_module",
            ("kv", "gemm"),
            ("heads", "batch", "isl"),
            {"kv": KV_DTYPES, "gemm": MLA_GEMMS},
        ),
        Family(
            "mla_generation_module",
            ("kv", "gemm"),
            ("heads", "batch", "ctx"),
            {"kv": KV_DTYPES, "gemm": MLA_GEMMS},
        ),
        Family(
            "moe_a2a",
            ("kernel", "phase", "hidden", "topk", "experts", "ep"),
            ("tokens",),
            {"kernel": A2A_KERNELS, "phase": A2A_PHASES},
        ),
        Family("allreduce", ("n",), ("bytes",), {}),
        Family("nccl", ("op", "n"), ("bytes",), {"op": COLLECTIVES}),
    )
}


def _col(table: GridTable, name: str) -> FloatArray:
    """A key column shaped to broadcast against the table's grid (keys first)."""
    values = table.column(name).astype(np.float64)
    return values.reshape((-1,) + (1,) * len(table.axes))


def _ax(table: GridTable, i: int) -> FloatArray:
    shape = [1] * (1 + len(table.axes))
    shape[1 + i] = -1
    return table.axes[i].astype(np.float64).reshape(shape)


def _by_code(codes: FloatArray, values: tuple[float, ...]) -> FloatArray:
    return np.asarray(values, dtype=np.float64)[codes.astype(np.int64)]


def source_sol(family: str, table: GridTable, device: Device) -> FloatArray:
    """SOL time (s) of every cell of `table` on `device`, shape (n_keys, *axes)."""
    if family == "gemm":
        out = np.empty(table.latency_ms.shape)
        for i, code in enumerate(table.column("dtype")):
            prof = PROFILES[GEMM_DTYPES[code]]
            out[i] = gemm_sol(_ax(table, 0)[0], _ax(table, 1)[0], _ax(table, 2)[0], prof, device)
        return out
    if family in ("context_attention", "generation_attention"):
        attn = context_attention_sol if family == "context_attention" else generation_attention_sol
        kv = _by_code(_col(table, "kv"), KV_BYTES)
        return attn(
            _ax(table, 0),
            _ax(table, 1),
            _col(table, "heads"),
            _col(table, "kv_heads"),
            _col(table, "head_dim"),
            _col(table, "window"),
            kv,
            device,
        )
    if family == "moe":
        profiles = [PROFILES[d] for d in MOE_DTYPES]
        codes = _col(table, "dtype")
        return moe_sol(
            _ax(table, 0),
            _col(table, "hidden"),
            _col(table, "inter"),
            _col(table, "topk"),
            _col(table, "experts"),
            _col(table, "tp"),
            _col(table, "ep"),
            _by_code(codes, tuple(p.act_bytes for p in profiles)),
            _by_code(codes, tuple(p.weight_bytes for p in profiles)),
            _by_code(codes, tuple(p.flops_per_s(device) for p in profiles)),
            device,
            alpha=_by_code(_col(table, "dist"), ROUTING_ALPHA),
            gated=_col(table, "gated") > 0,
        )
    if family.startswith("mla_"):
        mla = mla_context_sol if family.startswith("mla_context") else mla_generation_sol
        out = np.empty(table.latency_ms.shape)
        module = family.endswith("_module")
        for i in range(len(table.keys)):
            kv_bytes = KV_BYTES[table.column("kv")[i]]
            gemm = PROFILES[MLA_GEMMS[table.column("gemm")[i]]] if module else None
            out[i] = mla(
                _ax(table, 1)[0], _ax(table, 2)[0], _ax(table, 0)[0], kv_bytes, gemm, device
            )
        return out
    if family == "moe_a2a":
        return moe_alltoall_sol(
            _ax(table, 0), _col(table, "hidden"), _col(table, "topk"), _col(table, "ep"), device
        )
    if family in ("allreduce", "nccl"):
        latency, efficiency = comm_terms(family, table, device)
        out = np.empty(table.latency_ms.shape)
        for i, (op, n) in enumerate(_comm_keys(family, table)):
            size = table.axes[0].astype(np.float64)
            out[i] = comm_sol(op, size, n, device, latency[i], efficiency[i])
        return out
    raise ValueError(f"unknown kernel family {family!r}")


def _comm_keys(family: str, table: GridTable) -> list[tuple[str, int]]:
    """(collective, GPU count) of every key of a communication table."""
    counts = [int(n) for n in table.column("n")]
    if family == "allreduce":
        return [("all_reduce", n) for n in counts]
    return [(COLLECTIVES[c], n) for c, n in zip(table.column("op"), counts, strict=True)]


def comm_terms(family: str, table: GridTable, device: Device) -> tuple[FloatArray, FloatArray]:
    """Per key of a communication table (one collective over one GPU count): its latency term,
    the time of its smallest messages (min over sizes, s), and its bus bandwidth as a fraction of
    the link (max over sizes of ring_factor x bytes / time, over link_bw_gbs). Measured, not
    fitted: the two ends of the curve, which the alpha-beta SOL of that count then spans."""
    lat = table.latency_ms * 1e-3
    size = table.axes[0].astype(np.float64)
    keys = _comm_keys(family, table)
    factor = np.array([float(ring_factor(op, n)) for op, n in keys])
    link = np.array([float(link_bw_gbs(n, device)) * 1e9 for _, n in keys])
    with np.errstate(invalid="ignore"):
        latency = np.nanmin(np.where(np.isnan(lat), np.inf, lat), axis=1)
        busbw = np.nanmax(np.where(np.isnan(lat), 0.0, factor[:, None] * size / lat), axis=1)
    latency = np.where(np.isfinite(latency), latency, device.scaleup_latency_us * 1e-6)
    efficiency = np.where(busbw > 0, busbw / link, 1.0)
    return latency, efficiency


def log_util(family: str, table: GridTable, device: Device) -> FloatArray:
    """log(utilisation) of every cell, holes filled (see grid.fill_holes), shape (n_keys, *axes).

    The measured latencies are used as they are; outliers (a first-run compile, a poor tile choice)
    are lowered when a query reads them, by the monotone envelope of grid.LatencyGrid."""
    values = np.log(source_sol(family, table, device)) - np.log(table.latency_ms * 1e-3)
    return fill_holes(values, [np.log(a.astype(np.float64)) for a in table.axes])


def moe_overhead(table: GridTable, device: Device) -> tuple[FloatArray, FloatArray]:
    """Per MoE key: the fixed overhead (s) and log utilisation of the rest, shape (n_keys, tokens).

    A MoE layer is several kernels (routing, permutation, the grouped GEMMs, the weighted sum) whose
    launch and setup cost does not shrink with the work: at high EP and few tokens it is most of the
    time. Per measured curve the overhead is the largest constant that leaves every point at least
    its SOL (min over tokens of latency - SOL, >= 0), and utilisation is SOL / (latency - overhead),
    holes filled along tokens as in `log_util`."""
    sol = source_sol("moe", table, device)
    lat = table.latency_ms * 1e-3
    with np.errstate(invalid="ignore"):
        floor = np.nanmin(np.where(np.isnan(lat), np.inf, lat - sol), axis=1)
    floor = np.where(np.isfinite(floor), np.maximum(floor, 0.0), 0.0)
    values = np.log(sol) - np.log(lat - floor[:, None])
    return floor, fill_holes(values, [np.log(a.astype(np.float64)) for a in table.axes])
