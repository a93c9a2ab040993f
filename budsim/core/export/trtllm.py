"""TensorRT-LLM 1.2: `trtllm-serve MODEL` per replica, plus the LLM-API options YAML where needed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..errors import BudsimError
from .common import (
    Artifact,
    EngineRun,
    ExportOptions,
    Launch,
    Raw,
    Slot,
    base_port,
    check_engine_kind,
    dump_yaml,
    node_count,
    num,
    slots,
    visible_devices_env,
)
from .flags import TRTLLM as T
from .memory import conversion_note, memory_fraction
from .modelopt import checkpoint
from .plan import ExportPlan, comment_block, header_lines
from .speculative import (
    NGRAM_MAX,
    PLACEHOLDER,
    PLACEHOLDER_MARK,
    draft_model_note,
    draft_note,
    ngram_note,
    placeholder_check,
    settings,
)

EXTRA_FILE = "trtllm-llm-api.yaml"
CONTAINER_CONFIG_DIR = "/etc/budsim"
# the KV cache transfer of a disaggregated pool: DEFAULT lets TensorRT-LLM pick (UCX in 1.x); the
# 1.x CacheTransceiverConfig spells its backends in capitals
TRANSCEIVER = {"backend": "DEFAULT"}


def extra_name(role: str | None) -> str:
    """The options file of an aggregated plan, or of one disaggregated pool."""
    return EXTRA_FILE if role is None else f"trtllm-{role}-llm-api.yaml"


def speculative_config(plan: ExportPlan) -> dict[str, Any] | None:
    """The LLM-API speculative_config of the plan (TensorRT-LLM 1.2's decoding configs), or None.

    EAGLE-3 is `decoding_type: Eagle`: on the PyTorch backend of 1.0-1.2 that is the EAGLE-3
    config (EagleDecodingConfig, the draft in `speculative_model_dir`); `Eagle3` arrived with
    TensorRT-LLM PR #10124 (December 2025), which keeps `Eagle` as its alias, and whether 1.2.0
    has it was not checked, so the export keeps the spelling every 1.x release reads."""
    found = settings(plan, "TensorRT-LLM")
    if found is None:
        return None
    method, k, _ = found
    if method.name == "mtp":
        # one MTP layer in the checkpoint is run k times (MTP-Eagle), as NVIDIA's DeepSeek-R1
        # configurations do with num_nextn_predict_layers: 3
        return {"decoding_type": "MTP", "num_nextn_predict_layers": k}
    if method.name == "eagle3":
        return {"decoding_type": "Eagle", "max_draft_len": k, "speculative_model_dir": PLACEHOLDER}
    if method.name == "draft":
        # two-model draft/target (DraftTargetDecodingConfig, PyTorch backend in 1.0-1.2): the draft
        # loads with the target's mapping, the TP the prediction priced
        return {
            "decoding_type": "Draft_Target",
            "max_draft_len": k,
            "speculative_model_dir": plan.deployment.spec_draft_model,
        }
    return {"decoding_type": "NGram", "max_draft_len": k, "max_matching_ngram_size": NGRAM_MAX}


def extra_options(plan: ExportPlan, role: str | None = None) -> dict[str, Any]:
    """LLM-API settings that trtllm-serve has no CLI option for (role: a disaggregated pool's)."""
    dep = plan.deployment
    extra: dict[str, Any] = {}
    if role == "prefill":
        # a context-only server runs without the overlap scheduler (NVIDIA's disaggregated examples)
        extra["disable_overlap_scheduler"] = True
    if role is not None:
        extra["cache_transceiver_config"] = dict(TRANSCEIVER)
    if dep.dp > 1:
        extra["enable_attention_dp"] = True
    if dep.kv_dtype == "fp8":
        extra.setdefault("kv_cache_config", {})["dtype"] = "fp8"
    if plan.prefix_caching:
        # the default, explicit: the prediction counted the cached prompt tokens as hits
        extra.setdefault("kv_cache_config", {})["enable_block_reuse"] = True
    tokens = dep.max_num_batched_tokens
    if tokens and (plan.max_model_len is None or tokens < plan.max_model_len):
        extra["enable_chunked_prefill"] = True
    if dep.max_num_seqs:
        extra["cuda_graph_config"] = {"enable_padding": True, "max_batch_size": dep.max_num_seqs}
    speculative = speculative_config(plan)
    if speculative is not None:
        extra["speculative_config"] = speculative
    return extra


def extra_file(plan: ExportPlan, role: str | None = None) -> Artifact:
    body = dump_yaml(extra_options(plan, role))
    notes = []
    if plan.deployment.spec_method == "eagle3":
        notes.append(
            f"speculative_config.speculative_model_dir: replace {PLACEHOLDER_MARK} ...> with the "
            f"Hugging Face id or directory of an EAGLE-3 draft head trained for {plan.model}"
        )
    pool = f" of the {role} pool" if role else ""
    head = comment_block(
        header_lines(
            plan,
            f"{T.engine} {T.version}: LLM-API options{pool} for trtllm-serve "
            "--extra_llm_api_options",
            notes,
        )
    )
    return Artifact(extra_name(role), head + body, "yaml", "trtllm")


def build(
    plan: ExportPlan,
    options: ExportOptions,
    *,
    context: str = "host",
    layout: Sequence[Slot] | None = None,
    role: str | None = None,
) -> EngineRun:
    """`layout`: where the workers run instead of the plan's own replica layout (a disaggregated
    pool's place among both pools); `role`: prefill | decode, the pool's KV-transfer options."""
    check_engine_kind(plan, "trtllm")
    dep = plan.deployment
    if node_count(plan) > 1:
        raise BudsimError(
            "a multi-node trtllm-serve needs an MPI launcher (mpirun/srun with "
            "trtllm-llmapi-launch), which budsim export does not generate; keep a replica on one node"
        )
    if dep.dp > 1 and (dep.tp != 1 or not plan.moe):
        raise BudsimError(
            f"TensorRT-LLM attention DP (enable_attention_dp) spans the whole TP group of a MoE "
            f"model, so attention TP{dep.tp} x DP{dep.dp}"
            + ("" if plan.moe else " on a dense model")
            + " cannot be expressed"
        )
    quant, model_ref, prelude, notes = checkpoint(plan, "trtllm", options)
    port0 = base_port(options, T)
    layout = list(layout) if layout is not None else slots(plan, port0)
    host = "0.0.0.0" if context != "host" else options.host
    if plan.served_name != model_ref:
        notes.append(
            f"trtllm-serve has no served-model-name option: the API model name is {model_ref}"
        )

    args: list[str] = [model_ref, T.flag("--backend"), "pytorch", T.flag("--host"), host]
    args += [T.flag("--tp_size"), str(dep.tp * dep.dp)]
    if dep.pp > 1:
        args += [T.flag("--pp_size"), str(dep.pp)]
    if dep.ep > 1:
        args += [T.flag("--ep_size"), str(dep.ep)]
    if dep.max_num_seqs:
        args += [T.flag("--max_batch_size"), str(dep.max_num_seqs)]
    if dep.max_num_batched_tokens:
        args += [T.flag("--max_num_tokens"), str(dep.max_num_batched_tokens)]
    if plan.max_model_len:
        args += [T.flag("--max_seq_len"), str(plan.max_model_len)]
    util = memory_fraction(plan, "trtllm")
    if util is not None:
        args += [T.flag("--kv_cache_free_gpu_memory_fraction"), num(util)]
        converted = conversion_note(plan, "trtllm")
        if converted:
            notes.append(converted)
    files: list[Artifact] = []
    checks: list[tuple[str, str]] = []
    name = extra_name(role)
    if extra_options(plan, role):
        files.append(extra_file(plan, role))
        path = (
            Raw(f'"$(dirname "$0")"/{name}')
            if context == "host"
            else f"{CONTAINER_CONFIG_DIR}/{name}"
        )
        args += [T.flag("--extra_llm_api_options"), path]
    if dep.spec_method == "mtp":
        notes.append("MTP drafts with the checkpoint's own MTP layers (no draft model to load)")
        if plan.model_type not in ("deepseek_v3", "deepseek_v32"):
            notes.append(
                "TensorRT-LLM documents MTP for DeepSeek-V3/R1; check that it runs this model's "
                "MTP layers"
            )
    if dep.spec_method == "draft":
        notes.append(draft_model_note(plan))
    if dep.spec_method == "ngram":
        notes.append(ngram_note(f"matches of up to {NGRAM_MAX} tokens (max_matching_ngram_size)"))
    if dep.spec_method == "eagle3":
        if context == "k8s":
            where = f"replace {PLACEHOLDER!r} in the ConfigMap's {name}"
        else:
            where = (
                f"replace {PLACEHOLDER_MARK} ...> in {name} with its Hugging Face id or "
                "directory (the script stops until then)"
            )
            if context == "docker":
                where += "; mount a local directory into the container"
            checks.append(placeholder_check(f'"$(dirname "$0")"/{name}', name))
        notes.append(draft_note(plan, where))
    if plan.prefix_caching:
        notes.append(
            "kv_cache_config.enable_block_reuse: true is the default, set explicitly: the "
            "prediction counted the shared prefix and cached turns as cache hits"
        )
    if plan.trust_remote_code:
        args.append(T.flag("--trust_remote_code"))

    # build() refuses replicas that span nodes, so every slot is node 0 of its replica
    launches = [
        Launch.on(
            slot,
            T,
            [*T.program, *args, T.flag("--port"), str(slot.port)],
            visible_devices_env(plan, slot.devices) if context == "host" else {},
            serves_api=True,
        )
        for slot in layout
    ]
    return EngineRun(
        "trtllm",
        T,
        launches,
        files=files,
        notes=notes,
        model_ref=model_ref,
        nodes=max(slot.node for slot in layout) + 1,
        prelude=prelude,
        checks=checks,
    )
