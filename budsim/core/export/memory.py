"""Memory-fraction conversion between engines that count it differently."""

from __future__ import annotations

from ..errors import BudsimError
from .plan import ExportPlan

# TRT-LLM's kv_cache_free_gpu_memory_fraction is a share of the memory left after the weights;
# vLLM's gpu_memory_utilization and SGLang's mem_fraction_static are shares of all device memory.
FRACTION_OF_FREE = {"trtllm": True, "vllm": False, "sglang": False}

# The largest fraction a conversion hands an engine. A share of the free memory converted into a
# share of all of it grows with the weights (TRT-LLM 0.95 after 50 of 85.9 GB is 0.979 of the
# device), and so close to 1 the engine leaves no room for what it does not count: the CUDA/HIP
# context, activations, CUDA graphs, NCCL buffers and other processes on the device. 0.95 is the
# highest value the search itself tries.
MAX_CONVERTED = 0.95
MIN_CONVERTED = 0.05

# How each engine names its fraction: the plan's knob and the option the exporter sets
KNOB = {
    "vllm": ("vLLM", "--gpu-memory-utilization"),
    "sglang": ("SGLang", "--mem-fraction-static"),
    "trtllm": ("TensorRT-LLM", "--kv_cache_free_gpu_memory_fraction"),
}


def _converted(plan: ExportPlan, engine: str) -> tuple[float, float, float, float] | None:
    """(exact converted value, the value exported, device GB, weights GB) when the plan's fraction
    changes meaning on `engine`; None when it keeps its meaning or there is none."""
    util = plan.deployment.gpu_memory_utilization
    if util is None or not converts(plan, engine):
        return None
    memory = plan.device_memory_gb
    weights = plan.prediction.get("weights_gb_per_device")
    if not memory or not isinstance(weights, (int, float)) or weights >= memory:
        raise BudsimError(
            f"cannot convert the {plan.engine} memory fraction {util} into {engine}'s meaning "
            "without the device memory and the predicted weights_gb_per_device"
        )
    if FRACTION_OF_FREE.get(engine, False):  # total -> share of free memory after weights
        exact = (util * memory - weights) / (memory - weights)
    else:  # share of free -> total
        exact = (weights + util * (memory - weights)) / memory
    return exact, round(min(MAX_CONVERTED, max(MIN_CONVERTED, exact)), 3), memory, weights


def memory_fraction(plan: ExportPlan, engine: str) -> float | None:
    """The plan's memory fraction in `engine`'s meaning (None = the engine's default), at most
    MAX_CONVERTED where it had to be converted."""
    util = plan.deployment.gpu_memory_utilization
    if util is None:
        return None
    converted = _converted(plan, engine)
    return util if converted is None else converted[1]


def conversion_note(plan: ExportPlan, engine: str) -> str | None:
    """What was converted and why, for the exported script's header (None: nothing was)."""
    converted = _converted(plan, engine)
    if converted is None:
        return None
    exact, value, memory, weights = converted
    util = plan.deployment.gpu_memory_utilization
    source, _ = KNOB.get(plan.engine, (plan.engine, ""))
    target, option = KNOB[engine]
    gb = f"{weights:.3g} GB of weights on {memory:.3g} GB per device"
    if FRACTION_OF_FREE.get(engine, False):
        text = (
            f"memory fraction converted: the plan's {source} fraction {util} is a share of all "
            f"device memory, {target}'s {option} a share of the memory the weights leave "
            f"({gb}), so {exact:.3f}"
        )
    else:
        text = (
            f"memory fraction converted: the plan's {source} fraction {util} is a share of the "
            f"memory the weights leave ({gb}), {target}'s {option} a share of all device "
            f"memory, so {exact:.3f}"
        )
    if value < round(exact, 3):
        less = (exact - value) * (memory if not FRACTION_OF_FREE.get(engine) else memory - weights)
        text += (
            f", capped at {value} to leave room for what the engine does not count (runtime "
            f"context, activations, graphs, communication buffers): its KV cache is about "
            f"{less:.2g} GB per device smaller than predicted"
        )
    return text


def converts(plan: ExportPlan, engine: str) -> bool:
    """Whether the plan's memory fraction changes meaning on `engine`."""
    return plan.deployment.gpu_memory_utilization is not None and FRACTION_OF_FREE.get(
        plan.engine, False
    ) != FRACTION_OF_FREE.get(engine, False)
