"""Scheduler policies: how each engine family batches the requests of one replica (Vidur style).

The event loop (budsim.core.simulator) owns time: arrivals, engine steps, completions. Before each
step it asks the replica's policy two things:

- `admit(state)`: which waiting requests join the running set, as sequence slots and KV cache allow;
- `compose(state)`: what the next step runs (a `Batch`: the decodes and the prompt chunks), after
  preempting whatever the step's KV growth does not leave room for;

and it tells the policy `release(cohort)` when requests finish. One class per engine family:

- `VllmV1`: decodes first, prompt chunks fill the rest of the token budget; admission needs KV for
  the prompt only, and decode growth past the cache preempts the newest requests (recompute).
- `SglangPrefillFirst`: a prefill batch runs alone whenever prompt work is queued, else a decode batch.
- `TrtllmNoEvict`: in-flight batching like vLLM's, but GUARANTEED_NO_EVICT admission: a request
  enters only when the KV of its whole prompt and output fits beside the others' reservations, so
  it is never preempted.

What every policy does the same way (FCFS admission, cutting prompt chunks, recompute preemption,
the KV accounting) lives in `ReplicaState`, so each policy reads as its own rules.

Requests move as *cohorts* (a count of identical requests in the same state), and decode progress
is one global decode-step counter `g`: a cohort that began decoding at step `start` has generated
`g - start + 1` tokens, so a step never touches the decoding cohorts one by one.
"""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from .engines import EngineProfile


@dataclass(slots=True)
class Cohort:
    """`count` identical requests in the same state."""

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
    measured: bool = True  # its latencies count (steady state leaves out warm-up requests)


class ShiftDigest:
    """A steady closed loop's decoding set as one number that stays the same when every cohort's
    progress shifts by the same number of steps, so that the loop's state can be compared at
    every completion at O(1) cost: the sum over cohorts of a weight for their size (and progress
    before a preemption) times BASE**start, times BASE**-g, modulo a Mersenne prime (distinct
    sets collide with odds of about 2**-61). The loop's lengths are fixed, so they need no
    weight. The powers come from tables shared by all digests, grown as far as a loop needs."""

    MOD = (1 << 61) - 1
    BASE = 1_000_003
    _powers = ([1], [1])  # BASE**i and BASE**-i

    def __init__(self) -> None:
        self.total = 0
        self._terms: dict[int, int] = {}  # uid -> the term a decoding cohort added

    @classmethod
    def power(cls, e: int) -> int:
        """BASE**e modulo MOD, for any integer e."""
        table = cls._powers[e < 0]
        i = abs(e)
        if i >= len(table):
            factor = cls.BASE if e >= 0 else pow(cls.BASE, -1, cls.MOD)
            while len(table) <= i:
                table.append(table[-1] * factor % cls.MOD)
        return table[i]

    def add(self, c: Cohort) -> None:
        term = (c.count + (c.produced << 32)) * self.power(c.start) % self.MOD
        self._terms[c.uid] = term
        self.total = (self.total + term) % self.MOD

    def remove(self, c: Cohort) -> None:
        self.total = (self.total - self._terms.pop(c.uid)) % self.MOD

    def value(self, g: int) -> int:
        return self.total * self.power(-g) % self.MOD


