"""ModelSpec: parameter counts, KV bytes, layer structure, quantisation, catalog and loading."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from budsim.core.dtypes import WEIGHT_BYTES
from budsim.core.errors import BudsimError
from budsim.core.model import (
    ALIASES_FILE,
    LayerSpec,
    ModelSpec,
    canonical_model_name,
    list_catalog,
    load_model,
    model_from_config,
)

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("BUDSIM_DATA") or REPO.parent / "shared" / "data")


def within(value: float, expected: float, rel: float = 0.02) -> bool:
    return abs(value - expected) <= rel * expected


def llama_like(**over: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 8,
        "vocab_size": 128256,
        "max_position_embeddings": 131072,
        "tie_word_embeddings": False,
        "torch_dtype": "bfloat16",
    }
    cfg.update(over)
    return cfg


def groups_by(model: ModelSpec, attention: str) -> list[tuple[LayerSpec, int]]:
    return [(spec, n) for spec, n in model.layer_groups if spec.attention == attention]


# ------------------------------------------------------------------ published parameter counts


def test_llama_31_8b_and_70b_parameter_counts() -> None:
    m8 = load_model("meta-llama/Llama-3.1-8B")
    assert within(m8.total_params, 8.03e9, 0.005)
    assert m8.active_params == m8.total_params  # dense
    assert m8.num_layers == 32 and m8.attention_kind == "gqa"
    m70 = load_model("meta-llama/Llama-3.1-70B-Instruct")
    assert within(m70.total_params, 70.6e9, 0.005)
    assert m70.num_layers == 80


def test_mixtral_total_and_active() -> None:
    m = load_model("mistralai/Mixtral-8x7B-v0.1")
    assert within(m.total_params, 46.7e9)
    assert within(m.active_params, 12.9e9)
    assert m.is_moe and m.num_experts == 8 and m.top_k == 2


def test_deepseek_v3_total_and_active() -> None:
    m = load_model("deepseek-ai/DeepSeek-V3")
    assert within(m.total_params, 671e9)  # MTP module (the "685B" figure) excluded
    assert within(m.active_params, 37e9)
    moe_layers = sum(n for spec, n in m.layer_groups if spec.mlp_kind == "moe")
    assert moe_layers == 58  # first_k_dense_replace = 3 of 61
    moe = next(spec for spec, _ in m.layer_groups if spec.mlp_kind == "moe")
    assert moe.num_experts == 256 and moe.top_k == 8
    assert moe.expert_params == 3 * 7168 * 2048
    assert moe.dense_params == 3 * 7168 * 2048  # one shared expert


def test_qwen3_235b_total_and_active() -> None:
    m = load_model("Qwen/Qwen3-235B-A22B")
    assert within(m.total_params, 235e9)
    assert within(m.active_params, 22e9)  # Qwen counts embeddings + LM head as active


def test_gpt_oss_120b_total_and_active_openai_convention() -> None:
    m = load_model("openai/gpt-oss-120b")
    assert within(m.total_params, 117e9)
    # OpenAI's 5.1B active leaves out the input embedding table but keeps the unembedding.
    assert within(m.active_params - m.input_embedding_params, 5.1e9)
    # The default convention (embedding table included) is therefore larger by exactly V*h.
    assert m.active_params - m.input_embedding_params == m.active_params - 201088 * 2880


def test_other_families_match_published_sizes() -> None:
    expected = {
        "meta-llama/Llama-4-Scout-17B-16E-Instruct": (109e9, 17e9, 0.02),  # 109B incl. vision
        "meta-llama/Llama-4-Maverick-17B-128E-Instruct": (400e9, 17e9, 0.02),
        "moonshotai/Kimi-K2-Instruct": (1.03e12, 32.6e9, 0.03),
        "google/gemma-2-9b": (9.24e9, 9.24e9, 0.02),
        "microsoft/Phi-3-mini-4k-instruct": (3.82e9, 3.82e9, 0.02),
        "mistralai/Mixtral-8x22B-v0.1": (141e9, 39e9, 0.02),
        "Qwen/Qwen3.5-397B-A17B": (397e9, 17e9, 0.03),
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16": (31.6e9, 3.6e9, 0.02),
        "XiaomiMiMo/MiMo-V2-Flash": (309e9, 15e9, 0.04),
        "bigscience/bloom": (176e9, 176e9, 0.02),
    }
    for ref, (total, active, rel) in expected.items():
        m = load_model(ref)
        assert within(m.total_params, total, rel), ref
        assert within(m.active_params, active, rel), ref


# ------------------------------------------------------------------ KV cache


def test_kv_bytes_llama_31_8b_hand_computed() -> None:
    m = load_model("meta-llama/Llama-3.1-8B")
    assert m.kv_bytes_per_token(2.0) == 32 * 2 * 8 * 128 * 2 == 131072
    assert m.kv_bytes_per_token(1.0) == 65536  # fp8 cache halves it
    spec, n = m.layer_groups[0]
    assert n == 32 and spec.kv_elems_per_token == 2 * 8 * 128 and not spec.is_mla


def test_kv_bytes_deepseek_v3_mla_is_latent_plus_rope() -> None:
    m = load_model("deepseek-ai/DeepSeek-V3")
    assert m.attention_kind == "mla"
    assert m.kv_bytes_per_token(2.0) == 61 * (512 + 64) * 2
    for spec, _ in m.layer_groups:
        assert spec.is_mla and spec.kv_heads == 1
        assert spec.qk_dim == 576 and spec.v_dim == 512
        assert spec.kv_elems_per_token == 576  # not 2 x rank
        assert (spec.prefill_qk_dim, spec.prefill_v_dim) == (128 + 64, 128)  # un-absorbed prefill


def test_kv_bytes_sliding_window_gemma2() -> None:
    m = load_model("google/gemma-2-9b")
    sliding = groups_by(m, "sliding")
    full = groups_by(m, "full")
    assert sum(n for _, n in sliding) == 21 and sum(n for _, n in full) == 21
    assert all(spec.window == 4096 for spec, _ in sliding)
    per_layer = 2 * 8 * 256 * 2  # K+V, 8 KV heads, head_dim 256, bf16
    assert m.kv_bytes_per_token(2.0) == 42 * per_layer
    # At 8192 tokens a sliding layer holds only 4096 of them: half a token each on average.
    assert m.kv_bytes_per_token(2.0, context=8192) == 21 * per_layer + 21 * per_layer * 0.5
    # Short contexts do not benefit.
    assert m.kv_bytes_per_token(2.0, context=1000) == 42 * per_layer


def test_gpt_oss_alternates_sliding_128_and_full() -> None:
    m = load_model("openai/gpt-oss-120b")
    assert [n for _, n in groups_by(m, "sliding")] == [18]
    assert [n for _, n in groups_by(m, "full")] == [18]
    assert groups_by(m, "sliding")[0][0].window == 128
    per_layer = 2 * 8 * 64 * 2
    ctx = 131072
    expected = 18 * per_layer + 18 * per_layer * 128 / ctx
    assert m.kv_bytes_per_token(2.0, context=ctx) == pytest.approx(expected)


def test_llama4_chunked_attention_and_interleaved_moe() -> None:
    m = load_model("meta-llama/Llama-4-Maverick-17B-128E-Instruct")
    chunked = sum(n for s, n in groups_by(m, "sliding"))
    assert chunked == 36 and sum(n for _, n in groups_by(m, "full")) == 12  # NoPE every 4th layer
    assert all(s.window == 8192 for s, _ in groups_by(m, "sliding"))
    moe_layers = sum(n for s, n in m.layer_groups if s.mlp_kind == "moe")
    assert moe_layers == 24  # interleave_moe_layer_step = 2
    dense = [s for s, _ in m.layer_groups if s.mlp_kind == "dense"]
    assert dense and all(s.dense_params == 3 * 5120 * 16384 for s in dense)


def test_hybrid_linear_attention_qwen35() -> None:
    m = load_model("Qwen/Qwen3.5-27B")
    assert m.attention_kind == "hybrid"
    full = groups_by(m, "full")
    linear = groups_by(m, "linear")
    assert sum(n for _, n in full) == 16 and sum(n for _, n in linear) == 48
    # Only the 16 full-attention layers cache KV: 4 KV heads x head_dim 256.
    assert m.kv_bytes_per_token(2.0) == 16 * 2 * 4 * 256 * 2
    spec = linear[0][0]
    assert spec.kv_elems_per_token == 0 and spec.window is None
    # Gated DeltaNet state: 48 value heads x 128 x 128, plus the causal-conv tail (kernel 4).
    assert spec.state_elems == 48 * 128 * 128 + (2 * 16 * 128 + 48 * 128) * 3
    assert m.state_bytes_per_sequence(4.0) == 48 * spec.state_elems * 4.0


def test_full_attention_interval_without_layer_types() -> None:
    cfg = {
        "model_type": "qwen3_next",
        "architectures": ["Qwen3NextForCausalLM"],
        "hidden_size": 2048,
        "num_hidden_layers": 48,
        "num_attention_heads": 16,
        "num_key_value_heads": 2,
        "head_dim": 256,
        "intermediate_size": 5120,
        "vocab_size": 151936,
        "full_attention_interval": 4,
        "linear_num_key_heads": 16,
        "linear_num_value_heads": 32,
        "linear_key_head_dim": 128,
        "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4,
        "num_experts": 512,
        "num_experts_per_tok": 10,
        "moe_intermediate_size": 512,
        "shared_expert_intermediate_size": 512,
    }
    m = model_from_config(cfg, "qwen3-next-like")
    assert sum(n for _, n in groups_by(m, "full")) == 12
    assert sum(n for _, n in groups_by(m, "linear")) == 36
    assert m.kv_bytes_per_token(2.0) == 12 * 2 * 2 * 256 * 2
    assert m.num_experts == 512 and m.top_k == 10
    assert within(m.total_params, 80e9, 0.03)  # Qwen3-Next-80B-A3B geometry
    assert within(m.active_params, 3.9e9, 0.1)


def test_nemotron_h_mamba_blocks_are_linear_and_paired_with_ffn() -> None:
    m = load_model("nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-BF16")
    # 52 blocks (23 Mamba, 23 MoE, 6 attention) pair into 29 mixer+FFN layers
    assert m.num_layers == 29
    assert sum(n for _, n in groups_by(m, "linear")) == 23
    assert sum(n for _, n in groups_by(m, "full")) == 6
    assert m.kv_bytes_per_token(2.0) == 6 * 2 * 2 * 128 * 2
    mamba = groups_by(m, "linear")[0][0]
    assert mamba.state_elems == 64 * 64 * 128 + (64 * 64 + 2 * 8 * 128) * 3


def test_minimax_text01_style_attn_type_list() -> None:
    cfg = llama_like(
        model_type="minimax",
        architectures=["MiniMaxText01ForCausalLM"],
        num_hidden_layers=8,
        attn_type_list=[0, 0, 0, 1, 0, 0, 0, 1],
        num_local_experts=4,
        num_experts_per_tok=2,
        intermediate_size=1024,
        num_key_value_heads=8,
        head_dim=128,
    )
    m = model_from_config(cfg, "minimax-like")
    assert sum(n for _, n in groups_by(m, "linear")) == 6
    assert m.kv_bytes_per_token(2.0) == 2 * 2 * 8 * 128 * 2


# ------------------------------------------------------------------ structure, context, text_config


def test_max_context_from_rope_scaling() -> None:
    assert load_model("meta-llama/Llama-3.1-8B").max_context == 131072
    assert load_model("deepseek-ai/DeepSeek-V3").max_context == 163840  # 4096 x 40 yarn
    yarn = llama_like(
        max_position_embeddings=40960,
        rope_scaling={
            "rope_type": "yarn",
            "factor": 4.0,
            "original_max_position_embeddings": 32768,
        },
    )
    assert model_from_config(yarn, "qwen3-yarn").max_context == 131072
    linear = llama_like(max_position_embeddings=4096, rope_scaling={"type": "linear", "factor": 2})
    assert model_from_config(linear, "linear").max_context == 8192


def test_multimodal_wrappers_use_the_text_decoder() -> None:
    vl = load_model("Qwen/Qwen3-VL-8B-Instruct")
    text = load_model("Qwen/Qwen3-8B")
    assert vl.layer_groups == text.layer_groups
    assert vl.total_params == text.total_params  # vision tower not counted
    g3 = load_model("google/gemma-3-27b-it")
    assert g3.tie_word_embeddings
    assert sum(n for _, n in groups_by(g3, "sliding")) == 52  # 5 local : 1 global over 62 layers
    assert sum(n for _, n in groups_by(g3, "full")) == 10


def test_generic_decoder_with_standard_fields() -> None:
    h, n, heads, inter, vocab = 1024, 4, 16, 2816, 32000
    cfg = {
        "model_type": "brand_new_llm",
        "architectures": ["BrandNewForCausalLM"],
        "hidden_size": h,
        "num_hidden_layers": n,
        "num_attention_heads": heads,
        "intermediate_size": inter,
        "vocab_size": vocab,
    }
    m = model_from_config(cfg, "brand-new")
    per_layer = 4 * h * h + 3 * h * inter + 2 * h  # MHA projections, gated MLP, two norms
    assert m.total_params == 2 * vocab * h + n * per_layer + h
    assert m.attention_kind == "mha" and m.max_context == 2048 and not m.is_moe
    assert m.kv_bytes_per_token(2.0) == n * 2 * h * 2


def test_nemotron_nas_block_configs() -> None:
    m = load_model("nvidia/Llama-3_3-Nemotron-Super-49B-v1")
    assert within(m.total_params, 49.9e9, 0.01)
    no_attention = sum(n for s, n in m.layer_groups if s.q_heads == 0)
    assert no_attention == 31  # attention replaced by no-op in 31 of 80 blocks
    assert m.kv_bytes_per_token(2.0) == 49 * 2 * 8 * 128 * 2


# ------------------------------------------------------------------ quantisation and weight bytes


def test_gpt_oss_mxfp4_only_experts_quantised() -> None:
    m = load_model("openai/gpt-oss-120b")
    assert m.checkpoint_dtype == "mxfp4" and m.quant_method == "mxfp4"
    experts = sum(s.num_experts * s.expert_params * n for s, n in m.layer_groups)
    rest = m.total_params - experts
    expected = experts * WEIGHT_BYTES["mxfp4"] + rest * 2.0
    assert m.weight_bytes("auto") == pytest.approx(expected)
    assert m.weight_bytes("mxfp4") == m.weight_bytes("auto")
    assert 60e9 < m.weight_bytes("auto") < 70e9  # the published checkpoint is ~65 GB
    # An explicit other dtype quantises the whole body; embeddings stay 16-bit.
    body = m.total_params - m.embedding_params
    assert m.weight_bytes("fp8") == pytest.approx(body * 1.0 + m.embedding_params * 2.0)


def test_weight_bytes_dense_bf16_and_overrides() -> None:
    m = load_model("meta-llama/Llama-3.1-8B")
    assert m.checkpoint_dtype == "bf16" and m.quant_method is None
    assert m.weight_bytes("auto") == pytest.approx(m.total_params * 2.0)
    emb = 2 * 128256 * 4096
    assert m.embedding_params == emb
    assert m.weight_bytes("fp8") == pytest.approx((m.total_params - emb) + emb * 2.0)
    assert m.weight_bytes("int4") == pytest.approx(
        (m.total_params - emb) * WEIGHT_BYTES["int4"] + emb * 2.0
    )
    with pytest.raises(BudsimError):
        m.weight_bytes("int3")


def test_fp8_block_checkpoints() -> None:
    m = load_model("deepseek-ai/DeepSeek-V3")
    assert m.checkpoint_dtype == "fp8" and m.quant_method == "fp8"
    body = m.total_params - m.embedding_params
    assert m.weight_bytes("auto") == pytest.approx(body * 1.0 + m.embedding_params * 2.0)
    q = load_model("Qwen/Qwen3-32B-FP8")
    assert q.checkpoint_dtype == "fp8"
    assert q.weight_bytes("auto") < 0.55 * q.weight_bytes("bf16")


def test_modelopt_nvfp4_keeps_excluded_attention_16bit() -> None:
    m = load_model("nvidia/DeepSeek-V3.1-NVFP4")
    assert m.checkpoint_dtype == "nvfp4" and m.quant_method == "modelopt"
    assert m.kv_cache_dtype == "fp8"
    attn = sum(s.attn_params * n for s, n in m.layer_groups)
    ffn = m.total_params - m.embedding_params - attn - m.hidden_size
    # hf_quant_config excludes every self_attn module (and lm_head): those stay 16-bit.
    expected = (attn + m.embedding_params + m.hidden_size) * 2.0 + ffn * WEIGHT_BYTES["nvfp4"]
    assert m.weight_bytes("auto") == pytest.approx(expected)
    # Naming the checkpoint's own dtype means the checkpoint as stored, not a uniform NVFP4 body.
    assert m.weight_bytes("nvfp4") == m.weight_bytes("auto")
    uniform = (m.total_params - m.embedding_params) * WEIGHT_BYTES["nvfp4"]
    assert m.weight_bytes("auto") > uniform + m.embedding_params * 2.0


def test_modelopt_fp8_with_hf_quant_config() -> None:
    m = load_model("nvidia/Llama-3.1-70B-Instruct-FP8")
    assert m.checkpoint_dtype == "fp8" and m.quant_method == "modelopt"
    assert m.kv_cache_dtype == "fp8"
    body = m.total_params - m.embedding_params
    assert m.weight_bytes("auto") == pytest.approx(body + m.embedding_params * 2.0)


def test_compressed_tensors_int4_reads_bits_and_ignore_list() -> None:
    m = load_model("moonshotai/Kimi-K2.5")
    assert m.checkpoint_dtype == "int4" and m.quant_method == "compressed-tensors"
    experts = sum(s.num_experts * s.expert_params * n for s, n in m.layer_groups)
    # int4 symmetric, group 32 (bf16 scale): 0.5 + 2/32 bytes per weight; attention, shared
    # experts and dense MLPs are in the ignore list and stay 16-bit.
    expected = experts * (0.5 + 2 / 32) + (m.total_params - experts) * 2.0
    assert m.weight_bytes("auto") == pytest.approx(expected)


def test_mixed_precision_modelopt_picks_dominant_dtype() -> None:
    m = load_model("nvidia/Qwen3.6-27B-NVFP4")  # MLPs W4A16 NVFP4, attention mixers FP8
    assert m.checkpoint_dtype == "nvfp4"
    body = m.total_params - m.embedding_params
    all_nvfp4 = body * WEIGHT_BYTES["nvfp4"] + m.embedding_params * 2.0
    # lm_head is explicitly in the NVFP4 target list, so the bound allows for it
    assert m.weight_bytes("fp8") > m.weight_bytes("auto") > all_nvfp4 - 0.6 * 248320 * 5120 * 2


@pytest.mark.parametrize(
    ("qc", "dtype"),
    [
        ({"quant_method": "awq", "bits": 4, "group_size": 128}, "int4"),
        ({"quant_method": "gptq", "bits": 8, "group_size": 128}, "int8"),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "g": {"targets": ["Linear"], "weights": {"num_bits": 8, "type": "float"}}
                },
                "ignore": ["lm_head"],
            },
            "fp8",
        ),
        (
            {
                "quant_method": "compressed-tensors",
                "config_groups": {
                    "g": {
                        "targets": ["Linear"],
                        "weights": {"num_bits": 4, "type": "float", "group_size": 16},
                    }
                },
            },
            "nvfp4",
        ),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]}, "fp8"),
    ],
)
def test_quantization_config_methods(qc: dict[str, Any], dtype: str) -> None:
    m = model_from_config(llama_like(quantization_config=qc), "quantised-llama")
    assert m.checkpoint_dtype == dtype
    body = m.total_params - m.embedding_params
    expected_per = WEIGHT_BYTES[dtype]
    assert m.weight_bytes("auto") == pytest.approx(
        body * expected_per + m.embedding_params * 2.0, rel=0.01
    )


def test_alias_of_prequantised_checkpoint_overrides_dtype() -> None:
    m = load_model("nvidia/Llama-3.1-8B-Instruct-FP8")
    assert m.checkpoint_dtype == "fp8"
    assert m.total_params == load_model("meta-llama/Meta-Llama-3.1-8B").total_params
    assert m.weight_bytes("auto") < 0.6 * m.weight_bytes("bf16")


# ------------------------------------------------------------------ catalog, aliases, loading


def test_catalog_is_large_and_covers_the_families() -> None:
    ids = list_catalog()
    assert len(ids) >= 60
    required = [
        "meta-llama/Llama-2-7b-hf",
        "meta-llama/Meta-Llama-3-8B",
        "meta-llama/Meta-Llama-3.1-8B",
        "meta-llama/Llama-3.3-70B-Instruct",
        "meta-llama/Llama-4-Scout-17B-16E-Instruct",
        "mistralai/Mistral-7B-v0.1",
        "mistralai/Mixtral-8x7B-v0.1",
        "Qwen/Qwen2-7B",
        "Qwen/Qwen3-8B",
        "Qwen/Qwen3-30B-A3B",
        "Qwen/Qwen3.5-397B-A17B",
        "deepseek-ai/DeepSeek-V3",
        "deepseek-ai/DeepSeek-R1",
        "openai/gpt-oss-120b",
        "google/gemma-2-9b",
        "google/gemma-3-27b-it",
        "microsoft/Phi-3-mini-4k-instruct",
        "zai-org/GLM-5",
        "moonshotai/Kimi-K2-Instruct",
        "MiniMaxAI/MiniMax-M2.5",
    ]
    missing = [r for r in required if r not in ids]
    assert not missing


def test_every_catalog_model_parses_consistently() -> None:
    for model_id in list_catalog():
        m = load_model(model_id)
        assert m.num_layers > 0 and m.hidden_size > 0, model_id
        assert 0 < m.active_params <= m.total_params, model_id
        assert m.kv_bytes_per_token(2.0) >= 0, model_id
        assert m.max_context >= 2048, model_id
        assert 0 < m.weight_bytes("auto") <= m.weight_bytes("bf16") * 1.0001, model_id
        assert sum(n for _, n in m.layer_groups) == m.num_layers, model_id


@pytest.mark.parametrize(
    ("name", "target"),
    [
        ("meta-llama/Llama-3.1-8B", "meta-llama/Meta-Llama-3.1-8B"),
        ("meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Meta-Llama-3.1-8B"),
        ("meta-llama/Llama-3.1-70B-Instruct", "meta-llama/Meta-Llama-3.1-70B"),
        ("meta-llama/Meta-Llama-3-70B-Instruct", "meta-llama/Meta-Llama-3-70B"),
        ("Llama-3-8B", "meta-llama/Meta-Llama-3-8B"),
        ("Mixtral-8x7B", "mistralai/Mixtral-8x7B-v0.1"),
        ("llama2-70b", "meta-llama/Llama-2-70b-hf"),
        ("LLaMA v3.1 405B", "meta-llama/Meta-Llama-3.1-405B"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507", "Qwen/Qwen3-235B-A22B"),
        ("Qwen/Qwen3-235B-A22B-Instruct-2507-FP8", "Qwen/Qwen3-235B-A22B-FP8"),
        ("DEEPSEEK-AI/deepseek-v3", "deepseek-ai/DeepSeek-V3"),  # case-insensitive id
        ("gpt-oss-120b", "openai/gpt-oss-120b"),  # short name
        ("Qwen3-32B", "Qwen/Qwen3-32B"),
        ("google/gemma-2-9b-it", "google/gemma-2-9b"),
    ],
)
def test_resolve_alias(name: str, target: str) -> None:
    assert canonical_model_name(name) == target
    assert load_model(name).source == f"catalog:{target}"


def test_resolve_alias_unknown_and_ambiguous() -> None:
    names = [
        "totally/unknown-model-9000",
        "Qwen3-VL-32B",  # Instruct and Thinking both match
        # ALIASES.csv marks this benchmark label ambiguous (405B title, 70B checkpoint): no guess.
        "Llama 3.1 405B (amd/Llama-3.1-70B-Instruct-FP8-KV)",
    ]
    for name in names:
        assert canonical_model_name(name) == name
        with pytest.raises(BudsimError, match="unknown model"):
            load_model(name)
    with pytest.raises(BudsimError, match="empty model name"):
        load_model("")


def test_one_model_has_one_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Issue #19: the names the catalog resolves to one model give its catalog id, which loads
    the same architecture; paths, unknown names, ambiguous labels and pre-quantised checkpoints
    keep the name they were given."""
    spellings = [
        "Llama-3.1-70B",
        "Meta-Llama-3.1-70B",
        "meta-llama/Llama-3.1-70B",
        "meta-llama/Meta-Llama-3.1-70B",
        " META-LLAMA/llama-3.1-70b ",
        "meta-llama/Llama-3.1-70B-Instruct",
    ]
    assert {canonical_model_name(n) for n in spellings} == {"meta-llama/Meta-Llama-3.1-70B"}
    canonical = load_model("meta-llama/Meta-Llama-3.1-70B")
    assert load_model("Llama-3.1-70B").total_params == canonical.total_params
    # an FP8 checkpoint of the same architecture is another model to plan for (its weights)
    fp8 = "neuralmagic/Meta-Llama-3.1-70B-Instruct-FP8"
    assert canonical_model_name(fp8) == fp8 and load_model(fp8).checkpoint_dtype == "fp8"
    ambiguous = "Llama 3.1 405B (amd/Llama-3.1-70B-Instruct-FP8-KV)"
    assert canonical_model_name(ambiguous) == ambiguous
    assert canonical_model_name("someorg/not-in-the-catalog") == "someorg/not-in-the-catalog"
    # a local config is its path, even one named like a catalog model
    monkeypatch.chdir(tmp_path)
    (tmp_path / "Llama-3.1-8B").mkdir()
    (tmp_path / "Llama-3.1-8B" / "config.json").write_text("{}")
    for path in ("Llama-3.1-8B", "./Llama-3.1-8B", "Llama-3.1-8B/config.json"):
        assert canonical_model_name(path) == path


