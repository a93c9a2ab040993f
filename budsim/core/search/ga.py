"""NSGA-II over the deployment gene space (DEAP), with constrained domination.

- Constrained domination (Deb 2000): a feasible candidate dominates every infeasible one; among
  infeasible candidates the smaller total violation dominates; between feasible candidates (or equal
  violations) ordinary Pareto dominance on the objectives applies. Implemented by sorting the feasible
  set with DEAP's non-dominated sort and stacking the infeasible ones behind it by violation.
- Survivor selection: (mu + lambda) over parents and offspring without duplicate genomes; the `elite`
  candidates best on the headline target always survive, the rest by front rank and DEAP's crowding
  distance. Parent selection: tournament of `tournament` on (rank, crowding).
- Variation respects gene types: uniform crossover swaps whole genes; mutation steps ordinal genes up or
  down (sometimes jumps) and resets categorical ones; `SearchSpace.repair` then makes the child valid.
  The operators are budsim's own rather than DEAP's cxUniform / mutUniformInt for two reasons: DEAP's
  draw from the module-level `random`, which a TUI search shares with other threads and cannot seed
  for itself (a run records its seed so that the same search can be repeated; ours use the run's own
  `random.Random`), and mutUniformInt redraws a gene uniformly, where an ordinal gene (TP 1-2-4-8,
  sequence caps) mostly steps to a neighbour. The crossover is cxUniform's rule (indpb 0.5).
- One batched evaluate per generation, only for genomes not seen before (fitness cache per genome).
- Early stop when neither the feasible Pareto front of everything evaluated nor the best target
  improved by more than FRONT_TOLERANCE (1 %) for `patience` generations; the local search after
  the evolution polishes the best. A cancel flag is checked before and after each generation's
  evaluation.
"""

from __future__ import annotations

import itertools
import math
import os
import random
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from ..deployment import Deployment
from .scoring import Score, Scorer
from .space import (
    CATEGORICAL,
    DP,
    ENGINE,
    EP,
    GENES,
    PP,
    REPLICAS,
    TP,
    UTIL,
    WEIGHT,
    Genome,
    SearchSpace,
)


class Evaluator(Protocol):
    """Predicts a batch of deployments: one dict per deployment (prediction keys), None if rejected."""

    def evaluate(self, deployments: Sequence[Deployment]) -> list[dict[str, Any] | None]: ...


CLIMB_GAP = 0.2  # local search climbs from basins whose best is within 20 % of the leader
PARALLELISM = frozenset({TP, PP, DP, EP, REPLICAS})


@dataclass(frozen=True)
class GASettings:
    """Defaults are the documented BudSim service defaults."""

    population: int = 100
    generations: int = 50
    crossover: float = 0.8
    mutation: float = 0.2
    tournament: int = 3
    elite: int = 10  # capped at half the population
    patience: int | None = (
        10  # generations without front improvement before stopping; None/0 = never
    )
    seed: int | None = None
    # rounds of single-gene local search around the best candidate once evolution ends (0 = none)
    polish: int = 8

    def validate(self) -> None:
        """Hold the settings to the input rules (budsim.core.schema.GAInput)."""
        from ..schema import check_ga

        check_ga(self)

    def to_dict(self) -> dict[str, Any]:
        return {
            "population_size": self.population,
            "generations": self.generations,
            "crossover_probability": self.crossover,
            "mutation_probability": self.mutation,
            "tournament_size": self.tournament,
            "elite_size": self.elite,
            "patience": self.patience,
            "seed": self.seed,
            "polish_rounds": self.polish,
        }


@dataclass(frozen=True)
class Candidate:
    """One evaluated genome."""

    genome: Genome
    deployment: Deployment
    prediction: dict[str, Any] | None
    score: Score

    @property
    def feasible(self) -> bool:
        return self.score.feasible

    @property
    def violation(self) -> float:
        return self.score.violation

    @property
    def target(self) -> float:
        return self.score.target

    def rank_key(self) -> tuple[Any, ...]:
        """Sort key, best first: feasible, then smaller violation, higher target, fewer devices."""
        return (self.violation, -self.target, self.deployment.devices, self.genome)

    def summary(self, names: Sequence[str]) -> dict[str, Any]:
        """Compact plain-data view for events and the store (no full prediction)."""
        d = self.deployment.to_dict()
        d.pop("model", None)
        d.pop("hardware", None)
        return {
            "configuration": d,
            "objectives": dict(zip(names, _finite(self.score.objectives), strict=True)),
            "feasible": self.feasible,
            "violation": _finite1(self.violation),
            "target": _finite1(self.target),
            "status": self.score.status,
        }


