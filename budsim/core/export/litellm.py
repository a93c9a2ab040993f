"""LiteLLM proxy 1.110.2: one model_name routed over every replica, and the `litellm --config` command."""

from __future__ import annotations

from typing import Any

from ..report import count_text
from .common import (
    Artifact,
    EngineRun,
    ExportOptions,
    Raw,
    dump_yaml,
    node_address,
    render_command,
    script,
)
from .flags import LITELLM as T
from .plan import ExportPlan, comment_block, header_lines, slug

CONFIG_FILE = "litellm.yaml"


def _per_replica(plan: ExportPlan, keys: tuple[str, ...]) -> float | None:
    for key in keys:
        value = plan.prediction.get(key)
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0:
            return float(value) / plan.deployment.replicas
    return None


def config(
    plan: ExportPlan, run: EngineRun, options: ExportOptions
) -> tuple[dict[str, Any], list[str]]:
    notes: list[str] = []
    provider = "hosted_vllm" if run.engine == "vllm" else "openai"
    engine_name = run.model_ref if run.engine == "trtllm" else plan.served_name
    rps = _per_replica(plan, ("requests_per_s",))
    tps = _per_replica(plan, ("total_tok_s", "output_tok_s"))
    if rps is None or tps is None:
        notes.append("no predicted capacity in the plan: rpm/tpm limits left out")
    else:
        notes.append(
            "rpm/tpm per replica = predicted capacity / replicas (simple-shuffle weights by them)"
        )
    entries: list[dict[str, Any]] = []
    for launch in run.api_launches:
        address = node_address(options, launch.node, run.nodes)
        params: dict[str, Any] = {
            "model": f"{provider}/{engine_name}",
            "api_base": f"http://{address}:{launch.port}/v1",
        }
        if provider == "openai":
            params["api_key"] = "none"  # the client needs a key; the engine is started without one
        if rps is not None and tps is not None:
            params["rpm"] = max(1, int(rps * 60))
            params["tpm"] = max(1, int(tps * 60))
        params["timeout"] = 600
        params["stream_timeout"] = 600
        info: dict[str, Any] = {"id": f"{slug(plan.served_name)}-replica-{launch.replica}"}
        if plan.max_model_len:
            info["max_input_tokens"] = plan.max_model_len
        entries.append(
            {"model_name": plan.served_name, "litellm_params": params, "model_info": info}
        )
    if run.nodes > 1 and len(options.node_hosts) < run.nodes:
        notes.append("replace nodeN in api_base with each node's address (or pass --node-hosts)")
    router: dict[str, Any] = {
        "routing_strategy": "simple-shuffle",
        "num_retries": 2,
        "allowed_fails": 3,
        "cooldown_time": 30,
    }
    if plan.max_model_len:
        router["enable_pre_call_checks"] = True
    doc = {
        "model_list": entries,
        "router_settings": router,
        "litellm_settings": {"drop_params": True},
    }
    return doc, notes


def artifacts(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> list[Artifact]:
    doc, notes = config(plan, run, options)
    title = f"{T.engine} {T.version}: config.yaml routing {plan.served_name} over {count_text(len(doc['model_list']), 'replica')}"
    head = comment_block(header_lines(plan, title, notes))
    body = dump_yaml(doc)
    cfg = Artifact(CONFIG_FILE, head + body, "yaml", "litellm")
    argv = [
        *T.program,
        T.flag("--config"),
        Raw(f'"$(dirname "$0")"/{CONFIG_FILE}'),
        T.flag("--host"),
        "0.0.0.0",
        T.flag("--port"),
        str(options.proxy_port),
    ]
    text = script(
        plan,
        f"{T.engine} {T.version}: the proxy in front of the replicas",
        [(0, f"OpenAI-compatible proxy on port {options.proxy_port}", render_command(argv))],
        background=False,
        nodes=1,
    )
    return [cfg, Artifact("litellm.sh", text, "sh", "litellm")]
