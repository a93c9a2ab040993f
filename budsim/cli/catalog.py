"""Catalog commands: `budsim models`, `analyze`, `hardware`, `engines`."""

from __future__ import annotations

import typer

from budsim.core.facts import model_facts

from .hub import allow_download_option, fetch_config
from .output import echo_json, print_table


def register(app: typer.Typer) -> None:
    @app.command()
    def models(
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        plain: bool = typer.Option(False, "--plain", help="One model id per line (for scripts)."),
    ) -> None:
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
        elif plain:
            typer.echo("\n".join(str(r["id"]) for r in rows))
        else:
            # ids are what a user copies: the table leaves columns out before it cuts one
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
                optional=("context", "attn", "active", "MoE"),
            )

    @app.command()
    def analyze(
        model: str = typer.Argument(..., help="Catalog id, HF id or path to a config."),
        trust_remote_code: bool = typer.Option(False, help="Allow custom code from the hub."),
        allow_download: bool = allow_download_option(),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Architecture facts and memory per dtype of a model."""
        if allow_download:
            fetch_config(model, trust_remote_code=trust_remote_code)
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
        # the one memory unit budsim uses, said once: a vendor's "80GB" of HBM is GiB
        typer.echo('memory GB = 10^9 bytes (a vendor\'s "80GB" of HBM is 80 GiB = 85.9 GB)')

    @app.command()
    def engines(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
        """List the engine profiles: where each runs and what it supports."""
        from dataclasses import asdict

        from budsim.core.engines import all_profiles

        profiles = all_profiles()
        if as_json:
            echo_json([asdict(p) | {"parallelism": sorted(p.parallelism)} for p in profiles])
            return
        # The version's note ("0.11 (vllm-gaudi)") goes under the table: in a column it would
        # take the room the weight formats need at 80 columns.
        versions = [p.version.partition(" (") for p in profiles]
        print_table(
            "Engine profiles",
            ("engine", "version", "kind", "scheduler", "seqs", "tokens", "parallel", "weights"),
            [
                (
                    p.id,
                    version,
                    p.kind,
                    p.scheduler,
                    p.default_max_num_seqs,
                    p.default_max_num_batched_tokens,
                    " ".join(sorted(p.parallelism)),
                    " ".join(p.quantizations),
                )
                for p, (version, _, _) in zip(profiles, versions, strict=True)
            ],
        )
        for p, (version, _, note) in zip(profiles, versions, strict=True):
            if note:
                typer.echo(f"{p.id} {version} on {p.kind}: {note.rstrip(')')}")
