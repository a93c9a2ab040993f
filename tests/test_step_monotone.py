"""A step never gets cheaper with more work: more prompt tokens beside the same decodes, or more
decoding sequences, cost at least as much (strictly, no tolerance: the operator tables grow with
their token counts, and the step's curves interpolate their totals in log-log)."""

from __future__ import annotations

import pytest

from budsim.core.deployment import Deployment
from budsim.core.predict import step_model

CASES = [
    ("meta-llama/Meta-Llama-3.1-8B", "h100-sxm", "vllm", 1),  # kernel tables
    ("meta-llama/Meta-Llama-3.1-70B", "h200-sxm", "trtllm", 2),
    ("mistralai/Mixtral-8x7B-v0.1", "b200", "sglang", 2),  # MoE
    ("Qwen/Qwen3-30B-A3B", "h100-sxm", "vllm", 1),
    ("meta-llama/Meta-Llama-3.1-8B", "mi300x", "vllm", 1),  # roofline
    ("meta-llama/Meta-Llama-3.1-8B", "gaudi2", "vllm", 1),
]


@pytest.mark.parametrize(("model", "hardware", "engine", "tp"), CASES)
def test_more_tokens_never_make_a_step_cheaper(
    model: str, hardware: str, engine: str, tp: int
) -> None:
    step = step_model(Deployment(model=model, hardware=hardware, engine=engine, tp=tp))
    # prompt tokens beside 16 decodes: crosses every GEMM's memory/compute boundary (Llama-8B's
    # is near 300 tokens on H100, where the step had dropped from 12.4 to 4.9 ms)
    times = [step(16, 16_000.0, t, t * (t + 1) / 2, 1).total for t in range(1, 20_000, 7)]
    assert all(b >= a for a, b in zip(times, times[1:], strict=False))
    decodes = [step(n, n * 1000.0, 0, 0.0, 0).total for n in range(1, 4096, 3)]
    assert all(b >= a for a, b in zip(decodes, decodes[1:], strict=False))
