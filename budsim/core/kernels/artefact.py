"""The shipped kernel-table artefact: one npz per (system, engine) under ``pretrained/kernels/``.

Each npz holds plain numeric arrays only (it loads with ``allow_pickle=False``): per family
``<family>.keys`` (int64), ``<family>.axis.<name>`` (int64) and ``<family>.latency_ms`` (float32, NaN
where not measured), plus ``meta``, the UTF-8 bytes of a JSON object with the system, engine, the table
versions per family and the vocabularies of the coded key columns. ``manifest.json`` beside them lists
the source parquet files and every output file with its sha256. scripts/build_kernel_tables.py writes
them; the zip entries carry a fixed date so a rebuild is byte-identical.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from .families import FAMILIES, comm_terms, log_util, moe_overhead
from .grid import FloatArray, GridTable
from .systems import source_device

__all__ = [
    "ENV_DIR",
    "EngineTables",
    "artefact_dir",
    "file_name",
    "load_engine_tables",
    "read_npz",
    "sha256_file",
    "write_npz",
]

ENV_DIR = "BUDSIM_KERNELS_DIR"
FORMAT = 2  # 2: MoE keys carry `gated` and `kernel`
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def artefact_dir() -> Path:
    """``$BUDSIM_KERNELS_DIR`` if set, else ``<repo>/pretrained/kernels``."""
    env = os.environ.get(ENV_DIR)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3] / "pretrained" / "kernels"


def file_name(system: str, engine: str) -> str:
    return f"{system}__{engine}.npz"


def sha256_file(path: Path) -> str:
    import hashlib  # build and tests only: kept out of the import path of lookups

    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_npz(path: Path, arrays: Mapping[str, NDArray[np.generic]]) -> None:
    """np.savez_compressed's layout, written with fixed entry dates and order (reproducible bytes)."""
    import io
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as zf:
        for name in sorted(arrays):
            array = np.ascontiguousarray(arrays[name])
            if array.dtype.hasobject:
                raise ValueError(f"{name}: object arrays cannot be stored")
            buf = io.BytesIO()
            np.lib.format.write_array(buf, array, allow_pickle=False)
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue(), compresslevel=9)


def read_npz(path: Path) -> dict[str, NDArray[np.generic]]:
    with np.load(path, allow_pickle=False) as data:
        return {name: data[name] for name in data.files}


@dataclass(frozen=True, eq=False)
class EngineTables:
    """The measured tables of one engine on one system (families it lacks are absent)."""

    system: str
    engine: str
    tables: dict[str, GridTable]
    versions: dict[str, str]  # family -> engine/library version of its table
    meta: dict[str, Any] = field(default_factory=dict)
    # derived arrays (utilisation grids) shared by every KernelSource reading these tables
    cache: dict[str, Any] = field(default_factory=dict, repr=False)

    def log_util(self, family: str) -> FloatArray:
        """log utilisation of `family` on the measuring GPU, holes filled (families.log_util)."""
        key = f"log_util.{family}"
        if key not in self.cache:
            device = source_device(self.system)
            self.cache[key] = log_util(family, self.tables[family], device)
        value: FloatArray = self.cache[key]
        return value

    def comm_terms(self, family: str) -> tuple[FloatArray, FloatArray]:
        """Per key of a communication family: latency term (s) and bus bandwidth / link bandwidth
        on the measuring GPU (families.comm_terms)."""
        key = f"comm_terms.{family}"
        if key not in self.cache:
            self.cache[key] = comm_terms(family, self.tables[family], source_device(self.system))
        value: tuple[FloatArray, FloatArray] = self.cache[key]
        return value

    def moe_overhead(self) -> tuple[FloatArray, FloatArray]:
        """Per MoE key, fixed overhead (s) and log utilisation of the rest (families.moe_overhead)."""
        if "moe_overhead" not in self.cache:
            device = source_device(self.system)
            self.cache["moe_overhead"] = moe_overhead(self.tables["moe"], device)
        value: tuple[FloatArray, FloatArray] = self.cache["moe_overhead"]
        return value

    def to_arrays(self) -> dict[str, NDArray[np.generic]]:
        import json

        meta = {
            "format": FORMAT,
            "system": self.system,
            "engine": self.engine,
            "versions": dict(sorted(self.versions.items())),
            "families": {
                name: {
                    "keys": list(FAMILIES[name].key_names),
                    "axes": list(FAMILIES[name].axis_names),
                    "vocab": {k: list(v) for k, v in FAMILIES[name].vocab.items()},
                }
                for name in sorted(self.tables)
            },
            **self.meta,
        }
        arrays: dict[str, NDArray[np.generic]] = {
            "meta": np.frombuffer(json.dumps(meta, sort_keys=True).encode(), dtype=np.uint8)
        }
        for name, table in self.tables.items():
            arrays.update(table.to_arrays(name))
        return arrays

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[np.generic]]) -> EngineTables:
        import json

        meta: dict[str, Any] = json.loads(bytes(np.asarray(arrays["meta"], np.uint8)).decode())
        if meta.get("format") != FORMAT:
            raise ValueError(f"kernel artefact format {meta.get('format')!r}, expected {FORMAT}")
        tables: dict[str, GridTable] = {}
        for name, spec in meta["families"].items():
            family = FAMILIES[name]
            if spec["keys"] != list(family.key_names) or any(
                spec["vocab"].get(k) != list(v) for k, v in family.vocab.items()
            ):
                raise ValueError(f"kernel artefact family {name!r} does not match this budsim")
            tables[name] = GridTable.from_arrays(name, arrays, family.key_names, family.axis_names)
        extra = {k: v for k, v in meta.items() if k not in ("system", "engine", "versions")}
        return cls(meta["system"], meta["engine"], tables, dict(meta["versions"]), extra)


@lru_cache(maxsize=32)
def _load(path_str: str, mtime_ns: int) -> EngineTables:
    del mtime_ns  # part of the cache key only: a rebuilt file is read again
    return EngineTables.from_arrays(read_npz(Path(path_str)))


def load_engine_tables(
    system: str, engine: str, directory: Path | None = None
) -> EngineTables | None:
    """The tables of `engine` on `system` from the artefact, or None if it has no such file."""
    path = (directory or artefact_dir()) / file_name(system, engine)
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _load(str(path.resolve()), mtime)
