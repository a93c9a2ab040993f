"""Simulations shared between deployments whose knobs do not bind: the shared answer is the one a
fresh simulation gives."""

from __future__ import annotations

import pytest

from budsim.core.deployment import Deployment, Workload
from budsim.core.predict import clear_simulation_cache, predict_physics, resolve, step_model
from budsim.core.simulator import ServingResult, simulate_serving

DEP = Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine="vllm")


def _run(workload: Workload, budget: int, seqs: int = 256) -> ServingResult:
    r = resolve(DEP)
    return simulate_serving(
        step_model(DEP),
        r.engine,
        workload,
        kv_capacity_tokens=2**62,
        max_num_seqs=seqs,
        max_num_batched_tokens=budget,
    )


def _numbers(res: ServingResult) -> tuple[object, ...]:
    return (
        res.summary("ttft"),
        res.summary("tpot"),
        res.summary("e2e"),
        res.requests,
        res.makespan,
        res.steps,
    )


@pytest.mark.parametrize(
    "workload",
    [
        Workload(concurrency=32, input_len=1024, output_len=128),
        Workload(concurrency=100, input_len=512, output_len=64),  # a queue (64 sequences)
        Workload(concurrency=16, input_len=1024, output_len=128, num_requests=80),
        Workload(scenario="static", batch_size=8, input_len=1024, output_len=32),
    ],
)
def test_a_budget_that_never_binds_gives_the_run_of_every_larger_budget(
    workload: Workload,
) -> None:
    seqs = 64
    wide = _run(workload, 1 << 20, seqs)
    assert not wide.budget_binds
    assert 1 <= wide.budget_need <= 1 << 20
    for budget in (wide.budget_need, wide.budget_need + 1, 1 << 24):
        assert _numbers(_run(workload, budget, seqs)) == _numbers(wide)
    if wide.budget_need > 1:
        # one token less, and the budget decides something
        assert _run(workload, wide.budget_need - 1, seqs).budget_binds


def test_a_binding_budget_is_reported() -> None:
    # 64 clients of 4,096-token prompts cannot prefill in 1,024-token steps without chunking
    res = _run(Workload(concurrency=64, input_len=4096, output_len=64), 1024)
    assert res.budget_binds


def test_predictions_that_differ_in_a_budget_above_the_need_are_the_fresh_simulation() -> None:
    workload = Workload(concurrency=48, input_len=1024, output_len=256)
    budgets = (16384, 8192, 4096, 2048, 1024)
    clear_simulation_cache()
    shared = [predict_physics(DEP.with_(max_num_batched_tokens=b), workload) for b in budgets]
    for budget, pred in zip(budgets, shared, strict=True):
        clear_simulation_cache()
        fresh = predict_physics(DEP.with_(max_num_batched_tokens=budget), workload)
        assert fresh.to_dict() == pred.to_dict()


@pytest.mark.parametrize(
    ("engine", "clients", "seqs", "isl", "osl"),
    [
        ("vllm", 96, 32, 1024, 256),
        ("trtllm", 100, 48, 2048, 128),
        ("sglang", 40, 16, 1000, 300),
    ],
)
def test_a_queued_steady_loop_is_read_off_its_period(
    engine: str, clients: int, seqs: int, isl: int, osl: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """More clients than sequence slots: the steady state, read off a period of the schedule
    within a few completions, equals the loop simulated request by request (no shortcuts) for 50
    requests per client: TTFT and TPOT mean and percentiles and the throughput within 1 %."""
    from budsim.core import simulator

    dep = Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine=engine)
    r = resolve(dep)
    limits = {"kv_capacity_tokens": 2**62, "max_num_seqs": seqs, "max_num_batched_tokens": 8192}
    workload = Workload(concurrency=clients, input_len=isl, output_len=osl)
    fast = simulate_serving(step_model(dep), r.engine, workload, **limits)
    assert fast.steady and fast.requests <= seqs  # a period of at most a lifetime of the slots
    monkeypatch.setattr(simulator, "steady_sample_size", lambda w: 50 * w.concurrency)
    slow = simulate_serving(step_model(dep), r.engine, workload, **limits, shortcuts=False)
    assert slow.requests >= 45 * clients
    for metric in ("ttft", "tpot"):
        (mean, quantiles, _), (slow_mean, slow_quantiles, _) = (
            fast.summary(metric),
            slow.summary(metric),
        )
        assert [mean, *quantiles] == pytest.approx([slow_mean, *slow_quantiles], rel=0.01), metric
    assert fast.requests / fast.makespan == pytest.approx(slow.requests / slow.makespan, rel=0.01)


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"replicas": 0},
        {"max_num_seqs": 0},
        {"max_num_batched_tokens": -5},
        {"gpu_memory_utilization": 1.5},
        {"replicas": True},
        {"max_num_seqs": 2.5},
        {"ep": 3, "max_num_seqs": 0},
        {"tp": 0, "replicas": 2},
        {"spec_method": "nonsense", "gpu_memory_utilization": 0.8},
    ],
)
def test_the_predictor_holds_each_deployment_to_the_input_rules_as_validate_does(
    changes: dict[str, object],
) -> None:
    """resolve checks a family once and each knob value beside it (predict._validate): whatever
    it accepts or refuses, with the same message, is what Deployment.validate does."""
    from dataclasses import replace

    from budsim.core.errors import BudsimError

    dep = replace(DEP, **changes)  # type: ignore[arg-type]
    for _ in range(2):  # again from the caches
        try:
            dep.validate()
            expected = None
        except BudsimError as exc:
            expected = str(exc)
        try:
            resolve.__wrapped__(dep)
            got = None
        except BudsimError as exc:
            got = str(exc)
        assert got == expected


def test_the_predictors_copies_and_shared_memory_plans_are_with_and_plan_memory() -> None:
    """predict._with is Deployment.with_ (without dataclasses.replace), and a memory plan shared
    over replica counts is the plan of each deployment itself."""
    from budsim.core import predict
    from budsim.core.memory import plan_memory

    for changes in (
        {"replicas": 3},
        {"max_num_seqs": 64, "gpu_memory_utilization": 0.8},
        {"engine": "sglang", "tp": 2, "weight_dtype": "fp8"},
    ):
        copy, reference = predict._with(DEP, **changes), DEP.with_(**changes)
        assert copy == reference
        assert vars(copy) == vars(reference)
        assert hash(copy) == hash(reference)
    for replicas in (1, 2, 4):
        dep = DEP.with_(replicas=replicas, max_num_seqs=128)
        r = resolve(dep)
        plan = plan_memory(r.model, r.device, r.engine, r.deployment, 2048)
        assert predict._memory_plan(dep, 2048) == plan
