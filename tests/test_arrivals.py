"""Arrivals at a rate: gamma-distributed gaps of a given shape (`burstiness`), as vLLM's and AIPerf's
benchmark clients draw them, through the simulator, the CLI and the calibration importer."""

from __future__ import annotations

import json
import random
import statistics
from pathlib import Path

import pytest

from budsim.core.calibration import user
from budsim.core.cases import parse_case
from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.predict import predict_physics, replica_workload, thinned_burstiness
from budsim.core.simulator import arrival_gap

DEP = Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine="vllm")
FIXTURES = Path(__file__).parent / "fixtures" / "calibration"


def _gaps(burstiness: float, n: int = 40_000, rate: float = 5.0) -> list[float]:
    rng = random.Random(3)
    return [arrival_gap(rng, rate, burstiness) for _ in range(n)]


@pytest.mark.parametrize("burstiness", [0.25, 1.0, 4.0, 100.0])
def test_gaps_have_the_rate_and_the_spread_of_the_gamma_shape(burstiness: float) -> None:
    gaps = _gaps(burstiness)
    mean = statistics.fmean(gaps)
    cv = statistics.pstdev(gaps) / mean
    assert mean == pytest.approx(1 / 5.0, rel=0.03)
    assert cv == pytest.approx(burstiness**-0.5, rel=0.05)


def test_poisson_is_the_default_and_unchanged() -> None:
    """burstiness 1 draws the same exponential gaps as before it existed."""
    rng_a, rng_b = random.Random(7), random.Random(7)
    assert [arrival_gap(rng_a, 3.0, 1.0) for _ in range(5)] == [
        rng_b.expovariate(3.0) for _ in range(5)
    ]
    assert Workload().burstiness == 1.0


def test_burstier_arrivals_wait_longer_at_the_same_rate() -> None:
    """At the same mean load, clustered arrivals queue more: mean and p99 TTFT rise as the gamma
    shape falls, while the served rate stays the offered one."""
    ttft, p99 = [], []
    for burstiness in (100.0, 4.0, 1.0, 0.25):
        w = Workload(
            scenario="rate",
            rate=20.0,
            input_len=1024,
            output_len=128,
            burstiness=burstiness,
            num_requests=600,
        )
        p = predict_physics(DEP, w)
        assert p.ttft_ms_mean is not None and p.ttft_ms_p99 is not None
        ttft.append(p.ttft_ms_mean)
        p99.append(p.ttft_ms_p99)
    assert ttft == sorted(ttft) and p99 == sorted(p99)
    assert ttft[-1] > 1.3 * ttft[0]


@pytest.mark.parametrize("burstiness", [0.05, 0.25, 1.0])
def test_bursty_runs_are_long_enough_to_serve_the_offered_rate(burstiness: float) -> None:
    """The simulated run has enough arrivals for their mean rate to be the offered one, however
    bursty (400 gaps of shape 0.05 made a run 37 % faster than asked)."""
    w = Workload(scenario="rate", rate=2.0, input_len=256, output_len=64, burstiness=burstiness)
    assert predict_physics(DEP, w).requests_per_s == pytest.approx(2.0, rel=0.1)


def test_random_routing_thins_the_arrivals_as_predicted() -> None:
    """Each of 4 replicas behind a random router sees gaps whose spread matches the shape
    `thinned_burstiness` gives it (a thinned Poisson process stays Poisson)."""
    assert thinned_burstiness(1.0, 4) == pytest.approx(1.0)
    rng = random.Random(5)
    for burstiness in (0.25, 4.0):
        t, last, gaps = 0.0, None, []
        for _ in range(200_000):
            t += arrival_gap(rng, 10.0, burstiness)
            if rng.random() < 0.25:  # this request goes to replica 0
                if last is not None:
                    gaps.append(t - last)
                last = t
        cv2 = (statistics.pstdev(gaps) / statistics.fmean(gaps)) ** 2
        assert 1 / cv2 == pytest.approx(thinned_burstiness(burstiness, 4), rel=0.05)
    w = replica_workload(Workload(scenario="rate", rate=8.0, burstiness=0.5), 4)
    assert w.rate == 2.0 and w.burstiness == pytest.approx(thinned_burstiness(0.5, 4))


def test_cases_parse_burstiness_and_refuse_it_without_a_rate() -> None:
    fields = {"model": "m", "hardware": "h100-sxm", "engine": "vllm", "input_len": "8"}
    fields |= {"output_len": "8", "rate": "3"}
    assert parse_case({**fields, "burstiness": "0.5"})[1].burstiness == 0.5
    assert parse_case(fields)[1].burstiness == 1.0
    for bad in ("0", "-1", "inf", "x", "0.01"):
        with pytest.raises(BudsimError, match="burstiness must be a"):
            parse_case({**fields, "burstiness": bad})
    closed = {**fields, "rate": "", "concurrency": "4", "burstiness": "2"}
    with pytest.raises(BudsimError, match="rate scenario"):
        parse_case(closed)


def test_imported_benchmarks_keep_their_arrival_pattern(tmp_path: Path) -> None:
    """A rate benchmark is reproduced with the arrivals its tool drew."""
    data = json.loads((FIXTURES / "vllm_bench_serve.json").read_text())
    data |= {"max_concurrency": None, "request_rate": 4.0, "burstiness": 0.5}
    path = tmp_path / "bursty.json"
    path.write_text(json.dumps(data))
    (point,) = user.parse_results(path)
    assert (point.scenario, point.rate, point.burstiness) == ("rate", 4.0, 0.5)
    fields = user.parse_deployment("model=meta-llama/Llama-3.1-8B,hardware=h100-sxm")
    assert user._case(fields, point)[1].burstiness == 0.5

    aiperf = json.loads((FIXTURES / "profile_export_aiperf.json").read_text())
    loadgen = aiperf["input_config"]["loadgen"]
    loadgen.pop("concurrency", None)
    loadgen.pop("request_rate_mode", None)
    loadgen |= {"request_rate": 6.0, "arrival_pattern": "gamma", "arrival_smoothness": 2.5}
    path = tmp_path / "aiperf.json"
    path.write_text(json.dumps(aiperf))
    (point,) = user.parse_results(path)
    assert (point.rate, point.burstiness) == (6.0, 2.5)
    loadgen |= {"arrival_pattern": "constant"}
    path.write_text(json.dumps(aiperf))
    (point,) = user.parse_results(path)
    assert point.burstiness == user.CONSTANT_RATE_BURSTINESS
    del loadgen["arrival_pattern"]
    loadgen["request_rate_mode"] = "constant"  # how older AIPerf releases name it
    path.write_text(json.dumps(aiperf))
    assert user.parse_results(path)[0].burstiness == user.CONSTANT_RATE_BURSTINESS

    guide = json.loads((FIXTURES / "guidellm_benchmarks.json").read_text())
    strategy = guide["benchmarks"][0]["config"]["strategy"]
    strategy.clear()
    strategy |= {"type_": "constant", "rate": 2.0}
    path = tmp_path / "guidellm.json"
    path.write_text(json.dumps(guide))
    point = user.parse_results(path)[0]
    assert (point.scenario, point.rate, point.burstiness) == (
        "rate",
        2.0,
        user.CONSTANT_RATE_BURSTINESS,
    )