def test_alias_table_is_a_json_file_pointing_into_the_catalog() -> None:
    data = json.loads(ALIASES_FILE.read_text())
    ids = set(list_catalog())
    assert len(data["aliases"]) >= 50
    assert all(target in ids for target in data["aliases"].values())
    assert set(data["dtype"]) <= set(data["aliases"])


def test_load_model_is_cached() -> None:
    assert load_model("meta-llama/Llama-3.1-8B") is load_model("meta-llama/Llama-3.1-8B")


def test_load_from_directory_and_file(tmp_path: Path) -> None:
    d = tmp_path / "my-model"
    d.mkdir()
    (d / "config.json").write_text(json.dumps(llama_like()))
    (d / "hf_quant_config.json").write_text(
        json.dumps({"quantization": {"quant_algo": "FP8", "kv_cache_quant_algo": "FP8"}})
    )
    from_dir = load_model(str(d))
    assert from_dir.checkpoint_dtype == "fp8" and from_dir.kv_cache_dtype == "fp8"
    assert within(from_dir.total_params, 8.03e9, 0.005)
    from_file = load_model(str(d / "config.json"))
    assert from_file.layer_groups == from_dir.layer_groups
    assert from_file.source.endswith("config.json")


def test_unknown_model_and_bad_files_raise_one_line(tmp_path: Path) -> None:
    with pytest.raises(BudsimError) as err:
        load_model("nobody/no-such-model-at-all")
    assert "\n" not in str(err.value)
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(BudsimError, match="not valid JSON"):
        load_model(str(bad))
    with pytest.raises(BudsimError, match="does not exist"):
        load_model(str(tmp_path / "missing" / "config.json"))
    lst = tmp_path / "list.json"
    lst.write_text("[1, 2]")
    with pytest.raises(BudsimError, match="not a JSON object"):
        load_model(str(lst))


