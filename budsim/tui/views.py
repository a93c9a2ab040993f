"""Plain-data views of runs and results, and their text (no textual).

The results and history screens render `ResultView`s built either from an optimiser response
(`OptimizationResult.to_dict()`, also stored as a run's `response`) or from a stored run's result rows
(interrupted runs have no response).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from budsim.core.report import (  # noqa: F401 - re-exported for the screens
    ONE_PER_PREDICTION,
    PERFORMANCE,
    break_after_slashes,
    count_text,
    devices_in,
    fill_devices_text,
    fmt,
    layout_text,
    performance_rows,
    run_label,
    search_steps_text,
    weights_text,
    workload_text,
)

TARGET_INFO: dict[str, tuple[str, str, float]] = {
    # target -> (label, unit, sign that turns the signed "bigger is better" score into natural units)
    "throughput": ("tok/s per device", "tok/s/dev", 1.0),
    "latency": ("mean end-to-end latency", "E2E s", -1.0),
    "cost": ("$ per 1M output tokens", "$/1M tok", -1.0),
    "goodput": ("requests/s within SLOs", "req/s", 1.0),
}

OBJECTIVE_LABELS: dict[str, str] = {
    "output_tok_s_per_device": "tok/s/dev",
    "tok_s_per_user": "tok/s/user",
    "e2e_s_mean": "E2E s",
    "usd_per_1m_output_tokens": "$/1M tok",
}


def fmt_duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, sec = divmod(int(round(seconds)), 60)
    if minutes < 60:
        return f"{minutes}m{sec:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def pack(parts: Sequence[str], width: int, sep: str = " · ") -> str:
    """`parts` joined by `sep`, in lines of at most `width` cells that break between parts, never
    inside one (a part wider than `width` has a line of its own; width 0: one line)."""
    lines: list[str] = []
    for part in parts:
        if lines and (not width or len(lines[-1]) + len(sep) + len(part) <= width):
            lines[-1] += sep + part
        else:
            lines.append(part)
    return "\n".join(lines)


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("GB", 1e9), ("MB", 1e6), ("KB", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.3g} {unit}"
    return f"{n:.0f} B"


def kv_text(config: Mapping[str, Any]) -> str:
    kv = config.get("kv_dtype") or "auto"
    return "16-bit" if kv == "auto" else str(kv)


def describe(config: Mapping[str, Any]) -> str:
    """One line: `vllm TP2 ×4 · fp8 weights · fp8 KV · 256 seqs`."""
    bits = [f"{config.get('engine')} {layout_text(config)}", f"{weights_text(config)} weights"]
    bits.append(f"{kv_text(config)} KV")
    if config.get("max_num_seqs"):
        bits.append(f"{config['max_num_seqs']} seqs")
    return " · ".join(bits)


def natural_target(target: str, signed: float | None) -> float | None:
    if signed is None or not math.isfinite(signed):
        return None
    return signed * TARGET_INFO.get(target, ("", "", 1.0))[2]


# ---------------------------------------------------------------------------------- result views


@dataclass
class Row:
    """One candidate configuration of a run."""

    rank: int
    kind: str  # best | alternative | pareto | closest
    configuration: dict[str, Any]
    prediction: dict[str, Any] | None
    objectives: dict[str, Any]
    feasible: bool = True
    constraints: list[dict[str, Any]] = field(default_factory=list)

    def metric(self, key: str) -> Any:
        if key in self.objectives and self.objectives[key] is not None:
            return self.objectives[key]
        return (self.prediction or {}).get(key)


@dataclass
class ResultView:
    run_id: str | None
    status: str
    target: str
    request: dict[str, Any]
    rows: list[Row]
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    fill: dict[str, Any] | None = None  # the best over every device (OptimizationResult.fill)
    disagg: dict[str, Any] | None = None  # prefill/decode splits of the best, if asked

    @property
    def best(self) -> Row | None:
        for row in self.rows:
            if row.kind == "best":
                return row
        return None

    @property
    def title(self) -> str:
        """The model (its catalog id, as History names it), the hardware and the target."""
        req = self.request
        return (
            f"{run_label(req).model} on {req.get('devices')}× {req.get('hardware')} · "
            f"target {self.target}"
        )

    @property
    def goal(self) -> str:
        """The workload and the SLOs with their percentile (as History shows them):
        "concurrency 32 · ISL 1024 / OSL 256 · SLO TTFT p99 ≤ 500 ms"."""
        slo = run_label(self.request).slo
        workload = workload_text(self.request.get("workload") or {})
        return f"{workload} · " + (f"SLO {', '.join(slo)}" if slo else "no SLO")


def _same(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys: tuple[str, ...] = ("engine", "tp", "pp", "dp", "ep", "replicas", "weight_dtype")
    keys += ("kv_dtype", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")
    return all(a.get(k) == b.get(k) for k in keys)


def view_from_response(response: Mapping[str, Any]) -> ResultView:
    """From `OptimizationResult.to_dict()` (what the optimiser returns and the store keeps)."""
    rows: list[Row] = []
    config = response.get("optimal_configuration")
    if config:
        rows.append(
            Row(
                0,
                "best",
                dict(config),
                dict(response.get("predicted_performance") or {}),
                dict(response.get("objectives") or {}),
                True,
                list(response.get("constraints") or []),
            )
        )
    for alt in response.get("alternative_configurations") or []:
        rows.append(
            Row(
                len(rows),
                "alternative",
                dict(alt.get("configuration") or {}),
                dict(alt.get("predicted_performance") or {}),
                dict(alt.get("objectives") or {}),
                bool(alt.get("feasible", True)),
                list(alt.get("constraints") or []),
            )
        )
    for member in response.get("pareto_front") or []:
        cfg = dict(member.get("configuration") or {})
        if any(_same(cfg, r.configuration) for r in rows):
            continue
        rows.append(Row(len(rows), "pareto", cfg, None, dict(member.get("objectives") or {})))
    request = dict(response.get("request") or {})
    return ResultView(
        run_id=response.get("simulation_id"),
        status=str(response.get("status") or "completed"),
        target=str(response.get("optimization_target") or request.get("optimization_target")),
        request=request,
        rows=rows,
        metadata=dict(response.get("simulation_metadata") or {}),
        fill=response.get("fill_devices") or None,
        disagg=response.get("disaggregated") or None,
    )


def view_from_store(run: Mapping[str, Any], results: Sequence[Mapping[str, Any]]) -> ResultView:
    """From a stored run: its response when it has one, else its result rows."""
    response = run.get("response")
    if isinstance(response, Mapping) and response.get("optimal_configuration") is not None:
        view = view_from_response(response)
        view.run_id = run.get("id") or view.run_id
        view.status = str(run.get("status") or view.status)
        view.error = run.get("error")
        return view
    rows = [
        Row(
            int(r.get("rank", i)),
            str(r.get("kind") or "alternative"),
            dict(r.get("deployment") or {}),
            dict(r.get("prediction") or {}) if r.get("prediction") else None,
            dict(r.get("objectives") or {}),
            bool(r.get("feasible", True)),
            list(r.get("constraints") or []),
        )
        for i, r in enumerate(results)
    ]
    inputs = dict(run.get("inputs") or {})
    return ResultView(
        run_id=run.get("id"),
        status=str(run.get("status") or "unknown"),
        target=str(run.get("objective") or inputs.get("optimization_target") or "throughput"),
        request=inputs,
        rows=rows,
        metadata=dict(run.get("metadata") or {}),
        error=run.get("error"),
    )


# ---------------------------------------------------------------------------------- detail text


def memory_rows(plan: Mapping[str, Any]) -> list[tuple[str, float]]:
    """Where one device's memory goes, from `MemoryPlan.to_dict()` (GB)."""
    total = float(plan.get("device_memory_gb") or 0.0)
    weights = float(plan.get("weights_gb") or 0.0)
    kv = float(plan.get("kv_cache_gb") or 0.0)
    act = float(plan.get("activation_gb") or 0.0)
    overhead = float(plan.get("overhead_gb") or 0.0)
    free = max(0.0, total - weights - kv - act - overhead)
    return [
        ("weights", weights),
        ("KV cache", kv),
        ("activations", act),
        ("runtime", overhead),
        ("unused", free),
    ]


