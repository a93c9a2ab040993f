"""Catalog commands: `budsim models`, `analyze`, `hardware`, `engines`."""

from __future__ import annotations

from typing import Any

import typer

from .output import echo_json, print_table

GB = 1e9


def model_facts(ref: str, trust_remote_code: bool = False) -> dict[str, Any]:
    """Architecture facts and memory per dtype of one model (also used by the TUI)."""
    from budsim.core.dtypes import WEIGHT_DTYPES
    from budsim.core.model import load_model

    m = load_model(ref, trust_remote_code=trust_remote_code)
    layer = m.layer_groups[0][0]
    return {
        "name": m.name,
        "model_type": m.model_type,
        "architecture": m.architecture,
        "total_params_b": m.total_params / 1e9,
        "active_params_b": m.active_params / 1e9,
        "layers": m.num_layers,
        "hidden_size": m.hidden_size,
        "attention": m.attention_kind,
        "q_heads": layer.q_heads,
        "kv_heads": layer.kv_heads,
        "vocab_size": m.vocab_size,
        "max_context": m.max_context,
        "is_moe": m.is_moe,
        "experts": m.num_experts,
        "top_k": m.top_k,
        "checkpoint_dtype": m.checkpoint_dtype,
        "quant_method": m.quant_method,
        "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0),
        "kv_bytes_per_token_fp8": m.kv_bytes_per_token(1.0),
        "weights_gb": {d: m.weight_bytes(d) / GB for d in WEIGHT_DTYPES if d != "fp16"},
    }


def register(app: typer.Typer) -> None:
    @app.command()
    def models(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the bundled offline model catalog."""
        from budsim.core.model import list_catalog, load_model

        rows = []
        for name in list_catalog():
            m = load_model(name)
            rows.append(
                {
                    "id": name,
                    "params_b": round(m.total_params / 1e9, 2),
                    "active_b": round(m.active_params / 1e9, 2),
                    "layers": m.num_layers,
                    "attention": m.attention_kind,
                    "moe": m.is_moe,
                    "dtype": m.checkpoint_dtype,
                    "max_context": m.max_context,
                }
            )
        if as_json:
            echo_json(rows)
        else:
            print_table(
                f"{len(rows)} models",
                ("id", "B", "active", "attn", "MoE", "dtype", "context"),
                [
                    (
                        r["id"],
                        r["params_b"],
                        r["active_b"],
                        r["attention"],
                        r["moe"],
                        r["dtype"],
                        r["max_context"],
                    )
                    for r in rows
                ],
            )

    @app.command()
    def analyze(
        model: str = typer.Argument(..., help="Catalog id, HF id or path to a config."),
        trust_remote_code: bool = typer.Option(False, help="Allow custom code from the hub."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Architecture facts and memory per dtype of a model."""
        facts = model_facts(model, trust_remote_code)
        if as_json:
            echo_json(facts)
            return
        weights = facts.pop("weights_gb")
        print_table(facts["name"], ("fact", "value"), list(facts.items()))
        print_table("Weights (GB, whole model)", tuple(weights), [tuple(weights.values())])

    @app.command()
    def hardware(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the hardware catalog (bundled plus your hardware.toml)."""
        from dataclasses import asdict

        from budsim.core.hardware import load_hardware

        devices = load_hardware()
        if as_json:
            echo_json([asdict(d) | {"tflops": dict(d.tflops)} for d in devices.values()])
            return
        print_table(
            f"{len(devices)} devices",
            ("id", "kind", "memory GB", "bandwidth GB/s", "bf16 TF", "fp8 TF", "per node", "$/h"),
            [
                (
                    d.id,
                    d.kind,
                    d.memory_gb,
                    d.memory_bw_gbs,
                    d.tflops.get("bf16"),
                    d.tflops.get("fp8"),
                    d.devices_per_node,
                    d.price_per_hour,
                )
                for d in devices.values()
            ],
        )

    @app.command()
    def engines(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the engine profiles: where each runs and what it supports."""
        from dataclasses import asdict

        from budsim.core.engines import all_profiles

        profiles = all_profiles()
        if as_json:
            echo_json([asdict(p) | {"parallelism": sorted(p.parallelism)} for p in profiles])
            return
        print_table(
            "Engine profiles",
            ("engine", "version", "kind", "weights", "parallelism", "scheduler", "seqs", "tokens"),
            [
                (
                    p.id,
                    p.version,
                    p.kind,
                    " ".join(p.quantizations),
                    " ".join(sorted(p.parallelism)),
                    p.scheduler,
                    p.default_max_num_seqs,
                    p.default_max_num_batched_tokens,
                )
                for p in profiles
            ],
        )