def _finite1(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _finite(values: Iterable[float]) -> list[float | None]:
    return [_finite1(v) for v in values]


def best_of(candidates: Iterable[Candidate]) -> Candidate | None:
    return min(candidates, key=Candidate.rank_key, default=None)


class CachedEvaluator:
    """Scores genomes, calling the evaluator once per batch for the genomes it has not seen."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator, scorer: Scorer) -> None:
        self.space = space
        self.evaluator = evaluator
        self.scorer = scorer
        self.cache: dict[Genome, Candidate] = {}
        self.evaluations = 0  # unique genomes sent to the evaluator
        self.cache_hits = 0  # requests answered from the cache
        self.calls = 0  # batched evaluator calls

    def evaluate(self, genomes: Sequence[Genome]) -> list[Candidate]:
        missing: list[Genome] = []
        seen: set[Genome] = set()
        for g in genomes:
            if g in self.cache or g in seen:
                self.cache_hits += 1
            else:
                seen.add(g)
                missing.append(g)
        if missing:
            deployments = [self.space.deployment(g) for g in missing]
            predictions = self.evaluator.evaluate(deployments)
            self.calls += 1
            if len(predictions) != len(deployments):
                raise RuntimeError(
                    f"evaluator returned {len(predictions)} results for {len(deployments)} inputs"
                )
            for g, dep, pred in zip(missing, deployments, predictions, strict=True):
                self.cache[g] = Candidate(g, dep, pred, self.scorer.score(dep, pred))
            self.evaluations += len(missing)
        return [self.cache[g] for g in genomes]


class ParetoArchive:
    """The feasible non-dominated set of everything evaluated so far (incremental)."""

    def __init__(self) -> None:
        self.front: dict[Genome, Candidate] = {}

    def add(self, candidate: Candidate) -> bool:
        """Insert; True when the front changed."""
        if not candidate.feasible or candidate.genome in self.front:
            return False
        new = candidate.score.signed
        for other in self.front.values():
            if _dominates_or_equal(other.score.signed, new):
                return False
        for g in [g for g, c in self.front.items() if _dominates(new, c.score.signed)]:
            del self.front[g]
        self.front[candidate.genome] = candidate
        return True

    def members(self) -> list[Candidate]:
        return sorted(self.front.values(), key=Candidate.rank_key)


def _dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True)) and any(
        x > y for x, y in zip(a, b, strict=True)
    )


def _dominates_or_equal(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x >= y for x, y in zip(a, b, strict=True))


# The front counts as moved when a member is new by more than this share of some objective: a
# three-objective front of a large space keeps gaining members that differ in the third digit,
# which kept the search going for generations that changed nothing a user would choose by.
FRONT_TOLERANCE = 0.01


def _best_moved(before: tuple[Any, ...] | None, after: tuple[Any, ...] | None) -> bool:
    """Whether the leader got better: less violation, or a target higher by more than
    FRONT_TOLERANCE of it (the local search after the evolution polishes the last digits)."""
    if after is None or before is None:
        return after is not before
    if after[0] != before[0]:
        return bool(after[0] < before[0])
    old, new = -before[1], -after[1]
    return bool(new > old + FRONT_TOLERANCE * abs(old))


def _front_moved(before: Sequence[Sequence[float]], after: Sequence[Sequence[float]]) -> bool:
    """Whether a point of `after` is not within FRONT_TOLERANCE of being dominated by one of
    `before` (objectives signed, bigger is better)."""
    for new in after:
        slack = [x - FRONT_TOLERANCE * abs(x) for x in new]
        if not any(all(o >= y for o, y in zip(old, slack, strict=True)) for old in before):
            return True
    return False


@dataclass
class GenerationEvent:
    """Progress after one generation (generation 0 is the initial population)."""

    generation: int
    individuals: list[dict[str, Any]]
    pareto_front: list[dict[str, Any]]
    best: dict[str, float | None]
    mean: dict[str, float | None]
    worst: dict[str, float | None]
    evaluations: int
    cache_hits: int
    elapsed_s: float
    feasible: int
    best_candidate: Candidate | None = field(default=None, repr=False)
    method: str = "ga"  # ga | local (hill-climbing rounds after evolution) | exhaustive
    objective_names: tuple[str, ...] = ()
    space_size: int = 0
    local_round: int = 0  # 1, 2, ... for the local-search rounds

    def stats(self) -> dict[str, Any]:
        return {
            "best": self.best,
            "mean": self.mean,
            "worst": self.worst,
            "feasible": self.feasible,
            "population": len(self.individuals),
            "evaluations": self.evaluations,
            "cache_hits": self.cache_hits,
            "elapsed_s": self.elapsed_s,
            "method": self.method,
            "space_size": self.space_size,
            "local_round": self.local_round,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "generation": self.generation,
            **self.stats(),
            "individuals": self.individuals,
            "pareto_front": self.pareto_front,
        }


@dataclass
class SearchOutcome:
    status: str  # completed | cancelled
    method: str  # ga | exhaustive
    candidates: list[Candidate]  # every evaluated genome, in evaluation order
    pareto: list[Candidate]  # feasible non-dominated set of everything evaluated
    generations: int  # generations evolved after the initial population (0 for exhaustive)
    evaluations: int
    cache_hits: int
    early_stopped: bool
    elapsed_s: float
    seed: int | None
    space_size: int
    objective_names: tuple[str, ...]
    local_rounds: int = 0  # hill-climbing rounds after evolution (each one batched evaluation)

    @property
    def best(self) -> Candidate | None:
        return best_of(self.candidates)

    @property
    def feasible(self) -> list[Candidate]:
        return sorted((c for c in self.candidates if c.feasible), key=Candidate.rank_key)


def population_stats(
    candidates: Sequence[Candidate], scorer: Scorer
) -> tuple[dict[str, float | None], dict[str, float | None], dict[str, float | None]]:
    """best / mean / worst per objective and for the target, over the feasible candidates."""
    names = (*scorer.objective_names, "target")
    senses = (*scorer.objective_senses, "max")
    feasible = [c for c in candidates if c.feasible]
    best: dict[str, float | None] = dict.fromkeys(names)
    mean: dict[str, float | None] = dict.fromkeys(names)
    worst: dict[str, float | None] = dict.fromkeys(names)
    if not feasible:
        return best, mean, worst
    for i, (name, sense) in enumerate(zip(names, senses, strict=True)):
        values = [
            c.score.objectives[i] if i < 3 else c.score.target
            for c in feasible
            if math.isfinite(c.score.objectives[i] if i < 3 else c.score.target)
        ]
        if not values:
            continue
        hi, lo = max(values), min(values)
        best[name], worst[name] = (hi, lo) if sense == "max" else (lo, hi)
        mean[name] = sum(values) / len(values)
    return best, mean, worst


# ---------------------------------------------------------------------- NSGA-II machinery


class _Individual:
    __slots__ = ("candidate", "fitness", "rank")

    def __init__(self, candidate: Candidate, fitness: Any) -> None:
        self.candidate = candidate
        self.fitness = fitness
        self.rank = 0


def _make_fitness_class() -> type:
    from deap import base

    class ConstrainedFitness(base.Fitness):  # type: ignore[misc]
        weights = (1.0, 1.0, 1.0)  # values are already signed "bigger is better"

        def __init__(self, values: Sequence[float] = (), violation: float = 0.0) -> None:
            super().__init__(values)
            self.violation = violation
            self.crowding_dist = 0.0

        def dominates(self, other: Any, obj: slice = slice(None)) -> bool:
            if self.violation != other.violation:
                return bool(self.violation < other.violation)
            return bool(base.Fitness.dominates(self, other, obj))

        def __hash__(self) -> int:
            return hash((self.wvalues, self.violation))

        def __eq__(self, other: object) -> bool:
            return (
                isinstance(other, ConstrainedFitness)
                and self.wvalues == other.wvalues
                and self.violation == other.violation
            )

    return ConstrainedFitness


def constrained_fronts(individuals: Sequence[Any]) -> list[list[Any]]:
    """Non-dominated fronts under constrained domination (every individual placed)."""
    from deap import tools

    feasible = [ind for ind in individuals if ind.fitness.violation == 0]
    infeasible = [ind for ind in individuals if ind.fitness.violation != 0]
    fronts: list[list[Any]] = []
    if feasible:
        fronts.extend(tools.sortLogNondominated(feasible, len(feasible)))
    by_violation: dict[float, list[Any]] = {}
    for ind in infeasible:
        by_violation.setdefault(ind.fitness.violation, []).append(ind)
    for violation in sorted(by_violation):
        group = by_violation[violation]
        fronts.extend(tools.sortLogNondominated(group, len(group)) if len(group) > 1 else [group])
    return fronts


def nsga2_select(individuals: Sequence[Any], k: int) -> list[Any]:
    """NSGA-II survivor selection; sets `.rank` and `fitness.crowding_dist` on every individual."""
    from deap.tools.emo import assignCrowdingDist

    fronts = constrained_fronts(individuals)
    chosen: list[Any] = []
    for rank, front in enumerate(fronts):
        assignCrowdingDist(front)
        for ind in front:
            ind.rank = rank
    for front in fronts:
        if len(chosen) + len(front) <= k:
            chosen.extend(front)
            continue
        need = k - len(chosen)
        if need > 0:
            ranked = sorted(front, key=lambda i: (-i.fitness.crowding_dist, i.candidate.rank_key()))
            chosen.extend(ranked[:need])
        break
    return chosen


class _Variation:
    def __init__(self, space: SearchSpace, rng: random.Random, settings: GASettings) -> None:
        self.space = space
        self.rng = rng
        self.settings = settings
        # genes that can change at all in this space
        self.mutable = [i for i, n in enumerate(space.cardinalities) if n > 1]

    def crossover(self, a: list[int], b: list[int]) -> None:
        """Uniform crossover: each whole gene swaps with probability 1/2."""
        for i in range(len(GENES)):
            if self.rng.random() < 0.5:
                a[i], b[i] = b[i], a[i]

    def mutate(self, g: list[int]) -> None:
        """Change each mutable gene with probability 1/n (at least one gene changes)."""
        if not self.mutable:
            return
        rng = self.rng
        p = 1.0 / len(self.mutable)
        chosen = [i for i in self.mutable if rng.random() < p] or [rng.choice(self.mutable)]
        for i in chosen:
            n = self.space.cardinalities[i]
            if i in CATEGORICAL or rng.random() < 0.25:
                new = rng.randrange(n - 1)
                g[i] = new if new < g[i] else new + 1  # a different value, uniformly
            else:
                step = 1 if rng.random() < 0.8 else 2
                if g[i] == 0:
                    g[i] = min(n - 1, step)
                elif g[i] == n - 1:
                    g[i] = max(0, n - 1 - step)
                else:
                    g[i] = min(n - 1, max(0, g[i] + (step if rng.random() < 0.5 else -step)))

    def random_genome(self) -> Genome:
        return self.space.repair([self.rng.randrange(n) for n in self.space.cardinalities])


def _tournament(pop: Sequence[_Individual], size: int, rng: random.Random) -> _Individual:
    contenders = [pop[rng.randrange(len(pop))] for _ in range(size)]
    return min(
        contenders,
        key=lambda i: (i.rank, -i.fitness.crowding_dist, i.candidate.rank_key()),
    )


def resolve_seed(seed: int | None) -> int:
    return seed if seed is not None else int.from_bytes(os.urandom(4), "little")


def local_moves(space: SearchSpace, base: Genome, pairs: bool) -> list[Genome]:
    """The local search's neighbours of `base`: every other value of every gene, and a +-1 step
    of a parallelism gene with every memory fraction (a layout's weights per device decide which
    fractions leave KV room: 70B int8 on TP1 fits an 80 GB device only at 0.95); with `pairs`,
    also +-1 steps of two ordinal genes at once (coupled genes: sequences per rank x attention DP,
    tp x replicas)."""
    mutable = [i for i, n in enumerate(space.cardinalities) if n > 1]
    moves: dict[Genome, None] = {}
    for i in mutable:
        for value in range(space.cardinalities[i]):
            if value != base[i]:
                moves[space.repair([*base[:i], value, *base[i + 1 :]])] = None
    if UTIL in mutable:
        for i in PARALLELISM & set(mutable):
            for step in (-1, 1):
                if not 0 <= base[i] + step < space.cardinalities[i]:
                    continue
                for util in range(space.cardinalities[UTIL]):
                    g = list(base)
                    g[i], g[UTIL] = base[i] + step, util
                    moves[space.repair(g)] = None
    if pairs:
        ordinal = [i for i in mutable if i not in CATEGORICAL]
        for a, b in itertools.combinations(ordinal, 2):
            for da, db in ((1, 1), (1, -1), (-1, 1), (-1, -1)):
                va, vb = base[a] + da, base[b] + db
                if 0 <= va < space.cardinalities[a] and 0 <= vb < space.cardinalities[b]:
                    g = list(base)
                    g[a], g[b] = va, vb
                    moves[space.repair(g)] = None
    moves.pop(base, None)
    return list(moves)


def run_ga(
    space: SearchSpace,
    evaluator: Evaluator,
    scorer: Scorer,
    settings: GASettings | None = None,
    *,
    on_event: Callable[[GenerationEvent], None] | None = None,
    cancel: threading.Event | None = None,
) -> SearchOutcome:
    """Evolve the population; returns everything evaluated and the feasible Pareto set."""
    settings = settings or GASettings()
    settings.validate()
    seed = resolve_seed(settings.seed)
    rng = random.Random(seed)
    fitness_cls = _make_fitness_class()
    cached = CachedEvaluator(space, evaluator, scorer)
    archive = ParetoArchive()
    variation = _Variation(space, rng, settings)
    names = scorer.objective_names
    started = time.perf_counter()
    size = space.size
    pop_size = min(settings.population, size)
    n_elite = min(settings.elite, pop_size // 2)

    leader: list[Candidate] = []  # best candidate so far (0 or 1 element)

    def individuals(genomes: Sequence[Genome]) -> list[_Individual]:
        out = []
        for cand in cached.evaluate(genomes):
            archive.add(cand)
            if not leader or cand.rank_key() < leader[0].rank_key():
                leader[:] = [cand]
            out.append(_Individual(cand, fitness_cls(cand.score.signed, cand.violation)))
        return out

    def cancelled() -> bool:
        return cancel is not None and cancel.is_set()

    def climb_starts() -> list[tuple[Candidate, bool]]:
        """(start, pairs) of each climber: the best candidate of each engine and weight format,
        and of each TP of the leading format, climb by `local_moves`; the leader's also include
        coupled genes in pairs."""
        if not leader:
            return []
        lead = leader[0].genome
        starts: dict[tuple[int, ...], Candidate] = {}
        for cand in cached.cache.values():
            if not cand.feasible:
                continue
            g = cand.genome
            keys: list[tuple[int, ...]] = [(g[ENGINE], g[WEIGHT])]
            if (g[ENGINE], g[WEIGHT]) == (lead[ENGINE], lead[WEIGHT]):
                keys.append((g[ENGINE], g[WEIGHT], g[TP]))
            for key in keys:
                if key not in starts or cand.rank_key() < starts[key].rank_key():
                    starts[key] = cand
        # a basin whose best is more than CLIMB_GAP behind the leader is not where the optimum
        # hides (targets are bigger-is-better; cost and latency targets are negative)
        best = leader[0].target
        floor = best * (1 - CLIMB_GAP) if best > 0 else best * (1 + CLIMB_GAP)
        unique = {c.genome: c for c in starts.values() if c.genome != lead and c.target >= floor}
        return [(leader[0], True), *((c, False) for c in unique.values())]

    def local_search(pop: list[_Individual], generation: int) -> int:
        """Hill-climb after evolution: one batched call and one event per round.

        Evolution ends near an optimum, but which basin it ends in (say TRT-LLM int8 rather than
        vLLM int4) is partly luck, and its last step may be a notch off. Every climber moves to
        its best neighbour each round and retires when none is better."""
        climbers = climb_starts()
        rounds = 0
        for _ in range(settings.polish):
            if not climbers or cancelled():
                break
            moves = {c.genome: local_moves(space, c.genome, pairs) for c, pairs in climbers}
            batch = list(dict.fromkeys(g for gs in moves.values() for g in gs))
            if not batch:
                break
            rounds += 1
            found = {i.candidate.genome: i for i in individuals(batch)}
            still: dict[Genome, tuple[Candidate, bool]] = {}
            for here, pairs in climbers:
                better = [
                    found[g].candidate
                    for g in moves[here.genome]
                    if found[g].candidate.feasible
                    and found[g].candidate.rank_key() < here.rank_key()
                ]
                if better:
                    step = min(better, key=Candidate.rank_key)
                    still.setdefault(step.genome, (step, pairs))
            climbers = list(still.values())
            merged = {i.candidate.genome: i for i in (*pop, *found.values())}
            pop = nsga2_select(list(merged.values()), len(pop))
            emit(generation + rounds, pop, local_round=rounds)
        return rounds

    def finish(pop: list[_Individual], generation: int, early: bool) -> SearchOutcome:
        rounds = local_search(pop, generation)
        if cancelled():  # cancelled during the local search: what it evaluated still counts
            return outcome("cancelled", generation, False, rounds)
        return outcome("completed", generation, early, rounds)

    def outcome(status: str, generation: int, early: bool, rounds: int = 0) -> SearchOutcome:
        return SearchOutcome(
            status=status,
            method="ga",
            candidates=list(cached.cache.values()),
            pareto=archive.members(),
            generations=generation,
            evaluations=cached.evaluations,
            cache_hits=cached.cache_hits,
            early_stopped=early,
            elapsed_s=time.perf_counter() - started,
            seed=seed,
            space_size=size,
            objective_names=names,
            local_rounds=rounds,
        )

    summaries: dict[Genome, dict[str, Any]] = {}  # most of a population survives a generation

    def summary(c: Candidate) -> dict[str, Any]:
        out = summaries.get(c.genome)
        if out is None:
            out = summaries[c.genome] = c.summary(names)
        return out

    def emit(generation: int, pop: Sequence[_Individual], local_round: int = 0) -> None:
        if on_event is None:
            return
        cands = [i.candidate for i in pop]
        best, mean, worst = population_stats(cands, scorer)
        front = [i.candidate for i in pop if i.rank == 0]
        on_event(
            GenerationEvent(
                generation=generation,
                individuals=[summary(c) for c in cands],
                pareto_front=[summary(c) for c in sorted(front, key=Candidate.rank_key)],
                best=best,
                mean=mean,
                worst=worst,
                evaluations=cached.evaluations,
                cache_hits=cached.cache_hits,
                elapsed_s=time.perf_counter() - started,
                feasible=sum(1 for c in cands if c.feasible),
                best_candidate=leader[0] if leader else None,
                method="local" if local_round else "ga",
                objective_names=names,
                space_size=size,
                local_round=local_round,
            )
        )

    if cancelled():
        return outcome("cancelled", 0, False)

    # Initial population: distinct random valid genomes (fewer if the space is small).
    genomes: list[Genome] = []
    seen: set[Genome] = set()
    attempts = 0
    while len(genomes) < pop_size and attempts < pop_size * 50:
        attempts += 1
        g = variation.random_genome()
        if g not in seen:
            seen.add(g)
            genomes.append(g)
    pop = individuals(genomes)
    pop = nsga2_select(pop, len(pop))  # ranks + crowding for the first tournaments
    emit(0, pop)
    if cancelled():
        return outcome("cancelled", 0, False)

    best_key = leader[0].rank_key() if leader else None
    front_scores = [c.score.signed for c in archive.front.values()]
    stale = 0
    generation = 0
    for generation in range(1, settings.generations + 1):
        if cancelled():
            return outcome("cancelled", generation - 1, False)
        in_pop = {i.candidate.genome for i in pop}
        offspring: list[Genome] = []
        taken: set[Genome] = set()
        while len(offspring) < pop_size:
            a = list(_tournament(pop, settings.tournament, rng).candidate.genome)
            b = list(_tournament(pop, settings.tournament, rng).candidate.genome)
            if rng.random() < settings.crossover:
                variation.crossover(a, b)
            for child in (a, b):
                if rng.random() < settings.mutation:
                    variation.mutate(child)
                g = space.repair(child)
                tries = 0
                while (g in in_pop or g in taken) and tries < 4:  # keep diversity
                    variation.mutate(child)
                    g = space.repair(child)
                    tries += 1
                taken.add(g)
                offspring.append(g)
                if len(offspring) >= pop_size:
                    break
        children = individuals(offspring)
        if cancelled():  # this generation's evaluations count, but it did not complete
            return outcome("cancelled", generation - 1, False)
        merged: dict[Genome, _Individual] = {}
        for ind in (*pop, *children):
            merged.setdefault(ind.candidate.genome, ind)
        everyone = list(merged.values())
        elites = sorted(everyone, key=lambda i: i.candidate.rank_key())[:n_elite]
        elite_ids = {id(i) for i in elites}
        rest = [i for i in everyone if id(i) not in elite_ids]
        survivors = nsga2_select(rest, max(0, pop_size - len(elites)))
        pop = nsga2_select(elites + survivors, len(elites) + len(survivors))
        emit(generation, pop)

        new_best = leader[0].rank_key() if leader else None
        new_scores = [c.score.signed for c in archive.front.values()]
        if _best_moved(best_key, new_best) or _front_moved(front_scores, new_scores):
            stale = 0
        else:
            stale += 1
        best_key, front_scores = new_best, new_scores
        if settings.patience and stale >= settings.patience:
            return finish(pop, generation, True)
        if cached.evaluations >= size and len(cached.cache) >= size:
            return outcome("completed", generation, True)  # the whole space is known
    return finish(pop, generation, False)
