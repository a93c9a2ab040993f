"""Gene space, NSGA-II, exhaustive reference and the optimisation driver, on a synthetic evaluator."""

from __future__ import annotations

import itertools
import math
import random
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from search_fixtures import SyntheticEvaluator, engines, small_space

from budsim.core.deployment import Workload
from budsim.core.errors import BudsimError
from budsim.core.search import ga as ga_mod
from budsim.core.search.exhaustive import run_exhaustive
from budsim.core.search.ga import CachedEvaluator, GASettings, GenerationEvent, run_ga
from budsim.core.search.optimize import (
    ModelDoesNotFit,
    NoFeasibleConfiguration,
    OptimizationRequest,
    Problem,
    run_optimization,
)
from budsim.core.search.scoring import INVALID, NO_FIT, Constraints, Scorer, metric_at
from budsim.core.search.space import (
    GENES,
    EngineChoice,
    Limits,
    SearchSpace,
    build_space,
    weight_options,
)
from budsim.core.store import open_store

SCORER = Scorer(target="throughput", price_per_hour=3.0, device_memory_gb=80.0)


def moe_space() -> SearchSpace:
    """16 devices on 2 nodes, MoE with 8 experts: exercises DP/EP and multi-node packing."""
    return small_space(
        devices=16,
        devices_per_node=8,
        nodes=2,
        engines=(
            EngineChoice(
                "vllm", ("auto", "fp8"), ("auto", "fp8"), frozenset({"tp", "pp", "dp", "ep"})
            ),
            EngineChoice("tponly", ("auto",), ("auto",), frozenset({"tp"})),
        ),
        pp=(1, 2, 4),
        dp=(1, 2, 4),
        ep=(1, 2, 4, 8),
        weight_dtypes=("auto", "fp8"),
        num_experts=8,
        max_in_flight=None,
    )


def check_valid(space: SearchSpace, genome: tuple[int, ...]) -> None:
    v = space.decode(genome)
    engine = space.engines[genome[0]]
    per_replica = v["tp"] * v["pp"] * v["dp"]
    assert per_replica * v["replicas"] <= space.devices
    assert v["tp"] <= space.devices_per_node
    assert v["replicas"] <= space.max_replicas(per_replica)
    assert (v["tp"] * v["dp"]) % v["ep"] == 0
    if space.num_experts:
        assert space.num_experts % v["ep"] == 0
    else:
        assert v["dp"] == 1 and v["ep"] == 1
    for axis in ("pp", "dp", "ep"):
        if v[axis] > 1:
            assert axis in engine.parallelism
    assert v["weight_dtype"] in engine.weight_dtypes
    assert v["kv_dtype"] in engine.kv_dtypes
    assert v["max_num_batched_tokens"] >= v["max_num_seqs"]


# ---------------------------------------------------------------------- space and repair


def test_enumerate_is_exactly_the_repair_image() -> None:
    space = small_space(
        engines=engines("vllm", "sglang"), max_num_seqs=(8, 64, 128), gpu_memory_utilization=(0.9,)
    )
    product = itertools.product(*(range(n) for n in space.cardinalities))
    image = {space.repair(g) for g in product}
    listed = list(space.enumerate())
    assert len(listed) == len(set(listed)) == space.size
    assert set(listed) == image
    for g in listed:
        assert space.is_valid(g)
        check_valid(space, g)


def test_engine_samples_are_the_first_genome_of_each_engine_and_format_pair() -> None:
    """What a search's warm-up loads (PredictEvaluator.start): one deployment per engine and
    (weight, KV) format pair, the first of each in enumerate's order."""
    space = small_space(engines=engines("vllm", "sglang", "trtllm"))
    firsts: dict[tuple[int, int, int], tuple[int, ...]] = {}
    for g in space.enumerate():
        firsts.setdefault((g[0], g[6], g[7]), g)
    expected = [space.deployment(firsts[key]) for key in sorted(firsts)]
    assert sorted(space.engine_samples(), key=repr) == sorted(expected, key=repr)
    assert len(space.engine_samples()) == len(firsts)


def test_enumerate_matches_repair_image_for_moe() -> None:
    space = replace(
        moe_space(),
        max_num_seqs=(8, 64),
        max_num_batched_tokens=(2048, 8192),
        gpu_memory_utilization=(0.9,),
        max_in_flight=64,
    )
    product = itertools.product(*(range(n) for n in space.cardinalities))
    image = {space.repair(g) for g in product}
    assert set(space.enumerate()) == image and len(image) == space.size
    # A replica's 64 / replicas requests spread over dp ranks: limits above that never bind.
    collapsed = 0
    for g in image:
        v = space.decode(g)
        per_rank = math.ceil(64 / v["replicas"] / v["dp"])
        assert v["max_num_seqs"] <= min(o for o in (8, 64) if o >= per_rank)
        collapsed += per_rank <= 8 and v["dp"] > 1
    assert collapsed > 0