@pytest.mark.parametrize(
    ("cfg", "match"),
    [
        (
            {
                "model_type": "bert",
                "architectures": ["BertForMaskedLM"],
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "vocab_size": 30522,
            },
            "encoder-only",
        ),
        (
            {
                "model_type": "my_encoder",
                "architectures": ["MyEncoderForSequenceClassification"],
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "vocab_size": 30522,
            },
            "not a text-generation decoder",
        ),
        ({"model_type": "t5", "is_encoder_decoder": True, "d_model": 512}, "encoder-decoder"),
        ({"model_type": "vit", "hidden_size": 768}, "vision"),
        ({"vision_config": {"hidden_size": 1024}, "model_type": "some_vision_thing"}, "vision"),
        ({"model_type": "llama", "num_hidden_layers": 2}, "hidden_size"),
        (llama_like(num_hidden_layers=0), "positive"),
        (llama_like(num_attention_heads=-4), "positive"),
        (llama_like(intermediate_size=0), "positive"),
        (llama_like(num_key_value_heads=64), "num_key_value_heads"),
        (llama_like(hidden_size="4096"), "number"),
    ],
)
def test_non_decoder_or_malformed_configs_raise(cfg: dict[str, Any], match: str) -> None:
    with pytest.raises(BudsimError, match=match) as err:
        model_from_config(cfg, "bad")
    assert "\n" not in str(err.value)


