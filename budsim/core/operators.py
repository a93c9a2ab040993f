"""Operators: what one engine iteration runs on one device of a replica, as shapes (no timing).

A deployment's model is cut, per pipeline stage and per device, into the operators an engine
launches for every layer: the projection GEMMs, attention (prefill and decode, GQA or MLA), the
routed experts, linear-attention mixers, elementwise kernels (norms, rotary, activation) and the
collectives that tensor, expert and pipeline parallelism add, plus the LM head. A cost source
(measured kernel tables, or the roofline fallback) prices them; `budsim.core.steptime` folds the
prices into the step time the simulator asks for. Keeping the shapes apart from the prices is
what lets one decomposition serve both sources (Vidur separates operators from their
execution-time predictors the same way).

Sharding follows budsim.core.memory: attention and dense weights split over `tp` (column-parallel
layers cut n, row-parallel ones k), routed experts over the stage's `tp * dp` devices (EP x
expert-TP), the vocabulary over `tp`, layers over `pp` (the slowest stage has ceil(L / pp)).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .deployment import Deployment
from .dtypes import GGUF_DTYPES, kv_bytes
from .memory import body_bytes_per_param, resolve_kv_dtype, resolve_weight_dtype
from .model import LayerSpec, ModelSpec

ACT_BYTES = 2.0  # activations travel in 16 bit
STATE_BYTES = 4.0  # linear-attention / SSM state is kept in fp32
# Elementwise kernels per layer outside the GEMMs and attention: two fused residual+RMSNorm, the
# rotary embedding and the gated activation; the bytes each token moves through them (reads and
# writes of hidden-sized vectors, the activation on the FFN width).
ELEMENTWISE_KERNELS = 4
ELEMENTWISE_HIDDEN_PASSES = 8


@dataclass(frozen=True)
class GemmOp:
    """`count` GEMMs per stage of weight n x k (per device) in format `fmt`, on the tokens of one
    attention rank."""

    n: int
    k: int
    fmt: str
    count: float
    mla: bool = False  # a projection of an MLA block (module kernel tables may include it)


@dataclass(frozen=True)
class AttentionOp:
    """Softmax attention of `count` layers per stage, heads per device."""

    heads: int
    kv_heads: int
    head_dim: int  # score dot-product width (MLA absorbed: latent + rope)
    v_dim: int
    prefill_head_dim: int  # MLA prefill runs un-absorbed (nope + rope)
    prefill_v_dim: int
    window: int | None
    kv_dtype: str
    kv_bytes_per_token: float  # per device
    mla: bool
    count: float


@dataclass(frozen=True)
class LinearMixerOp:
    """Linear attention / SSM layers: a fixed per-sequence state read and written every step."""

    heads: int
    dims: int  # (key + value) width per head
    state_bytes: float  # per sequence per device
    count: float


@dataclass(frozen=True)
class MoeOp:
    """Routed experts of `count` MoE layers per stage on one device of the stage's expert group."""

    hidden: int
    inter: int  # one expert's intermediate width (whole, before expert-TP)
    topk: int
    experts: int
    moe_tp: int
    moe_ep: int
    fmt: str
    gated: bool
    count: float


@dataclass(frozen=True)
class CollectiveOp:
    """`count` collectives per stage over `ranks` devices, each moving `bytes_per_token` bytes per
    token of the scope: "rank" (one attention rank's tokens) or "stage" (the whole stage's)."""

    op: str  # all_reduce | all_gather | reduce_scatter | alltoall | p2p
    ranks: int
    bytes_per_token: float
    count: float
    scope: str = "rank"


@dataclass(frozen=True)
class ReplicaOperators:
    """Everything one iteration runs on the slowest device of a replica."""

    gemms: tuple[GemmOp, ...]
    attention: tuple[AttentionOp, ...]
    linear: tuple[LinearMixerOp, ...]
    moe: tuple[MoeOp, ...]
    collectives: tuple[CollectiveOp, ...]
    lm_head: GemmOp  # count 1, on the sequences that emit a token
    elementwise_bytes_per_token: float  # per stage
    elementwise_kernels: float  # per stage
    layers: float  # per stage (the slowest stage)
    hidden: int
    tp: int
    pp: int
    dp: int
    ep: int

    @property
    def micro(self) -> int:
        """Shares a step's tokens are split into: pipeline micro-batches x attention-DP ranks."""
        return self.pp * self.dp


def gemm_format(model: ModelSpec, weight_dtype: str, role: str) -> str:
    """The kernel format of a projection with weights of `weight_dtype` playing `role` ("attn",
    "dense", "experts" or "router"): routers and the 16-bit parts of mixed checkpoints stay bf16;
    FP8 checkpoints quantised per block run block-scaled kernels."""
    if role == "router" or body_bytes_per_param(model, weight_dtype, role) >= 2.0:
        return "bf16"
    if weight_dtype == "fp8":
        block = model.fp8_block and model.checkpoint_dtype == "fp8"
        return "fp8_block" if block else "fp8"
    return "bf16" if weight_dtype == "fp16" else weight_dtype


def _layer_gemms(layer: LayerSpec, hidden: int) -> list[tuple[str, int, int, str]]:
    """The layer's weight matrices; parameters the config describes only by count (linear-attention
    projections, extra blocks) become one column-parallel GEMM on the hidden state, which moves
    the same bytes and does the same flops."""
    gemms = list(layer.gemms)
    for role, params in (("attn", layer.attn_params), ("dense", layer.dense_params)):
        listed = sum(
            n * k for r, n, k, _ in gemms if r == role or (role == "attn" and r == "router")
        )
        rest = params - listed
        if rest > 0.02 * params and rest >= hidden:
            gemms.append((role, max(1, round(rest / hidden)), hidden, "col"))
    return gemms


