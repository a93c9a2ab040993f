"""Plain-text rendering of configurations and predictions, shared by the CLI and the TUI."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def fmt(value: Any, digits: int = 4) -> str:
    """Short human number: 1,234 / 12.35 / 0.0123; '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if not math.isfinite(value):
            return "-"
        if value == 0:
            return "0"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}g}"
    return str(value)


def count_text(n: Any, noun: str) -> str:
    """ "1 device", "8 devices"."""
    return f"{fmt(n)} {noun}" if n == 1 else f"{fmt(n)} {noun}s"


# Lists of configurations keep one of each prediction (search.optimize._one_per_prediction), so
# a reader who expects a near twin in the list is told why it is not there.
ONE_PER_PREDICTION = (
    "One row per prediction: configurations that differ only in a knob that changes nothing "
    "here (such as the memory fraction where the KV cache does not bind) are listed once."
)


def search_steps_text(metadata: Mapping[str, Any]) -> str | None:
    """How far a search went, in the words of every view ("2 generations + 4 local rounds",
    "exhaustive search"): from a run's metadata (`OptimizationResult.metadata`, or
    `RunStore.list_runs`' count of the saved generations); None when it does not say."""
    if metadata.get("method") == "exhaustive":
        return "exhaustive search"
    gens = metadata.get("generations_evolved")
    if gens is None:
        return None
    local = metadata.get("local_search_rounds") or 0
    text = count_text(gens, "generation")
    return text + (f" + {count_text(local, 'local round')}" if local else "")


def devices_in(config: Mapping[str, Any]) -> int | None:
    """The devices a configuration uses: its own count, else TP x PP x DP x replicas (a failed
    run's closest configurations are stored with their layout only)."""
    devices = config.get("devices")
    if isinstance(devices, int) and devices > 0:
        return devices
    try:
        n = 1
        for key in ("tp", "pp", "dp", "replicas"):
            n *= int(config.get(key) or 1)
    except (TypeError, ValueError):
        return None
    return n


def layout_text(config: Mapping[str, Any]) -> str:
    """TP2·PP2 ×3 style, with the speculative decoding if any (TP1 +EAGLE-3 k3)."""
    parts = [f"TP{config.get('tp', 1) or 1}"]
    for key in ("pp", "dp", "ep"):
        value = config.get(key) or 1
        if value > 1:
            parts.append(f"{key.upper()}{value}")
    text = "·".join(parts)
    replicas = config.get("replicas") or 1
    if replicas > 1:
        text += f" ×{replicas}"
    spec = speculative_text(config)
    return f"{text} +{spec}" if spec else text


def fill_devices_text(fill: Mapping[str, Any], target: str, *, lead: bool = True) -> str:
    """What the best replicated over the device budget would give (OptimizationResult.fill),
    after "Uses 1 of 8 devices (objective: ...)." unless `lead` is False (a text that says it)."""
    cfg, perf = fill["configuration"], fill["predicted_performance"]
    used, available = fill["devices_used_by_best"], fill["devices_available"]
    head = f"Uses {used} of {available} devices (objective: {target}). " if lead else ""
    return (
        f"{head}Filled with replicas, "
        f"{layout_text(cfg)} on {count_text(cfg['devices'], 'device')} at the same load: TTFT "
        f"{fmt(perf.get('ttft_ms_mean'))} ms, TPOT {fmt(perf.get('tpot_ms_mean'))} ms, "
        f"{fmt(perf.get('output_tok_s'))} tok/s in all"
        + ("." if fill.get("feasible") else " (misses the SLOs).")
    )


def speculative_text(config: Mapping[str, Any]) -> str:
    """EAGLE-3 k3 style ("" without speculative decoding); the draft length is the method's
    default when the configuration leaves it at 0."""
    from .speculative import METHODS

    method = METHODS.get(str(config.get("spec_method") or "none"))
    if method is None:
        return ""
    text = f"{method.label} k{config.get('spec_tokens') or method.default_tokens}"
    draft = config.get("spec_draft_model")
    return f"{text} ({draft})" if method.name == "draft" and draft else text


def weights_text(config: Mapping[str, Any], auto: str = "ckpt") -> str:
    """The weight format; `auto` names the checkpoint's own format."""
    w = config.get("weight_dtype") or "auto"
    return auto if w == "auto" else str(w)


