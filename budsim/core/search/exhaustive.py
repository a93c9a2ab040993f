"""Exhaustive search: evaluate every valid genome of the space (the reference the GA is checked against).

It walks `SearchSpace.enumerate()` (exactly the genomes `repair` can produce) in batches, scores them with
the same Scorer, and reports one progress event per batch (`generation` = batch number) carrying the
batch's best and the current Pareto front rather than every individual, so events stay small. Only the
Pareto set and the `keep` best candidates are kept in memory (a space can hold a million genomes).
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable
from itertools import islice

from .ga import (
    CachedEvaluator,
    Candidate,
    Evaluator,
    GenerationEvent,
    ParetoArchive,
    SearchOutcome,
    population_stats,
)
from .scoring import Scorer
from .space import SearchSpace

DEFAULT_BATCH = 2048


def run_exhaustive(
    space: SearchSpace,
    evaluator: Evaluator,
    scorer: Scorer,
    *,
    batch_size: int = DEFAULT_BATCH,
    on_event: Callable[[GenerationEvent], None] | None = None,
    cancel: threading.Event | None = None,
    limit: int | None = None,
    keep: int = 256,
) -> SearchOutcome:
    """Evaluate the whole space (or the first `limit` genomes). Checks `cancel` between batches."""
    started = time.perf_counter()
    cached = CachedEvaluator(space, evaluator, scorer)
    kept: list[tuple[_Reverse, int, Candidate]] = []  # heap: worst kept on top
    counter = 0
    archive = ParetoArchive()
    names = scorer.objective_names
    genomes = space.enumerate()
    if limit is not None:
        genomes = islice(genomes, limit)
    status = "completed"
    batch_no = 0
    leader: Candidate | None = None
    while True:
        if cancel is not None and cancel.is_set():
            status = "cancelled"
            break
        batch = list(islice(genomes, batch_size))
        if not batch:
            break
        cands = cached.evaluate(batch)
        cached.cache.clear()  # every genome is enumerated once: nothing to reuse
        for cand in cands:
            archive.add(cand)
            if leader is None or cand.rank_key() < leader.rank_key():
                leader = cand
            counter += 1
            item = (_Reverse(cand.rank_key()), counter, cand)
            if len(kept) < keep:
                heapq.heappush(kept, item)
            elif kept[0][0] < item[0]:
                heapq.heapreplace(kept, item)
        if on_event is not None:
            best, mean, worst = population_stats(cands, scorer)
            top = sorted(cands, key=Candidate.rank_key)[:10]
            on_event(
                GenerationEvent(
                    generation=batch_no,
                    individuals=[c.summary(names) for c in top],
                    pareto_front=[c.summary(names) for c in archive.members()],
                    best=best,
                    mean=mean,
                    worst=worst,
                    evaluations=cached.evaluations,
                    cache_hits=cached.cache_hits,
                    elapsed_s=time.perf_counter() - started,
                    feasible=sum(1 for c in cands if c.feasible),
                    best_candidate=leader,
                    method="exhaustive",
                    objective_names=names,
                    space_size=space.size,
                )
            )
        batch_no += 1
    return SearchOutcome(
        status=status,
        method="exhaustive",
        candidates=_merge(archive.members(), [c for _, _, c in kept]),
        pareto=archive.members(),
        generations=0,
        evaluations=cached.evaluations,
        cache_hits=cached.cache_hits,
        early_stopped=False,
        elapsed_s=time.perf_counter() - started,
        seed=None,
        space_size=space.size,
        objective_names=names,
    )


class _Reverse:
    """Orders rank keys backwards so a min-heap keeps the best `keep` candidates."""

    __slots__ = ("key",)

    def __init__(self, key: tuple[object, ...]) -> None:
        self.key = key

    def __lt__(self, other: _Reverse) -> bool:
        return self.key > other.key  # type: ignore[operator]

    def __gt__(self, other: _Reverse) -> bool:
        return self.key < other.key  # type: ignore[operator]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _Reverse) and self.key == other.key

    __hash__ = None  # type: ignore[assignment]


def _merge(*groups: list[Candidate]) -> list[Candidate]:
    out: dict[tuple[int, ...], Candidate] = {}
    for group in groups:
        for cand in group:
            out.setdefault(cand.genome, cand)
    return sorted(out.values(), key=Candidate.rank_key)
