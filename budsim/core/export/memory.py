"""Memory-fraction conversion between engines that count it differently."""

from __future__ import annotations

from ..errors import BudsimError
from .plan import ExportPlan

# TRT-LLM's kv_cache_free_gpu_memory_fraction is a share of the memory left after the weights;
# vLLM's gpu_memory_utilization and SGLang's mem_fraction_static are shares of all device memory.
FRACTION_OF_FREE = {"trtllm": True, "vllm": False, "sglang": False}


def memory_fraction(plan: ExportPlan, engine: str) -> float | None:
    """The plan's memory fraction in `engine`'s meaning (None = the engine's default)."""
    util = plan.deployment.gpu_memory_utilization
    if util is None:
        return None
    source = FRACTION_OF_FREE.get(plan.engine, False)
    target = FRACTION_OF_FREE.get(engine, False)
    if source == target:
        return util
    memory = plan.device_memory_gb
    weights = plan.prediction.get("weights_gb_per_device")
    if not memory or not isinstance(weights, (int, float)) or weights >= memory:
        raise BudsimError(
            f"cannot convert the {plan.engine} memory fraction {util} into {engine}'s meaning "
            "without the device memory and the predicted weights_gb_per_device"
        )
    if target:  # total -> share of free memory after weights
        value = (util * memory - weights) / (memory - weights)
    else:  # share of free -> total
        value = (weights + util * (memory - weights)) / memory
    return round(min(0.99, max(0.05, value)), 3)


def converts(plan: ExportPlan, engine: str) -> bool:
    """Whether the plan's memory fraction changes meaning on `engine`."""
    return plan.deployment.gpu_memory_utilization is not None and FRACTION_OF_FREE.get(
        plan.engine, False
    ) != FRACTION_OF_FREE.get(engine, False)
