"""The optimisation as the TUI runs it, on a worker thread (no textual here).

`run_search` wraps `budsim.core.search.optimize.run_optimization`:
- progress events become small immutable `Progress` snapshots (plain data the UI thread can keep);
- predictions run in a small pool of processes (`PredictionPool`): the predictor is pure Python, and
  run on the worker thread it would share the GIL with the UI thread and stall it; in a child process
  the worker thread just waits (GIL released) while the UI stays responsive. With `workers=0` they
  run on the worker thread itself (same answers);
- the evaluator checks the cancel flag between small chunks of predictions, so a cancel lands within
  a fraction of a second even in the middle of a large generation (the GA itself only looks at the
  flag between generations);
- the run is written to the store as it goes, so a cancelled run keeps its finished generations.
"""

from __future__ import annotations

import atexit
import math
import os
import threading
import warnings
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .views import natural_target

if TYPE_CHECKING:
    from budsim.core.deployment import Deployment, Workload
    from budsim.core.search.optimize import OptimizationRequest

LEADERS = 8  # rows of the best-so-far table


@dataclass(frozen=True)
class Point:
    x: float  # second objective (tok/s per user, or E2E latency)
    y: float  # tok/s per device
    feasible: bool
    front: bool


@dataclass(frozen=True)
class Progress:
    """One generation (or exhaustive batch) as the run screen shows it."""

    generation: int
    generations: int  # planned generations after the initial population
    method: str  # ga | local (hill-climbing rounds after evolution) | exhaustive
    evaluations: int
    cache_hits: int
    feasible: int
    population: int
    elapsed_s: float
    space_size: int | None
    target: str
    best_target: float | None  # natural units of the target
    mean_target: float | None
    x_name: str
    points: tuple[Point, ...] = ()
    leaders: tuple[dict[str, Any], ...] = ()
    local_round: int = 0

    @property
    def fraction(self) -> float:
        """Share of the planned work done (0..1)."""
        if self.method == "exhaustive":
            if not self.space_size:
                return 0.0
            return min(1.0, self.evaluations / self.space_size)
        if self.method == "local":
            return 1.0  # evolution is over; the local search takes a few short rounds
        return min(1.0, (self.generation + 1) / (self.generations + 1))

    @property
    def evals_per_s(self) -> float:
        return self.evaluations / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def eta_s(self) -> float | None:
        """Time left at the current pace (the GA may stop early when the front converges)."""
        done = self.fraction
        if done <= 0 or self.elapsed_s <= 0:
            return None
        return self.elapsed_s * (1 - done) / done


def progress_from_event(
    event: Any, *, target: str, generations: int, space_size: int | None
) -> Progress:
    """A GenerationEvent as a Progress snapshot."""
    names: Sequence[str] = tuple(event.objective_names) or (
        "output_tok_s_per_device",
        "tok_s_per_user",
        "usd_per_1m_output_tokens",
    )
    x_name = names[1] if len(names) > 1 else "tok_s_per_user"
    y_name = names[0]
    front_keys = {_key(m.get("configuration") or {}) for m in event.pareto_front}
    points: list[Point] = []
    for ind in event.individuals:
        obj = ind.get("objectives") or {}
        x, y = obj.get(x_name), obj.get(y_name)
        if not (_finite(x) and _finite(y)) or (not ind.get("feasible") and y == 0):
            continue  # rejected or out of memory: nothing to plot
        key = _key(ind.get("configuration") or {})
        feasible = bool(ind.get("feasible"))
        points.append(Point(float(x or 0), float(y or 0), feasible, feasible and key in front_keys))
    pool = list(event.individuals) or list(event.pareto_front)
    ranked = sorted(
        pool,
        key=lambda m: (
            not m.get("feasible"),
            m.get("violation") or 0.0,
            -(m.get("target") if _finite(m.get("target")) else -math.inf),
        ),
    )
    leaders: list[dict[str, Any]] = []
    seen: set[tuple[Any, ...]] = set()
    best = getattr(event, "best_candidate", None)
    if best is not None:
        summary = best.summary(names)
        seen.add(_key(summary["configuration"]))
        leaders.append(summary)
    for m in ranked:
        key = _key(m.get("configuration") or {})
        if key in seen:
            continue
        seen.add(key)
        leaders.append(m)
        if len(leaders) >= LEADERS:
            break
    return Progress(
        generation=int(event.generation),
        generations=generations,
        method=str(getattr(event, "method", "ga")),
        local_round=int(getattr(event, "local_round", 0)),
        evaluations=int(event.evaluations),
        cache_hits=int(event.cache_hits),
        feasible=int(event.feasible),
        population=len(event.individuals),
        elapsed_s=float(event.elapsed_s),
        space_size=space_size,
        target=target,
        best_target=natural_target(target, _num(event.best.get("target"))),
        mean_target=natural_target(target, _num(event.mean.get("target"))),
        x_name=x_name,
        points=tuple(points),
        leaders=tuple(leaders),
    )


