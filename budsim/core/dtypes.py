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
}

KV_BYTES: dict[str, float] = {"bf16": 2.0, "fp16": 2.0, "fp8": 1.0, "fp32": 4.0}

WEIGHT_DTYPES = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
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
}


def weight_bytes(dtype: str) -> float:
    try:
        return WEIGHT_BYTES[dtype]
    except KeyError:
        raise BudsimError(
            f"unknown weight dtype {dtype!r}; choose one of {', '.join(WEIGHT_DTYPES)} or auto"
        ) from None


def kv_bytes(dtype: str) -> float:
    try:
        return KV_BYTES[dtype]
    except KeyError:
        raise BudsimError(f"unknown KV dtype {dtype!r}; choose auto or fp8") from None
