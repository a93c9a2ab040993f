"""Efficiency: how close each operator gets to the hardware's peaks, per device and engine.

For NVIDIA systems covered by the AIConfigurator kernel tables, the parameters are fitted to measured kernel
timings (scripts/fit_kernel_efficiency.py -> catalog/kernel_efficiency.json). Other devices use the
defaults per hardware kind below, which are deliberately conservative round numbers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from .hardware import Device

CATALOG = Path(__file__).parent / "catalog" / "kernel_efficiency.json"

# Devices without their own kernel tables borrow the closest measured system of the same generation.
SYSTEM_BY_ARCH = {
    "ampere": "a100_sxm",
    "hopper": "h200_sxm",
    "blackwell": "b200_sxm",
    "blackwell-ultra": "b200_sxm",
    "ada": "l40s",
}
SYSTEM_BY_DEVICE = {
    "h100-sxm": "h100_sxm",
    "h100-pcie": "h100_sxm",
    "h100-nvl": "h100_sxm",
    "h200-sxm": "h200_sxm",
    "gh200": "h200_sxm",
    "a100-sxm-40gb": "a100_sxm",
    "a100-sxm-80gb": "a100_sxm",
    "a100-pcie-80gb": "a100_sxm",
    "b200": "b200_sxm",
    "l40s": "l40s",
}


@dataclass(frozen=True)
class Roofline:
    """t = lat + max(work / (peak * eta_max * r / (r + half_rows)), bytes / (bw * eta_mem))."""

    lat_us: float
    eta_max: float
    half_rows: float
    eta_mem: float


@dataclass(frozen=True)
class Efficiency:
    gemm: dict[str, Roofline]  # by compute dtype: bf16, fp8, fp4
    moe: Roofline
    attn_context_eta: float
    attn_context_lat_us: float
    attn_decode_eta_mem: float
    attn_decode_lat_us: float
    allreduce_alpha_us: float | None  # None: use the device's scale-up latency
    allreduce_busbw_gbs: float | None  # None: use the device's scale-up bandwidth
    elementwise_lat_us: float = 3.0
    source: str = "defaults"
    notes: tuple[str, ...] = field(default_factory=tuple)

    def gemm_for(self, compute_dtype: str) -> Roofline:
        for key in (compute_dtype, "fp8" if compute_dtype == "fp4" else "bf16", "bf16"):
            if key in self.gemm:
                return self.gemm[key]
        return next(iter(self.gemm.values()))


def _default(kind: str) -> Efficiency:
    table = {
        # kind: (gemm eta, half rows, mem eta, moe eta, attn eta, decode mem eta, kernel lat)
        "cuda": (0.70, 64.0, 0.78, 0.18, 0.40, 0.75, 4.0),
        "rocm": (0.55, 96.0, 0.70, 0.12, 0.30, 0.65, 6.0),
        "hpu": (0.60, 96.0, 0.72, 0.15, 0.35, 0.65, 8.0),
        "cpu": (0.45, 16.0, 0.60, 0.30, 0.25, 0.55, 15.0),
    }
    g, half, mem, moe, attn, dec, lat = table.get(kind, table["cuda"])
    rl = Roofline(lat, g, half, mem)
    return Efficiency(
        gemm={"bf16": rl},
        moe=Roofline(lat * 8, moe, 2.0, mem * 0.9),
        attn_context_eta=attn,
        attn_context_lat_us=lat * 4,
        attn_decode_eta_mem=dec,
        attn_decode_lat_us=lat * 3,
        allreduce_alpha_us=None,
        allreduce_busbw_gbs=None,
        elementwise_lat_us=lat,
        source=f"defaults for {kind}",
    )


@lru_cache(maxsize=1)
def _fits() -> dict[str, Any]:
    try:
        fits: dict[str, Any] = json.loads(CATALOG.read_text())["fits"]
        return fits
    except (OSError, ValueError, KeyError):
        return {}


def _roofline(d: dict[str, float]) -> Roofline:
    return Roofline(d["lat_us"], d["eta_max"], d["half_rows"], d["eta_mem"])


@lru_cache(maxsize=256)
def efficiency_for(device: Device, engine_id: str) -> Efficiency:
    """The efficiency curves for `engine_id` kernels on `device`."""
    base = _default(device.kind)
    if device.kind != "cuda":
        return base
    system = SYSTEM_BY_DEVICE.get(device.id) or SYSTEM_BY_ARCH.get(device.arch)
    per_engine: dict[str, Any] = _fits().get(system or "", {})
    fit: dict[str, Any] | None = per_engine.get(engine_id) or per_engine.get("vllm")
    if not fit:
        return base
    gemm = {k: _roofline(v) for k, v in fit.get("gemm", {}).items()}
    moe = fit.get("moe")
    ctx = fit.get("attn_context") or {}
    dec = fit.get("attn_decode") or {}
    ar = fit.get("allreduce") or {}
    return Efficiency(
        gemm=gemm or base.gemm,
        moe=_roofline(moe) if isinstance(moe, dict) else base.moe,
        attn_context_eta=ctx.get("eta", base.attn_context_eta),
        attn_context_lat_us=ctx.get("lat_us", base.attn_context_lat_us),
        attn_decode_eta_mem=dec.get("eta_mem", base.attn_decode_eta_mem),
        attn_decode_lat_us=dec.get("lat_us", base.attn_decode_lat_us),
        allreduce_alpha_us=ar.get("alpha_us"),
        allreduce_busbw_gbs=ar.get("busbw_gbs"),
        source=f"kernel fit {system}/{engine_id}",
    )
