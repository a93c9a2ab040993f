"""Mixture-of-experts families: Mixtral-like GQA MoE decoders, DeepSeek (MLA, DSA) and
DeepSeek-V4, gpt-oss, Llama 4, Gemma 4, MiMo-V2, MiniMax-M3 and Step.
"""

from __future__ import annotations

from dataclasses import replace

from ..config import _QK_NORM, _QKV_BIAS, _Cfg, _first_list
from ..layers import (
    _attention_shape,
    _dense_ffn,
    _dsa_indexer,
    _expert_params,
    _experts_top_k,
    _gqa_mixer,
    _kv_heads,
    _Layer,
    _layer_flags,
    _make_layer,
    _Mixer,
    _mla_mixer,
    _moe_ffn,
    _moe_layer_mask,
    _routed_ffn,
    _shared_inter,
    _window_kinds,
)


def _mixtral_like_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    """Mixtral, Qwen2/3-MoE (+VL), MiniMax-M2, PhiMoE, OLMoE, GraniteMoE and other GQA MoE decoders."""
    heads = c.pos("num_attention_heads")
    kv = _kv_heads(c, heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size", "intermediate_size")
    shared = _shared_inter(c, expert_inter)
    dense_inter = c.opt_int("intermediate_size") or expert_inter
    qk_norm = 0
    if mt in _QK_NORM or c.flag("use_qk_norm"):
        if str(c.get("qk_norm_type", default="per_head")) == "per_layer":
            qk_norm = (heads + kv) * head_dim
        else:
            qk_norm = 2 * head_dim
    window, kinds = _window_kinds(c, mt, n)
    mask = _moe_layer_mask(c, n)
    routed = _moe_ffn(
        c,
        hidden,
        experts=experts,
        top_k=top_k,
        expert_inter=expert_inter,
        shared_inter=shared,
        shared_gate=mt in ("qwen2_moe",) and shared > 0,
    )
    dense = _dense_ffn(hidden, dense_inter, True)
    layers = []
    for i in range(n):
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention=kinds[i],
            window=window if kinds[i] == "sliding" else None,
            qkv_bias=mt in _QKV_BIAS or c.flag("attention_bias"),
            qk_norm=qk_norm,
        )
        layers.append(_make_layer(mixer, routed if mask[i] else dense, 2 * hidden, i, i))
    return layers


