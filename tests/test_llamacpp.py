"""llama.cpp (llama-server) as a modelled engine: GGUF formats, its profile's limits, the
LLM-Inference-Bench rows it is validated on, its exclusion from the shipped calibration, the search
and the export of its plans."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from measured import lib_rows, one_row

from budsim.core.calibration.store import CalibrationWarning
from budsim.core.deployment import Deployment, Workload
from budsim.core.dtypes import WEIGHT_BYTES
from budsim.core.engines import ENGINE_IDS, get_engine
from budsim.core.errors import BudsimError
from budsim.core.export import export_target
from budsim.core.export.plan import from_config_json
from budsim.core.model import load_model
from budsim.core.predict import predict, predict_physics
from budsim.learn.evaluate import case_for_row

MODEL = "meta-llama/Llama-3.1-8B"
BATCH1 = Workload(scenario="static", input_len=128, output_len=128, batch_size=1)


def _dep(**changes: Any) -> Deployment:
    base: dict[str, Any] = dict(model=MODEL, hardware="h100-sxm", engine="llamacpp")
    base.update(changes)
    return Deployment(**base)


# ---- formats and physics ---------------------------------------------------------------------------


def test_gguf_weights_use_their_whole_file_bits_per_weight() -> None:
    # llama.cpp tools/quantize/README.md: Q4_K_M 4.84 and Q5_K_M 5.68 BPW (Llama 2 7B), Q8_0 8.5
    assert WEIGHT_BYTES["q4_k_m"] * 8 == pytest.approx(4.84)
    assert WEIGHT_BYTES["q5_k_m"] * 8 == pytest.approx(5.68)
    assert WEIGHT_BYTES["q8_0"] * 8 == pytest.approx(8.5)
    params = load_model(MODEL).total_params
    for dtype, bpw in (("q4_k_m", 4.84), ("q5_k_m", 5.68), ("q8_0", 8.5)):
        pred = predict_physics(_dep(weight_dtype=dtype), BATCH1)
        # embeddings and output are in the file too, so the whole model is at the BPW
        assert pred.weights_gb_per_device == pytest.approx(params * bpw / 8 / 1e9, rel=0.01)


def test_q4_k_m_decodes_faster_than_f16_by_about_the_bytes_ratio() -> None:
    # batch 1 on a CPU socket: reading the weights is nearly the whole step
    tpot = {
        dtype: predict_physics(_dep(hardware="xeon-8480", weight_dtype=dtype), BATCH1).tpot_ms_mean
        for dtype in ("fp16", "q4_k_m")
    }
    assert tpot["fp16"] is not None and tpot["q4_k_m"] is not None
    ratio = tpot["fp16"] / tpot["q4_k_m"]
    assert 0.85 * 16 / 4.84 < ratio < 16 / 4.84


def test_llamacpp_runs_on_every_kind_it_is_built_for_and_is_physics_only() -> None:
    assert "llamacpp" in ENGINE_IDS
    for kind in ("cuda", "rocm", "cpu"):
        profile = get_engine("llama.cpp", kind)
        assert profile.parallelism == frozenset({"pp"}) and not profile.calibrated
    assert not get_engine("llamacpp", "cpu").graphs
    pred = predict(_dep(weight_dtype="q4_k_m"), BATCH1)  # calibrated=True asks for a correction
    assert pred.fits and pred.calibration.startswith("physics only")
    assert pred.ttft_ms_mean_lo is None  # no learned band either (CUDA runs were measured)
    # on a Xeon, which nobody measured, it carries the kind's wide band like vLLM's CPU backend
    cpu = predict(_dep(hardware="xeon-8480", weight_dtype="q4_k_m"), BATCH1)
    with pytest.warns(CalibrationWarning, match="no measured cpu runs"):
        vllm_cpu = predict(_dep(hardware="xeon-8480", engine="vllm", weight_dtype="bf16"), BATCH1)
    assert cpu.e2e_s_mean is not None and vllm_cpu.e2e_s_mean is not None
    assert cpu.e2e_s_mean_hi / cpu.e2e_s_mean == pytest.approx(
        vllm_cpu.e2e_s_mean_hi / vllm_cpu.e2e_s_mean
    )
    assert "(wide band: how far physics missed" in cpu.rests_on


def test_llamacpp_refuses_tensor_parallelism_but_splits_layers() -> None:
    with pytest.raises(BudsimError, match="does not support TP.*use pp"):
        predict_physics(_dep(tp=2), BATCH1)
    two = predict_physics(_dep(hardware="mi300x", pp=2, weight_dtype="q8_0"), BATCH1)
    assert two.fits and two.devices == 2


def test_other_engines_refuse_gguf_formats_in_one_line() -> None:
    for engine in ("vllm", "sglang", "trtllm"):
        with pytest.raises(BudsimError) as err:
            predict_physics(_dep(engine=engine, weight_dtype="q4_k_m"), BATCH1)
        assert str(err.value) == (
            f"q4_k_m is a GGUF format: only llamacpp runs it, not {get_engine(engine, 'cuda').name}"
        )


def test_llamacpp_refuses_formats_it_has_no_gguf_type_for() -> None:
    for dtype in ("int4", "fp8", "nvfp4"):
        with pytest.raises(BudsimError, match=f"cannot run {dtype} weights"):
            predict_physics(_dep(weight_dtype=dtype), BATCH1)


# ---- the measured rows -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lib() -> Any:
    df = lib_rows()
    return df[df.engine == "llamacpp"]


def test_loader_reads_llamacpp_rows_as_single_stream_runs(lib: Any) -> None:
    # All_results.csv line 235: Nvidia A100 GPU,1,llama.cpp,meta-llama/Llama-2-7b-hf,128,1,4.344691,58.922482
    r = one_row(lib, "L235")
    assert (r["hardware"], r["model_raw"], r["engine"]) == (
        "a100-sxm-40gb",
        "meta-llama/Llama-2-7b-hf",
        "llamacpp",
    )
    assert (r["load"], r["max_num_batched_tokens"], r["tp"], r["pp"]) == (1.0, 1.0, 1, 1)
    assert (r["input_len"], r["output_len"], r["e2e_s"]) == (128.0, 128.0, 4.344691)
    assert r["total_tok_s"] == 58.922482  # = 2 * 128 / 4.344691
    # line 236: the same run at -b 16 (one sequence; the prompt in chunks of 16)
    r16 = one_row(lib, "L236")
    assert (r16["load"], r16["max_num_batched_tokens"], r16["e2e_s"]) == (1.0, 16.0, 2.330946)
    # a four-GPU run is a layer split (pp), not TP
    four = lib[(lib.n_devices == 4) & lib.hardware.notna()].iloc[0]
    assert (four["tp"], four["pp"]) == (1, 4)


def test_case_for_row_is_a_batch_one_run_chunked_by_n_batch(lib: Any) -> None:
    case = case_for_row(one_row(lib, "L236"))
    dep, wl = case.deployment, case.workload
    assert (dep.engine, dep.hardware, dep.weight_dtype) == ("llamacpp", "a100-sxm-40gb", "fp16")
    assert (dep.tp, dep.pp, dep.max_num_batched_tokens) == (1, 1, 16)
    assert (wl.scenario, wl.batch_size, wl.input_len, wl.output_len) == ("static", 1, 128, 128)
    assert ("e2e_s", "e2e_s_max", 2.330946) in case.targets
    # -b 1 feeds the prompt one token a step: slower than -b 16, as measured
    b1 = predict_physics(case_for_row(one_row(lib, "L235")).deployment, wl).e2e_s_max
    b16 = predict_physics(dep, wl).e2e_s_max
    assert b1 is not None and b16 is not None and b1 > 1.5 * b16
    pvc = lib[lib.hardware_raw == "Intel PVC GPU"].iloc[0]
    with pytest.raises(BudsimError, match="hardware outside the catalog"):
        case_for_row(dict(pvc))


def test_training_frame_excludes_llamacpp_rows(lib: Any) -> None:
    from budsim.core.calibration.features import FEATURES
    from budsim.learn.samples import build_samples

    rows = lib[lib.hardware.notna()].head(40).to_dict("records")
    built = build_samples(rows)
    assert built.samples == []
    assert built.skipped == {"engine llamacpp is not calibrated": len(rows)}
    # the pretrained models' feature vector keeps its three engine columns
    assert [f for f in FEATURES if f.startswith("e_") and f[2:] in ENGINE_IDS] == [
        "e_vllm",
        "e_sglang",
        "e_trtllm",
    ]


# ---- search and export -----------------------------------------------------------------------------


def test_search_has_llamacpp_by_default_only_where_no_engine_is_calibrated() -> None:
    """On CUDA a physics-only llama.cpp is not ranked against calibrated engines unless named;
    on a CPU every engine is physics-only (no measured CPU serving runs), so it competes with
    vLLM's CPU backend by default."""
    from budsim.core.engines import engines_for
    from budsim.core.hardware import make_cluster
    from budsim.core.search.space import Limits, build_space

    model = load_model(MODEL)
    cluster = make_cluster("h100-sxm", 4)
    wl = Workload(scenario="concurrency", concurrency=4, input_len=512, output_len=128)
    default = build_space(model, cluster, engines_for("cuda"), wl)
    assert "llamacpp" not in {c.id for c in default.engines}
    assert "llamacpp: physics-only, searched when named in --engines" in default.notes
    cpu = build_space(model, make_cluster("xeon-8480", 2), engines_for("cpu"), wl)
    assert {c.id for c in cpu.engines} == {"vllm", "llamacpp"}
    assert not any("physics-only" in note for note in cpu.notes)
    named = build_space(model, cluster, engines_for("cuda"), wl, Limits(engines=("llamacpp",)))
    (choice,) = named.engines
    # the checkpoint is bf16: "auto" is its BF16 GGUF
    assert set(choice.weight_dtypes) == {"auto", "q4_k_m", "q5_k_m", "q8_0"}
    layouts = named._layouts[0]
    assert layouts and all(named.tp[t] == 1 for t, *_ in layouts)
    assert any(named.pp[p] > 1 for _, p, *_ in layouts)