def replica_operators(model: ModelSpec, dep: Deployment) -> ReplicaOperators:
    """The operators of one iteration on the slowest stage of a replica of `dep`."""
    wdtype = resolve_weight_dtype(model, dep.weight_dtype)
    kv_dtype = resolve_kv_dtype(dep.kv_dtype)
    kvb = kv_bytes(kv_dtype)
    tp, pp, dp, ep = dep.tp, dep.pp, dep.dp, dep.ep
    # the slowest stage holds ceil(L / pp) layers, of each kind in proportion
    stage = math.ceil(model.num_layers / pp) / model.num_layers
    hidden = model.hidden_size
    gemms: dict[tuple[int, int, str, bool], float] = {}
    attention: list[AttentionOp] = []
    linear: list[LinearMixerOp] = []
    moe: list[MoeOp] = []
    collectives: list[CollectiveOp] = []
    for layer, n_layers in model.layer_groups:
        count = n_layers * stage
        for role, n, k, split in _layer_gemms(layer, hidden):
            if split == "col":
                n = max(1, math.ceil(n / tp))
            elif split == "row":
                k = max(1, math.ceil(k / tp))
            key = (n, k, gemm_format(model, wdtype, role), layer.is_mla and role == "attn")
            gemms[key] = gemms.get(key, 0.0) + count
        if layer.attention == "linear":
            if layer.q_heads:
                linear.append(
                    LinearMixerOp(
                        heads=max(1, math.ceil(layer.q_heads / tp)),
                        dims=layer.qk_dim + layer.v_dim,
                        state_bytes=layer.state_elems
                        * STATE_BYTES
                        / max(1, min(tp, layer.q_heads)),
                        count=count,
                    )
                )
        else:
            heads = max(1, math.ceil(layer.q_heads / tp))  # engines that pad heads compute the pad
            kv_heads = 1 if layer.is_mla else max(1, math.ceil(layer.kv_heads / tp))
            attention.append(
                AttentionOp(
                    heads=heads,
                    kv_heads=kv_heads,
                    head_dim=layer.qk_dim,
                    v_dim=layer.v_dim,
                    prefill_head_dim=layer.prefill_qk_dim or layer.qk_dim,
                    prefill_v_dim=layer.prefill_v_dim or layer.v_dim,
                    window=layer.window,
                    kv_dtype=kv_dtype,
                    kv_bytes_per_token=layer.kv_bytes_per_token(kvb, tp),
                    mla=layer.is_mla,
                    count=count,
                )
            )
        spread = bool(layer.num_experts) and (ep > 1 or dp > 1)
        if layer.num_experts:
            width = layer.expert_in or hidden
            inter = layer.expert_inter or max(
                1, round(layer.expert_params / ((3 if layer.expert_gated else 2) * width))
            )
            moe.append(
                MoeOp(
                    hidden=width,
                    inter=inter,
                    topk=layer.top_k,
                    experts=layer.num_experts,
                    moe_tp=tp * dp // ep,
                    moe_ep=ep,
                    fmt=gemm_format(model, wdtype, "experts"),
                    gated=layer.expert_gated,
                    count=count,
                )
            )
            group = tp * dp
            if ep > 1:
                # dispatch and combine: each rank sends its tokens' hidden states to the ranks
                # holding their top-k experts and gets the results back
                # (an attention rank's tokens are the same on its tp peers: each sends a share)
                share = layer.top_k * (ep - 1) / ep / tp
                collectives.append(
                    CollectiveOp("alltoall", ep, share * hidden * ACT_BYTES, 2 * count)
                )
            elif dp > 1:
                # experts sharded over every rank: gather the stage's tokens, scatter the results
                collectives.append(
                    CollectiveOp("all_gather", group, hidden * ACT_BYTES, count, "stage")
                )
                collectives.append(
                    CollectiveOp("reduce_scatter", group, hidden * ACT_BYTES, count, "stage")
                )
        if tp > 1:
            # one all-reduce after the mixer, one after the FFN (for MoE layers whose experts are
            # spread over EP or DP ranks the second is the expert communication above)
            times = 1 if spread else 2
            collectives.append(CollectiveOp("all_reduce", tp, hidden * ACT_BYTES, times * count))
    if pp > 1:
        collectives.append(CollectiveOp("p2p", 2, hidden * ACT_BYTES, (pp - 1) / pp))
    layers = model.num_layers * stage
    return ReplicaOperators(
        gemms=tuple(GemmOp(n, k, fmt, count, mla) for (n, k, fmt, mla), count in gemms.items()),
        attention=tuple(attention),
        linear=tuple(linear),
        moe=tuple(moe),
        collectives=tuple(collectives),
        # GGUF files quantise the output matrix too (budsim.core.memory counts it that way)
        lm_head=GemmOp(
            max(1, math.ceil(model.vocab_size / tp)),
            hidden,
            wdtype if wdtype in GGUF_DTYPES else "bf16",
            1.0,
        ),
        elementwise_bytes_per_token=layers * hidden * ELEMENTWISE_HIDDEN_PASSES * ACT_BYTES,
        elementwise_kernels=layers * ELEMENTWISE_KERNELS,
        layers=layers,
        hidden=hidden,
        tp=tp,
        pp=pp,
        dp=dp,
        ep=ep,
    )
