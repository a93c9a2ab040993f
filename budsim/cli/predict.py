"""`budsim predict`: one case from flags, or many from a CSV (`--cases`)."""

from __future__ import annotations

import csv
import json
import sys
import textwrap
from pathlib import Path
from typing import Any

import typer

from budsim.core.errors import BudsimError

from .hub import allow_download_option, fetch_config
from .output import echo_json, print_table

CHUNK = 256  # rows predicted together (one learned-correction evaluation per workload in a chunk)


def _answers(
    batch: list[dict[str, Any]], downloads: dict[str, str | None] | None = None
) -> list[dict[str, Any]]:
    """Predictions (or {"error": ...}) of CSV rows / flag sets, in order. With `downloads` (a
    dict, --allow-download), each row's model config is fetched from the Hub first, once per
    model: the dict keeps each model's error (None: fetched)."""
    from budsim.core.cases import parse_case
    from budsim.core.deployment import Deployment, Workload
    from budsim.core.predict import Prediction, context_warning, predict_cases

    parsed: list[tuple[Deployment, Workload] | BudsimError] = []
    for fields in batch:
        try:
            if downloads is not None:
                _download(str(fields.get("model") or "").strip(), downloads)
            parsed.append(parse_case(fields))
        except BudsimError as exc:
            parsed.append(exc)
    cases = [p for p in parsed if not isinstance(p, BudsimError)]
    results = iter(predict_cases(cases))
    out: list[dict[str, Any]] = []
    for p in parsed:
        if isinstance(p, BudsimError):
            out.append({"error": str(p)})
            continue
        dep, answer = p[0], next(results)
        if isinstance(answer, Prediction) and not answer.fits:
            reason = answer.memory.reason if answer.memory else "does not fit"
            answer = BudsimError(
                f"{dep.model} does not fit on {dep.devices} x {dep.hardware}: {reason}"
            )
        if isinstance(answer, BudsimError):
            out.append({"error": str(answer)})
            continue
        row = answer.to_dict()
        warning = context_warning(dep.model, p[1])
        if warning:
            row["warning"] = warning
        out.append(row)
    return out


def length_mix_option(text: str | None, path: Path | None) -> str | None:
    """The request shapes of --length-mix or --lengths-file (as mix text), None for neither."""
    if path is None:
        return text
    if text:
        raise BudsimError("give --length-mix or --lengths-file, not both")
    from budsim.core.lengths import mix_text, read_pairs_csv

    return mix_text(read_pairs_csv(path), limit=None)


def _download(model: str, done: dict[str, str | None]) -> None:
    if model not in done:
        try:
            fetch_config(model)
            done[model] = None
        except BudsimError as exc:
            done[model] = str(exc)
    error = done[model]
    if error:
        raise BudsimError(error)


def _predict_fields(fields: dict[str, Any]) -> dict[str, Any]:
    answer = _answers([fields])[0]
    if "error" in answer:
        raise BudsimError(answer["error"])
    if "warning" in answer:
        import warnings

        warnings.warn(answer["warning"], stacklevel=1)
    return answer


def _predict_disagg(
    fields: dict[str, Any], prefill_workers: int, decode_workers: int, layout: tuple[Any, ...]
) -> tuple[dict[str, Any], list[str]]:
    """A disaggregated prediction (budsim.core.disagg) as predict's result fields, and notes that
    break its TTFT down."""
    from budsim.core.cases import parse_case
    from budsim.core.disagg import DisaggDeployment, predict_disagg
    from budsim.core.speculative import NO_SPECULATION

    dep, workload = parse_case(fields)
    if dep.replicas != 1:
        raise BudsimError("with --prefill-workers, --decode-workers counts the decode replicas")
    if prefill_workers < 1 or decode_workers < 1:
        raise BudsimError("--prefill-workers and --decode-workers must be at least 1")
    tp, dp, ep = (
        v if v is not None else getattr(dep, k)
        for v, k in zip(layout, ("tp", "dp", "ep"), strict=True)
    )
    prefill = dep.with_(
        tp=tp,
        dp=dp,
        ep=ep,
        replicas=prefill_workers,
        **NO_SPECULATION,
    )
    pred, t = predict_disagg(
        DisaggDeployment(prefill, dep.with_(replicas=decode_workers)), workload
    )
    result = pred.to_dict()
    notes = [
        f"disaggregated: {prefill_workers} prefill x TP{tp} DP{dp} EP{ep} + {decode_workers} "
        f"decode x TP{dep.tp} DP{dep.dp} EP{dep.ep} = {pred.devices} devices",
        f"TTFT = front end {t.front_end_s * 1e3:.1f} + prefill {t.prefill_alone_s * 1e3:.1f} + "
        f"queue {t.prefill_wait_s * 1e3:.1f} + KV handoff {t.transfer_s * 1e3:.2f} + handoff "
        f"control {t.handoff_s * 1e3:.0f}"
        + (f" + opening burst {t.burst_s * 1e3:.1f}" if t.burst_s else "")
        + " ms (means; "
        f"the prefill pool serves up to {t.prefill_rate * prefill_workers:.3g} req/s, "
        f"{t.requests_per_s:.3g} used; {t.decode_in_flight:.3g} in flight per decode worker)",
    ]
    return result, notes


