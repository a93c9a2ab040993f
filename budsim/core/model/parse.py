"""From a config dict to a ModelSpec: the text-decoder part of multimodal wrappers, rejecting
encoder / vision / encoder-decoder configs, picking the family builder (``_dispatch``), the
context length and the checkpoint's precision.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BudsimError
from .config import (
    _DECODER_HEADS,
    _ENCODER_HEADS,
    _ENCODER_TYPES,
    _LEARNED_POSITIONS,
    _TIED_BY_DEFAULT,
    _VISION_TYPES,
    _Cfg,
)
from .families.dense import (
    _decilm_layers,
    _falcon_layers,
    _generic_layers,
    _gptj_layers,
    _phi3small_layers,
    _qwen1_layers,
)
from .families.hybrid import (
    _kimi_linear_layers,
    _minimax_linear_layers,
    _nemotron_h_layers,
    _qwen_next_layers,
)
from .families.moe import (
    _deepseek_layers,
    _deepseek_v4_layers,
    _gemma4_layers,
    _gpt_oss_layers,
    _llama4_layers,
    _mimo_v2_layers,
    _minimax_m3_layers,
    _mixtral_like_layers,
    _step_layers,
)
from .layers import _Layer
from .quant import _checkpoint_bytes, _quant_plan, _torch_dtype
from .spec import LayerSpec, ModelSpec

# --------------------------------------------------------------------------------------------------
# Parsing entry point
# --------------------------------------------------------------------------------------------------


def _text_config(config: Mapping[str, Any], name: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The text-decoder part of a config (multimodal wrappers keep it in text_config/llm_config)."""
    if not isinstance(config, Mapping):
        raise BudsimError(f"model config {name!r} is not a JSON object")
    inner = None
    for key in ("text_config", "llm_config", "language_config", "text_model_config"):
        if isinstance(config.get(key), Mapping):
            inner = config[key]
            break
    if inner is None:
        return dict(config), config
    merged = dict(inner)
    for key in (
        "quantization_config",
        "hf_quant_config",
        "tie_word_embeddings",
        "torch_dtype",
        "dtype",
    ):
        if merged.get(key) is None and config.get(key) is not None:
            merged[key] = config[key]
    if config.get("quantization_config") is not None:
        merged["quantization_config"] = config["quantization_config"]
    if not merged.get("architectures") and config.get("architectures"):
        merged["architectures"] = config["architectures"]
    return merged, config


def _reject_non_decoder(top: Mapping[str, Any], merged: Mapping[str, Any], name: str) -> None:
    mt = str(top.get("model_type") or merged.get("model_type") or "").lower()
    archs = [str(a) for a in (top.get("architectures") or [])]
    if top.get("is_encoder_decoder") is True or merged.get("is_encoder_decoder") is True:
        raise BudsimError(
            f"model {name!r} is an encoder-decoder model; budsim plans decoder-only LLMs"
        )
    if mt in _ENCODER_TYPES:
        raise BudsimError(
            f"model {name!r} is an encoder-only model ({mt}); budsim plans decoder-only LLMs"
        )
    if mt in _VISION_TYPES:
        raise BudsimError(
            f"model {name!r} is a vision model ({mt}); budsim plans decoder-only LLMs"
        )
    if archs and not any(a.endswith(_DECODER_HEADS) for a in archs):
        if any(a.endswith(_ENCODER_HEADS) for a in archs):
            raise BudsimError(
                f"model {name!r} ({archs[0]}) is not a text-generation decoder; budsim plans "
                "decoder-only LLMs"
            )
    has_text = any(
        isinstance(top.get(k), Mapping) for k in ("text_config", "llm_config", "language_config")
    )
    if (
        isinstance(top.get("vision_config"), Mapping)
        and not has_text
        and top.get("vocab_size") is None
    ):
        raise BudsimError(f"model {name!r} is a vision-only config; budsim plans decoder-only LLMs")


def _max_context(c: _Cfg, mt: str) -> int:
    mpe = c.opt_int(
        "max_position_embeddings", "n_positions", "seq_length", "max_sequence_length", "n_ctx"
    )
    rs = c.get("rope_scaling")
    if not isinstance(rs, Mapping):
        rp = c.get("rope_parameters")
        rs = rp if isinstance(rp, Mapping) and "rope_type" in rp else None
    base = mpe if mpe and mpe > 0 else 2048
    if isinstance(rs, Mapping):
        kind = str(rs.get("rope_type") or rs.get("type") or "default").lower()
        factor = rs.get("factor")
        if isinstance(factor, (int, float)) and factor > 1:
            if kind == "yarn":
                orig = rs.get("original_max_position_embeddings")
                if isinstance(orig, (int, float)) and orig > 0:
                    return max(base, int(orig * factor))
            elif kind in ("linear", "dynamic") and not mt.startswith("gemma3"):
                return int(base * factor)
    return base


