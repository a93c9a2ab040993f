"""Intel Neural Compressor fp8 on Gaudi (vLLM's vllm-gaudi plugin): the calibration run that
measures the scales once, and the QUANT_CONFIG the engine then loads with --quantization inc.

The steps are vllm-gaudi's own (calibration/calibrate_model.sh: measure with a maxabs observer,
post-process, quantise the scales); it writes <out>/<model folder, lower-case>/maxabs_quant_<g2|g3>.json,
and the scales are device-specific, so a Gaudi 3 plan calibrates on a Gaudi 3."""

from __future__ import annotations

from pathlib import PurePosixPath

from .common import Raw, quote, render_command
from .plan import ExportPlan
from .quant import QuantStep

# The script changes to its own folder first, so a relative -o would land there: absolute paths.
SCRIPT = Raw('"${VLLM_GAUDI_DIR:-/opt/vllm-gaudi}/calibration/calibrate_model.sh"')
# A Hugging Face dataset name (not a .pkl) makes the script prepare the samples itself; this is
# the one the plugin's documentation uses for that path.
DATASET = "NeelNanda/pile-10k"


def device_tag(hardware: str) -> str:
    """calibrate_model.sh's name for the device generation."""
    return "g3" if "gaudi3" in hardware.replace("-", "") else "g2"


def quant_config(plan: ExportPlan, step: QuantStep) -> str:
    """The QUANT_CONFIG path the calibration writes for this plan."""
    assert step.save_path is not None
    folder = PurePosixPath(plan.model.rstrip("/")).name.lower()
    tag = device_tag(plan.hardware)
    return f"{step.save_path.rstrip('/')}/{folder}/maxabs_quant_{tag}.json"


def _absolute(path: str) -> str:
    """`path` as the script sees it after changing to its own folder."""
    return path if path.startswith("/") else Raw(f'"$PWD"/{quote(path)}')


def prelude(plan: ExportPlan, step: QuantStep) -> tuple[str, str]:
    """(comment, command) that calibrates unless the quantisation config already exists."""
    assert step.save_path is not None
    argv = [
        SCRIPT,
        "-m",
        plan.model,
        "-d",
        DATASET,
        "-o",
        _absolute(step.save_path),
        "-t",
        str(plan.deployment.tp),
    ]
    config = render_command([quant_config(plan, step)])
    command = f"[ -f {config} ] || {render_command(argv)}"
    comment = (
        f"measure the fp8 scales with Intel Neural Compressor (once, on a {plan.hardware}; needs "
        "VLLM_GAUDI_DIR pointing at a vllm-gaudi checkout with calibration/requirements.txt "
        "installed)"
    )
    return comment, command
