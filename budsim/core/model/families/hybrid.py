"""Hybrid linear-attention / SSM families: Qwen3-Next and Qwen3.5 (Gated DeltaNet), MiniMax-Text-01
(lightning attention), Kimi-Linear (Kimi Delta Attention) and Nemotron-H (Mamba-2 blocks paired
with their FFNs into layers).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from ...errors import BudsimError
from ..config import _Cfg, _first_list
from ..layers import (
    _NO_FFN,
    _NO_MIXER,
    _attention_shape,
    _dense_ffn,
    _expert_params,
    _experts_top_k,
    _Ffn,
    _gqa_mixer,
    _Layer,
    _layer_types,
    _make_layer,
    _Mixer,
    _mla_mixer,
    _moe_ffn,
    _moe_layer_mask,
    _routed_ffn,
)


def _gdn_mixer(c: _Cfg, hidden: int) -> _Mixer:
    """Gated DeltaNet (Qwen3-Next / Qwen3.5 linear_attention layers)."""
    k_heads = c.pos("linear_num_key_heads")
    v_heads = c.pos("linear_num_value_heads")
    k_dim = c.pos("linear_key_head_dim")
    v_dim = c.pos("linear_value_head_dim")
    kernel = c.pos("linear_conv_kernel_dim", default=4)
    key = k_heads * k_dim
    value = v_heads * v_dim
    conv = 2 * key + value
    params = hidden * (2 * key + 2 * value) + hidden * 2 * v_heads + conv * kernel
    params += 2 * v_heads + v_dim + value * hidden
    state = v_heads * k_dim * v_dim + conv * (kernel - 1)
    return _Mixer("linear", None, v_heads, k_heads, k_dim, v_dim, 0, state, params, False)


def _qwen_next_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    heads, kv, head_dim = _attention_shape(c, hidden)
    kinds = _layer_types(c, n)
    if kinds is None:
        interval = c.pos("full_attention_interval", default=4)
        kinds = ["full" if (i + 1) % interval == 0 else "linear" for i in range(n)]
    is_moe = c.get("num_experts") is not None and c.get("moe_intermediate_size") is not None
    mask = _moe_layer_mask(c, n) if is_moe else [False] * n
    layers = []
    for i in range(n):
        if kinds[i] == "linear":
            mixer = _gdn_mixer(c, hidden)
        else:
            mixer = _gqa_mixer(
                hidden,
                heads,
                kv,
                head_dim,
                q_gate=c.flag("attn_output_gate", default=True),
                qk_norm=2 * head_dim,
            )
        if mask[i]:
            ffn = _routed_ffn(c, hidden, "moe_intermediate_size", shared_gate=True)
        else:
            ffn = _dense_ffn(hidden, c.pos("intermediate_size"), True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _minimax_linear_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """MiniMax-Text-01 / M1: lightning (linear) attention with a softmax layer every few layers."""
    heads, kv, head_dim = _attention_shape(c, hidden)
    types = _first_list(c.get("attn_type_list"))
    if types is None or len(types) < n:
        raise BudsimError(f"model config {c.name!r}: attn_type_list missing or too short")
    experts, top_k = _experts_top_k(c)
    inter = c.pos("intermediate_size")
    ffn = _moe_ffn(c, hidden, experts=experts, top_k=top_k, expert_inter=inter)
    layers = []
    for i in range(n):
        if int(types[i]) == 0:
            params = hidden * 3 * heads * head_dim + hidden * heads * head_dim
            params += heads * head_dim * hidden + heads * head_dim
            state = heads * head_dim * head_dim
            mixer = _Mixer(
                "linear", None, heads, heads, head_dim, head_dim, 0, state, params, False
            )
        else:
            mixer = _gqa_mixer(hidden, heads, kv, head_dim)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _kda_mixer(lc: Mapping[str, Any], hidden: int) -> _Mixer:
    """Kimi Delta Attention (Kimi-Linear / Kimi-K3 linear layers)."""
    heads = int(lc.get("num_heads") or 0)
    hd = int(lc.get("head_dim") or 0)
    kernel = int(lc.get("short_conv_kernel_size") or 4)
    if heads <= 0 or hd <= 0:
        raise BudsimError("linear_attn_config needs positive num_heads and head_dim")
    width = heads * hd
    params = 3 * hidden * width + 3 * width * kernel  # q, k, v + short convs
    if lc.get("use_full_rank_gate"):
        params += hidden * width
    else:
        params += hidden * hd + hd * width  # forget gate low rank
    params += hidden * hd + hd * width  # output gate low rank
    params += hidden * heads + 2 * width + hd + width * hidden  # beta, A/dt, norm, o_proj
    state = heads * hd * hd + 3 * width * (kernel - 1)
    return _Mixer("linear", None, heads, heads, hd, hd, 0, state, params, False)


def _kimi_linear_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    lc = c.get("linear_attn_config") or {}
    full = {int(x) for x in (_first_list(lc.get("full_attn_layers")) or [])}
    kda = {int(x) for x in (_first_list(lc.get("kda_layers")) or [])}
    latent = c.opt_int("routed_expert_hidden_size")
    routed = _routed_ffn(
        c,
        hidden,
        "moe_intermediate_size",
        router_bias=True,
        latent=latent if latent and latent != hidden else None,
    )
    dense = _dense_ffn(hidden, c.pos("intermediate_size"), True)
    mask = _moe_layer_mask(c, n)
    layers = []
    for i in range(n):
        one_based = i + 1
        if one_based in kda and one_based not in full:
            mixer = _kda_mixer(lc, hidden)
        else:
            mixer = _mla_mixer(c, hidden)
        layers.append(_make_layer(mixer, routed if mask[i] else dense, 2 * hidden, i, i))
    return layers


def _nemotron_h_layers(c: _Cfg, hidden: int) -> list[_Layer]:
    """Nemotron-H / Nemotron 3: Mamba-2, attention, MLP and MoE blocks, paired into layers."""
    pattern = c.get("hybrid_override_pattern")
    blocks: list[str]
    if isinstance(pattern, str) and pattern:
        blocks = list(pattern)
    else:
        names = _first_list(c.get("layers_block_type"))
        if not names:
            raise BudsimError(
                f"model config {c.name!r}: no hybrid_override_pattern / layers_block_type"
            )
        table = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}
        try:
            blocks = [table[str(x).lower()] for x in names]
        except KeyError as exc:
            raise BudsimError(
                f"model config {c.name!r}: unknown block type {exc.args[0]!r}"
            ) from None
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", "attention_head_dim", default=hidden // heads)
    m_heads = c.pos("mamba_num_heads")
    m_head_dim = c.pos("mamba_head_dim")
    groups = c.pos("n_groups", default=1)
    d_state = c.pos("ssm_state_size")
    kernel = c.pos("conv_kernel", default=4)
    d_inner = m_heads * m_head_dim
    conv_dim = d_inner + 2 * groups * d_state
    mamba_params = hidden * (2 * d_inner + 2 * groups * d_state + m_heads)
    mamba_params += conv_dim * kernel + conv_dim + 3 * m_heads + d_inner + d_inner * hidden
    mamba_state = m_heads * m_head_dim * d_state + conv_dim * (kernel - 1)
    mamba = _Mixer(
        "linear", None, m_heads, groups, d_state, m_head_dim, 0, mamba_state, mamba_params, False
    )
    attn = _gqa_mixer(hidden, heads, kv, head_dim)
    mlp_inter = c.opt_int("intermediate_size")

    def ffn_for(ch: str) -> _Ffn:
        if ch == "-":
            if not mlp_inter:
                raise BudsimError(f"model config {c.name!r}: MLP blocks need intermediate_size")
            return _dense_ffn(hidden, mlp_inter, False)
        experts, top_k = _experts_top_k(c)
        expert_inter = c.pos("moe_intermediate_size")
        shared_inter = c.int_("moe_shared_expert_intermediate_size", default=0)
        latent = c.opt_int("moe_latent_size")
        ffn = _moe_ffn(
            c,
            hidden,
            experts=experts,
            top_k=top_k,
            expert_inter=expert_inter,
            gated=False,
            router_bias=True,
            latent=latent,
        )
        shared = _expert_params(hidden, shared_inter, False) if shared_inter else 0
        return replace(ffn, dense=ffn.dense + shared)

    layers: list[_Layer] = []
    current: list[Any] | None = None  # [mixer, mixer_idx, ffn, ffn_idx]
    for idx, ch in enumerate(blocks):
        if ch in ("M", "*"):
            if current is not None:
                layers.append(_pair(current, hidden))
            current = [mamba if ch == "M" else attn, idx, None, None]
        elif ch in ("-", "E"):
            if current is not None and current[2] is None:
                current[2], current[3] = ffn_for(ch), idx
            else:
                if current is not None:
                    layers.append(_pair(current, hidden))
                current = [None, None, ffn_for(ch), idx]
        else:
            raise BudsimError(f"model config {c.name!r}: unknown block {ch!r} in hybrid pattern")
    if current is not None:
        layers.append(_pair(current, hidden))
    return layers


def _pair(current: list[Any], hidden: int) -> _Layer:
    mixer: _Mixer = current[0] or _NO_MIXER
    ffn: _Ffn = current[2] or _NO_FFN
    norms = hidden * ((1 if current[0] else 0) + (1 if current[2] else 0))
    return _make_layer(mixer, ffn, norms, current[1], current[3])