def workload_text(workload: Mapping[str, Any]) -> str:
    """concurrency 32 · ISL 1024 / OSL 256 style (a rate names a burstiness other than 1, a
    finite run its request count)."""
    scenario = workload.get("scenario") or "concurrency"
    load = workload.get({"rate": "rate", "static": "batch_size"}.get(scenario, "concurrency"))
    text = f"{scenario} {fmt(load)}"
    burstiness = workload.get("burstiness")
    if scenario == "rate" and burstiness not in (None, 1, 1.0):
        text += f" (burstiness {fmt(burstiness)})"
    text += f" · ISL {workload.get('input_len')} / OSL {workload.get('output_len')}"
    requests = workload.get("num_requests")
    if requests and scenario != "static":  # a finite run (a static batch always is one)
        text += f" · run of {count_text(requests, 'request')}"
    cache = prefix_cache_text(workload)
    return f"{text} · {cache}" if cache else text


def prefix_cache_text(workload: Mapping[str, Any]) -> str:
    """ "3072 shared prefix tokens · 50 % of the rest cached" ("" without prefix caching)."""
    prefix, share = workload.get("shared_prefix_len") or 0, workload.get("cached_share") or 0
    parts = [f"{prefix} shared prefix tokens"] if prefix else []
    if share:
        parts.append(f"{share * 100:.0f} % of the rest cached")
    return " · ".join(parts)


def workload_brief(workload: Mapping[str, Any]) -> str:
    """1024/256 C16 style, for tables: ISL/OSL (a length spread as ±N%), then the load (C for a
    concurrency, B for a static batch, req/s for a rate, with its burstiness when not 1) and, for
    a finite run, its request count as n=N."""

    def length(key: str) -> str:
        spread = workload.get(f"{key}_spread") or 0
        text = str(workload.get(key, "?"))
        return f"{text}±{spread * 100:.0f}%" if spread else text

    scenario = workload.get("scenario") or "concurrency"
    if scenario == "rate":
        load = f"{fmt(workload.get('rate'))} req/s"
        burstiness = workload.get("burstiness")
        if burstiness not in (None, 1, 1.0):
            load += f" burst {fmt(burstiness)}"
    elif scenario == "static":
        load = f"B{fmt(workload.get('batch_size'))}"
    else:
        load = f"C{fmt(workload.get('concurrency'))}"
    text = f"{length('input_len')}/{length('output_len')} {load}"
    requests = workload.get("num_requests")
    if requests and scenario != "static":
        text += f" n={fmt(requests)}"
    prefix, share = workload.get("shared_prefix_len") or 0, workload.get("cached_share") or 0
    if prefix or share:  # the cached part of a prompt: its shared prefix + share of the rest
        text += " pfx" + (f"{prefix}" if prefix else "") + (f"+{share * 100:.0f}%" if share else "")
    return text


def slo_parts(constraints: Mapping[str, Any]) -> list[str]:
    """The SLOs and floors of a search, one text each: "TTFT p90 ≤ 500 ms", "≥ 1,000 tok/s"
    (latency limits name the percentile they apply at)."""
    percentile = constraints.get("percentile") or "p95"
    parts = [
        f"{label} {percentile} ≤ {fmt(constraints[key])} ms"
        for key, label in (("ttft_ms", "TTFT"), ("tpot_ms", "TPOT"))
        if constraints.get(key) is not None
    ]
    for key, template in (
        ("min_output_tok_s", "≥ {} tok/s"),
        ("min_requests_per_s", "≥ {} req/s"),
        ("max_memory_gb", "≤ {} GB per device"),
    ):
        if constraints.get(key) is not None:
            parts.append(template.format(fmt(constraints[key])))
    return parts


@dataclass(frozen=True)
class RunLabel:
    """What tells saved runs apart: the model (its canonical name), the workload and the SLOs."""

    model: str
    workload: str  # workload_brief
    slo: tuple[str, ...]  # slo_parts

    @property
    def slo_text(self) -> str:
        return ", ".join(self.slo) or "no SLO"


