"""Checkpoint precision: ``checkpoint_dtype`` is the dtype holding most of the quantised weights
(``quantization_config`` or ModelOpt ``hf_quant_config.json``: fp8, awq/gptq bits, mxfp4, nvfp4,
compressed-tensors num_bits/type, mixed-precision ``quantized_layers``); ``checkpoint_bytes`` is the
checkpoint's size with modules it leaves unquantised (``modules_to_not_convert``, ``ignore``,
``exclude_modules``) at 16 bit.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import dtypes
from .config import _first_list
from .layers import _Layer

# --------------------------------------------------------------------------------------------------
# Quantisation
# --------------------------------------------------------------------------------------------------

_BODY = frozenset({"attn", "dense", "shared", "experts"})
_SIXTEEN_BIT = 2.0

_ALGO_DTYPE: dict[str, tuple[str, float]] = {
    "FP8": ("fp8", 1.0),
    "FP8_PB_WO": ("fp8", 1.0),
    "FP8_BLOCK": ("fp8", 1.0),
    "FP8_PER_CHANNEL_PER_TOKEN": ("fp8", 1.0),
    "W8A8_FP8": ("fp8", 1.0),
    "MXFP8": ("fp8", 1.0 + 1.0 / 32),
    "NVFP4": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "W4A16_NVFP4": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "NVFP4_AWQ": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "W4A8_NVFP4_FP8": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "MXFP4": ("mxfp4", dtypes.WEIGHT_BYTES["mxfp4"]),
    "W4A8_MXFP4_FP8": ("mxfp4", dtypes.WEIGHT_BYTES["mxfp4"]),
    "W4A16_AWQ": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "W4A8_AWQ": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "INT4_AWQ": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "INT4": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "INT8": ("int8", 1.0),
    "W8A8_SQ_PER_CHANNEL": ("int8", 1.0),
    "INT8_SQ": ("int8", 1.0),
    "W8A16": ("int8", 1.0),
}


@dataclass
class _QuantPlan:
    method: str | None = None
    dtype: str = "bf16"  # dominant quantised dtype (checkpoint_dtype)
    default: float = _SIXTEEN_BIT  # bytes/param of body components not otherwise listed
    default_dtype: str = "bf16"
    # (layer or None for all, components, bytes per param, dtype) applied in order; later wins
    rules: list[tuple[int | None, frozenset[str], float, str]] | None = None
    kv_dtype: str | None = None


def _use(plan: _QuantPlan, dtype: str) -> None:
    """Quantise the whole body to ``dtype`` by default."""
    plan.dtype = plan.default_dtype = dtype
    plan.default = dtypes.WEIGHT_BYTES[dtype]


def _torch_dtype(value: Any) -> str:
    s = str(value or "bfloat16").lower().replace("torch.", "")
    if s in ("float16", "fp16", "half"):
        return "fp16"
    return "bf16"  # bfloat16, float32 (served in 16 bit), unknown


@functools.lru_cache(maxsize=65536)
def _classify_module(pattern: str) -> tuple[int | None, frozenset[str]]:
    """Map a module name / glob / ``re:`` regex to (layer index or None for all, components)."""
    s = pattern[3:] if pattern.startswith("re:") else pattern
    s = s.replace("\\.", ".").lower()
    if any(
        t in s for t in ("vision", "visual", "mm_projector", "multi_modal", "patch_merge", "audio")
    ):
        return None, frozenset()
    if re.search(r"(^|[.*])mtp([.*]|$)", s):
        return None, frozenset()
    m = re.search(r"layers\.(\d+)", s)
    layer = int(m.group(1)) if m else None
    rest = s[m.end() :] if m else s
    if m and re.fullmatch(r"[.*]*", rest):
        return layer, _BODY
    if re.search(r"embed_tokens|embeddings|(^|\.)wte($|\.)|tok_embeddings", rest):
        return layer, frozenset({"embed"})
    if re.search(r"lm_head|(^|[.*])head$|^output$", rest):
        return layer, frozenset({"lm_head"})
    if "shared_expert" in rest:
        return layer, frozenset({"shared"})
    if "experts" in rest:
        return layer, frozenset({"experts"})
    if re.search(r"(^|[.*])(gate|router|e_score_correction_bias|shared_expert_gate)([.*]|$)", rest):
        return layer, frozenset()
    if re.search(r"norm|layernorm", rest.split(".")[-1] if rest else ""):
        return layer, frozenset()
    if re.search(r"self_attn|(^|[.*])attn([.*]|$)|attention|linear_attn|indexer|mixer", rest):
        return layer, frozenset({"attn"})
    if re.search(r"mlp|ffn|feed_forward|block_sparse_moe", rest):
        return layer, frozenset({"dense", "shared"})
    return layer, frozenset()


def _patterns(value: Any) -> list[str]:
    items = _first_list(value)
    if items is None:
        return [value] if isinstance(value, str) else []
    return [str(x) for x in items]


def _ct_weight_dtype(weights: Mapping[str, Any], fmt: str) -> tuple[str, float] | None:
    """compressed-tensors weight scheme -> (dtype, bytes per param)."""
    bits = int(weights.get("num_bits") or 16)
    kind = str(weights.get("type") or "int").lower()
    group = weights.get("group_size")
    if bits >= 16:
        return None
    if bits == 8:
        return ("fp8", 1.0) if kind == "float" else ("int8", 1.0)
    if bits == 4 and kind == "float":
        if "mxfp4" in fmt or group == 32:
            return "mxfp4", dtypes.WEIGHT_BYTES["mxfp4"]
        return "nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]
    if bits == 4:
        g = int(group) if isinstance(group, int) and group > 0 else 128
        per_group = 2.0 if weights.get("symmetric", True) else 4.0
        return "int4", 0.5 + per_group / g
    return "int8", bits / 8.0


def _int_bits_dtype(bits: int, group: Any) -> tuple[str, float]:
    if bits <= 4:
        g = int(group) if isinstance(group, int) and group > 0 else 0
        return "int4", (0.5 + 4.0 / g) if g else 0.5
    return "int8", 1.0


def _kv_from(value: Any) -> str | None:
    if isinstance(value, str):
        return "fp8" if "fp8" in value.lower() else None
    if isinstance(value, Mapping):
        if int(value.get("num_bits") or 16) == 8:
            return "fp8"
    return None


def _quant_plan(
    qc: Mapping[str, Any] | None,
    hfq: Mapping[str, Any] | None,
    base: str,
    expert_dtype: str | None = None,
) -> _QuantPlan:
    """Interpret ``quantization_config`` / ModelOpt ``hf_quant_config.json``."""
    plan = _build_quant_plan(qc, hfq, base)
    if expert_dtype and str(expert_dtype).lower() in ("fp4", "mxfp4"):
        assert plan.rules is not None
        # DeepSeek-V4 style: routed experts ship in FP4 (e8m0 block scales) inside an FP8 checkpoint
        fp4 = (None, frozenset({"experts"}), dtypes.WEIGHT_BYTES["mxfp4"], "mxfp4")
        plan.rules.insert(0, fp4)  # explicit per-layer entries (NVFP4 re-quantisation) still win
    return plan


def _build_quant_plan(
    qc: Mapping[str, Any] | None, hfq: Mapping[str, Any] | None, base: str
) -> _QuantPlan:
    plan = _QuantPlan(dtype=base, default_dtype=base, rules=[])
    assert plan.rules is not None
    counts: dict[str, int] = {}
    modelopt: Mapping[str, Any] | None = None
    if hfq:
        modelopt = hfq.get("quantization") if isinstance(hfq.get("quantization"), Mapping) else hfq
    qc = qc or {}
    method = str(qc.get("quant_method") or "").lower() or None
    if modelopt is None and (qc.get("quant_algo") or method == "modelopt"):
        modelopt = qc
    if (
        modelopt is not None
        and (modelopt.get("quant_algo") or modelopt.get("quantized_layers"))
        and (method in (None, "modelopt") or modelopt.get("quant_algo") == "MIXED_PRECISION")
    ):
        plan.method = "modelopt"
        plan.kv_dtype = _kv_from(modelopt.get("kv_cache_quant_algo")) or _kv_from(
            qc.get("kv_cache_scheme")
        )
        algo = str(modelopt.get("quant_algo") or "").upper()
        layers = modelopt.get("quantized_layers")
        if algo == "MIXED_PRECISION" or isinstance(layers, Mapping):
            for module, info in (layers or {}).items():
                sub = str((info or {}).get("quant_algo") or "").upper()
                found = _ALGO_DTYPE.get(sub)
                if found is None:
                    continue
                layer, comps = _classify_module(str(module))
                if comps:
                    plan.rules.append((layer, comps, found[1], found[0]))
                    counts[found[0]] = counts.get(found[0], 0) + 1
            if counts:
                plan.dtype = max(counts, key=lambda k: counts[k])
        else:
            found = _ALGO_DTYPE.get(algo)
            if found is not None:
                plan.dtype, plan.default = found
                plan.default_dtype = found[0]
        if method == "fp8" and algo == "MIXED_PRECISION":
            # an FP8 block-scaled checkpoint whose experts were re-quantised (DeepSeek-V4 NVFP4):
            # everything not listed stays FP8, so the exclusion list does not mean 16 bit
            plan.default, plan.default_dtype = 1.0, "fp8"
            return plan
        for pat in _patterns(modelopt.get("exclude_modules")) + _patterns(qc.get("ignore")):
            layer, comps = _classify_module(pat)
            if comps:
                plan.rules.append((layer, comps, _SIXTEEN_BIT, base))
        return plan

    if not method:
        return plan
    plan.method = method
    ignore = _patterns(qc.get("modules_to_not_convert")) + _patterns(qc.get("ignore"))
    ignore += _patterns(qc.get("llm_int8_skip_modules"))
    if method in ("fp8", "fbgemm_fp8", "ptpc_fp8"):
        _use(plan, "fp8")
    elif method == "mxfp4":
        _use(plan, "mxfp4")
    elif method in ("awq", "gptq", "awq_marlin", "gptq_marlin", "auto-round", "autoround"):
        bits = int(qc.get("bits") or qc.get("w_bit") or 4)
        group = qc.get("group_size") or qc.get("q_group_size")
        plan.dtype, plan.default = _int_bits_dtype(bits, group)
        plan.default_dtype = plan.dtype
    elif method == "bitsandbytes":
        if qc.get("load_in_4bit"):
            plan.dtype, plan.default = "int4", 0.5 + 4.0 / 64
        else:
            plan.dtype, plan.default = "int8", 1.0
        plan.default_dtype = plan.dtype
    elif method in ("experts_int8",):
        plan.dtype = "int8"
        plan.rules.append((None, frozenset({"experts"}), 1.0, "int8"))
    elif method == "compressed-tensors":
        plan.kv_dtype = _kv_from(qc.get("kv_cache_scheme"))
        fmt = str(qc.get("format") or "").lower()
        groups = qc.get("config_groups") or {}
        for group in groups.values() if isinstance(groups, Mapping) else []:
            weights = group.get("weights") if isinstance(group, Mapping) else None
            if not isinstance(weights, Mapping):
                continue
            found = _ct_weight_dtype(weights, str(group.get("format") or fmt).lower())
            if found is None:
                continue
            targets = _patterns(group.get("targets"))
            if not targets or any(t.lower() == "linear" for t in targets):
                plan.default, plan.default_dtype = found[1], found[0]
                counts[found[0]] = counts.get(found[0], 0) + 1_000_000
            else:
                for t in targets:
                    layer, comps = _classify_module(t)
                    if comps:
                        plan.rules.append((layer, comps, found[1], found[0]))
                        counts[found[0]] = counts.get(found[0], 0) + 1
        if counts:
            plan.dtype = max(counts, key=lambda k: counts[k])
    elif method == "quark":
        glob_cfg = qc.get("global_quant_config") or {}
        weight = glob_cfg.get("weight") if isinstance(glob_cfg, Mapping) else None
        wdt = str((weight or {}).get("dtype") or "").lower() if isinstance(weight, Mapping) else ""
        if "fp8" in wdt:
            _use(plan, "fp8")
        elif "fp4" in wdt:
            _use(plan, "mxfp4")
        elif "int4" in wdt or "uint4" in wdt:
            _use(plan, "int4")
        elif "int8" in wdt:
            _use(plan, "int8")
        ignore += _patterns(qc.get("exclude"))
        plan.kv_dtype = "fp8" if qc.get("kv_cache_quant_config") else None
    else:
        raw_bits = qc.get("bits") or qc.get("w_bit") or qc.get("num_bits")
        if isinstance(raw_bits, int) and raw_bits < 16:
            plan.dtype, plan.default = _int_bits_dtype(raw_bits, qc.get("group_size"))
            plan.default_dtype = plan.dtype
    for pat in ignore:
        layer, comps = _classify_module(pat)
        if comps:
            plan.rules.append((layer, comps, _SIXTEEN_BIT, base))
    return plan


def _checkpoint_bytes(
    layers: Sequence[_Layer], plan: _QuantPlan, embed: int, head: int, final_norm: int
) -> tuple[float, str]:
    """Bytes of the checkpoint as stored, and the dtype holding most of the quantised parameters."""
    rules = list(enumerate(plan.rules or []))
    total = float(final_norm) * _SIXTEEN_BIT
    by_dtype: dict[str, float] = {}
    # Embeddings and LM head: 16-bit unless a rule quantises them explicitly.
    emb_b = head_b = _SIXTEEN_BIT
    for _, (layer, comps, per, _dt) in rules:
        if layer is None and "embed" in comps:
            emb_b = per
        if layer is None and "lm_head" in comps:
            head_b = per
    total += embed * emb_b + head * head_b
    whole_model = [r for r in rules if r[1][0] is None]
    by_layer: dict[int, list[tuple[int, tuple[int | None, frozenset[str], float, str]]]] = {}
    for r in rules:
        if r[1][0] is not None:
            by_layer.setdefault(int(r[1][0]), []).append(r)
    for lay in layers:
        spec = lay.spec
        parts = (
            ("attn", float(spec.attn_params), lay.attn_idx),
            ("dense", float(spec.dense_params), lay.mlp_idx),
            ("experts", float(spec.num_experts * spec.expert_params), lay.mlp_idx),
        )
        for comp, count, idx in parts:
            if not count:
                continue
            per, dt = plan.default, plan.default_dtype
            extra = by_layer.get(idx, []) if idx is not None else []
            applicable = sorted(whole_model + extra) if extra else whole_model
            for _, (_layer, names, rule_per, rule_dt) in applicable:
                if comp == "dense":
                    hit = ("shared" in names) if spec.mlp_kind == "moe" else ("dense" in names)
                else:
                    hit = comp in names
                if hit:
                    per, dt = rule_per, rule_dt
            total += count * per
            if per < _SIXTEEN_BIT:
                by_dtype[dt] = by_dtype.get(dt, 0.0) + count
    dominant = max(by_dtype, key=lambda k: by_dtype[k]) if by_dtype else plan.dtype
    if not by_dtype and plan.method and plan.default >= _SIXTEEN_BIT:
        dominant = plan.dtype
    return total, dominant