class QueueDigest:
    """A FCFS queue of a steady closed loop (the waiting queue, or the prompts being prefilled)
    as a few numbers, at O(1) cost per comparison.

    While a loop searches for its period, cohorts join such a queue only at its back, as fresh
    requests of the loop's fixed lengths, and leave it from the front (admission, finished
    prompts; the search ends at the first preemption, which puts requests back in front), and
    only the few at the front are ever changed on the way (part-admitted, part-prefilled, split).
    So the queue is a few changed cohorts followed by a run of consecutive entries of the log of
    what joined it, unchanged. Its state is then (the changed cohorts, spelled out; the run's
    length; a hash of the run's counts: prefix sums of count * BASE**index modulo a Mersenne
    prime, as ShiftDigest)."""

    __slots__ = ("_prefix", "_index", "_counts")
    FRONT = 4  # changed cohorts spelled out at most (else the queue is not of that shape)

    def __init__(self) -> None:
        self._prefix = [0]  # sum of count * BASE**i over the entries before each index
        self._index: dict[int, int] = {}  # uid -> its entry
        self._counts: list[int] = []  # each entry's count as it joined

    def add(self, c: Cohort) -> None:
        """`c` joined the back of the queue."""
        prefix = self._prefix
        i = len(prefix) - 1
        self._index[c.uid] = i
        self._counts.append(c.count)
        prefix.append((prefix[-1] + c.count * ShiftDigest.power(i)) % ShiftDigest.MOD)

    def add_many(self, cohorts: list[Cohort]) -> None:
        """add for each cohort in turn."""
        prefix, index, counts = self._prefix, self._index, self._counts
        i = len(prefix) - 1
        ShiftDigest.power(i + len(cohorts))  # grows the table once
        powers, mod, total = ShiftDigest._powers[0], ShiftDigest.MOD, prefix[-1]
        for c in cohorts:
            index[c.uid] = i
            counts.append(c.count)
            total = (total + c.count * powers[i]) % mod
            prefix.append(total)
            i += 1

    def value(self, queue: Sequence[Cohort]) -> tuple[Any, ...] | None:
        """The queue's state, or None when it is not of the shape described above: (the part-
        prefilled cohorts at its front, spelled out; how many fresh cohorts follow; a hash of
        their counts in order). The same queue gives the same value however its fresh cohorts
        came to be (joined as they are, or split off another)."""
        power, mod = ShiftDigest.power, ShiftDigest.MOD
        n = len(queue)
        p = 0
        front: list[tuple[int, int, int, int]] = []
        while p < n and (queue[p].done_prefill or queue[p].produced):
            if p >= self.FRONT:
                return None
            c = queue[p]
            front.append((c.count, c.prompt, c.done_prefill, c.produced))
            p += 1
        # fresh cohorts: a few changed or not logged, then the log's entries to the back
        index, counts = self._index, self._counts
        lead = m = 0
        while p < n:
            c = queue[p]
            if c.done_prefill or c.produced:
                return None  # a part-prefilled cohort behind fresh ones: not this shape
            i = index.get(c.uid)
            if i is not None and c.count == counts[i]:
                prefix = self._prefix
                end = len(prefix) - 1
                if end - i != n - p:
                    return None
                run = (prefix[end] - prefix[i]) * power(m - i) % mod  # as if from position m
                return (tuple(front), m + end - i, (lead + run) % mod)
            if m >= self.FRONT:
                return None
            lead += c.count * power(m)
            m += 1
            p += 1
        return (tuple(front), m, lead % mod)


class Batch(NamedTuple):
    """One engine step as a policy composed it."""

    decode: bool  # every decoding sequence generates a token
    prefill_tokens: int
    prefill_pairs: float  # causal-attention (query, key) pairs of the prompt chunks
    prefill_seqs: int
    completed: int  # chunks that finish their prompt: a prefix of state.prefilling
    preempted: bool  # the policy preempted before this step (admission may succeed again)


_NO_CHUNKS = (0, 0.0, 0, 0)


