"""Small synthetic measured datasets for the calibration tests (fast, no shared data needed)."""

from __future__ import annotations

import math
from typing import Any

from budsim.core.deployment import Deployment, Workload
from budsim.core.predict import predict_physics

MODELS = (
    "meta-llama/Meta-Llama-3.1-8B",
    "Qwen/Qwen3-8B",
    "mistralai/Mistral-7B-v0.1",
    "Qwen/Qwen3-14B",
)


def synthetic_rows(bias: float = 1.3) -> list[dict[str, Any]]:
    """Normalised measured rows (datasets.py schema) whose TTFT/TPOT are a known distortion of the
    physics: measured = physics x bias x (a mild load trend), deterministic."""
    rows: list[dict[str, Any]] = []
    n = 0
    for m_i, model in enumerate(MODELS):
        for conc in (1, 2, 4, 16, 64):
            for isl in (128, 256, 1024, 2048):
                for osl in (128, 256):
                    dep = Deployment(model=model, hardware="h100-sxm", engine="vllm")
                    wl = Workload(input_len=isl, output_len=osl, concurrency=conc)
                    pred = predict_physics(dep, wl)
                    assert pred.fits and pred.ttft_ms_mean and pred.tpot_ms_mean
                    trend = 1.0 + 0.05 * math.log2(conc)
                    wiggle = 1.0 + 0.02 * math.sin(n)
                    n += 1
                    rows.append(
                        {
                            "source": "synthetic_a" if m_i % 2 else "synthetic_b",
                            "row_id": f"S{n}",
                            "model": model,
                            "hardware": "h100-sxm",
                            "engine": "vllm",
                            "engine_version": "0.10.0",
                            "mode": "agg",
                            "tp": 1,
                            "pp": 1,
                            "dp": 1,
                            "ep": 1,
                            "weight_dtype": "bf16",
                            "kv_dtype": "auto",
                            "scenario": "concurrency",
                            "load": conc,
                            "input_len": isl,
                            "output_len": osl,
                            "ttft_ms": pred.ttft_ms_mean * bias * trend * wiggle,
                            "tpot_ms": pred.tpot_ms_mean * bias * wiggle,
                        }
                    )
    return rows
