"""Dense decoders: the generic GQA decoder most families share and the classic families whose
configs need their own reading (GPT-J, QWen 1, Falcon, Phi-3-small, Nemotron-NAS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from ...errors import BudsimError
from ..config import _ALL_BIAS, _LAYERNORM_BIAS, _QK_NORM, _QKV_BIAS, _Cfg, _first_list, _gated
from ..layers import (
    _NO_FFN,
    _NO_MIXER,
    _dense_ffn,
    _Ffn,
    _gqa_mixer,
    _kv_heads,
    _Layer,
    _make_layer,
    _window_kinds,
)

# ------------------------------------------------------------------ generic / dense decoders


def _generic_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads", "n_head", "num_heads", "n_heads")
    kv = _kv_heads(c, heads)
    head_dim = c.pos(
        "head_dim", "kv_channels", "attention_head_dim", default=max(1, hidden // heads)
    )
    gated = _gated(mt, c)
    inter = _intermediate(c, mt, hidden, gated)
    all_bias = mt in _ALL_BIAS or c.flag("use_bias", "bias", "add_bias_linear")
    qkv_bias = all_bias or mt in _QKV_BIAS or c.flag("attention_bias", "qkv_bias", "add_qkv_bias")
    mlp_bias = all_bias or c.flag("mlp_bias")
    qk_norm = 2 * head_dim if (mt in _QK_NORM or c.flag("use_qk_norm", "qk_layernorm")) else 0
    norms = (4 if mt.startswith("gemma2") or mt.startswith("gemma3") else 2) * hidden
    if mt in _LAYERNORM_BIAS:
        norms *= 2  # LayerNorm has a bias
    window, kinds = _window_kinds(c, mt, n)
    ffn = _dense_ffn(hidden, inter, gated, mlp_bias)
    layers = []
    for i in range(n):
        attention = kinds[i]
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention=attention,
            window=window if attention == "sliding" else None,
            qkv_bias=qkv_bias,
            o_bias=all_bias,
            qk_norm=qk_norm,
        )
        layers.append(_make_layer(mixer, ffn, norms, i, i))
    return layers


def _intermediate(c: _Cfg, mt: str, hidden: int, gated: bool) -> int:
    if mt == "phi3small":
        return c.pos("ff_intermediate_size", "intermediate_size")
    if mt == "qwen":  # QWen(1) stores 2x the per-branch width
        return c.pos("intermediate_size") // 2
    value = c.opt_int("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff")
    if value is None:
        if gated:
            raise BudsimError(
                f"model config {c.name!r} lacks 'intermediate_size'; is it a decoder-only LLM config?"
            )
        return 4 * hidden
    if value <= 0:
        raise BudsimError(
            f"model config {c.name!r}: intermediate_size must be positive, got {value}"
        )
    return value


# ------------------------------------------------------------------ classic families


def _gptj_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("n_head", "num_attention_heads")
    head_dim = hidden // heads
    inter = c.pos("n_inner", default=4 * hidden)
    mixer = _gqa_mixer(hidden, heads, heads, head_dim)
    ffn = _dense_ffn(hidden, inter, False, True)
    return [_make_layer(mixer, ffn, 2 * hidden, i, i) for i in range(n)]


def _qwen1_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    head_dim = c.pos("kv_channels", default=hidden // heads)
    inter = c.pos("intermediate_size") // 2
    mixer = _gqa_mixer(hidden, heads, heads, head_dim, qkv_bias=True)
    ffn = _dense_ffn(hidden, inter, True)
    return [_make_layer(mixer, ffn, 2 * hidden, i, i) for i in range(n)]


def _falcon_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads", "n_head")
    if c.flag("new_decoder_architecture"):
        kv = c.pos("num_kv_heads", "n_head_kv", default=heads)
        norms = 4 * hidden  # ln_attn + ln_mlp, with bias
    else:
        kv = 1 if c.flag("multi_query", default=True) else heads
        norms = 2 * hidden
    head_dim = hidden // heads
    inter = c.pos("ffn_hidden_size", default=4 * hidden)
    bias = c.flag("bias")
    mixer = _gqa_mixer(hidden, heads, kv, head_dim, qkv_bias=bias, o_bias=bias)
    ffn = _dense_ffn(hidden, inter, False, bias)
    return [_make_layer(mixer, ffn, norms, i, i) for i in range(n)]


def _phi3small_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = hidden // heads
    inter = c.pos("ff_intermediate_size", "intermediate_size")
    # Block-sparse attention on alternate layers still caches every token: modelled as full.
    mixer = _gqa_mixer(hidden, heads, kv, head_dim, qkv_bias=True, o_bias=True)
    ffn = _dense_ffn(hidden, inter, True, True)
    return [_make_layer(mixer, ffn, 4 * hidden, i, i) for i in range(n)]


def _decilm_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """Nemotron-NAS (Llama-3.x-Nemotron Super/Ultra): per-layer block_configs."""
    blocks = _first_list(c.get("block_configs"))
    if blocks is None or len(blocks) < n:
        raise BudsimError(
            f"model config {c.name!r}: block_configs missing or shorter than the layers"
        )
    heads = c.pos("num_attention_heads")
    head_dim = c.pos("head_dim", default=hidden // heads)
    layers = []
    for i, block in enumerate(blocks[:n]):
        attn = block.get("attention", {}) if isinstance(block, Mapping) else {}
        ffn_cfg = block.get("ffn", {}) if isinstance(block, Mapping) else {}
        if attn.get("no_op"):
            mixer = _NO_MIXER
        elif attn.get("replace_with_linear"):
            mixer = replace(_NO_MIXER, params=hidden * hidden)
        else:
            group = int(attn.get("n_heads_in_group") or 1)
            window = attn.get("window_length")
            mixer = _gqa_mixer(
                hidden,
                heads,
                max(1, heads // group),
                head_dim,
                attention="sliding" if window else "full",
                window=int(window) if window else None,
            )
        if ffn_cfg.get("no_op"):
            ffn = _NO_FFN
        elif ffn_cfg.get("replace_with_linear"):
            ffn = _Ffn("dense", hidden * hidden, 0, 0, 0, 0)
        else:
            mult = float(ffn_cfg.get("ffn_mult") or 0)
            if mult <= 0:
                raise BudsimError(f"model config {c.name!r}: block {i} has no ffn_mult")
            inter = int(2 * mult * hidden / 3)
            inter = -(-inter // 256) * 256
            ffn = _dense_ffn(hidden, inter, True)
        norms = (hidden if mixer.params else 0) + (hidden if ffn.dense else 0)
        layers.append(_make_layer(mixer, ffn, norms, i, i))
    return layers
