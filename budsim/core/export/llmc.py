"""LLMC (LightCompress) recipe: quantise the checkpoint the plan's weight dtype needs."""

from __future__ import annotations

from typing import Any

from ..errors import BudsimError
from .common import Artifact, ExportOptions, Raw, dump_yaml, render_command, script
from .flags import LLMC as T
from .plan import ExportPlan, comment_block, header_lines, slug
from .quant import QuantStep

RECIPE_FILE = "llmc.yaml"

# HF config model_type -> LLMC MODEL_REGISTRY class.
MODEL_CLASSES = {
    "llama": "Llama",
    "mistral": "Mistral",
    "mixtral": "Mixtral",
    "qwen": "Qwen",
    "qwen2": "Qwen2",
    "qwen2_moe": "Qwen2Moe",
    "qwen3": "Qwen3",
    "qwen3_moe": "Qwen3Moe",
    "deepseek_v2": "DeepseekV2",
    "deepseek_v3": "DeepseekV3",
    "gemma2": "Gemma2",
    "phi": "Phi",
    "phi3": "Phi3",
    "falcon": "Falcon",
    "bloom": "Bloom",
    "opt": "Opt",
    "internlm2": "InternLM2",
    "minicpm": "MiniCPM",
    "stablelm": "StableLm",
    "starcoder2": "Starcoder",
    "gpt_bigcode": "Starcoder",
    "chatglm": "ChatGLM",
    "glm4": "GLM4V",
}


def model_class(plan: ExportPlan) -> str:
    if not plan.model_type:
        raise BudsimError(
            "the LLMC recipe needs the model's model_type (add model_type to the configuration)"
        )
    try:
        return MODEL_CLASSES[plan.model_type]
    except KeyError:
        raise BudsimError(
            f"LLMC has no model class for model_type {plan.model_type!r} "
            f"(it supports {', '.join(sorted(MODEL_CLASSES))})"
        ) from None


def local_checkpoint(plan: ExportPlan, options: ExportOptions) -> tuple[str, bool]:
    """(HF-format directory LLMC reads, whether it has to be downloaded first)."""
    if plan.model.startswith(("/", "./", "../", "~")):
        return plan.model, False
    return f"{options.models_dir.rstrip('/')}/{slug(plan.model)}", True


def _calib(
    calib_dir: str, dataset: str, n_samples: int, batch: int, seq_len: int, preproc: str
) -> dict[str, Any]:
    """LLMC's calib section: `n_samples` samples of the local copy of `dataset` (no download)."""
    return {
        "name": dataset,
        "download": False,
        "path": f"{calib_dir}/{dataset}",
        "n_samples": n_samples,
        "bs": batch,
        "seq_len": seq_len,
        "preproc": preproc,
        "seed": 42,
    }


def _int4_group128() -> dict[str, Any]:
    """The w4a16 weight format AWQ and GPTQ both write: symmetric int4, groups of 128, packed."""
    return {
        "bit": 4,
        "symmetric": True,
        "granularity": "per_group",
        "group_size": 128,
        "need_pack": True,
    }


def _e4m3(granularity: str) -> dict[str, Any]:
    """An fp8 (e4m3) round-to-nearest quantiser of weights or activations."""
    return {
        "quant_type": "float-quant",
        "bit": "e4m3",
        "symmetric": True,
        "granularity": granularity,
        "use_qtorch": True,
    }