@pytest.mark.parametrize("make", [small_space, moe_space])
def test_repair_respects_constraints(make: Any) -> None:
    space = make()
    rng = random.Random(7)
    for _ in range(3000):
        raw = [rng.randrange(n) for n in space.cardinalities]
        g = space.repair(raw)
        check_valid(space, g)
        assert space.repair(g) == g  # idempotent
    assert space.size == sum(1 for _ in space.enumerate())


def test_repair_keeps_valid_genomes_and_canonicalises_batch() -> None:
    space = small_space()
    genome = next(iter(space.enumerate()))
    assert space.repair(genome) == genome
    # 64 requests in flight over 1 replica: max_num_seqs above 64 predicts the same as 64.
    raw = list(genome)
    raw[GENES.index("replicas")] = 0
    raw[GENES.index("max_num_seqs")] = len(space.max_num_seqs) - 1  # 128
    repaired = space.decode(space.repair(raw))
    assert repaired["max_num_seqs"] == 64
    # With 8 replicas each sees 8 requests, so 8 is the largest distinct limit.
    raw[GENES.index("tp")] = 0
    raw[GENES.index("pp")] = 0
    raw[GENES.index("replicas")] = 7
    assert space.decode(space.repair(raw))["max_num_seqs"] == 8


def test_tp_only_engine_gets_no_pp_or_ep() -> None:
    space = moe_space()
    raw = [1, 3, 2, 2, 3, 0, 0, 0, 0, 0, 0]  # tponly engine asking for pp=4, dp=4, ep=8
    v = space.decode(space.repair(raw))
    assert v["engine"] == "tponly"
    assert (v["pp"], v["dp"], v["ep"]) == (1, 1, 1)
    assert v["tp"] == 8


def test_quantised_checkpoints_are_searched_as_they_are() -> None:
    from budsim.core.engines import get_engine
    from budsim.core.search.space import _runs_predicate

    vllm = get_engine("vllm", "cuda")
    runs = _runs_predicate(vllm, "fp8")
    assert runs is not None
    # export cannot make int4 from an fp8 checkpoint, so the search does not propose it
    assert weight_options(vllm.quantizations, "fp8", runs=runs) == ("auto",)
    runs16 = _runs_predicate(vllm, "bf16")
    assert runs16 is not None and "fp8" in weight_options(vllm.quantizations, "bf16", runs=runs16)


