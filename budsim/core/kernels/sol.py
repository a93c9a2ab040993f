"""Speed-of-light (SOL) times of the kernel families: max(flops / peak, bytes / bandwidth).

Every measured latency is stored as utilisation = SOL(shape, measuring device) / latency, and read back
as SOL(query, target device) / utilisation. So these formulas do not need to be exact, only to move the
way the kernel's time moves with shape and device; the cross-validation (benchmarks/kernel_accuracy.py)
is the check. All functions broadcast over array arguments and return seconds.

Peak: dense TFLOPS of the device for the format's compute dtype (`Peak.tflops`); bandwidth: the
device's peak memory bandwidth (GB/s). Latency-bound small kernels have utilisation far below 1; that
is measured, not modelled here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ..dtypes import WEIGHT_BYTES
from ..hardware import Device

FloatArray = NDArray[np.float64]

__all__ = [
    "MLA_DIMS",
    "PROFILES",
    "Profile",
    "comm_sol",
    "context_attention_sol",
    "gemm_sol",
    "generation_attention_sol",
    "mla_context_sol",
    "mla_generation_sol",
    "moe_alltoall_sol",
    "moe_rank_load",
    "moe_sol",
]

OUT_BYTES = 2.0  # GEMM / MoE outputs and attention Q/O are 16-bit


@dataclass(frozen=True)
class Profile:
    """How one numeric format moves bytes and which tensor-core peak it runs at."""

    act_bytes: float  # per activation element read by the kernel
    weight_bytes: float  # per weight element, block scales included
    peak: str  # key for Device.peak_tflops: bf16 | fp8 | int8 | fp4

    def flops_per_s(self, device: Device) -> float:
        return device.peak_tflops(self.peak) * 1e12


# Table format names (as the kernel tables spell them) and the API's borrowed formats.
PROFILES: dict[str, Profile] = {
    "bfloat16": Profile(2.0, 2.0, "bf16"),
    "fp8": Profile(1.0, 1.0, "fp8"),
    "fp8_block": Profile(1.0, 1.0 + 4.0 / 128 / 128, "fp8"),  # one fp32 scale per 128x128 block
    "nvfp4": Profile(WEIGHT_BYTES["nvfp4"], WEIGHT_BYTES["nvfp4"], "fp4"),
    "sq": Profile(1.0, 1.0, "int8"),  # SmoothQuant w8a8
    "int8_wo": Profile(2.0, 1.0, "bf16"),  # w8a16: dequantised to 16 bit
    "int4_wo": Profile(2.0, WEIGHT_BYTES["int4"], "bf16"),  # w4a16 (AWQ/GPTQ style)
    "w4a16_mxfp4": Profile(2.0, WEIGHT_BYTES["mxfp4"], "bf16"),
    "w4a8_mxfp4_mxfp8": Profile(1.0 + 1.0 / 32, WEIGHT_BYTES["mxfp4"], "fp8"),
    # formats the API asks for that borrow another table's utilisation
    "int8": Profile(1.0, 1.0, "int8"),
    "w8a16": Profile(2.0, 1.0, "bf16"),  # fp8 / int8 weights on a device without fp8 math
    "int4": Profile(2.0, WEIGHT_BYTES["int4"], "bf16"),
    "mxfp4_w4a16": Profile(2.0, WEIGHT_BYTES["mxfp4"], "bf16"),
    "mxfp4": Profile(WEIGHT_BYTES["mxfp4"], WEIGHT_BYTES["mxfp4"], "fp4"),
}


def _f(x: ArrayLike) -> FloatArray:
    return np.asarray(x, dtype=np.float64)


def _time(
    flops: FloatArray, nbytes: FloatArray, flops_per_s: ArrayLike, bw_gbs: float
) -> FloatArray:
    return np.maximum(flops / _f(flops_per_s), nbytes / (bw_gbs * 1e9))


def gemm_sol(
    m: ArrayLike, n: ArrayLike, k: ArrayLike, profile: Profile, device: Device
) -> FloatArray:
    """y[m, n] = x[m, k] @ W[n, k]^T: 2mnk flops; reads x and W, writes y in 16 bit."""
    m, n, k = _f(m), _f(n), _f(k)
    flops = 2.0 * m * n * k
    nbytes = m * k * profile.act_bytes + n * k * profile.weight_bytes + m * n * OUT_BYTES
    return _time(flops, nbytes, profile.flops_per_s(device), device.memory_bw_gbs)


def _causal_pairs(isl: FloatArray, window: FloatArray) -> FloatArray:
    """Query-key pairs of causal attention over `isl` tokens, each query seeing at most `window`
    keys (window <= 0: no limit): sum over i = 1..isl of min(i, window)."""
    w = np.where(window > 0, np.minimum(window, isl), isl)
    return w * (w + 1.0) / 2.0 + (isl - w) * w


def context_attention_sol(
    batch: ArrayLike,
    isl: ArrayLike,
    heads: ArrayLike,
    kv_heads: ArrayLike,
    head_dim: ArrayLike,
    window: ArrayLike,
    kv_bytes: ArrayLike,
    device: Device,
) -> FloatArray:
    """Causal prefill of `batch` prompts of `isl` tokens: QK^T and PV over the causal pairs (4 flops
    per pair, head dim and head); reads Q and writes O in 16 bit, reads new K/V and writes them to the
    cache at the KV format."""
    b, s, h, g, d = _f(batch), _f(isl), _f(heads), _f(kv_heads), _f(head_dim)
    flops = 4.0 * b * h * d * _causal_pairs(s, _f(window))
    nbytes = b * s * d * (2.0 * OUT_BYTES * h + 4.0 * g * _f(kv_bytes))
    return _time(flops, nbytes, device.peak_tflops("bf16") * 1e12, device.memory_bw_gbs)


def generation_attention_sol(
    batch: ArrayLike,
    ctx: ArrayLike,
    heads: ArrayLike,
    kv_heads: ArrayLike,
    head_dim: ArrayLike,
    window: ArrayLike,
    kv_bytes: ArrayLike,
    device: Device,
) -> FloatArray:
    """One decode step: each of `batch` queries attends to ctx cached tokens plus itself (at most
    `window` of them); memory-bound on reading K and V of those tokens."""
    b, c, h, g, d, w = _f(batch), _f(ctx), _f(heads), _f(kv_heads), _f(head_dim), _f(window)
    seen = np.where(w > 0, np.minimum(c + 1.0, w), c + 1.0)
    e = _f(kv_bytes)
    flops = 4.0 * b * h * d * seen
    nbytes = b * (2.0 * g * d * e * (seen + 1.0) + 2.0 * OUT_BYTES * h * d)
    return _time(flops, nbytes, device.peak_tflops("bf16") * 1e12, device.memory_bw_gbs)


# Routing of AIConfigurator's MoE benchmarks, by distribution code (families.DISTRIBUTIONS): the
# power-law exponent of the expert loads, 0 for balanced routing.
ROUTING_ALPHA: tuple[float, ...] = (0.0, 1.01, 1.2)
_LOAD_GRID = np.arange(0.0, 24.01, 1.0)  # log2 tokens at which power-law loads are sampled
_LOAD_SAMPLES = 16
EXCESS_SPREAD = True


@lru_cache(maxsize=4)
def _power_law_counts(experts: int, topk: int, alpha: float) -> FloatArray:
    """Pairs per expert under AIConfigurator's power-law routing, (len(_LOAD_GRID), samples, experts).

    The benchmark draws each expert's load from a power law on [1, 0.8 x tokens] (on [0.01, 2]
    when tokens x topk <= experts), scales the loads to tokens x topk pairs and rounds them (the
    remainder here goes to the hottest expert). _LOAD_SAMPLES draws of a generator seeded by the
    expert count: the same draws for every query, so loads are deterministic and smooth in tokens."""
    tokens = np.exp2(_LOAD_GRID)[:, None, None]
    u = np.random.default_rng(experts).random((1, _LOAD_SAMPLES, experts))
    pairs = tokens * topk
    big = pairs > experts
    lo = np.where(big, 1.0, 0.01)
    hi = np.where(big, 0.8 * tokens, 2.0)
    a = 1.0 - alpha
    x = np.exp(np.log((hi**a - lo**a) * u + lo**a) / a)
    counts = np.round(x * (pairs / x.sum(axis=-1, keepdims=True)))
    hottest = np.argmax(counts, axis=-1)[..., None]
    rest = pairs[..., 0] - counts.sum(axis=-1)
    np.put_along_axis(
        counts, hottest, np.take_along_axis(counts, hottest, -1) + rest[..., None], -1
    )
    return counts


@lru_cache(maxsize=1024)
def _power_law_load(
    experts: int, topk: int, ep: int, alpha: float
) -> tuple[FloatArray, FloatArray]:
    """(pairs as a share of tokens x topk, experts with work) on the most loaded EP rank, the one the
    power-law benchmark times (each rank holds experts/ep consecutive experts; the slowest is moved
    to rank 0), at 2**_LOAD_GRID tokens, averaged over the draws of _power_law_counts.

    A token picks topk distinct experts, so an expert takes at most one pair per token; the pairs
    over that fall on the lowest-numbered experts (the router's tie-break among equal logits),
    which are rank 0's: they add to its pairs and touched experts."""
    counts = _power_law_counts(experts, topk, alpha)
    tokens = np.exp2(_LOAD_GRID)[:, None, None]
    excess = np.maximum(counts - tokens, 0.0).sum(axis=-1)
    local = max(experts // ep, 1)
    groups = counts[..., : local * ep].reshape(len(_LOAD_GRID), _LOAD_SAMPLES, -1, local)
    slow = np.argmax(groups.sum(axis=-1), axis=-1)[..., None, None]
    rank = np.take_along_axis(groups, slow, axis=2)[..., 0, :]
    own_excess = np.maximum(rank - tokens, 0.0).sum(axis=-1)
    if EXCESS_SPREAD:
        moved = excess * (local / experts)
        pairs = rank.sum(axis=-1) - own_excess + moved
        touched = np.minimum((rank > 0).sum(axis=-1) + moved, local)
    else:
        pairs = rank.sum(axis=-1) + excess - own_excess
        touched = np.minimum((rank > 0).sum(axis=-1) + excess, local)
    share = pairs.mean(axis=-1) / (tokens[:, 0, 0] * topk)
    return share, touched.mean(axis=-1)


def _group_rows(columns: tuple[FloatArray, ...]) -> tuple[NDArray[np.intp], NDArray[np.intp]]:
    """Group the rows of equal-length columns: (group of each row, first row of each group).

    np.unique(axis=0) sorts the rows as opaque bytes, which costs seconds on a kernel table's
    hundred thousand cells; coding each column by its own (numeric) unique values and the rows by
    one integer of those codes groups them in milliseconds."""
    code = np.zeros(len(columns[0]), dtype=np.int64)
    for column in columns:
        values, column_code = np.unique(column, return_inverse=True)
        code = code * len(values) + column_code.reshape(-1)
    _, first, inverse = np.unique(code, return_index=True, return_inverse=True)
    return inverse.reshape(-1), first


def moe_rank_load(
    tokens: ArrayLike, experts: ArrayLike, topk: ArrayLike, moe_ep: ArrayLike, alpha: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(token-expert pairs, experts with at least one pair) on the rank that is timed.

    Balanced routing (alpha 0, AIConfigurator's balanced_logits) spreads tokens x topk pairs evenly:
    rank 0 gets a 1/ep share but at least one pair (token 0 always picks expert 0), each on its own
    expert until every local expert has one. Power-law routing (alpha > 0) times the most loaded
    rank (see _power_law_load). Arguments broadcast; topk, experts and ep are integers."""
    if all(np.ndim(v) == 0 for v in (experts, topk, moe_ep, alpha)):  # one configuration
        t1 = np.maximum(_f(tokens), 0.0)
        e1, k1, ep1 = float(experts), float(topk), float(moe_ep)  # type: ignore[arg-type]
        a1 = float(alpha)  # type: ignore[arg-type]
        if a1 > 0:
            share, hit = _power_law_load(int(e1), int(k1), int(ep1), a1)
            log_t = np.log2(np.maximum(t1, 1.0))
            skew = np.interp(log_t, _LOAD_GRID, share) * t1 * k1
            return skew, np.minimum(np.interp(log_t, _LOAD_GRID, hit), skew)
        even = np.maximum(t1 * k1 / ep1, np.minimum(t1 * k1, 1.0))
        return even, np.minimum(even, max(math.floor(e1 / ep1), 1.0))
    t, e, k, ep, al = np.broadcast_arrays(_f(tokens), _f(experts), _f(topk), _f(moe_ep), _f(alpha))
    local = np.maximum(np.floor(e / ep), 1.0)
    pairs = np.array(np.maximum(t * k / ep, np.minimum(t * k, 1.0)), dtype=np.float64)
    touched = np.array(np.minimum(pairs, local), dtype=np.float64)
    skewed = al > 0
    if skewed.any():
        columns = (e[skewed], k[skewed], al[skewed], ep[skewed])
        inverse, first = _group_rows(columns)
        t_sk = t[skewed]
        log_t = np.log2(np.maximum(t_sk, 1.0))
        sk_pairs, sk_touched = pairs[skewed], touched[skewed]
        order = np.argsort(inverse, kind="stable")
        bounds = np.searchsorted(inverse[order], np.arange(len(first) + 1))
        for i, row in enumerate(first):  # one draw per (experts, topk, alpha), shared by its cells
            ne, nk, a, nep = (float(c[row]) for c in columns)
            sel = order[bounds[i] : bounds[i + 1]]
            share, hit = _power_law_load(int(ne), int(nk), int(nep), a)
            sk_pairs[sel] = np.interp(log_t[sel], _LOAD_GRID, share) * t_sk[sel] * nk
            sk_touched[sel] = np.minimum(np.interp(log_t[sel], _LOAD_GRID, hit), sk_pairs[sel])
        pairs[skewed], touched[skewed] = sk_pairs, sk_touched
    return pairs, touched


def moe_sol(
    tokens: ArrayLike,
    hidden: ArrayLike,
    inter: ArrayLike,
    topk: ArrayLike,
    experts: ArrayLike,
    moe_tp: ArrayLike,
    moe_ep: ArrayLike,
    profile_act_bytes: ArrayLike,
    profile_weight_bytes: ArrayLike,
    flops_per_s: ArrayLike,
    device: Device,
    alpha: ArrayLike = 0.0,
    gated: ArrayLike = True,
) -> FloatArray:
    """Routed experts of one MoE layer on the rank that is timed, `tokens` tokens entering the layer.

    The rank holds experts/ep experts, each with gate (if `gated`), up and down matrices of
    hidden x inter/tp. Its token-expert pairs and the experts they touch follow the benchmark's
    routing (moe_rank_load; `alpha` 0 = balanced, else the power-law exponent). GEMMs: 2 (gated 3)
    x 2 x hidden x inter/tp flops per pair; they read the weights of the touched experts once.
    Every rank also reads all tokens' hidden states and writes an output row for each, and each pair
    moves its row through the pipeline: the hidden-size input row at the activation format and the
    16-bit output row written and read back for the weighted sum, the 16-bit gate/up (or up)
    activations written and read, and the activated row at the activation format written and read.
    The time is that of the GEMMs (compute or weights, whichever binds) plus the traffic of the rows.
    """
    t, hd, inter_l = _f(tokens), _f(hidden), _f(inter) / _f(moe_tp)
    mats = np.where(np.asarray(gated, dtype=bool), 3.0, 2.0)
    pairs, touched = moe_rank_load(t, experts, topk, moe_ep, alpha)
    act = _f(profile_act_bytes)
    flops = 2.0 * mats * hd * inter_l * pairs
    weights = touched * mats * hd * inter_l * _f(profile_weight_bytes)
    rows = (
        t * hd * 2.0 * OUT_BYTES
        + pairs * hd * (act + 2.0 * OUT_BYTES)
        + pairs * inter_l * ((mats - 1.0) * 2.0 * OUT_BYTES + 2.0 * act)
    )
    bw = device.memory_bw_gbs * 1e9
    return np.maximum(flops / _f(flops_per_s), weights / bw) + rows / bw


# DeepSeek-V3 MLA dimensions (the only MLA geometry the tables measure).
MLA_DIMS: dict[str, int] = {
    "hidden": 7168,
    "q_lora": 1536,
    "kv_lora": 512,
    "rope": 64,
    "nope": 128,
    "v": 128,
}


def _mla_proj_weights(heads: FloatArray) -> FloatArray:
    """Weights of the MLA block's projections per layer with `heads` local heads (decode absorbs
    kv_b into two per-head BMMs of the same size, so the count is the same in both phases)."""
    dm = MLA_DIMS
    down = dm["hidden"] * (dm["q_lora"] + dm["kv_lora"] + dm["rope"])
    q_b = dm["q_lora"] * heads * (dm["nope"] + dm["rope"])
    kv_b = dm["kv_lora"] * heads * (dm["nope"] + dm["v"])
    o = heads * dm["v"] * dm["hidden"]
    return down + q_b + kv_b + o


def mla_context_sol(
    batch: ArrayLike,
    isl: ArrayLike,
    heads: ArrayLike,
    kv_bytes: ArrayLike,
    gemm: Profile | None,
    device: Device,
) -> FloatArray:
    """DeepSeek MLA prefill per layer: attention with 192-dim QK and 128-dim V per head; with `gemm`
    also the block's projections (fused q_a/kv_a, q_b, kv_b, o_proj) at that format."""
    dm = MLA_DIMS
    b, s, h = _f(batch), _f(isl), _f(heads)
    qk, v = dm["nope"] + dm["rope"], dm["v"]
    pairs = _causal_pairs(s, np.zeros(1))
    attn_flops = 2.0 * b * h * (qk + v) * pairs
    tok = b * s
    nbytes = tok * h * (qk + v) * (OUT_BYTES + _f(kv_bytes)) + tok * (dm["kv_lora"] + dm["rope"])
    time = attn_flops / (device.peak_tflops("bf16") * 1e12)
    if gemm is not None:
        weights = _mla_proj_weights(h)
        time = time + 2.0 * tok * weights / gemm.flops_per_s(device)
        nbytes = nbytes + weights * gemm.weight_bytes + tok * dm["hidden"] * 2 * OUT_BYTES
    return np.maximum(time, nbytes / (device.memory_bw_gbs * 1e9))


def mla_generation_sol(
    batch: ArrayLike,
    ctx: ArrayLike,
    heads: ArrayLike,
    kv_bytes: ArrayLike,
    gemm: Profile | None,
    device: Device,
) -> FloatArray:
    """DeepSeek MLA decode per layer (weights absorbed): every head reads the shared 576-wide latent
    cache of ctx + 1 tokens; with `gemm` also the projections and the two absorbed BMMs."""
    dm = MLA_DIMS
    b, c, h = _f(batch), _f(ctx) + 1.0, _f(heads)
    latent = dm["kv_lora"] + dm["rope"]
    attn_flops = 2.0 * b * h * c * (latent + dm["kv_lora"])
    nbytes = b * c * latent * _f(kv_bytes) + b * h * (latent + dm["kv_lora"]) * OUT_BYTES
    time = attn_flops / (device.peak_tflops("bf16") * 1e12)
    if gemm is not None:
        weights = _mla_proj_weights(h)
        time = time + 2.0 * b * weights / gemm.flops_per_s(device)
        nbytes = nbytes + weights * gemm.weight_bytes + b * dm["hidden"] * 2 * OUT_BYTES
    return np.maximum(time, nbytes / (device.memory_bw_gbs * 1e9))


# Bytes each rank sends per byte of the collective's size (ring algorithms).
def _ring_factor(op: str, n: FloatArray) -> FloatArray:
    if op == "all_reduce":
        return 2.0 * (n - 1.0) / n
    if op in ("all_gather", "reduce_scatter", "alltoall"):
        return (n - 1.0) / n
    raise ValueError(f"unknown collective {op!r}")


def ring_factor(op: str, n: ArrayLike) -> FloatArray:
    """Bytes each rank sends per byte of the collective's size: 2(n-1)/n for all-reduce, (n-1)/n
    for all-gather, reduce-scatter and all-to-all (nccl-tests' bus-bandwidth factors)."""
    return _ring_factor(op, _f(n))


def link_bw_gbs(n: ArrayLike, device: Device) -> FloatArray:
    """The link a collective over `n` devices runs on: the scale-up link within a node, the
    scale-out link beyond (n > devices_per_node); GB/s per device and direction."""
    nn = _f(n)
    bw = np.where(nn <= device.devices_per_node, device.scaleup_bw_gbs, device.scaleout_bw_gbs)
    return np.maximum(bw, 1e-3)


def comm_sol(
    op: str,
    nbytes: ArrayLike,
    n: ArrayLike,
    device: Device,
    latency_s: ArrayLike | None = None,
    efficiency: ArrayLike = 1.0,
) -> FloatArray:
    """latency + ring_factor * bytes / (efficiency x link bandwidth) (`link_bw_gbs`). `nbytes` is the
    collective's size as nccl-tests counts it (the full buffer of all_reduce / all_gather output /
    reduce_scatter input / alltoall). `latency_s` defaults to the device's scale-up latency;
    `efficiency` (bus bandwidth / link bandwidth) to 1."""
    nn = _f(n)
    alpha = device.scaleup_latency_us * 1e-6 if latency_s is None else _f(latency_s)
    bw = link_bw_gbs(nn, device) * _f(efficiency)
    return alpha + _ring_factor(op, nn) * _f(nbytes) / (bw * 1e9)


def moe_alltoall_sol(
    tokens: ArrayLike,
    hidden: ArrayLike,
    topk: ArrayLike,
    ep: ArrayLike,
    device: Device,
) -> FloatArray:
    """DeepEP dispatch or combine of `tokens` tokens per rank over `ep` ranks: each token's hidden
    state (16 bit) goes once to every other rank that holds at least one of its topk experts,
    (ep - 1) x (1 - (1 - 1/ep)^topk) ranks on average with uniform routing (the combine brings the
    same rows back), over the scale-up link within a node and the scale-out link beyond; plus the
    link latency."""
    t, h, k, e = _f(tokens), _f(hidden), _f(topk), np.maximum(_f(ep), 1.0)
    ranks = (e - 1.0) * -np.expm1(k * np.log1p(-1.0 / np.maximum(e, 2.0)))
    nbytes = t * h * OUT_BYTES * ranks
    return device.scaleup_latency_us * 1e-6 + nbytes / (link_bw_gbs(e, device) * 1e9)
