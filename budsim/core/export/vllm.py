"""vLLM 0.11.x: `vllm serve MODEL` per replica, with the CPU and Gaudi-plugin environment."""

from __future__ import annotations

import math
from collections.abc import Sequence

from ..errors import BudsimError
from . import inc
from .common import (
    EngineRun,
    ExportOptions,
    Launch,
    Slot,
    base_port,
    check_engine_kind,
    node_address,
    node_count,
    num,
    slots,
    visible_devices_env,
)
from .flags import VLLM as T
from .memory import conversion_note, memory_fraction
from .modelopt import checkpoint
from .plan import ExportPlan
from .quant import dtype_flag_value
from .speculative import (
    DRAFT,
    NGRAM_MAX,
    NGRAM_MIN,
    draft_check,
    draft_env,
    draft_env_note,
    json_word,
    ngram_note,
    settings,
)

DP_RPC_PORT = 13345
GIB = 1024**3


def _check(plan: ExportPlan) -> None:
    dep = plan.deployment
    if dep.ep > 1 and dep.ep != dep.tp * dep.dp:
        raise BudsimError(
            f"vLLM {T.version} has no expert-parallel size: --enable-expert-parallel always spans "
            f"TP x DP = {dep.tp * dep.dp} ranks, so EP={dep.ep} cannot be expressed"
        )
    if dep.kv_dtype == "fp8" and plan.device_kind == "cpu":
        raise BudsimError("vLLM on CPU has no fp8 KV cache (only auto/bfloat16/float16)")


def speculative_config(plan: ExportPlan, context: str) -> tuple[str, list[str]] | None:
    """The --speculative-config JSON of the plan's speculative decoding (vLLM 0.11's
    SpeculativeConfig) and its notes, or None."""
    found = settings(plan, "vLLM")
    if found is None:
        return None
    method, k, _ = found
    config: dict[str, object]
    notes: list[str] = []
    if method.name == "mtp":
        # vLLM 0.11's SpeculativeMethod has the generic "mtp" beside the per-model names
        # (deepseek_mtp, qwen3_next_mtp, glm4_moe_mtp, ...), which later releases rewrite to "mtp"
        # with a deprecation warning; "mtp" loads the MTP layers of whichever model is served.
        config = {"method": "mtp", "num_speculative_tokens": k}
        notes.append("MTP drafts with the checkpoint's own MTP layers (no draft model to load)")
    elif method.name == "draft":
        raise BudsimError(
            "vLLM 0.11 cannot run a separate draft model (its V1 engine raises "
            "NotImplementedError; vLLM PR #24322 added it after 0.13): export sglang or trtllm"
        )
    elif method.name == "eagle3":
        config = {"method": "eagle3", "model": DRAFT, "num_speculative_tokens": k}
        notes.append(draft_env_note(plan, context))
    else:
        config = {
            "method": "ngram",
            "num_speculative_tokens": k,
            "prompt_lookup_max": NGRAM_MAX,
            "prompt_lookup_min": NGRAM_MIN,
        }
        notes.append(ngram_note(f"prompt n-grams of {NGRAM_MIN} to {NGRAM_MAX} tokens"))
    return json_word(config, context), notes


def _cpu_kv_gib(plan: ExportPlan) -> int | None:
    kv_gb = plan.prediction.get("kv_cache_gb_per_device")
    if isinstance(kv_gb, (int, float)) and kv_gb > 0:
        return max(1, math.floor(kv_gb * 1e9 / GIB))
    weights = plan.prediction.get("weights_gb_per_device")
    if plan.device_memory_gb and isinstance(weights, (int, float)):
        util = plan.deployment.gpu_memory_utilization or 0.9
        free = plan.device_memory_gb * util - weights - 4.0
        if free > 1:
            return math.floor(free * 1e9 / GIB)
    return None


def _omp_bind(plan: ExportPlan, devices: tuple[int, ...], context: str) -> str:
    """Cores of each TP rank ("a-b|c-d"); one core per socket is left for the API server."""
    cores = plan.cpu_cores_per_device
    if context == "k8s" or not cores or cores < 2:
        return "auto"
    return "|".join(f"{d * cores}-{d * cores + cores - 2}" for d in devices)


