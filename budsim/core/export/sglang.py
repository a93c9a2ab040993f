"""SGLang 0.5.23: `python -m sglang.launch_server --model-path MODEL` per replica."""

from __future__ import annotations

from collections.abc import Sequence

from ..errors import BudsimError
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
from .flags import SGLANG as T
from .memory import conversion_note, memory_fraction
from .modelopt import checkpoint
from .plan import ExportPlan
from .quant import dtype_flag_value
from .speculative import (
    draft_check,
    draft_env,
    draft_env_note,
    draft_model_note,
    draft_word,
    ngram_note,
    settings,
)

DIST_INIT_PORT = 5000


def speculative_args(plan: ExportPlan, context: str) -> tuple[list[str], list[str]]:
    """SGLang 0.5.23's speculative decoding options for the plan, and their notes."""
    found = settings(plan, "SGLang")
    if found is None:
        return [], []
    method, k, _ = found
    dep = plan.deployment
    args: list[str] = []
    notes: list[str] = []
    if method.name == "ngram":
        if plan.device_kind != "cuda":
            raise BudsimError("SGLang's n-gram speculative decoding runs on CUDA devices only")
        if plan.moe and dep.dp > 1:
            raise BudsimError(
                "SGLang's n-gram speculative decoding does not run with attention data "
                f"parallelism, so TP{dep.tp} x DP{dep.dp} with NGRAM cannot be expressed"
            )
        # NGRAM ignores --speculative-eagle-topk (it takes the BFS breadth) and derives its steps
        # from the draft tokens; breadth 1 drafts one chain of k tokens, the chain predicted
        args += [T.flag("--speculative-algorithm"), "NGRAM"]
        args += [T.flag("--speculative-num-draft-tokens"), str(k + 1)]
        args += [T.flag("--speculative-ngram-max-bfs-breadth"), "1"]
        notes.append(
            ngram_note(
                "SGLang's n-gram trie, drafting one chain of k tokens (BFS breadth 1, where its "
                "default drafts a tree), the chain the prediction priced"
            )
        )
        return args, notes
    if method.name == "mtp":
        # NEXTN: the checkpoint's own MTP (NextN) layers, run by SGLang's EAGLE worker (SGLang
        # rewrites NEXTN to EAGLE). No draft path: SGLang reads the MTP layers from the served
        # checkpoint, as the SGLang and Qwen model cards' MTP commands rely on
        args += [T.flag("--speculative-algorithm"), "NEXTN"]
        notes.append("MTP drafts with the checkpoint's own MTP layers (no draft model to load)")
    elif method.name == "draft":
        # STANDALONE: a small LLM of the target's tokenizer, run by SGLang's draft worker in the
        # target's TP group (the layout the prediction priced)
        args += [T.flag("--speculative-algorithm"), "STANDALONE"]
        args += [T.flag("--speculative-draft-model-path"), dep.spec_draft_model]
        notes.append(draft_model_note(plan))
    else:
        args += [T.flag("--speculative-algorithm"), "EAGLE3"]
        args += [T.flag("--speculative-draft-model-path"), draft_word(context)]
        notes.append(draft_env_note(plan, context))
    # one chain of k drafted tokens (top-k 1), verified with the token it extends: k + 1
    args += [T.flag("--speculative-num-steps"), str(k)]
    args += [T.flag("--speculative-eagle-topk"), "1"]
    args += [T.flag("--speculative-num-draft-tokens"), str(k + 1)]
    return args, notes