def test_weight_options_and_build_space_limits() -> None:
    quants = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
    opts = weight_options(quants, "bf16")
    assert opts == (
        "auto",
        "fp8",
        "int8",
        "int4",
        "nvfp4",
        "mxfp4",
    )  # fp16 is the checkpoint's size
    assert weight_options(quants, "fp8") == ("auto", "int4", "nvfp4", "mxfp4")  # never upcast
    assert weight_options(quants, "bf16", ["none", "fp8"]) == ("auto", "fp8")
    assert weight_options(("bf16", "fp8"), "mxfp4") == ()  # the engine cannot run the checkpoint
    # the engine's own support rule wins when given (here: mxfp4 only from an mxfp4 checkpoint)
    assert "mxfp4" not in weight_options(quants, "bf16", runs=lambda d: d != "mxfp4")
    hopper = {"bf16": 989.0, "fp8": 1979.0}

    class Dev:
        id, kind, memory_gb, tflops = "h100-sxm", "cuda", 80.0, hopper

    class Cluster:
        device, count, devices_per_node, nodes = Dev(), 8, 8, 1

    class Layer:
        q_heads = 24

    class Model:
        name, checkpoint_dtype, num_layers, is_moe, num_experts = "m", "bf16", 32, False, 0
        layer_groups = ((Layer(), 32),)

    class Engine:
        def __init__(self, id: str) -> None:
            self.id, self.quantizations, self.kv_dtypes = id, quants, ("auto", "fp8")
            self.parallelism = frozenset({"tp", "pp", "dp", "ep"})
            self.prequantized_only = ("mxfp4",)

    wl = Workload(scenario="concurrency", concurrency=32)
    limits = Limits(
        max_devices=4,
        max_memory_gb=40,
        max_batch_size=48,
        engines=("vllm",),
        quantizations=("fp8",),
    )
    space = build_space(Model(), Cluster(), [Engine("vllm"), Engine("sglang")], wl, limits)
    assert [e.id for e in space.engines] == ["vllm"]
    assert space.devices == 4
    assert space.tp == (1, 2, 4)  # 24 heads: tp 8 would not divide them (and 4 is the budget)
    assert max(space.max_num_seqs) == 48
    assert max(space.gpu_memory_utilization) == 0.5
    assert space.weight_dtypes == ("fp8",)
    assert space.dp == (1,) and space.ep == (1,)
    with pytest.raises(BudsimError, match="do not run"):
        build_space(Model(), Cluster(), [Engine("vllm")], wl, Limits(engines=("trtllm",)))
    with pytest.raises(BudsimError, match="unknown quantisation"):
        build_space(Model(), Cluster(), [Engine("vllm")], wl, Limits(quantizations=("fp3",)))
    # speculative methods are engine choices of their own, only where asked and runnable
    spec = build_space(
        Model(), Cluster(), [Engine("vllm")], wl, Limits(speculative=("eagle3", "mtp"))
    )
    assert spec.options("engine") == ("vllm", "vllm+eagle3")
    assert "vllm: no mtp (the model has no MTP layers)" in spec.notes
    genome = spec.repair([1] + [0] * (len(spec.cardinalities) - 1))
    assert spec.deployment(genome).engine == "vllm"
    assert spec.deployment(genome).spec_method == "eagle3"
    assert spec.describe()["engines"][1]["spec_method"] == "eagle3"
    with pytest.raises(BudsimError, match="unknown speculative method"):
        build_space(Model(), Cluster(), [Engine("vllm")], wl, Limits(speculative=("medusa",)))


@pytest.mark.parametrize(
    ("model", "hardware", "devices", "nodes"),
    [
        ("meta-llama/Meta-Llama-3.1-8B", "h100-sxm", 8, None),
        ("meta-llama/Meta-Llama-3.1-70B", "gaudi2", 8, None),
        ("Qwen/Qwen3-235B-A22B", "h200-sxm", 16, 2),
        ("meta-llama/Meta-Llama-3.1-8B", "xeon-8480", 4, 2),
    ],
)
def test_real_spaces_only_hold_supported_deployments(
    model: str, hardware: str, devices: int, nodes: int | None
) -> None:
    from budsim.core.predict import resolve
    from budsim.core.search.optimize import prepare

    req = OptimizationRequest(model=model, hardware=hardware, devices=devices, nodes=nodes)
    space = prepare(req).space
    rng = random.Random(0)
    for _ in range(300):
        genome = space.repair([rng.randrange(n) for n in space.cardinalities])
        resolve(space.deployment(genome))  # raises BudsimError on anything unsupported
    if hardware == "xeon-8480":
        assert space.kv_dtypes == ("auto",)
    if hardware == "gaudi2":  # an fp8 KV cache, but only beside INC's fp8 weights
        kinds = {(d.weight_dtype, d.kv_dtype) for d in map(space.deployment, space.enumerate())}
        assert kinds == {("auto", "auto"), ("fp8", "auto"), ("fp8", "fp8")}
        assert space.size == sum(1 for _ in space.enumerate())
    if hardware == "xeon-8480":  # a replica never spans two hosts
        sizes = {space.deployment(g).devices_per_replica for g in space.enumerate()}
        assert max(sizes) == space.devices_per_node == 2


# ---------------------------------------------------------------------- scoring


def test_percentile_lookup_and_interpolation() -> None:
    pred = {"ttft_ms_p50": 100.0, "ttft_ms_p90": 200.0, "ttft_ms_p99": 380.0, "ttft_ms_p99_lo": 1.0}
    value, how = metric_at(pred, "ttft_ms", "p95")
    assert value == pytest.approx(200 + (380 - 200) * 5 / 9)
    assert "interpolated p90-p99" in how
    assert metric_at(pred, "ttft_ms", "p90") == (200.0, "ttft_ms_p90")
    value, how = metric_at(pred, "ttft_ms", "p99.9")
    assert value == 380.0 and "optimistic" in how
    value, how = metric_at({"tpot_ms_p99": 30.0}, "tpot_ms", "p95")
    assert value == 30.0 and "conservative" in how


