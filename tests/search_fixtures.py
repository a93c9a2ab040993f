"""A synthetic evaluator and small spaces for the search and store tests (no predictor needed)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from budsim.core.deployment import Deployment
from budsim.core.search.space import EngineChoice, SearchSpace

WEIGHT_SCALE = {"auto": 1.0, "fp8": 0.5, "int4": 0.27}
ENGINE_SPEED = {"vllm": 1.0, "sglang": 1.08, "trtllm": 1.12}


class SyntheticEvaluator:
    """A deterministic stand-in for predict_many with the shape of real trade-offs.

    Weights of `model_gb` spread over tp*pp must fit in `device_gb * util`; throughput per device grows
    with batch and shrinks with parallel overheads; per-user speed falls as the batch grows.
    """

    def __init__(self, model_gb: float = 140.0, device_gb: float = 80.0) -> None:
        self.model_gb = model_gb
        self.device_gb = device_gb
        self.calls = 0
        self.seen: list[Deployment] = []
        self.on_call: Any = None

    def predict(self, d: Deployment) -> dict[str, Any] | None:
        if d.engine == "broken":
            return None
        weights = self.model_gb * WEIGHT_SCALE[d.weight_dtype] / (d.tp * d.pp)
        devices = d.devices
        util = d.gpu_memory_utilization or 0.9
        free = self.device_gb * util - weights
        if free <= 1.0:
            return {"fits": False, "weights_gb_per_device": weights, "devices": devices}
        seqs = d.max_num_seqs or 256
        kv_limit = free * (2.0 if d.kv_dtype == "fp8" else 1.0) * 4  # sequences that fit
        batch = max(1.0, min(float(seqs), kv_limit, 64.0 / d.replicas))
        speed = ENGINE_SPEED[d.engine] * (1.0 / WEIGHT_SCALE[d.weight_dtype]) ** 0.35
        comm = 1.0 - 0.06 * math.log2(d.tp) - 0.1 * math.log2(d.pp)
        tokens = d.max_num_batched_tokens or 2048
        chunk = 1.0 - 0.03 * abs(math.log2(tokens / 4096))
        per_replica = 40.0 * speed * comm * chunk * batch**0.8 * d.tp**0.9
        total = per_replica * d.replicas
        per_user = per_replica / batch
        tpot = 1000.0 / per_user
        ttft = 80.0 * (1 + batch / 32) / (d.tp**0.7) / chunk
        return {
            "fits": True,
            "devices": devices,
            "output_tok_s": total,
            "output_tok_s_per_device": total / devices,
            "tok_s_per_user": per_user,
            "requests_per_s": total / 256.0,
            "ttft_ms_mean": ttft,
            "ttft_ms_p50": ttft,
            "ttft_ms_p90": ttft * 1.4,
            "ttft_ms_p99": ttft * 2.0,
            "tpot_ms_mean": tpot,
            "tpot_ms_p50": tpot,
            "tpot_ms_p99": tpot * 1.3,
            "e2e_s_mean": (ttft + 256 * tpot) / 1000,
            "weights_gb_per_device": weights,
            "kv_cache_gb_per_device": free,
        }

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]:
        self.calls += 1
        self.seen.extend(deployments)
        if self.on_call is not None:
            self.on_call(self.calls)
        return [self.predict(d) for d in deployments]


def engines(*ids: str) -> tuple[EngineChoice, ...]:
    par = frozenset({"tp", "pp", "dp", "ep"})
    return tuple(EngineChoice(i, ("auto", "fp8", "int4"), ("auto", "fp8"), par) for i in ids)


def small_space(**overrides: Any) -> SearchSpace:
    """8 devices on one node, three engines: a few thousand valid genomes."""
    kwargs: dict[str, Any] = dict(
        model="synthetic-70b",
        hardware="h100-sxm",
        devices=8,
        devices_per_node=8,
        nodes=1,
        engines=engines("vllm", "sglang", "trtllm"),
        tp=(1, 2, 4, 8),
        pp=(1, 2),
        weight_dtypes=("auto", "fp8", "int4"),
        kv_dtypes=("auto", "fp8"),
        max_num_seqs=(8, 16, 32, 64, 128),
        max_num_batched_tokens=(2048, 4096, 8192),
        gpu_memory_utilization=(0.85, 0.9, 0.95),
        max_in_flight=64,
        input_len=1024,
    )
    kwargs.update(overrides)
    return SearchSpace(**kwargs)