def build(
    plan: ExportPlan,
    options: ExportOptions,
    *,
    context: str = "host",
    layout: Sequence[Slot] | None = None,
) -> EngineRun:
    """`layout`: where the replicas run instead of the plan's own layout (a disaggregated pool's
    place among both pools)."""
    check_engine_kind(plan, "sglang")
    dep = plan.deployment
    quant, model_ref, prelude, notes = checkpoint(plan, "sglang", options)
    nodes = node_count(plan)
    port0 = base_port(options, T)
    layout = list(layout) if layout is not None else slots(plan, port0)
    all_nodes = max(slot.node for slot in layout) + 1
    host = "0.0.0.0" if context != "host" else options.host

    args: list[str] = [T.flag("--model-path"), model_ref]
    args += [T.flag("--served-model-name"), plan.served_name]
    args += [T.flag("--host"), host]
    if plan.moe and dep.dp > 1:
        # budsim's attention DP inside one engine: SGLang's TP group spans tp x dp devices.
        args += [T.flag("--tp-size"), str(dep.tp * dep.dp)]
        args += [T.flag("--attn-dp-size"), str(dep.dp)]
    else:
        args += [T.flag("--tp-size"), str(dep.tp)]
        if dep.dp > 1:
            args += [T.flag("--dp-size"), str(dep.dp)]
    if dep.pp > 1:
        args += [T.flag("--pp-size"), str(dep.pp)]
    if dep.ep > 1:
        args += [T.flag("--ep-size"), str(dep.ep)]
    if plan.max_model_len:
        args += [T.flag("--context-length"), str(plan.max_model_len)]
    if dep.max_num_seqs:
        args += [T.flag("--max-running-requests"), str(dep.max_num_seqs)]
    if dep.max_num_batched_tokens:
        args += [T.flag("--chunked-prefill-size"), str(dep.max_num_batched_tokens)]
    util = memory_fraction(plan, "sglang")
    if util is not None:
        args += [T.flag("--mem-fraction-static"), num(util)]
        converted = conversion_note(plan, "sglang")
        if converted:
            notes.append(converted)
    if dep.kv_dtype == "fp8":
        args += [T.flag("--kv-cache-dtype"), "fp8_e4m3"]
    if quant.mode == "online":
        args += [T.flag("--quantization"), quant.method or "fp8"]
        notes.append(
            f"SGLang quantises the {plan.checkpoint_dtype} checkpoint to fp8 when it loads"
        )
    if quant.mode == "llmc":
        notes.append(f"loads the LLMC {quant.tag} checkpoint from {model_ref} (run llmc.sh first)")
    dtype = dtype_flag_value(plan)
    if dtype:
        args += [T.flag("--dtype"), dtype]
    spec_args, spec_notes = speculative_args(plan, context)
    args += spec_args
    notes += spec_notes
    checks = [draft_check(plan)] if dep.spec_method == "eagle3" and context != "k8s" else []
    if plan.prefix_caching:
        notes.append(
            "SGLang's radix prefix cache is on by default and left on (no --disable-radix-cache): "
            "the prediction counted the shared prefix and cached turns as cache hits"
        )
    if plan.trust_remote_code:
        args.append(T.flag("--trust-remote-code"))

    if nodes > 1 and len(options.node_hosts) < all_nodes:
        notes.append("nodeN stands for the address of node N: edit it or pass --node-hosts")
    launches: list[Launch] = []
    for slot in layout:
        argv = [*T.program, *args, T.flag("--port"), str(slot.port)]
        if nodes > 1:
            head = node_address(options, slot.node - slot.node_in_replica, all_nodes)
            argv += [
                T.flag("--nnodes"),
                str(nodes),
                T.flag("--node-rank"),
                str(slot.node_in_replica),
            ]
            argv += [T.flag("--dist-init-addr"), f"{head}:{DIST_INIT_PORT}"]
        env = visible_devices_env(plan, slot.devices) if context == "host" else {}
        if dep.spec_method == "eagle3":
            env.update({T.env_var(k): v for k, v in draft_env(context).items()})
        launches.append(Launch.on(slot, T, argv, env, serves_api=slot.node_in_replica == 0))
    return EngineRun(
        "sglang",
        T,
        launches,
        notes=notes,
        model_ref=model_ref,
        nodes=all_nodes,
        prelude=prelude,
        checks=checks,
    )