def run_label(run: Mapping[str, Any]) -> RunLabel:
    """The label of a stored run: a row of `RunStore.list_runs`, `get_run` or the runs of
    `compare_runs` (the workload and constraints at the top level or in `inputs`). A run stored
    under an alias shows the catalog id (`canonical_model_name`)."""
    from .model import canonical_model_name

    inputs = run.get("inputs")
    inputs = inputs if isinstance(inputs, Mapping) else {}
    model = run.get("model") or inputs.get("model")
    workload = run.get("workload") or inputs.get("workload")
    constraints = run.get("constraints") or inputs.get("constraints")
    return RunLabel(
        model=canonical_model_name(str(model)) if model else "-",
        workload=workload_brief(workload) if isinstance(workload, Mapping) else "-",
        slo=tuple(slo_parts(constraints)) if isinstance(constraints, Mapping) else (),
    )


def break_after_slashes(text: str, width: int) -> str:
    """`text` with line breaks after slashes of its words wider than `width`, so that an
    org/name id or a path folds between its parts instead of inside a name; a part still wider
    than `width` stays whole."""
    words = text.split(" ")
    out = []
    for word in words:
        if len(word) <= width or "/" not in word:
            out.append(word)
            continue
        lines = [""]
        for piece in re.findall(r"[^/]*/|[^/]+$", word):
            if lines[-1] and len(lines[-1]) + len(piece) > width:
                lines.append(piece)
            else:
                lines[-1] += piece
        out.append("\n".join(lines))
    return " ".join(out)


# (label, key, band prefix or None)
PERFORMANCE: tuple[tuple[str, str, str | None], ...] = (
    ("TTFT mean", "ttft_ms_mean", "ttft_ms_mean"),
    ("TTFT p50/p90/p95/p99", "ttft_ms_p50|ttft_ms_p90|ttft_ms_p95|ttft_ms_p99", None),
    ("TPOT mean", "tpot_ms_mean", "tpot_ms_mean"),
    ("TPOT p50/p90/p95/p99", "tpot_ms_p50|tpot_ms_p90|tpot_ms_p95|tpot_ms_p99", None),
    ("E2E mean", "e2e_s_mean", "e2e_s_mean"),
    ("E2E p50/p90/p95/p99", "e2e_s_p50|e2e_s_p90|e2e_s_p95|e2e_s_p99", None),
    ("output tok/s", "output_tok_s", "output_tok_s"),
    ("tok/s per device", "output_tok_s_per_device", None),
    ("tok/s per user", "tok_s_per_user", None),
    ("requests/s", "requests_per_s", None),
)
# The memory and provenance rows the CLI's longer report adds.
PERFORMANCE_EXTENDED: tuple[tuple[str, str, str | None], ...] = (
    ("weights per device GB", "weights_gb_per_device", None),
    ("KV cache per device GB", "kv_cache_gb_per_device", None),
    ("max concurrency (KV)", "max_concurrency", None),
    ("bottleneck", "bottleneck", None),
    ("calibration", "calibration", None),
    ("rests on", "rests_on", None),
    ("simulated", "run", None),
)
UNITS = {"ttft": "ms", "tpot": "ms", "e2e": "s"}


def performance_rows(
    prediction: Mapping[str, Any], *, extended: bool = False
) -> list[tuple[str, str, str]]:
    """(label, value, band) rows; latencies carry their unit."""
    out: list[tuple[str, str, str]] = []
    rows = PERFORMANCE + PERFORMANCE_EXTENDED if extended else PERFORMANCE
    for label, key, band in rows:
        unit = UNITS.get(key.split("_", 1)[0], "")
        suffix = f" {unit}" if unit else ""
        if "|" in key:
            values = [prediction.get(k) for k in key.split("|")]
            if all(v is None for v in values):
                continue
            out.append((label, " / ".join(fmt(v, 3) for v in values) + suffix, ""))
            continue
        value = prediction.get(key)
        if value is None:
            continue
        out.append(
            (label, fmt(value) + suffix, band_text(prediction, band, suffix) if band else "")
        )
    return out


def band_text(prediction: Mapping[str, Any], key: str, suffix: str = "") -> str:
    """The 80 % band of `key` as "lo–hi" ("" when the prediction carries none)."""
    lo, hi = prediction.get(f"{key}_lo"), prediction.get(f"{key}_hi")
    if lo is None or hi is None:
        return ""
    return f"{fmt(lo, 3)}–{fmt(hi, 3)}{suffix}"