def memory_rows_from_prediction(
    prediction: Mapping[str, Any], device_memory_gb: float | None
) -> list[tuple[str, float]]:
    """A coarser breakdown when no memory plan is at hand."""
    weights = float(prediction.get("weights_gb_per_device") or 0.0)
    kv = float(prediction.get("kv_cache_gb_per_device") or 0.0)
    rows = [("weights", weights), ("KV cache", kv)]
    if device_memory_gb:
        rows.append(("other/unused", max(0.0, device_memory_gb - weights - kv)))
    return rows


def bar(fraction: float, width: int) -> str:
    fraction = min(1.0, max(0.0, fraction))
    full = int(round(fraction * width))
    return "█" * full + "·" * (width - full)


BOTTLENECK_WHY: dict[str, str] = {
    "memory": "decode is memory-bound: each step streams the weights and the KV cache, so smaller "
    "weight/KV formats and fewer bytes per token pay off most",
    "compute": "the steps are compute-bound (prefill-heavy), so tensor-core throughput and "
    "low-precision compute set the pace",
    "communication": "tensor-parallel all-reduces take a large share of each step; fewer TP ranks "
    "with more replicas would cut that",
    "overhead": "per-step scheduler and launch overhead dominates at this batch size; larger "
    "batches amortise it",
}


