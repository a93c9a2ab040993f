"""Numeric formats: storage bytes per element and the compute peak they run on."""

from __future__ import annotations

from .errors import BudsimError

# Bytes per weight element including the per-group scale overhead of block formats:
# nvfp4 = 4 bits + one fp8 scale per 16 values; mxfp4 = 4 bits + one e8m0 scale per 32 values;
# int4 (AWQ/GPTQ, group 128) = 4 bits + fp16 scale and zero per 128 values.
WEIGHT_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5 + 4.0 / 128,
    "nvfp4": 0.5 + 1.0 / 16,
    "mxfp4": 0.5 + 1.0 / 32,
    # GGUF (llama.cpp) formats at their whole-file bits per weight, token embeddings and output
    # included: llama.cpp tools/quantize/README.md, "Llama 2 7B" BPW table (Q4_K_M 4.84, Q5_K_M
    # 5.68; 4.80/5.65 at 70B) and its bits/weight row (Q8_0 8.5 = 8 bits + one fp16 scale per 32).
    # The K-quant mixes keep some tensors (attn_v, ffn_down, output) at Q6_K, hence > 4 and 5 bits.
    "q4_k_m": 4.84 / 8,
    "q5_k_m": 5.68 / 8,
    "q8_0": 8.5 / 8,
}

KV_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp32": 4.0}

# Formats only llama.cpp runs (its 16-bit GGUF types are bf16 and fp16 here)
GGUF_DTYPES = ("q4_k_m", "q5_k_m", "q8_0")
WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4", *GGUF_DTYPES)
KV_DTYPES = ("auto", "fp8")

# Which tensor-core peak a GEMM with these weights runs at. Weight-only int4 dequantises to 16 bit;
# mxfp4 runs natively on Blackwell and as w4a16/fp8 elsewhere (the device table decides the fallback).
COMPUTE_DTYPE: dict[str, str] = {
    "fp32": "bf16",
    "bf16": "bf16",
    "fp16": "bf16",
    "fp8": "fp8",
    "int8": "int8",
    "int4": "bf16",
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    # llama.cpp's quantised matmuls are priced at the 16-bit peak: its CUDA/ROCm MMQ kernels
    # unpack the blocks inside their tile loads (int8 dot products on a q8_1 copy of the
    # activations), CPUs use integer dot products, so there is no separate dequantisation pass
    # to price; the 16-bit peak is the conservative one of the two rates.
    "q4_k_m": "bf16",
    "q5_k_m": "bf16",
    "q8_0": "bf16",
}


def weight_bytes(dtype: str) -> float:
    try:
        return WEIGHT_BYTES[dtype]
    except KeyError:
        raise BudsimError(
            f"unknown weight dtype {dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)} or auto"
        ) from None


def embedding_bytes(dtype: str) -> float:
    """Bytes per embedding / LM-head parameter: 16-bit except fp32 checkpoints and GGUF files,
    which quantise token_embd and output too (the BPW figures above are whole-file)."""
    if dtype in GGUF_DTYPES:
        return WEIGHT_BYTES[dtype]
    return 4.0 if dtype == "fp32" else 2.0


def kv_bytes(dtype: str) -> float:
    try:
        return KV_BYTES[dtype]
    except KeyError:
        raise BudsimError(f"unknown KV dtype {dtype!r}; choose auto or fp8") from None
