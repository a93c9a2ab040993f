"""simulate_serving: a discrete-event simulation of one engine replica serving requests.

The event loop here owns time: requests arrive (a closed loop's clients, arrivals at a rate, or a
static batch), the replica runs one engine step at a time, requests finish. What each step runs is
the engine's scheduler policy (budsim.core.schedulers: vLLM v1, SGLang, TRT-LLM), asked before every
step through one interface: admit waiting requests, compose the step, release finished requests.

Two kinds of run (`Workload.num_requests`):

- A *finite run* (num_requests = N; a static batch always): what a load generator's run of N
  requests does from a cold start. A closed loop's C clients all send at t = 0, each sends its next
  request as its last one finishes, N requests in all, and every request counts: the opening burst
  and the final drain included. Measured benchmark rows are compared with this (evaluate.py).
- *Steady state* (num_requests None, the default): what serving settles into, without start-up
  or drain.

  A closed loop of identical requests has more than one long-run state. Started with a burst, as
  load generators start, requests that finish in the same engine step come back together, so the
  groups the burst made last (SGLang's 8 clients of 3,000 tokens keep prefilling several prompts
  at once), or reorganise over 20 to 40 waves into groups that then last (vLLM). Started with
  clients whose phases differ, the loop stays spread out, each prompt prefilled on its own. The
  steady state reported is the spread-out one: it is what the burst-started loop becomes as soon
  as request lengths vary at all (5 % is enough: its median TTFT settles within 2 % of this one's;
  tests/test_steady.py), so it is what a long run sees whenever anything (lengths, timing)
  differs between requests, and the finite run keeps the start-up groups for comparisons with
  benchmarks. So the clients start spread evenly over one request lifetime (`spread_clients`),
  and a loop with fixed lengths reads its steady state off one period of its schedule
  (budsim.core.steady): exactly, once the state the scheduler reads recurs (clients that divide
  a lifetime's decode steps repeat after a completion or two), else from two consecutive windows
  of PERIOD_WINDOW completions that agree on their pace and first-token waits (when no two
  clients share a phase, the pattern of phases is as even as it can be and any window shows it
  in proportion; otherwise a window is a lifetime). Without such a period (lengths drawn at
  random, a loop that preempts, or shortcuts off) the loop is measured directly: the requests
  sent after a lifetime's warm-up, `steady_sample_size` of them, simulated until every one has
  finished while the clients keep sending; throughput is the completion rate in their window.
  Arrivals at a rate drop a warm-up (a tenth of the sample, at least 100) and count the next
  `steady_sample_size` arrivals, simulated until each has finished (later arrivals keep the load on
  and are not counted); the 99th percentile of TTFT then moves by about 3-5 % between seeds. A
  replica that keeps up serves what it is offered, so its throughput is the arrival rate; one that
  falls behind (fewer completions than arrivals in the window) reports its completion rate.

What keeps a simulation cheap:

- Requests with identical shapes that arrive together move as one *cohort*, so a closed loop of
  1,000 identical requests costs a few hundred events, not a million tokens.
- Between events (arrival, prefill chunk, completion, KV exhaustion) a run of pure decode steps is
  priced in closed form: the decode step time is linear in the summed context, so k steps take
  k * (t_first + t_last) / 2. Decode progress is one global step counter (see schedulers.py).
- A finite closed loop with fixed lengths is periodic after its opening burst: when the state at a
  completion recurs exactly (up to a time shift) the remaining whole cycles are added in closed
  form, and when it never recurs exactly two consecutive waves that agree within STEADY_TOLERANCE
  stand for the rest (`look_for_cycle`); the final drain is simulated. Steady state needs only a
  period of the schedule (above).
"""

from __future__ import annotations

import functools
import heapq
import itertools
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .deployment import Workload
from .engines import EngineProfile
from .frontend import front_end
from .lengths import LengthSampler
from .samples import Samples, weighted_summary
from .schedulers import (
    Cohort,
    QueueDigest,
    ReplicaState,
    Scheduler,
    ShiftDigest,
    scheduler_for,
)
from .steady import ScheduleLog, Snapshot
from .steptime import StepTime

MAX_EVENTS = 200_000  # a guard against pathological inputs; far above any realistic run
# How long after the first of several requests sent at once the others reach the scheduler: any
# time shorter than one engine step gives the same schedule (see _Simulation.release).
FRONT_END_STAGGER_S = 1e-6
STEADY_TOLERANCE = 0.01  # relative; see _steady (1 %: the prediction moves by well under 3 %)
PERIOD_WINDOW = 16  # completions; see _Simulation.width
SPELLED_OUT = 16  # steady loops of up to this many clients compare their decoding sets as is
# Quantiles a summary reports (nearest rank; see weighted_summary).
REPORTED_QUANTILES = (0.5, 0.9, 0.95, 0.99)

StepModel = Callable[[float, float, float, float, float], StepTime]


def request_overhead_s(engine: EngineProfile, input_len: int) -> float:
    """Seconds a request spends outside the engine's GPU steps, as its client sees them (HTTP, the
    serving front end, tokenisation, streaming the first token): added to its TTFT and E2E
    (budsim.core.frontend)."""
    return front_end().seconds(input_len)


