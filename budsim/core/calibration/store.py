"""Where calibration models live, and loading them safely.

- Pretrained: ``pretrained/manifest.json`` plus ``pretrained/<kind>/<family>_{point,band}.json``
  (XGBoost JSON) at the repository root, or the folder named by ``$BUDSIM_PRETRAINED_DIR``.
- User: ``$BUDSIM_CALIBRATION_DIR``, else ``$XDG_DATA_HOME/budsim/calibration`` (default
  ``~/.local/share/budsim/calibration``), one JSON file per calibration (see `user.py`).

Loading only parses JSON (never pickle, never code). Every model file's sha256 must match the
manifest. Anything missing, corrupt, built for other features or written by a newer budsim gives a
`CalibrationWarning` once and the affected predictions stay physics-only; nothing here raises into
a prediction.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budsim import __version__

from ..model import canonical_model_name
from ..paths import pretrained_dir
from .features import (
    ARCH_CLASSES,
    FAMILY_PHYSICS_FEATURE,
    FEATURE_INDEX,
    FEATURES,
    SEGMENT_ENGINES,
    engine_of,
    segment,
)
from .forest import Forest, ForestError, ForestStack

if TYPE_CHECKING:
    import numpy as np

    from ..predict import Resolved
    from .apply import Residual

MANIFEST_FORMAT = 1
USER_FORMAT = 1
ENV_USER = "BUDSIM_CALIBRATION_DIR"


class CalibrationWarning(UserWarning):
    """A calibration model could not be used; predictions fall back to physics."""


def warn(message: str) -> None:
    warnings.warn(message, CalibrationWarning, stacklevel=3)


def user_dir() -> Path:
    return Path(_user_dir(os.environ.get(ENV_USER), os.environ.get("XDG_DATA_HOME")))


@lru_cache(maxsize=8)
def _user_dir(env: str | None, xdg: str | None) -> str:
    if env:
        return str(Path(env).expanduser())
    base = xdg or str(Path.home() / ".local" / "share")
    return str(Path(base) / "budsim" / "calibration")


def version_tuple(version: str) -> tuple[int, ...]:
    """(major, minor, patch, ...) of a version string; pre-release tags are ignored."""
    parts = []
    for piece in str(version).split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts) or (0,)


def newer_than_me(version: str) -> bool:
    return version_tuple(version) > version_tuple(__version__)


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ---------------------------------------------------------------------------------------- models
@dataclass(frozen=True)
class FamilyModel:
    """How raw forest outputs become a residual (point, lo, hi) for one family."""

    family: str
    tilt: float = 0.0  # the forest predicts residual + tilt * log(physics)
    shrink: float = 1.0  # the point residual is multiplied by this
    # per guard segment (features.SEGMENTS) and per "segment|hardware id"; when given,
    # a segment (or hardware) missing from it gets 0 (physics) / its segment's
    segment_shrink: tuple[tuple[str, float], ...] = ()
    # the physics-only band, carried where `segment_shrink` leaves the point uncorrected
    fallback: tuple[float, float] | None = None
    band_adjust: float = 0.0  # conformal widening of the quantile band (log space)
    offset: float = 0.0  # constant residual added to the point (user mean models)
    has_point: bool = True
    has_band: bool = True
    # the evidence the pretrained model was fitted on: measured runs and distinct models
    rows: int = 0
    models: int = 0


@dataclass
class ModelSet:
    """The learned residual models of one calibration (one hardware kind, or one user's)."""

    name: str
    families: dict[str, FamilyModel]
    forests: dict[str, list[Forest]]  # per family: [point] or [point, band] or []
    _stacks: dict[tuple[str, ...], tuple[ForestStack | None, dict[str, int]]] = field(
        default_factory=dict
    )

    def covers(self, families: tuple[str, ...]) -> bool:
        return all(f in self.families for f in families)

    def _stack(self, families: tuple[str, ...]) -> tuple[ForestStack | None, dict[str, int]]:
        cached = self._stacks.get(families)
        if cached is not None:
            return cached
        parts: list[Forest] = []
        offsets: dict[str, int] = {}
        n = 0
        for fam in families:
            offsets[fam] = n
            for forest in self.forests.get(fam, []):
                parts.append(forest)
                n += forest.n_outputs
        stack = ForestStack(parts) if parts else None
        self._stacks[families] = (stack, offsets)
        return stack, offsets

    def predict(
        self, families: tuple[str, ...], x: np.ndarray, hardware: str | None = None
    ) -> dict[str, Residual]:
        import numpy as np

        return self.predict_rows(families, np.atleast_2d(x), [hardware])[0]

    def predict_rows(
        self, families: tuple[str, ...], X: np.ndarray, hardware: Sequence[str | None]
    ) -> list[dict[str, Residual]]:
        """Residuals of several feature vectors (one forest evaluation for all of them)."""
        stack, offsets = self._stack(families)
        outs = stack.predict(X) if stack is not None else None
        return [
            self._residuals(families, offsets, X[k], None if outs is None else outs[k], hw)
            for k, hw in enumerate(hardware)
        ]

    def _residuals(
        self,
        families: tuple[str, ...],
        offsets: dict[str, int],
        x: np.ndarray,
        out: np.ndarray | None,
        hardware: str | None,
    ) -> dict[str, Residual]:
        res: dict[str, Residual] = {}
        for fam in families:
            m = self.families[fam]
            u = float(x[FEATURE_INDEX[FAMILY_PHYSICS_FEATURE[fam]]]) if m.tilt else 0.0
            i = offsets[fam]
            p = m.offset
            if m.has_point and out is not None:
                shrink = m.shrink
                if m.segment_shrink:
                    seg = segment(float(x[_STATUS]), float(x[_MOE]), engine_of(x))
                    table = dict(m.segment_shrink)
                    shrink = table.get(f"{seg}|{hardware}", table.get(seg, 0.0))
                    if shrink == 0.0 and m.fallback is not None:
                        res[fam] = (p, min(m.fallback[0], p), max(m.fallback[1], p))
                        continue
                p += shrink * (float(out[i]) - m.tilt * u)
                i += 1
            if m.has_band and out is not None:
                lo = float(out[i]) - m.tilt * u - m.band_adjust
                hi = float(out[i + 1]) - m.tilt * u + m.band_adjust
                res[fam] = (p, min(lo, p), max(hi, p))
            else:
                res[fam] = (p, p, p)
        return res


def _segment_keys(key: str) -> tuple[str, ...]:
    """Keys of a manifest's segment_shrink entry in the current segments: a manifest from before
    the architecture split ("versioned", "versioned|b200") covers both classes, and one from
    before the engine split ("versioned:moe") every engine, as they did."""
    seg, sep, rest = key.partition("|")
    parts = seg.split(":")
    archs = ARCH_CLASSES if len(parts) == 1 else (parts[1],)
    engines = SEGMENT_ENGINES if len(parts) < 3 else (parts[2],)
    return tuple(f"{parts[0]}:{a}:{e}{sep}{rest}" for a in archs for e in engines)


_STATUS, _MOE = FEATURE_INDEX["e_version_status"], FEATURE_INDEX["m_is_moe"]


# ---------------------------------------------------------------------------------------- pretrained
@lru_cache(maxsize=8)
def _manifest(directory: str) -> dict[str, Any] | None:
    path = Path(directory) / "manifest.json"
    if not path.is_file():
        warn(f"no pretrained calibration at {path}; predictions are physics-only")
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        warn(f"pretrained calibration manifest {path} is unreadable ({exc}); physics-only")
        return None
    if not isinstance(data, dict):
        warn(f"pretrained calibration manifest {path} is malformed; physics-only")
        return None
    trained_by = str(data.get("budsim_version", "0"))
    if newer_than_me(trained_by) or int(data.get("format", 0)) > MANIFEST_FORMAT:
        warn(
            f"pretrained calibration in {directory} was trained by budsim {trained_by}, newer than "
            f"this budsim {__version__}; predictions are physics-only (upgrade budsim, or retrain "
            f"with `budsim train`)"
        )
        return None
    if list(data.get("features", [])) != list(FEATURES):
        warn(
            f"pretrained calibration in {directory} uses other features than this budsim; "
            f"predictions are physics-only until `budsim train` is rerun"
        )
        return None
    return data


def manifest() -> dict[str, Any] | None:
    return _manifest(str(pretrained_dir()))


def _family_from_entry(
    directory: Path, kind: str, fam: str, entry: Mapping[str, Any]
) -> tuple[FamilyModel, list[Forest]] | None:
    forests: list[Forest] = []
    for role in ("point", "band"):
        spec = entry.get(role)
        if not isinstance(spec, Mapping):
            warn(f"pretrained {kind}/{fam}: no {role} model listed; {fam} is physics-only")
            return None
        path = directory / str(spec.get("file", ""))
        try:
            raw = path.read_bytes()
        except OSError:
            warn(f"pretrained model {path} is missing; {kind} {fam} is physics-only")
            return None
        if hashlib.sha256(raw).hexdigest() != spec.get("sha256"):
            warn(f"pretrained model {path} does not match its manifest hash; {fam} is physics-only")
            return None
        try:
            forest = Forest(json.loads(raw.decode("utf-8")))
        except (ForestError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            warn(f"pretrained model {path} is corrupt ({exc}); {kind} {fam} is physics-only")
            return None
        if forest.n_features != len(FEATURES):
            warn(f"pretrained model {path} has {forest.n_features} features; physics-only")
            return None
        forests.append(forest)
    if forests[0].n_outputs != 1 or forests[1].n_outputs != 2:
        warn(f"pretrained {kind}/{fam} models have unexpected outputs; physics-only")
        return None
    segments = entry.get("segment_shrink", {})
    try:
        segment_shrink = tuple(
            sorted(
                (key, float(v)) for k, v in dict(segments).items() for key in _segment_keys(str(k))
            )
        )
    except (TypeError, ValueError):
        warn(f"pretrained {kind}/{fam}: malformed segment_shrink; {fam} is physics-only")
        return None
    model = FamilyModel(
        family=fam,
        tilt=float(entry.get("tilt", 0.0)),
        shrink=float(entry.get("shrink", 1.0)),
        segment_shrink=segment_shrink,
        fallback=_fallback_band(str(directory), fam) if segment_shrink else None,
        band_adjust=float(entry.get("band_adjust", 0.0)),
        rows=int(entry.get("rows", 0) or 0),
        models=int(entry.get("models", 0) or 0),
    )
    return model, forests


def _kind_info(directory: str, kind: str) -> Mapping[str, Any] | None:
    data = _manifest(directory)
    if data is None:
        return None
    kinds = data.get("kinds", {})
    info = kinds.get(kind) if isinstance(kinds, Mapping) else None
    if not isinstance(info, Mapping) or info.get("status") != "calibrated":
        return None
    return info


@lru_cache(maxsize=64)
def _family(directory: str, kind: str, fam: str) -> tuple[FamilyModel, list[Forest]] | None:
    info = _kind_info(directory, kind)
    entry = dict(info.get("families", {})).get(fam) if info is not None else None
    if not isinstance(entry, Mapping) or entry.get("status") != "calibrated":
        return None
    return _family_from_entry(Path(directory), kind, fam, entry)


@lru_cache(maxsize=16)
def _pretrained(directory: str, kind: str, wanted: tuple[str, ...] | None) -> ModelSet | None:
    info = _kind_info(directory, kind)
    if info is None:
        return None
    families: dict[str, FamilyModel] = {}
    forests: dict[str, list[Forest]] = {}
    for fam in sorted(dict(info.get("families", {}))):
        if wanted is not None and fam not in wanted:
            continue  # loaded when a scenario needs it (half a second of JSON for all of them)
        loaded = _family(directory, kind, fam)
        if loaded is not None:
            families[fam], forests[fam] = loaded
    if not families:
        return None
    return ModelSet(f"pretrained/{kind}@{info.get('id', '????????')}", families, forests)


def kind_calibrated(kind: str) -> bool:
    """Whether the shipped manifest calibrated any family of this hardware kind (read from the
    manifest alone, without loading a model)."""
    return _kind_info(str(pretrained_dir()), kind) is not None


def pretrained(kind: str, families: tuple[str, ...] | None = None) -> ModelSet | None:
    """The pretrained models of a hardware kind (only `families`, when given), or None."""
    return _pretrained(str(pretrained_dir()), kind, families)


def fallback_band(family: str, kind: str | None = None) -> tuple[float, float] | None:
    """The physics-only 80 % band of a family (log residual quantiles over all training data).

    With `kind`, None unless measured rows of that device kind were among that data: the band is
    the spread of CUDA (and ROCm) residuals, which says nothing of a Gaudi or a Xeon (and a kind
    whose runs never measured the family, such as ROCm TTFT, has none either)."""
    directory = str(pretrained_dir())
    if kind is not None and not _measured_rows(directory, kind, family):
        return None
    return _fallback_band(directory, family)


@lru_cache(maxsize=32)
def _measured_rows(directory: str, kind: str, family: str) -> int:
    """How many measured rows of `kind` devices the training saw for `family` (the manifest's)."""
    data = _manifest(directory)
    try:
        return int((data or {})["kinds"][kind]["families"][family]["rows"])
    except (KeyError, TypeError, ValueError):
        return 0


@lru_cache(maxsize=32)
def _fallback_band(directory: str, family: str) -> tuple[float, float] | None:
    data = _manifest(directory)
    if data is None:
        return None
    band = data.get("fallback_band", {}).get(family)
    try:
        lo, hi = float(band[0]), float(band[1])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return min(lo, 0.0), max(hi, 0.0)


def unmeasured_band(family: str) -> tuple[float, float, int] | None:
    """(lo, hi, devices): the wide band of a family on a device kind with no measured runs, the
    envelope of the physics-only bands of the `devices` measured devices (budsim.learn.train);
    None without one."""
    return _unmeasured_band(str(pretrained_dir()), family)


@lru_cache(maxsize=32)
def _unmeasured_band(directory: str, family: str) -> tuple[float, float, int] | None:
    entry = (_manifest(directory) or {}).get("unmeasured_band", {}).get(family)
    try:
        lo, hi, devices = float(entry["band"][0]), float(entry["band"][1]), int(entry["devices"])
    except (TypeError, ValueError, IndexError, KeyError):
        return None
    return (min(lo, 0.0), max(hi, 0.0), devices) if devices else None


# ---------------------------------------------------------------------------------------- user
@dataclass(frozen=True)
class UserEntry:
    path: Path
    name: str
    hardware: str
    engine: str
    model: str | None
    created: str
    data: Mapping[str, Any]


def read_user_file(path: Path) -> UserEntry | None:
    """Parse one user calibration file; warns and returns None when it cannot be used."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        match = data["match"]
        entry = UserEntry(
            path=path,
            name=str(data["name"]),
            hardware=str(match["hardware"]),
            engine=str(match["engine"]),
            model=str(match["model"]) if match.get("model") else None,
            created=str(data.get("created", "")),
            data=data,
        )
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        warn(f"user calibration {path} is unreadable ({exc}); ignored")
        return None
    trained_by = str(data.get("budsim_version", "0"))
    if newer_than_me(trained_by) or int(data.get("format", 0)) > USER_FORMAT:
        warn(
            f"user calibration {path} was written by budsim {trained_by}, newer than this budsim "
            f"{__version__}; ignored (upgrade budsim or rerun `budsim calibrate`)"
        )
        return None
    return entry


@lru_cache(maxsize=4)
def _user_entries(directory: str, stamp: int) -> tuple[UserEntry, ...]:
    folder = Path(directory)
    entries = []
    for path in sorted(folder.glob("*.json")):
        entry = read_user_file(path)
        if entry is not None:
            entries.append(entry)
    return tuple(entries)


def user_entries() -> tuple[UserEntry, ...]:
    folder = _user_dir(os.environ.get(ENV_USER), os.environ.get("XDG_DATA_HOME"))
    try:
        stamp = os.stat(folder).st_mtime_ns
    except OSError:
        return ()
    return _user_entries(folder, stamp)


@lru_cache(maxsize=64)
def _user_model(path: str, stamp: int) -> ModelSet | None:
    entry = read_user_file(Path(path))
    if entry is None:
        return None
    from .user import refresh  # (user builds on this module)

    data = refresh(entry)  # refitted if the shipped models moved under it since
    if data is None:
        return None
    families: dict[str, FamilyModel] = {}
    forests: dict[str, list[Forest]] = {}
    for fam, spec in sorted(dict(data.get("families", {})).items()):
        try:
            offset = float(spec.get("offset", 0.0))
            model = spec.get("model")
            if model is not None:
                forest = Forest(model)
                if forest.n_features != len(FEATURES) or forest.n_outputs != 1:
                    raise ForestError("built for other features")
                families[fam] = FamilyModel(fam, offset=offset, has_band=False)
                forests[fam] = [forest]
            else:
                families[fam] = FamilyModel(fam, offset=offset, has_point=False, has_band=False)
                forests[fam] = []
        except (ForestError, AttributeError, TypeError, ValueError) as exc:
            warn(f"user calibration {path} ({fam}) is corrupt ({exc}); ignored")
            return None
    return ModelSet(entry.name, families, forests) if families else None


def user_calibration(resolved: Resolved) -> ModelSet | None:
    """The newest user calibration matching this deployment (model-specific ones first)."""
    entries = user_entries()
    if not entries:
        return None
    device, engine = resolved.device.id, resolved.engine.id
    # one model, one name: a calibration fitted on "Llama-3.1-8B" serves the catalog id too
    names = {canonical_model_name(n) for n in (resolved.model.name, resolved.deployment.model)}
    best: UserEntry | None = None
    for entry in entries:
        if entry.hardware != device or entry.engine != engine:
            continue
        if entry.model is not None and canonical_model_name(entry.model) not in names:
            continue
        if best is None or (
            (entry.model is not None, entry.created) > (best.model is not None, best.created)
        ):
            best = entry
    if best is None:
        return None
    try:
        stamp = best.path.stat().st_mtime_ns
    except OSError:
        return None
    return _user_model(str(best.path), stamp)


def clear_caches() -> None:
    """Forget loaded models (after training or calibrating in this process, and in tests)."""
    _manifest.cache_clear()
    _pretrained.cache_clear()
    _family.cache_clear()
    _fallback_band.cache_clear()
    _unmeasured_band.cache_clear()
    _measured_rows.cache_clear()
    _user_entries.cache_clear()
    _user_model.cache_clear()