def test_violation_order_invalid_nofit_slo_feasible() -> None:
    space = small_space()
    dep = space.deployment(next(iter(space.enumerate())))
    scorer = Scorer(constraints=Constraints(ttft_ms=100, percentile="p95"), device_memory_gb=80)
    ok = {"fits": True, "output_tok_s": 800, "output_tok_s_per_device": 100, "ttft_ms_p99": 90}
    slow = {**ok, "ttft_ms_p99": 150}
    no_fit = {"fits": False, "weights_gb_per_device": 120}
    scores = [scorer.score(dep, p) for p in (ok, slow, no_fit, None)]
    assert [s.status for s in scores] == ["ok", "slo", "no_fit", "invalid"]
    violations = [s.violation for s in scores]
    assert violations == sorted(violations) and violations[0] == 0
    assert 0 < violations[1] < NO_FIT <= violations[2] < INVALID <= violations[3]
    assert scores[1].binding() == "ttft_ms_p95"
    usd = scores[0].usd_per_1m_output_tokens
    assert usd == pytest.approx(1.0 * dep.devices / (800 * 3600) * 1e6)


# ---------------------------------------------------------------------- NSGA-II


def test_constrained_domination_ranks_feasible_first() -> None:
    fitness_cls = ga_mod._make_fitness_class()

    class Ind:
        def __init__(self, values: tuple[float, ...], violation: float) -> None:
            self.fitness = fitness_cls(values, violation)
            self.rank = -1

    feasible_poor = Ind((1.0, 1.0, -100.0), 0.0)
    feasible_other = Ind((2.0, 0.5, -50.0), 0.0)
    infeasible_great = Ind((1000.0, 1000.0, -0.01), 0.3)
    infeasible_worse = Ind((5000.0, 5000.0, -0.001), 0.9)
    fronts = ga_mod.constrained_fronts(
        [infeasible_worse, infeasible_great, feasible_poor, feasible_other]
    )
    assert fronts[0] == [feasible_other, feasible_poor] or set(map(id, fronts[0])) == {
        id(feasible_poor),
        id(feasible_other),
    }
    assert fronts[1] == [infeasible_great]
    assert fronts[2] == [infeasible_worse]
    assert infeasible_great.fitness.dominates(infeasible_worse.fitness)
    assert feasible_poor.fitness.dominates(infeasible_great.fitness)
    assert not infeasible_great.fitness.dominates(feasible_poor.fitness)
    chosen = ga_mod.nsga2_select([infeasible_great, feasible_poor, infeasible_worse], 1)
    assert chosen == [feasible_poor]


def test_cached_evaluator_counts() -> None:
    space = small_space()
    ev = SyntheticEvaluator()
    cached = CachedEvaluator(space, ev, SCORER)
    g1, g2 = list(itertools.islice(space.enumerate(), 2))
    out = cached.evaluate([g1, g2, g1])
    assert [c.genome for c in out] == [g1, g2, g1]
    assert (cached.evaluations, cached.cache_hits, cached.calls, ev.calls) == (2, 1, 1, 1)
    cached.evaluate([g1, g2])
    assert (cached.evaluations, cached.cache_hits, cached.calls, ev.calls) == (2, 3, 1, 1)


def test_ga_is_reproducible_with_a_seed() -> None:
    space = small_space()

    def run(seed: int) -> tuple[Any, ...]:
        ev = SyntheticEvaluator()
        events: list[GenerationEvent] = []
        out = run_ga(
            space, ev, SCORER, GASettings(seed=seed, generations=15), on_event=events.append
        )
        return (
            out.best.genome if out.best else None,
            out.evaluations,
            out.generations,
            [d for d in ev.seen],
            [e.best for e in events],
        )

    assert run(11) == run(11)
    assert run(11)[3] != run(12)[3]


@pytest.mark.parametrize("target", ["throughput", "latency", "goodput"])
def test_ga_finds_exhaustive_optimum(target: str) -> None:
    space = small_space()
    scorer = Scorer(
        target=target,
        price_per_hour=3.0,
        device_memory_gb=80.0,
        constraints=Constraints(ttft_ms=400, percentile="p95"),
    )
    reference = run_exhaustive(space, SyntheticEvaluator(), scorer)
    assert reference.evaluations == space.size
    optimum = reference.best
    assert optimum is not None and optimum.feasible
    for seed in range(4):
        out = run_ga(space, SyntheticEvaluator(), scorer, GASettings(seed=seed))
        assert out.best is not None and out.best.feasible
        assert out.best.target == pytest.approx(optimum.target, rel=1e-9), seed
        assert out.evaluations < space.size / 4


