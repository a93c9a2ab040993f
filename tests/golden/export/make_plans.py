"""Write the golden plans of speculative decoding and prefix caching from budsim's own predictions.

    .venv/bin/python tests/golden/export/make_plans.py [NAME ...]   # all plans, or the named ones

Each plan is a deployment, the workload it was predicted for (as a stored run keeps it: the export
reads max_model_len and prefix caching from it) and that prediction, in the configuration JSON
shape of budsim.core.export.plan. Regenerate the golden files afterwards
(BUDSIM_REGEN_GOLDEN=1 pytest tests/test_export.py) and review the diff.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from budsim.core.deployment import Deployment, Workload
from budsim.core.hardware import get_device
from budsim.core.predict import predict

PLANS = Path(__file__).parent / "plans"
KEEP = (
    "ttft_ms_mean",
    "ttft_ms_mean_lo",
    "ttft_ms_mean_hi",
    "tpot_ms_mean",
    "tpot_ms_mean_lo",
    "tpot_ms_mean_hi",
    "output_tok_s",
    "output_tok_s_lo",
    "output_tok_s_hi",
    "total_tok_s",
    "requests_per_s",
    "weights_gb_per_device",
    "kv_cache_gb_per_device",
    "fits",
)

LLAMA = {"checkpoint_dtype": "bf16", "model_type": "llama", "is_moe": False}
CASES: dict[str, tuple[Deployment, Workload, dict[str, Any]]] = {
    # EAGLE-3 on vLLM: a draft head the user names (DRAFT_MODEL)
    "spec_eagle3_vllm": (
        Deployment(
            model="meta-llama/Llama-3.1-8B-Instruct",
            hardware="h100-sxm",
            engine="vllm",
            tp=2,
            weight_dtype="bf16",
            max_num_seqs=8,
            max_num_batched_tokens=2048,
            gpu_memory_utilization=0.9,
            spec_method="eagle3",
        ),
        Workload(concurrency=4, input_len=1024, output_len=256),
        {**LLAMA, "served_model_name": "llama-3.1-8b"},
    ),
    # MTP on SGLang: DeepSeek-V3's own MTP layer, TP8 on 8x H200
    "spec_mtp_sglang": (
        Deployment(
            model="deepseek-ai/DeepSeek-V3",
            hardware="h200-sxm",
            engine="sglang",
            tp=8,
            max_num_seqs=64,
            max_num_batched_tokens=8192,
            gpu_memory_utilization=0.88,
            spec_method="mtp",
        ),
        Workload(concurrency=32, input_len=2048, output_len=512),
        {
            "checkpoint_dtype": "fp8",
            "checkpoint_quant": "fp8",
            "model_type": "deepseek_v3",
            "is_moe": True,
            "trust_remote_code": True,
            "served_model_name": "deepseek-v3",
        },
    ),
    # n-gram on TensorRT-LLM, its draft length and acceptance set for the plan
    "spec_ngram_trtllm": (
        Deployment(
            model="meta-llama/Llama-3.1-8B-Instruct",
            hardware="h100-sxm",
            engine="trtllm",
            tp=1,
            replicas=2,
            weight_dtype="bf16",
            max_num_seqs=16,
            max_num_batched_tokens=8192,
            gpu_memory_utilization=0.9,
            spec_method="ngram",
            spec_tokens=5,
            spec_acceptance=0.5,
        ),
        Workload(concurrency=8, input_len=4096, output_len=512),
        {**LLAMA, "served_model_name": "llama-3.1-8b"},
    ),
    # a separate draft model on SGLang: Qwen3-0.6B drafting for Qwen3-32B (one tokenizer), TP2
    "spec_draft_sglang": (
        Deployment(
            model="Qwen/Qwen3-32B",
            hardware="h100-sxm",
            engine="sglang",
            tp=2,
            max_num_seqs=32,
            max_num_batched_tokens=8192,
            gpu_memory_utilization=0.88,
            spec_method="draft",
            spec_draft_model="Qwen/Qwen3-0.6B",
        ),
        Workload(concurrency=4, input_len=2048, output_len=512),
        {
            "checkpoint_dtype": "bf16",
            "model_type": "qwen3",
            "is_moe": False,
            "served_model_name": "qwen3-32b",
        },
    ),
    # prefix caching: a shared system prompt and cached earlier turns
    "prefix_cache": (
        Deployment(
            model="meta-llama/Llama-3.1-70B-Instruct",
            hardware="h100-sxm",
            engine="vllm",
            tp=4,
            replicas=2,
            weight_dtype="bf16",
            max_num_seqs=64,
            max_num_batched_tokens=8192,
            gpu_memory_utilization=0.9,
        ),
        Workload(
            concurrency=32, input_len=6144, output_len=512, shared_prefix_len=2048, cached_share=0.5
        ),
        {**LLAMA, "served_model_name": "llama-3.1-70b"},
    ),
    # the bench target's rate scenario: bursty arrivals, spread lengths, a sized run
    "bench_rate_spread": (
        Deployment(
            model="meta-llama/Llama-3.1-8B-Instruct",
            hardware="h100-sxm",
            engine="vllm",
            tp=1,
            weight_dtype="bf16",
            max_num_seqs=64,
            max_num_batched_tokens=4096,
            gpu_memory_utilization=0.9,
        ),
        Workload(
            scenario="rate",
            rate=4.0,
            burstiness=0.5,
            input_len=2048,
            output_len=256,
            input_len_spread=0.25,
            output_len_spread=0.25,
            num_requests=400,
            seed=7,
        ),
        {**LLAMA, "served_model_name": "llama-3.1-8b"},
    ),
}


def plan_doc(name: str, dep: Deployment, workload: Workload, facts: dict[str, Any]) -> dict:
    prediction = predict(dep, workload).to_dict()
    assert prediction["fits"], name
    spec = {k: v for k, v in dep.to_dict().items() if v is not None}
    work = {k: v for k, v in asdict(workload).items() if k != "extra" and v not in ((), [])}
    return {
        "budsim_version": "0.1.0",
        "run_id": f"golden-{name.replace('_', '-')}",
        "rank": 0,
        **facts,
        "device_kind": "cuda",
        "devices_per_node": 8,
        # pinned, so a later catalog edit does not change the golden files
        "device_memory_gb": get_device(dep.hardware).memory_gb,
        **spec,
        "workload": work,
        "predicted_performance": {k: prediction[k] for k in KEEP if k in prediction},
    }


def main(names: list[str]) -> None:
    for name, (dep, workload, facts) in CASES.items():
        if names and name not in names:
            continue
        doc = plan_doc(name, dep, workload, facts)
        (PLANS / f"{name}.json").write_text(json.dumps(doc, indent=2) + "\n")
        print(name, doc["predicted_performance"]["tpot_ms_mean"])


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