@dataclass
class ServingResult:
    """Per-request latencies (weighted by cohort size) and totals of one simulation.

    `requests` finished over `makespan` seconds: the whole run for a finite run, the sample's
    window in steady state (so requests / makespan is the throughput either way)."""

    ttft: Samples = field(default_factory=Samples)
    tpot: Samples = field(default_factory=Samples)
    e2e: Samples = field(default_factory=Samples)
    makespan: float = 0.0
    start_time: float = 0.0
    requests: int = 0
    output_tokens: int = 0
    input_tokens: int = 0
    steps: int = 0
    preemptions: int = 0
    time_compute: float = 0.0
    time_memory: float = 0.0
    time_communication: float = 0.0
    time_overhead: float = 0.0
    mean_batch: float = 0.0
    truncated: bool = False
    closed_loop_concurrency: int = 0  # > 0: throughput follows from Little's law
    steady: bool = False  # steady-state sample (False: a finite run, every request counted)
    # False when the token budget never decided anything: the same run for every budget from
    # `budget_need` up (see ReplicaState.budget_need)
    budget_binds: bool = True
    budget_need: int = 0
    _summaries: dict[str, tuple[float, list[float], float]] = field(
        default_factory=dict, repr=False
    )

    def summary(self, metric: str) -> tuple[float, list[float], float]:
        """weighted_summary of "ttft", "tpot" or "e2e" at REPORTED_QUANTILES, computed once
        (results are shared)."""
        cached = self._summaries.get(metric)
        if cached is None:
            cached = weighted_summary(getattr(self, metric), REPORTED_QUANTILES)
            self._summaries[metric] = cached
        return cached

    @property
    def bottleneck(self) -> str:
        parts = {
            "compute": self.time_compute,
            "memory": self.time_memory,
            "communication": self.time_communication,
            "overhead": self.time_overhead,
        }
        return max(parts, key=parts.__getitem__)


def _lengths(workload: Workload, rng: random.Random) -> tuple[int, int]:
    isl, osl = workload.input_len, workload.output_len
    if workload.input_len_spread:
        s = workload.input_len_spread
        isl = max(1, round(rng.uniform(isl * (1 - s), isl * (1 + s))))
    if workload.output_len_spread:
        s = workload.output_len_spread
        osl = max(1, round(rng.uniform(osl * (1 - s), osl * (1 + s))))
    return isl, osl


def arrival_gap(rng: random.Random, rate: float, burstiness: float) -> float:
    """One gap between arrivals at `rate`/s: gamma with shape `burstiness` and mean 1/rate, as
    vLLM's and AIPerf's benchmark clients draw it (1: exponential, a Poisson process; the larger,
    the more even: the gaps' coefficient of variation is 1/sqrt(burstiness))."""
    if burstiness == 1.0:
        return rng.expovariate(rate)
    return rng.gammavariate(burstiness, 1.0 / (rate * burstiness))


def finite_run_requests(workload: Workload) -> int | None:
    """Requests a finite run sends (a static batch's size), or None for steady state."""
    if workload.scenario == "static":
        return workload.batch_size
    return workload.num_requests


def steady_sample_size(workload: Workload) -> int:
    """Requests a steady-state sample counts when no period of the schedule stands for it.

    Arrivals at a rate: 4,000 (divided by the burstiness: burstier gaps need more arrivals for
    their mean rate and their queues to settle; at most 8,192); the 99th percentiles of Poisson
    traffic's TTFT and TPOT then move by about 3-4 % between seeds (2,000: 5-10 %). A closed loop with lengths drawn at
    random: 8 per client, at least 1,000 and at most 4,096. One with fixed lengths is
    deterministic (it is sampled when it preempts): 4 lifetimes, at least 256 requests."""
    if workload.scenario == "rate":
        return min(max(4000, math.ceil(4000 / workload.burstiness)), 8192)
    if workload.varied_lengths:
        return min(max(8 * workload.concurrency, 1000), 4096)
    return min(max(4 * workload.concurrency, 256), 4096)


@lru_cache(maxsize=4096)
def run_description(workload: Workload) -> str:
    """What a prediction for `workload` simulates, in words ("steady state" or a finite run)."""
    requests = finite_run_requests(workload)
    if requests is None:
        return "steady state"
    return f"finite run of {requests:,} request{'s' if requests != 1 else ''}"


def simulate_serving(
    step: StepModel,
    engine: EngineProfile,
    workload: Workload,
    *,
    kv_capacity_tokens: int,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    shortcuts: bool = True,
) -> ServingResult:
    """Run the engine's scheduler over the workload on one replica.

    step: the replica's step-time model, `step(n_decode, decode_ctx, prefill_tokens,
    prefill_pairs, prefill_seqs) -> StepTime`; an optional `decode_slope` attribute (seconds per
    token of summed decode context) prices decode spans without a second call.
    kv_capacity_tokens: KV tokens the whole replica can hold (all attention-DP ranks together).
    shortcuts: skip a closed loop's repeating cycles and steady waves (False: simulate every event;
    for tests and benchmarks of the shortcut itself).
    """
    sim = _Simulation(
        step, engine, workload, kv_capacity_tokens, max_num_seqs, max_num_batched_tokens, shortcuts
    )
    sim.run()
    return sim.result()


