"""fp8 on Gaudi: Intel Neural Compressor quantises a bf16 checkpoint's weights (and the KV cache)."""

from __future__ import annotations

import pytest

from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.predict import predict_physics

WL = Workload(input_len=1024, output_len=256, concurrency=16)


def _dep(weights: str, kv: str) -> Deployment:
    return Deployment(
        model="meta-llama/Meta-Llama-3.1-8B",
        hardware="gaudi2",
        engine="vllm",
        weight_dtype=weights,
        kv_dtype=kv,
    )


def test_fp8_weights_and_kv_from_a_bf16_checkpoint_are_planned() -> None:
    bf16 = predict_physics(_dep("bf16", "auto"), WL)
    fp8 = predict_physics(_dep("fp8", "fp8"), WL)
    assert fp8.fits and bf16.fits
    # half the weight bytes and half the KV bytes per token
    assert fp8.weights_gb_per_device < 0.6 * bf16.weights_gb_per_device
    assert fp8.max_concurrency > 1.8 * bf16.max_concurrency
    assert fp8.tpot_ms_mean < bf16.tpot_ms_mean


def test_an_fp8_kv_cache_needs_the_inc_fp8_weights() -> None:
    with pytest.raises(BudsimError, match="only together with the weights"):
        predict_physics(_dep("bf16", "fp8"), WL)
