"""Prefix caching: cached prompt tokens are not prefilled, a shared prefix's KV is held once."""

from __future__ import annotations

import pytest
from scheduler_steps import step_without_time

from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.predict import predict_physics
from budsim.core.schedulers import Cohort, ReplicaState, Scheduler, TrtllmNoEvict, VllmV1


def test_cached_tokens_are_the_shared_prefix_plus_the_share_of_the_rest() -> None:
    w = Workload(input_len=4096, shared_prefix_len=3072, cached_share=0.5)
    assert w.cached_tokens(4096) == 3072 + 512
    assert w.cached_tokens(2000) == 2000 - 1  # shorter than the prefix: all but the last token
    assert Workload(input_len=100, cached_share=0.999).cached_tokens(100) == 99
    assert Workload(input_len=100).cached_tokens(100) == 0
    assert not Workload(input_len=100).prefix_caching


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"shared_prefix_len": 1024}, "shorter than input_len"),
        ({"shared_prefix_len": -1}, "shared_prefix_len must be"),
        ({"shared_prefix_len": 1.5}, "shared_prefix_len must be"),
        ({"cached_share": 1.0}, "cached_share must be in [0, 1)"),
        ({"cached_share": -0.1}, "cached_share must be in [0, 1)"),
    ],
)
def test_bad_prefix_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BudsimError, match=message.replace("[", r"\[").replace(")", r"\)")):
        Workload(input_len=1024, **fields).validate()  # type: ignore[arg-type]


def _state(w: Workload, capacity: int, seqs: int = 256, budget: int = 16384) -> ReplicaState:
    s = ReplicaState(kv_capacity=capacity, max_num_seqs=seqs, budget=budget)
    s.shared, s.cache = w.shared_prefix_len, w.cached_tokens
    return s


def _run(policy: Scheduler, s: ReplicaState, steps: int) -> None:
    for _ in range(steps):
        step_without_time(policy, s)


def test_only_the_uncached_tokens_are_prefilled_and_they_attend_to_the_cached_ones() -> None:
    w = Workload(input_len=4096, shared_prefix_len=3072)
    s = _state(w, capacity=10**6)
    s.waiting.append(Cohort(1, 4096, 8, 0.0, 4096, uid=s.new_uid()))
    policy = VllmV1()
    policy.admit(s)
    assert s.pf_pending == 1024
    batch = policy.compose(s)
    assert (batch.prefill_tokens, batch.prefill_seqs, batch.completed) == (1024, 1, 1)
    # each new token attends to the 3,072 cached ones and the new ones before it
    assert batch.prefill_pairs == pytest.approx(1024 * (3072 + (1024 + 1) / 2))


@pytest.mark.parametrize(
    ("policy_type", "alone", "together"), [(VllmV1, 2, 7), (TrtllmNoEvict, 2, 6)]
)
def test_a_shared_prefix_is_held_once_so_more_requests_run(
    policy_type: type[Scheduler], alone: int, together: int
) -> None:
    """10,000 KV tokens, prompts of 4,000 and 100 out. Without sharing two are admitted. With 3,000
    of each prompt shared, vLLM admits as many prompts as their own 1,000 tokens fit beside the
    prefix (7), TRT-LLM as many whole requests (own 1,100 tokens: 6)."""
    for prefix, expected in ((0, alone), (3000, together)):
        w = Workload(input_len=4000, output_len=100, shared_prefix_len=prefix)
        s = _state(w, capacity=10_000)
        policy = TrtllmNoEvict(prefix) if policy_type is TrtllmNoEvict else VllmV1()
        for _ in range(16):  # one cohort each: any of them can be preempted
            s.waiting.append(Cohort(1, 4000, 100, 0.0, 4000, uid=s.new_uid()))
        policy.admit(s)
        assert s.running == expected


def test_a_preempted_request_recomputes_all_but_the_shared_prefix() -> None:
    """Too little KV for two requests' growth: vLLM preempts the newer one, whose recompute skips
    the shared prefix the other keeps cached."""
    w = Workload(input_len=1000, output_len=2000, shared_prefix_len=600)
    s = _state(w, capacity=3000)
    policy = VllmV1()
    old, new = (Cohort(1, 1000, 2000, 0.0, 1000, uid=s.new_uid()) for _ in range(2))
    s.waiting.extend([old, new])
    policy.admit(s)
    assert s.pf_pending == 2 * 400  # both prompts, less the shared prefix
    while not s.preemptions:
        _run(policy, s, 1)
    assert new.uid not in s.decoding and new.produced > 0
    # its prompt is now its input plus what it generated; all but the shared prefix is recomputed
    assert new.prompt == 1000 + new.produced
    assert s.waiting[0] is new and s.cached(new) == 600
    roomy = _state(w, capacity=10**6)
    roomy.waiting.append(new)
    policy.admit(roomy)
    assert roomy.pf_pending == new.prompt - 600


def test_prefix_caching_cuts_ttft_and_never_slows_a_prediction() -> None:
    dep = Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine="vllm", tp=1)
    base = predict_physics(dep, Workload(input_len=4096, output_len=256, concurrency=32))
    shared = predict_physics(
        dep, Workload(input_len=4096, output_len=256, concurrency=32, shared_prefix_len=3072)
    )
    history = predict_physics(
        dep, Workload(input_len=4096, output_len=256, concurrency=32, cached_share=0.75)
    )
    assert base.ttft_ms_mean is not None and shared.ttft_ms_mean is not None
    assert history.ttft_ms_mean is not None
    # a quarter of the prompt is computed: TTFT falls by more than half, not to a quarter
    # (the new tokens still attend to the whole prompt, and the front end is unchanged)
    assert shared.ttft_ms_mean < 0.5 * base.ttft_ms_mean
    assert shared.ttft_ms_mean > 0.25 * base.ttft_ms_mean
    # the same number of cached tokens costs the same where the KV cache does not bind
    assert history.ttft_ms_mean == pytest.approx(shared.ttft_ms_mean)
    assert shared.output_tok_s is not None and base.output_tok_s is not None
    assert shared.output_tok_s > base.output_tok_s
