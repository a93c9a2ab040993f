"""MemoryPlan: where each device's memory goes, and how many tokens of KV cache are left.

Sharding rules (per device of one replica):
- attention and dense-FFN weights split over `tp` (replicated across attention-DP ranks);
- routed experts split over all `tp * dp` devices of a stage (EP x expert-TP);
- embeddings and LM head are vocab-parallel over `tp`;
- layers split over `pp` stages (the plan is for the heaviest stage);
- KV heads split over `tp` but never below one head per device; MLA's latent is replicated on every TP rank,
  which is why attention-DP matters for MLA models.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

from .deployment import Deployment
from .dtypes import GGUF_DTYPES, kv_bytes, weight_bytes
from .engines import EngineProfile
from .hardware import Device
from .model import ModelSpec

GB = 1e9
EMBEDDING_BYTES = 2.0  # embeddings and LM head stay 16-bit


@dataclass(frozen=True)
class ShardedParams:
    """Parameters one device of the heaviest pipeline stage holds, by role."""

    attn: float
    dense: float
    experts: float
    embedding: float


@dataclass(frozen=True)
class MemoryPlan:
    device_memory_gb: float
    budget_gb: float  # what the engine may use (memory fraction applied)
    weights_gb: float
    activation_gb: float
    overhead_gb: float  # runtime + graphs + communication buffers
    kv_cache_gb: float
    kv_bytes_per_token: float  # per device, for a token of one sequence (averaged over its layers)
    kv_capacity_tokens: int  # per attention-DP rank (the sequences one rank can hold)
    context_len: int
    max_concurrency: int  # sequences of `context_len` the whole replica can hold at once
    fits: bool
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_weight_dtype(model: ModelSpec, dtype: str) -> str:
    return model.checkpoint_dtype if dtype in ("auto", "", None) else dtype


def resolve_kv_dtype(dtype: str) -> str:
    return "bf16" if dtype in ("auto", "", None) else dtype


def sharded_params(model: ModelSpec, tp: int = 1, pp: int = 1, dp: int = 1) -> ShardedParams:
    """Per-device parameter counts for the heaviest pipeline stage (all of them with the defaults)."""
    attn = dense = experts = 0.0
    for layer, count in model.layer_groups:
        attn += layer.attn_params * count
        dense += layer.dense_params * count
        experts += layer.num_experts * layer.expert_params * count
    # A stage holds ceil(layers/pp) layers; the rounding matters for small layer counts.
    stage = math.ceil(model.num_layers / pp) / model.num_layers
    return ShardedParams(
        attn=attn * stage / tp,
        dense=dense * stage / tp,
        experts=experts * stage / (tp * dp),
        embedding=model.embedding_params / tp,
    )


def body_bytes_per_param(model: ModelSpec, dtype: str, role: str) -> float:
    """Bytes per parameter of one role at the chosen weight dtype.

    MXFP4 checkpoints (gpt-oss) quantise only the routed experts; attention and dense layers stay 16-bit.
    """
    if dtype == "mxfp4" and role != "experts":
        return 2.0
    return weight_bytes(dtype)


def weights_bytes_per_device(model: ModelSpec, dep: Deployment) -> float:
    """Weight bytes on the device of the heaviest stage.

    Served as stored (the checkpoint's own dtype), the weights are the checkpoint's bytes
    (`ModelSpec.checkpoint_bytes`, which counts mixed precision and the modules a checkpoint leaves
    unquantised, such as ModelOpt's exclusions), shared over the devices as the parameters are; any
    other dtype quantises each role as `body_bytes_per_param` says."""
    dtype = resolve_weight_dtype(model, dep.weight_dtype)
    # a GGUF file quantises token_embd and output too (its bits per weight are whole-file)
    embedding = weight_bytes(dtype) if dtype in GGUF_DTYPES else EMBEDDING_BYTES

    def at(p: ShardedParams) -> float:
        return (
            p.attn * body_bytes_per_param(model, dtype, "attn")
            + p.dense * body_bytes_per_param(model, dtype, "dense")
            + p.experts * body_bytes_per_param(model, dtype, "experts")
            + p.embedding * embedding
        )

    per_device = at(sharded_params(model, dep.tp, dep.pp, dep.dp))
    if dtype == model.checkpoint_dtype and model.checkpoint_bytes > 0:
        per_device *= model.checkpoint_bytes / at(sharded_params(model))
    return per_device


def kv_bytes_per_sequence(model: ModelSpec, dep: Deployment, context: int) -> float:
    """KV (and fixed recurrent state) bytes one sequence of `context` tokens needs on one device."""
    kvb = kv_bytes(resolve_kv_dtype(dep.kv_dtype))
    stage = math.ceil(model.num_layers / dep.pp) / model.num_layers
    total = 0.0
    for layer, count in model.layer_groups:
        tokens = context if layer.window is None else min(context, layer.window)
        if layer.attention == "linear":
            tokens = 0
        per_layer = layer.kv_bytes_per_token(kvb, dep.tp) * tokens
        per_layer += layer.state_elems * 4.0 / max(1, min(dep.tp, layer.q_heads))  # fp32 state
        total += per_layer * count
    return total * stage


def activation_bytes(model: ModelSpec, dep: Deployment, tokens: int, max_seqs: int) -> float:
    """Peak activation memory of a forward pass over `tokens` (the engine's profiling run).

    Dominated by the widest intermediate (gate+up of the FFN or the experts' dispatch buffers) plus
    the sampler's fp32 logits for every running sequence.
    """
    widest = max(
        max(layer.dense_params, layer.expert_params * max(1, layer.top_k))
        / max(1, model.hidden_size)
        for layer, _ in model.layer_groups
    )
    per_token = (6 * model.hidden_size + 2 * widest / dep.tp) * 2.0
    logits = max_seqs * model.vocab_size / dep.tp * 4.0
    return tokens * per_token + logits


def plan_memory(
    model: ModelSpec,
    device: Device,
    engine: EngineProfile,
    dep: Deployment,
    context_len: int,
) -> MemoryPlan:
    """Memory per device for `dep`, and how many `context_len`-token sequences fit."""
    default_seqs, default_tokens = engine.defaults_for(device.memory_gb)
    max_seqs = dep.max_num_seqs or default_seqs
    tokens = dep.max_num_batched_tokens or default_tokens
    util = dep.gpu_memory_utilization or engine.default_gpu_memory_utilization

    weights = weights_bytes_per_device(model, dep)
    if dep.spec_method != "none":
        from .speculative import draft_weight_bytes

        dtype = resolve_weight_dtype(model, dep.weight_dtype)
        per_param = model.weight_bytes(dtype) / max(model.total_params, 1)
        weights += draft_weight_bytes(model, dep, per_param) / dep.tp  # on the last stage
    act = activation_bytes(model, dep, tokens, max_seqs)
    overhead = engine.runtime_overhead_gb * GB + (
        engine.graph_overhead_gb * GB if engine.graphs else 0
    )
    if dep.devices_per_replica > 1:
        overhead += engine.comm_overhead_gb * GB
    total = device.memory_gb * GB
    if engine.memory_fraction_of_free:
        budget = total
        kv = (total - weights - act - overhead) * util
    else:
        budget = total * util
        kv = budget - weights - act - overhead

    per_seq = kv_bytes_per_sequence(model, dep, context_len)
    if dep.spec_method == "draft":
        # a draft model caches every token too, in its own layers beside the target's
        from .speculative import draft_deployment, draft_model

        per_seq += kv_bytes_per_sequence(draft_model(dep), draft_deployment(dep), context_len)
    per_token = per_seq / context_len if context_len else 0.0
    capacity_tokens = int(kv / per_token) if kv > 0 and per_token > 0 else 0
    seqs_per_rank = int(kv // per_seq) if kv > 0 and per_seq > 0 else 0
    max_conc = seqs_per_rank * dep.dp
    fits = kv > 0 and seqs_per_rank >= 1
    if weights > budget:
        reason = (
            f"weights need {weights / GB:.1f} GB per device but only {budget / GB:.1f} GB is usable"
        )
    elif not fits:
        reason = (
            f"no room for one {context_len}-token sequence: weights {weights / GB:.1f} GB + "
            f"activations {act / GB:.1f} GB + overhead {overhead / GB:.1f} GB "
            f"of {budget / GB:.1f} GB usable"
        )
    else:
        reason = "fits"
    return MemoryPlan(
        device_memory_gb=device.memory_gb,
        budget_gb=budget / GB,
        weights_gb=weights / GB,
        activation_gb=act / GB,
        overhead_gb=overhead / GB,
        kv_cache_gb=max(0.0, kv) / GB,
        kv_bytes_per_token=per_token,
        kv_capacity_tokens=capacity_tokens,
        context_len=context_len,
        max_concurrency=max_conc,
        fits=fits,
        reason=reason,
    )