def recipe(plan: ExportPlan, step: QuantStep, options: ExportOptions) -> dict[str, Any]:
    path, _ = local_checkpoint(plan, options)
    doc: dict[str, Any] = {
        "base": {"seed": 42},
        "model": {"type": model_class(plan), "path": path, "torch_dtype": "auto"},
    }
    calib_dir = options.calib_dir.rstrip("/")
    if step.method == "awq":
        doc["calib"] = _calib(calib_dir, "pileval", 128, -1, 512, "txt_general_preproc")
        doc["quant"] = {
            "method": "Awq",
            "weight": _int4_group128(),
            "special": {"trans": True, "trans_version": "v2", "weight_clip": True},
            "quant_out": True,
        }
    elif step.method == "gptq":
        doc["calib"] = _calib(calib_dir, "wikitext2", 128, 1, 2048, "wikitext2_gptq")
        doc["quant"] = {
            "method": "GPTQ",
            "weight": _int4_group128(),
            "special": {
                "actorder": True,
                "static_groups": False,
                "percdamp": 0.01,
                "blocksize": 128,
                "true_sequential": True,
            },
            "quant_out": True,
        }
    elif step.method == "smoothquant":
        doc["calib"] = _calib(calib_dir, "pileval", 512, 1, 512, "pileval_smooth")
        doc["quant"] = {
            "method": "SmoothQuant",
            "weight": {"bit": 8, "symmetric": True, "granularity": "per_channel"},
            "act": {"bit": 8, "symmetric": True, "granularity": "per_token"},
            "special": {"alpha": 0.8},
        }
    elif step.method == "fp8":  # data-free RTN to e4m3
        doc["quant"] = {
            "method": "RTN",
            "weight": _e4m3("per_channel"),
            "act": _e4m3("per_token"),
        }
    else:  # pragma: no cover - quant_step only returns the methods above
        raise BudsimError(f"internal: no LLMC recipe for {step.method}")
    doc["save"] = {step.save_key or "save_vllm": True, "save_path": step.save_path}
    return doc


def artifacts(plan: ExportPlan, step: QuantStep, options: ExportOptions) -> list[Artifact]:
    doc = recipe(plan, step, options)
    path, download = local_checkpoint(plan, options)
    notes = [
        f"writes {step.model_path}; the engine commands load it from there",
        "runs under torchrun on one NVIDIA GPU (LLMC initialises NCCL)",
    ]
    if "calib" in doc:
        notes.append(
            f"calibration data {doc['calib']['name']} is read offline from {doc['calib']['path']}"
        )
    title = f"{T.engine} {T.version}: {step.tag} quantisation recipe for {plan.model}"
    head = comment_block(header_lines(plan, title, notes))
    body = dump_yaml(doc)
    recipe_file = Artifact(RECIPE_FILE, head + body, "yaml", "llmc")

    blocks: list[tuple[int, str, str]] = []
    if download:
        fetch = render_command(["hf", "download", plan.model, "--local-dir", path], head=2)
        blocks.append((0, "fetch the checkpoint LLMC reads", f"[ -d {_q(path)} ] || {fetch}"))
    task = f"budsim-{slug(plan.model)}-{step.tag}"
    argv = [
        *T.program,
        "--nnodes",
        "1",
        "--nproc_per_node",
        "1",
        "--rdzv_id",
        task,
        "--rdzv_backend",
        "c10d",
        "--rdzv_endpoint",
        "127.0.0.1:29500",
        Raw('"$LLMC_DIR/llmc/__main__.py"'),
        T.flag("--config"),
        Raw(f'"$(dirname "$0")"/{RECIPE_FILE}'),
        T.flag("--task_id"),
        task,
    ]
    env: dict[str, str] = {T.env_var("PYTHONPATH"): Raw('"$LLMC_DIR${PYTHONPATH:+:$PYTHONPATH}"')}
    script_at = argv.index('"$LLMC_DIR/llmc/__main__.py"')
    blocks.append((0, f"quantise to {step.tag}", render_command(argv, env, breaks=[script_at])))
    text = script(plan, title, blocks, background=False, nodes=1)
    text = text.replace(
        "set -euo pipefail\n",
        'set -euo pipefail\nLLMC_DIR="${LLMC_DIR:-' + _dq(options.llmc_dir) + '}"\n',
        1,
    )
    return [recipe_file, Artifact("llmc.sh", text, "sh", "llmc")]


def _q(word: str) -> str:
    import shlex

    return shlex.quote(word)


def _dq(text: str) -> str:
    """Text safe inside a double-quoted shell string."""
    return "".join("\\" + c if c in '\\"$`' else c for c in text)
