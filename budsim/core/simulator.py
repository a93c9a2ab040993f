"""simulate_serving: a discrete-event simulation of one engine replica's scheduler over requests.

Requests with identical shapes that arrive together move as one *cohort* (a count of identical requests), so a
closed loop of 1,000 identical requests costs a few hundred events, not a million tokens. Between events
(arrival, prefill chunk, completion, KV exhaustion) a run of pure decode steps is skipped in closed form: the
decode step time is linear in the summed context, so k steps take k * (t_first + t_last) / 2.

Decode progress uses one global decode-step counter `g`: a cohort that began decoding at step `start` has
generated `g - start + 1` tokens, so a decode span never touches individual cohorts.

A closed loop with fixed lengths is periodic after its opening burst. When the state at a completion
recurs exactly (up to a time shift), the remaining whole cycles are added in closed form; when it never
recurs exactly but two consecutive waves of `concurrency` requests agree within STEADY_TOLERANCE, the
last wave stands for the rest. Either way the final drain is simulated. This keeps a long closed loop
as cheap as its first few waves.
"""

from __future__ import annotations

import heapq
import itertools
import math
import random
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass, field
from operator import mul
from typing import Any

from .deployment import Workload
from .engines import EngineProfile
from .steptime import StepTimeModel

MAX_EVENTS = 200_000  # a guard against pathological inputs; far above any realistic run
# How long after the first of several requests sent at once the others reach the scheduler: any
# time shorter than one engine step gives the same schedule (see release in simulate_serving).
FRONT_END_STAGGER_S = 1e-6


@dataclass(slots=True)
class _Cohort:
    count: int
    input_len: int
    output_len: int
    arrival: float
    prompt: int  # tokens that must be (re)computed before decoding continues
    done_prefill: int = 0
    produced: int = 0  # tokens generated before the current decode run (after a preemption)
    first_token: float = -1.0
    start: int = 0  # global decode step at which the current decode run began
    uid: int = 0


class Samples:
    """Latency samples, each standing for `count` identical requests (one per finished cohort).

    Two parallel lists rather than a list of (value, count) tuples: a simulation records tens of
    thousands of samples, and floats and ints cost neither a tuple each nor garbage-collector work."""

    __slots__ = ("values", "counts")

    def __init__(self) -> None:
        self.values: list[float] = []
        self.counts: list[int] = []

    def __len__(self) -> int:
        return len(self.values)

    def add(self, value: float, count: int) -> None:
        self.values.append(value)
        self.counts.append(count)

    def mean(self, start: int = 0, stop: int | None = None) -> float:
        """The weighted mean of samples [start:stop] (nan when there are none)."""
        values, counts = self.values[start:stop], self.counts[start:stop]
        total = sum(counts)
        return sum(map(mul, values, counts)) / total if total else math.nan

    def repeat_since(self, start: int, times: int) -> None:
        """Count the samples from `start` on `times` more times (the same values recur, so their
        counts grow; the list does not)."""
        counts = self.counts
        counts[start:] = [n * (times + 1) for n in counts[start:]]


@dataclass
class ServingResult:
    """Per-request latencies (weighted by cohort size) and totals of one simulation."""

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
    _summaries: dict[str, tuple[float, list[float], float]] = field(
        default_factory=dict, repr=False
    )

    def summary(self, metric: str) -> tuple[float, list[float], float]:
        """weighted_summary of "ttft", "tpot" or "e2e", computed once (results are shared)."""
        cached = self._summaries.get(metric)
        if cached is None:
            cached = self._summaries[metric] = weighted_summary(getattr(self, metric))
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


def default_num_requests(workload: Workload) -> int:
    if workload.num_requests:
        return workload.num_requests
    if workload.scenario == "static":
        return workload.batch_size
    if workload.scenario == "concurrency":
        # about ten requests per client, as benchmark runs are usually sized
        return min(max(10 * workload.concurrency, 64), 4096)
    # Enough arrivals that their mean gap is within about 5 % of 1/rate: the relative error of
    # the mean of n gamma gaps of shape k is 1/sqrt(k n).
    return min(max(400, math.ceil(400 / workload.burstiness)), 4096)