class _Simulation:
    """One simulation: the event loop, the arrival process, and what is measured."""

    def __init__(
        self,
        step: StepModel,
        engine: EngineProfile,
        workload: Workload,
        kv_capacity: int,
        max_num_seqs: int,
        max_num_batched_tokens: int,
        shortcuts: bool,
    ) -> None:
        self.step = step
        self.engine = engine
        self.workload = workload
        self.policy: Scheduler = scheduler_for(engine, workload.shared_prefix_len)
        self.state = ReplicaState(kv_capacity, max_num_seqs, max_num_batched_tokens)
        if workload.prefix_caching:
            self.state.shared = workload.shared_prefix_len
            self.state.cache = workload.cached_tokens
        self.res = ServingResult()
        self.total = finite_run_requests(workload)  # None: steady state, clients never stop
        self.steady = self.total is None
        self.closed = workload.scenario == "concurrency"
        self.varied = workload.varied_lengths
        self.draw_lengths: Callable[[random.Random], tuple[int, int]] = (
            LengthSampler(workload.length_mix)
            if workload.length_mix
            else functools.partial(_lengths, workload)
        )
        # seeding a generator costs as much as a short simulation: only where something is drawn
        self.rng = (
            random.Random(workload.seed) if self.varied or workload.scenario == "rate" else None
        )
        self.conc = workload.concurrency
        if self.total is not None:
            self.conc = min(self.conc, self.total)
        self.now = 0.0
        self.arrivals: list[tuple[float, int, Cohort]] = []  # heap of (time, uid, cohort)
        self.issued = 0
        self.last_new: list[Cohort] = []  # the newest cohort while it is still an arrival
        self.n_done = self.out_tokens = self.in_tokens = self.n_steps = 0
        self.t_compute = self.t_memory = self.t_comm = self.t_overhead = 0.0
        self.batch_time = 0.0
        self.extra = request_overhead_s(engine, workload.input_len)  # of the last response
        # tokens reach the client a step late (EngineProfile.reports_one_step_late): the
        # request's own mean step stands for that step
        self.late = engine.reports_one_step_late
        self.last_sent = 0.0  # rate: when the newest drawn arrival is sent
        # Finite closed loops with fixed lengths settle into a cycle (see look_for_cycle), keyed
        # by a cheap fingerprint of the state; the full signature is built only when a
        # fingerprint recurs, which keeps the check far cheaper than the simulation it saves.
        fixed_loop = self.closed and not self.varied and shortcuts
        self.seen: dict[tuple[int, ...], tuple[Any, Snapshot] | None] | None = (
            {} if fixed_loop and not self.steady else None
        )
        self.waves: list[Snapshot] = []  # snapshots about one wave of `conc` requests apart
        self.wave_stats: list[tuple[float, ...]] = []  # _wave between consecutive snapshots
        self.next_wave = 2 * self.conc  # the first wave is the opening burst
        # Steady state. A sample of requests sent in [warm, warm + sample) is measured directly
        # (see the module doc); a closed loop with fixed lengths usually ends sooner, at a period
        # of its schedule (budsim.core.steady), found by an exact recurrence of its integer state
        # or by two windows of completions that agree.
        self.warm = self.sample = 0
        if self.steady:
            self.sample = steady_sample_size(workload)
            self.warm = self.conc if self.closed else max(100, self.sample // 10)
        self.pending = 0  # sample requests not finished yet
        self.window = ServingResult(steady=True)  # the sample's latencies and completions
        self.t_open = math.inf  # the window: first to last sample request sent
        self.t_close = math.inf
        self.next_edge = math.inf  # when the simulation next passes one of the window's edges
        self.open_snap: Snapshot | None = None
        self.close_snap: Snapshot | None = None
        self.log = ScheduleLog() if fixed_loop and self.steady else None
        # the waiting queue and the prompts being prefilled as schedule_state compares them
        self.queue = QueueDigest() if self.log is not None else None
        if self.log is not None:
            self.state.admitted = QueueDigest()
        self.n_first = 0  # fresh first tokens so far
        self.states: dict[tuple[Any, ...], Snapshot] = {}  # schedule_state -> where it was
        # Windows of completions that may stand for a period: a lifetime's (C completions), or
        # PERIOD_WINDOW when no two clients share a phase (C <= the decode steps of a client's
        # cycle): the gaps between the clients' phases then take two values spread as evenly as
        # they can be, so any PERIOD_WINDOW consecutive completions show them in proportion.
        cycle = workload.output_len - (1 if self.policy.prefill_runs_alone else 0)
        self.width = min(self.conc, PERIOD_WINDOW) if self.conc <= cycle else self.conc
        self.next_mark = 1  # the spread start is near steady: windows from the first completion
        self.marks: list[Snapshot] = []
        self.paces: list[tuple[float, float]] = []
        self.period: tuple[Snapshot, Snapshot, tuple[Samples, Samples, Samples]] | None = None
        self.releases = type(self.policy).release is not Scheduler.release

    # ---- arrivals ----------------------------------------------------------------------------
    def issue(self, count: int, t: float) -> bool:
        """Book `count` requests sent at `t`: whether they are part of the steady sample (a
        finite run counts every request); opens or closes the sample's window."""
        first = self.issued
        self.issued += count
        if self.log is not None:
            self.log.arrival(first, count, t)
        if not self.steady:
            return True
        if not self.warm <= first < self.warm + self.sample:
            return False
        if self.t_open == math.inf:
            self.t_open = self.next_edge = t
        if first + count >= self.warm + self.sample:
            self.t_close = t
        self.pending += count
        return True

    def new_cohort(self, t: float, count: int) -> None:
        """`count` requests sent at `t`, into the arrival heap."""
        s = self.state
        if self.varied:
            assert self.rng is not None  # made for varied lengths
            for _ in range(count):
                isl, osl = self.draw_lengths(self.rng)
                uid = s.new_uid()
                c = Cohort(1, isl, osl, t, isl, uid=uid, measured=self.issue(1, t))
                heapq.heappush(self.arrivals, (t, uid, c))
            return
        measured = self.issue(count, t)
        last = self.last_new[0] if self.last_new else None
        if last is not None and last.arrival == t and last.measured == measured:
            # requests released by the same step join one cohort, so cohorts don't fragment
            last.count += count
        else:
            c = self.fixed_cohort(t, count, measured)
            heapq.heappush(self.arrivals, (t, c.uid, c))
            self.last_new[:] = [c]

    def fixed_cohort(self, t: float, count: int, measured: bool) -> Cohort:
        """`count` new requests of the workload's fixed lengths, sent at `t`."""
        w = self.workload
        uid = self.state.new_uid()
        return Cohort(count, w.input_len, w.output_len, t, w.input_len, uid=uid, measured=measured)

    def release(self, t: float, count: int, idle: bool) -> None:
        """Requests that clients send at `t`. They reach the scheduler one after another (the
        front end handles them in turn), and an idle engine starts a step as soon as the first
        arrives: it runs alone and the rest join the next step. A busy engine sees them all at its
        next step. (This is what breaks up a closed loop's waves that would otherwise stay in
        lockstep forever, e.g. eight 1,024-token prompts filling an 8,192-token step exactly.)"""
        if idle and count > 1:
            self.new_cohort(t, 1)
            self.new_cohort(t + FRONT_END_STAGGER_S, count - 1)
        elif not idle and not self.arrivals and not self.varied:
            # straight into the queue, where the arrival heap would hand them at the next event
            # (nothing else is arriving first): the common case of a busy closed loop
            self.enqueue(self.fixed_cohort(t, count, self.issue(count, t)))
        else:
            self.new_cohort(t, count)

    def enqueue(self, c: Cohort) -> None:
        """`c` joins the back of the waiting queue."""
        self.state.waiting.append(c)
        if self.queue is not None:
            self.queue.add(c)

    def next_arrival(self) -> None:
        """Rate: draw the next arrival into the heap (arrivals are drawn one ahead, in order)."""
        if self.total is not None and self.issued >= self.total:
            return
        assert self.rng is not None  # made for the rate scenario
        self.last_sent += arrival_gap(self.rng, self.workload.rate, self.workload.burstiness)
        self.new_cohort(self.last_sent, 1)

    def spread_clients(self) -> None:
        """Steady state of a closed loop: start with the clients' requests spread evenly over one
        decode lifetime instead of the load generator's burst, so that the loop is near its
        steady state from the start. As many run as the sequence slots and the KV cache hold by
        the policy's admission rule, the i-th of n having generated i/n of its output; the rest
        are sent at t = 0. All of them are warm-up: none is measured."""
        w, s, policy = self.workload, self.state, self.policy
        running = min(self.conc, s.max_num_seqs)
        if self.varied and self.rng:
            shapes = [self.draw_lengths(self.rng) for _ in range(running)]
        else:
            shapes = [(w.input_len, w.output_len)] * running

        def spread(n: int) -> dict[tuple[int, int, int], int]:
            """How many of n running requests spread evenly over the decode steps of a client's
            cycle have each (generated, input, output): the cycle is its output's steps, plus its
            own prefill step where decodes run beside prompts (0 generated: it is being sent)."""
            groups: dict[tuple[int, int, int], int] = {}
            alone = policy.prefill_runs_alone
            for i, (isl, osl) in enumerate(shapes[:n]):
                if alone:
                    shape = (1 + i * (osl - 1) // n if osl > 1 else 0, isl, osl)
                else:
                    shape = (i * osl // n, isl, osl)
                groups[shape] = groups.get(shape, 0) + 1
            return groups

        def fits(n: int) -> bool:
            placed = [(p, isl, osl, count) for (p, isl, osl), count in spread(n).items() if p]
            held = sum(
                count * (policy.holds(isl, osl, p) - s.shared) for p, isl, osl, count in placed
            )
            return held + (s.shared if placed else 0) <= s.kv_capacity

        if not policy.prefill_runs_alone and not self.varied:
            # Where decodes and prompt chunks share the token budget B, a request costs its
            # prompt plus osl - 1 decode tokens of budget, so the loop completes at most
            # B / (isl + osl - 1) requests a step and holds about B (osl - 1) / (isl + osl - 1)
            # decoding: started with more, it takes a request's whole lifetime to drain to that.
            isl, osl = w.input_len - w.cached_tokens(w.input_len), w.output_len
            per = isl + osl - 1
            bound = s.budget * (osl - 1) // per
            if 1 <= bound < running:
                running = bound
                s.budget_binds = True  # the budget chose how the loop starts
            elif osl > 1:
                # every budget from here up starts the loop the same way (ReplicaState.budget_need)
                s.budget_need = max(s.budget_need, -(-running * per // (osl - 1)))
        if not fits(running):  # the KV cache binds: the most that fit (bisection; fits(1) holds)
            low, high = 1, running
            while high - low > 1:
                mid = (low + high) // 2
                low, high = (mid, high) if fits(mid) else (low, mid)
            running = low
        groups = sorted(spread(running).items(), reverse=True)
        placed: list[Cohort] = []
        generated: list[int] = []
        for (p, isl, osl), count in groups:
            if not p:
                continue  # at the start of its lifetime: sent at t = 0 below
            placed.append(Cohort(count, isl, osl, 0.0, isl, isl, 0, 0.0, 0, s.new_uid(), False))
            generated.append(p)
        s.place_decoding_many(placed, generated)
        fresh = self.conc
        for c in placed:
            policy.on_admit(c)
            fresh -= c.count
        # Clients that do not run wait in the queue, where a steady loop holds one cohort per
        # completion (the requests that a completion's clients sent together), not one cohort of
        # everybody. Queued in that shape from the start, the loop's state recurs as soon as its
        # schedule does, instead of after the first cohort has drained. (Not where the KV cache
        # can run short: a loop that preempts is sampled, and its sample starts as it did.)
        longest = w.input_len + w.output_len
        short = policy.preempts and s.kv_capacity < min(self.conc, s.max_num_seqs) * longest
        if self.conc > running and s.running and not self.varied and not short:
            sizes = itertools.cycle([count for _, count in groups])
            counts = []
            while fresh:
                counts.append(min(next(sizes), fresh))
                fresh -= counts[-1]
            self.queue_fresh(counts, 0.0)
        if fresh:
            self.release(0.0, fresh, idle=not s.running)

    def queue_fresh(self, counts: list[int], t: float) -> None:
        """Cohorts of fresh requests of the fixed lengths sent at `t`, one per count, into the
        waiting queue, as `enqueue(fixed_cohort(t, count, issue(count, t)))` each would put
        them (in one pass where all are warm-up)."""
        first, total = self.issued, sum(counts)
        if not self.steady or first + total > self.warm:
            for count in counts:
                self.enqueue(self.fixed_cohort(t, count, self.issue(count, t)))
            return
        # warm-up requests: booked (the log's arrivals), never measured
        s, w = self.state, self.workload
        isl, osl = w.input_len, w.output_len
        cohorts = [Cohort(n, isl, osl, t, isl, 0, 0, -1.0, 0, s.new_uid(), False) for n in counts]
        self.issued += total
        if self.log is not None:
            self.log.arrivals_at(first, counts, t)
        s.waiting.extend(cohorts)
        if self.queue is not None:
            self.queue.add_many(cohorts)

    # ---- the event loop ----------------------------------------------------------------------
    def run(self) -> None:
        w, s, policy, res = self.workload, self.state, self.policy, self.res
        step = self.step
        slope: float | None = getattr(step, "decode_slope", None)  # see StepTimeModel.decode_slope
        rate = w.scenario == "rate"
        closed, log = self.closed, self.log
        if w.scenario == "static":
            self.new_cohort(0.0, w.batch_size)
        elif closed and self.steady:
            if log is not None and self.conc > SPELLED_OUT:
                s.digest = ShiftDigest()
            self.spread_clients()
        elif closed:
            # Load generators (vllm bench serve, genai-perf, sglang bench_serving) release the
            # first `concurrency` requests together; each later one replaces a finished request.
            self.release(0.0, self.conc, idle=True)
        else:
            self.next_arrival()
        arrivals = self.arrivals
        waiting, prefilling, decoding = s.waiting, s.prefilling, s.decoding
        events = 0
        while arrivals or waiting or prefilling or decoding:
            events += 1
            if events > MAX_EVENTS:
                res.truncated = True
                break
            now = self.now
            while arrivals and arrivals[0][0] <= now + 1e-12:
                self.enqueue(heapq.heappop(arrivals)[2])
                self.last_new.clear()
                if rate:
                    self.next_arrival()
            if not (waiting or prefilling or decoding):
                self.now = arrivals[0][0]  # idle until the next arrival
                continue
            if now >= self.next_edge:
                self.watch_window()
            if waiting and s.running < s.max_num_seqs:  # (no free slot: admit takes nothing)
                policy.admit(s)
            decode, pf_tokens, pf_pairs, pf_seqs, completed, preempted = policy.compose(s)
            if not pf_seqs and not decode:
                if arrivals:
                    self.now = max(now, arrivals[0][0])
                    continue
                # a request larger than the KV cache can never run; else nothing can run until
                # memory frees, which should not happen without running work
                res.truncated = True
                if waiting and not s.running:
                    self.drop(waiting.popleft())
                    continue
                break
            # how many identical decode-only steps can run before the next event. Requests still
            # waiting after admission stay blocked (by the sequence limit or KV space) until a
            # finish frees room, and decode-only steps only consume KV, so they don't end a span;
            # a preemption does free room, so the next step must try to admit again.
            k = 1
            if decode and not pf_seqs and not prefilling and not preempted:
                k = s.decode_run()
            n_dec = s.n_dec if decode else 0
            ctx0 = (s.dec_base + n_dec * s.g) if decode else 0
            st = step(n_dec, ctx0, pf_tokens, pf_pairs, pf_seqs)
            t_step = t_last = st.total
            if k > 1 and arrivals:
                k = max(1, min(k, math.ceil((arrivals[0][0] - now) / max(t_step, 1e-9))))
            if k > 1:  # decode only: the step time grows linearly with the context
                if slope is not None:
                    t_last = t_step + slope * n_dec * (k - 1)
                else:
                    t_last = step(n_dec, ctx0 + n_dec * (k - 1), 0, 0.0, 0).total
                span = k * (t_step + t_last) / 2
            else:
                span = t_step
            if log is not None and decode:
                log.decode_run(s.g, now, t_step, t_last)
            scale = span / t_step if t_step > 0 else 0.0
            self.t_compute += st.compute * scale
            self.t_memory += st.memory * scale
            self.t_comm += st.communication * scale
            self.t_overhead += st.overhead * scale
            self.batch_time += n_dec * span + pf_seqs * t_step
            self.now = now = now + span
            self.n_steps += k
            # ---- apply the step --------------------------------------------------------------
            if decode:
                s.g += k
            if pf_seqs:
                s.pf_pending -= pf_tokens
                if log is not None:
                    self.log_first_tokens(completed)
                s.start_decoding(completed, now)
            heap = s.finish_heap
            freed = self.finish() if heap and heap[0][0] <= s.g else 0
            if not freed:
                continue
            self.n_done += freed
            s.running -= freed
            if closed and (self.total is None or self.issued < self.total):
                # A closed loop's clients send their next requests as theirs finish (one cohort).
                # The front-end latency of the next request overlaps other requests' GPU work,
                # so the replacement is handed to the scheduler at once (this also matched
                # measured TTFT better than delaying it by the front-end latency).
                count = freed if self.total is None else min(freed, self.total - self.issued)
                self.release(now, count, idle=not (s.running or waiting))
            if self.seen is not None and self.issued < (self.total or 0):
                self.look_for_cycle()
            if log is not None:
                if self.look_for_period():
                    break
                log = self.log  # None once the loop preempts
            if self.steady and self.issued >= self.warm + self.sample and not self.pending:
                break
        if self.steady:
            self.watch_window()

    def finish(self) -> int:
        """Record the requests whose last token the step produced; returns how many finished.
        Their latencies go to a finite run's samples, or the steady sample's (its requests)."""
        s = self.state
        heap, decoding, g, now = s.finish_heap, s.decoding, s.g, self.now
        steady, window = self.steady, self.window
        out = window if steady else self.res
        # bound once: a finished cohort appends six numbers
        e2e_value, e2e_count = out.e2e.values.append, out.e2e.counts.append
        ttft_value, ttft_count = out.ttft.values.append, out.ttft.counts.append
        tpot_value, tpot_count = out.tpot.values.append, out.tpot.counts.append
        freed = out_tokens = in_tokens = 0
        while heap and heap[0][0] <= g:
            uid = heapq.heappop(heap)[1]
            c = decoding.get(uid)
            if c is None or c.start + c.output_len - 1 > g:
                continue  # stale entry from before a preemption
            s.stop_decoding(c)
            if self.releases:
                self.policy.release(c)
            n, osl = c.count, c.output_len
            if self.varied:
                self.extra = request_overhead_s(self.engine, c.input_len)
            if c.measured:
                step = (now - c.first_token) / (osl - 1) if osl > 1 else 0.0
                late = self.extra + (step if self.late else 0.0)
                e2e_value(now - c.arrival + late)
                e2e_count(n)
                ttft_value(c.first_token - c.arrival + late)
                ttft_count(n)
                if osl > 1:
                    tpot_value(step)
                    tpot_count(n)
                if steady:
                    self.pending -= n
            if steady and self.t_open <= now <= self.t_close:
                window.requests += n
                window.output_tokens += n * osl
                window.input_tokens += n * c.input_len
            out_tokens += n * osl
            in_tokens += n * c.input_len
            freed += n
        self.out_tokens += out_tokens
        self.in_tokens += in_tokens
        return freed

    def drop(self, c: Cohort) -> None:
        """A request that can never run (it alone exceeds the KV cache) is given up."""
        if self.steady and c.measured:
            self.pending -= c.count

    def snapshot(self) -> Snapshot:
        res, log = self.res, self.log
        return Snapshot(
            self.now,
            self.state.g,
            self.issued,
            self.n_done,
            self.out_tokens,
            self.in_tokens,
            len(res.ttft),
            len(res.tpot),
            len(res.e2e),
            self.n_steps,
            self.state.preemptions,
            self.t_compute,
            self.t_memory,
            self.t_comm,
            self.t_overhead,
            self.batch_time,
            self.n_first,
            len(log.arrivals) if log is not None else 0,
            len(log.first_tokens) if log is not None else 0,
        )

    # ---- steady state --------------------------------------------------------------------------
    def watch_window(self) -> None:
        """Snapshot the counters as the simulation passes the sample window's edges."""
        if self.open_snap is None and self.now >= self.t_open:
            self.open_snap = self.snapshot()
        if self.close_snap is None and self.now >= self.t_close:
            self.close_snap = self.snapshot()
        self.next_edge = self.t_open if self.open_snap is None else self.t_close
        if self.close_snap is not None:
            self.next_edge = math.inf

    def log_first_tokens(self, completed: int) -> None:
        """The prompts this step completes that emit their request's first token (not those
        resuming after a preemption)."""
        assert self.log is not None
        for c in self.state.prefilling[:completed]:
            if c.first_token < 0:
                self.log.first_token(self.n_first, c.count, self.now, self.state.g - c.produced)
                self.n_first += c.count

    def look_for_period(self) -> bool:
        """At a completion of a steady closed loop: is the schedule periodic from an earlier
        completion on? Exactly, when the state the scheduler reads recurs; approximately, when
        two consecutive windows of `width` completions agree on their pace and first-token
        waits. True (and `period` set) when the period gives the steady sample."""
        if self.state.preemptions:
            # one token per decode step no longer holds: the loop is measured directly
            self.log = self.state.digest = self.queue = self.state.admitted = None
            return False
        mark, state = self.snapshot(), self.schedule_state()
        earlier = self.states.get(state)
        if earlier is not None and self.take_period(earlier, mark):
            return True
        self.states[state] = mark
        if self.n_done < self.next_mark:
            return False
        self.next_mark = self.n_done + self.width
        self.marks.append(mark)
        if len(self.marks) < 2:
            return False
        x, y = self.marks[-2], self.marks[-1]
        assert self.log is not None
        pace = (y.now - x.now) / max(y.g - x.g, y.done - x.done, 1)
        self.paces.append((pace, self.log.window_wait(x, y)))
        if len(self.paces) < 2:
            return False
        # The two windows' time per decode step may differ by a step's share of their prompt
        # work (16 completions span 31 or 32 steps): 3 %. Together they stand for the period.
        (p0, w0), (p1, w1) = self.paces[-2], self.paces[-1]
        agree = abs(p0 - p1) <= 3 * STEADY_TOLERANCE * max(p0, p1)
        agree = agree and abs(w0 - w1) <= STEADY_TOLERANCE * max(abs(w0), abs(w1), 1e-12)
        return agree and self.take_period(self.marks[-3], y)

    def schedule_state(self) -> tuple[Any, ...]:
        """What the scheduling decisions from here on depend on: the integer state and when the
        pending arrivals come, never the requests' ages (those only shift their latencies). The
        decoding set, which holds most cohorts, enters as its ShiftDigest beyond SPELLED_OUT
        clients."""
        s, now = self.state, self.now
        return (
            s.running,
            s.kv_prefill,
            s.n_dec,
            tuple(
                [(c.count, c.prompt, round((t - now) * 1e9)) for t, _, c in sorted(self.arrivals)]
            )
            if self.arrivals
            else (),
            self.queued(),
            self.prefilled(),
            s.digest.value(s.g)
            if s.digest is not None
            else tuple([(c.count, s.g - c.start, c.produced) for c in s.decoding.values()]),
        )

    def queued(self) -> tuple[Any, ...]:
        """The waiting queue in schedule_state: its QueueDigest, else spelled out."""
        waiting = self.state.waiting
        value = self.queue.value(waiting) if self.queue is not None else None
        if value is not None:
            return value
        return tuple([(c.count, c.prompt, c.done_prefill, c.produced) for c in waiting])

    def prefilled(self) -> tuple[Any, ...]:
        """The prompts being prefilled in schedule_state: their QueueDigest, else spelled out."""
        prefilling, admitted = self.state.prefilling, self.state.admitted
        value = admitted.value(prefilling) if admitted is not None else None
        if value is not None:
            return value
        return tuple([(c.count, c.prompt, c.done_prefill, c.produced) for c in prefilling])

    def take_period(self, x: Snapshot, y: Snapshot) -> bool:
        """Use x -> y as the schedule's period, if it is one the extension can use: requests
        finished in it, and nothing was preempted (FCFS first tokens, one token per decode
        step). True when it gave the steady sample."""
        if y.done <= x.done or y.preemptions != x.preemptions:
            return False
        assert self.log is not None
        samples = self.log.extend(
            x, y, self.state.g, self.workload.output_len, self.extra, late=self.late
        )
        if samples is None:
            return False
        self.period = (x, y, samples)
        return True

    # ---- finite runs: cycles and steady waves --------------------------------------------------
    def signature(self) -> tuple[tuple[int, ...], list[float]]:
        """The state as integers, plus the ages of its times (which only shift the latencies)."""
        s, now = self.state, self.now
        ints = [s.running, s.kv_prefill, s.n_dec]
        ages: list[float] = []
        for t, _, c in sorted(self.arrivals):
            ints += (c.count, c.prompt)
            ages.append(now - t)
        for queue in (s.waiting, s.prefilling):
            ints.append(-1)  # separator
            for c in queue:
                ints += (c.count, c.prompt, c.done_prefill, c.produced)
                ages.append(now - c.arrival)
        ints.append(-1)
        for c in s.decoding.values():
            ints += (c.count, s.g - c.start, c.produced)
            ages += (now - c.arrival, now - c.first_token)
        return tuple(ints), ages

    def look_for_cycle(self) -> None:
        """At a completion of a finite closed loop with fixed lengths: when the state has been here
        before (a cycle), or two consecutive waves have agreed, skip the repeats ahead."""
        assert self.seen is not None
        s = self.state
        queued = (len(s.waiting), len(s.prefilling), len(s.decoding))
        kv = s.dec_base + s.n_dec * s.g
        fingerprint = (s.running, s.kv_prefill, s.n_dec, kv, *queued, len(self.arrivals))
        if fingerprint not in self.seen:
            # with few cohorts the signature is cheap: keep it now and catch a cycle one lap sooner
            small = sum(queued) <= 16
            self.seen[fingerprint] = (self.signature(), self.snapshot()) if small else None
        else:
            sig = self.signature()
            earlier = self.seen[fingerprint]
            if (
                earlier is not None
                and _same_state(earlier[0], sig)
                and self.skip_cycles(earlier[1])
            ):
                self.seen = None  # no whole cycle is left
                return
            self.seen[fingerprint] = (sig, self.snapshot())
        if self.issued >= self.next_wave:
            # Some loops never repeat exactly (partial prefill chunks drift). Once two consecutive
            # waves of `conc` requests agree within STEADY_TOLERANCE, the loop is in its steady
            # state and the last wave stands for the remaining ones.
            self.waves.append(self.snapshot())
            self.next_wave = self.issued + self.conc
            if len(self.waves) >= 2:  # each wave is summarised once, as it ends
                self.wave_stats.append(_wave(self.res, self.waves[-2], self.waves[-1]))
            if len(self.wave_stats) >= 2 and _steady(self.wave_stats[-2], self.wave_stats[-1]):
                if self.skip_cycles(self.waves[-2]):
                    self.seen = None

    def skip_cycles(self, before: Snapshot) -> bool:
        """Jump over as many repeats of the cycle since `before` as new requests allow."""
        assert self.total is not None
        s, res = self.state, self.res
        after = self.snapshot()
        per_cycle = self.issued - before.issued
        if per_cycle <= 0:
            return False
        m = (self.total - self.issued) // per_cycle
        if m < 1:
            return False
        dt, dg = m * (self.now - before.now), m * (s.g - before.g)
        for samples, start in (
            (res.ttft, before.n_ttft),
            (res.tpot, before.n_tpot),
            (res.e2e, before.n_e2e),
        ):
            samples.repeat_since(start, m)
        self.n_done += m * (self.n_done - before.done)
        self.out_tokens += m * (self.out_tokens - before.out_tokens)
        self.in_tokens += m * (self.in_tokens - before.in_tokens)
        self.n_steps += m * (self.n_steps - before.steps)
        s.preemptions += m * (s.preemptions - before.preemptions)
        self.t_compute += m * (after.t_compute - before.t_compute)
        self.t_memory += m * (after.t_memory - before.t_memory)
        self.t_comm += m * (after.t_comm - before.t_comm)
        self.t_overhead += m * (after.t_overhead - before.t_overhead)
        self.batch_time += m * (after.batch_time - before.batch_time)
        self.issued += m * per_cycle
        self.now += dt
        s.g += dg
        for c in itertools.chain(s.waiting, s.prefilling, s.decoding.values()):
            c.arrival += dt
            if c.first_token >= 0:
                c.first_token += dt
        for c in s.decoding.values():
            c.start += dg
        s.dec_base -= s.n_dec * dg
        for _, _, c in self.arrivals:
            c.arrival += dt
        self.arrivals[:] = [(t + dt, uid, c) for t, uid, c in self.arrivals]
        s.finish_heap[:] = [(step_no + dg, uid) for step_no, uid in s.finish_heap]
        return True

    # ---- the result --------------------------------------------------------------------------
    def result(self) -> ServingResult:
        out = self._result()
        out.budget_binds, out.budget_need = self.state.budget_binds, self.state.budget_need
        return out

    def _result(self) -> ServingResult:
        if not self.steady:
            res = self.res
            res.requests, res.output_tokens, res.input_tokens = (
                self.n_done,
                self.out_tokens,
                self.in_tokens,
            )
            res.steps, res.preemptions = self.n_steps, self.state.preemptions
            res.time_compute, res.time_memory = self.t_compute, self.t_memory
            res.time_communication, res.time_overhead = self.t_comm, self.t_overhead
            res.makespan = self.now + self.extra  # the last response still has to reach its client
            res.closed_loop_concurrency = self.conc if self.closed else 0
            res.mean_batch = self.batch_time / self.now if self.now > 0 else 0.0
            return res
        if self.period is not None:
            return self.periodic()
        return self.sampled()

    def periodic(self) -> ServingResult:
        """Steady state from one period of a closed loop's schedule (budsim.core.steady)."""
        assert self.period is not None
        x, y, (ttft, tpot, e2e) = self.period
        out = ServingResult(ttft=ttft, tpot=tpot, e2e=e2e, steady=True)
        out.requests = y.done - x.done
        out.output_tokens = y.out_tokens - x.out_tokens
        out.input_tokens = y.in_tokens - x.in_tokens
        _window_totals(out, x, y)
        out.closed_loop_concurrency = self.conc
        return out

    def sampled(self) -> ServingResult:
        """Steady state from the sample of requests sent in the window (see the module doc)."""
        out = self.window
        out.truncated = self.res.truncated
        x = self.open_snap or self.snapshot()
        y = self.close_snap or self.snapshot()
        _window_totals(out, x, y)
        out.makespan = self.t_close - self.t_open  # completions are counted between these
        if self.closed:
            out.closed_loop_concurrency = self.conc
        elif out.requests >= 0.97 * self.sample:
            # a replica that keeps up with its arrivals serves what it is offered
            out.makespan = out.requests / self.workload.rate
        return out


def _window_totals(out: ServingResult, x: Snapshot, y: Snapshot) -> None:
    """Time, steps, time by bottleneck, preemptions and the mean batch between two snapshots."""
    span = y.now - x.now
    out.makespan = span
    out.steps = y.steps - x.steps
    out.preemptions = y.preemptions - x.preemptions
    out.time_compute = y.t_compute - x.t_compute
    out.time_memory = y.t_memory - x.t_memory
    out.time_communication = y.t_comm - x.t_comm
    out.time_overhead = y.t_overhead - x.t_overhead
    out.mean_batch = (y.batch_time - x.batch_time) / span if span > 0 else 0.0


def _same_state(
    a: tuple[tuple[int, ...], list[float]], b: tuple[tuple[int, ...], list[float]]
) -> bool:
    # ages equal up to rounding noise (0.1 us): the latencies recorded from here on repeat too
    return a[0] == b[0] and all(abs(x - y) <= 1e-7 for x, y in zip(a[1], b[1], strict=True))


def _wave(res: ServingResult, x: Snapshot, y: Snapshot) -> tuple[float, ...]:
    """What the wave between snapshots x and y of a closed loop did: the mean TTFT, TPOT and E2E
    of the requests that finished in it, its preemptions and its time per request issued."""
    out = []
    for samples, i, j in (
        (res.ttft, x.n_ttft, y.n_ttft),
        (res.tpot, x.n_tpot, y.n_tpot),
        (res.e2e, x.n_e2e, y.n_e2e),
    ):
        mean = samples.mean(i, j)
        out.append(0.0 if math.isnan(mean) else mean)
    out.append(y.preemptions - x.preemptions)
    out.append((y.now - x.now) / max(y.issued - x.issued, 1))
    return tuple(out)


def _steady(first: tuple[float, ...], second: tuple[float, ...]) -> bool:
    """Whether two consecutive waves (see _wave) agree. With every slot busy, the request rate is
    concurrency / E2E, so E2E also covers throughput; preemptions too, because a loop still filling
    its KV cache is not steady yet."""
    if not all(
        abs(p - q) <= STEADY_TOLERANCE * max(abs(p), abs(q), 1e-12)
        for p, q in zip(first[:4], second[:4], strict=True)
    ):
        return False
    # and, as a safety net for the extrapolated throughput, about the same time per request issued
    # (a wave's window edges fall between completions, so this one is looser)
    per_ab, per_bc = first[4], second[4]
    return abs(per_ab - per_bc) <= 5 * STEADY_TOLERANCE * max(per_ab, per_bc, 1e-12)