def _key(config: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(sorted((k, v) for k, v in config.items() if k not in ("model", "hardware")))


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any) -> float | None:
    return float(value) if _finite(value) else None


class CancellableEvaluator:
    """Predicts a batch in small chunks, giving up (None = rejected) once `cancel` is set.

    The GA looks at the cancel flag right after each evaluation and returns the generations it
    finished, so the placeholder Nones never reach a result.
    """

    def __init__(self, inner: Any, cancel: threading.Event, chunk: int = 2) -> None:
        self.inner = inner
        self.cancel = cancel
        self.chunk = max(1, chunk)

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]:
        out: list[dict[str, Any] | None] = []
        for start in range(0, len(deployments), self.chunk):
            if self.cancel.is_set():
                out.extend([None] * (len(deployments) - start))
                break
            out.extend(self.inner.evaluate(deployments[start : start + self.chunk]))
        return out

    def close(self) -> None:
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()


def default_workers() -> int:
    """Prediction processes: one per spare core (the UI keeps one), at most 4."""
    cores = os.cpu_count() or 1
    return max(1, min(4, cores - 1))


def _child_init() -> None:
    """Pool processes share the terminal the TUI draws on: nothing they print may reach it."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _predict_batch(
    deployments: Sequence[Deployment], workload: Workload
) -> tuple[list[tuple[dict[str, Any] | None, str | None]], list[str]]:
    """Runs in a pool process: (prediction or None, error or None) per deployment, and warnings."""
    import warnings

    from budsim.core.predict import predict_many

    out: list[tuple[dict[str, Any] | None, str | None]] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        for result in predict_many(list(deployments), workload):
            if isinstance(result, BaseException):
                out.append((None, str(result)))
            else:
                out.append((result.to_dict(), None))
    return out, [str(w.message) for w in caught]


def _warm() -> bool:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import budsim.core.predict  # noqa: F401 - the import is the point

    return True


class PredictionPool:
    """A process pool for predictions, started once per process and reused by every search."""

    _lock = threading.Lock()
    _pool: Any = None
    _size = 0

    @classmethod
    def get(cls, workers: int) -> Any:
        with cls._lock:
            if cls._pool is not None and cls._size != workers:
                cls._pool.shutdown(wait=False, cancel_futures=True)
                cls._pool = None
            if cls._pool is None:
                import multiprocessing
                from concurrent.futures import ProcessPoolExecutor

                ctx = multiprocessing.get_context("spawn")  # the app has threads: never fork
                cls._pool = ProcessPoolExecutor(
                    max_workers=workers, mp_context=ctx, initializer=_child_init
                )
                cls._size = workers
            return cls._pool

    @classmethod
    def warm(cls, workers: int) -> None:
        """Start the processes and import the predictor there, ahead of the first search."""
        pool = cls.get(workers)
        for _ in range(workers):
            pool.submit(_warm)

    @classmethod
    def shutdown(cls) -> None:
        with cls._lock:
            if cls._pool is not None:
                cls._pool.shutdown(wait=False, cancel_futures=True)
                cls._pool = None


atexit.register(PredictionPool.shutdown)


class PooledEvaluator:
    """Predicts in the pool processes, chunk by chunk, giving up (None) once `cancel` is set."""

    def __init__(
        self, workload: Workload, cancel: threading.Event, *, workers: int, chunk: int = 2
    ) -> None:
        self.workload = workload
        self.cancel = cancel
        self.workers = workers
        self.chunk = max(1, chunk)
        self.errors: dict[str, int] = {}
        self.warnings: list[str] = []

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]:
        from concurrent.futures.process import BrokenProcessPool

        chunks = [
            list(deployments[i : i + self.chunk]) for i in range(0, len(deployments), self.chunk)
        ]
        futures: list[Future[Any]] = []
        try:
            pool = PredictionPool.get(self.workers)
            futures = [pool.submit(_predict_batch, chunk, self.workload) for chunk in chunks]
        except (BrokenProcessPool, RuntimeError, OSError, ValueError):
            # A dead pool, or processes that cannot be spawned (e.g. "bad value(s) in
            # fds_to_keep" when a file descriptor the spawner tracks was closed under it):
            # predict on this thread instead, which gives the same answers.
            PredictionPool.shutdown()
            futures = []
        out: list[dict[str, Any] | None] = []
        for n, chunk in enumerate(chunks):
            part: Any = None
            while part is None:
                if self.cancel.is_set():
                    for pending in futures[n:]:
                        pending.cancel()
                    out.extend([None] * (len(deployments) - len(out)))
                    return out
                if n >= len(futures):
                    part = _predict_batch(chunk, self.workload)
                    break
                try:
                    part = futures[n].result(timeout=0.05)
                except FutureTimeout:
                    continue
                except (BrokenProcessPool, ValueError, OSError):
                    PredictionPool.shutdown()
                    futures = futures[:n]  # the rest runs on this thread
            results, warned = part
            for text in warned:
                if text not in self.warnings:
                    self.warnings.append(text)
            for pred, error in results:
                if error is not None:
                    self.errors[error] = self.errors.get(error, 0) + 1
                out.append(pred)
        return out

    def close(self) -> None:
        """The pool outlives one search (it is shared); nothing to release here."""


class _StoreTap:
    """Passes every call to the store; tells the caller the run id as soon as the run exists."""

    def __init__(self, store: Any, on_created: Callable[[str], None]) -> None:
        self._store = store
        self._on_created = on_created

    def create_run(self, **kwargs: Any) -> str:
        run_id = str(self._store.create_run(**kwargs))
        self._on_created(run_id)
        return run_id

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


@dataclass
class SearchOutcome:
    run_id: str | None
    status: str  # completed | cancelled
    response: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)  # from the predictor, once each


def run_search(
    request: OptimizationRequest,
    *,
    cancel: threading.Event,
    on_progress: Callable[[Progress], None] | None = None,
    on_created: Callable[[str], None] | None = None,
    db_path: str | Path | None = None,
    save: bool = True,
    workers: int = 0,
) -> SearchOutcome:
    """Run the optimisation in this thread. Raises BudsimError for impossible requests.

    `workers` > 0 predicts in that many pool processes (see the module docstring); 0 predicts here.
    """
    from budsim.core.search.optimize import PredictEvaluator, prepare, run_optimization

    problem = prepare(request)
    space_size: int | None
    try:
        space_size = int(problem.space.size)
    except Exception:  # noqa: BLE001 - only used for the progress bar of exhaustive runs
        space_size = None
    evaluator: Any
    if workers > 0:
        evaluator = PooledEvaluator(problem.workload, cancel, workers=workers)
    else:
        evaluator = CancellableEvaluator(PredictEvaluator(problem.workload), cancel, chunk=2)
    store: Any = None
    if save:
        from budsim.core.store import open_store

        store = open_store(db_path)

    def created(run_id: str) -> None:
        if on_created is not None:
            on_created(run_id)

    def handle(event: Any) -> None:
        if on_progress is not None:
            on_progress(
                progress_from_event(
                    event,
                    target=request.optimization_target,
                    generations=request.ga.generations,
                    space_size=space_size,
                )
            )

    # the tap stands in for the RunStore (same methods, plus the run id as soon as it exists)
    tap: Any = _StoreTap(store, created) if store is not None else None
    caught: list[Any] = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            result = run_optimization(
                request,
                on_event=handle,
                cancel=cancel,
                store=tap,
                evaluator=evaluator,
                problem=problem,
            )
    finally:
        evaluator.close()
        if store is not None:
            store.close()
    texts = list(getattr(evaluator, "warnings", []))
    for w in caught:
        if str(w.message) not in texts:
            texts.append(str(w.message))
    return SearchOutcome(result.simulation_id, result.status, result.to_dict(), texts)
