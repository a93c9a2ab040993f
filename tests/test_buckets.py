"""vLLM-on-Gaudi graph buckets: the shapes a step pads to."""

from __future__ import annotations

import pytest

from budsim.core.buckets import BucketedStep, exponential_buckets, gaudi_buckets, pad
from budsim.core.steptime import StepTime


def test_exponential_buckets_follow_vllm_gaudi_worked_example() -> None:
    # vllm_gaudi/extension/bucketing/exponential.py, warmup_range_with_limit's docstring:
    # bmin=128, bstep=128, bmax=2048, num_buckets=10
    assert exponential_buckets(128, 128, 2048, 10) == (
        128,
        256,
        384,
        512,
        640,
        896,
        1152,
        1536,
        2048,
    )


def test_decode_batches_keep_one_and_end_at_the_sequence_cap() -> None:
    b = gaudi_buckets(256, 8192)
    assert b.decode_batch == (1, 2, 4, 8, 14, 24, 42, 78, 140, 256)
    assert b.prompt_query[0] == 128 and b.prompt_query[-1] == 8192
    assert all(q % 128 == 0 for q in b.prompt_query)


@pytest.mark.parametrize(
    ("value", "padded"), [(1, 1), (3, 4), (43, 78), (78, 78), (141, 256), (300, 300), (0, 0)]
)
def test_a_step_pads_to_the_next_bucket_and_runs_unpadded_beyond_the_last(
    value: int, padded: int
) -> None:
    assert pad(gaudi_buckets(256, 8192).decode_batch, value) == padded


class _Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[float, ...]] = []

    def __call__(self, *args: float) -> StepTime:
        self.calls.append(args)
        return StepTime(1.0, 0.0, 1.0, 0.0, 0.0)


def test_bucketed_step_pads_rows_but_not_the_kv_it_reads() -> None:
    base = _Recorder()
    step = BucketedStep(base, gaudi_buckets(256, 8192))
    assert step.decode_slope is None  # the simulator must price every step through the padding
    step(43, 43 * 1000.0, 0, 0, 0)
    step(0, 0, 2 * 600, 2 * 600 * 601 / 2, 2)  # two fresh 600-token chunks -> 768 each
    assert base.calls[0] == (78, 43 * 1000.0, 0, 0, 0)
    n, ctx, tokens, pairs, seqs = base.calls[1]
    assert (n, ctx, seqs) == (0, 0, 2)
    assert tokens == pytest.approx(2 * 768)
    assert pairs == pytest.approx(2 * 600 * 601 / 2 * (768 / 600) ** 2)


def test_padded_rows_do_not_add_host_work() -> None:
    base = _Recorder()
    step = BucketedStep(base, gaudi_buckets(256, 8192), host_row_s=1e-3)
    t = step(43, 43 * 1000.0, 0, 0, 0)
    assert t.total == pytest.approx(1.0 - 35e-3) and t.overhead == pytest.approx(-35e-3)


def test_vllm_on_gaudi_simulates_through_its_buckets_and_cuda_does_not(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from budsim.core import predict as predict_module
    from budsim.core.deployment import Deployment, Workload

    seen: list[object] = []
    real = predict_module.simulate_serving

    def spy(step: object, *args: object, **kwargs: object) -> object:
        seen.append(step)
        return real(step, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(predict_module, "simulate_serving", spy)
    predict_module.clear_simulation_cache()
    workload = Workload(input_len=1000, output_len=100, concurrency=43)
    for hardware in ("gaudi2", "h100-sxm"):
        dep = Deployment(
            model="meta-llama/Llama-3.1-8B", hardware=hardware, engine="vllm", max_num_seqs=256
        )
        predict_module.predict_physics(dep, workload)
    gaudi, cuda = seen
    assert isinstance(gaudi, BucketedStep) and gaudi.buckets == gaudi_buckets(256, 2048)
    assert not isinstance(cuda, BucketedStep)
    # the host work per row is the step model's own per-sequence cost
    assert gaudi.host_row_s == pytest.approx(15e-6)