def test_infeasible_never_ranked_above_feasible() -> None:
    space = small_space(engines=engines("vllm", "broken", "trtllm"))
    scorer = Scorer(
        target="throughput",
        device_memory_gb=80.0,
        constraints=Constraints(tpot_ms=25, percentile="p99"),
    )
    events: list[GenerationEvent] = []
    out = run_ga(
        space,
        SyntheticEvaluator(),
        scorer,
        GASettings(seed=3, generations=10),
        on_event=events.append,
    )
    best = out.best
    assert best is not None and best.feasible
    assert best.deployment.engine != "broken"
    infeasible = [c for c in out.candidates if not c.feasible]
    assert infeasible, "the constraint should rule some candidates out"
    assert max(c.score.objectives[0] for c in infeasible) > best.score.objectives[0]
    assert all(c.feasible for c in out.pareto)
    for event in events:
        if event.feasible:
            assert all(ind["feasible"] for ind in event.pareto_front)


def test_events_once_per_generation_and_early_stop() -> None:
    space = small_space()
    events: list[GenerationEvent] = []
    out = run_ga(
        space,
        SyntheticEvaluator(),
        SCORER,
        GASettings(seed=5, generations=40, patience=3),
        on_event=events.append,
    )
    assert [e.generation for e in events] == list(range(out.generations + out.local_rounds + 1))
    assert out.early_stopped and out.generations < 40
    evaluated = [e.evaluations for e in events]
    assert evaluated == sorted(evaluated) and evaluated[-1] == out.evaluations
    for e in events:
        assert len(e.individuals) == 100
        assert e.pareto_front
        assert e.best["output_tok_s_per_device"] >= e.mean["output_tok_s_per_device"]
        assert e.mean["output_tok_s_per_device"] >= e.worst["output_tok_s_per_device"]
        assert e.elapsed_s >= 0
        assert set(e.to_dict()) >= {
            "generation",
            "individuals",
            "pareto_front",
            "best",
            "evaluations",
        }


def test_one_batched_call_per_generation_without_duplicates() -> None:
    space = small_space()
    ev = SyntheticEvaluator()
    out = run_ga(space, ev, SCORER, GASettings(seed=9, generations=8, patience=None, polish=0))
    assert out.generations == 8
    assert ev.calls == out.generations + 1
    assert len(ev.seen) == len(set(ev.seen)) == out.evaluations
    assert out.cache_hits > 0
    # the local search after evolution keeps the contract: its rounds are generations too
    ev = SyntheticEvaluator()
    events: list[GenerationEvent] = []
    out = run_ga(
        space, ev, SCORER, GASettings(seed=9, generations=8, patience=None), on_event=events.append
    )
    assert out.generations == 8 and out.local_rounds > 0
    # a round whose moves were all evaluated before needs no call
    assert ev.calls <= out.generations + out.local_rounds + 1
    assert [e.generation for e in events] == list(range(out.generations + out.local_rounds + 1))
    assert [e.local_round for e in events[9:]] == list(range(1, out.local_rounds + 1))
    assert {e.method for e in events[9:]} == {"local"}
    assert len(ev.seen) == len(set(ev.seen)) == out.evaluations == events[-1].evaluations


def test_local_search_never_loses_the_evolved_best() -> None:
    space = small_space()
    plain = run_ga(space, SyntheticEvaluator(), SCORER, GASettings(seed=4, polish=0))
    polished = run_ga(space, SyntheticEvaluator(), SCORER, GASettings(seed=4))
    best = min((c for c in plain.candidates if c.feasible), key=lambda c: c.rank_key())
    better = min((c for c in polished.candidates if c.feasible), key=lambda c: c.rank_key())
    assert better.target >= best.target
    assert {c.genome for c in plain.candidates} <= {c.genome for c in polished.candidates}


def test_cancel_stops_within_a_generation() -> None:
    space = small_space()
    cancel = threading.Event()
    ev = SyntheticEvaluator()

    def on_call(n: int) -> None:
        if n == 3:
            cancel.set()  # the user presses cancel while generation 2 is being evaluated

    ev.on_call = on_call
    events: list[GenerationEvent] = []
    out = run_ga(
        space, ev, SCORER, GASettings(seed=1, patience=None), on_event=events.append, cancel=cancel
    )
    assert out.status == "cancelled"
    assert ev.calls == 3
    assert len(events) == 2  # generations 0 and 1 finished; 2 was cut short
    assert out.generations == 1
    assert out.evaluations == len(ev.seen)  # what generation 2 evaluated is kept
    cancel_first = threading.Event()
    cancel_first.set()
    ev2 = SyntheticEvaluator()
    out2 = run_ga(space, ev2, SCORER, GASettings(seed=1), cancel=cancel_first)
    assert out2.status == "cancelled" and ev2.calls == 0