def _deepseek_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    """DeepSeek-V2/V3/V3.2/R1, Kimi-K2, GLM-5 (MLA + optional DSA indexer), and GQA variants (GLM-4.5)."""
    mla = c.opt_int("kv_lora_rank") is not None
    routed = _routed_ffn(
        c,
        hidden,
        "moe_intermediate_size",
        router_bias=str(c.get("topk_method", default="")) == "noaux_tc",
    )
    dense = _dense_ffn(hidden, c.pos("intermediate_size", default=routed.expert_inter), True)
    mask = _moe_layer_mask(c, n)
    indexer_params, indexer_elems = _dsa_indexer(c, hidden)
    indexer_types = _first_list(c.get("indexer_types"))
    layers = []
    for i in range(n):
        if mla:
            mixer = _mla_mixer(c, hidden)
            has_indexer = indexer_params and (
                indexer_types is None or str(indexer_types[i]).lower() != "shared"
            )
            if has_indexer:
                mixer = replace(
                    mixer,
                    params=mixer.params + indexer_params,
                    kv_elems=mixer.kv_elems + indexer_elems,
                )
        else:
            heads = c.pos("num_attention_heads")
            kv = _kv_heads(c, heads)
            head_dim = c.pos("head_dim", default=hidden // heads)
            mixer = _gqa_mixer(
                hidden,
                heads,
                kv,
                head_dim,
                qkv_bias=c.flag("attention_bias"),
                qk_norm=2 * head_dim if c.flag("use_qk_norm") else 0,
            )
        layers.append(_make_layer(mixer, routed if mask[i] else dense, 2 * hidden, i, i))
    return layers


def _deepseek_v4_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """DeepSeek-V4: one shared latent KV head, grouped low-rank output, compressed-KV layers.

    ``compress_ratios[i]`` 0 = sliding-window-only layer; 4 = compressed sparse attention (with an
    indexer over compressed keys); 128 = heavily compressed attention over all compressed KV.
    """
    heads = c.pos("num_attention_heads")
    head_dim = c.pos("head_dim")
    q_rank = c.pos("q_lora_rank")
    o_rank = c.pos("o_lora_rank", default=hidden)
    o_groups = c.pos("o_groups", default=1)
    window = c.opt_int("sliding_window") or 128
    ratios = _first_list(c.get("compress_ratios")) or [0] * n
    index_heads = c.int_("index_n_heads", default=0)
    index_dim = c.int_("index_head_dim", default=0)
    ffn = _routed_ffn(c, hidden, "moe_intermediate_size")
    hc = c.int_("hc_mult", default=1)
    # hyper-connection mixing weights of the attention and FFN sub-layers, plus two norms
    extra = 2 * hidden + (2 * hc * hidden * (hc * hc + 2 * hc) if hc > 1 else 0)
    base = hidden * q_rank + q_rank + q_rank * heads * head_dim  # q down/up
    base += hidden * head_dim + head_dim  # the single latent KV head
    base += heads * head_dim * o_rank + o_groups * o_rank * hidden  # grouped low-rank output
    base += heads  # attention sinks
    layers = []
    for i in range(n):
        ratio = int(ratios[i]) if i < len(ratios) else 0
        params = base
        if ratio:
            params += 2 * hidden * head_dim + 2 * head_dim * ratio  # compressor (kv + gate)
            elems = -(-head_dim // ratio)
            if ratio == 4 and index_heads and index_dim:
                params += q_rank * index_heads * index_dim + hidden * index_heads
                params += 2 * hidden * index_dim
                elems += -(-index_dim // ratio)
            mixer = _Mixer("full", None, heads, 1, head_dim, head_dim, elems, 0, params, True)
        else:
            mixer = _Mixer(
                "sliding", window, heads, 1, head_dim, head_dim, head_dim, 0, params, True
            )
        layers.append(_make_layer(mixer, ffn, extra, i, i))
    return layers


def _gpt_oss_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads")
    head_dim = c.pos("head_dim", default=hidden // heads)
    experts, top_k = _experts_top_k(c)
    inter = c.pos("intermediate_size")
    window, kinds = _window_kinds(c, "gpt_oss", n)
    if _first_list(c.get("layer_types")) is None and window:
        kinds = ["sliding" if i % 2 == 0 else "full" for i in range(n)]
    ffn = _moe_ffn(
        c,
        hidden,
        experts=experts,
        top_k=top_k,
        expert_inter=inter,
        expert_bias=True,
        router_bias=True,
    )
    layers = []
    for i in range(n):
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention=kinds[i],
            window=window if kinds[i] == "sliding" else None,
            qkv_bias=True,
            o_bias=True,
            sinks=True,
        )
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _llama4_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads, kv, head_dim = _attention_shape(c, hidden)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("intermediate_size")
    dense_inter = c.pos("intermediate_size_mlp", default=expert_inter)
    chunk = c.opt_int("attention_chunk_size")
    no_rope = _first_list(c.get("no_rope_layers"))
    interval = c.int_("no_rope_layer_interval", default=4)
    if no_rope is None or len(no_rope) < n:
        no_rope = [int((i + 1) % interval != 0) for i in range(n)]
    mask = _moe_layer_mask(c, n)
    routed = _moe_ffn(
        c,
        hidden,
        experts=experts,
        top_k=top_k,
        expert_inter=expert_inter,
        shared_inter=expert_inter,
    )
    dense = _dense_ffn(hidden, dense_inter, True)
    layers = []
    for i in range(n):
        chunked = bool(no_rope[i]) and chunk is not None
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention="sliding" if chunked else "full",
            window=chunk if chunked else None,
            qkv_bias=c.flag("attention_bias"),
        )
        layers.append(_make_layer(mixer, routed if mask[i] else dense, 2 * hidden, i, i))
    return layers


def _gemma4_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads, kv, head_dim = _attention_shape(c, hidden)
    global_head_dim = c.pos("global_head_dim", default=head_dim)
    k_eq_v = c.flag("attention_k_eq_v")
    global_kv = c.pos("num_global_key_value_heads", default=kv) if k_eq_v else kv
    window, kinds = _window_kinds(c, "gemma4_text", n)
    inter = c.pos("intermediate_size")
    moe = c.flag("enable_moe_block")
    shared_kv_layers = c.int_("num_kv_shared_layers", default=0)
    layers = []
    for i in range(n):
        sliding = kinds[i] == "sliding"
        if sliding:
            mixer = _gqa_mixer(
                hidden,
                heads,
                kv,
                head_dim,
                attention="sliding",
                window=window,
                qk_norm=2 * head_dim,
            )
        else:
            mixer = _gqa_mixer(
                hidden,
                heads,
                global_kv,
                global_head_dim,
                no_v_proj=k_eq_v,
                qk_norm=2 * global_head_dim,
            )
        if i >= n - shared_kv_layers > 0:
            mixer = replace(mixer, kv_elems=0)  # reuses an earlier layer's cache (YOCO)
        if moe:
            experts, top_k = _experts_top_k(c)
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=c.pos("moe_intermediate_size", "expert_intermediate_size"),
                extra_dense=_expert_params(hidden, inter, True),
            )
        else:
            ffn = _dense_ffn(hidden, inter, True)
        layers.append(_make_layer(mixer, ffn, 5 * hidden, i, i))
    return layers


def _mimo_v2_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """MiMo-V2-Flash: 1 global + 5 sliding-window layers, different KV heads per kind, MoE."""
    pattern = _layer_flags(c.get("hybrid_layer_pattern"), n, (1, True, "1"))
    sliding_flags = pattern or [False] * n
    window = c.pos("sliding_window", "sliding_window_size", default=128)
    routed = _routed_ffn(c, hidden, "moe_intermediate_size", router_bias=True)
    dense = _dense_ffn(hidden, c.pos("intermediate_size"), True)
    mask = _moe_layer_mask(c, n)
    layers = []
    for i in range(n):
        if sliding_flags[i]:
            heads = c.pos("swa_num_attention_heads", "num_attention_heads")
            kv = c.pos("swa_num_key_value_heads", "num_key_value_heads")
            hd = c.pos("swa_head_dim", "head_dim")
            vd = c.pos("swa_v_head_dim", "v_head_dim", default=hd)
            mixer = _gqa_mixer(
                hidden, heads, kv, hd, v_head_dim=vd, attention="sliding", window=window, sinks=True
            )
        else:
            heads = c.pos("num_attention_heads")
            kv = c.pos("num_key_value_heads")
            hd = c.pos("head_dim")
            vd = c.pos("v_head_dim", default=hd)
            mixer = _gqa_mixer(hidden, heads, kv, hd, v_head_dim=vd)
        layers.append(_make_layer(mixer, routed if mask[i] else dense, 2 * hidden, i, i))
    return layers


def _minimax_m3_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads")
    head_dim = c.pos("head_dim", default=hidden // heads)
    routed = _routed_ffn(c, hidden, "moe_intermediate_size", "intermediate_size", router_bias=True)
    dense = _dense_ffn(hidden, c.pos("dense_intermediate_size", "intermediate_size"), True)
    mask = _moe_layer_mask(c, n)
    sparse = c.get("sparse_attention_config") or {}
    sparse_flags = (
        _layer_flags(sparse.get("sparse_attention_freq"), n, (1, True, "1")) or [False] * n
    )
    index_heads = int(sparse.get("sparse_num_index_heads") or 0)
    index_dim = int(sparse.get("sparse_index_dim") or 0)
    layers = []
    for i in range(n):
        extra = 0
        if sparse_flags[i] and index_heads and index_dim:
            extra = hidden * index_heads * index_dim + hidden * index_dim
        mixer = _gqa_mixer(hidden, heads, kv, head_dim, qk_norm=2 * head_dim, extra=extra)
        if sparse_flags[i] and index_dim:
            mixer = replace(mixer, kv_elems=mixer.kv_elems + index_dim)
        layers.append(_make_layer(mixer, routed if mask[i] else dense, 2 * hidden, i, i))
    return layers


def _step_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """Step-3.x Flash style: full/sliding GQA layers, first dense layers then MoE with a shared expert."""
    return _mixtral_like_layers(c, "step", hidden, n)