def test_hub_fallback_never_trusts_remote_code_unless_asked(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import transformers

    calls: list[dict[str, Any]] = []

    class FakeConfig:
        def to_dict(self) -> dict[str, Any]:
            return llama_like(num_hidden_layers=2)

    class FakeAutoConfig:
        @staticmethod
        def from_pretrained(ref: str, **kwargs: Any) -> FakeConfig:
            calls.append({"ref": ref, **kwargs})
            if kwargs["local_files_only"] and "cached" not in ref:
                raise OSError("not in the cache")
            return FakeConfig()

    import huggingface_hub

    def no_download(repo: str, filename: str, **kwargs: Any) -> str:
        raise FileNotFoundError(filename)  # keep the test offline

    monkeypatch.setattr(transformers, "AutoConfig", FakeAutoConfig)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", lambda url, **kw: None)
    load_model.cache_clear()
    try:
        m = load_model("someorg/cached-model-xyz")
        assert m.num_layers == 2 and m.source == "hf:someorg/cached-model-xyz"
        assert calls[-1]["trust_remote_code"] is False
        assert calls[-1]["local_files_only"] is True  # offline unless allow_network
        load_model("someorg/uncatalogued-model-xyz", trust_remote_code=True, allow_network=True)
        # the cache first, then the Hub
        assert [c["local_files_only"] for c in calls[-2:]] == [True, False]
        assert calls[-1]["trust_remote_code"] is True
    finally:
        load_model.cache_clear()


def _hub_error(name: str) -> Exception:
    from huggingface_hub import errors

    cls = getattr(errors, name)
    err = cls.__new__(cls)  # these take an HTTP response; the message is all budsim reads
    Exception.__init__(err, name)
    return err


@pytest.mark.parametrize(
    ("raised", "says"),
    [
        (OSError("[Errno -2] Name or service not known"), "no connection ([Errno -2] Name or"),
        ("RepositoryNotFoundError", "'someorg/xyz' is not a model on the Hugging Face Hub"),
        ("GatedRepoError", "the repo is gated"),
        ("RemoteEntryNotFoundError", "'someorg/xyz' on the Hugging Face Hub has no config.json"),
    ],
)
def test_a_hub_that_cannot_serve_the_config_is_one_line(
    monkeypatch: pytest.MonkeyPatch, raised: Exception | str, says: str
) -> None:
    """With downloads allowed, a missing network or an unknown repo is one clear line, raised
    before huggingface_hub's retries (23 s and a warning per retry when offline) (#19)."""
    import huggingface_hub

    error = _hub_error(raised) if isinstance(raised, str) else raised

    def probe(url: str, **kwargs: Any) -> None:
        raise error

    def no_download(repo: str, filename: str, **kwargs: Any) -> str:
        assert kwargs["local_files_only"], "downloaded after a failed probe"
        raise FileNotFoundError(filename)

    monkeypatch.setattr(huggingface_hub, "get_hf_file_metadata", probe)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_download)
    load_model.cache_clear()
    try:
        with pytest.raises(BudsimError) as err:
            load_model("someorg/xyz", allow_network=True)
    finally:
        load_model.cache_clear()
    assert says in str(err.value) and "\n" not in str(err.value)