def test_small_space_population_is_capped() -> None:
    space = small_space(
        engines=engines("vllm"),
        tp=(8,),
        pp=(1,),
        max_num_seqs=(64,),
        max_num_batched_tokens=(4096,),
        gpu_memory_utilization=(0.9,),
    )
    out = run_ga(space, SyntheticEvaluator(), SCORER, GASettings(seed=0))
    assert out.evaluations == space.size
    assert out.early_stopped


# ---------------------------------------------------------------------- driver


def problem(space: SearchSpace | None = None, **scorer_kw: Any) -> Problem:
    scorer_kw.setdefault("price_per_hour", 3.0)
    return Problem(
        space=space or small_space(),
        scorer=Scorer(device_memory_gb=80.0, **scorer_kw),
        workload=Workload(concurrency=64),
        device_memory_gb=80.0,
        price_per_hour=3.0,
        model_info={"name": "synthetic-70b", "hash": "feedbeef"},
        min_weights_gb=140.0 * 0.27,
    )


def request(**kw: Any) -> OptimizationRequest:
    kw.setdefault("ga", GASettings(seed=4, generations=20))
    kw.setdefault("model", "synthetic-70b")
    return OptimizationRequest(hardware="h100-sxm", devices=8, **kw)


def test_run_optimization_response_shape_and_store(tmp_path: Path) -> None:
    events: list[GenerationEvent] = []
    with open_store(tmp_path / "runs.db") as store:
        result = run_optimization(
            request(),
            on_event=events.append,
            store=store,
            evaluator=SyntheticEvaluator(),
            problem=problem(),
        )
        response = result.to_dict()
        assert response["status"] == "completed"
        assert response["simulation_id"] == result.simulation_id
        meta = response["simulation_metadata"]
        assert {"duration_seconds", "generations_evolved", "configurations_evaluated"} <= set(meta)
        assert meta["generations_evolved"] + meta["local_search_rounds"] == len(events) - 1
        best = response["optimal_configuration"]
        perf = response["predicted_performance"]
        assert best["devices"] == best["tp"] * best["pp"] * best["dp"] * best["replicas"]
        alts = response["alternative_configurations"]
        assert 0 < len(alts) <= 5
        shown = [tuple(a["objectives"].values()) for a in alts]
        shown.append(tuple(response["objectives"].values()))
        assert len(set(shown)) == len(shown)  # no two alternatives predicted identically
        for alt in alts:
            assert alt["feasible"]
            assert alt["configuration"] != best
            assert alt["objectives"]["target"] <= response["objectives"]["target"]
        run = store.get_run(result.simulation_id)
        assert run["status"] == "completed" and run["generations"] == len(events)
        assert run["model_hash"] == "feedbeef"
        deployment, prediction = store.get_run_result(result.simulation_id)
        assert deployment == {
            k: v for k, v in best.items() if k not in ("devices", "devices_per_replica")
        }
        assert prediction == perf
        assert run["response"]["optimal_configuration"] == best
        kinds = [r["kind"] for r in store.get_results(result.simulation_id)]
        assert kinds[0] == "best" and kinds.count("alternative") == len(alts)


@pytest.mark.parametrize(
    ("asked", "saved"),
    [
        ("Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B"),
        ("meta-llama/Llama-3.1-70B", "meta-llama/Meta-Llama-3.1-70B"),
        ("./my-models/llama/config.json", "./my-models/llama/config.json"),
    ],
)
def test_a_run_is_saved_under_the_models_one_name(tmp_path: Path, asked: str, saved: str) -> None:
    """Issue #19: a search asked for by an alias is stored (run row, inputs, response) under the
    catalog id, so the history shows one model once; a config path stays the path."""
    with open_store(tmp_path / "runs.db") as store:
        result = run_optimization(
            request(model=asked, ga=GASettings(seed=4, generations=2)),
            store=store,
            evaluator=SyntheticEvaluator(),
            problem=problem(),
        )
        run = store.get_run(str(result.simulation_id))
        listed = store.list_runs()
    assert run["model"] == run["inputs"]["model"] == saved
    assert run["response"]["request"]["model"] == saved
    assert [r["model"] for r in listed] == [saved]


