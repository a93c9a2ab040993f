"""`budsim optimize`: search engine, parallelism, quantisation and batch settings for a model.

Heavy imports (the search, DEAP, the predictor) happen inside the command so `budsim --help` stays fast.
The rendering helpers here are shared with `budsim runs show`.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import typer

from budsim.core.errors import BudsimError
from budsim.core.report import (
    ONE_PER_PREDICTION,
    count_text,
    fill_devices_text,
    fmt,
    layout_text,
    performance_rows,
    search_steps_text,
    weights_text,
    workload_text,
)

from .hub import allow_download_option, fetch_config
from .output import print_table
from .predict import length_mix_option

OBJECTIVES = ("throughput", "latency", "cost", "goodput")


def _split(values: Sequence[str] | None) -> tuple[str, ...] | None:
    """Accept repeated options and comma-separated lists alike."""
    if not values:
        return None
    out = [v.strip() for item in values for v in item.split(",") if v.strip()]
    return tuple(out) or None


def render_result(console: Any, response: Mapping[str, Any], *, title: str | None = None) -> None:
    """Best configuration, predicted performance with its band, constraints, alternatives, metadata."""
    from rich.table import Table

    from budsim.core.engines import knob_names

    config = response.get("optimal_configuration")
    perf = response.get("predicted_performance") or {}
    objectives = response.get("objectives") or {}
    meta = response.get("simulation_metadata") or {}
    if title:
        console.print(f"[bold]{title}[/bold]")
    if not config:
        console.print("[yellow]no configuration to show (the run stopped before finding one)[/]")
    else:
        best = Table(title="Best configuration", show_header=False, title_justify="left")
        best.add_column("setting", style="cyan")
        best.add_column("value")
        best.add_row("engine", str(config.get("engine")))
        best.add_row(
            "parallelism",
            f"{layout_text(config)}  ({count_text(config.get('devices'), 'device')}, "
            f"{config.get('devices_per_replica')} per replica)",
        )
        best.add_row("weights", weights_text(config, auto="checkpoint"))
        best.add_row("KV cache", str(config.get("kv_dtype")))
        seqs, tokens, memory = knob_names(config.get("engine"))
        best.add_row(seqs, fmt(config.get("max_num_seqs")))
        best.add_row(tokens, fmt(config.get("max_num_batched_tokens")))
        best.add_row(memory, fmt(config.get("gpu_memory_utilization")))
        console.print(best)
        fill = response.get("fill_devices")
        if fill:
            text = fill_devices_text(fill, str(response.get("optimization_target")))
            console.print(f"[bold yellow]{text}[/]")

        table = Table(title="Predicted performance", title_justify="left")
        table.add_column("metric", style="cyan")
        table.add_column("value", justify="right")
        table.add_column("band (lo – hi)", justify="right", style="dim")
        for label, value, band_text in performance_rows(perf, extended=True):
            table.add_row(label, value, band_text)
        usd = objectives.get("usd_per_1m_output_tokens")
        if usd is not None:
            table.add_row("$ per 1M output tokens", f"{usd:.4g}", "")
        console.print(table)
        render_constraints(console, response.get("constraints") or [])
    alts = response.get("alternative_configurations") or []
    if alts:
        render_candidates(console, alts, title="Top alternatives")
    if meta:
        evaluated = meta.get("configurations_evaluated")
        size = meta.get("search_space_size")
        share = f" of {size:,} ({evaluated / size:.1%})" if size and evaluated is not None else ""
        bits = [
            f"method {meta.get('method')}",
            f"{meta.get('duration_seconds', 0):.2f} s",
            search_steps_text(meta) or "-",
            f"{evaluated} configurations evaluated{share}",
        ]
        if meta.get("seed") is not None:
            bits.append(f"seed {meta['seed']}")
        if meta.get("early_stopped"):
            bits.append("stopped early (front converged)")
        console.print("[dim]" + " · ".join(bits) + "[/dim]")
    sim_id = response.get("simulation_id")
    status = response.get("status")
    if status and status != "completed":
        console.print(f"[yellow]status: {status}[/yellow]")
    if sim_id:
        console.print(f"saved as run [bold]{sim_id}[/bold]  (budsim runs show {sim_id[:8]})")


def render_constraints(console: Any, checks: Sequence[Mapping[str, Any]]) -> None:
    from rich.table import Table

    if not checks:
        return
    table = Table(title="Constraints", title_justify="left")
    table.add_column("constraint", style="cyan")
    table.add_column("predicted", justify="right")
    table.add_column("limit", justify="right")
    table.add_column("met")
    table.add_column("how", style="dim")
    for c in checks:
        met = "[green]yes[/]" if c.get("met") else "[red]no[/]"
        table.add_row(
            str(c.get("name")), fmt(c.get("value")), fmt(c.get("limit")), met, str(c.get("how"))
        )
    console.print(table)


def render_candidates(
    console: Any, candidates: Sequence[Mapping[str, Any]], *, title: str, show_miss: bool = False
) -> None:
    columns = ["#", "engine", "layout", "weights", "KV", "seqs", "tok/s/dev", "tok/s/user"]
    columns += ["TTFT p50 ms", "TPOT p50 ms", "$/1M tok"]
    if show_miss:
        columns.append("misses")
    rows = []
    for i, c in enumerate(candidates, 1):
        cfg = c.get("configuration") or {}
        perf = c.get("predicted_performance") or {}
        obj = c.get("objectives") or {}
        row = [
            str(i),
            str(cfg.get("engine")),
            layout_text(cfg),
            weights_text(cfg),
            str(cfg.get("kv_dtype")),
            fmt(cfg.get("max_num_seqs")),
            fmt(perf.get("output_tok_s_per_device")),
            fmt(perf.get("tok_s_per_user")),
            fmt(perf.get("ttft_ms_p50")),
            fmt(perf.get("tpot_ms_p50")),
            fmt(obj.get("usd_per_1m_output_tokens")),
        ]
        if show_miss:
            misses = [
                f"{ch['name']} {fmt(ch.get('value'))}>{fmt(ch.get('limit'))}"
                if not str(ch.get("name", "")).startswith("min_")
                else f"{ch['name']} {fmt(ch.get('value'))}<{fmt(ch.get('limit'))}"
                for ch in c.get("constraints") or []
                if not ch.get("met")
            ]
            row.append("; ".join(misses))
        rows.append(row)
    print_table(
        title,
        columns,
        rows,
        optional=("$/1M tok", "tok/s/user", "KV", "seqs", "TPOT p50 ms"),
        console=console,
    )
    console.print(f"[dim]{ONE_PER_PREDICTION}[/dim]")


def render_disaggregated(console: Any, comparison: Mapping[str, Any]) -> None:
    """The xPyD splits of the best replica (core.search.disagg_split) and the verdict."""
    from rich.table import Table

    from budsim.core.search.disagg_split import split_label

    table = Table(title=f"Disaggregated: {comparison['searched']}", title_justify="left")
    for name in ("split", "devices", "TTFT ms", "TPOT ms", "tok/s/dev", "meets SLOs"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for row in comparison["splits"]:
        split = split_label(row)
        if "error" in row:
            table.add_row(split, "-", "-", "-", "-", row["error"])
            continue
        table.add_row(
            split,
            str(row["devices"]),
            fmt(row["ttft_ms_mean"]),
            fmt(row["tpot_ms_mean"]),
            fmt(row["output_tok_s_per_device"]),
            "yes" if row["feasible"] else "no",
        )
    console.print(table)
    console.print(comparison["verdict"])


def register(app: typer.Typer) -> None:
    @app.command("optimize")
    def optimize(
        model: str = typer.Option(
            ..., "--model", "-m", help="HF id, catalog alias or config path."
        ),
        hardware: str = typer.Option(..., "--hardware", help="Hardware id, e.g. h100-sxm, gaudi2."),
        devices: int = typer.Option(..., "--devices", "-n", help="Devices available."),
        nodes: int | None = typer.Option(None, "--nodes", help="Nodes the devices sit in."),
        engines: list[str] | None = typer.Option(
            None, "--engines", "--engine", help="Allowed engines (comma-separated or repeated)."
        ),
        quant: list[str] | None = typer.Option(
            None,
            "--quant",
            help="Allowed weight formats, e.g. auto,fp8,int4 (auto = the checkpoint's own).",
        ),
        input_len: int | None = typer.Option(
            None, "--input-len", help="Prompt tokens per request (or --length-mix)."
        ),
        output_len: int | None = typer.Option(
            None, "--output-len", help="Output tokens per request (or --length-mix)."
        ),
        length_mix: str | None = typer.Option(
            None,
            "--length-mix",
            help="Request shapes, AIPerf style: 'ISL[|SD],OSL[|SD]:weight;...', e.g. "
            "'256|40,128|20:0.7;2048,512:0.3'.",
        ),
        lengths_file: Path | None = typer.Option(
            None,
            "--lengths-file",
            help="CSV of your requests' input_len,output_len (header required), replayed.",
        ),
        shared_prefix_len: int = typer.Option(
            0,
            "--shared-prefix-len",
            help="Prompt tokens every request shares (a system prompt), cached once.",
        ),
        cached_share: float = typer.Option(
            0.0,
            "--cached-share",
            help="Share (0-0.99) of the rest of each prompt an earlier turn left cached.",
        ),
        disagg: bool = typer.Option(
            False,
            "--disagg",
            help="Also predict prefill/decode splits (xPyD) of the best configuration's replica "
            "over the devices, and say whether one beats aggregated serving.",
        ),
        speculative: list[str] | None = typer.Option(
            None,
            "--speculative",
            help="Speculative decoding to search beside plain decoding: mtp, eagle3, ngram, "
            "draft:MODEL (a separate draft model with the target's tokenizer, on the engines "
            "that run one); comma-separated or repeated.",
        ),
        concurrency: int | None = typer.Option(
            None, "--concurrency", "-c", help="Closed loop: requests in flight."
        ),
        rate: float | None = typer.Option(
            None, "--rate", help="Open loop: requests/s (Poisson unless --burstiness)."
        ),
        burstiness: str | None = typer.Option(
            None,
            "--burstiness",
            help="With --rate: gamma shape of the arrival gaps, as vllm bench serve "
            "--burstiness (1 Poisson, <1 bursty, >1 more even).",
        ),
        batch_size: int | None = typer.Option(
            None, "--batch-size", help="Static batch (benchmark_latency style)."
        ),
        num_requests: int | None = typer.Option(None, "--num-requests", help="Requests simulated."),
        slo_ttft_ms: float | None = typer.Option(None, "--slo-ttft-ms", help="TTFT limit (ms)."),
        slo_tpot_ms: float | None = typer.Option(None, "--slo-tpot-ms", help="TPOT limit (ms)."),
        slo_percentile: str = typer.Option(
            "p95", "--slo-percentile", help="Percentile the latency SLOs apply at (p50..p99, mean)."
        ),
        min_throughput: float | None = typer.Option(
            None, "--min-throughput", help="Minimum output tok/s of the whole deployment."
        ),
        min_rps: float | None = typer.Option(None, "--min-rps", help="Minimum requests/s."),
        max_devices: int | None = typer.Option(None, "--max-devices", help="Use at most N."),
        max_memory_gb: float | None = typer.Option(
            None, "--max-memory-gb", help="Memory budget per device (GB)."
        ),
        max_batch_size: int | None = typer.Option(
            None, "--max-batch-size", help="Upper bound for max_num_seqs."
        ),
        objective: str = typer.Option(
            "throughput", "--objective", help="Headline target: " + " | ".join(OBJECTIVES)
        ),
        population: int = typer.Option(100, "--population", help="GA population size."),
        generations: int = typer.Option(50, "--generations", help="GA generations (max)."),
        seed: int | None = typer.Option(None, "--seed", help="Seed for a reproducible search."),
        patience: int = typer.Option(
            10, "--patience", help="Stop after N generations without front improvement (0 = off)."
        ),
        exhaustive: bool = typer.Option(
            False, "--exhaustive", help="Evaluate every configuration instead of the GA."
        ),
        alternatives: int = typer.Option(5, "--alternatives", help="Alternatives to report."),
        price: float | None = typer.Option(
            None, "--price-per-hour", help="$/device-hour (default: the hardware catalog's)."
        ),
        workers: int = typer.Option(
            0,
            "--workers",
            help="Processes for the predictions; 0 = one per core, at most 4 (results do not change).",
        ),
        allow_download: bool = allow_download_option(),
        json_out: bool = typer.Option(False, "--json", help="Print the response as JSON."),
        no_save: bool = typer.Option(False, "--no-save", help="Do not save the run."),
        db: Path | None = typer.Option(
            None, "--db", help="Run store file (default $BUDSIM_DB or the XDG data dir)."
        ),
    ) -> None:
        """Find the best deployment (engine, parallelism, quantisation, batching) for a workload."""
        from dataclasses import asdict

        from rich.console import Console

        from budsim.core.predict import context_warning
        from budsim.core.schema import search_input, workload_input
        from budsim.core.search.optimize import (
            NoFeasibleConfiguration,
            PredictEvaluator,
            prepare,
            run_optimization,
        )

        if [concurrency, rate, batch_size].count(None) != 2:
            raise BudsimError("give exactly one of --concurrency, --rate or --batch-size")
        if workers < 0:
            raise BudsimError(f"--workers must be >= 0, got {workers}")
        workers = workers or max(1, min(4, os.cpu_count() or 1))
        workload = workload_input(
            {
                "input_len": input_len,
                "output_len": output_len,
                "length_mix": length_mix_option(length_mix, lengths_file),
                "concurrency": concurrency,
                "rate": rate,
                "batch_size": batch_size,
                "burstiness": burstiness,
                "num_requests": num_requests,
                "shared_prefix_len": shared_prefix_len,
                "cached_share": cached_share,
            }
        ).to_workload()
        if allow_download:
            fetch_config(model)
        warning = context_warning(model, workload)
        if warning:
            import warnings

            warnings.warn(warning, stacklevel=1)
        request = search_input(
            {
                "model": model,
                "hardware": hardware,
                "devices": devices,
                "nodes": nodes,
                "engines": _split(engines),
                "quantizations": _split(quant),
                "max_devices": max_devices,
                "max_memory_gb": max_memory_gb,
                "max_batch_size": max_batch_size,
                "constraints": {
                    "ttft_ms": slo_ttft_ms,
                    "tpot_ms": slo_tpot_ms,
                    "percentile": slo_percentile,
                    "min_output_tok_s": min_throughput,
                    "min_requests_per_s": min_rps,
                },
                "optimization_target": objective,
                "ga": {
                    "population": population,
                    "generations": generations,
                    "seed": seed,
                    "patience": patience,
                },
                "alternatives": alternatives,
                "price_per_hour": price,
                "speculative": speculative,
            }
        ).to_request(workload, exhaustive=exhaustive, disagg=disagg)
        problem = prepare(request)
        # the prediction workers start now, forked before any thread (the progress display's)
        # exists and after the engines' tables are loaded here (they inherit them)
        evaluator = PredictEvaluator(workload, workers=workers)
        evaluator.start(warm=problem.space.engine_samples())
        out = Console(soft_wrap=False)
        err = Console(stderr=True)
        store = None
        if not no_save:
            from budsim.core.store import open_store

            store = open_store(db)
        progress_ctx = None
        on_event = None
        if not json_out and err.is_terminal:
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            progress_ctx = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                TextColumn("{task.fields[info]}"),
                TimeElapsedColumn(),
                console=err,
                transient=True,
            )
            total = None if exhaustive else generations
            task = progress_ctx.add_task("searching", total=total, info="")

            def on_event(event: Any) -> None:
                best = event.best.get("target")
                info = f"{event.evaluations} evaluated · {event.feasible} feasible"
                if best is not None:
                    info += f" · best {objective} {best:.4g}"
                if event.method == "exhaustive":
                    progress_ctx.update(  # type: ignore[union-attr]
                        task, total=event.space_size, completed=event.evaluations, info=info
                    )
                elif event.method == "local":
                    progress_ctx.update(  # type: ignore[union-attr]
                        task,
                        completed=generations,
                        info=f"local search round {event.local_round} · {info}",
                    )
                else:
                    progress_ctx.update(  # type: ignore[union-attr]
                        task, completed=event.generation, info=info
                    )

        try:
            if progress_ctx is not None:
                with progress_ctx:
                    result = run_optimization(
                        request,
                        on_event=on_event,
                        store=store,
                        evaluator=evaluator,
                        problem=problem,
                    )
            else:
                result = run_optimization(
                    request, on_event=on_event, store=store, evaluator=evaluator, problem=problem
                )
        except NoFeasibleConfiguration as exc:
            if json_out:
                typer.echo(json.dumps(exc.response, indent=2, default=str))
            else:
                render_candidates(
                    out,
                    exc.closest,
                    title=f"No configuration meets the constraints; closest "
                    f"(binding: {exc.binding})",
                    show_miss=True,
                )
            raise
        finally:
            evaluator.close()
            if store is not None:
                store.close()
        response = result.to_dict()
        if json_out:
            typer.echo(json.dumps(response, indent=2, default=str))
            return
        title = (
            f"{result.request.model} on {devices} x {hardware} · "
            f"{workload_text(asdict(workload))} · objective {objective}"
        )
        render_result(out, response, title=title)
        if response.get("disaggregated"):
            render_disaggregated(out, response["disaggregated"])
        sys.stdout.flush()
