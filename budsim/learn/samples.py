"""Measured rows -> training samples: the physics prediction, its features and the residual targets.

Every measured row goes through `budsim.learn.evaluate.case_for_row`, the one mapping from dataset
semantics to a prediction case and its comparable metrics, so training, validation and the accuracy
benchmark read the data the same way. The residual target of a metric is
log(measured / physics), with the physics value taken from the prediction key that
`case_for_row` names for that metric. A static batch that reports only a throughput gets the
latency residual -log(measured / physics throughput). Max-throughput runs (which `case_for_row`
simulates as one large static batch) are validated but not trained on (see build_samples).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budsim.core.calibration.features import feature_list, version_status
from budsim.core.deployment import Workload
from budsim.core.errors import BudsimError

if TYPE_CHECKING:
    from budsim.core.predict import Prediction, Resolved

# A residual beyond e^±3 (20x) is a data or mapping error, not something to learn.
RESIDUAL_CLIP = 3.0
# Measured column (evaluate.METRIC_MAP) -> family.
COLUMN_FAMILY: dict[str, str] = {"ttft_ms": "ttft", "tpot_ms": "tpot", "e2e_s": "e2e"}
THROUGHPUT_COLUMNS = ("out_tok_s", "total_tok_s")
# Prediction fields a front-end latency moves (see shifted_prediction)
TTFT_KEYS = ("ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p95", "ttft_ms_p99")
E2E_KEYS = ("e2e_s_mean", "e2e_s_p50", "e2e_s_p90", "e2e_s_p95", "e2e_s_p99", "e2e_s_max")
RATE_KEYS = ("output_tok_s", "total_tok_s", "requests_per_s", "output_tok_s_per_device")


@dataclass
class Sample:
    """One measured row that budsim can simulate."""

    source: str
    row_id: str
    model: str
    # cross-validation group: models of one architecture (identical configs) are held out together
    group: str
    hardware: str
    engine: str
    kind: str
    scenario: str
    workload: Workload
    pred: Prediction
    x: list[float]
    # (measured column, prediction key, measured value)
    targets: tuple[tuple[str, str, float], ...]
    residuals: dict[str, float] = field(default_factory=dict)  # family -> log(measured/physics)
    resolved: Resolved | None = None  # what the features are computed from (see with_front_end)
    status: float = 1.0  # the row's e_version_status
    load: float = 0.0  # the measured run's load (concurrency, batch, ...)
    row_scenario: str = ""  # the measured row's own scenario (max_throughput runs differ)


@dataclass
class SampleSet:
    samples: list[Sample]
    rows_seen: dict[str, int]  # per source
    rows_used: dict[str, int]  # per source: rows with at least one residual
    skipped: dict[str, int]  # reason -> rows


def _value(pred: Prediction, key: str) -> float | None:
    v = getattr(pred, key, None)
    return float(v) if isinstance(v, (int, float)) and math.isfinite(v) and v > 0 else None


def _reason(message: str) -> str:
    """A skip reason without machine-specific paths or per-row numbers (for the manifest)."""
    text = re.sub(r"\S*/(\S+/\S+)", r"\1", message.split(":")[0])
    return re.sub(r"\d+(\.\d+)?", "N", text)[:80]


def build_samples(rows: Iterable[Mapping[str, Any]]) -> SampleSet:
    """Predict every row with physics and attach features and residual targets (deterministic order)."""
    from budsim.core.predict import predict_physics, resolve

    from .evaluate import case_for_row

    ordered = sorted(rows, key=lambda r: (str(r.get("source")), str(r.get("row_id"))))
    samples: list[Sample] = []
    seen: dict[str, int] = {}
    used: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for row in ordered:
        source = str(row.get("source"))
        seen[source] = seen.get(source, 0) + 1
        try:
            case = case_for_row(row)
            resolved = resolve(case.deployment)
            if not resolved.engine.calibrated:
                # llama.cpp rows are simulable but stay physics-only until a calibration is
                # trained for them: the shipped models were fitted without them
                raise BudsimError(f"engine {resolved.engine.id} is not calibrated")
            pred = predict_physics(case.deployment, case.workload)
        except BudsimError as exc:
            reason = _reason(str(exc))
            skipped[reason] = skipped.get(reason, 0) + 1
            continue
        if not pred.fits:
            skipped["does not fit"] = skipped.get("does not fit", 0) + 1
            continue
        residuals = residuals_of(case.targets, pred, case.workload.scenario, row.get("scenario"))
        status = version_status(row.get("engine"), row.get("engine_version"))
        sample = Sample(
            source=source,
            row_id=str(row.get("row_id")),
            model=str(row.get("model")),
            group=str(row.get("model_group") or row.get("model")),
            hardware=resolved.device.id,
            engine=resolved.engine.id,
            kind=resolved.device.kind,
            scenario=case.workload.scenario,
            workload=case.workload,
            pred=pred,
            x=feature_list(resolved, case.workload, pred, status),
            targets=case.targets,
            residuals=residuals,
            resolved=resolved,
            status=status,
            load=float(case.workload.load),
            row_scenario=str(row.get("scenario") or ""),
        )
        samples.append(sample)
        if residuals:
            used[source] = used.get(source, 0) + 1
    return SampleSet(samples, seen, used, skipped)


def residuals_of(
    targets: Iterable[tuple[str, str, float]],
    pred: Prediction,
    scenario: str,
    row_scenario: Any = None,
) -> dict[str, float]:
    """family -> log(measured / physics) of one row, clipped to RESIDUAL_CLIP."""
    residuals: dict[str, float] = {}
    for column, key, measured in targets:
        family = COLUMN_FAMILY.get(column)
        physics = _value(pred, key)
        if family is None or physics is None:
            continue
        r = math.log(measured / physics)
        residuals[family] = max(-RESIDUAL_CLIP, min(RESIDUAL_CLIP, r))
    if scenario == "static" and "e2e" not in residuals and row_scenario != "max_throughput":
        # A static batch's throughput is batch x lengths / its latency, so a measured
        # throughput fixes the latency residual too. Not for max-throughput runs (requests at
        # an infinite rate): there the engine's admission of a queue its KV cache cannot hold
        # sets the throughput, and a residual learned in that regime does not transfer to
        # batches the cache holds (held out, GPT-J's TRT-LLM static batches, which physics
        # gets within 2 % on A100 and L40S, were moved by -16 %). They are validated only.
        for column, key, measured in targets:
            physics = _value(pred, key)
            if column in THROUGHPUT_COLUMNS and physics is not None:
                r = -math.log(measured / physics)
                residuals["e2e"] = max(-RESIDUAL_CLIP, min(RESIDUAL_CLIP, r))
                break
    return residuals


def shifted_prediction(pred: Prediction, delta_ms: float) -> Prediction:
    """`pred` with `delta_ms` more front-end latency per request: every TTFT and end-to-end
    latency grows by it, and a closed loop's or a batch's throughput shrinks in proportion to its
    end-to-end latency (requests per second = in flight / latency). The schedule itself does not
    change (the simulator adds the front end to each request's latencies)."""
    out = copy.copy(pred)
    if not delta_ms:
        return out
    for name in TTFT_KEYS:
        value = getattr(out, name)
        if value is not None:
            setattr(out, name, value + delta_ms)
    before = out.e2e_s_mean
    for name in E2E_KEYS:
        value = getattr(out, name)
        if value is not None:
            setattr(out, name, value + delta_ms * 1e-3)
    if before and out.e2e_s_mean:
        scale = before / out.e2e_s_mean
        for name in RATE_KEYS:
            value = getattr(out, name)
            if value is not None:
                setattr(out, name, value * scale)
    return out


def with_front_end(samples: Iterable[Sample], delta_ms: float) -> list[Sample]:
    """The samples as their physics would be with `delta_ms` more fixed front-end latency: the
    predictions, residual targets and features follow (cross-validation refits the front end
    inside each fold, budsim.learn.frontend_fit)."""
    if not delta_ms:
        return list(samples)
    out = []
    for s in samples:
        pred = shifted_prediction(s.pred, delta_ms)
        assert s.resolved is not None  # every sample built by build_samples has one
        out.append(
            dataclasses.replace(
                s,
                pred=pred,
                x=feature_list(s.resolved, s.workload, pred, s.status),
                residuals=residuals_of(s.targets, pred, s.scenario, s.row_scenario),
            )
        )
    return out


def data_files(data: Path) -> list[dict[str, Any]]:
    """Every file under <data>/e2e and <data>/model_configs with its sha256 and row count."""
    out = []
    for sub in ("e2e", "model_configs"):
        base = data / sub
        if not base.is_dir():
            continue
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            raw = path.read_bytes()
            entry: dict[str, Any] = {
                "path": path.relative_to(data).as_posix(),
                "sha256": hashlib.sha256(raw).hexdigest(),
                "bytes": len(raw),
            }
            if path.suffix in (".csv", ".jsonl"):
                lines = raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)
                entry["rows"] = max(0, lines - (1 if path.suffix == ".csv" else 0))
            out.append(entry)
    return out


def physics_fingerprint(samples: Iterable[Sample]) -> str:
    """A hash of the physics predictions the residuals are relative to (detects physics drift)."""
    h = hashlib.sha256()
    for s in samples:
        for family in sorted(s.residuals):
            h.update(f"{s.source}|{s.row_id}|{family}|{s.residuals[family]:.6f}\n".encode())
    return h.hexdigest()
