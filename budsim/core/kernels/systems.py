"""Which measured system's kernel tables answer for a device, and what that system is in budsim's catalog."""

from __future__ import annotations

import math

from ..hardware import Device, get_device

__all__ = ["ENGINES", "SYSTEMS", "SYSTEM_DEVICE", "engine_order", "source_device", "system_for"]

ENGINES: tuple[str, ...] = ("vllm", "sglang", "trtllm")

# The AIConfigurator systems with tables, and the catalog entry for the GPU that measured them.
SYSTEM_DEVICE: dict[str, str] = {
    "a100_sxm": "a100-sxm-80gb",
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200-sxm",
    "b200_sxm": "b200",
    "l40s": "l40s",
}
SYSTEMS: tuple[str, ...] = tuple(SYSTEM_DEVICE)

# Devices without tables borrow the closest measured chip: same die (PCIe/NVL variants, GH200),
# same generation (B300/GB200/GB300 from B200), or the same class (Ada and GA10x cards from L40S).
_BY_DEVICE: dict[str, str] = {
    "a100-sxm-40gb": "a100_sxm",
    "a100-sxm-80gb": "a100_sxm",
    "a100-pcie-80gb": "a100_sxm",
    "a10g": "l40s",
    "h100-sxm": "h100_sxm",
    "h100-pcie": "h100_sxm",
    "h100-nvl": "h100_sxm",
    "h200-sxm": "h200_sxm",
    "gh200": "h200_sxm",
    "b200": "b200_sxm",
    "b300": "b200_sxm",
    "gb200": "b200_sxm",
    "gb300": "b200_sxm",
    "l40s": "l40s",
    "l4": "l40s",
    "rtx-4090": "l40s",
}
_BY_ARCH: dict[str, str] = {
    "ampere": "a100_sxm",
    "ada": "l40s",
    "hopper": "h200_sxm",
    "blackwell": "b200_sxm",
    "blackwell-ultra": "b200_sxm",
}


def source_device(system: str) -> Device:
    """The catalog entry of the GPU that measured `system`'s tables."""
    return get_device(SYSTEM_DEVICE[system])


def system_for(device: Device) -> str | None:
    """The measured system whose tables answer for `device`; None for non-NVIDIA devices.

    Catalog ids map by name, other CUDA devices (user entries) by architecture, else to the system
    whose bf16 peak and memory bandwidth are closest in log space.
    """
    if device.kind != "cuda":
        return None
    if device.id in _BY_DEVICE:
        return _BY_DEVICE[device.id]
    if device.arch in _BY_ARCH:
        return _BY_ARCH[device.arch]

    def distance(system: str) -> float:
        ref = source_device(system)
        return math.hypot(
            math.log(device.peak_tflops("bf16") / ref.peak_tflops("bf16")),
            math.log(device.memory_bw_gbs / ref.memory_bw_gbs),
        )

    return min(SYSTEMS, key=distance)


def engine_order(engine: str) -> tuple[str, ...]:
    """`engine` first, then the engines whose tables stand in for it when it lacks a family.

    vLLM and SGLang share most kernels (FlashInfer, Triton, Marlin); TRT-LLM falls back to vLLM."""
    order = {
        "vllm": ("vllm", "sglang", "trtllm"),
        "sglang": ("sglang", "vllm", "trtllm"),
        "trtllm": ("trtllm", "vllm", "sglang"),
    }
    return order[engine]