def disagg_text(comparison: Mapping[str, Any]) -> str:
    """The prefill/decode comparison of the best (search.disagg_split) in a sentence or two."""
    from budsim.core.search.disagg_split import split_label

    text = f"Disaggregated ({comparison.get('searched')}): {comparison.get('verdict')}"
    best = comparison.get("best")
    if best:
        text += (
            f"; {split_label(best)} predicts TTFT "
            f"{fmt(best.get('ttft_ms_mean'))} ms, TPOT {fmt(best.get('tpot_ms_mean'))} ms, "
            f"{fmt(best.get('output_tok_s_per_device'))} tok/s/dev"
        )
    return text + "."


def why_text(view: ResultView, row: Row | None = None) -> str:
    """One paragraph on why this configuration wins (or what it trades off)."""
    row = row or view.best
    if row is None:
        return "The search stopped before it found a configuration that meets the constraints."
    cfg = row.configuration
    pred = row.prediction or {}
    label, unit, _ = TARGET_INFO.get(view.target, (view.target, "", 1.0))
    parts: list[str] = []
    meta = view.metadata
    evaluated = meta.get("configurations_evaluated")
    size = meta.get("search_space_size")
    scope = ""
    if evaluated:
        scope = f" among {fmt(int(evaluated))} configurations evaluated"
        if size:
            scope += f" (of {fmt(int(size))} possible)"
    headline = _target_value(view.target, row)
    if row.kind == "best":
        parts.append(
            f"{describe(cfg)} gives the best {label}"
            + (f", {fmt(headline)} {unit}" if headline is not None else "")
            + f"{scope}."
        )
    elif row.kind == "closest":
        misses = [
            f"{c.get('name')} {fmt(c.get('value'))} (limit {fmt(c.get('limit'))})"
            for c in row.constraints
            if c.get("met") is False
        ]
        parts.append(
            f"{describe(cfg)} comes closest to the constraints"
            + (f" at {fmt(headline)} {unit}" if headline is not None else "")
            + (f" but misses {', '.join(misses)}" if misses else "")
            + "."
        )
    else:
        kind = {"pareto": "Pareto"}.get(row.kind, row.kind)
        article = "an" if kind[:1].lower() in "aeiou" else "a"
        parts.append(
            f"{describe(cfg)} is {article} {kind} trade-off"
            + (f" at {fmt(headline)} {unit}" if headline is not None else "")
            + "."
        )
    best = view.best
    others = [r for r in view.rows if r is not row and r.feasible]
    if row.kind == "best" and others and headline is not None:
        ties = [
            r
            for r in others
            if (v := _target_value(view.target, r)) and abs(v / headline - 1) < 0.005
        ]
        if ties:
            parts.append(
                f"{len(ties)} other configuration{'s tie' if len(ties) != 1 else ' ties'} within "
                "0.5% (they differ in knobs that do not bind at this load, such as the "
                "batch-token budget or the memory fraction)."
            )
        distinct = [
            r for r in others if r not in ties and describe(r.configuration) != describe(cfg)
        ]
        runner = distinct[0] if distinct else None
        value = _target_value(view.target, runner) if runner is not None else None
        if runner is not None and value:
            sign = 1 if TARGET_INFO.get(view.target, ("", "", 1.0))[2] > 0 else -1
            gain = (headline / value - 1) * sign
            parts.append(
                f"That is {abs(gain):.0%} {'better' if gain >= 0 else 'worse'} than the next "
                f"different option ({describe(runner.configuration)})."
            )
    if best is not None and row is not best:
        a, b = _target_value(view.target, best), headline
        if a and b:
            parts.append(f"It reaches {b / a:.0%} of the best's {label}.")
    devices = devices_in(cfg)
    available = view.request.get("devices")
    replicas = cfg.get("replicas") or 1
    if devices:
        per = cfg.get("devices_per_replica") or devices // replicas
        text = f"It uses {devices}"
        if available and available != devices:
            text += f" of the {available}"
        text += f" devices as {replicas} replica{'s' if replicas != 1 else ''} of {per}"
        if replicas > 1:
            text += " (replicas add throughput; TP inside one replica cuts per-request latency)"
        parts.append(text + ".")
        if row.kind == "best" and view.fill:  # the devices it leaves idle, filled
            parts.append(fill_devices_text(view.fill, view.target, lead=False))
    if row.kind == "best" and view.disagg:
        parts.append(disagg_text(view.disagg))
    if row.kind in ("best", "closest") and len(view.rows) > 1:
        parts.append(ONE_PER_PREDICTION)
    weights, kv = pred.get("weights_gb_per_device"), pred.get("kv_cache_gb_per_device")
    if weights is not None and kv is not None:
        text = (
            f"{weights_text(cfg)} weights take {fmt(weights, 3)} GB per device and leave "
            f"{fmt(kv, 3)} GB of KV cache"
        )
        if pred.get("max_concurrency"):
            text += f", room for {fmt(pred['max_concurrency'])} sequences at once"
        parts.append(text + ".")
    bottleneck = pred.get("bottleneck")
    if bottleneck in BOTTLENECK_WHY:
        parts.append(f"The bottleneck: {BOTTLENECK_WHY[bottleneck]}.")
    met = [c for c in row.constraints if c.get("met") and c.get("limit") is not None]
    missed = [c for c in row.constraints if not c.get("met")]
    if met:
        parts.append(
            "Meets "
            + ", ".join(f"{c['name']} ≤ {fmt(c['limit'])} ({fmt(c.get('value'))})" for c in met)
            + "."
        )
    if missed:
        parts.append(
            "Misses "
            + ", ".join(
                f"{c['name']} ({fmt(c.get('value'))} vs {fmt(c.get('limit'))})" for c in missed
            )
            + "."
        )
    return " ".join(parts)


