"""llama.cpp `llama-server`: one server per replica, for plans of the llamacpp engine (CUDA, ROCm or
CPU; several GPUs split the layers, budsim's pp) and as the CPU alternative to a vLLM CPU plan (one
server per socket, pinned). The launch carries llama.cpp's own physics-only prediction."""

from __future__ import annotations

from ..errors import BudsimError
from ..speculative import NO_SPECULATION
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
    "q4_k_m": "Q4_K_M",
    "q5_k_m": "Q5_K_M",
    "q8_0": "Q8_0",
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
    # a GPU plan's pp is llama.cpp's layer split (--split-mode layer); CPUs run one server a socket
    layer_split = plan.device_kind != "cpu"
    missing = [
        f"{what} ({name}{value})"
        for what, name, value in (
            ("tensor parallelism", "TP", dep.tp),
            ("pipeline parallelism", "PP", 1 if layer_split else dep.pp),
            ("data parallelism inside one server", "DP", dep.dp),
            ("expert parallelism", "EP", dep.ep),
        )
        if value > 1
    ]
    if missing:
        hint = "split layers (pp) instead" if layer_split else "on CPU use one replica per socket"
        raise BudsimError(f"llama-server has no {', no '.join(missing)}; {hint}")


def own_prediction(plan: ExportPlan) -> str | None:
    """llama.cpp's own physics-only prediction of the launch, as one line (None without the
    plan's workload, or where llama.cpp cannot serve the equivalent deployment)."""
    if plan.workload is None:
        return None
    from ..predict import predict

    dep = plan.deployment
    dtype = dep.weight_dtype
    if plan.engine != "llamacpp":  # a translated plan: the GGUF type its file will have
        dtype = {"F16": "fp16", "F32": "bf16"}.get(gguf_type(plan), gguf_type(plan).lower())
    ours = dep.with_(engine="llamacpp", weight_dtype=dtype, **NO_SPECULATION)
    try:
        pred = predict(ours, plan.workload, calibrated=False)
    except BudsimError:
        return None
    if not pred.fits or pred.ttft_ms_mean is None:
        return None
    parts = [f"TTFT {pred.ttft_ms_mean:.0f} ms"]
    if pred.tpot_ms_mean is not None:
        parts.append(f"TPOT {pred.tpot_ms_mean:.1f} ms")
    if pred.output_tok_s is not None:
        parts.append(f"{pred.output_tok_s:.0f} output tok/s")
    return f"llama.cpp's own prediction (physics only, {dtype}): " + ", ".join(parts)


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
    own = own_prediction(plan)
    if own:
        notes.append(own)
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
    on_cpu = plan.device_kind == "cpu"
    cores = plan.cpu_cores_per_device
    if cores and on_cpu:
        args += [T.flag("--threads"), str(cores), T.flag("--threads-batch"), str(cores)]
    elif on_cpu:
        notes.append("set --threads to the physical cores of one socket")
    if dep.max_num_batched_tokens:
        args += [T.flag("--batch-size"), str(dep.max_num_batched_tokens)]
    # every layer on the GPU(s), as modelled; several GPUs hold contiguous shares of the layers
    args += [T.flag("--n-gpu-layers"), "0" if on_cpu else "all"]
    if not on_cpu and dep.pp > 1:
        args += [T.flag("--split-mode"), "layer"]
    if dep.kv_dtype == "fp8":
        args += [T.flag("--cache-type-k"), "q8_0", T.flag("--cache-type-v"), "q8_0"]
        args += [T.flag("--flash-attn"), "on"]
    args.append(T.flag("--metrics"))

    launches: list[Launch] = []
    for slot in layout:
        wrapper: list[str] = []
        if context == "host" and plan.devices_per_node > 1 and on_cpu:
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