def test_the_unknown_model_hint_names_a_switch_that_exists() -> None:
    """The hint offers --allow-download (predict, optimize and analyze take it) and the TUI's
    HF Hub switch (the model picker has it); a name without an org is never looked up, so it
    gets no such hint."""
    with pytest.raises(BudsimError) as err:
        load_model("someorg/not-cached-anywhere-xyz")
    assert "or allow downloads (--allow-download; in the TUI the HF Hub switch)" in str(err.value)
    picker = REPO / "budsim" / "tui" / "widgets" / "model_picker.py"
    assert 'Toggle("HF Hub"' in picker.read_text()
    with pytest.raises(BudsimError) as err:
        load_model("not-cached-anywhere-xyz")
    assert "--allow-download" not in str(err.value)


def test_hub_fallback_reads_raw_config_when_autoconfig_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import huggingface_hub
    import transformers

    class FailingAutoConfig:
        @staticmethod
        def from_pretrained(ref: str, **kwargs: Any) -> Any:
            raise ValueError("needs trust_remote_code")

    raw = tmp_path / "config.json"
    raw.write_text(json.dumps(llama_like(num_hidden_layers=3)))

    def fake_download(repo: str, filename: str, **kwargs: Any) -> str:
        if filename == "config.json":
            return str(raw)
        raise FileNotFoundError(filename)

    monkeypatch.setattr(transformers, "AutoConfig", FailingAutoConfig)
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake_download)
    load_model.cache_clear()
    try:
        assert load_model("someorg/remote-code-model").num_layers == 3
    finally:
        load_model.cache_clear()


@pytest.mark.skipif(not (DATA / "model_configs").is_dir(), reason="shared model configs absent")
def test_bundled_catalog_is_in_sync_with_the_builder() -> None:
    out = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "build_model_catalog.py"), "--check"],
        capture_output=True,
        text=True,
        env={**os.environ, "BUDSIM_DATA": str(DATA)},
    )
    assert out.returncode == 0, out.stderr[-2000:]
