"""Engine steps without time, as the simulator's event loop applies them (shared by the scheduler
and prefix-caching tests)."""

from __future__ import annotations

import heapq

from budsim.core.schedulers import Batch, ReplicaState, Scheduler


def step_without_time(policy: Scheduler, s: ReplicaState) -> Batch:
    """One engine step: admit, compose, then decodes advance the global counter, completed
    prompts start decoding and finished requests leave."""
    policy.admit(s)
    batch = policy.compose(s)
    if batch.decode:
        s.g += 1
    if batch.prefill_seqs:
        s.pf_pending -= batch.prefill_tokens
        s.start_decoding(batch.completed, 0.0)
    while s.finish_heap and s.finish_heap[0][0] <= s.g:
        c = s.decoding.get(heapq.heappop(s.finish_heap)[1])
        if c is not None and c.start + c.output_len - 1 <= s.g:
            s.stop_decoding(c)
            policy.release(c)
            s.running -= c.count
    return batch
