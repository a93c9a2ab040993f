"""apply_calibration: scale a physics Prediction by the learned residuals, consistently.

A residual model predicts, per metric family, log(measured / physics) as a point and an 80 % band
(lo, hi). Scaling rules:

- closed loop / rate: TTFT percentiles scale by exp(ttft residual), TPOT/ITL percentiles by exp(tpot
  residual); end-to-end latency is rebuilt from the two (TTFT share and decode share of the mean
  request), and closed-loop throughput follows Little's law (throughput x latency = concurrency). With
  arrivals at a rate, throughput is the arrival rate unless the physics says the system saturates.
- static batch: every time scales by exp(e2e residual) and throughput by its inverse.

Bands: `<metric>_lo` / `<metric>_hi` for ttft_ms_mean, tpot_ms_mean, e2e_s_mean and output_tok_s. A
family with no learned model gets the physics-only band (the spread of the physics residuals over all
training data). `pred.calibration` names what was used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from .features import SCENARIO_FAMILIES, feature_vector

if TYPE_CHECKING:
    from ..deployment import Workload
    from ..predict import Prediction, Resolved
    from . import store

Residual = tuple[float, float, float]  # (point, lo, hi) of log(measured / physics)

_TTFT = ("ttft_ms_mean", "ttft_ms_p50", "ttft_ms_p90", "ttft_ms_p95", "ttft_ms_p99")
_TPOT = ("tpot_ms_mean", "tpot_ms_p50", "tpot_ms_p90", "tpot_ms_p95", "tpot_ms_p99", "itl_ms_mean")
_E2E = ("e2e_s_mean", "e2e_s_p50", "e2e_s_p90", "e2e_s_p95", "e2e_s_p99", "e2e_s_max")
_RATES = ("requests_per_s", "output_tok_s", "total_tok_s", "output_tok_s_per_device")


def _scale(pred: Prediction, keys: tuple[str, ...], factor: float) -> None:
    for key in keys:
        value = getattr(pred, key)
        if value is not None:
            setattr(pred, key, value * factor)


def rescale(pred: Prediction, workload: Workload, res: Mapping[str, Residual]) -> None:
    """Apply residuals (one per family of the scenario) to `pred` in place, bands included."""
    out0 = pred.output_tok_s
    if workload.scenario == "static":
        p, lo, hi = res["e2e"]
        e2e0, ttft0, tpot0 = pred.e2e_s_mean, pred.ttft_ms_mean, pred.tpot_ms_mean
        f = math.exp(p)
        _scale(pred, _TTFT + _TPOT + _E2E, f)
        _scale(pred, _RATES, 1.0 / f)
        if pred.tok_s_per_user:
            pred.tok_s_per_user /= f
        lo_f, hi_f = math.exp(lo), math.exp(hi)
        if ttft0 is not None:
            pred.ttft_ms_mean_lo, pred.ttft_ms_mean_hi = ttft0 * lo_f, ttft0 * hi_f
        if tpot0 is not None:
            pred.tpot_ms_mean_lo, pred.tpot_ms_mean_hi = tpot0 * lo_f, tpot0 * hi_f
        if e2e0 is not None:
            pred.e2e_s_mean_lo, pred.e2e_s_mean_hi = e2e0 * lo_f, e2e0 * hi_f
        if out0 is not None:
            pred.output_tok_s_lo, pred.output_tok_s_hi = out0 / hi_f, out0 / lo_f
        return

    pt, lo_t, hi_t = res["ttft"]
    pp, lo_p, hi_p = res["tpot"]
    ttft0, tpot0, e2e0 = pred.ttft_ms_mean, pred.tpot_ms_mean, pred.e2e_s_mean
    if ttft0 is None or e2e0 is None or e2e0 <= 0:
        return
    first = ttft0 / 1e3
    decode = max(e2e0 - first, 0.0)

    def e2e_at(a: float, b: float) -> float:
        return first * math.exp(a) + decode * math.exp(b)

    fe = e2e_at(pt, pp) / e2e0
    _scale(pred, _TTFT, math.exp(pt))
    _scale(pred, _TPOT, math.exp(pp))
    if pred.tok_s_per_user:
        pred.tok_s_per_user /= math.exp(pp)
    _scale(pred, _E2E, fe)
    pred.ttft_ms_mean_lo, pred.ttft_ms_mean_hi = ttft0 * math.exp(lo_t), ttft0 * math.exp(hi_t)
    if tpot0 is not None:
        pred.tpot_ms_mean_lo, pred.tpot_ms_mean_hi = tpot0 * math.exp(lo_p), tpot0 * math.exp(hi_p)
    e2e_lo, e2e_hi = e2e_at(lo_t, lo_p), e2e_at(hi_t, hi_p)
    pred.e2e_s_mean_lo, pred.e2e_s_mean_hi = e2e_lo, e2e_hi
    if out0 is None:
        return
    if workload.scenario == "concurrency":
        _scale(pred, _RATES, 1.0 / fe)
        pred.output_tok_s_lo, pred.output_tok_s_hi = out0 * e2e0 / e2e_hi, out0 * e2e0 / e2e_lo
        return
    # rate: the arrival rate sets throughput unless the system saturates
    offered = workload.rate  # requests/s offered to the whole system
    rps = pred.requests_per_s or 0.0
    saturated = rps > 0 and rps < 0.97 * offered
    if saturated:
        factor = min(1.0 / fe, offered / rps)
        _scale(pred, _RATES, factor)
        pred.output_tok_s_lo = out0 * min(e2e0 / e2e_hi, offered / rps)
        pred.output_tok_s_hi = out0 * min(e2e0 / e2e_lo, offered / rps)
    else:
        pred.output_tok_s_lo = pred.output_tok_s_hi = out0


def physics_band(families: tuple[str, ...], kind: str | None = None) -> dict[str, Residual] | None:
    """Residuals that keep the physics values and carry the physics-only band (None when a family
    has none, or, with `kind`, when no measured run of that device kind gave one)."""
    from . import store

    out: dict[str, Residual] = {}
    for fam in families:
        band = store.fallback_band(fam, kind)
        if band is None:
            return None
        out[fam] = (0.0, band[0], band[1])
    return out


def _kind_unmeasured(kind: str, families: tuple[str, ...]) -> bool:
    """No measured run of this device kind gave these families a band, though other kinds did."""
    return physics_band(families, kind) is None and physics_band(families) is not None


def _wide_band(families: tuple[str, ...]) -> tuple[dict[str, Residual], str] | None:
    """The wide band an unmeasured device kind carries (residuals that keep the physics values),
    and the words that say what it is; None where the models ship none."""
    from . import store

    out: dict[str, Residual] = {}
    devices = []
    for fam in families:
        band = store.unmeasured_band(fam)
        if band is None:
            return None
        out[fam] = (0.0, band[0], band[1])
        devices.append(band[2])
    return out, f"how far physics missed {min(devices)} measured devices"


def _mark_unmeasured(
    pred: Prediction, kind: str, families: tuple[str, ...]
) -> dict[str, Residual] | None:
    """Say (warning and `rests_on`) that no run of this device kind was measured, and return the
    wide band such a prediction carries: a CUDA band would claim an accuracy nobody measured on
    this kind, so it carries how far physics missed every measured device instead."""
    from . import store

    wide = _wide_band(families)
    store.warn(
        f"no measured {kind} runs of this kind of workload: the prediction is physics only, "
        + (f"its band is {wide[1]}" if wide else "with no error band")
    )
    pred.rests_on = f"physics only: no measured {kind} runs of this kind of workload" + (
        f" (wide band: {wide[1]})" if wide else ""
    )
    return wide[0] if wide else None


_LABEL = {"ttft": "TTFT", "tpot": "TPOT", "e2e": "E2E"}


def rests_on(
    families: Sequence[str], learned: Mapping[str, Residual], pre: store.ModelSet, kind: str
) -> str:
    """Which metrics the pretrained models moved for this case, and on how much measured evidence
    they were fitted ("E2E calibrated on 1,234 measured runs of 9 models (cuda); TTFT, TPOT
    physics"); a correction its guards shrank to nothing for this case's segment is physics."""
    moved = [f for f in families if f in learned and learned[f][0] != 0.0]
    parts: list[str] = []
    for fam in moved:
        m = pre.families[fam]
        parts.append(
            f"{_LABEL.get(fam, fam)} calibrated on {m.rows:,} measured runs of {m.models} "
            f"models ({kind})"
        )
    physics = [f for f in families if f not in moved]
    if physics and moved:
        parts.append(f"{', '.join(_LABEL.get(f, f) for f in physics)} physics")
    return "; ".join(parts) or physics_only(families)


def physics_only(families: Sequence[str]) -> str:
    """Why a prediction of a calibrated hardware kind is physics only: validation kept it so."""
    metrics = ", ".join(_LABEL.get(f, f) for f in families)
    return f"physics only ({metrics}: no learned correction beat physics in validation)"


def mark_uncalibrated_engine(resolved: Resolved, workload: Workload, pred: Prediction) -> None:
    """An engine no calibration was trained on (llama.cpp, DeepSpeed) stays physics only, labelled
    so; on a device kind nobody measured it carries that kind's wide band, as every engine there
    does (where runs of the kind were measured, they were of other engines: no band)."""
    engine = resolved.engine.id
    pred.calibration = f"physics only ({engine} is not calibrated)"
    pred.rests_on = f"physics only: no measured {engine} runs were calibrated on"
    families = SCENARIO_FAMILIES.get(workload.scenario)
    if not families or not pred.fits or pred.ttft_ms_mean is None:
        return
    wide = _wide_band(families) if _kind_unmeasured(resolved.device.kind, families) else None
    if wide:
        rescale(pred, workload, wide[0])
        pred.rests_on += f" (wide band: {wide[1]})"


def apply_calibration(resolved: Resolved, workload: Workload, pred: Prediction) -> None:
    """Calibrate `pred` in place (called by budsim.core.predict.predict for fitting deployments)."""
    apply_calibration_many([(resolved, pred)], workload)


def apply_calibration_many(
    items: Sequence[tuple[Resolved, Prediction]], workload: Workload
) -> None:
    """Calibrate several predictions of one workload in place, with one forest evaluation per
    pretrained model set (predict_many's path; a batch costs little more than one case)."""
    import numpy as np

    from . import store

    families = SCENARIO_FAMILIES.get(workload.scenario)
    if not families:
        return
    todo = [(r, p) for r, p in items if p.fits and p.ttft_ms_mean is not None]
    # the learned residuals, batched per pretrained model set
    learned: list[dict[str, Residual]] = [{} for _ in todo]
    features: list[np.ndarray | None] = [None] * len(todo)
    names: list[list[str]] = [[] for _ in todo]
    groups: dict[int, list[int]] = {}
    sets: dict[int, store.ModelSet] = {}
    # looked up once per batch (a search's batch shares a few kinds and deployments' names)
    pretrained_of: dict[str, store.ModelSet | None] = {}
    bands_of: dict[tuple[str, tuple[str, ...]], tuple[dict[str, Residual] | None, bool]] = {}
    user_of: dict[tuple[str, str, str, str], store.ModelSet | None] = {}
    for k, (resolved, pred) in enumerate(todo):
        pred.rests_on = physics_only(families)
        kind = resolved.device.kind
        if kind not in pretrained_of:
            pretrained_of[kind] = store.pretrained(kind, families)
        pre = pretrained_of[kind]
        if pre is not None and pre.covers(families):
            features[k] = feature_vector(resolved, workload, pred)
            groups.setdefault(id(pre), []).append(k)
            sets[id(pre)] = pre
    for key, members in groups.items():
        pre = sets[key]
        X = np.vstack([x for k in members if (x := features[k]) is not None])
        rows = pre.predict_rows(families, X, [todo[k][0].device.id for k in members])
        for k, res in zip(members, rows, strict=True):
            learned[k] = res
            names[k].append(pre.name)
            pred = todo[k][1]
            pred.rests_on = rests_on(families, res, pre, todo[k][0].device.kind)
    for k, (resolved, pred) in enumerate(todo):
        res = learned[k]
        names_key = (
            resolved.device.id,
            resolved.engine.id,
            resolved.model.name,
            resolved.deployment.model,
        )
        if names_key not in user_of:
            user_of[names_key] = store.user_calibration(resolved)
        user = user_of[names_key]
        label = "physics"
        if len(res) < len(families):
            missing = tuple(f for f in families if f not in res)
            kind = resolved.device.kind
            if (kind, missing) not in bands_of:
                bands_of[kind, missing] = (
                    physics_band(missing, kind),
                    _kind_unmeasured(kind, missing),
                )
            fallback, unmeasured = bands_of[kind, missing]
            if unmeasured:
                label = pred.calibration = f"physics (no measured {kind} runs)"
                fallback = _mark_unmeasured(pred, kind, missing)
            if fallback is None and not user:
                continue
            res.update(fallback or {fam: (0.0, 0.0, 0.0) for fam in families if fam not in res})
        if user is not None and user.covers(families):
            x = features[k]
            if x is None:
                x = feature_vector(resolved, workload, pred)
            for fam, (dp, dlo, dhi) in user.predict(families, x).items():
                p, lo, hi = res[fam]
                res[fam] = (p + dp, lo + dlo, hi + dhi)
            names[k].append(f"user:{user.name}")
            base = "physics" if pred.rests_on.startswith("physics only") else pred.rests_on
            pred.rests_on = f"{base}; then your calibration {user.name}"
        rescale(pred, workload, res)
        pred.calibration = "+".join(names[k]) if names[k] else label
