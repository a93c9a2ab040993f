"""The scheduler policies on their own: what each engine family admits and puts in a step."""

from __future__ import annotations

import pytest
from scheduler_steps import step_without_time as _step

from budsim.core.engines import get_engine
from budsim.core.schedulers import (
    Cohort,
    ReplicaState,
    Scheduler,
    SglangPrefillFirst,
    TrtllmNoEvict,
    VllmV1,
    scheduler_for,
)


def _request(s: ReplicaState, isl: int, osl: int, count: int = 1) -> Cohort:
    c = Cohort(count, isl, osl, 0.0, isl, uid=s.new_uid())
    s.waiting.append(c)
    return c


def test_each_engine_family_has_its_policy() -> None:
    assert isinstance(scheduler_for(get_engine("vllm", "cuda")), VllmV1)
    assert isinstance(scheduler_for(get_engine("sglang", "cuda")), SglangPrefillFirst)
    assert isinstance(scheduler_for(get_engine("trtllm", "cuda")), TrtllmNoEvict)


def test_vllm_runs_decodes_and_fills_the_rest_of_the_budget_with_prompt_chunks() -> None:
    s = ReplicaState(kv_capacity=10**6, max_num_seqs=64, budget=1024)
    vllm = VllmV1()
    _request(s, 100, 50, count=10)
    first = _step(vllm, s)  # ten prompts of 100 tokens in one step
    assert (first.decode, first.prefill_tokens, first.prefill_seqs, first.completed) == (
        False,
        1000,
        10,
        1,
    )
    _request(s, 3000, 50)
    mixed = _step(vllm, s)  # the ten decode, the new prompt gets the remaining 1,014 tokens
    assert mixed.decode and mixed.prefill_tokens == 1024 - 10 and mixed.completed == 0
    assert s.prefilling[0].done_prefill == 1014


def test_vllm_preempts_the_newest_request_when_decodes_outgrow_the_cache() -> None:
    """vLLM admits on the prompt alone; as decodes grow past the cache it preempts (recompute)."""
    s = ReplicaState(kv_capacity=2000, max_num_seqs=64, budget=8192)
    vllm = VllmV1()
    old, new = _request(s, 500, 1000), _request(s, 500, 1000)
    _step(vllm, s)
    assert s.n_dec == 2  # both prompts fit: 1,000 of 2,000 KV tokens
    preempted = [_step(vllm, s).preempted for _ in range(600)]
    assert any(preempted) and s.preemptions >= 1
    assert new.uid not in s.decoding or new.produced > 0  # the newest went first
    assert old.uid in s.decoding and old.produced == 0  # the oldest kept decoding
    assert s.kv_used <= s.kv_capacity


def test_trtllm_admits_only_whole_requests_and_never_preempts() -> None:
    """GUARANTEED_NO_EVICT: the second request waits until the first's whole prompt + output
    reservation is released, so the cache never overflows and nothing is preempted."""
    s = ReplicaState(kv_capacity=2000, max_num_seqs=64, budget=8192)
    trt = TrtllmNoEvict()
    first, second = _request(s, 500, 1000), _request(s, 500, 1000)
    _step(trt, s)
    assert first.uid in s.decoding and list(s.waiting) == [second]
    assert trt.reserved == 1500  # one whole request; two would need 3,000
    for _ in range(1000):
        assert not _step(trt, s).preempted and s.kv_used <= s.kv_capacity
    assert s.preemptions == 0 and second.uid in s.decoding and trt.reserved == 1500


def test_sglang_runs_a_prefill_batch_alone() -> None:
    """With prompt work queued, SGLang's step is a prefill batch and the decodes wait; without,
    every running request decodes."""
    s = ReplicaState(kv_capacity=10**6, max_num_seqs=64, budget=8192)
    sglang = SglangPrefillFirst()
    _request(s, 1000, 100, count=4)
    _step(sglang, s)
    assert s.n_dec == 4
    decode = _step(sglang, s)
    assert decode.decode and decode.prefill_seqs == 0
    _request(s, 2000, 100)
    prefill = _step(sglang, s)
    assert not prefill.decode and (prefill.prefill_tokens, prefill.completed) == (2000, 1)
    g = s.g
    assert _step(sglang, s).decode and s.g == g + 1 and s.n_dec == 5


@pytest.mark.parametrize("policy", [VllmV1(), SglangPrefillFirst()])
def test_admission_stops_at_the_sequence_limit(policy: Scheduler) -> None:
    s = ReplicaState(kv_capacity=10**6, max_num_seqs=3, budget=8192)
    _request(s, 100, 10, count=5)
    policy.admit(s)
    assert s.running == 3 and [c.count for c in s.waiting] == [2]  # the cohort was split
