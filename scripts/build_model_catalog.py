#!/usr/bin/env python3
"""Regenerate budsim's bundled offline model catalog from the shared model-config folder.

Reads ``$BUDSIM_DATA/model_configs/<org>/<name>/config.json`` (+ ``hf_quant_config.json``) and
``ALIASES.csv``, and writes

- ``budsim/core/catalog/models/<org>__<name>.json``: the config trimmed to the architecture-relevant
  keys (``text_config`` kept for multimodal wrappers, quantisation descriptors compacted), and
- ``budsim/core/catalog/models/aliases.json``: alternative names -> catalog id (+ checkpoint dtype
  overrides for names of pre-quantised checkpoints of a catalogued architecture).

Every trimmed file is parsed back with ``model_from_config`` and compared with the parse of the full
config; a model whose trimmed copy would describe a different architecture is a build error.

Usage: python scripts/build_model_catalog.py [--data DIR] [--check]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from budsim.core.errors import BudsimError  # noqa: E402
from budsim.core.model import (  # noqa: E402
    CATALOG_DIR,
    ModelSpec,
    _classify_module,
    model_from_config,
)

# Keys the parser reads (and a few that document the architecture). Everything else is dropped.
KEEP = set(
    """
    architectures model_type torch_dtype dtype is_encoder_decoder
    hidden_size n_embd d_model num_hidden_layers n_layer num_layers num_attention_heads n_head
    num_key_value_heads num_kv_heads n_head_kv multi_query multi_query_group_num
    new_decoder_architecture parallel_attn alibi head_dim kv_channels attention_head_dim v_head_dim
    intermediate_size ffn_dim n_inner ffn_hidden_size ff_intermediate_size intermediate_size_mlp
    dense_intermediate_size moe_intermediate_size expert_intermediate_size
    shared_expert_intermediate_size moe_shared_expert_intermediate_size shared_intermediate_size
    share_expert_dim n_shared_experts num_shared_experts vocab_size padded_vocab_size
    tie_word_embeddings max_position_embeddings n_positions seq_length max_sequence_length n_ctx
    rope_scaling rope_parameters rope_theta partial_rotary_factor rotary_dim rotary_pct
    sliding_window sliding_window_size sliding_window_pattern use_sliding_window max_window_layers
    layer_types attention_chunk_size no_rope_layers no_rope_layer_interval
    interleave_moe_layer_step moe_layers num_local_experts num_experts n_routed_experts
    moe_num_experts num_experts_per_tok experts_per_token num_experts_per_token top_k_experts
    moe_top_k first_k_dense_replace moe_layer_freq decoder_sparse_step mlp_only_layers
    mlp_layer_types kv_lora_rank q_lora_rank qk_rope_head_dim qk_nope_head_dim qk_head_dim
    index_n_heads index_head_dim index_topk indexer_types attention_bias bias use_bias mlp_bias
    qkv_bias add_qkv_bias add_bias_linear hidden_act hidden_activation activation_function
    mlp_hidden_act mlp_type use_qk_norm qk_norm_type qk_layernorm attn_output_gate
    full_attention_interval linear_attn_config hybrid_override_pattern layers_block_type
    mamba_num_heads mamba_head_dim n_groups ssm_state_size conv_kernel chunk_size
    mamba_ssm_cache_dtype mamba_ssm_dtype moe_latent_size routed_expert_hidden_size global_head_dim
    num_global_key_value_heads attention_k_eq_v enable_moe_block num_kv_shared_layers
    hidden_size_per_layer_input hybrid_layer_pattern attn_type_list block_configs
    sparse_attention_config compress_ratios o_lora_rank o_groups hc_mult num_hash_layers
    expert_dtype topk_method scoring_func norm_topk_prob routed_scaling_factor
    num_nextn_predict_layers mtp_num_hidden_layers quantization_config hf_quant_config text_config
    rotary_emb_base no_bias
    """.split()
)
KEEP_PREFIXES = ("linear_", "swa_")

QUANT_KEEP = set(
    """
    quant_method quant_algo fmt format weight_block_size activation_scheme kv_cache_scheme
    kv_cache_quant_algo group_size bits w_bit q_group_size zero_point sym desc_act version
    load_in_4bit load_in_8bit global_quant_config scale_fmt moe_quant_algo producer
    quantization_status config_groups ignore modules_to_not_convert exclude_modules
    quantized_layers llm_int8_skip_modules exclude kv_cache_quant_config quantization
    """.split()
)
PATTERN_LISTS = ("ignore", "modules_to_not_convert", "exclude_modules", "llm_int8_skip_modules")

# Names the benchmark data and users commonly use, beyond ALIASES.csv.
MANUAL_ALIASES: dict[str, str] = {
    "meta-llama/Llama-3.1-8B": "meta-llama/Meta-Llama-3.1-8B",
    "meta-llama/Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "meta-llama/Llama-3.1-405B": "meta-llama/Meta-Llama-3.1-405B",
    "meta-llama/Llama-3-8B": "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Llama-3-70B": "meta-llama/Meta-Llama-3-70B",
    "meta-llama/Meta-Llama-3-8B-Instruct": "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-70B-Instruct": "meta-llama/Meta-Llama-3-70B",
    "meta-llama/Llama-3-8B-Instruct": "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Llama-3-70B-Instruct": "meta-llama/Meta-Llama-3-70B",
    "meta-llama/Llama-3.3-70B": "meta-llama/Llama-3.3-70B-Instruct",
    "Llama-3-8B": "meta-llama/Meta-Llama-3-8B",
    "Llama-3-70B": "meta-llama/Meta-Llama-3-70B",
    "Llama-3.1-8B": "meta-llama/Meta-Llama-3.1-8B",
    "Llama-3.1-70B": "meta-llama/Meta-Llama-3.1-70B",
    "Llama-3.1-405B": "meta-llama/Meta-Llama-3.1-405B",
    "Llama-3.3-70B": "meta-llama/Llama-3.3-70B-Instruct",
    "llama3-8b": "meta-llama/Meta-Llama-3-8B",
    "llama3-70b": "meta-llama/Meta-Llama-3-70B",
    "meta-llama/Llama-2-7b-chat-hf": "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-13b-chat-hf": "meta-llama/Llama-2-13b-hf",
    "meta-llama/Llama-2-70b-chat-hf": "meta-llama/Llama-2-70b-hf",
    "meta-llama/Llama-4-Scout-17B-16E": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "meta-llama/Llama-4-Maverick-17B-128E": "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
    "Llama-4-Scout": "meta-llama/Llama-4-Scout-17B-16E-Instruct",
    "Llama-4-Maverick": "meta-llama/Llama-4-Maverick-17B-128E-Instruct",
    "Mixtral-8x7B": "mistralai/Mixtral-8x7B-v0.1",
    "Mixtral-8x22B": "mistralai/Mixtral-8x22B-v0.1",
    "mixtral-8x7b-instruct": "mistralai/Mixtral-8x7B-v0.1",
    "mistralai/Mistral-7B-Instruct-v0.1": "mistralai/Mistral-7B-v0.1",
    "Mistral-7B": "mistralai/Mistral-7B-v0.1",
    "Mistral-Large-2407": "mistralai/Mistral-Large-Instruct-2407",
    "Mistral-Nemo": "mistralai/Mistral-Nemo-Instruct-2407",
    "mistralai/Mistral-Nemo-Base-2407": "mistralai/Mistral-Nemo-Instruct-2407",
    "deepseek-ai/DeepSeek-V3-0324": "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-V3-Base": "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-V3.1-Terminus": "deepseek-ai/DeepSeek-V3",
    "deepseek-ai/DeepSeek-V3.2-Exp": "deepseek-ai/DeepSeek-V3.2",
    "moonshotai/Kimi-K2-Instruct-0905": "moonshotai/Kimi-K2-Instruct",
    "moonshotai/Kimi-K2-Base": "moonshotai/Kimi-K2-Instruct",
    "Kimi-K2": "moonshotai/Kimi-K2-Instruct",
    "google/gemma-3-27b-pt": "google/gemma-3-27b-it",
    "google/gemma-3-12b-pt": "google/gemma-3-12b-it",
    "google/gemma-2b-it": "google/gemma-2b",
    "google/gemma-7b-it": "google/gemma-7b",
    "Qwen/Qwen3-235B-A22B-Instruct": "Qwen/Qwen3-235B-A22B",
    "gpt-oss-120b": "openai/gpt-oss-120b",
    "gpt-oss-20b": "openai/gpt-oss-20b",
}
# Names of pre-quantised checkpoints whose architecture is catalogued at another dtype.
MANUAL_DTYPE: dict[str, tuple[str, str]] = {
    "moonshotai/Kimi-K2-Thinking": ("moonshotai/Kimi-K2-Instruct", "int4"),
    "RedHatAI/Meta-Llama-3.1-8B-Instruct-FP8": ("meta-llama/Meta-Llama-3.1-8B", "fp8"),
    "RedHatAI/Meta-Llama-3.1-70B-Instruct-FP8": ("meta-llama/Meta-Llama-3.1-70B", "fp8"),
    "neuralmagic/Meta-Llama-3.1-8B-Instruct-FP8": ("meta-llama/Meta-Llama-3.1-8B", "fp8"),
    "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8": ("meta-llama/Meta-Llama-3.1-70B", "fp8"),
    "nvidia/Llama-3.3-70B-Instruct-FP8": ("meta-llama/Llama-3.3-70B-Instruct", "fp8"),
    "nvidia/Llama-3.1-405B-Instruct-FP8": ("meta-llama/Meta-Llama-3.1-405B", "fp8"),
    "nvidia/Llama-3.3-70B-Instruct-FP4": ("meta-llama/Llama-3.3-70B-Instruct", "nvfp4"),
    "nvidia/DeepSeek-R1-FP4": ("deepseek-ai/DeepSeek-R1", "nvfp4"),
    "nvidia/DeepSeek-R1-0528-FP4": ("deepseek-ai/DeepSeek-R1", "nvfp4"),
}
USABLE_RELATIONS = {"exact", "same model", "same architecture", "assumed"}


def catalog_id(org: str, name: str) -> str:
    return f"{org}/{name}"


def file_name(model_id: str) -> str:
    org, name = model_id.split("/", 1)
    return f"{org}__{name}.json"


def trim_arch(config: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in config.items():
        if key not in KEEP and not key.startswith(KEEP_PREFIXES):
            continue
        if key == "text_config" and isinstance(value, dict):
            value = trim_arch(value)
        elif key == "quantization_config" and isinstance(value, dict):
            value = trim_quant(value)
        elif key == "hf_quant_config" and isinstance(value, dict):
            value = trim_quant(value)
        elif key == "block_configs" and isinstance(value, list):
            value = [drop_empty(block) for block in value]
        out[key] = value
    return out


def drop_empty(value: Any) -> Any:
    """Nemotron-NAS block configs: drop null/false fields (their defaults)."""
    if isinstance(value, dict):
        return {k: drop_empty(v) for k, v in value.items() if v is not None and v is not False}
    return value


def collapse_module(name: str) -> str:
    """Shorten a module name without changing what it classifies to."""
    original = _classify_module(name)
    short = re.sub(r"\.experts\.\d+\.", ".experts.*.", name)
    leaf = short.rsplit(".", 1)
    if len(leaf) == 2 and leaf[1] != "*":
        candidate = leaf[0] + ".*"
        if _classify_module(candidate) == original:
            short = candidate
    return short if _classify_module(short) == original else name


def compact_patterns(patterns: Any) -> Any:
    if not isinstance(patterns, list):
        return patterns
    out: list[str] = []
    seen: set[str] = set()
    for pattern in patterns:
        text = str(pattern)
        _layer, comps = _classify_module(text)
        if not comps:
            continue  # norms, routers, vision tower...: irrelevant to weight bytes
        short = collapse_module(text)
        if short not in seen:
            seen.add(short)
            out.append(short)
    return out


def compact_layers(layers: Any) -> Any:
    if not isinstance(layers, dict):
        return layers
    votes: dict[str, Counter[str]] = {}
    extra: dict[str, dict[str, Any]] = {}
    for module, info in layers.items():
        _layer, comps = _classify_module(str(module))
        if not comps or not isinstance(info, dict):
            continue
        short = collapse_module(str(module))
        algo = str(info.get("quant_algo"))
        votes.setdefault(short, Counter())[algo] += 1
        extra.setdefault(short, {}).update({k: v for k, v in info.items() if k != "quant_algo"})
    return {
        short: {"quant_algo": counter.most_common(1)[0][0], **extra[short]}
        for short, counter in votes.items()
    }


def trim_quant(qc: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in qc.items():
        if key not in QUANT_KEEP:
            continue
        if key in PATTERN_LISTS:
            value = compact_patterns(value)
        elif key == "quantized_layers":
            value = compact_layers(value)
        elif key == "config_groups" and isinstance(value, dict):
            groups = {}
            for gname, group in value.items():
                if isinstance(group, dict):
                    group = dict(group)
                    targets = group.get("targets")
                    if isinstance(targets, list) and not any(
                        str(t).lower() == "linear" for t in targets
                    ):
                        group["targets"] = compact_patterns(targets)
                groups[gname] = group
            value = groups
        elif key == "quantization" and isinstance(value, dict):
            value = trim_quant(value)
        out[key] = value
    return out


def same_spec(a: ModelSpec, b: ModelSpec) -> bool:
    return (
        a.layer_groups == b.layer_groups
        and a.total_params == b.total_params
        and a.max_context == b.max_context
        and a.checkpoint_dtype == b.checkpoint_dtype
        and a.quant_method == b.quant_method
        and a.kv_cache_dtype == b.kv_cache_dtype
        and abs(a.checkpoint_bytes - b.checkpoint_bytes) <= 1e-6 * max(1.0, a.checkpoint_bytes)
    )


def load_full(directory: Path) -> dict[str, Any]:
    config = json.loads((directory / "config.json").read_text())
    hfq = directory / "hf_quant_config.json"
    if hfq.is_file():
        config["hf_quant_config"] = json.loads(hfq.read_text())
    return config


def build(data: Path, out_dir: Path, check: bool) -> int:
    root = data / "model_configs"
    if not root.is_dir():
        print(f"error: {root} not found (set --data or BUDSIM_DATA)", file=sys.stderr)
        return 2
    written: dict[str, str] = {}
    problems = 0
    for directory in sorted(p for p in root.glob("*/*") if (p / "config.json").is_file()):
        model_id = catalog_id(directory.parent.name, directory.name)
        full = load_full(directory)
        try:
            reference = model_from_config(full, model_id)
        except BudsimError as exc:
            print(f"skip {model_id}: {exc}", file=sys.stderr)
            continue
        trimmed = trim_arch(full)
        trimmed = {
            "_catalog": {
                "id": model_id,
                "source": f"model_configs/{model_id} (see SOURCES.md of the shared data set)",
            },
            **trimmed,
        }
        if not same_spec(reference, model_from_config(trimmed, model_id)):
            print(f"error: trimmed config of {model_id} parses differently", file=sys.stderr)
            problems += 1
            continue
        written[model_id] = json.dumps(trimmed, indent=1, ensure_ascii=False) + "\n"

    aliases, dtype_over, ambiguous = build_aliases(root, set(written))
    alias_text = (
        json.dumps(
            {
                "_note": "generated by scripts/build_model_catalog.py from ALIASES.csv + manual names",
                "aliases": dict(sorted(aliases.items(), key=lambda kv: kv[0].lower())),
                "dtype": dict(sorted(dtype_over.items(), key=lambda kv: kv[0].lower())),
                "ambiguous": ambiguous,
            },
            indent=1,
            ensure_ascii=False,
        )
        + "\n"
    )
    if check:
        stale = [
            mid
            for mid, text in written.items()
            if not (out_dir / file_name(mid)).is_file()
            or (out_dir / file_name(mid)).read_text() != text
        ]
        alias_path = out_dir / "aliases.json"
        if not alias_path.is_file() or alias_path.read_text() != alias_text:
            stale.append("aliases.json")
        for mid in stale:
            print(f"stale: {mid}", file=sys.stderr)
        return 1 if stale or problems else 0
    out_dir.mkdir(parents=True, exist_ok=True)
    for old in out_dir.glob("*__*.json"):
        old.unlink()
    for mid, text in written.items():
        (out_dir / file_name(mid)).write_text(text)
    (out_dir / "aliases.json").write_text(alias_text)
    total = sum(len(t) for t in written.values())
    print(
        f"wrote {len(written)} models ({total / 1e3:.0f} kB) and {len(aliases)} aliases to {out_dir}"
    )
    return 1 if problems else 0


def build_aliases(root: Path, ids: set[str]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """(alias -> id, alias -> checkpoint dtype override, names ALIASES.csv marks ambiguous)."""
    lower = {i.lower(): i for i in ids}
    aliases: dict[str, str] = {}
    dtype_over: dict[str, str] = {}
    ambiguous: list[str] = []
    csv_path = root / "ALIASES.csv"
    if csv_path.is_file():
        with csv_path.open(newline="") as fh:
            for row in csv.DictReader(fh):
                name = (row.get("dataset_model_name") or "").strip()
                target = (row.get("config_dir") or "").strip()
                relation = (row.get("relation") or "").strip()
                if name and relation == "ambiguous":
                    ambiguous.append(name)
                    continue
                if not name or relation not in USABLE_RELATIONS or target.lower() not in lower:
                    continue
                target = lower[target.lower()]
                if name.lower() != target.lower():
                    aliases[name] = target
                note = (row.get("note") or "") + " " + name
                dtype = None
                if re.search(r"nvfp4|\bfp4\b", note, re.I):
                    dtype = "nvfp4"
                elif re.search(r"fp8", note, re.I):
                    dtype = "fp8"
                if (
                    dtype
                    and model_from_config(load_full(root / target), target).checkpoint_dtype
                    != dtype
                ):
                    dtype_over[name] = dtype
    for name, target in MANUAL_ALIASES.items():
        if target in ids and name.lower() not in lower:
            aliases.setdefault(name, target)
    for name, (target, dtype) in MANUAL_DTYPE.items():
        if target in ids and name.lower() not in lower:
            aliases.setdefault(name, target)
            dtype_over.setdefault(name, dtype)
    return aliases, dtype_over, sorted(ambiguous)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    default_data = os.environ.get("BUDSIM_DATA") or str(ROOT.parent / "shared" / "data")
    parser.add_argument("--data", default=default_data, help="shared data dir (BUDSIM_DATA)")
    parser.add_argument("--out", default=str(CATALOG_DIR), help="catalog output directory")
    parser.add_argument("--check", action="store_true", help="only report stale catalog files")
    args = parser.parse_args()
    return build(Path(args.data), Path(args.out), args.check)


if __name__ == "__main__":
    sys.exit(main())