def build(
    plan: ExportPlan,
    options: ExportOptions,
    *,
    context: str = "host",
    layout: Sequence[Slot] | None = None,
) -> EngineRun:
    """`layout`: where the replicas run instead of the plan's own layout (a disaggregated pool's
    place among both pools)."""
    check_engine_kind(plan, "vllm")
    _check(plan)
    dep = plan.deployment
    quant, model_ref, prelude, notes = checkpoint(plan, "vllm", options)
    if quant.mode == "inc":
        prelude = [inc.prelude(plan, quant)]
    elif dep.kv_dtype == "fp8" and plan.device_kind == "hpu":
        raise BudsimError(
            "an fp8 KV cache on Gaudi comes with Intel Neural Compressor fp8 weights "
            f"(--quantization inc); the plan serves {plan.weight_dtype} weights"
        )
    nodes = node_count(plan)
    if nodes > 1:
        if dep.tp * dep.pp > plan.devices_per_node:
            raise BudsimError(
                f"vLLM {T.version} runs TP x PP = {dep.tp * dep.pp} across nodes only on a Ray "
                "cluster, which budsim export does not set up; keep TP x PP within a node"
            )
        if dep.dp % nodes:
            raise BudsimError(f"DP={dep.dp} does not split evenly over {nodes} nodes")
    port0 = base_port(options, T)
    layout = list(layout) if layout is not None else slots(plan, port0)
    all_nodes = max(slot.node for slot in layout) + 1
    host = "0.0.0.0" if context != "host" else options.host
    util = memory_fraction(plan, "vllm")
    converted = conversion_note(plan, "vllm")
    if converted:
        notes.append(converted)

    common: list[str] = [T.flag("--served-model-name"), plan.served_name]
    common += [T.flag("--host"), host]
    common += [T.flag("--tensor-parallel-size"), str(dep.tp)]
    if dep.pp > 1:
        common += [T.flag("--pipeline-parallel-size"), str(dep.pp)]
    if dep.dp > 1:
        common += [T.flag("--data-parallel-size"), str(dep.dp)]
    if dep.ep > 1:
        common.append(T.flag("--enable-expert-parallel"))
    if plan.max_model_len:
        common += [T.flag("--max-model-len"), str(plan.max_model_len)]
    if dep.max_num_seqs:
        common += [T.flag("--max-num-seqs"), str(dep.max_num_seqs)]
    if dep.max_num_batched_tokens:
        common += [T.flag("--max-num-batched-tokens"), str(dep.max_num_batched_tokens)]
    kv_gib = _cpu_kv_gib(plan) if plan.device_kind == "cpu" else None
    if util is not None and kv_gib is None:
        common += [T.flag("--gpu-memory-utilization"), num(util)]
    if dep.kv_dtype == "fp8":
        common += [T.flag("--kv-cache-dtype"), "fp8_inc" if quant.mode == "inc" else "fp8"]
    if quant.mode == "inc":
        common += [T.flag("--quantization"), "inc"]
        notes.append(
            f"Intel Neural Compressor quantises the {plan.checkpoint_dtype} weights"
            + (" and the KV cache" if dep.kv_dtype == "fp8" else "")
            + " to fp8 at load, with the scales the first step measured (QUANT_CONFIG)"
        )
    if quant.mode == "online":
        common += [T.flag("--quantization"), quant.method or "fp8"]
        notes.append(f"vLLM quantises the {plan.checkpoint_dtype} checkpoint to fp8 when it loads")
    if quant.mode == "llmc":
        notes.append(
            f"loads the LLMC {quant.tag} checkpoint from {model_ref} (run llmc.sh first); vLLM "
            "reads its quantization_config"
        )
    dtype = dtype_flag_value(plan)
    if dtype:
        common += [T.flag("--dtype"), dtype]
    if plan.prefix_caching:
        common.append(T.flag("--enable-prefix-caching"))
        notes.append(
            "--enable-prefix-caching is vLLM's default, passed explicitly: the prediction counted "
            "the shared prefix and cached turns as cache hits"
        )
    speculative = speculative_config(plan, context)
    checks: list[tuple[str, str]] = []
    if speculative is not None:
        word, spec_notes = speculative
        common += [T.flag("--speculative-config"), word]
        notes += spec_notes
        if dep.spec_method == "eagle3" and context != "k8s":
            checks.append(draft_check(plan))
    if plan.trust_remote_code:
        common.append(T.flag("--trust-remote-code"))

    env_common: dict[str, str] = {}
    if speculative is not None and dep.spec_method == "eagle3":
        env_common.update({T.env_var(k): v for k, v in draft_env(context).items()})
    if plan.device_kind == "cpu":
        if kv_gib is not None:
            env_common[T.env_var("VLLM_CPU_KVCACHE_SPACE")] = str(kv_gib)
        else:
            notes.append("set VLLM_CPU_KVCACHE_SPACE (GiB of KV cache per rank) for this host")
    if plan.device_kind == "hpu":
        env_common[T.env_var("VLLM_SKIP_WARMUP")] = "false"
        if quant.mode == "inc":
            env_common[T.env_var("QUANT_CONFIG")] = inc.quant_config(plan, quant)
        if dep.max_num_seqs:
            env_common[T.env_var("VLLM_DECODE_BS_BUCKET_MAX")] = str(dep.max_num_seqs)
        if dep.tp > 1:
            env_common[T.env_var("PT_HPU_ENABLE_LAZY_COLLECTIVES")] = "true"
        notes.append("Gaudi: needs the vllm-gaudi plugin; the first start compiles HPU graphs")

    if nodes > 1 and len(options.node_hosts) < all_nodes:
        notes.append("nodeN stands for the address of node N: edit it or pass --node-hosts")
    launches: list[Launch] = []
    for slot in layout:
        env = dict(env_common)
        if context == "host":
            env.update(visible_devices_env(plan, slot.devices))
        if plan.device_kind == "cpu":
            env[T.env_var("VLLM_CPU_OMP_THREADS_BIND")] = _omp_bind(plan, slot.devices, context)
        argv = [*T.program, model_ref, *common, T.flag("--port"), str(slot.port)]
        serves = True
        if nodes > 1:
            local = dep.dp // nodes
            head = node_address(options, slot.node - slot.node_in_replica, all_nodes)
            argv += [T.flag("--data-parallel-size-local"), str(local)]
            argv += [T.flag("--data-parallel-address"), head]
            argv += [T.flag("--data-parallel-rpc-port"), str(DP_RPC_PORT)]
            if slot.node_in_replica:
                argv += [T.flag("--data-parallel-start-rank"), str(slot.node_in_replica * local)]
                argv.append(T.flag("--headless"))
                serves = False
        launches.append(Launch.on(slot, T, argv, env, serves_api=serves))
    return EngineRun(
        "vllm",
        T,
        launches,
        notes=notes,
        model_ref=model_ref,
        nodes=all_nodes,
        prelude=prelude,
        checks=checks,
    )
