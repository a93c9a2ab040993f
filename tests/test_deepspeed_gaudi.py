"""DeepSpeed inference on Gaudi as a modelled engine (#17): its profile's limits, the
LLM-Inference-Bench Gaudi2 rows it reads, its exclusion from the shipped calibration and the search,
and the CLI."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from measured import lib_rows, one_row

from budsim.core.calibration import store
from budsim.core.deployment import Deployment, Workload
from budsim.core.engines import get_engine
from budsim.core.errors import BudsimError
from budsim.core.predict import predict, predict_physics
from budsim.learn.evaluate import case_for_row

MODEL = "meta-llama/Llama-2-7b-hf"
BATCH = Workload(scenario="static", input_len=1024, output_len=1024, batch_size=16)


def _dep(**changes: Any) -> Deployment:
    base: dict[str, Any] = dict(model=MODEL, hardware="gaudi2", engine="deepspeed")
    base.update(changes)
    return Deployment(**base)


# ---- the profile -----------------------------------------------------------------------------------


def test_deepspeed_is_a_physics_only_static_batch_engine_on_hpu() -> None:
    profile = get_engine("DeepSpeed-Inference", "hpu")
    assert profile.id == "deepspeed" and not profile.calibrated and profile.static_batches_only
    assert profile.parallelism == frozenset({"tp"}) and profile.graphs
    pred = predict(_dep(), BATCH)
    assert pred.fits and pred.calibration == "physics only (deepspeed is not calibrated)"
    # no learned band: Gaudi's wide one, as every engine on a device kind nobody measured carries
    wide = store.unmeasured_band("e2e")
    assert wide is not None and pred.e2e_s_mean is not None
    assert pred.e2e_s_mean_lo == pytest.approx(pred.e2e_s_mean * math.exp(wide[0]))
    assert pred.e2e_s_mean_hi == pytest.approx(pred.e2e_s_mean * math.exp(wide[1]))
    assert pred.rests_on == (
        "physics only: no measured deepspeed runs were calibrated on "
        f"(wide band: how far physics missed {wide[2]} measured devices)"
    )
    with pytest.raises(BudsimError, match=r"^engine deepspeed does not run on cuda hardware"):
        get_engine("deepspeed", "cuda")


@pytest.mark.parametrize(
    "workload",
    [
        Workload(scenario="concurrency", concurrency=8, input_len=512, output_len=128),
        Workload(scenario="rate", rate=2.0, input_len=512, output_len=128),
    ],
)
def test_deepspeed_refuses_serving_workloads(workload: Workload) -> None:
    with pytest.raises(BudsimError) as err:
        predict_physics(_dep(), workload)
    assert str(err.value) == (
        "DeepSpeed inference (Gaudi) runs static batches only (no serving loop): give "
        f"--batch-size, not a {workload.scenario} workload"
    )


def test_deepspeed_refuses_what_it_does_not_run() -> None:
    with pytest.raises(BudsimError, match="cannot run fp8 weights on hpu"):
        predict_physics(_dep(weight_dtype="fp8"), BATCH)
    with pytest.raises(BudsimError, match="has no fp8 KV cache on hpu"):
        predict_physics(_dep(kv_dtype="fp8"), BATCH)
    with pytest.raises(BudsimError, match="does not support PP"):
        predict_physics(_dep(pp=2), BATCH)


def test_a_bigger_static_batch_takes_longer_but_runs_more_tokens_per_second() -> None:
    one = predict_physics(
        _dep(), Workload(scenario="static", input_len=1024, output_len=1024, batch_size=1)
    )
    many = predict_physics(_dep(), BATCH)
    assert one.e2e_s_max is not None and many.e2e_s_max is not None
    assert many.e2e_s_max > one.e2e_s_max
    assert many.total_tok_s is not None and one.total_tok_s is not None
    assert many.total_tok_s > 8 * one.total_tok_s


# ---- the measured rows -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def gaudi() -> Any:
    df = lib_rows()
    return df[df.hardware_raw == "Habana Gaudi2"]


def test_loader_reads_the_gaudi2_rows_as_hand_checked(gaudi: Any) -> None:
    assert len(gaudi) == 244 and set(gaudi.engine) == {"deepspeed"}
    # All_results.csv line 1674:
    # Habana Gaudi2,1,Deepspeed,meta-llama/Llama-2-7b-hf,1024,16,17.7877031310054,1842.171513582478
    r = one_row(gaudi, "L1674")
    assert (r["hardware"], r["model_raw"], r["engine"], r["weight_dtype"]) == (
        "gaudi2",
        "meta-llama/Llama-2-7b-hf",
        "deepspeed",
        "fp16",
    )
    assert (r["scenario"], r["load"], r["tp"], r["pp"]) == ("static", 16.0, 1, 1)
    assert (r["input_len"], r["output_len"], r["e2e_s"]) == (1024.0, 1024.0, 17.7877031310054)
    assert r["total_tok_s"] == 1842.171513582478  # = (1024 + 1024) * 16 / 17.7877
    assert r["out_tok_s"] == pytest.approx(1842.171513582478 / 2)
    # line 1650: Habana Gaudi2,8,Deepspeed,meta-llama/Llama-2-70b-hf,128,1,1.9440536980109755,...
    r8 = one_row(gaudi, "L1650")
    assert (r8["model_raw"], r8["tp"], r8["load"], r8["e2e_s"]) == (
        "meta-llama/Llama-2-70b-hf",
        8,
        1.0,
        1.9440536980109755,
    )


def test_case_for_row_is_the_static_batch_on_the_deepspeed_profile(gaudi: Any) -> None:
    case = case_for_row(one_row(gaudi, "L1674"))
    dep, wl = case.deployment, case.workload
    assert (dep.engine, dep.hardware, dep.weight_dtype, dep.tp) == (
        "deepspeed",
        "gaudi2",
        "fp16",
        1,
    )
    assert (wl.scenario, wl.batch_size, wl.input_len, wl.output_len) == ("static", 16, 1024, 1024)
    assert ("e2e_s", "e2e_s_max", 17.7877031310054) in case.targets
    pred = predict_physics(dep, wl).e2e_s_max
    assert pred is not None and abs(pred / 17.7877031310054 - 1) < 0.25
    tp8 = case_for_row(one_row(gaudi, "L1650"))
    assert (tp8.deployment.tp, tp8.workload.batch_size) == (8, 1)
    assert predict_physics(tp8.deployment, tp8.workload).fits


def test_training_frame_excludes_the_deepspeed_rows(gaudi: Any) -> None:
    from budsim.learn.samples import build_samples

    rows = gaudi.head(40).to_dict("records")
    built = build_samples(rows)
    # the shipped models were fitted without these rows, so pretrained/ does not change
    assert built.samples == []
    assert built.skipped == {"engine deepspeed is not calibrated": len(rows)}


# ---- search ----------------------------------------------------------------------------------------


def test_search_has_deepspeed_by_default_on_gaudi_and_only_for_static_batches() -> None:
    """No engine on Gaudi is calibrated (physics only), so DeepSpeed competes with vLLM by
    default, but only for static batches: it has no server."""
    from budsim.core.engines import engines_for
    from budsim.core.hardware import make_cluster
    from budsim.core.model import load_model
    from budsim.core.search.space import Limits, build_space

    model = load_model(MODEL)
    cluster = make_cluster("gaudi2", 8)
    wl = Workload(scenario="concurrency", concurrency=4, input_len=512, output_len=128)
    default = build_space(model, cluster, engines_for("hpu"), wl)
    assert {c.id for c in default.engines} == {"vllm"}
    assert "deepspeed: static batches only, not searched for this workload" in default.notes
    static = build_space(model, cluster, engines_for("hpu"), BATCH)
    assert {c.id for c in static.engines} == {"vllm", "deepspeed"}
    with pytest.raises(BudsimError, match="deepspeed: static batches only"):
        build_space(model, cluster, engines_for("hpu"), wl, Limits(engines=("deepspeed",)))
    named = build_space(model, cluster, engines_for("hpu"), BATCH, Limits(engines=("deepspeed",)))
    assert {c.id for c in named.engines} == {"deepspeed"}


# ---- CLI -------------------------------------------------------------------------------------------

BUDSIM = [sys.executable, "-m", "budsim"]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    common = ["--model", MODEL, "--input-len", "1024", "--output-len", "1024"]
    return subprocess.run(
        [*BUDSIM, "predict", *common, *args], capture_output=True, text=True, timeout=120
    )


def test_cli_predicts_a_deepspeed_static_batch_on_gaudi2() -> None:
    out = _cli("--engine", "deepspeed", "--hardware", "gaudi2", "--batch-size", "16")
    assert out.returncode == 0, out.stderr
    assert "physics only (deepspeed is not calibrated)" in out.stdout
    assert "finite run of 16 requests" in out.stdout


def test_cli_bad_deepspeed_input_is_one_line() -> None:
    for args in (
        ("--engine", "deepspeed", "--hardware", "gaudi2", "--concurrency", "8"),
        ("--engine", "deepspeed", "--hardware", "h100-sxm", "--batch-size", "16"),
        ("--engine", "deepspeed", "--hardware", "gaudi2", "--batch-size", "16", "--pp", "2"),
    ):
        out = _cli(*args)
        assert out.returncode != 0
        assert "Traceback" not in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_a_deepspeed_plan_is_not_exported_as_deepspeed(tmp_path: Path) -> None:
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({"model": MODEL, "hardware": "gaudi2", "engine": "deepspeed"}))
    out = subprocess.run(
        [*BUDSIM, "export", str(plan)], capture_output=True, text=True, timeout=120
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "not exported" in out.stderr and "--target vllm" in out.stderr
    served = subprocess.run(
        [*BUDSIM, "export", str(plan), "--target", "vllm"], capture_output=True, text=True
    )
    assert served.returncode == 0 and "VLLM_SKIP_WARMUP" in served.stdout  # the Gaudi plugin's