def simulate_serving(
    step: StepTimeModel,
    engine: EngineProfile,
    workload: Workload,
    *,
    kv_capacity_tokens: int,
    max_num_seqs: int,
    max_num_batched_tokens: int,
    shortcuts: bool = True,
) -> ServingResult:
    """Run the engine's scheduler over the workload on one replica.

    kv_capacity_tokens: KV tokens the whole replica can hold (all attention-DP ranks together).
    shortcuts: skip a closed loop's repeating cycles and steady waves (False: simulate every event;
    for tests and benchmarks of the shortcut itself).
    """
    total = default_num_requests(workload)
    varied = bool(workload.input_len_spread or workload.output_len_spread)
    # seeding a generator costs as much as a short simulation: only where something is drawn
    rng = random.Random(workload.seed) if varied or workload.scenario == "rate" else None
    mixed = engine.scheduler == "mixed"
    budget = max(1, max_num_batched_tokens)
    res = ServingResult()

    # --- arrivals -------------------------------------------------------------------------------
    arrivals: list[tuple[float, int, _Cohort]] = []  # heap of (time, uid, cohort)
    uids = itertools.count(1)
    issued = 0

    closed = workload.scenario == "concurrency"
    conc = min(workload.concurrency, total)

    last_new: list[_Cohort] = []  # the newest cohort while it is still an arrival

    def new_cohort(t: float, count: int) -> None:
        nonlocal issued
        if varied:
            assert rng is not None  # made for varied lengths
            for _ in range(count):
                isl, osl = _lengths(workload, rng)
                uid = next(uids)
                c = _Cohort(1, isl, osl, t, isl, uid=uid)
                heapq.heappush(arrivals, (t, uid, c))
        elif last_new and last_new[0].arrival == t:
            # requests released by the same step join one cohort, so cohorts don't fragment
            last_new[0].count += count
        else:
            c = fixed_cohort(t, count)
            heapq.heappush(arrivals, (t, c.uid, c))
            last_new[:] = [c]
        issued += count

    def fixed_cohort(t: float, count: int) -> _Cohort:
        """`count` new requests of the workload's fixed lengths, sent at `t`."""
        c = _Cohort(count, workload.input_len, workload.output_len, t, workload.input_len)
        c.uid = next(uids)
        return c

    def release(t: float, count: int, idle: bool) -> None:
        """Requests that clients send at `t`. They reach the scheduler one after another (the
        front end handles them in turn), and an idle engine starts a step as soon as the first
        arrives: it runs alone and the rest join the next step. A busy engine sees them all at its
        next step. (This is what breaks up a closed loop's waves that would otherwise stay in
        lockstep forever, e.g. eight 1,024-token prompts filling an 8,192-token step exactly.)"""
        nonlocal issued
        if idle and count > 1:
            new_cohort(t, 1)
            new_cohort(t + FRONT_END_STAGGER_S, count - 1)
        elif not idle and not arrivals and not varied:
            # straight into the queue, where the arrival heap would hand them at the next event
            # (nothing else is arriving first): the common case of a busy closed loop
            waiting.append(fixed_cohort(t, count))
            issued += count
        else:
            new_cohort(t, count)

    def split(c: _Cohort, n: int) -> _Cohort:
        """Take `n` sequences out of cohort `c` into a new cohort in the same state."""
        part = _Cohort(
            n,
            c.input_len,
            c.output_len,
            c.arrival,
            c.prompt,
            c.done_prefill,
            c.produced,
            c.first_token,
            c.start,
            next(uids),
        )
        c.count -= n
        return part

    if workload.scenario == "static":
        new_cohort(0.0, workload.batch_size)
    elif closed:
        # Load generators (vllm bench serve, genai-perf, sglang bench_serving) release the first
        # `concurrency` requests together; each later one replaces a finished request. Simulating
        # exactly that (rather than an idealised steady state) matches measured TTFT best, because
        # the opening burst and the waves it leaves behind are part of every measured run.
        release(0.0, conc, idle=True)
    else:
        t = 0.0
        assert rng is not None  # made for the rate scenario
        for _ in range(total):
            t += arrival_gap(rng, workload.rate, workload.burstiness)
            new_cohort(t, 1)

    # --- engine state ---------------------------------------------------------------------------
    waiting: deque[_Cohort] = deque()
    prefilling: list[_Cohort] = []  # admitted, prompt not finished (FCFS)
    decoding: dict[int, _Cohort] = {}  # uid -> cohort, insertion order = admission order
    finish_heap: list[tuple[int, int]] = []  # (global step at which it completes, uid)
    g = 0  # global decode step counter
    n_dec = 0  # decoding sequences
    dec_base = 0  # sum over decoding cohorts of count * (input + produced - start + 1)
    kv_prefill = 0  # KV tokens held by admitted, still-prefilling sequences
    # Engines that reserve each request's whole KV at admission (engine.reserves_output_kv) admit
    # against the reservations, which never exceed the cache, so their decodes never preempt.
    reserve = engine.reserves_output_kv
    kv_reserved = 0
    pf_pending = 0  # prompt tokens the prefilling cohorts still have to compute
    running = 0  # sequences admitted (prefilling + decoding)
    now = 0.0
    batch_time = 0.0
    # time by bottleneck (compute, memory, communication, overhead) and the counts: locals in the
    # event loop, stored in `res` at the end
    t_compute = t_memory = t_comm = t_overhead = 0.0
    n_done = out_tokens = in_tokens = n_steps = 0

    extra = engine.request_overhead_ms * 1e-3
    slope: float | None = getattr(step, "decode_slope", None)  # see StepTimeModel.decode_slope
    # bound once: these lists are only ever extended in place
    e2e_value, e2e_count = res.e2e.values.append, res.e2e.counts.append
    ttft_value, ttft_count = res.ttft.values.append, res.ttft.counts.append
    tpot_value, tpot_count = res.tpot.values.append, res.tpot.counts.append

    def stop_decoding(c: _Cohort) -> None:
        nonlocal n_dec, dec_base
        del decoding[c.uid]
        n_dec -= c.count
        dec_base -= c.count * (c.input_len - c.start + 1)

    def kv_used() -> int:  # (written out in the hot paths of the event loop)
        return kv_prefill + dec_base + n_dec * g

    def preempt_one() -> bool:
        """vLLM-style recompute preemption of the most recently admitted decoding cohort."""
        nonlocal running
        if not decoding:
            return False
        c = decoding[next(reversed(decoding))]
        stop_decoding(c)
        generated = g - c.start + 1
        c.produced = generated - 1
        c.prompt = c.input_len + c.produced
        c.done_prefill = 0
        running -= c.count
        waiting.appendleft(c)
        res.preemptions += c.count
        return True

    # Closed loops with fixed lengths settle into a cycle that repeats exactly; once the state seen at
    # a completion recurs, the remaining whole cycles are added in closed form (see skip_cycles).
    # Keyed by a cheap fingerprint of the state; the full signature is built only when a fingerprint
    # recurs, which keeps the check far cheaper than the simulation it saves.
    seen: dict[tuple[int, ...], tuple[Any, tuple[float, ...]] | None] | None = (
        {} if closed and not varied and shortcuts else None
    )

    waves: list[tuple[float, ...]] = []  # snapshots about one wave of `conc` requests apart
    wave_stats: list[tuple[float, ...]] = []  # _wave between consecutive snapshots
    next_wave = 2 * conc  # the first wave is the opening burst

    def snapshot() -> tuple[float, ...]:
        return (
            now,
            g,
            issued,
            n_done,
            out_tokens,
            in_tokens,
            len(res.ttft),
            len(res.tpot),
            len(res.e2e),
            n_steps,
            res.preemptions,
            t_compute,
            t_memory,
            t_comm,
            t_overhead,
            batch_time,
        )

    def signature() -> tuple[tuple[int, ...], list[float]]:
        """The state as integers, plus the ages of its times (which only shift the latencies)."""
        ints = [running, kv_prefill, n_dec]
        ages: list[float] = []
        for t, _, c in sorted(arrivals):
            ints += (c.count, c.prompt)
            ages.append(now - t)
        for queue in (waiting, prefilling):
            ints.append(-1)  # separator
            for c in queue:
                ints += (c.count, c.prompt, c.done_prefill, c.produced)
                ages.append(now - c.arrival)
        ints.append(-1)
        for c in decoding.values():
            ints += (c.count, g - c.start, c.produced)
            ages += (now - c.arrival, now - c.first_token)
        return tuple(ints), ages

    def same_state(
        a: tuple[tuple[int, ...], list[float]], b: tuple[tuple[int, ...], list[float]]
    ) -> bool:
        # ages equal up to rounding noise (0.1 us): the latencies recorded from here on repeat too
        return a[0] == b[0] and all(abs(x - y) <= 1e-7 for x, y in zip(a[1], b[1], strict=True))

    def skip_cycles(before: tuple[float, ...]) -> bool:
        """Jump over as many repeats of the cycle since `before` as new requests allow."""
        nonlocal now, g, issued, batch_time, dec_base, arrivals, finish_heap
        nonlocal t_compute, t_memory, t_comm, t_overhead, n_done, out_tokens, in_tokens, n_steps
        after = snapshot()
        per_cycle = issued - int(before[2])
        if per_cycle <= 0:
            return False
        m = (total - issued) // per_cycle
        if m < 1:
            return False
        dt, dg = m * (now - before[0]), m * (g - int(before[1]))
        for samples, start in ((res.ttft, 6), (res.tpot, 7), (res.e2e, 8)):
            samples.repeat_since(int(before[start]), m)
        n_done += m * (n_done - int(before[3]))
        out_tokens += m * (out_tokens - int(before[4]))
        in_tokens += m * (in_tokens - int(before[5]))
        n_steps += m * (n_steps - int(before[9]))
        res.preemptions += m * (res.preemptions - int(before[10]))
        t_compute += m * (after[11] - before[11])
        t_memory += m * (after[12] - before[12])
        t_comm += m * (after[13] - before[13])
        t_overhead += m * (after[14] - before[14])
        batch_time += m * (after[15] - before[15])
        issued += m * per_cycle
        now += dt
        g += dg
        for c in itertools.chain(waiting, prefilling, decoding.values()):
            c.arrival += dt
            if c.first_token >= 0:
                c.first_token += dt
        for c in decoding.values():
            c.start += dg
        dec_base -= n_dec * dg
        for _, _, c in arrivals:
            c.arrival += dt
        arrivals = [(t + dt, uid, c) for t, uid, c in arrivals]
        finish_heap = [(step_no + dg, uid) for step_no, uid in finish_heap]
        return True

    events = 0
    while arrivals or waiting or prefilling or decoding:
        events += 1
        if events > MAX_EVENTS:
            res.truncated = True
            break
        while arrivals and arrivals[0][0] <= now + 1e-12:
            waiting.append(heapq.heappop(arrivals)[2])
            last_new.clear()
        if not (waiting or prefilling or decoding):
            now = arrivals[0][0]  # idle until the next arrival
            continue
        # ---- admission: waiting cohorts join the prefill queue while sequence slots and KV room
        # allow, until a step's token budget of prompt work is queued
        while waiting:
            c = waiting[0]
            fit = max_num_seqs - running
            if reserve:
                need = c.input_len + c.output_len
                kv_fit = (kv_capacity_tokens - kv_reserved) // need
            else:
                used = kv_prefill + dec_base + n_dec * g
                kv_fit = (kv_capacity_tokens - used) // max(1, c.prompt)
            if kv_fit < fit:
                fit = kv_fit
            if c.count < fit:
                fit = c.count
            if fit <= 0:
                break
            if fit < c.count:  # split the cohort: part is admitted now
                c = split(c, fit)
            else:
                waiting.popleft()
            prefilling.append(c)
            running += c.count
            if reserve:
                kv_reserved += c.count * need
            kv_prefill += c.count * c.prompt
            pf_pending += c.count * (c.prompt - c.done_prefill)
            if pf_pending > budget:
                break
        # ---- compose the step ------------------------------------------------------------------
        pf_tokens = 0
        pf_pairs = 0.0
        pf_seqs = 0
        completed = 0  # chunks that finish their prompt: a prefix of `prefilling`
        want_prefill = bool(prefilling)
        do_decode = n_dec > 0 and (mixed or not want_prefill)
        room = budget - (n_dec if do_decode and mixed else 0)
        if want_prefill and room > 0:
            i = 0
            while i < len(prefilling) and room > 0:
                c = prefilling[i]
                left = c.prompt - c.done_prefill
                whole = 0 if left > room else c.count if c.count * left <= room else room // left
                if whole:
                    if whole < c.count:  # split: the rest waits for the next step
                        prefilling.insert(i + 1, split(c, c.count - whole))
                    tok = left
                else:  # partial chunk of one sequence
                    if c.count > 1:
                        prefilling.insert(i + 1, split(c, c.count - 1))
                    whole, tok = 1, room
                step_tokens = whole * tok
                room -= step_tokens
                pf_tokens += step_tokens
                pf_pairs += step_tokens * (c.done_prefill + (tok + 1) / 2)
                pf_seqs += whole
                # applied now (nothing reads it before the step ends); only the last chunk can be
                # partial, so the finished prompts are a prefix of the queue
                c.done_prefill += tok
                i += 1
            completed = i if c.done_prefill >= c.prompt else i - 1
        if not pf_seqs and not do_decode:
            if n_dec > 0:
                do_decode = True
            elif arrivals:
                now = max(now, arrivals[0][0])
                continue
            elif waiting and not running:
                # a single request larger than the KV cache: it can never run
                c = waiting.popleft()
                res.truncated = True
                continue
            elif waiting:
                # nothing can run until memory frees; should not happen without running work
                res.truncated = True
                break
        # ---- KV growth: preempt if the decodes of this step don't fit ---------------------------
        preempted = False
        if do_decode:
            while (
                n_dec
                and kv_prefill + dec_base + n_dec * (g + 1) > kv_capacity_tokens
                and len(decoding) > 1
            ):
                preempted = preempt_one()
        # ---- how many identical decode-only steps can run before the next event -----------------
        k = 1
        # Requests still waiting after admission stay blocked (by the sequence limit or KV space) until a
        # finish frees room, and decode-only steps only consume KV, so they don't end a decode span;
        # a preemption does free room, so the next step must try to admit again.
        if do_decode and not pf_seqs and not prefilling and not preempted:
            k = finish_heap[0][0] - g if finish_heap else 1
            while finish_heap and finish_heap[0][1] not in decoding:
                heapq.heappop(finish_heap)
                k = finish_heap[0][0] - g if finish_heap else 1
            kv_left = kv_capacity_tokens - kv_used()
            if n_dec:
                k = min(k, max(1, kv_left // n_dec))
            k = max(1, k)
        ctx0 = (dec_base + n_dec * g) if do_decode else 0
        st = step(n_dec if do_decode else 0, ctx0, pf_tokens, pf_pairs, pf_seqs)
        t_step = st.total
        if k > 1:
            if arrivals:
                k = max(1, min(k, math.ceil((arrivals[0][0] - now) / max(t_step, 1e-9))))
        if k > 1:  # decode only: the step time grows linearly with the context
            if slope is not None:
                t_last = t_step + slope * n_dec * (k - 1)
            else:
                t_last = step(n_dec, ctx0 + n_dec * (k - 1), 0, 0.0, 0).total
            span = k * (t_step + t_last) / 2
        else:
            span = t_step
        scale = span / t_step if t_step > 0 else 0.0
        t_compute += st.compute * scale
        t_memory += st.memory * scale
        t_comm += st.communication * scale
        t_overhead += st.overhead * scale
        batch_time += (n_dec if do_decode else 0) * span + pf_seqs * t_step
        now += span
        n_steps += k
        # ---- apply the step ----------------------------------------------------------------------
        done_before = n_done
        if do_decode:
            g += k
        if pf_seqs:
            pf_pending -= pf_tokens
            for c in prefilling[:completed]:
                n = c.count
                kv_prefill -= n * c.prompt
                # Start decoding. The prompt's last chunk emits its first token, or the next one
                # after a preemption; a request that needs no more finishes in the loop below.
                if c.first_token < 0:
                    c.first_token = now
                generated = c.produced + 1
                c.start = g - (generated - 1)  # so that g - start + 1 == generated
                decoding[c.uid] = c
                n_dec += n
                dec_base += n * (c.input_len - c.start + 1)  # the KV held; g adds the generated
                heapq.heappush(finish_heap, (c.start + c.output_len - 1, c.uid))
            del prefilling[:completed]
        freed = 0
        while finish_heap and finish_heap[0][0] <= g:
            fuid = heapq.heappop(finish_heap)[1]
            c_done = decoding.get(fuid)
            if c_done is None:
                continue
            if c_done.start + c_done.output_len - 1 > g:
                continue  # stale entry from before a preemption
            del decoding[fuid]  # (stop_decoding, written out: once per finished cohort)
            n = c_done.count
            n_dec -= n
            dec_base -= n * (c_done.input_len - c_done.start + 1)
            e2e_value(now - c_done.arrival + extra)
            e2e_count(n)
            ttft_value(c_done.first_token - c_done.arrival + extra)
            ttft_count(n)
            if c_done.output_len > 1:
                tpot_value((now - c_done.first_token) / (c_done.output_len - 1))
                tpot_count(n)
            out_tokens += n * c_done.output_len
            in_tokens += n * c_done.input_len
            freed += n
            if reserve:
                kv_reserved -= n * (c_done.input_len + c_done.output_len)
        if freed:
            n_done += freed
            running -= freed
            if closed and issued < total:
                # A closed loop's clients send their next requests as theirs finish (one cohort).
                # The front-end latency of the next request overlaps other requests' GPU work,
                # so the replacement is handed to the scheduler at once (this also matched
                # measured TTFT better than delaying it by the front-end latency).
                release(now, min(freed, total - issued), idle=not (running or waiting))
        if seen is not None and n_done != done_before and issued < total:
            queued = (len(waiting), len(prefilling), len(decoding))
            fingerprint = (running, kv_prefill, n_dec, dec_base + n_dec * g, *queued, len(arrivals))
            if fingerprint not in seen:
                # with few cohorts the signature is cheap: keep it now and catch a cycle one lap sooner
                small = sum(queued) <= 16
                seen[fingerprint] = (signature(), snapshot()) if small else None
            else:
                sig = signature()
                earlier = seen[fingerprint]
                if earlier is not None and same_state(earlier[0], sig) and skip_cycles(earlier[1]):
                    seen = None  # no whole cycle is left
                else:
                    seen[fingerprint] = (sig, snapshot())
            if seen is not None and issued >= next_wave:
                # Some loops never repeat exactly (partial prefill chunks drift). Once two
                # consecutive waves of `conc` requests agree within STEADY_TOLERANCE, the loop is in
                # its steady state and the last wave stands for the remaining ones.
                waves.append(snapshot())
                next_wave = issued + conc
                if len(waves) >= 2:  # each wave is summarised once, as it ends
                    wave_stats.append(_wave(res, waves[-2], waves[-1]))
                if len(wave_stats) >= 2 and _steady(wave_stats[-2], wave_stats[-1]):
                    if skip_cycles(waves[-2]):
                        seen = None

    res.requests, res.output_tokens, res.input_tokens, res.steps = (
        n_done,
        out_tokens,
        in_tokens,
        n_steps,
    )
    res.time_compute, res.time_memory = t_compute, t_memory
    res.time_communication, res.time_overhead = t_comm, t_overhead
    res.makespan = now + extra  # the last response still has to reach its client
    res.closed_loop_concurrency = conc if closed else 0
    res.mean_batch = batch_time / now if now > 0 else 0.0
    return res


STEADY_TOLERANCE = 0.01  # relative; see _steady (1 %: the prediction moves by well under 3 %)


def _wave(res: ServingResult, x: tuple[float, ...], y: tuple[float, ...]) -> tuple[float, ...]:
    """What the wave between snapshots x and y (as made by simulate_serving) of a closed loop did:
    the mean TTFT, TPOT and E2E of the requests that finished in it, its preemptions and its time
    per request issued."""
    out = []
    for samples, i in ((res.ttft, 6), (res.tpot, 7), (res.e2e, 8)):
        mean = samples.mean(int(x[i]), int(y[i]))
        out.append(0.0 if math.isnan(mean) else mean)
    out.append(y[10] - x[10])
    out.append((y[0] - x[0]) / max(y[2] - x[2], 1))
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


def weighted_summary(
    samples: Samples, quantiles: tuple[float, ...] = (0.5, 0.9, 0.99)
) -> tuple[float, list[float], float]:
    """(mean, the nearest-rank quantiles, max) of weighted samples, with one sort."""
    values, counts = samples.values, samples.counts
    if not values:
        nan = float("nan")
        return nan, [nan] * len(quantiles), nan
    # by value only: ties hold the same value, so their order cannot change a quantile
    order = sorted(range(len(values)), key=values.__getitem__)
    cumulative = list(itertools.accumulate([counts[i] for i in order]))
    total = cumulative[-1]
    mean = sum(map(mul, values, counts)) / total
    last = len(order) - 1
    # nearest rank: the first value whose cumulative count reaches q * total
    out = [values[order[min(bisect_left(cumulative, q * total), last)]] for q in quantiles]
    return mean, out, values[order[-1]]
