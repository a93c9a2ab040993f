"""The steady state of a closed loop, read from one period of its schedule.

A closed loop of identical requests is a deterministic system whose scheduling decisions depend
only on integer state (queues, cohort sizes, prompt progress, decode progress relative to the global
step counter): times never feed back into them. So once that state recurs, the schedule is periodic
from there on: every `period` of `dt` seconds, `dg` decode steps and `m` requests repeats exactly.
A request's latencies then follow from the schedule alone, without simulating its whole life:

- with FCFS admission and no preemption, requests get their first tokens in the order they were
  sent, so the n-th request sent gets the n-th first token, which the period extends:
  F(n + j*m) = F(n) + j*dt (and its decode starts at G(n) + j*dg);
- a decoding request gains one token per decode step, so it finishes at the end of decode step
  G(n) + output_len - 1, whose time the period extends as well: T(g + j*dg) = T(g) + j*dt.

The m requests sent during one period are then the steady sample, exactly. When the state never
recurs exactly (C clients whose phases do not divide the output length evenly drift by one step),
a window of completions whose pace and first-token waits agree with the previous window's within
a tolerance stands for the period; the latencies are then right to about the tolerance.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections.abc import Iterator
from typing import NamedTuple

from .samples import Samples


class Snapshot(NamedTuple):
    """The counters of a simulation at one moment (cycles, waves, periods and sample windows)."""

    now: float
    g: int
    issued: int  # requests sent so far (arrival indices below this are taken)
    done: int
    out_tokens: int
    in_tokens: int
    n_ttft: int
    n_tpot: int
    n_e2e: int
    steps: int
    preemptions: int
    t_compute: float
    t_memory: float
    t_comm: float
    t_overhead: float
    batch_time: float
    first_tokens: int = 0  # fresh first tokens so far (their request indices)
    n_arrivals: int = 0  # entries in ScheduleLog.arrivals
    n_first: int = 0  # entries in ScheduleLog.first_tokens


class ScheduleLog:
    """Arrivals, first tokens and decode steps of a closed loop, in order, for `extend`."""

    __slots__ = (
        "arrivals",
        "arrival_starts",
        "first_tokens",
        "first_starts",
        "decodes",
        "decode_starts",
    )

    def __init__(self) -> None:
        self.arrivals: list[tuple[int, float]] = []  # (count, time sent); indices are contiguous
        self.arrival_starts: list[int] = []  # first index of each entry
        self.first_tokens: list[tuple[int, float, int]] = []  # (count, time, decode start step)
        self.first_starts: list[int] = []
        self.decodes: list[tuple[float, float, float]] = []  # (t before, t first step, t last)
        self.decode_starts: list[int] = []  # g before each run of decode steps (k = next - this)

    def arrival(self, index: int, count: int, t: float) -> None:
        self.arrival_starts.append(index)
        self.arrivals.append((count, t))

    def arrivals_at(self, index: int, counts: list[int], t: float) -> None:
        """arrival for each count in turn, from `index` on, all sent at `t`."""
        starts = self.arrival_starts
        for count in counts:
            starts.append(index)
            index += count
        self.arrivals.extend([(count, t) for count in counts])

    def first_token(self, index: int, count: int, t: float, start: int) -> None:
        self.first_starts.append(index)
        self.first_tokens.append((count, t, start))

    def decode_run(self, g: int, t: float, t_first: float, t_last: float) -> None:
        self.decode_starts.append(g)
        self.decodes.append((t, t_first, t_last))

    # ---- lookups (observed) ------------------------------------------------------------------
    def time_at_step(self, g: int, g_end: int) -> float:
        """When decode step `g` (observed: g <= g_end, the counter now) ended."""
        i = bisect_right(self.decode_starts, g - 1) - 1
        g0 = self.decode_starts[i]
        k = (self.decode_starts[i + 1] if i + 1 < len(self.decode_starts) else g_end) - g0
        t, t_first, t_last = self.decodes[i]
        j = g - g0
        # steps within a run grow linearly from t_first to t_last (see simulate_serving)
        grow = (t_last - t_first) / (k - 1) if k > 1 else 0.0
        return t + j * t_first + grow * j * (j - 1) / 2

    def window_wait(self, x: Snapshot, y: Snapshot) -> float:
        """Mean time from sending to first token of the fresh first tokens between x and y."""
        total = waited = 0.0
        for i in range(x.n_first, y.n_first):
            count, t, _ = self.first_tokens[i]
            for n, sent in self._arrival_pieces(self.first_starts[i], count):
                total += n
                waited += n * (t - sent)
        return waited / total if total else math.nan

    def _arrival_pieces(self, index: int, count: int) -> Iterator[tuple[int, float]]:
        """(count, time sent) of the requests index .. index + count - 1."""
        i = bisect_right(self.arrival_starts, index) - 1
        while count > 0:
            n, sent = self.arrivals[i]
            take = min(count, self.arrival_starts[i] + n - index)
            yield take, sent
            index += take
            count -= take
            i += 1

    # ---- the periodic extension --------------------------------------------------------------
    def extend(
        self,
        x: Snapshot,
        y: Snapshot,
        now_g: int,
        output_len: int,
        extra: float,
        *,
        late: bool = False,
    ) -> tuple[Samples, Samples, Samples] | None:
        """TTFT, TPOT and E2E samples of the requests sent between marks x and y, taken as one
        period of the schedule (None: not a usable period). `extra`: the front end's latency;
        `late`: tokens reach the client one step (the request's mean step) late."""
        m = y.issued - x.issued
        if m <= 0 or y.first_tokens - x.first_tokens != m or y.now <= x.now:
            return None
        dt, dg = y.now - x.now, y.g - x.g
        if output_len > 1 and dg <= 0:
            return None
        ttft, tpot, e2e = Samples(), Samples(), Samples()
        for i in range(x.n_arrivals, y.n_arrivals):
            count, sent = self.arrivals[i]
            for n, t_first, start in self._first_token_pieces(self.arrival_starts[i], count, x, y):
                if output_len == 1:
                    ttft.add(t_first - sent + extra, n)
                    e2e.add(t_first - sent + extra, n)
                    continue
                done = self._extended_time(start + output_len - 1, x, y, now_g, dt, dg)
                step = (done - t_first) / (output_len - 1)
                delay = extra + (step if late else 0.0)
                ttft.add(t_first - sent + delay, n)
                e2e.add(done - sent + delay, n)
                tpot.add(step, n)
        return ttft, tpot, e2e

    def _first_token_pieces(
        self, index: int, count: int, x: Snapshot, y: Snapshot
    ) -> Iterator[tuple[int, float, int]]:
        """(count, time, decode start) of the first tokens of requests index .. index + count - 1,
        observed or extended by whole periods x -> y."""
        m, dt, dg = y.issued - x.issued, y.now - x.now, y.g - x.g
        k0 = x.first_tokens
        while count > 0:
            shift = 0 if index < y.first_tokens else (index - k0) // m
            at = index - shift * m
            i = bisect_right(self.first_starts, at) - 1
            n, t, start = self.first_tokens[i]
            take = min(count, self.first_starts[i] + n - at)
            if shift:  # the wrapped position must stay inside the period
                take = min(take, k0 + m - at)
            yield take, t + shift * dt, start + shift * dg
            index += take
            count -= take

    def _extended_time(
        self, g: int, x: Snapshot, y: Snapshot, now_g: int, dt: float, dg: int
    ) -> float:
        """T(g): observed up to the counter now, else shifted back by whole periods x -> y."""
        if g <= now_g:
            return self.time_at_step(g, now_g)
        shift = math.ceil((g - y.g) / dg)
        return self.time_at_step(g - shift * dg, now_g) + shift * dt
