"""`budsim predict --json > plan.json` then `budsim export plan.json`: what was predicted is what
gets launched, aggregated and disaggregated."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BUDSIM = [sys.executable, "-m", "budsim"]


def _budsim(*args: str) -> str:
    out = subprocess.run([*BUDSIM, *args], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return out.stdout


def _values(words: list[str], flag: str) -> list[str]:
    return [words[i + 1] for i, w in enumerate(words) if w == flag]


def test_a_prediction_exports_the_deployment_it_predicted(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(
        _budsim(
            "predict",
            "--model",
            "meta-llama/Llama-3.1-8B",
            "--hardware",
            "h100-sxm",
            "--engine",
            "vllm",
            "--tp",
            "2",
            "--replicas",
            "2",
            "--weight-dtype",
            "fp8",
            "--concurrency",
            "16",
            "--input-len",
            "1024",
            "--output-len",
            "128",
            "--json",
        )
    )
    predicted = json.loads(plan.read_text())
    assert predicted["configuration"]["tp"] == 2 and predicted["configuration"]["replicas"] == 2
    script = _budsim("export", str(plan), "--target", "vllm")
    words = script.replace("\\\n", " ").split()
    assert _values(words, "--tensor-parallel-size") == ["2", "2"]  # two replicas of TP2
    assert _values(words, "--quantization") == ["fp8", "fp8"]
    assert f"TTFT {predicted['ttft_ms_mean']:.3g}" in script  # the header carries the prediction


def test_a_disaggregated_prediction_exports_its_pools(tmp_path: Path) -> None:
    plan = tmp_path / "pd.json"
    plan.write_text(
        _budsim(
            "predict",
            "--model",
            "meta-llama/Llama-3.1-70B",
            "--hardware",
            "h100-sxm",
            "--engine",
            "sglang",
            "--tp",
            "4",
            "--weight-dtype",
            "fp8",
            "--concurrency",
            "32",
            "--input-len",
            "2048",
            "--output-len",
            "256",
            "--prefill-workers",
            "2",
            "--decode-workers",
            "1",
            "--prefill-tp",
            "2",
            "--json",
        )
    )
    out = tmp_path / "deploy"
    _budsim("export", str(plan), "--target", "sglang", "--out", str(out))
    prefill = (out / "sglang-prefill.sh").read_text().replace("\\\n", " ").split()
    decode = (out / "sglang-decode.sh").read_text().replace("\\\n", " ").split()
    assert _values(prefill, "--tp-size") == ["2", "2"]  # two prefill workers of TP2
    assert _values(decode, "--tp-size") == ["4"]  # one decode worker of TP4
    assert _values(prefill, "--disaggregation-mode") == ["prefill", "prefill"]
    assert (out / "sglang-router.sh").is_file()
