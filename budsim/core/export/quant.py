"""How a plan's weight dtype is reached: as the checkpoint is, quantised online by the engine, or from
an LLMC-quantised checkpoint (and where the engine then loads it)."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import BudsimError
from .common import ExportOptions
from .plan import QUANTISED, SIXTEEN_BIT, ExportPlan, slug

LLMC_ENGINES = ("vllm", "sglang")
# ModelOpt --qformat per weight dtype (TensorRT-LLM; NVFP4 for every CUDA engine).
MODELOPT_QFORMATS = {"fp8": "fp8", "int8": "int8_sq", "int4": "int4_awq", "nvfp4": "nvfp4"}
LLMC_KINDS = ("cuda", "rocm", "cpu")
ONLINE_FP8_KINDS = ("cuda", "rocm")


@dataclass(frozen=True)
class QuantStep:
    mode: str  # "none" | "online" | "llmc" | "modelopt" | "inc"
    weight_dtype: str
    method: str | None = (
        None  # online: the engine's quantization value; llmc: awq|gptq|smoothquant|fp8
    )
    save_key: str | None = None  # llmc: save_vllm | save_sgl
    save_path: str | None = None  # llmc: save.save_path
    model_path: str | None = None  # llmc: what the engine loads afterwards

    @property
    def tag(self) -> str:
        tag = {
            "awq": "w4a16-awq",
            "gptq": "w4a16-gptq",
            "smoothquant": "w8a8-smoothquant",
            "fp8": "fp8-e4m3",
        }.get(self.method or "", self.weight_dtype)
        if self.mode == "modelopt":
            return f"modelopt-{self.method}"
        return tag


def dtype_flag_value(plan: ExportPlan) -> str | None:
    """vLLM/SGLang --dtype when the plan asks for the other 16-bit format than the checkpoint's."""
    want, have = plan.deployment.weight_dtype, plan.checkpoint_dtype
    if want in ("bf16", "fp16") and have in ("bf16", "fp16") and want != have:
        return {"bf16": "bfloat16", "fp16": "float16"}[want]
    return None


def quant_step(plan: ExportPlan, engine: str, options: ExportOptions) -> QuantStep:
    want = plan.deployment.weight_dtype
    have = plan.checkpoint_dtype
    if want == "auto" or want == have:
        return QuantStep("none", plan.weight_dtype)
    if have is None:
        if want in SIXTEEN_BIT:
            return QuantStep("none", want)
        raise BudsimError(
            f"the plan serves {want} weights but the checkpoint's dtype is unknown; add "
            "checkpoint_dtype (and checkpoint_quant) to the configuration"
        )
    if have in QUANTISED:
        raise BudsimError(
            f"the checkpoint {plan.model} is already {have}"
            + (f" ({plan.checkpoint_quant})" if plan.checkpoint_quant else "")
            + f"; serving it as {want} needs a different checkpoint"
        )
    if want in SIXTEEN_BIT:
        return QuantStep("none", want)
    kind = plan.device_kind
    if want == "fp8" and not options.fp8_offline and engine in LLMC_ENGINES:
        if kind in ONLINE_FP8_KINDS:
            return QuantStep("online", want, method="fp8")
    if want in ("int4", "int8", "fp8") and engine in LLMC_ENGINES and kind in LLMC_KINDS:
        if kind == "cpu" and want == "fp8":
            raise BudsimError("vLLM on CPU has no fp8 weights; choose bf16, int8 or int4")
        method = {"int4": options.int4_method, "int8": "smoothquant", "fp8": "fp8"}[want]
        save_key = "save_vllm" if engine == "vllm" else "save_sgl"
        step = QuantStep("llmc", want, method=method, save_key=save_key)
        save_path = f"{options.models_dir.rstrip('/')}/{slug(plan.model)}-{step.tag}"
        folder = "vllm_quant_model" if engine == "vllm" else "sgl_quant_model"
        return QuantStep(
            "llmc",
            want,
            method=method,
            save_key=save_key,
            save_path=save_path,
            model_path=f"{save_path}/{folder}",
        )
    if kind == "cuda" and want in MODELOPT_QFORMATS and (engine == "trtllm" or want == "nvfp4"):
        qformat = MODELOPT_QFORMATS[want]
        path = f"{options.models_dir.rstrip('/')}/{slug(plan.model)}-modelopt-{qformat}"
        return QuantStep("modelopt", want, method=qformat, save_path=path, model_path=path)
    if kind == "hpu" and want == "fp8" and engine == "vllm":
        # export.inc: a calibration measures the scales, vLLM quantises the weights at load
        path = f"{options.models_dir.rstrip('/')}/{slug(plan.model)}-inc-fp8"
        return QuantStep("inc", want, method="inc", save_path=path)
    if kind == "hpu":
        raise BudsimError(f"no quantisation path to {want} weights for {engine} on Gaudi")
    raise BudsimError(
        f"no quantisation path to {want} weights for {engine} on {kind}: budsim export writes LLMC "
        "recipes (int4/int8/fp8) and NVIDIA ModelOpt steps (CUDA) only"
    )
