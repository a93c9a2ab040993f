"""The committed pretrained models: monotone where the physics is, consistent, and cheap to load."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest

from budsim.core.calibration import store
from budsim.core.deployment import Deployment, Workload
from budsim.core.predict import predict, predict_physics

CASES = [
    Deployment(model="meta-llama/Meta-Llama-3.1-8B", hardware="h100-sxm", engine="vllm"),
    Deployment(model="Qwen/Qwen3-32B", hardware="h200-sxm", engine="sglang", tp=2),
    Deployment(model="mistralai/Mixtral-8x7B-v0.1", hardware="b200", engine="trtllm", tp=2, ep=2),
    Deployment(model="deepseek-ai/DeepSeek-V3", hardware="b200", engine="sglang", tp=8, ep=8),
]
CONCURRENCY = [1, 2, 4, 8, 16, 32, 64, 128, 256]
INPUT_LENS = [128, 256, 512, 1024, 2048, 4096, 8192]


@pytest.fixture(autouse=True)
def committed_models(monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[None]:  # noqa: ANN001
    monkeypatch.delenv("BUDSIM_PRETRAINED_DIR", raising=False)
    monkeypatch.setenv("BUDSIM_CALIBRATION_DIR", str(tmp_path / "no-user-calibrations"))
    store.clear_caches()
    yield
    store.clear_caches()


def _assert_monotone(xs: list[int], phys: list[float], cal: list[float], what: str) -> None:
    for i in range(1, len(xs)):
        if phys[i] >= phys[i - 1]:  # physics monotone here: calibration must keep it so
            assert cal[i] >= cal[i - 1] * (1 - 1e-9), f"{what}: {xs[i - 1]}->{xs[i]} {cal}"


@pytest.mark.parametrize("dep", CASES, ids=lambda d: f"{d.model}-{d.hardware}-{d.engine}")
def test_more_concurrency_never_lowers_tpot_or_ttft(dep: Deployment) -> None:
    phys, cal = [], []
    for c in CONCURRENCY:
        wl = Workload(input_len=1024, output_len=256, concurrency=c)
        p, q = predict_physics(dep, wl), predict(dep, wl)
        if q.calibration == "physics":  # a family the shipped guards leave physics-only
            assert (q.tpot_ms_mean, q.ttft_ms_mean) == (p.tpot_ms_mean, p.ttft_ms_mean)
        else:
            assert q.calibration.startswith("pretrained/cuda@"), q.calibration
        phys.append((p.tpot_ms_mean, p.ttft_ms_mean))
        cal.append((q.tpot_ms_mean, q.ttft_ms_mean))
    for k, name in ((0, "tpot"), (1, "ttft")):
        _assert_monotone(CONCURRENCY, [v[k] for v in phys], [v[k] for v in cal], name)


@pytest.mark.parametrize("dep", CASES, ids=lambda d: f"{d.model}-{d.hardware}-{d.engine}")
def test_longer_input_never_lowers_ttft(dep: Deployment) -> None:
    phys, cal = [], []
    for n in INPUT_LENS:
        wl = Workload(input_len=n, output_len=128, concurrency=8)
        phys.append(predict_physics(dep, wl).ttft_ms_mean)
        cal.append(predict(dep, wl).ttft_ms_mean)
    _assert_monotone(INPUT_LENS, phys, cal, "ttft")


def test_static_batch_latency_grows_with_batch_on_a_calibrated_kind() -> None:
    dep = Deployment(model="meta-llama/Meta-Llama-3-8B", hardware="mi300x", engine="vllm")
    batches = [1, 4, 16, 64, 256]
    phys, cal = [], []
    for b in batches:
        wl = Workload(scenario="static", batch_size=b, input_len=512, output_len=512)
        p, q = predict_physics(dep, wl), predict(dep, wl)
        assert q.calibration.startswith("pretrained/rocm@"), q.calibration
        phys.append(p.e2e_s_max)
        cal.append(q.e2e_s_max)
        # one residual scales all times of a static batch; throughput moves inversely
        assert q.output_tok_s * q.e2e_s_mean == pytest.approx(p.output_tok_s * p.e2e_s_mean)
    _assert_monotone(batches, phys, cal, "static e2e")


def test_a_physics_only_family_of_a_measured_kind_carries_the_physics_band() -> None:
    # CUDA closed-loop TTFT/TPOT are left physics-only by the shipped guards, but CUDA runs
    # measured how far physics strays there, so the band is that spread
    dep = Deployment(model="meta-llama/Meta-Llama-3.1-8B", hardware="h100-sxm", engine="vllm")
    pred = predict(dep, Workload(input_len=512, output_len=128, concurrency=4))
    assert pred.calibration == "physics"
    assert pred.rests_on == (
        "physics only (TTFT, TPOT: no learned correction beat physics in validation)"
    )
    assert pred.ttft_ms_mean_lo < pred.ttft_ms_mean < pred.ttft_ms_mean_hi
    assert pred.output_tok_s_lo <= pred.output_tok_s <= pred.output_tok_s_hi


@pytest.mark.parametrize(
    ("hardware", "kind", "workload"),
    [
        ("gaudi2", "hpu", Workload(input_len=512, output_len=128, concurrency=4)),
        (
            "xeon-8480",
            "cpu",
            Workload(scenario="static", batch_size=4, input_len=512, output_len=128),
        ),
        ("mi300x", "rocm", Workload(input_len=512, output_len=128, concurrency=4)),
    ],
)
def test_an_unmeasured_kind_carries_the_wide_band_not_the_pooled_one(
    hardware: str, kind: str, workload: Workload
) -> None:
    """A band from CUDA residuals would claim an accuracy nobody measured on a Gaudi, a Xeon, or
    ROCm closed loops (only ROCm static batches were measured): these carry the envelope of the
    measured devices' physics-only bands (manifest `unmeasured_band`), wider than the pooled band."""
    dep = Deployment(model="meta-llama/Meta-Llama-3.1-8B", hardware=hardware, engine="vllm")
    with pytest.warns(store.CalibrationWarning, match=f"no measured {kind} runs"):
        pred = predict(dep, workload)
    phys = predict_physics(dep, workload)
    assert pred.calibration == f"physics (no measured {kind} runs)"
    assert pred.rests_on.startswith(f"physics only: no measured {kind} runs of this kind of work")
    metric, family = ("e2e_s_mean", "e2e") if kind == "cpu" else ("ttft_ms_mean", "ttft")
    wide, pooled = store.unmeasured_band(family), store.fallback_band(family)
    assert wide is not None and pooled is not None
    assert f"(wide band: how far physics missed {wide[2]} measured devices)" in pred.rests_on
    value = getattr(pred, metric)
    assert value == getattr(phys, metric)  # the value stays physics
    lo, hi = getattr(pred, f"{metric}_lo"), getattr(pred, f"{metric}_hi")
    assert lo == pytest.approx(value * math.exp(wide[0]))
    assert hi == pytest.approx(value * math.exp(wide[1]))
    assert wide[0] < pooled[0] and wide[1] > pooled[1]