def _target_value(target: str, row: Row) -> float | None:
    obj = row.objectives
    value = obj.get("target")
    if isinstance(value, (int, float)):
        natural = natural_target(target, float(value))
        if natural is not None:
            return natural
    key = {
        "throughput": "output_tok_s_per_device",
        "latency": "e2e_s_mean",
        "cost": "usd_per_1m_output_tokens",
        "goodput": "requests_per_s",
    }.get(target)
    value = row.metric(key) if key else None
    return float(value) if isinstance(value, (int, float)) else None


# A model id longer than this folds after its slash (meta-llama/ over Meta-Llama-3.1-8B) in the
# narrow columns of the history and the comparison.
MODEL_WIDTH = 20


def model_cell(model: str) -> str:
    return break_after_slashes(model, MODEL_WIDTH)


def run_status_text(status: str) -> str:
    return {
        "completed": "done",
        "cancelled": "cancelled",
        "interrupted": "INTERRUPTED",
        "failed": "failed",
        "running": "running",
    }.get(status, status)


def configuration_document(view: ResultView, row: Row) -> dict[str, Any]:
    """The configuration JSON of one row (the export issue's input schema)."""
    doc: dict[str, Any] = {
        **row.configuration,
        "model": row.configuration.get("model") or view.request.get("model"),
        "hardware": row.configuration.get("hardware") or view.request.get("hardware"),
        "predicted_performance": row.prediction or {},
        "objectives": row.objectives,
        "rank": row.rank,
    }
    if view.run_id:
        doc["run_id"] = view.run_id
    workload = view.request.get("workload")
    if isinstance(workload, Mapping):
        doc["workload"] = dict(workload)
    return doc
