"""llama.cpp `llama-server` for CPU plans: one server per replica, pinned to its socket(s)."""

from __future__ import annotations

from ..errors import BudsimError
from .common import (
    EngineRun,
    ExportOptions,
    Launch,
    base_port,
    check_engine_kind,
    slots,
    total_nodes,
)
from .flags import LLAMACPP as T
from .plan import ExportPlan, slug
from .speculative import settings

# The GGUF type that carries the plan's weight dtype (llama.cpp has no fp8 weights: Q8_0 is closest).
GGUF_TYPES = {
    "bf16": "BF16",
    "fp16": "F16",
    "fp32": "F32",
    "int8": "Q8_0",
    "fp8": "Q8_0",
    "int4": "Q4_K_M",
    "mxfp4": "MXFP4",
}
KV_TYPES = {"auto": "f16", "fp8": "q8_0"}


def gguf_type(plan: ExportPlan) -> str:
    dtype = plan.weight_dtype
    if dtype == "auto":
        dtype = "bf16"
    if dtype not in GGUF_TYPES:
        raise BudsimError(f"llama.cpp has no GGUF type for {dtype} weights")
    return GGUF_TYPES[dtype]


def gguf_path(plan: ExportPlan, options: ExportOptions) -> str:
    return f"{options.models_dir.rstrip('/')}/{slug(plan.model)}-{gguf_type(plan)}.gguf"


def _check(plan: ExportPlan) -> None:
    dep = plan.deployment
    missing = [
        f"{what} ({name}{value})"
        for what, name, value in (
            ("tensor parallelism", "TP", dep.tp),
            ("pipeline parallelism", "PP", dep.pp),
            ("data parallelism inside one server", "DP", dep.dp),
            ("expert parallelism", "EP", dep.ep),
        )
        if value > 1
    ]
    if missing:
        raise BudsimError(
            f"llama-server has no {', no '.join(missing)}; on CPU use one replica per socket"
        )


def context_size(plan: ExportPlan) -> int | None:
    """Total context of all slots: every slot can hold max_model_len, capped by the predicted KV pool."""
    dep = plan.deployment
    if not plan.max_model_len:
        return None
    slots_n = dep.max_num_seqs or 1
    total = slots_n * plan.max_model_len
    kv_gb = plan.prediction.get("kv_cache_gb_per_device")
    if plan.kv_bytes_per_token and isinstance(kv_gb, (int, float)) and kv_gb > 0:
        capacity = int(kv_gb * 1e9 / plan.kv_bytes_per_token)
        total = max(plan.max_model_len, min(total, capacity))
    return total


def build(plan: ExportPlan, options: ExportOptions, *, context: str = "host") -> EngineRun:
    check_engine_kind(plan, "llamacpp")
    settings(plan, "llama.cpp")  # refuses speculative decoding, never predicted on CPUs
    _check(plan)
    dep = plan.deployment
    quant = gguf_type(plan)
    model_path = gguf_path(plan, options)
    port0 = base_port(options, T)
    layout = slots(plan, port0)
    host = "0.0.0.0" if context != "host" else options.host
    source = plan.checkpoint_dtype or "16-bit"
    notes = [
        f"GGUF: serve {model_path} ({quant}); make it with "
        f"`python convert_hf_to_gguf.py <hf checkpoint dir> --outtype bf16 --outfile base.gguf` and "
        + (
            f"`llama-quantize base.gguf {model_path} {quant}`"
            if quant not in ("BF16", "F16", "F32")
            else f"use base.gguf as {model_path}"
        ),
    ]
    if plan.weight_dtype == "fp8":
        notes.append("llama.cpp has no fp8 weights; Q8_0 is the closest GGUF type")
    if source not in ("bf16", "fp16", "fp32", "auto"):
        notes.append(f"convert from the unquantised model, not the {source} checkpoint")
    if dep.kv_dtype == "fp8":
        notes.append(
            "llama.cpp has no fp8 KV cache; q8_0 K/V (with flash attention) is the closest"
        )

    args: list[str] = [T.flag("--model"), model_path, T.flag("--alias"), plan.served_name]
    args += [T.flag("--host"), host]
    ctx = context_size(plan)
    if ctx:
        args += [T.flag("--ctx-size"), str(ctx)]
    if dep.max_num_seqs:
        args += [T.flag("--parallel"), str(dep.max_num_seqs)]
    args.append(T.flag("--cont-batching"))
    cores = plan.cpu_cores_per_device
    if cores:
        args += [T.flag("--threads"), str(cores), T.flag("--threads-batch"), str(cores)]
    else:
        notes.append("set --threads to the physical cores of one socket")
    if dep.max_num_batched_tokens:
        args += [T.flag("--batch-size"), str(dep.max_num_batched_tokens)]
    args += [T.flag("--n-gpu-layers"), "0"]
    if dep.kv_dtype == "fp8":
        args += [T.flag("--cache-type-k"), "q8_0", T.flag("--cache-type-v"), "q8_0"]
        args += [T.flag("--flash-attn"), "on"]
    args.append(T.flag("--metrics"))

    launches: list[Launch] = []
    for slot in layout:
        wrapper: list[str] = []
        if context == "host" and plan.devices_per_node > 1:
            socket = str(slot.devices[0])
            wrapper = ["numactl", f"--cpunodebind={socket}", f"--membind={socket}"]
        launches.append(
            Launch(
                replica=slot.replica,
                node=slot.node,
                node_in_replica=0,
                devices=slot.devices,
                port=slot.port,
                serves_api=True,
                argv=[*T.program, *args, T.flag("--port"), str(slot.port)],
                program_len=len(T.program),
                wrapper=wrapper,
            )
        )
    return EngineRun(
        "llamacpp", T, launches, notes=notes, model_ref=model_path, nodes=total_nodes(plan, port0)
    )