def _dispatch(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    arch = str((c.get("architectures") or [""])[0])
    if mt in ("gptj",):
        return _gptj_layers(c, hidden, n)
    if mt == "qwen" or arch == "QWenLMHeadModel":
        return _qwen1_layers(c, hidden, n)
    if mt in ("falcon", "RefinedWeb", "RefinedWebModel"):
        return _falcon_layers(c, hidden, n)
    if mt == "phi3small":
        return _phi3small_layers(c, hidden, n)
    if mt in ("nemotron-nas", "nemotron_nas", "deci") or c.get("block_configs") is not None:
        return _decilm_layers(c, hidden, n)
    if mt == "nemotron_h" or c.get("hybrid_override_pattern") is not None:
        return _nemotron_h_layers(c, hidden)
    if mt in ("deepseek_v4", "deepseek_ref") or c.get("compress_ratios") is not None:
        return _deepseek_v4_layers(c, hidden, n)
    if mt == "kimi_linear" or c.get("linear_attn_config") is not None:
        return _kimi_linear_layers(c, hidden, n)
    if mt.startswith(("qwen3_next", "qwen3_5")) or c.get("linear_num_value_heads") is not None:
        return _qwen_next_layers(c, mt, hidden, n)
    if c.get("attn_type_list") is not None:
        return _minimax_linear_layers(c, hidden, n)
    if mt == "gpt_oss":
        return _gpt_oss_layers(c, hidden, n)
    if mt.startswith("llama4"):
        return _llama4_layers(c, hidden, n)
    if mt.startswith("gemma4"):
        return _gemma4_layers(c, hidden, n)
    if mt == "mimo_v2_flash" or c.get("hybrid_layer_pattern") is not None:
        return _mimo_v2_layers(c, hidden, n)
    if mt == "minimax_m3" or c.get("sparse_attention_config") is not None:
        return _minimax_m3_layers(c, hidden, n)
    if c.get("kv_lora_rank") is not None or mt.startswith(
        ("deepseek", "kimi_k2", "glm_moe", "glm4_moe")
    ):
        return _deepseek_layers(c, mt, hidden, n)
    if c.get("n_routed_experts") is not None and c.get("moe_intermediate_size") is not None:
        return _deepseek_layers(c, mt, hidden, n)
    moe_keys = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
    if any(isinstance(c.get(k), int) and c.get(k) > 0 for k in moe_keys):
        if mt.startswith("step"):
            return _step_layers(c, hidden, n)
        return _mixtral_like_layers(c, mt, hidden, n)
    return _generic_layers(c, mt, hidden, n)


def model_from_config(config: Mapping[str, Any], name: str) -> ModelSpec:
    """Build a ModelSpec from a raw HF ``config.json`` dict (or a trimmed catalog copy).

    A ModelOpt ``hf_quant_config.json`` may be passed inside the dict under ``"hf_quant_config"``.
    Raises BudsimError with one line for non-decoder or malformed configs.
    """
    merged, top = _text_config(config, name)
    _reject_non_decoder(top, merged, name)
    c = _Cfg(merged, name)
    mt = str(merged.get("model_type") or top.get("model_type") or "").lower()
    archs = merged.get("architectures") or top.get("architectures") or []
    architecture = str(top.get("architectures", [None])[0] if top.get("architectures") else "") or (
        str(archs[0]) if archs else mt or "unknown"
    )
    hidden = c.pos("hidden_size", "n_embd", "d_model", "dim", "model_dim")
    pattern = merged.get("hybrid_override_pattern") or merged.get("layers_block_type")
    n_default = len(pattern) if pattern and mt == "nemotron_h" else None
    n = c.pos("num_hidden_layers", "n_layer", "num_layers", "n_layers", default=n_default)
    vocab = c.pos("vocab_size", "padded_vocab_size", "n_vocab")
    layers = _dispatch(c, mt, hidden, n)
    if not layers:
        raise BudsimError(f"model config {name!r} describes no decoder layers")
    for lay in layers:
        if lay.spec.total_params < 0 or lay.spec.kv_elems_per_token < 0:
            raise BudsimError(f"model config {name!r} gives negative layer sizes")

    tie_default = mt in _TIED_BY_DEFAULT
    tie = bool(c.get("tie_word_embeddings", default=tie_default))
    positions = 0
    if mt in _LEARNED_POSITIONS:
        mpe = c.opt_int("max_position_embeddings", "n_positions") or 2048
        positions = (mpe + (2 if mt == "opt" else 0)) * hidden

    groups: dict[LayerSpec, int] = {}
    for lay in layers:
        groups[lay.spec] = groups.get(lay.spec, 0) + 1

    base = _torch_dtype(merged.get("torch_dtype") or merged.get("dtype"))
    qc = merged.get("quantization_config")
    hfq = merged.get("hf_quant_config")
    plan = _quant_plan(
        qc if isinstance(qc, Mapping) else None,
        hfq if isinstance(hfq, Mapping) else None,
        base,
        merged.get("expert_dtype"),
    )
    head = 0 if tie else vocab * hidden
    ckpt, ckpt_dtype = _checkpoint_bytes(layers, plan, vocab * hidden + positions, head, hidden)

    return ModelSpec(
        name=name,
        model_type=mt or "unknown",
        architecture=architecture,
        hidden_size=hidden,
        num_layers=len(layers),
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_context=_max_context(c, mt),
        layer_groups=tuple(groups.items()),
        checkpoint_dtype=ckpt_dtype,
        quant_method=plan.method,
        checkpoint_bytes=ckpt,
        kv_cache_dtype=plan.kv_dtype,
        position_embedding_params=positions,
        fp8_block=isinstance(qc, Mapping)
        and plan.method == "fp8"
        and bool(qc.get("weight_block_size")),
        mtp_layers=c.opt_int("num_nextn_predict_layers", "mtp_num_hidden_layers") or 0,
    )
