"""Training the residual models: `train(data, out, seed)` writes pretrained/ deterministically.

Per hardware kind (cuda, rocm, hpu, cpu) and metric family (ttft, tpot, e2e) with enough measured
rows, two XGBoost boosters learn r = log(measured / physics):

- a point model of r + tilt * log(physics) with a pseudo-Huber loss (HUBER_SLOPE): quadratic for
  residuals within about 10 %, linear beyond, so a few measurements far off the rest (a campaign
  with settings the data does not record) pull it less than squared error would, and the accuracy
  that counts is a median error. (An absolute-error loss fits the median outright, but XGBoost
  re-sets its leaves after growing each tree, which can break the monotone constraints.);
- a band model (quantile loss, alpha 0.1 and 0.9) of the same target.

`tilt` (0 <= tilt <= 1) lets the learned correction flatten a physics curve that is too steep while
keeping every feature that grows with load or input length under a non-decreasing constraint, so the
calibrated value, (1 - shrink * tilt) * log(physics) + shrink * model(x), stays monotone whenever the
physics is.

Guards, decided on grouped (leave-models-out) cross-validation inside the training data:
- shrink: the point residual is multiplied by the s in SHRINKS that leaves no dataset with a
  worse median error than physics alone, preferring the s with the lowest overall median error; when
  none does, the family stays physics-only. The shrink is chosen separately per guard segment
  (`features.SEGMENTS`: the version status, i.e. rows of a named engine and version, of a named
  engine without its version, of an unnamed engine, times the architecture class, dense or MoE),
  so that old measurements of unknown software can be corrected strongly without moving
  predictions for current releases, and a correction learned on one architecture class reaches
  the other only where its own rows support it; a segment with fewer than MIN_ROWS rows with a
  target in the training data (the bar a whole family must pass) gets shrink 0 (physics, with the
  physics-only band). Inside a segment a hardware with HW_MIN_ROWS rows may get its own shrink;
  the tree settings (HP_GRID), the feature set (FEATURE_SETS) and the per-hardware split are
  chosen by the lowest guarded out-of-fold median error;
- band: the quantile band is widened (or narrowed) by a conformal offset so that 80 % of the
  out-of-fold residuals fall inside it.

Determinism: inputs sorted, nthread=1, fixed seed; the same data and seed give byte-identical files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import platform
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budsim import __version__
from budsim.core import frontend
from budsim.core.calibration.features import (
    FAMILIES,
    FAMILY_MONOTONE_UP,
    FAMILY_PHYSICS_FEATURE,
    FEATURE_INDEX,
    FEATURES,
    MODEL_FACTS,
    SCENARIO_FAMILIES,
    SEGMENTS,
    VERSION_KNOWN,
    VERSION_SEGMENTS,
    monotone_vector,
    segment,
)
from budsim.core.calibration.store import MANIFEST_FORMAT

from .frontend_fit import fit_front_end
from .samples import Sample, SampleSet, data_files, physics_fingerprint

if TYPE_CHECKING:
    import numpy as np

KINDS: tuple[str, ...] = ("cuda", "rocm", "hpu", "cpu")
BASE_PARAMS: dict[str, Any] = {
    "tree_method": "hist",
    "max_depth": 4,
    "eta": 0.05,
    "min_child_weight": 10.0,
    "subsample": 0.8,
    "colsample_bytree": 0.8,
    "reg_lambda": 5.0,
    "max_bin": 256,
}
ROUNDS = 200
HUBER_SLOPE = 0.1  # log units: residuals beyond ~10 % count linearly in the point model's loss
# Candidate tree settings (name, changes to BASE_PARAMS, rounds); each family uses the one with the
# lowest guarded out-of-fold median error in its own inner grouped CV (first wins ties).
HP_GRID: tuple[tuple[str, dict[str, Any], int], ...] = (
    ("d4", {}, ROUNDS),
    ("d6", {"max_depth": 6, "min_child_weight": 5.0}, ROUNDS),
    ("d5", {"max_depth": 5, "reg_lambda": 1.0}, 300),
)
_HP = {name: (changes, rounds) for name, changes, rounds in HP_GRID}
# Feature sets (name, features left out), chosen together with the tree settings by the inner CV:
# "all", or without the model facts, which with a few models per family identify a model rather
# than describe it (features.MODEL_FACTS). A left-out feature is zeroed for the fit, so no tree
# splits on it and the feature vector stays the same for every set.
FEATURE_SETS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("all", ()),
    ("no_model_facts", MODEL_FACTS),
)
_FS = dict(FEATURE_SETS)
TILT: dict[str, float] = {"ttft": 0.5, "tpot": 0.0, "e2e": 0.0}
ALPHAS = (0.1, 0.9)
COVERAGE = 0.8
SHRINKS: tuple[float, ...] = (1.0, 0.75, 0.5, 0.25)
FOLDS = 5
MIN_ROWS = 100  # rows with a target, per kind and family
MIN_MODELS = 3  # distinct models, so that grouped cross-validation means something
GUARD_MIN_ROWS = 20  # datasets smaller than this are not used to veto a calibration
PHYSICS_BAND_WHEN_UNCORRECTED = True  # rows a guard leaves at shrink 0 get the physics-only band
HW_MIN_ROWS = 100  # a hardware gets its own shrink in a segment with this many rows (and models)
UNMEASURED_MIN_ROWS = 30  # a device's physics band counts towards the unmeasured band from here


def hyperparameters() -> dict[str, Any]:
    return {
        "base": dict(BASE_PARAMS),
        "point_objective": f"reg:pseudohubererror, huber_slope {HUBER_SLOPE}, base_score median",
        "rounds": ROUNDS,
        "grid": {name: {**changes, "rounds": rounds} for name, changes, rounds in HP_GRID},
        "feature_sets": {name: list(left_out) for name, left_out in FEATURE_SETS},
        "grid_choice": "per kind and family: lowest guarded inner grouped-CV median APE, over "
        "the settings, the feature sets and with or without per-hardware shrinks",
        "tilt": dict(TILT),
        "quantile_alpha": list(ALPHAS),
        "coverage": COVERAGE,
        "shrink_grid": list(SHRINKS),
        "shrink_segments": "per e_version_status, m_is_moe and engine: " + ", ".join(SEGMENTS),
        "shrink_per_hardware": f"inside a segment, for a hardware with >= {HW_MIN_ROWS} rows "
        f"and >= {MIN_MODELS} models",
        "folds": FOLDS,
        "min_rows": MIN_ROWS,
        "min_models": MIN_MODELS,
        "guard_min_rows": GUARD_MIN_ROWS,
        "sample_weight": "1/sqrt(rows of the row's dataset), mean 1",
        "residual_clip": 3.0,
    }


# ------------------------------------------------------------------------------------------- data
@dataclass
class FamilyData:
    """Rows of one kind whose scenario uses `family` (targets NaN where the row has none)."""

    family: str
    samples: list[Sample]
    X: np.ndarray
    y: np.ndarray
    u: np.ndarray  # log(physics value) the residual is relative to
    groups: np.ndarray  # the model's architecture group (Sample.group)
    sources: np.ndarray
    hardware: np.ndarray
    engines: np.ndarray
    # per row: (dataset|column, log(measured / physics), +1 latency / -1 throughput) of every
    # measured column this family's residual moves
    columns: list[list[tuple[str, float, float]]]

    @property
    def has_target(self) -> np.ndarray:
        import numpy as np

        return ~np.isnan(self.y)


def family_data(samples: list[Sample], kind: str | None, family: str) -> FamilyData:
    import numpy as np

    rows = [
        s
        for s in samples
        if (kind is None or s.kind == kind) and family in SCENARIO_FAMILIES.get(s.scenario, ())
    ]
    X = np.asarray([s.x for s in rows], dtype=np.float32).reshape(len(rows), len(FEATURES))
    y = np.asarray([s.residuals.get(family, math.nan) for s in rows], dtype=np.float64)
    u = X[:, FEATURE_INDEX[FAMILY_PHYSICS_FEATURE[family]]].astype(np.float64)
    own = {"ttft": ("ttft_ms",), "tpot": ("tpot_ms",)}.get(family)
    columns = []
    for s in rows:
        entries = []
        for column, key, measured in s.targets:
            if own is not None and column not in own:
                continue
            physics = getattr(s.pred, key, None)
            if not physics or physics <= 0:
                continue
            sign = -1.0 if column.endswith("tok_s") else 1.0
            entries.append((f"{s.source}|{column}", math.log(measured / physics), sign))
        columns.append(entries)
    return FamilyData(
        family=family,
        samples=rows,
        X=X,
        y=y,
        u=u,
        groups=np.asarray([s.group for s in rows], dtype=object),
        sources=np.asarray([s.source for s in rows], dtype=object),
        hardware=np.asarray([s.hardware for s in rows], dtype=object),
        engines=np.asarray([s.engine for s in rows], dtype=object),
        columns=columns,
    )


def sample_weights(sources: np.ndarray) -> np.ndarray:
    import numpy as np

    names, inverse, counts = np.unique(sources, return_inverse=True, return_counts=True)
    w = 1.0 / np.sqrt(counts[inverse].astype(np.float64))
    return w / w.mean() if len(w) else w


# ------------------------------------------------------------------------------------------- fits
def _params(family: str, seed: int, nthread: int, hp: str = HP_GRID[0][0]) -> dict[str, Any]:
    mono = ",".join(str(v) for v in monotone_vector(family))
    return {
        **BASE_PARAMS,
        **_HP[hp][0],
        "seed": seed,
        "nthread": nthread,
        "monotone_constraints": f"({mono})",
    }


def fit_boosters(
    X: np.ndarray,
    y: np.ndarray,
    u: np.ndarray,
    w: np.ndarray,
    family: str,
    seed: int,
    nthread: int = 1,
    hp: str = HP_GRID[0][0],
    fs: str = FEATURE_SETS[0][0],
    *,
    point: bool = True,
    band: bool = True,
) -> tuple[Any, Any]:
    """(point booster, band booster) on the tilted target (None for one not asked for), using
    only the features of feature set `fs`."""
    import numpy as np
    import xgboost as xgb

    target = y + TILT[family] * u
    if _FS[fs]:
        X = X.copy()
        X[:, [FEATURE_INDEX[name] for name in _FS[fs]]] = 0.0
    dm = xgb.DMatrix(X, label=target, weight=w, feature_names=list(FEATURES))
    params = _params(family, seed, nthread, hp)
    rounds = _HP[hp][1]
    # pseudo-Huber (see the module docstring), started from the median: its bounded gradient
    # would take many rounds to walk there from XGBoost's default start
    robust = {
        "objective": "reg:pseudohubererror",
        "huber_slope": HUBER_SLOPE,
        "base_score": float(np.median(target)) if len(target) else 0.0,
    }
    p = xgb.train({**params, **robust}, dm, rounds) if point else None
    b = (
        xgb.train(
            {**params, "objective": "reg:quantileerror", "quantile_alpha": list(ALPHAS)},
            dm,
            rounds,
        )
        if band
        else None
    )
    return p, b


def raw_predict(point: Any, band: Any, X: np.ndarray) -> np.ndarray:
    """(n, 3): point, q_lo, q_hi on the tilted scale (NaN for a booster that is None)."""
    import numpy as np
    import xgboost as xgb

    if len(X) == 0:
        return np.zeros((0, 3))
    dm = xgb.DMatrix(X, feature_names=list(FEATURES))
    p = np.full((len(X), 1), np.nan)
    q = np.full((len(X), 2), np.nan)
    if point is not None:
        p = np.asarray(point.predict(dm), dtype=np.float64).reshape(-1, 1)
    if band is not None:
        q = np.asarray(band.predict(dm), dtype=np.float64).reshape(-1, 2)
    return np.hstack([p, q])


def residuals_from_raw(
    raw: np.ndarray, u: np.ndarray, family: str, shrink: float | np.ndarray, adjust: float
) -> np.ndarray:
    """(n, 3): point, lo, hi of log(measured/physics), as `store.ModelSet.predict` computes them
    (`shrink`: one factor, or one per row)."""
    import numpy as np

    tilt = TILT[family]
    p = shrink * (raw[:, 0] - tilt * u)
    lo = raw[:, 1] - tilt * u - adjust
    hi = raw[:, 2] - tilt * u + adjust
    return np.column_stack([p, np.minimum(lo, p), np.maximum(hi, p)])


def ape(residual_error: np.ndarray) -> np.ndarray:
    """|predicted - measured| / measured in % from log(predicted / measured)."""
    import numpy as np

    return np.abs(np.expm1(residual_error)) * 100.0


def choose_shrink(
    fd: FamilyData, rows: np.ndarray, r: np.ndarray
) -> tuple[float, dict[str, dict[str, float]]]:
    """The shrink with the lowest median latency error among those that leave every dataset and
    measured column, and every model group's measured column, (with GUARD_MIN_ROWS rows or more)
    at least as accurate as physics; 0 = none.

    The per-model guard is what the product promises: a correction is for models it never saw,
    and one that helps some held-out models while making another worse (a campaign's quirk
    learned on one engine and carried to the next model) is not trusted.

    `r` holds out-of-fold residual predictions for `rows` (NaN where no fold predicted them)."""
    import numpy as np

    label, model_label, y, sign, pos = [], [], [], [], []
    for k, i in enumerate(rows):
        if not math.isfinite(r[k]):
            continue
        for name, yc, sg in fd.columns[i]:
            label.append(name)
            model_label.append(f"{fd.groups[i]}|{name.split('|')[-1]}")
            y.append(yc)
            sign.append(sg)
            pos.append(k)
    labels = np.asarray(label, dtype=object)
    model_labels = np.asarray(model_label, dtype=object)
    ya, sa, rp = np.asarray(y), np.asarray(sign), r[np.asarray(pos, dtype=np.intp)]
    guarded = [g for g in sorted(set(label)) if (labels == g).sum() >= GUARD_MIN_ROWS]
    per_model = [g for g in sorted(set(model_label)) if (model_labels == g).sum() >= GUARD_MIN_ROWS]
    model_physics = {g: float(np.median(ape(-ya[model_labels == g]))) for g in per_model}
    # score on latency columns; rows that report only a throughput (max-throughput runs) when
    # there are no latency columns at all
    latency = sa > 0 if (sa > 0).any() else np.ones(len(sa), dtype=bool)
    physics = {g: float(np.median(ape(-ya[labels == g]))) for g in guarded}
    table: dict[str, dict[str, float]] = {
        "physics": {**{g: round(v, 2) for g, v in physics.items()}, "all": _med(ape(-ya[latency]))}
    }
    best, best_score = 0.0, _med(ape(-ya[latency]))
    for s in SHRINKS:
        err = ape(sa * s * rp - ya)
        row = {g: round(float(np.median(err[labels == g])), 2) for g in guarded}
        ok = all(float(np.median(err[labels == g])) <= physics[g] for g in guarded) and all(
            float(np.median(err[model_labels == g])) <= model_physics[g] for g in per_model
        )
        score = _med(err[latency])
        table[str(s)] = {**row, "all": score, "allowed": float(ok)}
        if ok and score < best_score:
            best, best_score = s, score
    return best, table


def row_segments(fd: FamilyData, rows: np.ndarray) -> np.ndarray:
    """The guard segment of each of `rows`."""
    import numpy as np

    status = fd.X[rows, FEATURE_INDEX["e_version_status"]]
    moe = fd.X[rows, FEATURE_INDEX["m_is_moe"]]
    return np.asarray(
        [segment(v, m, engine) for v, m, engine in zip(status, moe, fd.engines[rows], strict=True)],
        dtype=object,
    )


def choose_segment_shrinks(
    fd: FamilyData, rows: np.ndarray, r: np.ndarray, *, per_hardware: bool = True
) -> tuple[dict[str, float], dict[str, Any]]:
    """`choose_shrink` per guard segment ("versioned:moe", ...) and, with `per_hardware`, inside
    a segment per hardware with HW_MIN_ROWS rows and MIN_MODELS models ("versioned:moe|b200",
    ...). A segment with fewer than MIN_ROWS rows with a target, or rows of fewer than MIN_MODELS
    architecture groups, gets 0 (physics): with one or two groups the inner cross-validation
    cannot show that a correction carries to models it never saw (the TRT-LLM segments, one group
    each, made grouped-CV TPOT worse: 13.0 -> 14.0 %). A hardware without its own entry uses its
    segment's."""
    segs = row_segments(fd, rows)
    groups = fd.hardware[rows] if per_hardware else None
    has_t = fd.has_target[rows]
    shrinks: dict[str, float] = {}
    tables: dict[str, Any] = {}
    for name in SEGMENTS:
        mask = segs == name
        n = int((has_t & mask).sum())
        if n == 0:
            continue
        models = len(set(fd.groups[rows[has_t & mask]].tolist()))
        if n < MIN_ROWS or models < MIN_MODELS:  # too little evidence for a correction of its own
            shrinks[name] = 0.0
            continue
        shrinks[name], tables[name] = choose_shrink(fd, rows[mask], r[mask])
        for value in sorted(set(groups[mask].tolist())) if groups is not None else ():
            sub = mask & (groups == value)
            models = len(set(fd.groups[rows[sub & has_t]].tolist()))
            if int((has_t & sub).sum()) >= HW_MIN_ROWS and models >= MIN_MODELS:
                key = f"{name}|{value}"
                shrinks[key], tables[key] = choose_shrink(fd, rows[sub], r[sub])
    return shrinks, tables


