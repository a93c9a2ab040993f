"""NVIDIA Model-Optimizer (hf_ptq.py): the quantised checkpoint TensorRT-LLM loads (and NVFP4 for
vLLM/SGLang), as a guarded step that runs before the engine starts."""

from __future__ import annotations

from typing import NamedTuple

from .common import ExportOptions, Raw, render_command
from .flags import MODELOPT as T
from .plan import ExportPlan
from .quant import QuantStep, quant_step

SCRIPT = Raw('"${MODELOPT_DIR:-/opt/Model-Optimizer}/examples/llm_ptq/hf_ptq.py"')


def prelude(plan: ExportPlan, step: QuantStep) -> tuple[str, str]:
    """(comment, command) that writes step.save_path unless it already exists."""
    assert step.save_path is not None and step.method is not None
    argv = [
        "python3",
        SCRIPT,
        T.flag("--pyt_ckpt_path"),
        plan.model,
        T.flag("--qformat"),
        step.method,
        T.flag("--kv_cache_qformat"),
        "fp8" if plan.deployment.kv_dtype == "fp8" else "none",
        T.flag("--calib_size"),
        "512",
        T.flag("--export_path"),
        step.save_path,
    ]
    if plan.trust_remote_code:
        argv.append(T.flag("--trust_remote_code"))
    command = render_command(argv, head=2)
    guard = f"[ -d {render_command([step.save_path])} ] || "
    comment = (
        f"quantise to {step.method} with NVIDIA Model-Optimizer (once; needs a CUDA GPU and "
        "MODELOPT_DIR pointing at a Model-Optimizer checkout)"
    )
    return comment, guard + command


class Checkpoint(NamedTuple):
    """What an engine target (vLLM, SGLang, TRT-LLM) serves: how the plan's weights are reached,
    the model reference the engine loads, the ModelOpt step that writes it first (if one does)
    and the header note saying so."""

    quant: QuantStep
    model_ref: str
    prelude: list[tuple[str, str]]
    notes: list[str]


def checkpoint(plan: ExportPlan, engine: str, options: ExportOptions) -> Checkpoint:
    quant = quant_step(plan, engine, options)
    model_ref = quant.model_path or plan.model
    if quant.mode != "modelopt":
        return Checkpoint(quant, model_ref, [], [])
    note = f"loads the ModelOpt {quant.method} checkpoint {model_ref} made by the first step"
    return Checkpoint(quant, model_ref, [prelude(plan, quant)], [note])