class ReplicaState:
    """The requests on one replica, the global decode counter and the KV-cache accounting.

    KV held = kv_prefill (whole prompts of admitted, still-prefilling cohorts) + dec_base + n_dec * g
    (each decoding sequence holds its input plus the tokens it generated), less the copies of a
    shared prompt prefix: its `shared` tokens are held once for all running requests (kv_room).
    With prefix caching (`cache`: tokens of a new prompt already cached) a prompt's cached tokens
    are not computed (prompt_chunks starts after them)."""

    __slots__ = (
        "waiting",
        "prefilling",
        "decoding",
        "finish_heap",
        "g",
        "n_dec",
        "dec_base",
        "kv_prefill",
        "pf_pending",
        "running",
        "preemptions",
        "kv_capacity",
        "max_num_seqs",
        "budget",
        "budget_need",
        "budget_binds",
        "digest",
        "admitted",
        "shared",
        "cache",
        "_uids",
    )

    def __init__(self, kv_capacity: int, max_num_seqs: int, budget: int) -> None:
        self.waiting: deque[Cohort] = deque()
        self.prefilling: list[Cohort] = []  # admitted, prompt not finished (FCFS)
        self.decoding: dict[int, Cohort] = {}  # uid -> cohort; insertion order = admission order
        self.finish_heap: list[tuple[int, int]] = []  # (global step it completes at, uid)
        self.g = 0  # global decode step counter
        self.n_dec = 0  # decoding sequences
        self.dec_base = 0  # sum over decoding cohorts of count * (input + produced - start + 1)
        self.kv_prefill = 0
        self.pf_pending = 0  # prompt tokens the prefilling cohorts still have to compute
        self.running = 0  # sequences admitted (prefilling + decoding)
        self.preemptions = 0
        self.kv_capacity = kv_capacity
        self.max_num_seqs = max_num_seqs
        self.budget = max(1, budget)
        # Whether the token budget ever decided anything (a step's prompt work cut short, an
        # admission stopped), and else the smallest budget that would have decided the same:
        # a run the budget never bound is the run of every budget from `budget_need` up.
        self.budget_need = 1
        self.budget_binds = False
        self.digest: ShiftDigest | None = None  # a steady closed loop's (see ShiftDigest)
        self.admitted: QueueDigest | None = None  # of `prefilling`, while a loop seeks its period
        self.shared = 0  # KV tokens of a prompt prefix every request shares (held once)
        self.cache: Callable[[int], int] | None = None  # input_len -> its cached prompt tokens
        self._uids = itertools.count(1)

    def new_uid(self) -> int:
        return next(self._uids)

    @property
    def kv_used(self) -> int:
        return self.kv_prefill + self.dec_base + self.n_dec * self.g

    def kv_room(self, growth: int = 0) -> int:
        """KV tokens free after `growth` more are taken: the running requests' copies of the
        shared prefix but one are not really held (with none running, the first one to come
        will hold it)."""
        return (
            self.kv_capacity
            + self.shared * (self.running - 1)
            - self.kv_prefill
            - self.dec_base
            - self.n_dec * self.g
            - growth
        )

    def cached(self, c: Cohort) -> int:
        """Prompt tokens of `c` the prefix cache holds: a new request's (Workload.cached_tokens);
        a preempted one recomputes all but the shared prefix (which the others keep cached)."""
        if self.cache is None:
            return 0
        return self.cache(c.input_len) if not c.produced else min(self.shared, c.prompt - 1)

    def split(self, c: Cohort, n: int) -> Cohort:
        """Take `n` sequences out of cohort `c` into a new cohort in the same state."""
        part = Cohort(
            n,
            c.input_len,
            c.output_len,
            c.arrival,
            c.prompt,
            c.done_prefill,
            c.produced,
            c.first_token,
            c.start,
            next(self._uids),
            c.measured,
        )
        c.count -= n
        return part

    # ---- the mechanics every policy shares ---------------------------------------------------
    def prompt_chunks(self, room: int) -> tuple[int, float, int, int]:
        """Cut FCFS prompt chunks from the prefill queue into `room` tokens: (tokens, attention
        pairs, chunks, prompts completed). Whole prompts first; the last chunk may be a partial
        one of a single sequence. The progress is applied at once (nothing reads it before the
        step ends), so the completed prompts are a prefix of the queue."""
        prefilling = self.prefilling
        if not prefilling:
            return _NO_CHUNKS
        if self.pf_pending > room:
            self.budget_binds = True
        elif self.pf_pending + self.budget - room > self.budget_need:
            self.budget_need = self.pf_pending + self.budget - room
        if room <= 0:
            return _NO_CHUNKS
        tokens = seqs = 0
        pairs = 0.0
        i = skip = 0
        c = prefilling[0]
        while i < len(prefilling) and room > 0:
            c = prefilling[i]
            skip = self.cached(c) if self.cache is not None else 0
            left = c.prompt - skip - c.done_prefill
            whole = 0 if left > room else c.count if c.count * left <= room else room // left
            if whole:
                if whole < c.count:  # split: the rest waits for the next step
                    prefilling.insert(i + 1, self.split(c, c.count - whole))
                tok = left
            else:  # partial chunk of one sequence
                if c.count > 1:
                    prefilling.insert(i + 1, self.split(c, c.count - 1))
                whole, tok = 1, room
            step_tokens = whole * tok
            room -= step_tokens
            tokens += step_tokens
            pairs += step_tokens * (skip + c.done_prefill + (tok + 1) / 2)
            seqs += whole
            c.done_prefill += tok
            i += 1
        return tokens, pairs, seqs, i if skip + c.done_prefill >= c.prompt else i - 1

    def kv_short(self) -> bool:
        """Whether this step's decodes would not fit the KV cache."""
        return self.kv_room(self.n_dec) < 0

    def preempt_for_growth(self) -> bool:
        """Recompute-preempt the most recently admitted decoding cohorts until this step's decodes
        fit the KV cache (vLLM's and SGLang's policy; one cohort always stays). True if any was."""
        preempted = False
        decoding = self.decoding
        while self.n_dec and self.kv_room(self.n_dec) < 0 and len(decoding) > 1:
            c = decoding[next(reversed(decoding))]
            self.stop_decoding(c)
            c.produced = self.g - c.start
            c.prompt = c.input_len + c.produced
            c.done_prefill = 0
            self.running -= c.count
            self.waiting.appendleft(c)
            self.preemptions += c.count
            preempted = True
        return preempted

    def stop_decoding(self, c: Cohort) -> None:
        del self.decoding[c.uid]
        self.n_dec -= c.count
        self.dec_base -= c.count * (c.input_len - c.start + 1)
        if self.digest is not None:
            self.digest.remove(c)

    def start_decoding(self, completed: int, now: float) -> None:
        """The first `completed` prefilling cohorts finished their prompts this step: the last chunk
        emitted their first token (or the next one after a preemption) and they decode from here."""
        for c in self.prefilling[:completed]:
            self.kv_prefill -= c.count * c.prompt
            if c.first_token < 0:
                c.first_token = now
            self._decode(c, self.g - c.produced)  # g - start + 1 == produced + 1 generated
        del self.prefilling[:completed]

    def place_decoding(self, c: Cohort, generated: int) -> None:
        """Put `c` into the running set as if it had been admitted, prefilled and had generated
        `generated` tokens (a steady-state start)."""
        self.running += c.count
        self._decode(c, self.g - generated + 1)

    def place_decoding_many(self, cohorts: list[Cohort], generated: list[int]) -> None:
        """place_decoding for each cohort in turn (the many cohorts of a steady start)."""
        g, decoding, heap, digest = self.g, self.decoding, self.finish_heap, self.digest
        running = n_dec = dec_base = 0
        for c, p in zip(cohorts, generated, strict=True):
            n = c.count
            running += n
            start = g - p + 1
            c.start = start
            decoding[c.uid] = c
            n_dec += n
            dec_base += n * (c.input_len - start + 1)
            heapq.heappush(heap, (start + c.output_len - 1, c.uid))
            if digest is not None:
                digest.add(c)
        self.running += running
        self.n_dec += n_dec
        self.dec_base += dec_base

    def _decode(self, c: Cohort, start: int) -> None:
        n = c.count
        c.start = start
        self.decoding[c.uid] = c
        self.n_dec += n
        self.dec_base += n * (c.input_len - start + 1)  # the KV held; g adds the generated
        heapq.heappush(self.finish_heap, (start + c.output_len - 1, c.uid))
        if self.digest is not None:
            self.digest.add(c)

    def decode_run(self) -> int:
        """How many decode-only steps can run before one finishes a request or fills the cache."""
        heap, decoding = self.finish_heap, self.decoding
        while heap and heap[0][1] not in decoding:  # stale: preempted since
            heapq.heappop(heap)
        k = heap[0][0] - self.g if heap else 1
        if self.n_dec:
            k = min(k, max(1, self.kv_room() // self.n_dec))
        return max(1, k)


class Scheduler:
    """The policy interface, with the FCFS admission every engine family uses.

    Admission takes the head of the waiting queue while sequence slots and `kv_fit` allow, and
    stops once a step's token budget of prompt work is queued (the rest waits where preemption
    can still put requests in front of it)."""

    name = "base"
    prefill_runs_alone = False  # steps with prompt work run no decodes
    preempts = True  # whether a running request can be preempted (KV growth past the cache)

    def kv_fit(self, s: ReplicaState, c: Cohort) -> int:
        """How many sequences of `c` the KV cache takes now: room for their prompts (a shared
        prefix once)."""
        return s.kv_room() // max(1, c.prompt - s.shared)

    def holds(self, input_len: int, output_len: int, generated: int) -> int:
        """KV tokens a running request counts for in admission, having generated `generated`."""
        return input_len + generated

    def on_admit(self, c: Cohort) -> None:
        """Called for each cohort admitted (reservations)."""

    def release(self, c: Cohort) -> None:
        """Called for each cohort that finished."""

    def admit(self, s: ReplicaState) -> None:
        waiting = s.waiting
        while waiting:
            c = waiting[0]
            fit = min(s.max_num_seqs - s.running, self.kv_fit(s, c), c.count)
            if fit <= 0:
                break
            if fit < c.count:  # split the cohort: part is admitted now
                c = s.split(c, fit)
            else:
                waiting.popleft()
            s.prefilling.append(c)
            if s.admitted is not None:
                s.admitted.add(c)
            s.running += c.count
            self.on_admit(c)
            s.kv_prefill += c.count * c.prompt
            s.pf_pending += c.count * (c.prompt - c.done_prefill - s.cached(c))
            if s.pf_pending > s.budget_need:
                s.budget_need = s.pf_pending
            if s.pf_pending > s.budget:
                if waiting and min(s.max_num_seqs - s.running, self.kv_fit(s, waiting[0])) > 0:
                    s.budget_binds = True  # a larger budget would have admitted more
                break

    def compose(self, s: ReplicaState) -> Batch:
        raise NotImplementedError


class VllmV1(Scheduler):
    """vLLM v1: every running request decodes, then prompt chunks fill the rest of the token
    budget (`max_num_batched_tokens`), FCFS, at most `max_num_seqs` running. A prompt is admitted
    when its KV fits; when the step's decode growth does not, the newest requests are preempted
    and recomputed later."""

    name = "vllm-v1"

    def compose(self, s: ReplicaState) -> Batch:
        decode = s.n_dec > 0
        tokens, pairs, seqs, completed = s.prompt_chunks(s.budget - s.n_dec)
        preempted = decode and s.kv_short() and s.preempt_for_growth()
        return Batch(decode, tokens, pairs, seqs, completed, preempted)


class SglangPrefillFirst(Scheduler):
    """SGLang (mixed chunks off, its default): whenever prompt work is queued, a prefill batch of
    up to the token budget runs alone and the decodes wait; otherwise every running request
    decodes. Admission and preemption as vLLM's."""

    name = "sglang-prefill-first"
    prefill_runs_alone = True

    def compose(self, s: ReplicaState) -> Batch:
        if s.prefilling:
            tokens, pairs, seqs, completed = s.prompt_chunks(s.budget)
            return Batch(False, tokens, pairs, seqs, completed, False)
        decode = s.n_dec > 0
        return Batch(decode, 0, 0.0, 0, 0, decode and s.kv_short() and s.preempt_for_growth())


class TrtllmNoEvict(Scheduler):
    """TensorRT-LLM in-flight batching with GUARANTEED_NO_EVICT (its default capacity policy): a
    request is admitted only when the KV of its whole prompt and output fits beside what the
    running requests reserved; steps are composed like vLLM's (decodes, then context chunks), and
    since the reservations never exceed the cache nothing is ever preempted."""

    name = "trtllm-no-evict"
    preempts = False

    def __init__(self, shared: int = 0) -> None:
        self.reserved = 0  # KV tokens reserved by the running requests
        self.shared = shared  # tokens of the prompt prefix all requests share (reserved once)

    def kv_fit(self, s: ReplicaState, c: Cohort) -> int:
        room = s.kv_capacity - self.reserved - s.shared  # the shared prefix's blocks, held once
        return room // (c.input_len + c.output_len - s.shared)

    def holds(self, input_len: int, output_len: int, generated: int) -> int:
        return input_len + output_len

    def on_admit(self, c: Cohort) -> None:
        self.reserved += c.count * (c.input_len + c.output_len - self.shared)

    def release(self, c: Cohort) -> None:
        self.reserved -= c.count * (c.input_len + c.output_len - self.shared)

    def compose(self, s: ReplicaState) -> Batch:
        decode = s.n_dec > 0
        tokens, pairs, seqs, completed = s.prompt_chunks(s.budget - s.n_dec)
        return Batch(decode, tokens, pairs, seqs, completed, False)


def scheduler_for(engine: EngineProfile, shared_prefix: int = 0) -> Scheduler:
    """The policy of `engine`'s scheduler family (`shared_prefix`: see ReplicaState.shared)."""
    if engine.scheduler == "prefill_first":
        return SglangPrefillFirst()
    if engine.reserves_output_kv:
        return TrtllmNoEvict(shared_prefix)
    return VllmV1()
