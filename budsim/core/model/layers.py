"""Building blocks the family builders share: one layer is a mixer (``_Mixer``: GQA, MLA or a
linear/SSM block) plus an FFN (``_Ffn``: dense or MoE) turned into a ``LayerSpec`` by
``_make_layer``; plus the config readers every family uses (KV heads, sliding windows, which
layers are MoE, experts and top-k, shared-expert width).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from ..errors import BudsimError
from .config import _Cfg, _first_list
from .spec import LayerSpec

# --------------------------------------------------------------------------------------------------
# Layer construction
# --------------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    spec: LayerSpec
    attn_idx: int | None  # config module index of the mixer (for quantisation exclusions)
    mlp_idx: int | None  # config module index of the FFN


@dataclass
class _Mixer:
    attention: str
    window: int | None
    q_heads: int
    kv_heads: int
    qk_dim: int
    v_dim: int
    kv_elems: int
    state: int
    params: int
    is_mla: bool
    prefill_qk: int | None = None
    prefill_v: int | None = None
    gemms: tuple[tuple[str, int, int, str], ...] = ()  # see LayerSpec.gemms


@dataclass
class _Ffn:
    kind: str  # dense | moe
    dense: int
    experts: int
    top_k: int
    expert: int
    router: int
    gemms: tuple[tuple[str, int, int, str], ...] = ()  # see LayerSpec.gemms
    expert_in: int = 0  # see LayerSpec.expert_in
    expert_inter: int = 0
    expert_gated: bool = True


_NO_MIXER = _Mixer("linear", None, 0, 0, 0, 0, 0, 0, 0, False)
_NO_FFN = _Ffn("dense", 0, 0, 0, 0, 0)


def _make_layer(
    mixer: _Mixer, ffn: _Ffn, extra: int, attn_idx: int | None, mlp_idx: int | None
) -> _Layer:
    spec = LayerSpec(
        attention=mixer.attention,
        window=mixer.window,
        q_heads=mixer.q_heads,
        kv_heads=mixer.kv_heads,
        qk_dim=mixer.qk_dim,
        v_dim=mixer.v_dim,
        kv_elems_per_token=mixer.kv_elems,
        state_elems=mixer.state,
        attn_params=mixer.params + ffn.router + extra,
        mlp_kind=ffn.kind,
        dense_params=ffn.dense,
        num_experts=ffn.experts if ffn.kind == "moe" else 0,
        top_k=ffn.top_k if ffn.kind == "moe" else 0,
        expert_params=ffn.expert if ffn.kind == "moe" else 0,
        is_mla=mixer.is_mla,
        prefill_qk_dim=mixer.prefill_qk,
        prefill_v_dim=mixer.prefill_v,
        gemms=mixer.gemms + ffn.gemms,
        expert_in=ffn.expert_in if ffn.kind == "moe" else 0,
        expert_inter=ffn.expert_inter if ffn.kind == "moe" else 0,
        expert_gated=ffn.expert_gated,
    )
    return _Layer(spec, attn_idx, mlp_idx)


def _gqa_mixer(
    hidden: int,
    heads: int,
    kv: int,
    head_dim: int,
    *,
    attention: str = "full",
    window: int | None = None,
    v_head_dim: int | None = None,
    qkv_bias: bool = False,
    o_bias: bool = False,
    qk_norm: int = 0,
    q_gate: bool = False,
    no_v_proj: bool = False,
    sinks: bool = False,
    extra: int = 0,
) -> _Mixer:
    vd = v_head_dim or head_dim
    q_out = heads * head_dim * (2 if q_gate else 1)
    params = hidden * q_out + hidden * kv * head_dim + heads * vd * hidden
    if not no_v_proj:
        params += hidden * kv * vd
    if qkv_bias:
        params += heads * head_dim + kv * head_dim + (0 if no_v_proj else kv * vd)
    if o_bias:
        params += hidden
    if sinks:
        params += heads
    params += qk_norm + extra
    kv_elems = kv * (head_dim + vd)
    qkv = q_out + kv * head_dim + (0 if no_v_proj else kv * vd)
    gemms = (("attn", qkv, hidden, "col"), ("attn", hidden, heads * vd, "row"))
    return _Mixer(
        attention, window, heads, kv, head_dim, vd, kv_elems, 0, params, False, gemms=gemms
    )


def _mla_mixer(
    c: _Cfg, hidden: int, *, attention: str = "full", window: int | None = None
) -> _Mixer:
    heads = c.pos("num_attention_heads")
    rank = c.pos("kv_lora_rank")
    rope = c.pos("qk_rope_head_dim")
    nope = c.int_("qk_nope_head_dim", default=0)
    v = c.pos("v_head_dim", default=nope or 128)
    q_rank = c.opt_int("q_lora_rank")
    qk_head = nope + rope
    gemms: list[tuple[str, int, int, str]] = []
    if q_rank:
        q = hidden * q_rank + q_rank + q_rank * heads * qk_head
        # engines fuse the two down-projections (q_a and kv_a) into one replicated GEMM
        gemms += [("attn", q_rank + rank + rope, hidden, "rep")]
        gemms += [("attn", heads * qk_head, q_rank, "col")]
    else:
        q = hidden * heads * qk_head
        gemms += [("attn", rank + rope, hidden, "rep"), ("attn", heads * qk_head, hidden, "col")]
    kv = hidden * (rank + rope) + rank + rank * heads * (nope + v)
    o = heads * v * hidden
    gemms += [("attn", heads * (nope + v), rank, "col"), ("attn", hidden, heads * v, "row")]
    params = q + kv + o
    if c.flag("attention_bias"):
        params += hidden
    return _Mixer(
        attention,
        window,
        heads,
        1,
        rank + rope,
        rank,
        rank + rope,
        0,
        params,
        True,
        qk_head,
        v,
        gemms=tuple(gemms),
    )


def _dsa_indexer(c: _Cfg, hidden: int) -> tuple[int, int]:
    """DeepSeek-V3.2 / GLM-5 sparse-attention indexer: (params, cached elems per token)."""
    n = c.opt_int("index_n_heads")
    d = c.opt_int("index_head_dim")
    if not n or not d:
        return 0, 0
    q_rank = c.opt_int("q_lora_rank") or hidden
    params = q_rank * n * d + hidden * d + 2 * d + hidden * n
    return params, d


def _ffn_gemms(hidden: int, inter: int, gated: bool) -> tuple[tuple[str, int, int, str], ...]:
    """The up (gate and up fused when gated) and down projections of one MLP."""
    return (("dense", (2 if gated else 1) * inter, hidden, "col"), ("dense", hidden, inter, "row"))


def _dense_ffn(hidden: int, inter: int, gated: bool, bias: bool = False) -> _Ffn:
    params = (3 if gated else 2) * hidden * inter
    if bias:
        params += inter * (2 if gated else 1) + hidden
    return _Ffn("dense", params, 0, 0, 0, 0, gemms=_ffn_gemms(hidden, inter, gated))


def _expert_params(hidden: int, inter: int, gated: bool, bias: bool = False) -> int:
    params = (3 if gated else 2) * hidden * inter
    if bias:
        params += inter * (2 if gated else 1) + hidden
    return params


def _layer_flags(values: Any, n: int, truthy: Iterable[Any]) -> list[bool] | None:
    items = _first_list(values)
    if items is None:
        return None
    if len(items) < n:
        raise BudsimError(f"per-layer list has {len(items)} entries for {n} layers")
    truth = set(truthy)
    return [item in truth for item in items[:n]]


def _moe_layer_mask(c: _Cfg, n: int) -> list[bool]:
    """Which layers are MoE, from the many ways configs say it."""
    mlp_types = _first_list(c.get("mlp_layer_types"))
    if mlp_types and len(mlp_types) >= n:
        return [str(t).lower() in ("sparse", "moe") for t in mlp_types[:n]]
    freq = c.get("moe_layer_freq")
    if isinstance(freq, (list, tuple)):
        flags = _layer_flags(freq, n, (1, True, "1"))
        assert flags is not None
        return flags
    first_dense = c.int_("first_k_dense_replace", default=0)
    step = c.int_("interleave_moe_layer_step", "decoder_sparse_step", "moe_layer_freq", default=1)
    step = max(1, step)
    only_dense = set(_first_list(c.get("mlp_only_layers")) or [])
    explicit = _first_list(c.get("moe_layers"))
    mask = []
    for i in range(n):
        if explicit is not None:
            mask.append(i in explicit)
            continue
        if i < first_dense or i in only_dense:
            mask.append(False)
            continue
        if c.get("interleave_moe_layer_step") is not None:
            mask.append((i + 1) % step == 0)  # Llama 4: layers step-1, 2*step-1, ...
        elif c.get("decoder_sparse_step") is not None:
            mask.append((i + 1) % step == 0)  # Qwen2/3-MoE
        else:
            mask.append((i - first_dense) % step == 0)  # DeepSeek moe_layer_freq
    return mask


def _layer_types(c: _Cfg, n: int) -> list[str] | None:
    types = _first_list(c.get("layer_types"))
    if types is None:
        return None
    if len(types) < n:
        raise BudsimError(
            f"model config {c.name!r}: layer_types has {len(types)} entries for {n} layers"
        )
    out = []
    for t in types[:n]:
        s = str(t).lower()
        if "linear" in s or "mamba" in s or "ssm" in s or "recurrent" in s:
            out.append("linear")
        elif "sliding" in s or "local" in s or "chunk" in s or "swa" in s:
            out.append("sliding")
        else:
            out.append("full")
    return out


def _attention_shape(c: _Cfg, hidden: int) -> tuple[int, int, int]:
    """(query heads, KV heads, head dim) of configs that name them the standard way: KV heads
    default to the query heads (plain multi-head attention), head dim to hidden / heads."""
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    return heads, kv, head_dim


def _kv_heads(c: _Cfg, heads: int) -> int:
    if c.get("multi_query") is True and c.get("new_decoder_architecture") is not True:
        return 1
    kv = c.opt_int("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
    if kv is None:
        return heads
    if kv <= 0 or kv > heads:
        raise BudsimError(
            f"model config {c.name!r}: num_key_value_heads must be in 1..{heads}, got {kv}"
        )
    return kv


def _window_kinds(c: _Cfg, mt: str, n: int) -> tuple[int | None, list[str]]:
    """Sliding window size and per-layer attention kind for GQA decoders."""
    window = c.opt_int("sliding_window", "sliding_window_size", "attention_window_size")
    types = _layer_types(c, n)
    if types is not None:
        if window is None and "sliding" in types:
            raise BudsimError(f"model config {c.name!r} has sliding layers but no sliding_window")
        return window, types
    if not window or window <= 0:
        return None, ["full"] * n
    if mt == "gemma2":
        return window, ["sliding" if i % 2 == 0 else "full" for i in range(n)]
    if mt in ("gemma3", "gemma3_text"):
        pattern = c.int_("sliding_window_pattern", default=6)
        return window, ["sliding" if (i + 1) % pattern else "full" for i in range(n)]
    use = c.get("use_sliding_window")
    if use is False:
        return None, ["full"] * n
    max_window_layers = c.opt_int("max_window_layers")
    if use is True and max_window_layers is not None:
        return window, ["sliding" if i >= max_window_layers else "full" for i in range(n)]
    mpe = c.opt_int("max_position_embeddings")
    if mpe is not None and window >= mpe:
        return None, ["full"] * n
    return window, ["sliding"] * n


def _moe_ffn(
    c: _Cfg,
    hidden: int,
    *,
    experts: int,
    top_k: int,
    expert_inter: int,
    shared_inter: int = 0,
    gated: bool = True,
    expert_bias: bool = False,
    router_bias: bool = False,
    shared_gate: bool = False,
    latent: int | None = None,
    extra_dense: int = 0,
) -> _Ffn:
    width = latent or hidden
    expert = _expert_params(width, expert_inter, gated, expert_bias)
    dense = _expert_params(hidden, shared_inter, gated) if shared_inter else 0
    if shared_gate:
        dense += hidden
    gemms = [("router", experts, hidden, "rep")]
    if shared_inter:
        gemms += _ffn_gemms(hidden, shared_inter, gated)
    if latent:
        dense += 2 * hidden * latent
        gemms += [("dense", latent, hidden, "rep"), ("dense", hidden, latent, "rep")]
    dense += extra_dense
    router = hidden * experts + (experts if router_bias else 0)
    return _Ffn(
        "moe",
        dense,
        experts,
        top_k,
        expert,
        router,
        gemms=tuple(gemms),
        expert_in=width,
        expert_inter=expert_inter,
        expert_gated=gated,
    )


def _experts_top_k(c: _Cfg) -> tuple[int, int]:
    experts = c.pos(
        "n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts", "n_experts"
    )
    top_k = c.pos(
        "num_experts_per_tok",
        "experts_per_token",
        "num_experts_per_token",
        "moe_top_k",
        "top_k_experts",
        "moe_k",
    )
    if top_k > experts:
        raise BudsimError(f"model config {c.name!r}: top-k {top_k} exceeds {experts} experts")
    return experts, top_k


def _shared_inter(c: _Cfg, expert_inter: int) -> int:
    value = c.opt_int(
        "shared_expert_intermediate_size",
        "moe_shared_expert_intermediate_size",
        "shared_intermediate_size",
        "share_expert_dim",
    )
    count = c.opt_int("n_shared_experts", "num_shared_experts")
    if value is not None:
        return value * (count if count and count > 1 and c.get("share_expert_dim") is None else 1)
    if count:
        return count * expert_inter
    return 0


def _routed_ffn(
    c: _Cfg,
    hidden: int,
    *inter_keys: str,
    shared_gate: bool = False,
    router_bias: bool = False,
    latent: int | None = None,
) -> _Ffn:
    """The MoE block of the families that name their experts the common ways: expert count and
    top-k per _experts_top_k, the expert width under the first of `inter_keys` the config has,
    shared experts per _shared_inter (read in that order, so a bad config fails the same way)."""
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos(*inter_keys)
    return _moe_ffn(
        c,
        hidden,
        experts=experts,
        top_k=top_k,
        expert_inter=expert_inter,
        shared_inter=_shared_inter(c, expert_inter),
        shared_gate=shared_gate,
        router_bias=router_bias,
        latent=latent,
    )
