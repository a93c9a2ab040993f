"""predict: one deployment + one workload -> Prediction (latency percentiles, throughput, memory).

This is the pipeline of DESIGN.md in one place: ModelSpec + Device + EngineProfile -> MemoryPlan ->
StepTimeModel -> simulate_serving -> (calibration) -> Prediction.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, fields
from functools import lru_cache
from typing import Any

from .buckets import BucketedStep, gaudi_buckets
from .deployment import Deployment, Workload
from .dtypes import GGUF_DTYPES
from .engines import EngineProfile, get_engine, runs_weights
from .errors import BudsimError
from .frontend import front_end
from .hardware import Device, get_device
from .memory import MemoryPlan, plan_memory, resolve_weight_dtype
from .model import ModelSpec, load_model
from .simulator import REPORTED_QUANTILES, ServingResult, run_description, simulate_serving
from .speculative import NO_SPECULATION, SpeculativeStep, check_speculative
from .steptime import StepTimeModel

BANDED = ("ttft_ms_mean", "tpot_ms_mean", "e2e_s_mean", "output_tok_s")


@dataclass
class Prediction:
    ttft_ms_mean: float | None = None
    ttft_ms_p50: float | None = None
    ttft_ms_p90: float | None = None
    ttft_ms_p95: float | None = None
    ttft_ms_p99: float | None = None
    tpot_ms_mean: float | None = None
    tpot_ms_p50: float | None = None
    tpot_ms_p90: float | None = None
    tpot_ms_p95: float | None = None
    tpot_ms_p99: float | None = None
    itl_ms_mean: float | None = None
    e2e_s_mean: float | None = None
    e2e_s_p50: float | None = None
    e2e_s_p90: float | None = None
    e2e_s_p95: float | None = None
    e2e_s_p99: float | None = None
    e2e_s_max: float | None = None
    output_tok_s: float | None = None
    total_tok_s: float | None = None
    requests_per_s: float | None = None
    output_tok_s_per_device: float | None = None
    tok_s_per_user: float | None = None
    weights_gb_per_device: float = 0.0
    kv_cache_gb_per_device: float = 0.0
    max_concurrency: int = 0
    fits: bool = False
    bottleneck: str | None = None
    devices: int = 1
    preemptions: int = 0
    calibration: str = "physics"
    # what the numbers rest on, for people: which metrics a learned correction moved and how much
    # measured evidence it was fitted on, or why they are physics only
    rests_on: str = "physics only"
    run: str = ""  # what was simulated: "steady state" or "finite run of N requests"
    basis: str = ""  # what priced the operators, e.g. "h200_sxm vllm 0.24.0 kernel tables"
    memory: MemoryPlan | None = None
    ttft_ms_mean_lo: float | None = None
    ttft_ms_mean_hi: float | None = None
    tpot_ms_mean_lo: float | None = None
    tpot_ms_mean_hi: float | None = None
    e2e_s_mean_lo: float | None = None
    e2e_s_mean_hi: float | None = None
    output_tok_s_lo: float | None = None
    output_tok_s_hi: float | None = None

    def to_dict(self) -> dict[str, Any]:
        # scalars only (the memory plan is reported separately), without asdict's deep copy;
        # floats to 6 significant digits, non-finite ones None (the optimiser calls this a lot)
        out = {}
        values, known = vars(self), _SIX_DIGITS
        for name in _SCALARS:
            v = values[name]
            if isinstance(v, float):
                rounded = known.get(v)  # (a zero is never there: see _six_digits)
                v = rounded if rounded is not None else _six_digits(v)
            out[name] = v
        return out


_SCALARS = tuple(f.name for f in fields(Prediction) if f.name != "memory")
# _six_digits by value: the predictions of a search share most of their numbers (deployments that
# share a simulation share its latencies), and a lookup costs a tenth of the formatting
_SIX_DIGITS: dict[float, float | None] = {}


def _six_digits(v: float) -> float | None:
    """`v` to 6 significant digits (a Python float), None when not finite."""
    if not v:
        return float(v)  # as formatting gives it: 0.0 or -0.0 (equal as keys, so not memoised)
    if v - v != 0.0:
        return None
    out = _SIX_DIGITS.get(v)
    if out is None:
        out = float(f"{v:.6g}")
        if len(_SIX_DIGITS) >= 65536:
            _SIX_DIGITS.clear()
        _SIX_DIGITS[v] = out
    return out


@dataclass(frozen=True)
class Resolved:
    """The catalog objects a deployment refers to, checked against each other."""

    model: ModelSpec
    device: Device
    engine: EngineProfile
    deployment: Deployment  # with "auto" dtypes and default knobs resolved


def check_support(model: ModelSpec, device: Device, engine: EngineProfile, dep: Deployment) -> None:
    wdtype = resolve_weight_dtype(model, dep.weight_dtype)
    if wdtype in GGUF_DTYPES and wdtype not in engine.quantizations:
        raise BudsimError(f"{wdtype} is a GGUF format: only llamacpp runs it, not {engine.name}")
    if wdtype not in engine.quantizations:
        raise BudsimError(
            f"{engine.name} cannot run {wdtype} weights on {device.kind} "
            f"(it runs: {', '.join(engine.quantizations)})"
        )
    if dep.kv_dtype not in ("auto", *engine.kv_dtypes):
        raise BudsimError(f"{engine.name} has no {dep.kv_dtype} KV cache on {device.kind}")
    if dep.kv_dtype == "fp8" and engine.fp8_kv_needs_fp8_weights and wdtype != "fp8":
        raise BudsimError(
            f"{engine.name} quantises the KV cache to fp8 only together with the weights (one "
            f"Intel Neural Compressor config): use --weight-dtype fp8 with --kv-dtype fp8"
        )
    if wdtype == "nvfp4" and not device.tflops.get("fp4"):
        raise BudsimError(f"nvfp4 weights need FP4 tensor cores (Blackwell); {device.id} has none")
    if not runs_weights(engine, wdtype, model.checkpoint_dtype):
        if wdtype in engine.prequantized_only:
            raise BudsimError(
                f"{engine.name} on {device.kind} loads {wdtype} weights only from a {wdtype} "
                f"checkpoint; {model.name} is {model.checkpoint_dtype}"
            )
        raise BudsimError(
            f"{model.name} is a {model.checkpoint_dtype} checkpoint; {wdtype} weights need a "
            f"higher-precision checkpoint"
        )
    for axis, size in (("tp", dep.tp), ("pp", dep.pp), ("dp", dep.dp), ("ep", dep.ep)):
        if size > 1 and axis not in engine.parallelism:
            # llama.cpp's multi-GPU mode is a layer split, which budsim models as pp
            hint = "; it splits layers across devices: use pp" if "pp" in engine.parallelism else ""
            raise BudsimError(
                f"{engine.name} on {device.kind} does not support {axis.upper()}{hint}"
            )
    if dep.ep > 1 and not model.is_moe:
        raise BudsimError(f"ep={dep.ep} needs a mixture-of-experts model; {model.name} is dense")
    if dep.devices_per_replica > device.devices_per_node and device.kind == "cpu":
        raise BudsimError("multi-node CPU deployments are not supported")
    heads = min(layer.q_heads for layer, _ in model.layer_groups)
    if dep.tp > 1 and heads % dep.tp and heads > 1 and not engine.pads_heads:
        raise BudsimError(f"tp={dep.tp} must divide the {heads} attention heads of {model.name}")
    if dep.pp > model.num_layers:
        raise BudsimError(f"pp={dep.pp} exceeds the {model.num_layers} layers of {model.name}")


@lru_cache(maxsize=4096)
def resolve(dep: Deployment) -> Resolved:
    key = _physics_key(dep)
    _validate(dep, key)
    family = _resolve_family(key)
    engine, device = family.engine, family.device
    seqs, tokens = engine.defaults_for(device.memory_gb)
    full = _with(
        dep,
        engine=engine.id,
        hardware=device.id,
        weight_dtype=family.deployment.weight_dtype,
        max_num_seqs=dep.max_num_seqs or seqs,
        max_num_batched_tokens=dep.max_num_batched_tokens or tokens,
        gpu_memory_utilization=dep.gpu_memory_utilization or engine.default_gpu_memory_utilization,
    )
    return Resolved(family.model, device, engine, full)


@lru_cache(maxsize=4096)
def _resolve_family(key: Deployment) -> Resolved:
    """resolve's catalog lookups and support checks, which read only what _physics_key keeps:
    once per family instead of once per deployment (a search asks for thousands of one family's
    scheduler knobs and replica counts)."""
    model = load_model(key.model)
    device = get_device(key.hardware)
    engine = get_engine(key.engine, device.kind)
    check_support(model, device, engine, key)
    check_speculative(model, key)
    full = key.with_(
        engine=engine.id,
        hardware=device.id,
        weight_dtype=resolve_weight_dtype(model, key.weight_dtype),
    )
    return Resolved(model, device, engine, full)


# The fields _physics_key sets aside. The input rules check each of them on its own (no rule of
# the whole deployment reads them), so a deployment keeps the rules when its family does and
# each of these values does beside the family (see _validate).
_KNOBS = ("replicas", "max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization")


def _validate(dep: Deployment, family: Deployment) -> None:
    """dep.validate(), held once per family (`family`: its _physics_key) and knob value instead
    of once per deployment (pydantic costs more than the rest of resolve): dep keeps the rules
    when the family with each of its knob values does. On a broken rule the whole deployment is
    validated again, so the error is the one dep.validate() gives."""
    verdicts = _VERDICTS.get(family)
    if verdicts is None:
        if len(_VERDICTS) >= 4096:
            _VERDICTS.clear()
        verdicts = _VERDICTS[family] = {}
    for name in _KNOBS:
        value = getattr(dep, name)
        knob = (name, type(value), value)  # the type: 1 and True are different inputs
        verdict = verdicts.get(knob)
        if verdict is None:
            verdict = verdicts[knob] = _passes(_with(family, **{name: value}))
        if not verdict:
            dep.validate()
            return


# family -> (knob, its type, value) -> whether the family with that value keeps the input rules
_VERDICTS: dict[Deployment, dict[tuple[str, type, Any], bool]] = {}


def _passes(dep: Deployment) -> bool:
    try:
        dep.validate()
    except BudsimError:
        return False
    return True


def _with(dep: Deployment, **changes: Any) -> Deployment:
    """dep.with_(**changes), without dataclasses.replace's walk over the fields and __init__
    (resolve copies every deployment a search asks for, twice): a Deployment is its fields'
    values in its __dict__ and nothing else (tests/test_simulation_sharing.py holds this to
    with_)."""
    new = object.__new__(Deployment)
    new.__dict__.update(dep.__dict__, **changes)
    return new


def step_model(dep: Deployment) -> StepTimeModel | SpeculativeStep:
    """The step-time model of `dep`, shared by deployments that differ only in knobs it ignores."""
    model = _STEP_MODELS.get(dep)
    if model is None:
        model = _step_model_for(_physics_key(resolve(dep).deployment))
        if len(_STEP_MODELS) >= 16384:
            _STEP_MODELS.clear()
        _STEP_MODELS[dep] = model
    return model


# step_model by the deployment as asked (one lookup instead of three; a prediction and its
# calibration features ask several times)
_STEP_MODELS: dict[Deployment, StepTimeModel | SpeculativeStep] = {}


@lru_cache(maxsize=4096)
def _physics_key(dep: Deployment) -> Deployment:
    # the scheduler knobs and the replica count do not change one replica's step time
    # (cached: dataclasses.replace costs more than the hash lookup, twice per prediction)
    return _with(
        dep, replicas=1, max_num_seqs=None, max_num_batched_tokens=None, gpu_memory_utilization=None
    )


@lru_cache(maxsize=4096)
def _step_model_for(key: Deployment) -> StepTimeModel | SpeculativeStep:
    r = resolve(key)
    if key.spec_method != "none":
        # the target's own model, shared with the deployment without speculation
        plain = _step_model_for(key.with_(**NO_SPECULATION))
        assert isinstance(plain, StepTimeModel)
        return SpeculativeStep(plain, r.model, r.deployment)
    return StepTimeModel(r.model, r.device, r.engine, r.deployment)


# Simulations are deterministic: the optimiser asks for many deployments that differ only in a knob
# that does not bind (a sequence cap above the concurrency, a KV cache larger than every request can
# fill, a token budget above any step's work), so results are shared under the knobs' effective
# values. Bounded, least recently used first.
_SIM_CACHE: OrderedDict[tuple[Any, ...], ServingResult] = OrderedDict()
_SIM_CACHE_SIZE = 4096
# Runs whose token budget never bound, by everything else: the run of every budget >= its need.
_FREE_BUDGET: OrderedDict[tuple[Any, ...], ServingResult] = OrderedDict()


def clear_simulation_cache() -> None:
    """Forget every cached simulation (benchmarks that time the simulations themselves)."""
    _SIM_CACHE.clear()
    _FREE_BUDGET.clear()


def _simulate(
    dep: Deployment, engine: EngineProfile, workload: Workload, kv: int, seqs: int, tokens: int
) -> ServingResult:
    """simulate_serving for one replica, reusing the result of an equivalent earlier call."""
    # HPU-graph buckets follow the engine's limits as set, whether or not the load reaches them
    buckets = gaudi_buckets(seqs, tokens) if engine.graph_buckets else None
    bound = {"concurrency": workload.concurrency, "static": workload.batch_size}.get(
        workload.scenario
    )
    if bound is not None:  # at most `bound` requests are ever in flight
        seqs = min(seqs, bound)
        if kv >= seqs * workload.longest_request:
            kv = -1  # never binds
    # the front end (budsim train refits it) times each request's arrival at the engine
    free_key = (_physics_key(dep), workload, kv, seqs, front_end(), buckets)
    key = (*free_key, tokens)
    hit = _SIM_CACHE.get(key)
    if hit is not None:
        _SIM_CACHE.move_to_end(key)
        return hit
    hit = _FREE_BUDGET.get(free_key)
    if hit is not None and hit.budget_need <= tokens:
        _FREE_BUDGET.move_to_end(free_key)
        return hit
    step: Any = step_model(dep)
    if buckets is not None:
        host = step.per_seq * step.pp / step.micro if isinstance(step, StepTimeModel) else 0.0
        step = BucketedStep(step, buckets, host)
    result = simulate_serving(
        step,
        engine,
        workload,
        kv_capacity_tokens=kv if kv >= 0 else 2**62,
        max_num_seqs=seqs,
        max_num_batched_tokens=tokens,
    )
    _SIM_CACHE[key] = result
    if len(_SIM_CACHE) > _SIM_CACHE_SIZE:
        _SIM_CACHE.popitem(last=False)
    if not result.budget_binds:
        _FREE_BUDGET[free_key] = result
        if len(_FREE_BUDGET) > _SIM_CACHE_SIZE:
            _FREE_BUDGET.popitem(last=False)
    return result


def _memory_plan(dep: Deployment, context_len: int) -> MemoryPlan:
    """One replica's memory plan, shared (read-only) by the deployments that differ only in
    their replica count (plan_memory never reads it) or in how their knobs are spelled, and by
    a batch's or a search's many workloads of the same longest request."""
    r = resolve(dep)
    full = r.deployment
    key = (
        _physics_key(dep),
        full.max_num_seqs,
        full.max_num_batched_tokens,
        full.gpu_memory_utilization,
        context_len,
    )
    plan = _PLANS.get(key)
    if plan is None:
        plan = plan_memory(r.model, r.device, r.engine, full, context_len)
        if len(_PLANS) >= 16384:
            _PLANS.clear()
        _PLANS[key] = plan
    return plan


_PLANS: dict[tuple[Any, ...], MemoryPlan] = {}


def context_warning(model_ref: str, workload: Workload) -> str | None:
    """Why the workload's longest request would be refused (None when it fits the context).

    A warning, not an error: engines can be told to extend the context (rope scaling), and
    published benchmarks sometimes did."""
    try:
        model = load_model(model_ref)
    except BudsimError:
        return None  # the prediction itself says what is wrong with the model
    longest = workload.longest_request
    if longest <= model.max_context:
        return None
    return (
        f"requests of up to {longest:,} tokens exceed {model_ref}'s context of "
        f"{model.max_context:,} tokens; engines refuse them unless the context is extended"
    )


@lru_cache(maxsize=1024)
def replica_workload(workload: Workload, replicas: int) -> Workload:
    """The share of the traffic one of `replicas` identical replicas serves."""
    if replicas == 1:
        return workload
    from dataclasses import replace

    return replace(
        workload,
        concurrency=max(1, math.ceil(workload.concurrency / replicas)),
        batch_size=max(1, math.ceil(workload.batch_size / replicas)),
        rate=workload.rate / replicas,
        burstiness=thinned_burstiness(workload.burstiness, replicas),
        # a finite run's requests spread over the replicas too
        num_requests=None
        if workload.num_requests is None
        else max(1, math.ceil(workload.num_requests / replicas)),
    )


def thinned_burstiness(burstiness: float, replicas: int) -> float:
    """The gamma shape of the arrivals one of `replicas` replicas sees when a router picks a
    replica at random for each request (LiteLLM's simple-shuffle, as exported). Random thinning
    with p = 1/replicas gives gaps with squared coefficient of variation p/k + 1 - p; the shape
    matches that (1 stays 1: a thinned Poisson process is Poisson)."""
    p = 1.0 / replicas
    return 1.0 / (p / burstiness + 1.0 - p)


def predict_physics(dep: Deployment, workload: Workload) -> Prediction:
    """The physics-only prediction (no learned correction)."""
    workload.validate()
    r = resolve(dep)
    if r.engine.static_batches_only and workload.scenario != "static":
        raise BudsimError(
            f"{r.engine.name} runs static batches only (no serving loop): give --batch-size, "
            f"not a {workload.scenario} workload"
        )
    full = r.deployment
    plan = _memory_plan(dep, workload.longest_request)
    shared = workload.shared_prefix_len  # held once per attention-DP rank
    max_conc = plan.max_concurrency
    if shared and plan.fits:
        own = plan.context_len - shared
        max_conc = max(max_conc, (plan.kv_capacity_tokens - shared) // own * full.dp)
    pred = Prediction(
        weights_gb_per_device=plan.weights_gb,
        kv_cache_gb_per_device=plan.kv_cache_gb,
        max_concurrency=max_conc * full.replicas,
        fits=plan.fits,
        devices=full.devices,
        run=run_description(workload),
        memory=plan,
    )
    if not plan.fits:
        return pred
    assert full.max_num_seqs is not None and full.max_num_batched_tokens is not None
    per_replica = replica_workload(workload, full.replicas)
    sim = _simulate(
        dep,
        r.engine,
        per_replica,
        kv=plan.kv_capacity_tokens * full.dp - shared * (full.dp - 1),
        seqs=full.max_num_seqs * full.dp,
        tokens=full.max_num_batched_tokens * full.dp,
    )
    _fill_latencies(pred, sim, full.replicas, full.devices)
    pred.basis = step_model(dep).basis
    return pred


# Prediction fields of each simulated latency: its mean, then one per reported quantile.
_SUMMARY_FIELDS = {
    key: (f"{key}_mean", *(f"{key}_p{round(q * 100)}" for q in REPORTED_QUANTILES))
    for key in ("ttft_ms", "tpot_ms", "e2e_s")
}


def _set_summary(pred: Prediction, sim: ServingResult, metric: str, key: str, unit: float) -> None:
    """`<key>_mean` and `<key>_p<q>` for every reported quantile of a simulated latency (seconds),
    in `unit`s of a second: the nearest-rank percentiles of the simulated requests themselves."""
    mean, quantiles, _ = sim.summary(metric)
    # the fields at once (a search fills tens of thousands of predictions)
    vars(pred).update(
        zip(_SUMMARY_FIELDS[key], [value * unit for value in (mean, *quantiles)], strict=True)
    )


def _fill_latencies(pred: Prediction, sim: ServingResult, replicas: int, devices: int) -> None:
    if not sim.requests:
        pred.fits = False
        return
    _set_summary(pred, sim, "ttft", "ttft_ms", 1e3)
    if sim.tpot:
        _set_summary(pred, sim, "tpot", "tpot_ms", 1e3)
        pred.itl_ms_mean = pred.tpot_ms_mean
        pred.tok_s_per_user = 1e3 / pred.tpot_ms_mean if pred.tpot_ms_mean else None
    _set_summary(pred, sim, "e2e", "e2e_s", 1.0)
    pred.e2e_s_max = sim.summary("e2e")[2]
    req_s = sim.requests / sim.makespan
    out_per_req = sim.output_tokens / sim.requests
    in_per_req = sim.input_tokens / sim.requests
    pred.requests_per_s = req_s * replicas
    pred.output_tok_s = req_s * out_per_req * replicas
    pred.total_tok_s = req_s * (out_per_req + in_per_req) * replicas
    pred.output_tok_s_per_device = pred.output_tok_s / devices
    pred.bottleneck = sim.bottleneck
    pred.preemptions = sim.preemptions * replicas


def warm_up(deployments: Sequence[Deployment]) -> None:
    """Load what predictions of deployments like these share: the catalog entries, the kernel
    tables (or roofline) of each engine and format and the operator prices they give, these
    deployments' step-time models, and the calibration modules. Done once before worker
    processes fork, they inherit it instead of each loading it again. Deployments that do not
    resolve are skipped (their predictions will say why)."""
    from .calibration import apply  # noqa: F401  (predict_many's calibration)

    for dep in deployments:
        try:
            step_model(dep)
        except BudsimError:
            continue


def predict(dep: Deployment, workload: Workload, *, calibrated: bool = True) -> Prediction:
    """Predict one deployment under one workload; calibrated when a matching model exists."""
    result = predict_many([dep], workload, calibrated=calibrated)[0]
    if isinstance(result, BudsimError):
        raise result
    return result


def predict_many(
    deployments: Sequence[Deployment], workload: Workload, *, calibrated: bool = True
) -> list[Prediction | BudsimError]:
    """Predict several deployments; a bad one yields its error instead of stopping the batch.

    The physics runs per deployment; the learned correction runs once for the whole batch."""
    out: list[Prediction | BudsimError] = []
    for dep in deployments:
        try:
            out.append(predict_physics(dep, workload))
        except BudsimError as exc:
            out.append(exc)
    if calibrated:
        from .calibration.apply import apply_calibration_many, mark_uncalibrated_engine

        fitting = []
        for d, p in zip(deployments, out, strict=True):
            if isinstance(p, Prediction) and p.fits:
                r = resolve(d)
                if r.engine.calibrated:
                    fitting.append((r, p))
                else:
                    mark_uncalibrated_engine(r, workload, p)
        apply_calibration_many(fitting, workload)
    return out


def predict_cases(
    cases: Sequence[tuple[Deployment, Workload]], *, calibrated: bool = True
) -> list[Prediction | BudsimError]:
    """The batch predictor: many (deployment, workload) cases, answers in input order.

    Cases are grouped by workload so that each group's learned correction is one evaluation."""
    groups: dict[Workload, list[int]] = {}
    for i, (_, workload) in enumerate(cases):
        groups.setdefault(workload, []).append(i)
    out: list[Prediction | BudsimError | None] = [None] * len(cases)
    for workload, members in groups.items():
        answers = predict_many([cases[i][0] for i in members], workload, calibrated=calibrated)
        for i, answer in zip(members, answers, strict=True):
            out[i] = answer
    return [a for a in out if a is not None]