@pytest.mark.parametrize(
    ("target", "key", "sense"),
    [
        ("throughput", "output_tok_s_per_device", max),
        ("latency", "e2e_s_mean", min),
        ("cost", "usd_per_1m_output_tokens", min),
    ],
)
def test_headline_best_follows_the_target(target: str, key: str, sense: Any) -> None:
    space = small_space(engines=engines("vllm"), tp=(4, 8), max_num_seqs=(16, 64))
    result = run_optimization(
        request(optimization_target=target, exhaustive=True),
        evaluator=SyntheticEvaluator(),
        problem=problem(space, target=target),
    )
    feasible = result.outcome.feasible
    values = [
        c.score.usd_per_1m_output_tokens if key.startswith("usd") else (c.prediction or {})[key]
        for c in feasible
    ]
    best = result.best
    assert best is not None
    chosen = best.score.usd_per_1m_output_tokens if key.startswith("usd") else best.prediction[key]
    assert chosen == pytest.approx(sense(values))


def test_no_feasible_configuration_names_binding_constraint(tmp_path: Path) -> None:
    cons = Constraints(ttft_ms=1.0, percentile="p95")  # no configuration is this fast
    with open_store(tmp_path / "runs.db") as store:
        with pytest.raises(NoFeasibleConfiguration) as info:
            run_optimization(
                request(constraints=cons),
                store=store,
                evaluator=SyntheticEvaluator(),
                problem=problem(constraints=cons),
            )
        err = info.value
        assert err.exit_code == 2
        assert err.binding == "ttft_ms_p95"
        assert "ttft_ms_p95 cannot be met" in str(err) and "closest:" in str(err)
        assert 0 < len(err.closest) <= 5
        ttfts = [c["constraints"][0]["value"] for c in err.closest]
        assert ttfts == sorted(ttfts)
        # one of each prediction: configurations that differ only in a knob that changes
        # nothing are not listed twice (as the alternatives of a feasible run)
        shown = [
            (c["configuration"].get("devices"), *c["objectives"].values()) for c in err.closest
        ]
        assert len(set(map(str, shown))) == len(shown)
        run = store.list_runs()[0]
        assert run["status"] == "failed"
        stored = store.get_results(run["id"])
        assert {r["kind"] for r in stored} == {"closest"}
        # History and `runs show` re-open the stored rows: the same list as the error's (they
        # had kept five rows that differ only in the memory fraction)
        assert [r["deployment"] for r in stored] == [
            {k: c["configuration"][k] for k in r["deployment"]}
            for r, c in zip(stored, err.closest, strict=True)
        ]
        # History counts the search as the results title does, not the saved rows
        meta = run["metadata"]
        assert run["generations"] == 1 + meta["generations_evolved"] + meta["local_search_rounds"]


def test_combined_constraints_binding_is_reported() -> None:
    # fast TTFT needs small batches, high throughput needs big ones: each alone is achievable
    # (alone: TTFT p50 reaches 23 ms, throughput 10.5k tok/s; with TTFT <= 30 ms at most 3.5k)
    cons = Constraints(ttft_ms=30, percentile="p50", min_output_tok_s=5000)
    with pytest.raises(NoFeasibleConfiguration) as info:
        run_optimization(
            request(constraints=cons),
            evaluator=SyntheticEvaluator(),
            problem=problem(constraints=cons),
        )
    assert info.value.binding == "combination"
    assert "not all together" in str(info.value)


def test_model_that_cannot_fit_anywhere() -> None:
    huge = problem()
    huge.min_weights_gb = 10_000.0
    with pytest.raises(ModelDoesNotFit, match="does not fit|needs at least"):
        run_optimization(request(), evaluator=SyntheticEvaluator(), problem=huge)
    # Weights fit in aggregate but never per device: the search itself reports it.
    heavy = SyntheticEvaluator(model_gb=5000.0)
    with pytest.raises(ModelDoesNotFit, match="does not fit"):
        run_optimization(request(), evaluator=heavy, problem=problem())


def test_cancelled_run_is_saved_as_cancelled(tmp_path: Path) -> None:
    cancel = threading.Event()
    ev = SyntheticEvaluator()
    ev.on_call = lambda n: cancel.set() if n == 2 else None
    with open_store(tmp_path / "runs.db") as store:
        result = run_optimization(
            request(ga=GASettings(seed=2, patience=None)),
            store=store,
            cancel=cancel,
            evaluator=ev,
            problem=problem(),
        )
        assert result.status == "cancelled"
        assert result.best is not None  # the initial population had feasible candidates
        run = store.get_run(result.simulation_id)
        assert run["status"] == "cancelled"
        assert run["generations"] == 1


