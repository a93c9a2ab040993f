"""`run_optimization`: request in, service-shaped answer out (and the run saved when a store is given).

Flow: build the gene space from the model, the cluster and the engine profiles; run the GA (or the
exhaustive reference); pick the headline best by `optimization_target` among the feasible candidates; fill
the response in the shape of the BudSim service (`simulation_id`, `status`, `optimal_configuration`,
`predicted_performance`, `alternative_configurations`, `simulation_metadata`).

Impossible requests raise BudsimError subclasses (exit code 2): `ModelDoesNotFit` when the weights cannot
fit even spread over every device, `NoFeasibleConfiguration` (with the closest candidates and the binding
constraint) when nothing meets the SLOs.
"""

from __future__ import annotations

import gc
import hashlib
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ... import __version__
from ..deployment import Deployment, Workload
from ..errors import BudsimError
from .ga import Candidate, Evaluator, GASettings, GenerationEvent, SearchOutcome, best_of, run_ga
from .scoring import Check, Constraints, Scorer
from .space import Limits, SearchSpace, build_space

if TYPE_CHECKING:
    from ..store import RunStore

DEFAULT_ALTERNATIVES = 5
CLOSEST = 5


class ModelDoesNotFit(BudsimError):
    """The weights alone exceed the memory of every device together."""


