"""The hardware catalog: device specs, user overrides, name lookup and cluster shapes.

The bundled catalog lives in ``budsim/core/catalog/hardware.toml``: one table per device id. A user file
with the same layout adds devices or overrides fields of bundled ones. It is read from
``$BUDSIM_HARDWARE_FILE`` if that is set, else ``$XDG_CONFIG_HOME/budsim/hardware.toml`` (default
``~/.config/budsim/hardware.toml``)::

    [h100-sxm]              # override: only the fields given change
    price_per_hour = 2.10
    tflops = { fp8 = 1800 } # dtype tables merge per key; 0 removes a dtype

    [my-accel]              # new device: every required field must be present
    name = "My accelerator"
    vendor = "acme"
    kind = "cuda"
    ...

Lookups (`get_device`) are case-insensitive and accept the aliases listed in the catalog
("H100", "h100_sxm", "H100-SXM5-80GB", "NVIDIA H100 80GB HBM3" -> ``h100-sxm``; bare "A100" ->
``a100-sxm-80gb``), so dataset loaders can map the names found in measured data.
"""

from __future__ import annotations

import difflib
import math
import os
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from .errors import BudsimError

__all__ = [
    "KINDS",
    "TFLOPS_DTYPES",
    "Cluster",
    "Device",
    "TflopsTable",
    "bundled_hardware_path",
    "get_device",
    "load_hardware",
    "make_cluster",
    "normalise_hardware_id",
    "user_hardware_path",
]

KINDS: tuple[str, ...] = ("cuda", "rocm", "hpu", "cpu")
TFLOPS_DTYPES: tuple[str, ...] = ("bf16", "fp16", "fp8", "int8", "fp4")

# Which native peak a GEMM in a given compute dtype falls back to when the device lacks that dtype:
# lower precision runs at the next wider precision the hardware does support.
_FALLBACKS: dict[str, tuple[str, ...]] = {
    "fp4": ("fp4", "fp8", "bf16", "fp16"),
    "fp8": ("fp8", "bf16", "fp16"),
    "int8": ("int8", "fp8", "bf16", "fp16"),
    "bf16": ("bf16", "fp16"),
    "fp16": ("fp16", "bf16"),
}
_DTYPE_SPELLINGS: dict[str, str] = {
    "nvfp4": "fp4",
    "mxfp4": "fp4",
    "bfloat16": "bf16",
    "float16": "fp16",
    "half": "fp16",
    "float8": "fp8",
    "fp8_e4m3": "fp8",
    "fp8_e5m2": "fp8",
}

_BUNDLED_PATH = Path(__file__).resolve().parent / "catalog" / "hardware.toml"
_ENV_FILE = "BUDSIM_HARDWARE_FILE"

# Field name -> expected TOML type. "num" = positive number, "num0" = non-negative number.
_REQUIRED_FIELDS: dict[str, str] = {
    "name": "str",
    "vendor": "str",
    "kind": "kind",
    "arch": "str",
    "memory_gb": "num",
    "memory_bw_gbs": "num",
    "tflops": "tflops",
    "devices_per_node": "int",
    "scaleup_bw_gbs": "num0",
    "scaleup_latency_us": "num0",
    "scaleout_bw_gbs": "num0",
    "price_per_hour": "num0",
    "tdp_w": "num",
}
_OPTIONAL_FIELDS: dict[str, str] = {"sources": "strlist", "aliases": "strlist"}
_ALL_FIELDS: dict[str, str] = {**_REQUIRED_FIELDS, **_OPTIONAL_FIELDS}

_ID_RE = re.compile(r"^[a-z0-9][a-z0-9.+_-]*$")
# Words that carry no identity in hardware names found in the wild ("NVIDIA H100 80GB HBM3 GPU").
_NOISE_TOKENS = frozenset(
    {"nvidia", "amd", "intel", "habana", "instinct", "gpu", "geforce", "tensor", "core"}
    | {"hbm2", "hbm2e", "hbm3", "hbm3e", "gddr6", "gddr6x", "accelerator"}
)


class TflopsTable(Mapping[str, float]):
    """Read-only, hashable dtype -> dense peak TFLOPS table (so `Device` stays hashable)."""

    def __init__(self, data: Mapping[str, float] | Iterable[tuple[str, float]] = ()) -> None:
        self._data: dict[str, float] = {str(k): float(v) for k, v in dict(data).items()}

    def __getitem__(self, key: str) -> float:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __hash__(self) -> int:
        return hash(frozenset(self._data.items()))

    def __repr__(self) -> str:
        return f"TflopsTable({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (TflopsTable, (dict(self._data),))