def _configuration(fields: dict[str, Any], pool: tuple[int | None, ...]) -> dict[str, Any]:
    """The predicted deployment and workload as a configuration `budsim export` takes (see
    budsim.core.export.plan), so `predict --json > plan.json` can be exported as it stands."""
    from dataclasses import asdict

    from budsim.core.cases import parse_case

    dep, workload = parse_case(fields)
    config: dict[str, Any] = {**dep.to_dict(), "workload": asdict(workload)}
    prefill_workers, decode_workers, tp, dp, ep = pool
    if prefill_workers is not None:
        del config["replicas"]  # the pools' workers say how many of each
        config.update(prefill_workers=prefill_workers, decode_workers=decode_workers)
        config.update({f"prefill_{k}": v for k, v in (("tp", tp), ("dp", dp), ("ep", ep)) if v})
    return config


def _notes(fields: dict[str, Any]) -> list[str]:
    """What the prediction assumed that the command line did not say (the table output only;
    the fields have passed validation by then)."""
    from budsim.core.cases import parse_case
    from budsim.core.hardware import get_device
    from budsim.core.report import devices_in, prefix_cache_text, speculative_text
    from budsim.core.speculative import spec_settings

    notes = []
    if not any(fields.get(k) for k in ("scenario", "concurrency", "batch_size", "rate")):
        notes.append("no load given, so 1 client (set --concurrency, --rate or --batch-size)")
    dep, workload = parse_case(fields)
    if workload.length_mix:
        from budsim.core.lengths import mix_longest, mix_text, preset

        named = preset(str(fields.get("length_mix") or ""))
        shape = (
            f"the preset {named.name}, {named.label}"
            if named is not None
            else f"the mix {mix_text(workload.length_mix)}"
        )
        notes.append(
            f"lengths drawn from {shape} (means {workload.input_len}/{workload.output_len}, "
            f"longest request {mix_longest(workload.length_mix)[2]:,} tokens)"
        )
        if named is not None:
            notes.append(f"{named.name} source: {named.source}")
    if workload.prefix_caching:
        notes.append(f"prefix cache: {prefix_cache_text(vars(workload))}")
    settings = spec_settings(dep)
    if settings is not None:
        notes.append(
            f"speculative decoding {speculative_text(dep.to_dict())} at an assumed acceptance "
            f"of {settings[2]:.2f} per drafted token (--spec-acceptance)"
        )
    per_replica = devices_in({k: fields.get(k) for k in ("tp", "pp", "dp")})
    try:
        per_node = get_device(str(fields["hardware"])).devices_per_node
    except BudsimError:
        return notes
    if per_replica is not None and per_replica > per_node:
        nodes = -(-per_replica // per_node)
        notes.append(
            f"a replica spans {nodes} nodes of {per_node}: collectives use the scale-out network"
        )
    return notes


def _cases_table(rows: list[dict[str, Any]]) -> None:
    """The headline numbers of each case, one row each; a case that failed shows its error
    (every field is in --format json/jsonl/csv)."""
    table: list[tuple[Any, ...]] = []
    for r in rows:
        if "error" in r:
            table.append((r["id"], "-", "-", "-", "-", r["error"]))
            continue
        table.append(
            (
                r["id"],
                r.get("ttft_ms_mean"),
                r.get("tpot_ms_mean"),
                r.get("output_tok_s"),
                r.get("output_tok_s_per_device"),
                r.get("run") or "",
            )
        )
    print_table(
        f"{len(rows)} cases",
        ("id", "TTFT ms", "TPOT ms", "out tok/s", "/device", "simulated or error"),
        table,
    )


def _run_cases(path: Path, fmt: str, downloads: dict[str, str | None] | None = None) -> None:
    try:
        # utf-8-sig: spreadsheets save CSV with a byte-order mark before the header
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise BudsimError(f"cannot read cases file {path}: {exc.strerror}") from None
    try:
        _read_cases(handle, path, fmt, downloads)
    except UnicodeDecodeError:
        raise BudsimError(f"{path} is not UTF-8 text; save the cases as a UTF-8 CSV") from None
    except csv.Error as exc:
        raise BudsimError(f"{path} is not a readable CSV: {exc}") from None


def _read_cases(
    handle: Any, path: Path, fmt: str, downloads: dict[str, str | None] | None = None
) -> None:
    from budsim.core.cases import CASE_COLUMNS

    with handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames:
            raise BudsimError(f"{path} is empty; it needs a header row")
        unknown = [c for c in reader.fieldnames if c and c.strip() not in CASE_COLUMNS]
        if unknown:
            raise BudsimError(f"{path}: unknown column(s) {', '.join(unknown)}")
        rows_out: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []

        def flush() -> None:
            for fields, answer in zip(batch, _answers(batch, downloads), strict=True):
                result = {"id": fields["id"], **answer}
                if fmt == "jsonl":
                    sys.stdout.write(json.dumps(result) + "\n")
                else:
                    rows_out.append(result)
            sys.stdout.flush()
            batch.clear()

        for n, row in enumerate(reader, start=1):
            fields = {(k or "").strip(): v for k, v in row.items()}
            fields["id"] = fields.get("id") or str(n)
            batch.append(fields)
            if len(batch) >= CHUNK:
                flush()
        flush()
    if fmt == "json":
        echo_json(rows_out)
    elif fmt == "table":
        _cases_table(rows_out)
    elif fmt == "csv":
        keys: list[str] = []
        for r in rows_out:
            keys.extend(k for k in r if k not in keys)
        writer = csv.DictWriter(sys.stdout, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows_out)


def register(app: typer.Typer) -> None:
    @app.command()
    def predict(
        model: str = typer.Option(None, help="Catalog id, HF id or path to a config.json/dir."),
        hardware: str = typer.Option(None, help="Hardware id (see `budsim hardware`)."),
        engine: str = typer.Option("vllm", help="vllm | sglang | trtllm | llamacpp"),
        tp: str = typer.Option("1", help="Tensor parallel size."),
        pp: str = typer.Option("1", help="Pipeline parallel size."),
        dp: str = typer.Option("1", help="Attention data parallel size."),
        ep: str = typer.Option("1", help="Expert parallel size (MoE)."),
        replicas: str = typer.Option("1", help="Independent engine replicas."),
        weight_dtype: str = typer.Option(
            "auto", help="bf16|fp16|fp8|int8|int4|nvfp4|mxfp4|auto; llamacpp: q4_k_m|q5_k_m|q8_0"
        ),
        kv_dtype: str = typer.Option("auto", help="auto | fp8"),
        scenario: str = typer.Option(None, help="concurrency | static | rate"),
        concurrency: str = typer.Option(None, help="Requests in flight (closed loop)."),
        batch_size: str = typer.Option(None, help="Static batch size."),
        rate: str = typer.Option(None, help="Arrival rate, requests/s (Poisson by default)."),
        burstiness: str = typer.Option(
            None,
            help="Gamma shape of the arrival gaps, as vllm bench serve --burstiness: "
            "1 Poisson, <1 bursty, >1 more even.",
        ),
        input_len: str = typer.Option(None, help="Input tokens per request."),
        output_len: str = typer.Option(None, help="Output tokens per request."),
        max_num_seqs: str = typer.Option(None, help="Engine max sequences (default: engine's)."),
        max_num_batched_tokens: str = typer.Option(None, help="Token budget per step."),
        gpu_memory_utilization: str = typer.Option(None, help="Memory fraction for the engine."),
        num_requests: str = typer.Option(
            None,
            "--num-requests",
            help="Simulate a finite benchmark run of N requests from a cold start (all clients "
            "send at t = 0); default: steady state.",
        ),
        shared_prefix_len: str = typer.Option(
            None,
            "--shared-prefix-len",
            help="Prompt tokens every request shares (a system prompt): prefilled once and "
            "cached, their KV held once.",
        ),
        cached_share: str = typer.Option(
            None,
            "--cached-share",
            help="Share (0-0.99) of the rest of each prompt an earlier turn left in the prefix "
            "cache (multi-turn chat).",
        ),
        length_mix: str = typer.Option(
            None,
            "--length-mix",
            help="Request shapes instead of --input-len/--output-len, AIPerf style: "
            "'ISL[|SD],OSL[|SD]:weight;...', e.g. '256|40,128|20:0.7;2048,512:0.3'; "
            "MEDIAN~SIGMA for a lognormal length; or a preset: azure-conv.",
        ),
        lengths_file: Path = typer.Option(
            None,
            "--lengths-file",
            help="CSV of your requests' input_len,output_len (header required), replayed as "
            "the length mix.",
        ),
        spec_method: str = typer.Option(
            None,
            "--spec-method",
            help="Speculative decoding: none | mtp | eagle3 | ngram | draft (a draft model: "
            "--spec-draft-model).",
        ),
        spec_draft_model: str = typer.Option(
            None,
            "--spec-draft-model",
            help="With --spec-method draft: the draft model (catalog id, Hugging Face id or "
            "config path; same tokenizer as --model), e.g. meta-llama/Llama-3.2-1B.",
        ),
        spec_tokens: str = typer.Option(
            None, "--spec-tokens", help="Draft tokens per step (default: the method's, 3 or 4)."
        ),
        spec_acceptance: str = typer.Option(
            None,
            "--spec-acceptance",
            help="Acceptance per drafted token, 0-0.99 (default: the method's; see "
            "docs/architecture.md).",
        ),
        prefill_workers: int = typer.Option(
            None,
            "--prefill-workers",
            help="Disaggregated serving: prefill workers (the decode pool is --tp/--dp/--ep x "
            "--decode-workers).",
        ),
        decode_workers: int = typer.Option(1, "--decode-workers", help="Decode workers."),
        prefill_tp: int = typer.Option(None, "--prefill-tp", help="Prefill worker TP (--tp)."),
        prefill_dp: int = typer.Option(None, "--prefill-dp", help="Prefill worker DP (--dp)."),
        prefill_ep: int = typer.Option(None, "--prefill-ep", help="Prefill worker EP (--ep)."),
        cases: Path = typer.Option(None, help="CSV of cases, one per row (header required)."),
        format: str = typer.Option(
            "table", "--format", help="table|json|jsonl|csv (with --cases)."
        ),
        allow_download: bool = allow_download_option(),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    ) -> None:
        """Predict TTFT, TPOT, latency, throughput and memory for a deployment."""
        if cases is not None:
            fmt = "json" if as_json and format == "table" else format
            if fmt not in ("table", "jsonl", "json", "csv"):
                raise BudsimError("--format must be table, jsonl, json or csv")
            _run_cases(cases, fmt, {} if allow_download else None)
            return
        options = ("cases", "format", "as_json", "allow_download", "lengths_file")
        pools = ("prefill_workers", "decode_workers", "prefill_tp", "prefill_dp", "prefill_ep")
        fields = {k: v for k, v in locals().items() if k not in options + pools}
        fields["length_mix"] = length_mix_option(length_mix, lengths_file)
        if allow_download:
            fetch_config(model)
        disagg_notes: list[str] = []
        if prefill_workers is not None:
            result, disagg_notes = _predict_disagg(
                fields, prefill_workers, decode_workers, (prefill_tp, prefill_dp, prefill_ep)
            )
        elif decode_workers != 1 or any(
            v is not None for v in (prefill_tp, prefill_dp, prefill_ep)
        ):
            raise BudsimError("the prefill/decode pool options need --prefill-workers")
        else:
            result = _predict_fields(fields)
        if as_json:
            pool = (prefill_workers, decode_workers, prefill_tp, prefill_dp, prefill_ep)
            echo_json({**result, "configuration": _configuration(fields, pool)})
            return
        from budsim.core.report import band_text

        stats = ("mean", "p50", "p90", "p95", "p99")
        rows = [
            (
                label,
                *(result[f"{key}_{stat}"] for stat in stats),
                band_text(result, f"{key}_mean") or "-",
            )
            for label, key in (("TTFT ms", "ttft_ms"), ("TPOT ms", "tpot_ms"), ("E2E s", "e2e_s"))
        ]
        print_table("Latency", ("metric", *stats, "mean 80 % band"), rows)
        print_table(
            "Throughput and memory",
            (
                "out tok/s",
                "/device",
                "req/s",
                "weights GB",
                "KV GB",
                "max conc",
                "bound",
            ),
            [
                (
                    result["output_tok_s"],
                    result["output_tok_s_per_device"],
                    result["requests_per_s"],
                    result["weights_gb_per_device"],
                    result["kv_cache_gb_per_device"],
                    result["max_concurrency"],
                    result["bottleneck"],
                )
            ],
        )
        throughput_band = band_text(result, "output_tok_s")
        if throughput_band:
            typer.echo(f"out tok/s 80 % band: {throughput_band}")
        for note in _notes(fields) + disagg_notes:
            typer.echo(f"note: {note}")
        # on lines of their own: a calibration id does not fit a column at 80 characters
        typer.echo(f"simulated: {result['run']}")
        typer.echo(f"step time: {result['basis']}")
        typer.echo(f"calibration: {result['calibration']}")
        # wrapped: it names metrics and evidence, and the CLI stays within 80 columns
        typer.echo(textwrap.fill(f"rests on: {result['rests_on']}", 80, subsequent_indent="  "))