class NoFeasibleConfiguration(BudsimError):
    """Nothing meets the constraints; carries the closest candidates and the binding constraint."""

    def __init__(
        self,
        message: str,
        *,
        binding: str | None = None,
        closest: Sequence[Mapping[str, Any]] = (),
        response: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.binding = binding
        self.closest = list(closest)
        self.response = dict(response or {})


@dataclass(frozen=True)
class OptimizationRequest:
    model: str
    hardware: str
    devices: int
    nodes: int | None = None
    workload: Workload = field(default_factory=Workload)
    engines: tuple[str, ...] | None = None
    quantizations: tuple[str, ...] | None = None
    max_devices: int | None = None
    max_memory_gb: float | None = None
    max_batch_size: int | None = None
    constraints: Constraints = field(default_factory=Constraints)
    optimization_target: str = "throughput"
    ga: GASettings = field(default_factory=GASettings)
    exhaustive: bool = False
    alternatives: int = DEFAULT_ALTERNATIVES
    price_per_hour: float | None = None  # None = the catalog's $/device-hour
    # speculative decoding methods searched beside plain decoding (budsim.core.speculative)
    speculative: tuple[str, ...] = ()
    # also predict prefill/decode splits of the best (search.disagg_split), kept with the run
    disagg: bool = False

    def validate(self) -> None:
        """Hold the request to the input rules (budsim.core.schema.SearchInput, WorkloadInput)."""
        from ..schema import search_fields, search_input

        checked = search_input(search_fields(self))
        self.workload.validate()
        if checked.speculative != tuple(self.speculative):
            raise BudsimError(
                f"speculative entries {list(self.speculative)} are not in their parsed form "
                "(budsim.core.speculative.parse_searched)"
            )

    def limits(self) -> Limits:
        return Limits(
            max_devices=self.max_devices,
            max_memory_gb=self.max_memory_gb,
            max_batch_size=self.max_batch_size,
            engines=self.engines,
            quantizations=self.quantizations,
            speculative=self.speculative,
        )

    def to_dict(self) -> dict[str, Any]:
        workload = asdict(self.workload)
        workload.pop("extra", None)
        return {
            "model": self.model,
            "hardware": self.hardware,
            "devices": self.devices,
            "nodes": self.nodes,
            "workload": workload,
            "engines": list(self.engines) if self.engines else None,
            "quantizations": list(self.quantizations) if self.quantizations else None,
            "max_devices": self.max_devices,
            "max_memory_gb": self.max_memory_gb,
            "max_batch_size": self.max_batch_size,
            "constraints": self.constraints.to_dict(),
            "optimization_target": self.optimization_target,
            "ga": self.ga.to_dict(),
            "exhaustive": self.exhaustive,
            "alternatives": self.alternatives,
            "price_per_hour": self.price_per_hour,
            "speculative": list(self.speculative),
            "disagg": self.disagg,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OptimizationRequest:
        """Inverse of to_dict (used to re-run a stored run)."""
        ga = dict(data.get("ga") or {})
        renames = {
            "population_size": "population",
            "crossover_probability": "crossover",
            "mutation_probability": "mutation",
            "tournament_size": "tournament",
            "elite_size": "elite",
            "polish_rounds": "polish",
        }
        ga = {renames.get(k, k): v for k, v in ga.items()}
        cons = dict(data.get("constraints") or {})
        return cls(
            model=data["model"],
            hardware=data["hardware"],
            devices=int(data["devices"]),
            nodes=data.get("nodes"),
            workload=Workload(**(data.get("workload") or {})),
            engines=tuple(data["engines"]) if data.get("engines") else None,
            quantizations=tuple(data["quantizations"]) if data.get("quantizations") else None,
            max_devices=data.get("max_devices"),
            max_memory_gb=data.get("max_memory_gb"),
            max_batch_size=data.get("max_batch_size"),
            constraints=Constraints(**cons),
            optimization_target=data.get("optimization_target", "throughput"),
            ga=GASettings(**ga),
            exhaustive=bool(data.get("exhaustive", False)),
            alternatives=int(data.get("alternatives", DEFAULT_ALTERNATIVES)),
            price_per_hour=data.get("price_per_hour"),
            speculative=tuple(data.get("speculative") or ()),
            disagg=bool(data.get("disagg", False)),
        )


@dataclass
class Problem:
    """Everything the search needs, resolved from the catalog (tests may build one directly)."""

    space: SearchSpace
    scorer: Scorer
    workload: Workload
    device_memory_gb: float
    price_per_hour: float
    model_info: dict[str, Any] = field(default_factory=dict)
    # smallest possible weights (GB) over the allowed formats, None if unknown: the fit pre-check
    min_weights_gb: float | None = None


class PredictEvaluator:
    """The real evaluator: budsim.core.predict.predict_many, predictions as flat dicts.

    With `workers` > 1 a batch is split over that many processes: this one and `workers` - 1
    forked ones (fork where the process has a single thread, else spawn), each keeping the
    deployments it saw first (their step-time models and simulations stay warm there). `start()`
    forks them at once (before the caller starts any thread: a progress display); call `close()`
    when done. Results do not depend on `workers`.
    """

    def __init__(self, workload: Workload, *, workers: int = 1) -> None:
        self.workload = workload
        self.workers = max(1, int(workers))
        self.errors: dict[str, int] = {}
        self._pool: Any = None
        self._home: dict[tuple[Any, ...], int] = {}  # deployment family -> its worker (0: here)

    def start(self, warm: Sequence[Deployment] = ()) -> None:
        """Start the worker processes now rather than at the first batch that needs them.
        `warm`: deployments whose engines' shared tables (predict.warm_up) are loaded here first,
        so that the forked workers inherit them instead of each loading them again."""
        if self.workers > 1:
            if warm:
                from ..predict import warm_up

                warm_up(warm)
            # What is loaded by now (modules, tables, step-time models) lives as long as the
            # process: frozen, the collector no longer walks it at every collection of the
            # search (in a replay of searches' simulations, 6 % fewer instructions), and the
            # forked workers do not copy the pages a collection would write to (the gc module's
            # advice for fork). Collected first, so that no garbage is frozen with it.
            gc.collect()
            gc.freeze()
            for pool in self._get_pools():
                pool.submit(_started)

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]:
        if self.workers > 1 and len(deployments) >= 2 * self.workers:
            merged = self._evaluate_parallel(deployments)
        else:
            merged = _predict_chunk((deployments, self.workload))
        out: list[dict[str, Any] | None] = []
        for pred, error in merged:
            if error is not None:
                self.errors[error] = self.errors.get(error, 0) + 1
            out.append(pred)
        return out

    def _evaluate_parallel(
        self, deployments: Sequence[Deployment]
    ) -> list[tuple[dict[str, Any] | None, str | None]]:
        """Deployments of the same replica and replica count (a family: they share a step-time
        model and often simulations) go to the process that first predicted their family.
        Families new to every process are queued to the workers one family a task, and this
        process, once through its own share, takes them back from the end of the queue while
        they have not started: the processes finish together however unequal the families'
        costs are."""
        pools = self._get_pools()
        mine: list[int] = []
        theirs: list[list[int]] = [[] for _ in pools]
        new: list[tuple[tuple[Any, ...], list[int]]] = []
        for key, members in _families(deployments).items():
            home = self._home.get(key)
            if home is None:
                new.append((key, members))
            elif home == 0:
                mine.extend(members)
            else:
                theirs[home - 1].extend(members)

        def submit(pool: Any, members: list[int]) -> Any:
            return pool.submit(_predict_chunk, ([deployments[i] for i in members], self.workload))

        done: list[tuple[list[int], Any]] = [
            (members, submit(pool, members))
            for pool, members in zip(pools, theirs, strict=True)
            if members
        ]
        new.sort(key=lambda kv: -len(kv[1]))  # largest first
        queued = [(key, members, w) for w, (key, members) in enumerate(new)]
        futures = [submit(pools[w % len(pools)], members) for _, members, w in queued]
        parts: list[tuple[list[int], list[tuple[dict[str, Any] | None, str | None]]]] = []
        if mine:
            parts.append((mine, _predict_chunk(([deployments[i] for i in mine], self.workload))))
        while queued and futures[-1].cancel():  # not started: this process takes it
            key, members, _ = queued.pop()
            futures.pop()
            self._home[key] = 0
            parts.append(
                (members, _predict_chunk(([deployments[i] for i in members], self.workload)))
            )
        for (key, members, w), future in zip(queued, futures, strict=True):
            self._home[key] = 1 + w % len(pools)
            done.append((members, future))
        parts += [(members, future.result()) for members, future in done]
        merged: list[tuple[dict[str, Any] | None, str | None]] = [(None, None)] * len(deployments)
        for members, part in parts:
            for i, item in zip(members, part, strict=True):
                merged[i] = item
        return merged

    def _get_pools(self) -> list[Any]:
        """One single-process executor per forked worker, so that each process keeps seeing the
        same deployments (and reuses its step-time models and simulations) generation after
        generation."""
        if self._pool is None:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor

            method = "fork" if threading.active_count() == 1 else "spawn"
            if method not in multiprocessing.get_all_start_methods():
                method = "spawn"
            ctx = multiprocessing.get_context(method)
            self._pool = [
                ProcessPoolExecutor(max_workers=1, mp_context=ctx) for _ in range(self.workers - 1)
            ]
        return list(self._pool)

    def close(self) -> None:
        if self._pool is not None:
            for pool in self._pool:
                pool.shutdown(cancel_futures=True)
            self._pool = None


def _started() -> None:
    """A worker's first task: it exists (ProcessPoolExecutor starts its process on a submit).
    Its calibration warnings are left to the parent, which predicts the same kinds of cases (and
    the best one again) and says each once; every worker would repeat them."""
    import warnings

    from ..calibration.store import CalibrationWarning

    warnings.filterwarnings("ignore", category=CalibrationWarning)


def _families(deployments: Sequence[Deployment]) -> dict[tuple[Any, ...], list[int]]:
    """Indices of `deployments` by family: deployments of the same replicas and replica count
    (they differ in scheduler knobs only, and share a step-time model and the workload of a
    replica, so often simulations). The replica count makes families small enough to balance
    the processes: a family of every count of one replica is a tenth of an exhaustive batch."""
    groups: dict[tuple[Any, ...], list[int]] = {}
    for i, d in enumerate(deployments):
        key = (d.engine, d.tp, d.pp, d.dp, d.ep, d.weight_dtype, d.kv_dtype, d.replicas)
        groups.setdefault(key, []).append(i)
    return groups


def _predict_chunk(
    args: tuple[Sequence[Deployment], Workload],
) -> list[tuple[dict[str, Any] | None, str | None]]:
    from ..predict import predict_many

    deployments, workload = args
    out: list[tuple[dict[str, Any] | None, str | None]] = []
    for result in predict_many(deployments, workload):
        if isinstance(result, BaseException):
            out.append((None, str(result)))
        else:
            out.append((result.to_dict(), None))
    return out


def _model_hash(model: Any) -> str:
    return hashlib.sha256(repr(model).encode()).hexdigest()[:16]


def prepare(request: OptimizationRequest) -> Problem:
    """Resolve the model, cluster and engines and build the space and scorer."""
    from ..engines import engines_for
    from ..hardware import make_cluster
    from ..model import load_model

    request.validate()
    request = with_canonical_model(request)
    model = load_model(request.model)
    cluster = make_cluster(request.hardware, request.devices, request.nodes)
    device = cluster.device
    engines = engines_for(device.kind)
    if not engines:
        raise BudsimError(f"no engine profile runs on {device.kind} hardware ({device.id})")
    space = build_space(model, cluster, engines, request.workload, request.limits())
    price = request.price_per_hour or float(device.price_per_hour)
    constraints = request.constraints
    if request.max_memory_gb is not None and constraints.max_memory_gb is None:
        constraints = replace(constraints, max_memory_gb=request.max_memory_gb)
    scorer = Scorer(
        target=request.optimization_target,
        constraints=constraints,
        price_per_hour=price,
        device_memory_gb=float(device.memory_gb),
    )
    min_weights = None
    dtypes = {
        model.checkpoint_dtype if d == "auto" else d for e in space.engines for d in e.weight_dtypes
    }
    try:
        min_weights = min(float(model.weight_bytes(d)) for d in dtypes) / 1e9
    except Exception:  # noqa: BLE001 - the pre-check is optional; the search still finds no-fits
        min_weights = None
    info = {
        "name": model.name,
        "checkpoint_dtype": model.checkpoint_dtype,
        "is_moe": bool(getattr(model, "is_moe", False)),
        "hash": _model_hash(model),
        "version": getattr(model, "revision", None) or getattr(model, "version", None),
    }
    for attr in ("total_params", "active_params"):
        try:
            info[attr] = int(getattr(model, attr))
        except Exception:  # noqa: BLE001
            pass
    return Problem(
        space=space,
        scorer=scorer,
        workload=request.workload,
        device_memory_gb=float(device.memory_gb),
        price_per_hour=price,
        model_info=info,
        min_weights_gb=min_weights,
    )


def config_dict(candidate: Candidate) -> dict[str, Any]:
    d = candidate.deployment.to_dict()
    d["devices"] = candidate.deployment.devices
    d["devices_per_replica"] = candidate.deployment.devices_per_replica
    return d


def candidate_dict(candidate: Candidate, scorer: Scorer) -> dict[str, Any]:
    """A candidate in response shape: configuration, predicted_performance, objectives, constraints."""
    objectives: dict[str, Any] = {
        name: _finite(value)
        for name, value in zip(scorer.objective_names, candidate.score.objectives, strict=True)
    }
    objectives["target"] = _finite(candidate.target)
    return {
        "configuration": config_dict(candidate),
        "predicted_performance": candidate.prediction,
        "objectives": objectives,
        "feasible": candidate.feasible,
        "violation": _finite(candidate.violation),
        "constraints": [c.to_dict() for c in candidate.score.checks],
    }


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


@dataclass
class OptimizationResult:
    simulation_id: str | None
    status: str  # completed | cancelled
    request: OptimizationRequest
    best: Candidate | None
    alternatives: list[Candidate]
    pareto: list[Candidate]
    outcome: SearchOutcome
    scorer: Scorer
    duration_s: float
    model_info: dict[str, Any] = field(default_factory=dict)
    # the best configuration replicated over every device of the budget, when it uses fewer
    # (fill_devices); None when it already uses them all
    fill: dict[str, Any] | None = None
    disagg: dict[str, Any] | None = None  # search.disagg_split.compare_disaggregated, if asked

    def metadata(self) -> dict[str, Any]:
        o = self.outcome
        return {
            "duration_seconds": round(self.duration_s, 4),
            "generations_evolved": o.generations,
            "local_search_rounds": o.local_rounds,
            "configurations_evaluated": o.evaluations,
            "method": o.method,
            "seed": o.seed,
            "search_space_size": o.space_size,
            "cache_hits": o.cache_hits,
            "early_stopped": o.early_stopped,
            "pareto_front_size": len(o.pareto),
            "budsim_version": __version__,
            "model_hash": self.model_info.get("hash"),
        }

    def to_dict(self) -> dict[str, Any]:
        best = self.best
        best_view = candidate_dict(best, self.scorer) if best else None
        return {
            "simulation_id": self.simulation_id,
            "status": self.status,
            "optimization_target": self.request.optimization_target,
            "optimal_configuration": best_view["configuration"] if best_view else None,
            "predicted_performance": best_view["predicted_performance"] if best_view else None,
            "objectives": best_view["objectives"] if best_view else None,
            "constraints": best_view["constraints"] if best_view else [],
            "alternative_configurations": [
                candidate_dict(c, self.scorer) for c in self.alternatives
            ],
            "pareto_front": [
                {
                    "configuration": config_dict(c),
                    "objectives": candidate_dict(c, self.scorer)["objectives"],
                }
                for c in self.pareto
            ],
            "simulation_metadata": self.metadata(),
            "request": self.request.to_dict(),
            "fill_devices": self.fill,
            "disaggregated": self.disagg,
        }

    def results_rows(self) -> list[dict[str, Any]]:
        """Rows for the store: best (rank 0), alternatives, then the rest of the Pareto front."""
        rows: list[dict[str, Any]] = []
        seen: set[tuple[int, ...]] = set()

        def add(c: Candidate, kind: str) -> None:
            if c.genome in seen:
                return
            seen.add(c.genome)
            view = candidate_dict(c, self.scorer)
            rows.append(
                {
                    "rank": len(rows),
                    "kind": kind,
                    "deployment": c.deployment.to_dict(),
                    "prediction": c.prediction,
                    "objectives": view["objectives"],
                    "feasible": c.feasible,
                    "constraints": view["constraints"],
                }
            )

        if self.best is not None:
            add(self.best, "best")
        for c in self.alternatives:
            add(c, "alternative")
        for c in self.pareto:
            add(c, "pareto")
        return rows


def choose(outcome: SearchOutcome, n_alternatives: int) -> tuple[Candidate | None, list[Candidate]]:
    """Headline best (by target among the feasible set) and the alternatives.

    Alternatives are the other members of the feasible Pareto front, best target first (each is a
    different trade-off), topped up with the next-best feasible candidates. Candidates predicted
    identically to one already shown (they differ only in a knob that does not matter here) are
    skipped.
    """
    feasible = outcome.feasible
    if not feasible:
        return None, []
    best = feasible[0]
    ranked = [
        c
        for pool in (outcome.pareto, feasible)
        for c in sorted(pool, key=Candidate.rank_key)
        if c.feasible
    ]
    return best, _one_per_prediction(ranked, n_alternatives, {_signature(best)})


def _signature(c: Candidate) -> tuple[Any, ...]:
    return (c.deployment.devices, *(float(f"{v:.6g}") for v in c.score.objectives))


def _one_per_prediction(
    ranked: Sequence[Candidate], n: int, shown: set[tuple[Any, ...]]
) -> list[Candidate]:
    """The first `n` of `ranked` whose devices and objectives differ from each other's and from
    `shown` (the rest differ only in a knob that does not matter here, such as the memory
    fraction where the KV cache does not bind; the same genome is the same signature)."""
    picked: list[Candidate] = []
    for c in ranked:
        if len(picked) >= n:
            break
        signature = _signature(c)
        if signature not in shown:
            shown.add(signature)
            picked.append(c)
    return picked


def _closest(fitting: Sequence[Candidate]) -> list[Candidate]:
    """A failed search's closest configurations, one of each prediction (as the alternatives)."""
    return _one_per_prediction(sorted(fitting, key=Candidate.rank_key), CLOSEST, set())


def _describe(c: Candidate) -> str:
    d = c.deployment
    parts = [d.engine, f"tp={d.tp}"]
    if d.pp > 1:
        parts.append(f"pp={d.pp}")
    if d.dp > 1:
        parts.append(f"dp={d.dp}")
    if d.ep > 1:
        parts.append(f"ep={d.ep}")
    if d.replicas > 1:
        parts.append(f"x{d.replicas}")
    parts.append(f"w={d.weight_dtype}")
    if d.kv_dtype != "auto":
        parts.append(f"kv={d.kv_dtype}")
    parts.append(f"seqs={d.max_num_seqs}")
    return " ".join(parts)


def _check_text(check: Check) -> str:
    if check.value is None:
        return f"{check.name} unavailable"
    if check.name.startswith("min_"):
        return f"{check.name} {check.value:.4g} < {check.limit:g}"
    return f"{check.name} {check.value:.4g} > {check.limit:g}"


def infeasibility(outcome: SearchOutcome, scorer: Scorer, problem: Problem) -> BudsimError:
    """The error for a search that found nothing feasible."""
    fitting = [c for c in outcome.candidates if c.score.status in ("ok", "slo")]
    if not fitting:
        no_fit = [c for c in outcome.candidates if c.score.status == "no_fit"]
        if no_fit:
            lightest = min(no_fit, key=lambda c: c.violation)
            weights = (lightest.prediction or {}).get("weights_gb_per_device")
            detail = (
                f"; the lightest candidate ({_describe(lightest)}) still needs "
                f"{weights:.1f} GB of weights per {problem.space.hardware} "
                f"({problem.device_memory_gb:g} GB)"
                if isinstance(weights, (int, float))
                else ""
            )
            return ModelDoesNotFit(
                f"{problem.space.model} does not fit on {problem.space.devices} x "
                f"{problem.space.hardware} with any configuration searched{detail}; "
                "add devices, allow a smaller --quant, or lower the context"
            )
        return BudsimError(
            "the predictor rejected every configuration searched"
            " (check the model, hardware and engine combination)"
        )
    closest = _closest(fitting)
    # The binding constraint: the one whose best achievable value (over everything that fits) misses
    # by the most; if each alone is achievable, the combination binds.
    achievable: dict[str, Check] = {}
    for c in fitting:
        for check in c.score.checks:
            cur = achievable.get(check.name)
            if cur is None or check.violation < cur.violation:
                achievable[check.name] = check
    missed = {k: v for k, v in achievable.items() if v.violation > 0}
    if missed:
        name, check = max(missed.items(), key=lambda kv: kv[1].violation)
        best_value = "unavailable" if check.value is None else f"{check.value:.4g}"
        binding = name
        why = f"{name} cannot be met: the best any configuration reaches is {best_value} vs {check.limit:g}"
    else:
        binding = "combination"
        why = "each constraint can be met alone, but not all together"
    top = closest[0]
    missed_top = [ch for ch in top.score.checks if ch.violation > 0]
    closest_text = f"closest: {_describe(top)} ({'; '.join(_check_text(c) for c in missed_top)})"
    closest_views = [candidate_dict(c, scorer) for c in closest]
    response = {
        "status": "infeasible",
        "binding_constraint": binding,
        "closest_configurations": closest_views,
    }
    return NoFeasibleConfiguration(
        f"no configuration meets the constraints; {why}; {closest_text}",
        binding=binding,
        closest=closest_views,
        response=response,
    )


def _fit_precheck(problem: Problem) -> None:
    if problem.min_weights_gb is None:
        return
    space = problem.space
    capacity = space.devices * problem.device_memory_gb * max(space.gpu_memory_utilization)
    if problem.min_weights_gb > capacity:
        raise ModelDoesNotFit(
            f"{space.model} needs at least {problem.min_weights_gb:.1f} GB of weights in the smallest "
            f"allowed format, but {space.devices} x {space.hardware} hold {capacity:.1f} GB at "
            f"{max(space.gpu_memory_utilization):.0%} memory use; add devices or allow a smaller --quant"
        )


def with_canonical_model(request: OptimizationRequest) -> OptimizationRequest:
    """The request under its model's one name (`model.canonical_model_name`): a search asked for
    by an alias is saved, and answers, under the catalog id; a config path stays a path."""
    from ..model import canonical_model_name

    name = canonical_model_name(request.model)
    return request if name == request.model else replace(request, model=name)


def fill_devices(best: Candidate, scorer: Scorer, problem: Problem) -> dict[str, Any] | None:
    """The best configuration with as many replicas as the device budget packs, at the same
    load split over them: what the devices the best leaves idle would add (None when it uses
    them all or no more replicas fit)."""
    from ..predict import predict

    space = problem.space
    dep = best.deployment
    replicas = space.max_replicas(dep.devices_per_replica)
    if replicas <= dep.replicas:
        return None
    filled = dep.with_(replicas=replicas)
    try:
        prediction = predict(filled, problem.workload).to_dict()
    except BudsimError:
        return None
    score = scorer.score(filled, prediction)
    config = filled.to_dict()
    config["devices"] = filled.devices
    config["devices_per_replica"] = filled.devices_per_replica
    return {
        "configuration": config,
        "predicted_performance": prediction,
        "feasible": score.feasible,
        "devices_available": space.devices,
        "devices_used_by_best": dep.devices,
    }


def run_optimization(
    request: OptimizationRequest,
    *,
    on_event: Callable[[GenerationEvent], None] | None = None,
    cancel: threading.Event | None = None,
    store: RunStore | None = None,
    evaluator: Evaluator | None = None,
    problem: Problem | None = None,
    workers: int = 1,
) -> OptimizationResult:
    """Search for the best deployment.

    `evaluator`/`problem` default to the real predictor and catalog; `workers` > 1 spreads each batch
    of predictions over that many processes (the answer does not change).
    """
    started = time.perf_counter()
    request.validate()
    request = with_canonical_model(request)
    problem = problem or prepare(request)
    _fit_precheck(problem)
    own: PredictEvaluator | None = None
    if evaluator is None:
        evaluator = own = PredictEvaluator(problem.workload, workers=workers)
        own.start(warm=problem.space.engine_samples())
    try:
        return _run(request, problem, evaluator, on_event, cancel, store, started)
    finally:
        if own is not None:
            own.close()


def _run(
    request: OptimizationRequest,
    problem: Problem,
    evaluator: Evaluator,
    on_event: Callable[[GenerationEvent], None] | None,
    cancel: threading.Event | None,
    store: RunStore | None,
    started: float,
) -> OptimizationResult:
    scorer = problem.scorer
    run_id: str | None = None
    if store is not None:
        run_id = store.create_run(
            inputs=request.to_dict(),
            settings={**request.ga.to_dict(), "exhaustive": request.exhaustive},
            model=request.model,
            hardware=request.hardware,
            devices=request.devices,
            objective=request.optimization_target,
            model_hash=problem.model_info.get("hash"),
            model_version=problem.model_info.get("version"),
            space=problem.space.describe(),
        )

    def handle(event: GenerationEvent) -> None:
        if store is not None and run_id is not None:
            best = event.best_candidate
            store.record_generation(
                run_id,
                event.generation,
                stats=event.stats(),
                population=event.individuals if event.method != "exhaustive" else [],
                front=event.pareto_front,
                best=candidate_dict(best, scorer) if best is not None and best.feasible else None,
            )
        if on_event is not None:
            on_event(event)

    finished = False
    try:
        if request.exhaustive:
            from .exhaustive import run_exhaustive

            outcome = run_exhaustive(
                problem.space, evaluator, scorer, on_event=handle, cancel=cancel
            )
        else:
            outcome = run_ga(
                problem.space, evaluator, scorer, request.ga, on_event=handle, cancel=cancel
            )
        best, alternatives = choose(outcome, request.alternatives)
        result = OptimizationResult(
            simulation_id=run_id,
            status=outcome.status,
            request=request,
            best=best,
            alternatives=alternatives,
            pareto=outcome.pareto,
            outcome=outcome,
            scorer=scorer,
            duration_s=time.perf_counter() - started,
            model_info=problem.model_info,
        )
        if best is not None:
            result.fill = fill_devices(best, scorer, problem)
            if request.disagg:
                from .disagg_split import compare_disaggregated

                result.disagg = compare_disaggregated(
                    best, scorer, problem.space.devices, problem.workload
                )
        if best is None and outcome.status == "completed":
            error = infeasibility(outcome, scorer, problem)
            if isinstance(error, NoFeasibleConfiguration):
                error.response.update(simulation_id=run_id, simulation_metadata=result.metadata())
            if store is not None and run_id is not None:
                # the rows History and `runs show` re-open: the same one-per-prediction list as
                # the error's (five rows differing only in the memory fraction had been stored)
                closest = _closest(
                    [c for c in outcome.candidates if c.score.status in ("ok", "slo")]
                )
                rows = [
                    {
                        "rank": i,
                        "kind": "closest",
                        "deployment": c.deployment.to_dict(),
                        "prediction": c.prediction,
                        "objectives": candidate_dict(c, scorer)["objectives"],
                        "feasible": False,
                        "constraints": [ch.to_dict() for ch in c.score.checks],
                    }
                    for i, c in enumerate(closest)
                ]
                store.finish_run(
                    run_id,
                    "failed",
                    results=rows,
                    metadata=result.metadata(),
                    error=str(error),
                    response=getattr(error, "response", None),
                )
                finished = True
            raise error
    except BaseException as exc:
        if store is not None and run_id is not None and not finished:
            status = "cancelled" if isinstance(exc, KeyboardInterrupt) else "failed"
            message = str(exc) if isinstance(exc, BudsimError) else f"{type(exc).__name__}: {exc}"
            store.finish_run(run_id, status, error=message)
        raise
    if store is not None and run_id is not None:
        store.finish_run(
            run_id,
            outcome.status,
            results=result.results_rows(),
            metadata=result.metadata(),
            response=result.to_dict(),
        )
    return result


__all__ = [
    "ModelDoesNotFit",
    "NoFeasibleConfiguration",
    "OptimizationRequest",
    "OptimizationResult",
    "PredictEvaluator",
    "Problem",
    "best_of",
    "choose",
    "prepare",
    "run_optimization",
]