@dataclass(frozen=True)
class Device:
    """One accelerator (or CPU socket) as the planner sees it. See catalog/hardware.toml for units."""

    id: str
    name: str
    vendor: str
    kind: str  # cuda | rocm | hpu | cpu
    memory_gb: float  # usable device memory, GB (1e9 bytes); CPU: DRAM of one socket
    memory_bw_gbs: float  # peak memory bandwidth, GB/s
    tflops: Mapping[str, float]  # dense (no sparsity) peak TFLOPS; keys among TFLOPS_DTYPES
    devices_per_node: int
    scaleup_bw_gbs: float  # per device, one direction
    scaleup_latency_us: float
    scaleout_bw_gbs: float  # per device, one direction
    price_per_hour: float  # default $/device-hour
    tdp_w: float
    arch: str
    sources: tuple[str, ...] = ()
    aliases: tuple[str, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        if not isinstance(self.tflops, TflopsTable):
            object.__setattr__(self, "tflops", TflopsTable(self.tflops))
        object.__setattr__(self, "sources", tuple(self.sources))
        object.__setattr__(self, "aliases", tuple(self.aliases))

    def supports(self, dtype: str) -> bool:
        """Whether the device runs `dtype` matrix math natively (it has its own peak)."""
        return _canonical_dtype(dtype) in self.tflops

    def peak_tflops(self, compute_dtype: str) -> float:
        """Dense peak TFLOPS for GEMMs in `compute_dtype`.

        Falls back to the nearest wider dtype the device supports natively: fp4 -> fp8 -> bf16,
        int8 -> fp8 -> bf16, and fp16 <-> bf16.
        """
        dtype = _canonical_dtype(compute_dtype)
        for candidate in _FALLBACKS[dtype]:
            value = self.tflops.get(candidate)
            if value:
                return value
        raise BudsimError(
            f"hardware {self.id!r} has no peak TFLOPS for {compute_dtype} or a wider dtype "
            f"(it lists {', '.join(self.tflops) or 'none'})"
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/TOML-friendly view (tflops as a dict, tuples as lists)."""
        return {
            "id": self.id,
            "name": self.name,
            "vendor": self.vendor,
            "kind": self.kind,
            "arch": self.arch,
            "memory_gb": self.memory_gb,
            "memory_bw_gbs": self.memory_bw_gbs,
            "tflops": dict(self.tflops),
            "devices_per_node": self.devices_per_node,
            "scaleup_bw_gbs": self.scaleup_bw_gbs,
            "scaleup_latency_us": self.scaleup_latency_us,
            "scaleout_bw_gbs": self.scaleout_bw_gbs,
            "price_per_hour": self.price_per_hour,
            "tdp_w": self.tdp_w,
            "sources": list(self.sources),
            "aliases": list(self.aliases),
        }


@dataclass(frozen=True)
class Cluster:
    """`count` identical devices spread evenly over `nodes` nodes (`devices_per_node` used on each)."""

    device: Device
    count: int
    devices_per_node: int
    nodes: int

    @property
    def price_per_hour(self) -> float:
        return self.device.price_per_hour * self.count

    @property
    def multi_node(self) -> bool:
        return self.nodes > 1


# ------------------------------------------------------------------------------------------ lookup


def normalise_hardware_id(name: str) -> str:
    """Canonical lookup key: lowercase, '_'/space/'/' -> '-', vendor and memory-type words dropped."""
    text = re.sub(r"[\s_/]+", "-", name.strip().lower())
    tokens = [t for t in text.split("-") if t and t not in _NOISE_TOKENS]
    return "-".join(tokens)


def _dashless(key: str) -> str:
    return key.replace("-", "")


def _build_index(devices: Mapping[str, Device]) -> dict[str, str]:
    """Normalised name -> device id. Ids win over aliases; two devices claiming one alias is an error."""
    index: dict[str, str] = {}
    for dev in devices.values():
        for alias in dev.aliases:
            key = normalise_hardware_id(alias)
            if not key or key in devices:
                continue
            other = index.get(key)
            if other is not None and other != dev.id:
                raise BudsimError(
                    f"hardware alias {alias!r} is claimed by both {other} and {dev.id}; "
                    "remove it from one of them"
                )
            index[key] = dev.id
    for dev_id in devices:
        index[normalise_hardware_id(dev_id)] = dev_id
        index.setdefault(dev_id, dev_id)
    return index


def _resolve(name: str, devices: Mapping[str, Device], index: Mapping[str, str]) -> str | None:
    if name in devices:
        return name
    key = normalise_hardware_id(name)
    if key in index:
        return index[key]
    # "rtx4090", "b200sxm": compare with hyphens removed, if that is unambiguous.
    squashed = _dashless(key)
    hits = {dev_id for k, dev_id in index.items() if _dashless(k) == squashed}
    if len(hits) == 1:
        return hits.pop()
    return None


def get_device(device_id: str, *, hardware: Mapping[str, Device] | None = None) -> Device:
    """The catalog entry for `device_id` (an id or alias, any case).

    `hardware` is a catalog from `load_hardware`; by default the bundled catalog plus the user file.
    Unknown names raise BudsimError listing the closest known ids.
    """
    if not isinstance(device_id, str) or not device_id.strip():
        raise BudsimError(f"hardware id must be a non-empty string, got {device_id!r}")
    devices: Mapping[str, Device]
    index: Mapping[str, str]
    if hardware is None:
        devices, index = _default_catalog()
    else:
        devices, index = hardware, _build_index(hardware)
    found = _resolve(device_id, devices, index)
    if found is not None:
        return devices[found]
    key = normalise_hardware_id(device_id)
    close = difflib.get_close_matches(key, list(index), n=10, cutoff=0.6)
    suggestions = list(dict.fromkeys(index[c] for c in close))[:5]
    if suggestions:
        hint = f"did you mean {', '.join(suggestions)}?"
    else:
        hint = f"known ids: {', '.join(devices)}"
    raise BudsimError(
        f"unknown hardware {device_id!r}; {hint} (add new devices in {user_hardware_path()})"
    )


def make_cluster(
    device_id: str,
    devices: int,
    nodes: int | None = None,
    *,
    hardware: Mapping[str, Device] | None = None,
) -> Cluster:
    """`devices` devices of `device_id` on `nodes` nodes (default: as few full nodes as needed)."""
    device = get_device(device_id, hardware=hardware)
    if not _is_int(devices) or devices < 1:
        raise BudsimError(f"device count must be a positive integer, got {devices!r}")
    if nodes is not None and (not _is_int(nodes) or nodes < 1):
        raise BudsimError(f"node count must be a positive integer, got {nodes!r}")
    per_node_max = device.devices_per_node
    min_nodes = math.ceil(devices / per_node_max)
    chosen = min_nodes if nodes is None else nodes
    if devices % chosen:
        suggestion = next(n for n in range(min_nodes, devices + 1) if devices % n == 0)
        how = "need at least" if nodes is None else "asked for"
        raise BudsimError(
            f"{devices} x {device.id} ({how} {chosen} nodes of up to {per_node_max}) do not split "
            f"evenly over {chosen} nodes; use nodes={suggestion} ({devices // suggestion} per node) "
            f"or a device count divisible by the node count"
        )
    per_node = devices // chosen
    if per_node > per_node_max:
        raise BudsimError(
            f"{devices} x {device.id} on {chosen} node(s) puts {per_node} devices on a node, but a "
            f"{device.id} node holds at most {per_node_max}; use nodes >= {min_nodes}"
        )
    return Cluster(device=device, count=devices, devices_per_node=per_node, nodes=chosen)


# ----------------------------------------------------------------------------------------- loading


def bundled_hardware_ids() -> frozenset[str]:
    """The device ids of the bundled catalog (without any user overrides)."""
    return frozenset(_bundled_catalog()[0])


def bundled_hardware_path() -> Path:
    return _BUNDLED_PATH


def user_hardware_path() -> Path:
    """Where the user hardware file is looked for ($BUDSIM_HARDWARE_FILE, else XDG config dir)."""
    explicit = os.environ.get(_ENV_FILE)
    if explicit:
        return Path(explicit).expanduser()
    xdg = os.environ.get("XDG_CONFIG_HOME", "")
    base = Path(xdg).expanduser() if xdg and os.path.isabs(os.path.expanduser(xdg)) else None
    if base is None:
        base = Path.home() / ".config"
    return base / "budsim" / "hardware.toml"


def load_hardware(user_file: Path | str | None = None) -> dict[str, Device]:
    """The bundled catalog merged with a user file (`user_file`, else the default user path).

    An explicit `user_file` or $BUDSIM_HARDWARE_FILE that does not exist is an error; a missing
    default XDG file just means no overrides.
    """
    return dict(_catalog_for(user_file)[0])


def _catalog_for(user_file: Path | str | None) -> tuple[dict[str, Device], dict[str, str]]:
    if user_file is None:
        path = user_hardware_path()
        if not path.is_file():
            if os.environ.get(_ENV_FILE):
                raise BudsimError(f"{_ENV_FILE} points to {path}, which is not a readable file")
            return _bundled_catalog()
    else:
        path = Path(user_file).expanduser()
        if not path.is_file():
            raise BudsimError(f"hardware file {path} does not exist or is not a file")
    stat = path.stat()
    return _merged_catalog(str(path.resolve()), stat.st_mtime_ns, stat.st_size)


_USER_PATHS: dict[tuple[str | None, ...], tuple[Path, str]] = {}


def _default_catalog() -> tuple[dict[str, Device], dict[str, str]]:
    # A search asks for its device thousands of times: the user file's path is worked out once per
    # environment and each call costs one stat (an edit still shows up at once).
    env = (os.environ.get(_ENV_FILE), os.environ.get("XDG_CONFIG_HOME"), os.environ.get("HOME"))
    known = _USER_PATHS.get(env)
    if known is None:
        path = user_hardware_path()
        known = _USER_PATHS[env] = (path, str(path.resolve()))
    try:
        stat = os.stat(known[1])
    except OSError:
        if not env[0]:
            return _bundled_catalog()  # no user file: the common case, without a second lookup
        return _catalog_for(None)  # the error for an explicit file that is missing
    if not S_ISREG(stat.st_mode):
        return _catalog_for(None)
    return _merged_catalog(known[1], stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=1)
def _bundled_catalog() -> tuple[dict[str, Device], dict[str, str]]:
    raw = _read_toml(_BUNDLED_PATH)
    devices: dict[str, Device] = {}
    for dev_id, entry in raw.items():
        where = f"{_BUNDLED_PATH} [{dev_id}]"
        values = _check_entry(entry, where, partial=False)
        if not values.get("sources"):
            raise BudsimError(f"{where}: bundled entries must name their sources")
        devices[_check_id(dev_id, where)] = _make_device(dev_id, values, where)
    return devices, _build_index(devices)


@lru_cache(maxsize=8)
def _merged_catalog(
    path_str: str, mtime_ns: int, size: int
) -> tuple[dict[str, Device], dict[str, str]]:
    # mtime_ns and size are part of the cache key so an edited file is re-read.
    del mtime_ns, size
    path = Path(path_str)
    bundled, bundled_index = _bundled_catalog()
    devices = dict(bundled)
    for raw_id, entry in _read_toml(path).items():
        where = f"{path} [{raw_id}]"
        dev_id = _check_id(raw_id.lower(), where)
        if dev_id in devices:
            values = _check_entry(entry, where, partial=True)
            devices[dev_id] = _override(devices[dev_id], values, path, where)
            continue
        missing = [f for f in _REQUIRED_FIELDS if f not in entry] if isinstance(entry, dict) else []
        if missing:
            target = _resolve(raw_id, bundled, bundled_index)
            hint = f" (to override the bundled {target!r}, use [{target}])" if target else ""
            raise BudsimError(
                f"{where}: new hardware entry is missing required field(s) "
                f"{', '.join(missing)}{hint}"
            )
        values = _check_entry(entry, where, partial=False)
        values.setdefault("sources", [f"user hardware file {path}"])
        devices[dev_id] = _make_device(dev_id, values, where)
    try:
        index = _build_index(devices)
    except BudsimError as exc:
        raise BudsimError(f"{path}: {exc}") from None
    return devices, index


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except tomllib.TOMLDecodeError as exc:
        raise BudsimError(f"cannot parse hardware file {path}: {exc}") from None
    except UnicodeDecodeError:
        raise BudsimError(f"cannot parse hardware file {path}: it is not UTF-8 text") from None
    except OSError as exc:
        raise BudsimError(f"cannot read hardware file {path}: {exc.strerror or exc}") from None
    for key, value in data.items():
        if not isinstance(value, dict):
            raise BudsimError(
                f"{path}: top-level key {key!r} must be a table like [{key}] holding device fields"
            )
    return data


def _check_id(dev_id: str, where: str) -> str:
    if not _ID_RE.match(dev_id):
        raise BudsimError(
            f"{where}: hardware id must be lowercase letters, digits, '-', '_', '.' or '+'"
        )
    return dev_id


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _check_entry(entry: Any, where: str, *, partial: bool) -> dict[str, Any]:
    """Type-check one TOML table; returns the fields it sets (all required ones unless partial)."""
    if not isinstance(entry, dict):
        raise BudsimError(f"{where}: expected a table of device fields")
    unknown = [k for k in entry if k not in _ALL_FIELDS]
    if unknown:
        raise BudsimError(
            f"{where}: unknown field(s) {', '.join(unknown)}; known fields: {', '.join(_ALL_FIELDS)}"
        )
    if not partial:
        missing = [f for f in _REQUIRED_FIELDS if f not in entry]
        if missing:
            raise BudsimError(f"{where}: missing required field(s) {', '.join(missing)}")
    out: dict[str, Any] = {}
    for name, value in entry.items():
        out[name] = _check_value(name, _ALL_FIELDS[name], value, where)
    return out


def _check_value(name: str, kind: str, value: Any, where: str) -> Any:
    if kind == "str":
        if not isinstance(value, str) or not value.strip():
            raise BudsimError(f"{where}: {name} must be a non-empty string")
        return value
    if kind == "kind":
        if value not in KINDS:
            raise BudsimError(f"{where}: kind must be one of {', '.join(KINDS)}, got {value!r}")
        return value
    if kind == "int":
        if not _is_int(value) or value < 1:
            raise BudsimError(f"{where}: {name} must be a positive integer, got {value!r}")
        return value
    if kind in ("num", "num0"):
        if not _is_number(value) or value < 0 or (kind == "num" and value == 0):
            sign = "positive" if kind == "num" else "non-negative"
            raise BudsimError(f"{where}: {name} must be a {sign} number, got {value!r}")
        return float(value)
    if kind == "strlist":
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise BudsimError(f"{where}: {name} must be a list of non-empty strings")
        return list(value)
    if kind == "tflops":
        if not isinstance(value, dict):
            raise BudsimError(f"{where}: tflops must be a table like {{ bf16 = 989, fp8 = 1979 }}")
        table: dict[str, float] = {}
        for dtype, peak in value.items():
            if dtype not in TFLOPS_DTYPES:
                raise BudsimError(
                    f"{where}: tflops key {dtype!r} is not one of {', '.join(TFLOPS_DTYPES)}"
                )
            if not _is_number(peak) or peak < 0:
                raise BudsimError(f"{where}: tflops.{dtype} must be a non-negative number")
            table[dtype] = float(peak)
        return table
    raise AssertionError(f"unhandled field type {kind}")  # pragma: no cover


def _make_device(dev_id: str, values: Mapping[str, Any], where: str) -> Device:
    tflops = {k: v for k, v in values["tflops"].items() if v > 0}
    if "bf16" not in tflops and "fp16" not in tflops:
        raise BudsimError(f"{where}: tflops must give at least a bf16 or fp16 peak")
    return Device(
        id=dev_id,
        name=values["name"],
        vendor=values["vendor"],
        kind=values["kind"],
        memory_gb=values["memory_gb"],
        memory_bw_gbs=values["memory_bw_gbs"],
        tflops=TflopsTable(tflops),
        devices_per_node=values["devices_per_node"],
        scaleup_bw_gbs=values["scaleup_bw_gbs"],
        scaleup_latency_us=values["scaleup_latency_us"],
        scaleout_bw_gbs=values["scaleout_bw_gbs"],
        price_per_hour=values["price_per_hour"],
        tdp_w=values["tdp_w"],
        arch=values["arch"],
        sources=tuple(values.get("sources", ())),
        aliases=tuple(values.get("aliases", ())),
    )


def _override(base: Device, values: Mapping[str, Any], path: Path, where: str) -> Device:
    merged = base.to_dict()
    merged.pop("id")
    for name, value in values.items():
        if name == "tflops":
            merged["tflops"] = {**merged["tflops"], **value}
        else:
            merged[name] = value
    if "sources" not in values:
        merged["sources"] = [*base.sources, f"user override: {path}"]
    return _make_device(base.id, merged, where)


def _canonical_dtype(dtype: str) -> str:
    key = str(dtype).strip().lower()
    key = _DTYPE_SPELLINGS.get(key, key)
    if key not in _FALLBACKS:
        raise BudsimError(
            f"unknown compute dtype {dtype!r}; choose one of {', '.join(TFLOPS_DTYPES)}"
        )
    return key