def shrink_vector(
    shrinks: dict[str, float], segments: np.ndarray, hardware: np.ndarray
) -> np.ndarray:
    """Per row: the shrink of (segment, hardware), else of the segment, else 0 (physics); as
    `store.ModelSet` looks it up."""
    import numpy as np

    return np.asarray(
        [
            shrinks.get(f"{seg}|{device}", shrinks.get(seg, 0.0))
            for seg, device in zip(segments, hardware, strict=True)
        ],
        dtype=np.float64,
    )


def _med(values: np.ndarray) -> float:
    import numpy as np

    return round(float(np.median(values)), 2) if len(values) else math.nan


def conformal_adjust(y: np.ndarray, p: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Offset that makes [lo - a, hi + a] hold COVERAGE of the residuals (split-conformal CQR)."""
    import numpy as np

    lo, hi = np.minimum(lo, p), np.maximum(hi, p)
    scores = np.maximum(lo - y, y - hi)
    n = len(scores)
    if n == 0:
        return 0.0
    level = min(1.0, math.ceil((n + 1) * COVERAGE) / n)
    return float(np.quantile(scores, level, method="higher"))


def group_folds(groups: np.ndarray, folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import GroupKFold

    n_groups = len(set(groups.tolist()))
    k = min(folds, n_groups)
    if k < 2:
        return []
    import numpy as np

    idx = np.arange(len(groups))
    return list(GroupKFold(n_splits=k).split(idx, groups=groups))


@dataclass
class FamilyFit:
    family: str
    status: str  # calibrated | physics
    reason: str = ""
    point: Any = None
    band: Any = None
    shrink: float = 0.0  # of the main "versioned" segment (predictions for a named, current engine)
    segment_shrink: dict[str, float] = field(default_factory=dict)  # per guard segment
    band_adjust: float = 0.0
    hp: str = HP_GRID[0][0]  # the HP_GRID entry chosen by inner CV
    fs: str = FEATURE_SETS[0][0]  # the FEATURE_SETS entry chosen by inner CV
    fallback: tuple[float, float] = (0.0, 0.0)
    rows: int = 0
    models: int = 0
    cv: dict[str, Any] = field(default_factory=dict)

    def residuals(self, fd: FamilyData, idx: np.ndarray) -> np.ndarray:
        """(len(idx), 3) residual predictions for rows `idx` of `fd`."""
        import numpy as np

        if self.status != "calibrated":
            out = np.zeros((len(idx), 3))
            out[:, 1], out[:, 2] = self.fallback
            return out
        raw = raw_predict(self.point, self.band, fd.X[idx])
        shrink = shrink_vector(self.segment_shrink, row_segments(fd, idx), fd.hardware[idx])
        res = residuals_from_raw(raw, fd.u[idx], self.family, shrink, self.band_adjust)
        return with_physics_band(res, shrink, self.fallback)


def with_physics_band(
    res: np.ndarray, shrink: np.ndarray, fallback: tuple[float, float]
) -> np.ndarray:
    """Rows the guards leave physics-only (shrink 0) carry the physics-only band, as a family
    without a model does (the learned band describes the rows that are corrected)."""
    if not PHYSICS_BAND_WHEN_UNCORRECTED:
        return res
    off = shrink == 0.0
    res[off, 0] = 0.0
    res[off, 1], res[off, 2] = fallback
    return res


def fallback_band(y: np.ndarray) -> tuple[float, float]:
    import numpy as np

    y = y[~np.isnan(y)]
    if len(y) == 0:
        return (0.0, 0.0)
    lo, hi = np.quantile(y, [ALPHAS[0], ALPHAS[1]])
    return (round(min(float(lo), 0.0), 6), round(max(float(hi), 0.0), 6))


def unmeasured_band(y: np.ndarray, hardware: np.ndarray) -> tuple[tuple[float, float], int]:
    """The band of a family on a device kind nobody measured (Gaudi, Xeon; ROCm closed loops),
    and how many devices it rests on: the envelope of the per-device physics-only 80 % bands
    (devices with UNMEASURED_MIN_ROWS rows). Physics may miss an unseen device as far as it missed
    the worst measured one; pooling the residuals instead would average a new device's bias away
    (`benchmarks/unmeasured_band.py` measures both, each device held out in turn)."""
    import numpy as np

    ok = ~np.isnan(y)
    y, hardware = y[ok], hardware[ok]
    bands = [
        fallback_band(y[hardware == device])
        for device in sorted(set(hardware.tolist()))
        if int((hardware == device).sum()) >= UNMEASURED_MIN_ROWS
    ]
    if not bands:
        return (0.0, 0.0), 0
    return (min(lo for lo, _ in bands), max(hi for _, hi in bands)), len(bands)


def fit_family(
    fd: FamilyData,
    rows: np.ndarray,
    seed: int,
    *,
    nthread: int = 1,
    folds: int = FOLDS,
    final: bool = True,
    fallback: tuple[float, float] | None = None,
) -> FamilyFit:
    """Fit one family on rows `rows` of `fd`, with the guards decided by inner grouped CV."""
    import numpy as np

    t = rows[fd.has_target[rows]]
    fb = fallback if fallback is not None else fallback_band(fd.y[t])
    fit = FamilyFit(fd.family, "physics", fallback=fb)
    fit.rows = len(t)
    fit.models = len(set(fd.groups[t].tolist()))
    if fit.rows < MIN_ROWS or fit.models < MIN_MODELS:
        fit.reason = f"too little data ({fit.rows} rows, {fit.models} models)"
        return fit
    # out-of-fold raw predictions for every applicable row (targets or not), models held out
    splits = group_folds(fd.groups[rows], folds)

    def out_of_fold(hp: str, fs: str, point: bool, band: bool) -> np.ndarray:
        raw = np.full((len(rows), 3), np.nan)
        for tr, te in splits:
            train_rows = rows[tr][fd.has_target[rows[tr]]]
            if len(train_rows) < MIN_MODELS:
                continue
            p, b = fit_boosters(
                fd.X[train_rows],
                fd.y[train_rows],
                fd.u[train_rows],
                sample_weights(fd.sources[train_rows]),
                fd.family,
                seed,
                nthread,
                hp,
                fs,
                point=point,
                band=band,
            )
            raw[te] = raw_predict(p, b, fd.X[rows[te]])
        return raw

    segments = row_segments(fd, rows)
    has_y = fd.has_target[rows]
    best: tuple[float, str, str, np.ndarray, dict[str, float], dict[str, Any]] | None = None
    grid: dict[str, float] = {}
    for fs, _ in FEATURE_SETS:
        for hp, _, _ in HP_GRID:
            raw_hp = out_of_fold(hp, fs, True, False)
            r_hp = raw_hp[:, 0] - TILT[fd.family] * fd.u[rows]
            ok = has_y & np.isfinite(r_hp)
            for per_hw in (False, True):
                shrinks_hp, table_hp = choose_segment_shrinks(fd, rows, r_hp, per_hardware=per_hw)
                sv = shrink_vector(shrinks_hp, segments[ok], fd.hardware[rows][ok])
                err = ape(sv * r_hp[ok] - fd.y[rows][ok])
                score = float(np.median(err)) if ok.any() else math.inf
                grid[f"{hp}{'+hw' if per_hw else ''}|{fs}"] = round(score, 3)
                if any(shrinks_hp.values()) and (best is None or score < best[0]):
                    best = (score, hp, fs, raw_hp, shrinks_hp, table_hp)
    if best is None:
        fit.cv = {"grid": grid}
        fit.reason = "no shrink keeps every dataset at least as accurate as physics"
        return fit
    _, fit.hp, fit.fs, raw, shrinks, table = best
    fit.cv = {"grid": grid, "shrink_search": table}
    raw[:, 1:] = out_of_fold(fit.hp, fit.fs, False, True)[:, 1:]
    fit.segment_shrink = shrinks
    has_t = fd.has_target[rows] & np.isfinite(raw[:, 0])
    y, u = fd.y[rows][has_t], fd.u[rows][has_t]
    shrink = shrink_vector(shrinks, segments[has_t], fd.hardware[rows][has_t])
    res = residuals_from_raw(raw[has_t], u, fd.family, shrink, 0.0)
    # the learned band is calibrated on the rows it is used for (those with a correction)
    on = shrink > 0 if PHYSICS_BAND_WHEN_UNCORRECTED else np.ones(len(shrink), dtype=bool)
    adjust = conformal_adjust(y[on], res[on, 0], res[on, 1], res[on, 2])
    res = residuals_from_raw(raw[has_t], u, fd.family, shrink, adjust)
    res = with_physics_band(res, shrink, fb)
    fit.cv.update(_scores(y, res, fd.sources[rows][has_t]))
    fit.status, fit.band_adjust = "calibrated", round(adjust, 6)
    fit.shrink = _main_versioned_shrink(shrinks, segments[has_y])
    if final:
        fit.point, fit.band = fit_boosters(
            fd.X[t],
            fd.y[t],
            fd.u[t],
            sample_weights(fd.sources[t]),
            fd.family,
            seed,
            nthread,
            fit.hp,
            fit.fs,
        )
    return fit


def _main_versioned_shrink(shrinks: dict[str, float], segments: np.ndarray) -> float:
    """The shrink of the versioned segment with the most rows (the manifest's `shrink`)."""
    versioned = [s for s in SEGMENTS if s.startswith(VERSION_SEGMENTS[VERSION_KNOWN] + ":")]
    main = max(versioned, key=lambda s: (int((segments == s).sum()), s))
    return shrinks.get(main, 0.0)


def _scores(y: np.ndarray, res: np.ndarray, sources: np.ndarray) -> dict[str, Any]:
    import numpy as np

    out: dict[str, Any] = {}
    for src in ["all", *sorted(set(sources.tolist()))]:
        mask = np.ones(len(y), dtype=bool) if src == "all" else sources == src
        yy, rr = y[mask], res[mask]
        out[src] = {
            "n": int(mask.sum()),
            "physics_median_ape": round(float(np.median(ape(-yy))), 2),
            "calibrated_median_ape": round(float(np.median(ape(rr[:, 0] - yy))), 2),
            "band_coverage": round(float(np.mean((yy >= rr[:, 1]) & (yy <= rr[:, 2]))), 3),
        }
    return out


# ------------------------------------------------------------------------------------------- train
def library_versions() -> dict[str, str]:
    import numpy
    import pandas
    import sklearn
    import xgboost

    return {
        "python": platform.python_version(),
        "xgboost": xgboost.__version__,
        "numpy": numpy.__version__,
        "scikit-learn": sklearn.__version__,
        "pandas": pandas.__version__,
    }


def load_samples(data: Path | None, sources: list[str] | None = None) -> SampleSet:
    from .datasets import load_measurements
    from .samples import build_samples

    rows = load_measurements(data, sources)
    return build_samples(rows.to_dict("records"))


def _json_bytes(obj: Any) -> bytes:
    return (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8")


def train(
    data: Path | None,
    out: Path,
    seed: int = 0,
    *,
    sample_set: SampleSet | None = None,
    log: Any = None,
) -> dict[str, Any]:
    """Fit every kind and family, write `out`/manifest.json and the model files; return the manifest."""
    import numpy as np

    from .datasets import data_dir

    say = log or (lambda _msg: None)
    ss = sample_set if sample_set is not None else load_samples(data)
    say(f"{len(ss.samples)} simulated rows")
    root = data if data is not None else data_dir()
    out.mkdir(parents=True, exist_ok=True)
    # the physics' one end-to-end constant first: every residual is relative to it
    samples, fe = fit_front_end(ss.samples)
    say(f"front end: {fe.fixed_ms:g} ms fixed ({fe.source})")
    fe_raw = _json_bytes(fe.to_dict())
    (out / frontend.FILE_NAME).write_bytes(fe_raw)
    ss = dataclasses.replace(ss, samples=samples)
    everything = {fam: family_data(ss.samples, None, fam) for fam in FAMILIES}
    fallback = {fam: fallback_band(everything[fam].y) for fam in FAMILIES}
    unmeasured = {
        fam: unmeasured_band(everything[fam].y, everything[fam].hardware) for fam in FAMILIES
    }
    kinds: dict[str, Any] = {}
    written: set[str] = set()
    for kind in KINDS:
        fams: dict[str, Any] = {}
        hashes: list[str] = []
        for fam in FAMILIES:
            fd = family_data(ss.samples, kind, fam)
            fit = fit_family(fd, np.arange(len(fd.y)), seed, fallback=fallback[fam])
            say(f"{kind} {fam}: {fit.status} {fit.reason}".rstrip())
            entry: dict[str, Any] = {
                "status": fit.status,
                "rows": fit.rows,
                "models": fit.models,
                "monotone_up": list(FAMILY_MONOTONE_UP[fam]),
                "physics_feature": FAMILY_PHYSICS_FEATURE[fam],
                "tilt": TILT[fam],
            }
            if fit.reason:
                entry["reason"] = fit.reason
            if fit.cv:
                entry["cv"] = fit.cv
            if fit.status == "calibrated":
                entry["shrink"] = fit.shrink
                entry["segment_shrink"] = dict(sorted(fit.segment_shrink.items()))
                entry["hp"] = fit.hp
                entry["feature_set"] = fit.fs
                entry["band_adjust"] = fit.band_adjust
                for role, booster in (("point", fit.point), ("band", fit.band)):
                    rel = f"{kind}/{fam}_{role}.json"
                    raw = bytes(booster.save_raw("json"))
                    path = out / rel
                    path.parent.mkdir(parents=True, exist_ok=True)
                    path.write_bytes(raw)
                    written.add(rel)
                    digest = hashlib.sha256(raw).hexdigest()
                    hashes.append(digest)
                    entry[role] = {"file": rel, "sha256": digest, "bytes": len(raw)}
            fams[fam] = entry
        calibrated = [f for f, e in fams.items() if e["status"] == "calibrated"]
        kinds[kind] = {
            "status": "calibrated" if calibrated else "uncalibrated",
            "families": fams,
            "rows": int(sum(1 for s in ss.samples if s.kind == kind)),
        }
        if calibrated:
            kinds[kind]["id"] = hashlib.sha256("".join(hashes).encode()).hexdigest()[:8]
        else:
            kinds[kind]["reason"] = "no family has enough simulated measured rows"
    # Remove model files of an earlier training that this one did not write.
    for old in sorted(out.glob("*/*_*.json")):
        rel = old.relative_to(out).as_posix()
        if rel not in written and old.parent.name in KINDS:
            old.unlink()
    manifest = {
        "format": MANIFEST_FORMAT,
        "budsim_version": __version__,
        "command": f"budsim train --data ../shared/data --out pretrained --seed {seed}",
        "seed": seed,
        "target": "log(measured / physics) per family; see budsim.learn.train",
        "features": list(FEATURES),
        "hyperparameters": hyperparameters(),
        "libraries": library_versions(),
        "data": {
            "files": data_files(Path(root)),
            "rows_seen": dict(sorted(ss.rows_seen.items())),
            "rows_used": dict(sorted(ss.rows_used.items())),
            "rows_skipped": dict(sorted(ss.skipped.items())),
            "physics_fingerprint": physics_fingerprint(ss.samples),
        },
        "front_end": {
            **fe.to_dict(),
            "file": frontend.FILE_NAME,
            "sha256": hashlib.sha256(fe_raw).hexdigest(),
        },
        "fallback_band": {fam: list(band) for fam, band in fallback.items()},
        "unmeasured_band": {
            fam: {"band": list(band), "devices": devices}
            for fam, (band, devices) in unmeasured.items()
        },
        "kinds": kinds,
    }
    (out / "manifest.json").write_bytes(_json_bytes(manifest))
    from budsim.core.calibration import store

    store.clear_caches()
    frontend.clear_cache()
    return manifest
