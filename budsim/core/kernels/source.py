"""`KernelSource`: operator latencies for one device and engine, read from measured kernel tables.

How a latency is produced (every family):

1. The measured latencies of the source system (the GPU that ran the tables) become utilisation,
   util = SOL_source / latency, on the table's grid; unmeasured cells are filled from neighbours in
   log space (families.log_util).
2. A query shape the table lacks borrows utilisation: GEMM (n, k) and MLA head counts by
   interpolation on the grid, attention head layouts and MoE shapes from the nearest measured keys.
3. On the target device, latency = SOL_target / util at the grid nodes, made non-decreasing in
   every size axis and interpolated in log-log between nodes; beyond the grid utilisation is held at
   the edge, so latency extrapolates along the target's roofline (grid.LatencyGrid).

Step 3 is also the device scaling: a B300 query is answered by the B200 tables with B300 peaks and
bandwidth, an H100 PCIe query by the H100 SXM tables, and so on (systems.system_for).

All methods take sizes as scalars or arrays (broadcast together) and return seconds as float64
arrays; sizes <= 0 cost 0. The node latencies of each distinct query configuration (format, shape,
heads, ...) are cached, so a repeated configuration costs one interpolation.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from ..hardware import Device
from .artefact import EngineTables, artefact_dir, load_engine_tables
from .families import (
    A2A_KERNELS,
    A2A_PHASES,
    COLLECTIVES,
    DISTRIBUTIONS,
    GEMM_DTYPES,
    KV_BYTES,
    KV_DTYPES,
    MLA_GEMMS,
    MOE_DTYPES,
)
from .grid import FloatArray, LatencyGrid, multilinear
from .neighbours import a2a_neighbours, attention_neighbours, moe_neighbours
from .sol import (
    PROFILES,
    ROUTING_ALPHA,
    Profile,
    comm_sol,
    context_attention_sol,
    gemm_sol,
    generation_attention_sol,
    mla_context_sol,
    mla_generation_sol,
    moe_alltoall_sol,
    moe_sol,
)
from .systems import ENGINES, engine_order, source_device, system_for

__all__ = ["GEMM_FORMATS", "KernelSource", "TableProvider", "kernel_source"]

TableProvider = Callable[[str, str], EngineTables | None]
Sol = Callable[..., FloatArray]

GEMM_FORMATS = ("bf16", "fp8", "fp8_block", "int8", "int4", "nvfp4", "mxfp4")
# The measured weight-only tables that give the int4 / w8a16 utilisation ratios to bf16.
RATIO_SYSTEM, RATIO_ENGINE = "a100_sxm", "trtllm"
_MAX_CACHED = 8192  # query configurations kept per KernelSource


@dataclass(frozen=True)
class _Plan:
    """Which table format answers a requested format (GEMM or MoE)."""

    tables: EngineTables
    dtype: str  # table format whose utilisation is used
    profile: Profile  # how the requested format moves bytes and flops on the target
    note: str  # what was borrowed ("" if nothing)
    ratio: str | None = None  # GEMM: weight-only table whose util ratio to bf16 scales the util
    dist: int = 0  # MoE: routing distribution code used


def _arrays(*values: ArrayLike) -> tuple[list[FloatArray], np.ndarray]:
    """Broadcast float arrays with sizes <= 0 replaced by 1, and the mask of positive entries."""
    arrays = np.broadcast_arrays(*(np.asarray(v, dtype=np.float64) for v in values))
    positive = np.ones(arrays[0].shape, dtype=bool)
    for a in arrays:
        positive &= a > 0
    return [np.where(positive, a, 1.0) for a in arrays], positive


def _fmt(fmt: str) -> str:
    key = fmt.strip().lower()
    key = {"fp16": "bf16", "bfloat16": "bf16", "float16": "bf16", "w8a8": "int8"}.get(key, key)
    if key not in GEMM_FORMATS:
        raise ValueError(f"unknown weight format {fmt!r}; one of fp16, {', '.join(GEMM_FORMATS)}")
    return key


def _kv(kv_dtype: str) -> int:
    key = kv_dtype.strip().lower()
    key = {"auto": "bf16", "bfloat16": "bf16", "fp16": "bf16", "float16": "bf16"}.get(key, key)
    if key.startswith("fp8"):
        key = "fp8"
    if key not in KV_DTYPES:
        raise ValueError(f"unknown KV cache dtype {kv_dtype!r}; bf16 or fp8")
    return KV_DTYPES.index(key)


class KernelSource:
    """Measured-kernel latencies of `engine` on `device` (see the module docstring).

    Attributes: `basis` (what answers, human-readable), `system` (the measured system), `scaled`
    (whether the device differs from the one that measured the tables), `notes` (families taken from
    another engine's tables on the same system), `device`, `engine`.

    `provider(system, engine)` supplies the tables (the shipped artefact for `kernel_source`; the
    cross-validation passes tables with groups held out).
    """

    def __init__(self, device: Device, engine: str, provider: TableProvider) -> None:
        system = system_for(device)
        if system is None:
            raise ValueError(f"no NVIDIA kernel tables apply to {device.id} ({device.kind})")
        if engine not in ENGINES:
            raise ValueError(f"no kernel tables for engine {engine!r}; one of {', '.join(ENGINES)}")
        self.device = device
        self.engine = engine
        self.system = system
        self.source = source_device(system)
        self.scaled = device != self.source
        self._provider = provider
        self._by_engine = {
            name: tables
            for name in engine_order(engine)
            if (tables := provider(system, name)) is not None
        }
        own = self._by_engine.get(engine)
        if own is None:
            raise ValueError(f"no {engine} kernel tables for {system}")
        self.notes: list[str] = []
        self._family: dict[str, EngineTables] = {}
        groups: dict[str, tuple[str, ...]] = {
            "gemm": ("gemm",),
            "context_attention": ("context_attention",),
            "generation_attention": ("generation_attention",),
            "moe": ("moe",),
            "mla_context": ("mla_context_module", "mla_context"),
            "mla_generation": ("mla_generation_module", "mla_generation"),
            "allreduce": ("allreduce",),
            "nccl": ("nccl",),
            "moe_a2a": ("moe_a2a",),
        }
        for group, families in groups.items():
            found = self._first_with(families)
            if found is None:
                continue
            tables, family = found
            self._family[group] = tables
            if tables.engine != engine:
                self.notes.append(
                    f"{engine} has no {group} tables on {system}: "
                    f"{tables.engine} {tables.versions[family]} {family} used"
                )
        version = own.versions.get("gemm") or next(iter(own.versions.values()))
        basis = f"{system} {engine} {version} kernel tables"
        if self.scaled:
            compute = device.peak_tflops("bf16") / self.source.peak_tflops("bf16")
            memory = device.memory_bw_gbs / self.source.memory_bw_gbs
            basis += f" scaled to {device.id} (compute x{compute:.2f}, memory x{memory:.2f})"
        self.basis = basis
        self._cache: dict[tuple[Any, ...], Any] = {}

    # ------------------------------------------------------------------------------ helpers

    def _first_with(self, families: tuple[str, ...]) -> tuple[EngineTables, str] | None:
        """The first engine (own first) with any of `families`, and which one (in that order)."""
        for name in engine_order(self.engine):
            tables = self._by_engine.get(name)
            if tables is None:
                continue
            for family in families:
                if family in tables.tables:
                    return tables, family
        return None

    def _cached(self, key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
        value = self._cache.get(key)
        if value is None:
            if len(self._cache) >= _MAX_CACHED:
                self._cache.clear()
            value = self._cache[key] = make()
        return value

    @staticmethod
    def _read(grid: LatencyGrid, sol: Sol, sizes: tuple[ArrayLike, ...]) -> FloatArray:
        arrays, positive = _arrays(*sizes)
        return np.where(positive, grid(sol, arrays), 0.0)

    def basis_for(self, op: str, fmt: str | None = None) -> str:
        """`basis` plus what a lookup of `op` ("gemm" | "moe") in `fmt` borrows, e.g.
        basis_for("gemm", "int8") -> "h100_sxm vllm 0.24.0 kernel tables; int8 from fp8 util"."""
        note = ""
        if op == "gemm" and fmt is not None:
            note = self._gemm_plan(_fmt(fmt)).note
        elif op == "moe" and fmt is not None:
            note = self._moe_plan(_fmt(fmt), "power_law").note
        return "; ".join([self.basis, note] if note else [self.basis])

    # --------------------------------------------------------------------------------- GEMM

    def _gemm_plan(self, fmt: str) -> _Plan:
        plan: _Plan = self._cached(("gemm_plan", fmt), lambda: self._resolve_gemm(fmt))
        return plan

    def _resolve_gemm(self, fmt: str) -> _Plan:
        """Which table's utilisation answers a format on this device (docstring of `gemm`)."""
        dev = self.device
        if fmt == "nvfp4" and not dev.supports("fp4"):
            raise ValueError(f"{dev.id} has no fp4 tensor cores; nvfp4 GEMMs do not run on it")
        ratio_rule: tuple[str, str] | None = None  # (weight-only table, label)
        math_dtype = _MATH_DTYPE.get(fmt)
        if math_dtype is not None and not dev.supports(math_dtype):
            ladder = [("int8_wo", "w8a16")]
            ratio_rule = ("int8_wo", f"{fmt} as w8a16 (no {math_dtype} math on {dev.id})")
        elif fmt == "mxfp4" and not dev.supports("fp4"):
            ladder = [("int4_wo", "mxfp4_w4a16")]
            ratio_rule = ("int4_wo", "mxfp4 as w4a16 (no fp4 math)")
        elif fmt == "int4":
            ladder = [("int4_wo", "int4")]
            ratio_rule = ("int4_wo", "int4")
        else:
            ladder = _GEMM_LADDERS[fmt]
        for name in engine_order(self.engine):
            tables = self._by_engine.get(name)
            if tables is None or "gemm" not in tables.tables:
                continue
            codes = set(tables.tables["gemm"].column("dtype").tolist())
            for dtype, profile in ladder:
                if GEMM_DTYPES.index(dtype) not in codes:
                    continue
                parts = [] if dtype == _GEMM_NATIVE.get(fmt) else [f"{fmt} from {dtype} util"]
                if name != self.engine:
                    parts.append(f"({name} {tables.versions['gemm']} table)")
                return _Plan(tables, dtype, PROFILES[profile], " ".join(parts))
        own = self._family["gemm"]
        profile = ladder[0][1]
        if ratio_rule is not None:
            ratio, label = ratio_rule
            note = f"{label} from bf16 util x {RATIO_SYSTEM} {ratio}/bf16 util ratio"
            return _Plan(own, "bfloat16", PROFILES[profile], note, ratio=ratio)
        return _Plan(own, "bfloat16", PROFILES[profile], f"{fmt} from bf16 util")

    def _ratio_grid(self, ratio: str) -> tuple[FloatArray, list[FloatArray]] | None:
        """log of the measured utilisation ratio (weight-only table / bf16) of A100 TRT-LLM over
        (m, n, k), capped at 1: dequantising weights never makes the math faster than bf16."""
        ref = self._provider(RATIO_SYSTEM, RATIO_ENGINE)
        if ref is None or "gemm" not in ref.tables:
            return None
        table = ref.tables["gemm"]
        codes = table.column("dtype").tolist()
        if GEMM_DTYPES.index(ratio) not in codes:
            return None
        util = ref.log_util("gemm")
        grid = np.minimum(
            util[codes.index(GEMM_DTYPES.index(ratio))]
            - util[codes.index(GEMM_DTYPES.index("bfloat16"))],
            0.0,
        )
        return grid, [np.log(a.astype(np.float64)) for a in table.axes]

    def _gemm_grid(self, fmt: str, n: int, k: int) -> tuple[LatencyGrid, Sol]:
        plan = self._gemm_plan(fmt)
        table = plan.tables.tables["gemm"]
        row = table.column("dtype").tolist().index(GEMM_DTYPES.index(plan.dtype))
        util = plan.tables.log_util("gemm")[row]
        m_nodes = table.axes[0].astype(np.float64)
        axes_nk = [np.log(table.axes[i].astype(np.float64)) for i in (1, 2)]
        node_log_util = multilinear(util, axes_nk, [math.log(n), math.log(k)])
        if plan.ratio is not None:
            ratio = self._cached(("ratio", plan.ratio), lambda: self._ratio_grid(plan.ratio or ""))
            if ratio is not None:
                grid, axes = ratio
                node_log_util = node_log_util + multilinear(
                    grid, axes, [np.log(m_nodes), math.log(n), math.log(k)]
                )
        profile, dev = plan.profile, self.device

        def sol(m: FloatArray) -> FloatArray:
            return gemm_sol(m, n, k, profile, dev)

        return LatencyGrid.build((m_nodes,), node_log_util, sol), sol

    def gemm(self, m: ArrayLike, n: int, k: int, fmt: str) -> FloatArray:
        """y = x @ W^T with W (n x k) in `fmt` and x of `m` rows; seconds.

        Formats: bf16 (= fp16), fp8 (per-tensor scales), fp8_block (128x128 blocks), int8 (w8a8
        SmoothQuant), int4 (w4a16 AWQ/GPTQ), nvfp4, mxfp4. Where the tables lack a format:
        fp8_block <-> fp8 share utilisation; int8 uses the measured SmoothQuant table (A100 TRT-LLM)
        else fp8's utilisation at the int8 peak; int4 uses bf16's utilisation times the measured
        int4_wo/bf16 utilisation ratio of A100 TRT-LLM (by m, n, k; capped at 1) with 0.53 bytes
        per weight (the A100 TRT-LLM int4_wo table itself answers there); mxfp4 runs as nvfp4 on
        devices with fp4 math, else by the int4 rule; fp8/int8 on a device without that math (A100
        has no fp8, A10G) run as w8a16 by the same rule with the int8_wo ratio. A format missing in
        the engine's table is taken from another engine's table on the same system before any of
        these rules. nvfp4 on a device without fp4 raises ValueError. n, k beyond the measured grid
        hold utilisation (LM heads). `basis_for("gemm", fmt)` names the borrowing.
        """
        fmt = _fmt(fmt)
        grid, sol = self._cached(("gemm", fmt, n, k), lambda: self._gemm_grid(fmt, n, k))
        return self._read(grid, sol, (m,))

    # ---------------------------------------------------------------------------- attention

    def _attention_grid(
        self, family: str, heads: int, kv_heads: int, head_dim: int, kv: int, window: int
    ) -> tuple[LatencyGrid, Sol]:
        tables = self._family.get(family)
        if tables is None:
            raise ValueError(f"no {family} tables for {self.system}")
        table = tables.tables[family]
        idx, weights, _ = attention_neighbours(table, heads, kv_heads, head_dim, kv, window)
        # Transfer at equal work: a neighbour layout with fewer parallel heads (KV heads in decode,
        # query heads in prefill) runs as fast as this one at a proportionally larger batch.
        parallel = "kv_heads" if family == "generation_attention" else "heads"
        mine = kv_heads if family == "generation_attention" else heads
        logs = [np.log(a.astype(np.float64)) for a in table.axes]
        batch, length = np.meshgrid(*logs, indexing="ij")
        util = tables.log_util(family)
        node_log_util = np.zeros(batch.shape)
        for i, w in zip(idx, weights, strict=True):
            shift = math.log(mine / float(table.column(parallel)[i]))
            node_log_util += w * multilinear(util[i], logs, [batch + shift, length])
        fn = context_attention_sol if family == "context_attention" else generation_attention_sol
        dev, kv_bytes = self.device, KV_BYTES[kv]

        def sol(b: FloatArray, s: FloatArray) -> FloatArray:
            return fn(b, s, heads, kv_heads, head_dim, window, kv_bytes, dev)

        nodes = tuple(a.astype(np.float64) for a in table.axes)
        return LatencyGrid.build(nodes, node_log_util, sol), sol

    def _attention(
        self,
        family: str,
        sizes: tuple[ArrayLike, ArrayLike],
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> FloatArray:
        key = (family, heads, kv_heads, head_dim, _kv(kv_dtype), int(window or 0))
        grid, sol = self._cached(key, lambda: self._attention_grid(*key))
        return self._read(grid, sol, sizes)

    def context_attention(
        self,
        batch: ArrayLike,
        isl: ArrayLike,
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> FloatArray:
        """Causal prefill attention of `batch` fresh prompts of `isl` tokens each; `heads` and
        `kv_heads` per device; `window` > 0 limits each query to that many keys (sliding window).

        An fp8 KV cache uses the fp8 attention kernels where measured (TRT-LLM, SGLang fa3). A head
        layout the table lacks borrows utilisation from the nearest measured layouts: same KV format,
        nearest window (full attention = a 2^20 window), same head dim where measured, then the 4
        nearest by GQA ratio and head count in log2, weighted 1/d^2."""
        return self._attention(
            "context_attention", (batch, isl), heads, kv_heads, head_dim, kv_dtype, window
        )

    def generation_attention(
        self,
        batch: ArrayLike,
        ctx: ArrayLike,
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> FloatArray:
        """One decode step of `batch` sequences, each attending to `ctx` cached tokens (plus its own),
        at most `window` of them when window > 0. Layout transfer as in `context_attention`."""
        return self._attention(
            "generation_attention", (batch, ctx), heads, kv_heads, head_dim, kv_dtype, window
        )

    # ---------------------------------------------------------------------------------- MoE

    def _moe_plan(self, fmt: str, distribution: str) -> _Plan:
        plan: _Plan = self._cached(
            ("moe_plan", fmt, distribution), lambda: self._resolve_moe(fmt, distribution)
        )
        return plan

    def _resolve_moe(self, fmt: str, distribution: str) -> _Plan:
        """Which MoE table format and routing distribution answer `fmt` (docstring of `moe`)."""
        dev = self.device
        if fmt == "nvfp4" and not dev.supports("fp4"):
            raise ValueError(f"{dev.id} has no fp4 tensor cores; nvfp4 MoE does not run on it")
        math_dtype = _MATH_DTYPE.get(fmt)
        if math_dtype is not None and not dev.supports(math_dtype):
            ladder = [("int4_wo", "w8a16"), ("w4a16_mxfp4", "w8a16")]
        elif fmt == "mxfp4" and dev.supports("fp4"):
            ladder = [("w4a8_mxfp4_mxfp8", "w4a8_mxfp4_mxfp8"), ("nvfp4", "mxfp4")]
        else:
            ladder = _MOE_LADDERS[fmt]
        ladder = [*ladder, ("bfloat16", _MOE_LAST_RESORT[fmt])]
        dist_order = _distribution_order(distribution)
        for name in engine_order(self.engine):
            tables = self._by_engine.get(name)
            if tables is None or "moe" not in tables.tables:
                continue
            table = tables.tables["moe"]
            dtypes, dists = table.column("dtype"), table.column("dist")
            for dtype, profile in ladder:
                code = MOE_DTYPES.index(dtype)
                present = [d for d in dist_order if ((dtypes == code) & (dists == d)).any()]
                if not present:
                    continue
                notes = [] if dtype in _MOE_NATIVE[fmt] else [f"{fmt} from {dtype} util"]
                if present[0] != dist_order[0]:
                    notes.append(f"{DISTRIBUTIONS[present[0]]} routing")
                if name != self.engine:
                    notes.append(f"({name} {tables.versions['moe']} table)")
                return _Plan(tables, dtype, PROFILES[profile], " ".join(notes), dist=present[0])
        raise ValueError(f"no MoE tables for {self.system}")

    def _moe_grid(
        self,
        hidden: int,
        inter: int,
        topk: int,
        experts: int,
        moe_tp: int,
        moe_ep: int,
        fmt: str,
        distribution: str,
        gated: bool,
    ) -> tuple[LatencyGrid, Sol]:
        plan = self._moe_plan(fmt, distribution)
        table = plan.tables.tables["moe"]
        cand = np.flatnonzero(
            (table.column("dtype") == MOE_DTYPES.index(plan.dtype))
            & (table.column("dist") == plan.dist)
        )
        shape = {
            "hidden": hidden,
            "inter": inter,
            "topk": topk,
            "experts": experts,
            "gated": int(gated),
        }
        idx, weights = moe_neighbours(table, cand, shape, moe_tp, moe_ep)
        # Transfer at equal tokens per expert: a neighbour with topk', E' sees T * (topk/E) / (topk'/E').
        scale = (topk / experts) / (
            table.column("topk")[idx].astype(np.float64) / table.column("experts")[idx]
        )
        nodes = table.axes[0].astype(np.float64)
        log_nodes = np.log(nodes)
        # the neighbours' fixed overhead, and their utilisation of the rest
        floors, util = plan.tables.moe_overhead()
        offset = float(np.dot(weights, floors[idx]))
        node_log_util = np.zeros(len(nodes))
        for i, w, f in zip(idx, weights, scale, strict=True):
            node_log_util += w * np.interp(log_nodes + math.log(f), log_nodes, util[i])
        profile, dev, alpha = plan.profile, self.device, ROUTING_ALPHA[plan.dist]

        def sol(t: FloatArray) -> FloatArray:
            return moe_sol(
                t,
                hidden,
                inter,
                topk,
                experts,
                moe_tp,
                moe_ep,
                profile.act_bytes,
                profile.weight_bytes,
                profile.flops_per_s(dev),
                dev,
                alpha=alpha,
                gated=gated,
            )

        return LatencyGrid.build((nodes,), node_log_util, sol, offset), sol

    def moe(
        self,
        tokens: ArrayLike,
        hidden: int,
        inter: int,
        topk: int,
        experts: int,
        moe_tp: int,
        moe_ep: int,
        fmt: str,
        distribution: str = "power_law",
        gated: bool = True,
    ) -> FloatArray:
        """The routed-expert kernel of one MoE layer on one rank; seconds.

        `tokens`: the tokens entering this rank's MoE kernel, as AIConfigurator's tables count them
        (`num_tokens`): the kernel receives all `tokens` hidden states with router logits over all
        `experts`, holds experts/moe_ep experts with inter/moe_tp columns each, and computes only the
        token-expert pairs routed to its experts. So with attention TP pass the batch's tokens; with
        attention data parallelism the tokens of the DP ranks are gathered before the experts, so
        pass tokens_per_dp_rank x attention_dp_size (AIConfigurator does the same). `distribution`:
        "balanced", "power_law_1.01", "power_law_1.2" (skewed routing, rank 0 holds the hottest
        experts and is the slow rank that is timed), or "power_law" = 1.2 where measured, else 1.01,
        else balanced.

        Formats as `gemm`, with mxfp4 = w4a8_mxfp4_mxfp8 (Blackwell) or w4a16_mxfp4 (else), int4 =
        int4_wo (Marlin) else w4a16_mxfp4, int8 = fp8 utilisation at the int8 peak, fp8 on a device
        without fp8 = the weight-only 4-bit table at 1 byte per weight; failing all, bf16
        utilisation. Another engine's table on the same system is tried before bf16.

        Model (sol.moe_sol, families.moe_overhead): latency = a fixed overhead + SOL / utilisation.
        The SOL is that of the timed rank under the benchmark's routing: its token-expert pairs and
        the experts they touch (balanced: a 1/ep share, at least one pair; power law: the most
        loaded rank, sol.moe_rank_load), the GEMM flops or the touched experts' weights, plus each
        pair's rows through permutation, activation and the weighted sum. `gated` False: experts
        with up and down matrices only (relu2, Nemotron-3), else gate, up and down. A shape the
        tables lack borrows the overhead and the utilisation of the 2 nearest measured shapes of
        that format that ran the same kernel as the nearest one (log2 distance over
        neighbours.MOE_FEATURES, weights 1/d^2), at equal tokens per expert (tokens x topk /
        experts). `basis_for("moe", fmt)` names the borrowing.
        """
        fmt = _fmt(fmt)
        key = ("moe", hidden, inter, topk, experts, moe_tp, moe_ep, fmt, distribution, bool(gated))
        grid, sol = self._cached(key, lambda: self._moe_grid(*key[1:]))
        return self._read(grid, sol, (tokens,))

    # ---------------------------------------------------------------------------------- MLA

    def _mla_grid(self, phase: str, heads: int, kv: int, fmt: str) -> tuple[LatencyGrid, Sol, bool]:
        found = self._first_with((f"mla_{phase}_module", f"mla_{phase}"))
        if found is None:
            raise ValueError(f"no MLA tables for {self.system}")
        tables, family = found
        table = tables.tables[family]
        module = family.endswith("_module")
        mask = np.ones(len(table.keys), dtype=bool)
        if (table.column("kv") == kv).any():
            mask &= table.column("kv") == kv
        gemm: Profile | None = None
        if module:
            order = [_MLA_GEMM.get(fmt, "fp8_block"), "fp8_block", "bfloat16"]
            codes = table.column("gemm")
            name = next(g for g in order if ((codes == MLA_GEMMS.index(g)) & mask).any())
            mask &= codes == MLA_GEMMS.index(name)
            gemm = PROFILES[name]
        util = tables.log_util(family)[int(np.flatnonzero(mask)[0])]
        heads_log = [np.log(table.axes[0].astype(np.float64))]
        node_log_util = multilinear(np.moveaxis(util, 0, -1), heads_log, [math.log(heads)])
        fn = mla_context_sol if phase == "context" else mla_generation_sol
        dev, kv_bytes = self.device, KV_BYTES[kv]

        def sol(b: FloatArray, s: FloatArray) -> FloatArray:
            return fn(b, s, heads, kv_bytes, gemm, dev)

        nodes = (table.axes[1].astype(np.float64), table.axes[2].astype(np.float64))
        return LatencyGrid.build(nodes, node_log_util, sol), sol, module

    def _mla(
        self, phase: str, sizes: tuple[ArrayLike, ArrayLike], heads: int, kv_dtype: str, fmt: str
    ) -> tuple[FloatArray, bool]:
        key = (phase, heads, _kv(kv_dtype), _fmt(fmt))
        grid, sol, module = self._cached(("mla", *key), lambda: self._mla_grid(*key))
        return self._read(grid, sol, sizes), module

    def mla_context(
        self, batch: ArrayLike, isl: ArrayLike, heads: int, kv_dtype: str, fmt: str
    ) -> tuple[FloatArray, bool]:
        """DeepSeek-V3-style MLA prefill of one layer: `batch` prompts of `isl` tokens, `heads` local
        heads. Returns (seconds, includes_projections).

        Where the engine has module tables (mla_context_module_perf: TRT-LLM on H100/H200/B200, vLLM
        on H100/H200/B200/L40S) the time is the whole attention block, True: fused q_a/kv_a down
        projection, q_b, kv_b, the attention kernel and o_proj, GEMMs in `fmt` (bf16/int4 ->
        bf16; fp8/fp8_block/int8 -> fp8_block; nvfp4/mxfp4 -> nvfp4 where measured, else
        fp8_block). Otherwise (SGLang; A100 and L40S TRT-LLM) it is the attention kernel alone
        (context_mla_perf), False: add the projection GEMMs with `gemm`. An engine with no MLA
        tables borrows another engine's (see `notes`). Dimensions are DeepSeek-V3's (hidden 7168,
        q_lora 1536, kv_lora 512, rope 64, nope 128, v 128); head counts between the measured
        1..128 interpolate."""
        return self._mla("context", (batch, isl), heads, kv_dtype, fmt)

    def mla_generation(
        self, batch: ArrayLike, ctx: ArrayLike, heads: int, kv_dtype: str, fmt: str
    ) -> tuple[FloatArray, bool]:
        """DeepSeek-V3-style MLA decode step of one layer, `batch` sequences with `ctx` cached tokens.
        Module tables (mla_generation_module_perf, True) include the projections and the absorbed
        per-head BMMs; attention tables (generation_mla_perf, False) the attention kernel only. As
        `mla_context` otherwise."""
        return self._mla("generation", (batch, ctx), heads, kv_dtype, fmt)

    # ----------------------------------------------------------------------- communication

    def _comm_grid(self, family: str, op: str, n: int) -> tuple[LatencyGrid, Sol]:
        tables = self._family.get(family)
        if tables is None:
            raise ValueError(f"no {family} tables for {self.system}")
        table = tables.tables[family]
        counts = table.column("n")
        mask = np.ones(len(counts), dtype=bool)
        if family == "nccl":
            mask &= table.column("op") == COLLECTIVES.index(op)
        if not mask.any():
            raise ValueError(f"no {op} measurements for {self.system}")
        # Each measured count has an alpha-beta SOL spanning its own curve: its latency term and
        # its bus bandwidth (families.comm_terms). For n, the latency term is linear in the ring's
        # n - 1 steps and the bus bandwidth a power law in n, both through the two nearest
        # measured counts (interpolated between them, extrapolated beyond). Guards: the latency
        # never below half the smallest measured one; beyond the largest count the bus bandwidth
        # never above the best measured fraction of the link (also across nodes, where the link
        # is the scale-out network). The residual utilisation (the shape of the curve between its
        # two ends: protocol and algorithm switches) is interpolated in log n, held beyond.
        rows = np.flatnonzero(mask)
        order = rows[np.argsort(counts[rows], kind="stable")]
        measured = counts[order].astype(np.float64)
        util = tables.log_util(family)[order]
        t = float(np.interp(math.log(n), np.log(measured), np.arange(len(order), dtype=np.float64)))
        lo = min(int(t), len(order) - 1)
        hi = min(lo + 1, len(order) - 1)
        frac = t - lo
        node_log_util = (1.0 - frac) * util[lo] + frac * util[hi]
        latency, efficiency = tables.comm_terms(family)
        latency, efficiency = latency[order], efficiency[order]
        lat_s = max(_trend(measured - 1.0, latency, n - 1.0), 0.5 * float(latency.min()))
        eff = math.exp(_trend(np.log(measured), np.log(efficiency), math.log(n)))
        if n > measured[-1]:
            eff = min(eff, float(efficiency.max()))
        dev = self.device
        lat_s *= dev.scaleup_latency_us / self.source.scaleup_latency_us

        def sol(size: FloatArray) -> FloatArray:
            return comm_sol(op, size, n, dev, lat_s, eff)

        nodes = (table.axes[0].astype(np.float64),)
        return LatencyGrid.build(nodes, node_log_util, sol), sol

    def _comm(self, family: str, op: str, nbytes: ArrayLike, n: int) -> FloatArray:
        if n <= 1:
            return np.zeros(np.shape(nbytes))
        grid, sol = self._cached((family, op, n), lambda: self._comm_grid(family, op, n))
        return self._read(grid, sol, (nbytes,))

    def allreduce(self, nbytes: ArrayLike, n: int) -> FloatArray:
        """All-reduce of `nbytes` (the full buffer, bf16) over `n` devices; seconds.

        The engine's own all-reduce as measured under CUDA graphs (vLLM / SGLang custom all-reduce,
        TRT-LLM's AUTO strategy) where its table exists, else NCCL. Message sizes interpolate in
        log-log. A GPU count the table lacks (it measures 2, 4, 8) gets an alpha-beta SOL,
        latency + ring factor 2(n-1)/n x bytes / bus bandwidth, whose latency term is linear in
        n - 1 and whose bus bandwidth (as a fraction of the link: scale-up within a node,
        scale-out beyond devices_per_node) is a power law in n, both through the two nearest
        measured counts; the measured curves' utilisation of their own SOL is interpolated in
        log n (held beyond). n <= 1 costs 0. PCIe systems (L40S) lose bus bandwidth steeply with
        n and are predicted poorly between and beyond counts (benchmarks/kernel_accuracy.md).
        """
        family = "allreduce" if "allreduce" in self._family else "nccl"
        return self._comm(family, "all_reduce", nbytes, n)

    def collective(self, op: str, nbytes: ArrayLike, n: int) -> FloatArray:
        """NCCL all_gather / reduce_scatter / alltoall (or all_reduce) of `nbytes` over `n` devices;
        `nbytes` as nccl-tests counts it: the gathered output of all_gather, the input of
        reduce_scatter, each rank's send buffer of alltoall. Scaling beyond the table as
        `allreduce`."""
        if op not in COLLECTIVES:
            raise ValueError(f"unknown collective {op!r}; one of {', '.join(COLLECTIVES)}")
        return self._comm("nccl", op, nbytes, n)

    # -------------------------------------------------------------------- expert parallelism

    def _a2a_grid(
        self, kernel: int, phase: int, hidden: int, topk: int, experts: int, ep: int
    ) -> tuple[LatencyGrid, Sol]:
        tables = self._family["moe_a2a"]
        table = tables.tables["moe_a2a"]
        cand = np.flatnonzero((table.column("kernel") == kernel) & (table.column("phase") == phase))
        idx, weights = a2a_neighbours(table, cand, hidden, topk, experts, ep)
        util = tables.log_util("moe_a2a")
        node_log_util = np.einsum("i,ij->j", weights, util[idx])
        dev = self.device

        def sol(t: FloatArray) -> FloatArray:
            return moe_alltoall_sol(t, hidden, topk, ep, dev)

        nodes = (table.axes[0].astype(np.float64),)
        return LatencyGrid.build(nodes, node_log_util, sol), sol

    def moe_alltoall(
        self,
        tokens: ArrayLike,
        hidden: int,
        topk: int,
        experts: int,
        ep: int,
        phase: str,
        mode: str = "auto",
    ) -> FloatArray:
        """DeepEP expert-parallel all-to-all of one MoE layer: `phase` "dispatch" (each rank sends
        its `tokens` tokens' hidden states to the ranks holding their topk experts) or "combine"
        (the expert outputs come back); `ep` ranks, `experts` experts in all; seconds.

        `mode` "auto": DeepEP's low-latency kernels for decode-sized batches (tokens per rank <=
        A2A_LOW_LATENCY_MAX_TOKENS = 128), its normal (high-throughput) kernels for prefill-sized
        ones; or "low_latency" / "normal" to force one. Measured tables: TRT-LLM and vLLM
        moe_a2a_perf (bf16 payload), SGLang wideep_deepep_ll / _normal (normal kernels at 20 SMs),
        on H100, H200 and B200, EP 8 on one node, hidden 2048-7168, topk 1-22; an engine without
        them borrows another engine's on the same system (`notes`). A shape or EP the tables lack
        borrows utilisation from the 2 nearest measured (hidden, topk, experts, EP) in log2
        (weights 1/d^2) over the SOL sol.moe_alltoall_sol (16-bit rows to the distinct ranks a
        token's experts live on, over the scale-up link, the scale-out link beyond
        devices_per_node), at equal tokens. ep <= 1 or tokens <= 0 cost 0. ValueError where the
        system has no DeepEP tables (A100, L40S)."""
        if phase not in A2A_PHASES:
            raise ValueError(f"unknown phase {phase!r}; one of {', '.join(A2A_PHASES)}")
        if mode not in ("auto", *A2A_KERNELS):
            raise ValueError(f"unknown mode {mode!r}; auto, {', '.join(A2A_KERNELS)}")
        if ep <= 1:
            return np.zeros(np.shape(tokens))
        tables = self._family.get("moe_a2a")
        if tables is None:
            raise ValueError(f"no DeepEP all-to-all tables for {self.system}")
        table = tables.tables["moe_a2a"]
        ph = A2A_PHASES.index(phase)
        have = [
            k
            for k in range(len(A2A_KERNELS))
            if ((table.column("kernel") == k) & (table.column("phase") == ph)).any()
        ]
        if not have:
            raise ValueError(f"no DeepEP {phase} measurements for {self.system}")

        def run(kernel: int) -> FloatArray:
            if kernel not in have:
                kernel = have[0]
            key = ("a2a", kernel, ph, hidden, topk, experts, ep)
            grid, sol = self._cached(key, lambda: self._a2a_grid(*key[1:]))
            return self._read(grid, sol, (tokens,))

        if mode != "auto":
            return run(A2A_KERNELS.index(mode))
        small = np.asarray(tokens, dtype=np.float64) <= A2A_LOW_LATENCY_MAX_TOKENS
        if small.all():
            return run(0)
        if not small.any():
            return run(1)
        return np.where(small, run(0), run(1))


# DeepEP: batches up to this many tokens per rank use the low-latency kernels (decode), larger
# ones the normal, high-throughput kernels (prefill). SGLang's deepep "auto" mode uses low latency
# for decode and normal for prefill, and sizes the low-latency buffers for 128 tokens per rank.
A2A_LOW_LATENCY_MAX_TOKENS = 128


def _trend(x: FloatArray, y: FloatArray, q: float) -> float:
    """y at q from points (x ascending): linear interpolation between them, beyond them the line
    through the two nearest."""
    if len(x) == 1:
        return float(y[0])
    if x[0] <= q <= x[-1]:
        return float(np.interp(q, x, y))
    i = 0 if q < x[0] else len(x) - 2
    edge = i if q < x[0] else i + 1
    slope = (y[i + 1] - y[i]) / (x[i + 1] - x[i])
    return float(y[edge] + slope * (q - x[edge]))


# 8-bit formats run as w8a8 only where the device has that math, else as w8a16.
_MATH_DTYPE: dict[str, str] = {"fp8": "fp8", "fp8_block": "fp8", "int8": "int8"}
# The table format that is the requested format itself (anything else is noted as borrowed).
_GEMM_NATIVE: dict[str, str] = {
    "bf16": "bfloat16",
    "fp8": "fp8",
    "fp8_block": "fp8_block",
    "int8": "sq",
    "int4": "int4_wo",
    "nvfp4": "nvfp4",
}
_GEMM_LADDERS: dict[str, list[tuple[str, str]]] = {
    "bf16": [("bfloat16", "bfloat16")],
    "fp8": [("fp8", "fp8"), ("fp8_block", "fp8")],
    "fp8_block": [("fp8_block", "fp8_block"), ("fp8", "fp8_block")],
    "int8": [("sq", "sq"), ("fp8", "int8")],
    "nvfp4": [("nvfp4", "nvfp4"), ("fp8", "nvfp4")],
    "mxfp4": [("nvfp4", "mxfp4"), ("fp8", "mxfp4")],
}
_MOE_NATIVE: dict[str, tuple[str, ...]] = {
    "bf16": ("bfloat16",),
    "fp8": ("fp8",),
    "fp8_block": ("fp8_block",),
    "int4": ("int4_wo",),
    "nvfp4": ("nvfp4",),
    "mxfp4": ("w4a8_mxfp4_mxfp8", "w4a16_mxfp4"),
    "int8": (),
}
_MOE_LADDERS: dict[str, list[tuple[str, str]]] = {
    "bf16": [("bfloat16", "bfloat16")],
    "fp8": [("fp8", "fp8"), ("fp8_block", "fp8")],
    "fp8_block": [("fp8_block", "fp8_block"), ("fp8", "fp8_block")],
    "int8": [("fp8", "int8"), ("fp8_block", "int8")],
    "int4": [("int4_wo", "int4_wo"), ("w4a16_mxfp4", "int4_wo")],
    "nvfp4": [("nvfp4", "nvfp4")],
    "mxfp4": [("w4a16_mxfp4", "w4a16_mxfp4"), ("int4_wo", "w4a16_mxfp4")],
}
# bf16 utilisation with this format's bytes and peak, when no table of the format exists.
_MOE_LAST_RESORT: dict[str, str] = {
    "bf16": "bfloat16",
    "fp8": "fp8",
    "fp8_block": "fp8_block",
    "int8": "int8",
    "int4": "int4_wo",
    "nvfp4": "nvfp4",
    "mxfp4": "w4a16_mxfp4",
}
_MLA_GEMM: dict[str, str] = {
    "bf16": "bfloat16",
    "int4": "bfloat16",
    "nvfp4": "nvfp4",
    "mxfp4": "nvfp4",
}


def _distribution_order(distribution: str) -> list[int]:
    """Distribution codes to try, the requested one first."""
    preferred = ["power_law_1.2", "power_law_1.01", "balanced"]
    if distribution == "power_law":
        names = preferred
    elif distribution in DISTRIBUTIONS:
        names = [distribution, *(d for d in preferred if d != distribution)]
    else:
        raise ValueError(
            f"unknown distribution {distribution!r}; balanced, power_law, {', '.join(preferred[:2])}"
        )
    return [DISTRIBUTIONS.index(d) for d in names]


@lru_cache(maxsize=64)
def _cached_source(device: Device, engine: str, directory: str) -> KernelSource | None:
    system = system_for(device)
    if system is None or engine not in ENGINES:
        return None

    def provide(sys_name: str, eng: str) -> EngineTables | None:
        return load_engine_tables(sys_name, eng, Path(directory))

    if provide(system, engine) is None:
        return None
    return KernelSource(device, engine, provide)


def kernel_source(device: Device, engine: str) -> KernelSource | None:
    """Tables for this device and engine ("vllm" | "sglang" | "trtllm"), or None where none apply:
    a non-NVIDIA device (AMD, Gaudi, CPU), another engine, or an artefact without the system.
    Cached per (device, engine, artefact directory)."""
    return _cached_source(device, engine, str(artefact_dir()))