def test_committed_models_fit_the_size_budget_and_load_without_xgboost() -> None:
    import subprocess
    import sys

    root = store.pretrained_dir()
    total = sum(p.stat().st_size for p in root.rglob("*.json"))
    assert total <= 20e6
    code = (
        "import sys\n"
        "from budsim.core.deployment import Deployment, Workload\n"
        "from budsim.core.predict import predict\n"
        "p = predict(Deployment('meta-llama/Meta-Llama-3.1-8B', 'h100-sxm', 'vllm'),\n"
        "            Workload(scenario='static', batch_size=16, input_len=1024, output_len=1024))\n"
        "assert p.calibration.startswith('pretrained/'), p.calibration\n"
        "bad = [m for m in ('xgboost', 'pandas', 'sklearn') if m in sys.modules]\n"
        "print(','.join(bad) or 'clean')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "clean", out.stdout


def test_forests_stacked_by_depth_give_the_same_outputs() -> None:
    """ForestStack evaluates one stack per tree depth; the outputs must be those of the single
    stack of every forest (the committed CUDA and ROCm end-to-end forests differ in depth)."""
    from pathlib import Path

    import numpy as np

    from budsim.core.calibration.forest import Forest, ForestStack, load_forest

    root = Path(store.__file__).resolve().parents[3] / "pretrained"
    forests = [
        load_forest(root / kind / f"e2e_{part}.json")
        for kind in ("cuda", "rocm")
        for part in ("point", "band")
    ]
    assert len({f.depth for f in forests}) > 1  # a stack per depth is what is tested
    rng = np.random.default_rng(0)
    X = rng.normal(scale=50.0, size=(64, forests[0].n_features)).astype(np.float32)
    X[::7, 3] = np.nan  # missing values take each split's default direction in both
    np.testing.assert_allclose(
        ForestStack(forests).predict(X), Forest.stack(forests).predict(X), rtol=0, atol=1e-12
    )


def test_rests_on_names_the_metrics_a_correction_moved_and_its_evidence() -> None:
    """What a prediction rests on comes from the shipped manifest: the measured runs and models
    the moving family was fitted on; a family left at zero reads as physics."""
    import json

    from budsim.core.calibration.apply import rests_on
    from budsim.core.paths import pretrained_dir

    pre = store.pretrained("cuda", ("e2e",))
    assert pre is not None
    entry = json.loads((pretrained_dir() / "manifest.json").read_text())["kinds"]["cuda"]
    rows, models = entry["families"]["e2e"]["rows"], entry["families"]["e2e"]["models"]
    moved = rests_on(("e2e",), {"e2e": (0.1, 0.0, 0.2)}, pre, "cuda")
    assert moved == f"E2E calibrated on {rows:,} measured runs of {models} models (cuda)"
    both = store.pretrained("cuda", ("ttft", "tpot", "e2e"))
    if both is not None:  # the shipped TTFT/TPOT guards may leave them without models
        mixed = rests_on(("ttft", "e2e"), {"ttft": (0.0, 0, 0), "e2e": (0.1, 0, 0)}, both, "cuda")
        assert mixed.endswith("; TTFT physics")
    still = rests_on(("e2e",), {"e2e": (0.0, -0.1, 0.1)}, pre, "cuda")
    assert still == "physics only (E2E: no learned correction beat physics in validation)"


def test_an_engine_without_calibration_says_so() -> None:
    dep = Deployment(model="meta-llama/Meta-Llama-3.1-8B", hardware="h100-sxm", engine="llamacpp")
    pred = predict(dep, Workload(input_len=512, output_len=128, concurrency=1))
    assert pred.rests_on == "physics only: no measured llamacpp runs were calibrated on"
