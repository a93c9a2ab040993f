"""StepTime: the duration of one engine iteration (a prefill chunk plus a batch of decodes).

One iteration of one replica runs the operators of budsim.core.operators on every device: the
projection GEMMs, attention, experts, elementwise kernels and collectives per layer, the LM head,
plus the engine's CPU work per step. Each operator is priced by a cost source: the measured kernel
tables (budsim.core.kernels) for NVIDIA devices, interpolated over the tables' grids and scaled by
datasheet ratios for devices without tables of their own; the roofline (budsim.core.roofline)
elsewhere. `StepTimeModel.basis` says which.

The simulator asks for a step time at every event, so the prices are evaluated once per deployment
on grids and folded into a few curves: one over the tokens of the step (everything whose cost
depends only on how many tokens pass: GEMMs, experts, elementwise kernels, collectives), one over
(decoding sequences, context) for decode attention, one over (prompts, prompt length) for prefill
attention, and one over the rows of the LM head. A call interpolates them in log-log space.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Callable, Sequence
from functools import lru_cache
from typing import Any, NamedTuple

import numpy as np

from .deployment import Deployment
from .dtypes import COMPUTE_DTYPE, weight_bytes
from .engines import EngineProfile
from .hardware import Device
from .model import ModelSpec
from .operators import ACT_BYTES, CollectiveOp, MoeOp, ReplicaOperators, replica_operators
from .roofline import _ENGINE_ETA, INTER_NODE_LATENCY_FACTOR, CostSource, RooflineSource

# Elementwise kernels (norms, rotary, activation) stream at this share of the memory bandwidth and
# cost at least this long each: AIConfigurator's empirical memory-operator constants (its system
# files: mem_bw_empirical_scaling_factor 0.8, mem_empirical_constant_latency 3 us).
ELEMENTWISE_BW_SHARE = 0.8
ELEMENTWISE_LATENCY_S = 3e-6
LINEAR_MIXER_ETA = 0.4  # share of the 16-bit peak a chunked linear-attention kernel reaches
LINEAR_STATE_BW_SHARE = 0.75

# Grids (powers of two, four points per octave for tokens, two for the 2-D tables).
_TOKENS = np.unique(np.round(2.0 ** np.arange(0, 17.01, 0.25)))  # 1 .. 131072
_ROWS = np.unique(np.round(2.0 ** np.arange(0, 14.01, 0.25)))  # 1 .. 16384
_BATCH = np.unique(np.round(2.0 ** np.arange(0, 13.01, 0.5)))  # 1 .. 8192
_CONTEXT = 2.0 ** np.arange(4, 20.01, 0.5)  # 16 .. 1M
_PROMPTS = np.unique(np.round(2.0 ** np.arange(0, 10.01, 0.5)))  # 1 .. 1024
_PROMPT_LEN = 2.0 ** np.arange(0, 18.01, 0.25)  # 1 .. 262144


class StepTime(NamedTuple):
    """One iteration's duration (seconds) and where it went.

    A NamedTuple rather than a frozen dataclass: the simulator builds one per event, and a tuple is
    several times cheaper to create."""

    total: float
    compute: float
    memory: float
    communication: float
    overhead: float

    @property
    def bottleneck(self) -> str:
        parts = {
            "compute": self.compute,
            "memory": self.memory,
            "communication": self.communication,
            "overhead": self.overhead,
        }
        return max(parts, key=parts.__getitem__)


def cost_source(device: Device, engine_id: str) -> CostSource:
    """Measured kernel tables for the device and engine where they apply, else the roofline."""
    from .kernels import kernel_source

    source = kernel_source(device, engine_id)
    if source is not None:
        return source
    own = (engine_id, device.kind) in _ENGINE_ETA  # llama.cpp's fitted shares
    return _roofline(device, engine_id if own else None)


@lru_cache(maxsize=64)
def _roofline(device: Device, engine: str | None = None) -> RooflineSource:
    # one per device (and per engine with efficiencies of its own), so that the prices below are
    # shared by every deployment that prices the same way
    return RooflineSource(device, engine)


# Prices on the fixed grids, shared by every step-time model that asks a source the same question:
# the optimiser builds hundreds of models of one model on one device that differ in the weight
# format, the KV format or the parallel layout, and most of their operators recur (the attention
# of a TP degree under every weight format, a projection's shape under both KV formats). A key
# holds the source itself (kernel sources are shared per device and engine, the roofline per
# device; an entry keeps its source alive, so identities are never reused); values are read-only.
_PRICES: dict[tuple[Any, ...], Any] = {}
_PRICES_MAX = 16384


def _priced(key: tuple[Any, ...], make: Callable[[], Any]) -> Any:
    hit = _PRICES.get(key)
    if hit is None:
        if len(_PRICES) >= _PRICES_MAX:
            _PRICES.clear()
        hit = _PRICES[key] = make()
        for value in hit if isinstance(hit, tuple) else (hit,):
            if isinstance(value, np.ndarray):
                value.flags.writeable = False
    return hit


class _Curve:
    """(compute, memory, communication) over one axis: their total interpolated piecewise
    log-log linear, and each part's share of it linearly in log x.

    The total is what a step costs; the split only says what bounds it. Interpolating each part in
    log space on its own would not do: an operator that turns compute-bound between two grid
    points is all memory at one and all compute at the other, and the log of its empty part
    (floored near zero) drags both halves toward zero in between, so the step got cheaper with
    more tokens (Llama-3.1-8B on H100: 12.4 ms at 362 tokens, 4.9 ms at 346, 8.8 ms at 314).
    Values are kept in plain lists: the simulator calls this per event, where numpy's per-call
    overhead would dominate."""

    __slots__ = ("logx", "logtotal", "shares")

    def __init__(self, x: np.ndarray, parts: Sequence[np.ndarray]) -> None:
        self.logx: list[float] = np.log(x).tolist()
        stacked = np.vstack([np.asarray(p, dtype=np.float64) for p in parts])
        total = stacked.sum(axis=0)
        self.logtotal: list[float] = np.log(np.maximum(total, 1e-15)).tolist()
        safe = np.where(total > 0, total, 1.0)
        # columns: each grid point's shares of its total (all zero where nothing costs anything)
        self.shares: list[list[float]] = (stacked / safe).T.tolist()

    def at(self, x: float) -> list[float]:
        logx = self.logx
        lx = math.log(x) if x > 0 else logx[0]
        i = bisect_right(logx, lx) - 1
        if i < 0:
            return [math.exp(self.logtotal[0]) * s for s in self.shares[0]]
        if i >= len(logx) - 1:
            # beyond the grid: linear in x from the last point (time per token held)
            total = math.exp(self.logtotal[-1] + lx - logx[-1])
            return [total * s for s in self.shares[-1]]
        w = (lx - logx[i]) / (logx[i + 1] - logx[i])
        lt = self.logtotal
        total = math.exp(lt[i] + w * (lt[i + 1] - lt[i]))
        a, b = self.shares[i], self.shares[i + 1]
        return [total * (sa + w * (sb - sa)) for sa, sb in zip(a, b, strict=True)]


class _Grid:
    """Bilinear interpolation of log(seconds) over (log a, log b); linear extrapolation in b beyond
    the grid, clamped in a."""

    __slots__ = ("loga", "logb", "values")

    def __init__(self, a: np.ndarray, b: np.ndarray, values: np.ndarray) -> None:
        self.loga: list[float] = np.log(a).tolist()
        self.logb: list[float] = np.log(b).tolist()
        self.values: list[list[float]] = np.log(np.maximum(values, 1e-15)).tolist()

    @staticmethod
    def _bracket(axis: list[float], v: float) -> tuple[int, float]:
        i = bisect_right(axis, v) - 1
        if i < 0:
            return 0, 0.0
        if i >= len(axis) - 1:
            return len(axis) - 2, 1.0
        return i, (v - axis[i]) / (axis[i + 1] - axis[i])

    def at(self, a: float, b: float) -> float:
        i, wa = self._bracket(self.loga, math.log(max(a, 1e-9)))
        return self.at_row(i, wa, b)

    def row(self, a: float) -> tuple[int, float]:
        """The bracket of `a` (for at_row: a step-time model calls with few distinct a)."""
        return self._bracket(self.loga, math.log(max(a, 1e-9)))

    def at_row(self, i: int, wa: float, b: float) -> float:
        """`at(a, b)` for the bracket (i, wa) of a."""
        lb = math.log(max(b, 1e-9))
        logb = self.logb
        j = bisect_right(logb, lb) - 1
        if j < 0:
            j, wb = 0, 0.0
        elif j >= len(logb) - 1:
            j, wb = len(logb) - 2, 1.0
        else:
            wb = (lb - logb[j]) / (logb[j + 1] - logb[j])
        v0, v1 = self.values[i], self.values[i + 1]
        lo = v0[j] + wb * (v0[j + 1] - v0[j])
        hi = v1[j] + wb * (v1[j + 1] - v1[j])
        out = math.exp(lo + wa * (hi - lo))
        if lb > logb[-1]:
            out *= math.exp(lb - logb[-1])
        return out


def _compute_bound_gemm(device: Device, m: np.ndarray, n: int, k: int, fmt: str) -> np.ndarray:
    peak = device.peak_tflops(COMPUTE_DTYPE.get(fmt.replace("_block", ""), "bf16")) * 1e12
    flops = 2.0 * m * n * k
    nbytes = n * k * weight_bytes(fmt.replace("_block", "")) + m * (n + k) * ACT_BYTES
    return flops / peak > nbytes / (device.memory_bw_gbs * 1e9)


def _no_slower(quantised: np.ndarray, sixteen_bit: np.ndarray) -> np.ndarray:
    """A quantised operator's time, capped at the 16-bit one's: lower precision moves fewer bytes
    on the same or faster matrix units, so where an engine's measured kernel for it is slower
    (AIConfigurator's vLLM 0.24 block-FP8 GEMMs: 6-25x the per-tensor FP8 kernel at decode shapes
    on H200 and B200), that kernel is not what a tuned deployment runs."""
    return np.minimum(quantised, sixteen_bit)


def prompt_alone_s(
    step: Callable[[float, float, float, float, float], StepTime], input_len: int, budget: int
) -> float:
    """Seconds to prefill one prompt of `input_len` tokens on an idle replica: prefill-only steps
    of up to `budget` tokens, each chunk attending to the ones before it."""
    done, seconds = 0, 0.0
    while done < input_len:
        tok = min(budget, input_len - done)
        seconds += step(0, 0.0, tok, tok * (done + (tok + 1) / 2.0), 1).total
        done += tok
    return seconds


def _stage_times(compute: float, memory: float, comm: float, overhead: float, pp: int) -> StepTime:
    """One iteration's StepTime from one stage's parts: every micro-batch passes through every
    stage, so an iteration takes pp stage-times. (tuple.__new__: the NamedTuple's own __new__ is
    a Python function, called once per event.)"""
    return tuple.__new__(
        StepTime,
        (
            (compute + memory + comm + overhead) * pp,
            compute * pp,
            memory * pp,
            comm * pp,
            overhead * pp,
        ),
    )


class StepTimeModel:
    """Step time of one replica of `dep`, precomputed for fast repeated calls."""

    # the simulator skips decode-only spans in closed form when the step time is linear in the
    # summed context; with tabulated attention it is not, so it prices a span's last step itself
    decode_slope: float | None = None

    def __init__(
        self, model: ModelSpec, device: Device, engine: EngineProfile, dep: Deployment
    ) -> None:
        self.model, self.device, self.engine, self.dep = model, device, engine, dep
        self.ops: ReplicaOperators = replica_operators(model, dep)
        self.source: CostSource = cost_source(device, engine.id)
        self.basis: str = self.source.basis
        ops = self.ops
        self.pp, self.dp, self.micro = ops.pp, ops.dp, ops.micro
        self._mla_modules = self._attention_grids()
        self._rank, self._stage = self._token_curves()
        self._has_stage = bool(self.ops.moe) or any(
            c.scope == "stage" for c in self.ops.collectives
        )
        head = ops.lm_head
        self._lm_head: _Curve = _priced(
            (self.source, "lm_head", device, head.n, head.k, head.fmt),
            lambda: self._lm_head_curve(head.n, head.k, head.fmt),
        )
        self.fixed = engine.step_overhead_ms * 1e-3 + (
            engine.per_layer_launch_us * 1e-6 * ops.layers
        )
        self.per_seq = engine.per_seq_overhead_us * 1e-6
        self._memo: dict[tuple[float, float], tuple[float, float, float]] = {}
        # Steps by everything but the decode context: a simulation revisits the same batch
        # shapes (decodes of n sequences, beside the same prompt chunks) at ever new contexts
        self._parts: dict[tuple[float, ...], tuple[float, float, float, float, float, int, float]]
        self._parts = {}
        self._by_parts = not ops.linear  # linear mixers add their terms in between (general path)

    # ------------------------------------------------------------------------------------------
    # precomputation (every price is looked up through _priced: see there)

    def lm_head_time(self, rows: float) -> float:
        """Seconds the LM head adds to a step for `rows` sequences that emit a token (as __call__
        prices it: all stages and micro-batches together)."""
        if rows <= 0:
            return 0.0
        c, m = self._lm_head.at(rows / self.micro)
        return c + m

    def _lm_head_curve(self, n: int, k: int, fmt: str) -> _Curve:
        rows = _ROWS
        head = self.source.gemm(rows, n, k, fmt)
        bound = _compute_bound_gemm(self.device, rows, n, k, fmt)
        return _Curve(rows, [np.where(bound, head, 0.0), np.where(bound, 0.0, head)])

    def _attention_grids(self) -> bool:
        """Decode and prefill attention of every softmax layer, summed into two grids; returns
        whether MLA module tables already include the blocks' projections."""
        ops = self.ops
        fmt = next((g.fmt for g in ops.gemms if g.mla), "bf16")
        self._decode, self._prefill, modules = _priced(
            (self.source, "attention grids", ops.attention, fmt),
            lambda: self._price_attention(fmt),
        )
        return modules

    def _price_attention(self, mla_fmt: str) -> tuple[_Grid | None, _Grid | None, bool]:
        src, ops = self.source, self.ops
        b, c = np.meshgrid(_BATCH, _CONTEXT, indexing="ij")
        pb, pl = np.meshgrid(_PROMPTS, _PROMPT_LEN, indexing="ij")
        decode = np.zeros(b.shape)
        prefill = np.zeros(pb.shape)
        modules = True
        any_mla = False
        for op in ops.attention:
            # An FP8 cache never costs more than a 16-bit one: where an engine's measured kernel
            # for it is slower, a deployment would keep the 16-bit cache (see _no_slower).
            kv_options = {op.kv_dtype, "bf16"}
            if op.mla:
                any_mla = True
                fmt = mla_fmt
                decs = [src.mla_generation(b, c, op.heads, kv, fmt) for kv in kv_options]
                pres = [src.mla_context(pb, pl, op.heads, kv, fmt) for kv in kv_options]
                dec = np.minimum.reduce([t for t, _ in decs])
                pre = np.minimum.reduce([t for t, _ in pres])
                modules = modules and all(f for _, f in decs + pres)
            else:
                dec = np.minimum.reduce(
                    [
                        src.generation_attention(
                            b, c, op.heads, op.kv_heads, op.head_dim, kv, op.window
                        )
                        for kv in kv_options
                    ]
                )
                pre = np.minimum.reduce(
                    [
                        src.context_attention(
                            pb, pl, op.heads, op.kv_heads, op.prefill_head_dim, kv, op.window
                        )
                        for kv in kv_options
                    ]
                )
            decode += op.count * dec
            prefill += op.count * pre
        if not ops.attention:
            return None, None, False
        return (
            _Grid(_BATCH, _CONTEXT, decode),
            _Grid(_PROMPTS, _PROMPT_LEN, prefill),
            any_mla and modules,
        )

    def _gemm(self, n: int, k: int, fmt: str) -> tuple[np.ndarray, np.ndarray]:
        """One projection over the token grid (count 1), and where it is compute-bound."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            src, x = self.source, _TOKENS
            t = _no_slower(src.gemm(x, n, k, fmt), src.gemm(x, n, k, "bf16"))
            bound = _compute_bound_gemm(self.device, x, n, k, fmt)
            return t, bound

        out: tuple[np.ndarray, np.ndarray] = _priced(
            (self.source, "gemm", self.device, n, k, fmt), make
        )
        return out

    def _moe(self, e: MoeOp) -> tuple[np.ndarray, np.ndarray]:
        """One MoE layer's experts over the token grid, and where they are compute-bound."""

        def make() -> tuple[np.ndarray, np.ndarray]:
            src, x, device = self.source, _TOKENS, self.device
            shape = (x, e.hidden, e.inter, e.topk, e.experts, e.moe_tp, e.moe_ep)
            t = _no_slower(
                src.moe(*shape, e.fmt, gated=e.gated),
                src.moe(*shape, "bf16", gated=e.gated),
            )
            # an expert GEMM is compute-bound once its rows exceed the device's ridge point
            fmt = e.fmt.replace("_block", "")
            peak = device.peak_tflops(COMPUTE_DTYPE.get(fmt, "bf16")) * 1e12
            ridge = peak / (device.memory_bw_gbs * 1e9) * weight_bytes(fmt) / 2.0
            return t, x * e.topk / e.experts > ridge

        key = (e.hidden, e.inter, e.topk, e.experts, e.moe_tp, e.moe_ep, e.fmt, e.gated)
        out: tuple[np.ndarray, np.ndarray] = _priced((self.source, "moe", self.device, *key), make)
        return out

    def _collective(self, c: CollectiveOp) -> np.ndarray:
        """One collective over the token grid."""
        if c.op == "p2p":
            return self._p2p(_TOKENS * c.bytes_per_token)

        def make() -> np.ndarray:
            nbytes = _TOKENS * c.bytes_per_token
            if c.op == "all_reduce":
                return self.source.allreduce(nbytes, c.ranks)
            return self.source.collective(c.op, nbytes, c.ranks)

        out: np.ndarray = _priced(
            (self.source, "collective", c.op, c.bytes_per_token, c.ranks), make
        )
        return out

    def _token_curves(self) -> tuple[_Curve, _Curve]:
        """(compute, memory, communication) over the tokens one attention rank runs in a step
        (projections, elementwise kernels, the rank's collectives), and over the tokens of the
        whole stage (the routed experts, which see every attention-DP rank's tokens, and the
        collectives that gather them)."""
        ops, device = self.ops, self.device
        x = _TOKENS
        rank = [np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)]
        stage = [np.zeros_like(x), np.zeros_like(x), np.zeros_like(x)]
        for g in ops.gemms:
            if g.mla and self._mla_modules:
                continue  # priced inside the MLA module tables
            t1, bound = self._gemm(g.n, g.k, g.fmt)
            t = t1 * g.count
            rank[0] += np.where(bound, t, 0.0)
            rank[1] += np.where(bound, 0.0, t)
        for e in ops.moe:
            t, bound = self._moe(e)
            stage[0] += np.where(bound, t, 0.0) * e.count
            stage[1] += np.where(bound, 0.0, t) * e.count
        for lin in ops.linear:
            peak = device.peak_tflops("bf16") * 1e12
            rank[0] += lin.count * 4.0 * x * lin.heads * lin.dims * 64 / (peak * LINEAR_MIXER_ETA)
        bw = device.memory_bw_gbs * 1e9
        rank[1] += x * ops.elementwise_bytes_per_token / (bw * ELEMENTWISE_BW_SHARE)
        rank[1] += ops.elementwise_kernels * ELEMENTWISE_LATENCY_S
        for c in ops.collectives:
            t = self._collective(c)
            (stage if c.scope == "stage" else rank)[2] += t * c.count
        return _Curve(x, rank), _Curve(x, stage)

    def _p2p(self, nbytes: np.ndarray) -> np.ndarray:
        """A pipeline stage handing its activations to the next: one message over the link between
        the two devices (NVLink inside a node, the scale-out network when the replica spans nodes)."""
        d = self.device
        if self.dep.devices_per_replica <= d.devices_per_node:
            bw, lat = d.scaleup_bw_gbs, d.scaleup_latency_us
        else:
            bw, lat = d.scaleout_bw_gbs, d.scaleup_latency_us * INTER_NODE_LATENCY_FACTOR
        return lat * 1e-6 + nbytes / (bw * 1e9)

    # ------------------------------------------------------------------------------------------
    # per event

    def _token_ops(self, rank_tokens: float, stage_tokens: float) -> tuple[float, float, float]:
        """(compute, memory, communication) of the token-count operators, memoised (the simulator
        revisits the same token counts often)."""
        key = (rank_tokens, stage_tokens)
        hit = self._memo.get(key)
        if hit is not None:
            return hit
        compute = memory = comm = 0.0
        if rank_tokens > 0:
            compute, memory, comm = self._rank.at(rank_tokens)
        if stage_tokens > 0 and self._has_stage:
            c, m, k = self._stage.at(stage_tokens)
            compute, memory, comm = compute + c, memory + m, comm + k
        out = (compute, memory, comm)
        if len(self._memo) > 4096:  # bounded: thousands of step models may be cached at once
            self._memo.clear()
        self._memo[key] = out
        return out

    def __call__(
        self,
        n_decode: float,
        decode_ctx: float,
        prefill_tokens: float,
        prefill_pairs: float,
        prefill_seqs: float,
    ) -> StepTime:
        """Time of one iteration of the whole replica.

        n_decode: sequences decoding one token; decode_ctx: the sum of their context lengths;
        prefill_tokens: prompt tokens processed; prefill_pairs: causal attention (query, key)
        pairs of those chunks; prefill_seqs: chunks in the step.
        """
        if self._by_parts:
            return self._from_parts(
                n_decode, decode_ctx, prefill_tokens, prefill_pairs, prefill_seqs
            )
        pp, micro = self.pp, self.micro
        compute, memory, comm = self._token_and_prompt_work(
            n_decode, prefill_tokens, prefill_pairs, prefill_seqs
        )
        if n_decode and self._decode is not None:
            # decode attention: the sequences of a rank at their mean context
            memory += self._decode.at(n_decode / micro, decode_ctx / n_decode)
        if self.ops.linear and n_decode:
            bw = self.device.memory_bw_gbs * 1e9 * LINEAR_STATE_BW_SHARE
            for lin in self.ops.linear:
                memory += lin.count * n_decode / micro * lin.state_bytes * 2 / bw
        # LM head for the sequences that emit a token this step (on the last stage only)
        rows = (n_decode + prefill_seqs) / micro
        if rows > 0:
            c, m = self._lm_head.at(rows)
            compute += c / pp
            memory += m / pp
        overhead = self.fixed / pp + self.per_seq * rows
        return _stage_times(compute, memory, comm, overhead, pp)

    def _token_and_prompt_work(
        self, n_decode: float, prefill_tokens: float, prefill_pairs: float, prefill_seqs: float
    ) -> tuple[float, float, float]:
        """(compute, memory, comm) of a step's token operators and its prompt chunks' attention,
        which `__call__` and `_step_parts` share."""
        micro = self.micro
        tokens = (n_decode + prefill_tokens) / micro  # per rank and micro-batch, spread evenly
        stage_tokens = tokens * self.dp  # what the experts of a stage see per micro-batch
        compute, memory, comm = self._token_ops(tokens, stage_tokens)
        pairs = prefill_pairs / micro
        seqs = prefill_seqs / micro
        if prefill_seqs and self.dp > 1:
            # Attention-DP: each prompt chunk runs on one rank and the ranks step together, so the
            # step waits for the rank with the most chunks (a lone prompt: one rank works, the
            # others idle). The operators above assumed the tokens spread evenly.
            busiest = math.ceil(prefill_seqs / self.dp) * self.dp / prefill_seqs
            if busiest > 1.0:
                extra = prefill_tokens * (busiest - 1.0) / micro
                compute, memory, comm = self._token_ops(tokens + extra, stage_tokens)
                pairs *= busiest
                seqs *= busiest
        if pairs and self._prefill is not None:
            # the chunks as `seqs` prompts whose causal pairs match: length L with L(L+1)/2 pairs
            # each when fresh; a chunk over a cached prefix does the pairs of its rows only
            chunk = prefill_tokens / prefill_seqs
            prefix = max(0.0, pairs / seqs / chunk - (chunk + 1) / 2)
            length = prefix + chunk
            full = length * (length + 1) / 2
            compute += self._prefill.at(seqs, length) * (pairs / seqs) / full
        return compute, memory, comm

    def _from_parts(
        self,
        n_decode: float,
        decode_ctx: float,
        prefill_tokens: float,
        prefill_pairs: float,
        prefill_seqs: float,
    ) -> StepTime:
        """`self(...)` with the same arithmetic in the same order, everything but the decode
        attention's context looked up (see _step_parts)."""
        key = (n_decode, prefill_tokens, prefill_pairs, prefill_seqs)
        hit = self._parts.get(key)
        if hit is None:
            hit = self._step_parts(n_decode, prefill_tokens, prefill_pairs, prefill_seqs)
            if len(self._parts) > 4096:
                self._parts.clear()
            self._parts[key] = hit
        compute, memory, head, comm, overhead, i, wa = hit
        if i >= 0:
            assert self._decode is not None
            memory += self._decode.at_row(i, wa, decode_ctx / n_decode)
        memory += head
        pp = self.pp
        return _stage_times(compute, memory, comm, overhead, pp)

    def _step_parts(
        self, n_decode: float, prefill_tokens: float, prefill_pairs: float, prefill_seqs: float
    ) -> tuple[float, float, float, float, float, int, float]:
        """What `__call__` computes without the decode context, as it computes it: (compute
        with the LM head, memory before the decode attention, the LM head's memory, comm,
        overhead) and the decode attention grid's row (-1: no decode attention)."""
        pp, micro = self.pp, self.micro
        compute, memory, comm = self._token_and_prompt_work(
            n_decode, prefill_tokens, prefill_pairs, prefill_seqs
        )
        i, wa = -1, 0.0
        if n_decode and self._decode is not None:
            i, wa = self._decode.row(n_decode / micro)
        rows = (n_decode + prefill_seqs) / micro
        head = 0.0  # x + 0.0 == x: a step without rows adds nothing
        if rows > 0:
            c, m = self._lm_head.at(rows)
            compute += c / pp
            head = m / pp
        overhead = self.fixed / pp + self.per_seq * rows
        return compute, memory, head, comm, overhead, i, wa
