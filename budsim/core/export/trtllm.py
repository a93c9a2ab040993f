"""TensorRT-LLM 1.2: `trtllm-serve MODEL` per replica, plus the LLM-API options YAML where needed."""

from __future__ import annotations

from typing import Any

from ..errors import BudsimError
from .common import (
    Artifact,
    EngineRun,
    ExportOptions,
    Launch,
    Raw,
    base_port,
    check_engine_kind,
    dump_yaml,
    node_count,
    num,
    slots,
    total_nodes,
    visible_devices_env,
)
from .flags import TRTLLM as T
from .memory import conversion_note, memory_fraction
from .modelopt import prelude as modelopt_prelude
from .plan import ExportPlan, comment_block, header_lines
from .quant import quant_step

EXTRA_FILE = "trtllm-llm-api.yaml"
CONTAINER_CONFIG_DIR = "/etc/budsim"


def extra_options(plan: ExportPlan) -> dict[str, Any]:
    """LLM-API settings that trtllm-serve has no CLI option for."""
    dep = plan.deployment
    extra: dict[str, Any] = {}
    if dep.dp > 1:
        extra["enable_attention_dp"] = True
    if dep.kv_dtype == "fp8":
        extra.setdefault("kv_cache_config", {})["dtype"] = "fp8"
    tokens = dep.max_num_batched_tokens
    if tokens and (plan.max_model_len is None or tokens < plan.max_model_len):
        extra["enable_chunked_prefill"] = True
    if dep.max_num_seqs:
        extra["cuda_graph_config"] = {"enable_padding": True, "max_batch_size": dep.max_num_seqs}
    return extra


def extra_file(plan: ExportPlan) -> Artifact:
    body = dump_yaml(extra_options(plan))
    head = comment_block(
        header_lines(
            plan,
            f"{T.engine} {T.version}: LLM-API options for trtllm-serve --extra_llm_api_options",
        )
    )
    return Artifact(EXTRA_FILE, head + body, "yaml", "trtllm")


def build(plan: ExportPlan, options: ExportOptions, *, context: str = "host") -> EngineRun:
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
    quant = quant_step(plan, "trtllm", options)
    model_ref = quant.model_path or plan.model
    prelude = [modelopt_prelude(plan, quant)] if quant.mode == "modelopt" else []
    notes: list[str] = []
    if quant.mode == "modelopt":
        notes.append(
            f"loads the ModelOpt {quant.method} checkpoint {model_ref} made by the first step"
        )
    port0 = base_port(options, T)
    layout = slots(plan, port0)
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
    if extra_options(plan):
        files.append(extra_file(plan))
        path = (
            Raw(f'"$(dirname "$0")"/{EXTRA_FILE}')
            if context == "host"
            else f"{CONTAINER_CONFIG_DIR}/{EXTRA_FILE}"
        )
        args += [T.flag("--extra_llm_api_options"), path]
    if plan.trust_remote_code:
        args.append(T.flag("--trust_remote_code"))

    launches = [
        Launch(
            replica=slot.replica,
            node=slot.node,
            node_in_replica=0,
            devices=slot.devices,
            port=slot.port,
            serves_api=True,
            argv=[*T.program, *args, T.flag("--port"), str(slot.port)],
            env=visible_devices_env(plan, slot.devices) if context == "host" else {},
            program_len=len(T.program),
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
        nodes=total_nodes(plan, port0),
        prelude=prelude,
    )