def test_export_of_a_gpu_plan_splits_layers_and_carries_its_prediction() -> None:
    plan = from_config_json(
        {
            "model": MODEL,
            "max_model_len": 4096,
            "kv_bytes_per_token": 131072,
            "hardware": "h100-sxm",
            "device_kind": "cuda",
            "devices_per_node": 8,
            "engine": "llamacpp",
            "tp": 1,
            "pp": 2,
            "weight_dtype": "q4_k_m",
            "max_num_seqs": 4,
            "max_num_batched_tokens": 2048,
            "workload": {"input_len": 512, "output_len": 128, "concurrency": 4},
        }
    )
    (script,) = export_target(plan, "llamacpp")
    text = script.content
    assert "--split-mode layer" in text and "--n-gpu-layers all" in text
    assert "--parallel 4" in text and "--threads" not in text and "Q4_K_M" in text
    assert "llama.cpp's own prediction (physics only, q4_k_m): TTFT" in text


# ---- CLI -------------------------------------------------------------------------------------------

BUDSIM = [sys.executable, "-m", "budsim"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    common = ["--model", MODEL, "--input-len", "256", "--output-len", "64", "--concurrency", "2"]
    return subprocess.run(
        [*BUDSIM, "predict", *common, *args], capture_output=True, text=True, timeout=120
    )


def test_a_cpu_search_says_its_physics_only_warning_once() -> None:
    """Every prediction of a CPU search falls back to physics; the warning is printed once, not
    once per worker process and per call site."""
    out = subprocess.run(
        [sys.executable, "-m", "budsim", "optimize", "--model", MODEL, "--hardware", "xeon-8480"]
        + ["--devices", "2", "--concurrency", "2", "--input-len", "256", "--output-len", "64"]
        + ["--no-save", "--workers", "2", "--generations", "1"],
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr
    warnings = [line for line in out.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "no measured cpu runs" in warnings[0], out.stderr


def test_cli_predicts_llamacpp_physics_only() -> None:
    out = _cli("--engine", "llamacpp", "--hardware", "xeon-8480", "--weight-dtype", "q4_k_m")
    assert out.returncode == 0, out.stderr
    assert "physics only (llamacpp is not calibrated)" in out.stdout


def test_cli_bad_gguf_dtype_is_one_line() -> None:
    for args in (
        ("--engine", "llamacpp", "--hardware", "h100-sxm", "--weight-dtype", "q3_k"),
        ("--engine", "vllm", "--hardware", "h100-sxm", "--weight-dtype", "q4_k_m"),
    ):
        out = _cli(*args)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


# ---- llama.cpp's own efficiencies (benchmarks/llamacpp_accuracy.py, issue #17 item 3) -------------


def test_llamacpp_prices_with_its_own_efficiencies_and_no_other_engine_does() -> None:
    from budsim.core.hardware import get_device
    from budsim.core.roofline import _ENGINE_ETA, _ETA
    from budsim.core.steptime import cost_source

    for hw, kind in (("mi300x", "rocm"), ("mi250", "rocm"), ("a100-sxm-40gb", "cuda")):
        device = get_device(hw)
        assert cost_source(device, "llamacpp").eta is _ENGINE_ETA[("llamacpp", kind)]
        for engine in ("vllm", "sglang", "trtllm"):
            source = cost_source(device, engine)
            # kernel tables where the device has them, else the kind's default roofline
            assert getattr(source, "eta", _ETA[kind]) is _ETA[kind]
    # the engine-specific shares are only those the benchmark fitted: physically plausible ones
    for eta in _ENGINE_ETA.values():
        assert 0.1 <= eta.memory <= 0.92 and 0.0 <= eta.latency_us <= 50.0


def test_shipped_llamacpp_efficiencies_reproduce_the_benchmarks_in_sample_figure(lib: Any) -> None:
    """benchmarks/llamacpp_accuracy.md's all-rows fit, in sample (the shipped values are that
    fit): median APE of whole-run latency per kind, within half a point."""
    import numpy as np

    from budsim.core.hardware import get_device
    from budsim.learn.evaluate import join_predictions

    rows = lib[lib.hardware.notna()]
    joined = join_predictions(rows.to_dict("records"))
    e2e = joined[(joined.metric == "e2e_s") & joined.error.isna()]
    assert len(e2e) == 1025
    kinds = np.asarray([get_device(h).kind for h in e2e.hardware])
    ape = np.abs(e2e.predicted.to_numpy() / e2e.measured.to_numpy() - 1.0)
    for kind, expected in {"cuda": 0.044, "rocm": 0.669}.items():
        assert abs(float(np.median(ape[kinds == kind])) - expected) < 0.005, kind