def test_request_round_trip_and_validation() -> None:
    req = request(
        workload=Workload(scenario="rate", rate=3.5, input_len=512, output_len=128),
        engines=("vllm",),
        constraints=Constraints(ttft_ms=500, tpot_ms=50, percentile="95"),
    )
    again = OptimizationRequest.from_dict(req.to_dict())
    assert again == req
    assert again.constraints.percentile == "p95"
    with pytest.raises(BudsimError, match="objective"):
        request(optimization_target="speed").validate()
    with pytest.raises(BudsimError, match="nodes"):
        request(nodes=3).validate()
    with pytest.raises(BudsimError, match="percentile"):
        Constraints(percentile="p100")
    with pytest.raises(BudsimError, match="population"):
        GASettings(population=2).validate()


def test_infinite_targets_stay_out_of_json() -> None:
    result = run_optimization(
        request(ga=GASettings(seed=1, generations=3)),
        evaluator=SyntheticEvaluator(),
        problem=problem(),
    )
    import json

    text = json.dumps(result.to_dict(), allow_nan=False)
    assert "Infinity" not in text
    assert not any(
        isinstance(v, float) and not math.isfinite(v)
        for v in result.to_dict()["objectives"].values()
    )


def test_local_moves_step_parallelism_with_any_memory_fraction() -> None:
    """A layout change and a memory fraction change are one local move: a model that fits on fewer
    devices only at a higher fraction (70B int8 on one 80 GB H100 at 0.95) is then one step away."""
    from budsim.core.search.space import TP, UTIL

    space = small_space()
    start = next(g for g in space.enumerate() if g[TP] == 1 and g[UTIL] == 0)  # TP2, 0.85
    moves = ga_mod.local_moves(space, start, pairs=False)
    wanted = [m for m in moves if m[TP] == 0 and m[UTIL] == 2]  # TP1 at 0.95
    assert wanted, "TP-1 together with the highest memory fraction is a neighbour"
    changed = [i for i in range(len(GENES)) if wanted[0][i] != start[i]]
    assert changed == [TP, UTIL]  # two genes at once: no single-gene move reaches it
    assert space.deployment(wanted[0]).tp == 1
    assert space.deployment(wanted[0]).gpu_memory_utilization == 0.95
    assert start not in moves and len(moves) == len(set(moves))


def test_early_stop_ignores_changes_below_the_tolerance() -> None:
    """The patience counter restarts only when the front gains a point that is new by more than
    1 % of some objective, or the leader's target improves by more than 1 % (or its violation
    falls): a three-objective front that keeps gaining near-duplicates no longer keeps the search
    going (the optimiser's benchmark still reaches the exhaustive optimum in 10/10 seeds)."""
    from budsim.core.search.ga import FRONT_TOLERANCE, _best_moved, _front_moved

    assert FRONT_TOLERANCE == 0.01
    front = [(1000.0, -50.0, -2.0)]
    assert not _front_moved(front, [*front, (1005.0, -50.2, -2.01)])  # within 1 % everywhere
    assert _front_moved(front, [*front, (1020.0, -50.0, -2.0)])  # 2 % more throughput
    assert _front_moved(front, [*front, (900.0, -40.0, -2.0)])  # 20 % less latency
    leader = (0.0, -1000.0, 4, (0,))
    assert not _best_moved(leader, (0.0, -1005.0, 2, (1,)))  # 0.5 %, another genome
    assert _best_moved(leader, (0.0, -1020.0, 4, (2,)))
    assert _best_moved((3.0, -1000.0, 4, (0,)), (1.0, -900.0, 4, (3,)))  # less violation
    assert _best_moved(None, leader) and not _best_moved(None, None)


def test_speculative_methods_round_trip_and_are_checked() -> None:
    request = OptimizationRequest(
        model="meta-llama/Llama-3.1-8B",
        hardware="h100-sxm",
        devices=2,
        workload=Workload(concurrency=4),
        speculative=("eagle3", "ngram"),
    )
    request.validate()
    again = OptimizationRequest.from_dict(request.to_dict())
    assert (
        again.speculative == ("eagle3", "ngram") and again.limits().speculative == again.speculative
    )
    assert (
        OptimizationRequest.from_dict({**request.to_dict(), "speculative": None}).speculative == ()
    )
    with pytest.raises(BudsimError, match="unknown speculative method 'medusa'"):
        replace(request, speculative=("medusa",)).validate()
