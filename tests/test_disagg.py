"""Disaggregated serving: pools, KV handoff, the closed loop's fixed point, and the aic rows."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import pytest

from budsim.core.deployment import Deployment, Workload
from budsim.core.disagg import DisaggDeployment, predict_disagg
from budsim.core.errors import BudsimError
from budsim.core.hardware import get_device
from budsim.learn.evaluate import disagg_case_for_row

LLAMA = "meta-llama/Llama-3.1-8B"


def _pools(prefill: int = 1, decode: int = 1, **kw: object) -> DisaggDeployment:
    dep = Deployment(model=LLAMA, hardware="h100-sxm", engine="vllm", **kw)  # type: ignore[arg-type]
    return DisaggDeployment(dep.with_(replicas=prefill), dep.with_(replicas=decode))


def test_the_pools_must_agree_and_the_workload_must_be_modelled() -> None:
    dd = _pools()
    other = DisaggDeployment(dd.prefill, dd.decode.with_(engine="sglang"))
    with pytest.raises(BudsimError, match="one engine"):
        predict_disagg(other, Workload(concurrency=4))
    for workload, needle in (
        (Workload(scenario="static", batch_size=4), "not a batch"),
        (Workload(concurrency=4, input_len_spread=0.2), "fixed lengths"),
        (Workload(scenario="rate", rate=1.0, num_requests=100), "closed loop"),
    ):
        with pytest.raises(BudsimError, match=needle):
            predict_disagg(dd, workload)
    with pytest.raises(BudsimError, match="serves at most"):
        predict_disagg(dd, Workload(scenario="rate", rate=1000.0, input_len=2048))


def test_kv_handoff_is_the_prompts_kv_over_nvlink_within_a_node() -> None:
    _, t = predict_disagg(_pools(), Workload(concurrency=1, input_len=2048, output_len=16))
    # Llama-3.1-8B: 32 layers x 8 KV heads x 128 x (K and V) x 2 bytes = 131,072 B per token
    device = get_device("h100-sxm")
    expected = 2048 * 131_072 / (device.scaleup_bw_gbs * 1e9) + device.scaleup_latency_us * 1e-6
    assert t.transfer_s == pytest.approx(expected, rel=1e-6)


def test_the_closed_loop_obeys_littles_law_and_a_busy_prefill_pool_queues() -> None:
    workload = Workload(concurrency=128, input_len=2048, output_len=256)
    one, t1 = predict_disagg(_pools(prefill=1, decode=3), workload)
    two, t2 = predict_disagg(_pools(prefill=2, decode=2), workload)
    for pred in (one, two):
        assert pred.ttft_ms_mean is not None and pred.tpot_ms_mean is not None
        cycle = pred.ttft_ms_mean / 1e3 + 255 * pred.tpot_ms_mean / 1e3
        assert pred.requests_per_s is not None
        assert pred.requests_per_s * cycle == pytest.approx(128, rel=0.02)
    # one prefill worker is nearly saturated and its queue dominates TTFT; a second one empties it
    assert t1.requests_per_s > 0.9 * t1.prefill_rate and one.bottleneck == "prefill"
    assert t1.prefill_wait_s > 10 * t2.prefill_wait_s
    assert two.ttft_ms_mean is not None and one.ttft_ms_mean is not None
    assert two.ttft_ms_mean < 0.2 * one.ttft_ms_mean
    # TPOT is the decode pool's alone: fewer requests per decode worker, faster tokens
    assert t2.decode_in_flight > t1.decode_in_flight
    assert two.tpot_ms_mean is not None and one.tpot_ms_mean is not None
    assert two.tpot_ms_mean > one.tpot_ms_mean


def test_an_aic_disagg_row_becomes_its_pools() -> None:
    row = {
        "mode": "disagg",
        "model": "moonshotai/Kimi-K2.5",
        "hardware": "gb200",
        "engine": "trtllm",
        "weight_dtype": "nvfp4",
        "kv_dtype": "fp8",
        "prefill_workers": 1.0,
        "prefill_tp": 1.0,
        "prefill_pp": 1.0,
        "prefill_dp": 4.0,
        "prefill_ep": 4.0,
        "decode_workers": 4.0,
        "tp": 8,
        "pp": 1,
        "dp": 1,
        "ep": 8,
        "load": 4.0,
        "input_len": 1024.0,
        "output_len": 1024.0,
        "ttft_ms": 195.5,
        "tpot_ms": 5.3,
    }
    dd, workload, targets = disagg_case_for_row(row)
    p, d = dd.prefill, dd.decode
    assert (p.tp, p.dp, p.ep, p.replicas) == (1, 4, 4, 1)
    assert (d.tp, d.dp, d.ep, d.replicas) == (8, 1, 8, 4)
    assert dd.devices == 36 and p.weight_dtype == d.weight_dtype == "nvfp4"
    # the harness's run: 10 requests per client, its opening burst included
    assert (workload.concurrency, workload.input_len, workload.num_requests) == (4, 1024, 40)
    assert targets == (("ttft_ms", 195.5), ("tpot_ms", 5.3))
    with pytest.raises(BudsimError, match="worker counts"):
        disagg_case_for_row({**row, "prefill_workers": float("nan")})


def test_predict_cli_disaggregated() -> None:
    base = [sys.executable, "-m", "budsim", "predict", "--model", LLAMA, "--hardware", "h100-sxm"]
    base += ["--concurrency", "64", "--input-len", "2048", "--output-len", "256"]
    out = subprocess.run(
        [*base, "--prefill-workers", "1", "--decode-workers", "2"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert "note: disaggregated: 1 prefill x TP1 DP1 EP1 + 2 decode x TP1 DP1 EP1 = 3 devices" in (
        out.stdout
    )
    assert (
        "KV handoff" in out.stdout
        and "disaggregated: TTFT percentiles from the prefill queue" in out.stdout
    )
    bad = subprocess.run(
        [*base, "--decode-workers", "2"], capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "need --prefill-workers" in bad.stderr


def test_ttft_percentiles_follow_the_prefill_queue() -> None:
    pred, t = predict_disagg(_pools(prefill=1, decode=2), Workload(concurrency=64, input_len=2048))
    base = (t.front_end_s + t.prefill_alone_s + t.transfer_s + t.handoff_s) * 1e3
    assert pred.ttft_ms_mean == pytest.approx(base + t.prefill_wait_s * 1e3)
    ps = [pred.ttft_ms_p50, pred.ttft_ms_p90, pred.ttft_ms_p95, pred.ttft_ms_p99]
    assert all(p is not None for p in ps)
    assert ps == sorted(ps) and ps[0] >= base  # type: ignore[type-var]
    # the exponential tail around the mean wait: p99 - base = (W / rho) ln(100 rho)
    rho = t.requests_per_s / t.prefill_rate
    expected = (t.prefill_wait_s / rho) * math.log(100 * rho) * 1e3
    assert ps[3] == pytest.approx(base + expected)


def test_optimize_compares_disaggregated_splits() -> None:
    """--disagg predicts every P:D split of the devices, each pool in its own power-of-two TP
    (the best replica's among them), and says whether one beats the aggregated best, by the
    search's own scorer."""
    cmd = [sys.executable, "-m", "budsim", "optimize", "--model", LLAMA, "--hardware", "h100-sxm"]
    cmd += ["--devices", "4", "--concurrency", "64", "--input-len", "4096", "--output-len", "256"]
    cmd += ["--population", "16", "--generations", "3", "--seed", "1", "--disagg", "--no-save"]
    out = subprocess.run([*cmd, "--json"], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    response = json.loads(out.stdout)
    comparison = response["disaggregated"]
    best = response["optimal_configuration"]
    splits = {
        (r["prefill_tp"], r["prefill_workers"], r["decode_tp"], r["decode_workers"])
        for r in comparison["splits"]
    }
    # every pair of pool layouts, every prefill count, the rest of the 4 devices decoding
    expected = {
        (a, p, b, (4 - p * a) // b)
        for a in (1, 2)
        for b in (1, 2)
        for p in range(1, (4 - b) // a + 1)
    }
    assert expected <= splits  # (a TP4 replica of the best's own leaves no second pool)
    assert f"TP{best['tp']}" in comparison["searched"]  # the best's own layout is one of them
    assert all(r["devices"] <= 4 for r in comparison["splits"] if "error" not in r)
    chosen = comparison["best"]
    assert chosen is not None
    feasible = [r for r in comparison["splits"] if r.get("feasible")]
    if feasible:  # the best split is the feasible one with the highest target
        assert chosen["target"] == max(r["target"] for r in feasible)
    aggregated = response["objectives"]["target"]
    assert comparison["beats_aggregated"] == (chosen["feasible"] and chosen["target"] > aggregated)
    assert comparison["verdict"]
    table = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert table.returncode == 0 and "Disaggregated:" in table.stdout


def test_the_best_split_exports_each_pools_own_tp() -> None:
    """A split whose pools took layouts of their own (prefill TP1, decode TP4) is exported in
    them, not in the aggregated best's TP2."""
    from budsim.core.export.plan import select_disaggregated

    best = {"model": LLAMA, "hardware": "h100-sxm", "engine": "sglang", "tp": 2, "replicas": 4}
    split = {
        "prefill_workers": 4,
        "decode_workers": 1,
        "prefill_tp": 1,
        "decode_tp": 4,
        "predicted_performance": {"ttft_ms_mean": 120.0},
    }
    doc = {
        "optimal_configuration": best,
        "predicted_performance": {},
        "disaggregated": {"best": split, "beats_aggregated": True, "verdict": "ahead"},
    }
    config, warning = select_disaggregated(doc)
    assert (config["prefill_tp"], config["tp"]) == (1, 4) and "replicas" not in config
    assert (config["prefill_workers"], config["decode_workers"]) == (4, 1) and warning is None
    older = {**doc, "disaggregated": {"best": {**split, "prefill_tp": None, "decode_tp": None}}}
    config, _ = select_disaggregated(older)  # saved before pools had layouts: the replica's TP
    assert config["tp"] == 2 and "prefill_tp" not in config


def test_the_shipped_handoff_time_is_the_benchmarks_fit() -> None:
    """HANDOFF_CONTROL_S is what benchmarks/disagg_accuracy.py fits from the measured runs (the
    median low-load TTFT excess), not a number typed in: refit it from the data."""
    import importlib.util
    from pathlib import Path

    from measured import data_or_skip

    from budsim.core.disagg import HANDOFF_CONTROL_S

    data = data_or_skip()
    script = Path(__file__).resolve().parents[1] / "benchmarks" / "disagg_accuracy.py"
    spec = importlib.util.spec_from_file_location("disagg_accuracy", script)
    assert spec is not None and spec.loader is not None
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    cases, _, _ = bench.load_cases(data)
    assert bench.fit(cases, lambda row: True) == pytest.approx(HANDOFF_CONTROL_S, abs=5e-4)


def test_a_finite_run_adds_the_clients_opening_burst() -> None:
    """A finite closed loop from a cold start: its C clients' prompts meet the prefill pool
    together (the k-th on a worker waits k / mu), C of its N requests; the rest is steady."""
    dd = _pools(prefill=2, decode=2)
    steady, t = predict_disagg(dd, Workload(concurrency=64, input_len=2048))
    burst, _ = predict_disagg(dd, Workload(concurrency=64, input_len=2048, num_requests=64))
    tenfold, _ = predict_disagg(dd, Workload(concurrency=64, input_len=2048, num_requests=640))
    base = (t.front_end_s + t.prefill_alone_s + t.transfer_s + t.handoff_s) * 1e3
    spread = (64 / 2 - 1) / t.prefill_rate * 1e3  # the last of a worker's 32 waits this long
    assert burst.ttft_ms_mean == pytest.approx(base + spread / 2)  # every request in the burst
    assert tenfold.ttft_ms_mean == pytest.approx(
        0.1 * (base + spread / 2) + 0.9 * steady.ttft_ms_mean  # type: ignore[operator]
    )
    assert burst.ttft_ms_p50 == pytest.approx(base + spread / 2, rel=1e-6)  # uniform: its middle
    ps = [tenfold.ttft_ms_p50, tenfold.ttft_ms_p90, tenfold.ttft_ms_p95, tenfold.ttft_ms_p99]
    assert ps == sorted(ps) and tenfold.tpot_ms_mean == steady.tpot_ms_mean  # type: ignore[type-var]
    assert "finite run of 640 requests" in tenfold.run
    with pytest.raises(BudsimError, match="closed loop"):
        predict_disagg(dd, Workload(scenario="rate", rate=2.0, input_len=2048, num_requests=64))
