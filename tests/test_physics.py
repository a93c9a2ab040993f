"""Memory plan, step time and serving simulator: hand-checked numbers and physical limits."""

from __future__ import annotations

import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.memory import plan_memory, weights_bytes_per_device
from budsim.core.predict import predict, predict_physics, resolve, step_model
from budsim.core.simulator import request_overhead_s

LLAMA8 = "meta-llama/Llama-3.1-8B"
LLAMA70 = "meta-llama/Llama-3.1-70B"
DSV3 = "deepseek-ai/DeepSeek-V3"


def dep(model: str = LLAMA8, hardware: str = "h100-sxm", **kw: object) -> Deployment:
    return Deployment(model=model, hardware=hardware, engine=str(kw.pop("engine", "vllm")), **kw)  # type: ignore[arg-type]


def test_llama8b_weights_and_kv_plan_by_hand() -> None:
    r = resolve(dep())
    plan = plan_memory(r.model, r.device, r.engine, r.deployment, context_len=2048)
    # 8.03 B params in bf16 = 16.06 GB on one device (80 GiB = 85.9 GB of HBM)
    assert plan.weights_gb == pytest.approx(16.06, rel=0.01)
    # KV per token: 32 layers x 2 (K, V) x 8 heads x 128 dims x 2 bytes = 131072 B
    assert plan.kv_bytes_per_token == pytest.approx(131072, rel=1e-6)
    budget = 85.9 * 0.9
    expected_kv = budget - plan.weights_gb - plan.activation_gb - plan.overhead_gb
    assert plan.kv_cache_gb == pytest.approx(expected_kv, rel=1e-6)
    assert plan.max_concurrency == int(plan.kv_cache_gb * 1e9 // (131072 * 2048))
    assert plan.fits


def test_tp_shards_weights_and_kv() -> None:
    one = resolve(dep(LLAMA70, tp=4))
    two = resolve(dep(LLAMA70, tp=8))
    w4 = weights_bytes_per_device(one.model, one.deployment)
    w8 = weights_bytes_per_device(two.model, two.deployment)
    assert w8 == pytest.approx(w4 / 2, rel=1e-6)
    p4 = plan_memory(one.model, one.device, one.engine, one.deployment, 4096)
    p8 = plan_memory(two.model, two.device, two.engine, two.deployment, 4096)
    assert p8.kv_bytes_per_token == pytest.approx(p4.kv_bytes_per_token / 2)


def test_mla_latent_is_not_sharded_by_tp() -> None:
    r = resolve(dep(DSV3, hardware="h200-sxm", tp=8))
    plan = plan_memory(r.model, r.device, r.engine, r.deployment, 1024)
    # every TP rank keeps the whole latent: 61 layers x (512 + 64) x 2 bytes
    assert plan.kv_bytes_per_token == pytest.approx(61 * 576 * 2, rel=1e-6)


def test_fp8_weights_and_kv_halve_their_memory() -> None:
    base = resolve(dep(LLAMA70, tp=4))
    fp8 = resolve(dep(LLAMA70, tp=4, weight_dtype="fp8", kv_dtype="fp8"))
    wb = weights_bytes_per_device(base.model, base.deployment)
    wf = weights_bytes_per_device(fp8.model, fp8.deployment)
    emb = base.model.embedding_params / 4 * 2
    assert wf - emb / 2 == pytest.approx((wb - emb) / 2 + emb / 2, rel=1e-6)
    pb = plan_memory(base.model, base.device, base.engine, base.deployment, 1024)
    pf = plan_memory(fp8.model, fp8.device, fp8.engine, fp8.deployment, 1024)
    assert pf.kv_bytes_per_token == pytest.approx(pb.kv_bytes_per_token / 2)
    assert pf.max_concurrency > pb.max_concurrency


def test_model_that_cannot_fit_is_reported() -> None:
    pred = predict(dep(LLAMA70, hardware="l4"), Workload(input_len=128, output_len=16))
    assert not pred.fits
    assert pred.ttft_ms_mean is None
    assert pred.memory is not None and "weights need" in pred.memory.reason


@pytest.mark.parametrize(
    ("model", "hardware", "tp", "dtype"),
    [
        (LLAMA8, "h100-sxm", 1, "bf16"),
        (LLAMA70, "h100-sxm", 4, "fp8"),
        (LLAMA8, "a100-sxm-80gb", 1, "bf16"),
        (DSV3, "h200-sxm", 8, "auto"),
        (LLAMA8, "gaudi2", 1, "bf16"),
        (LLAMA8, "xeon-8480", 1, "bf16"),
    ],
)
def test_decode_step_never_beats_reading_the_weights(
    model: str, hardware: str, tp: int, dtype: str
) -> None:
    d = dep(model, hardware, tp=tp, weight_dtype=dtype)
    r = resolve(d)
    step = step_model(d)
    weights = weights_bytes_per_device(r.model, r.deployment)
    floor = weights / (r.device.memory_bw_gbs * 1e9)
    for batch in (1, 8, 64):
        t = step(batch, batch * 1024, 0, 0.0, 0).total
        if r.model.is_moe and batch < 64:
            # a small MoE batch touches only some experts: the floor is the dense part
            continue
        assert t >= floor, (batch, t, floor)


def test_prefill_never_beats_peak_compute() -> None:
    d = dep(LLAMA8)
    r = resolve(d)
    tokens = 8192
    flops = 2 * r.model.active_params * tokens
    t = step_model(d)(0, 0, tokens, tokens * tokens / 2, 1).total
    assert t >= flops / (r.device.peak_tflops("bf16") * 1e12)


def test_static_batch_of_one_is_ttft_plus_decodes() -> None:
    w = Workload(scenario="static", batch_size=1, input_len=512, output_len=64)
    p = predict_physics(dep(), w)
    assert p.e2e_s_max is not None and p.ttft_ms_mean is not None and p.tpot_ms_mean is not None
    assert p.e2e_s_max == pytest.approx(p.ttft_ms_mean / 1e3 + 63 * p.tpot_ms_mean / 1e3, rel=1e-3)
    assert p.output_tok_s == pytest.approx(64 / p.e2e_s_max, rel=1e-3)


def test_kv_capacity_bounds_the_running_batch() -> None:
    # a tiny memory fraction leaves room for only a few long sequences: the rest must queue
    small = dep(gpu_memory_utilization=0.3)
    r = resolve(small)
    plan = plan_memory(r.model, r.device, r.engine, r.deployment, 8192 + 512)
    assert 0 < plan.max_concurrency < 64
    w = Workload(scenario="static", batch_size=64, input_len=8192, output_len=512)
    roomy = predict_physics(dep(), w)
    tight = predict_physics(small, w)
    assert tight.e2e_s_max > roomy.e2e_s_max * 1.5  # type: ignore[operator]


def test_rate_scenario_throughput_follows_arrivals_when_unsaturated() -> None:
    w = Workload(scenario="rate", rate=2.0, input_len=256, output_len=64, num_requests=300)
    p = predict_physics(dep(), w)
    assert p.requests_per_s == pytest.approx(2.0, rel=0.15)


def test_replicas_multiply_throughput() -> None:
    w = Workload(scenario="concurrency", concurrency=16, input_len=512, output_len=128)
    one = predict_physics(dep(), w)
    two = predict_physics(
        dep(replicas=2),
        Workload(scenario="concurrency", concurrency=32, input_len=512, output_len=128),
    )
    assert two.output_tok_s == pytest.approx(2 * one.output_tok_s, rel=0.02)  # type: ignore[operator]
    assert two.devices == 2


def test_unsupported_quantisation_is_refused() -> None:
    with pytest.raises(BudsimError, match="cannot run"):
        predict(dep(hardware="gaudi2", weight_dtype="int4"), Workload(input_len=8, output_len=8))
    with pytest.raises(BudsimError, match="does not run on hpu"):
        predict(dep(hardware="gaudi2", engine="sglang"), Workload(input_len=8, output_len=8))


def test_tp_must_divide_heads_for_vllm() -> None:
    with pytest.raises(BudsimError, match="must divide"):
        predict(dep(tp=3), Workload(input_len=8, output_len=8))


def test_sglang_pads_heads_that_tp_does_not_divide() -> None:
    # 32 heads over tp=3: each device computes ceil(32 / 3) = 11 heads (one padded)
    step = step_model(dep(engine="sglang", tp=3))
    assert {op.heads for op in step.ops.attention} == {11}
    pred = predict_physics(dep(engine="sglang", tp=3), Workload(input_len=64, output_len=8))
    assert pred.fits and pred.ttft_ms_mean


# derandomize: CI must not find a new example the developer never saw
PROPS = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


@PROPS
@given(
    c=st.integers(1, 200),
    extra=st.integers(1, 200),
    isl=st.sampled_from([128, 1024, 4096]),
    osl=st.sampled_from([16, 256]),
    engine=st.sampled_from(["vllm", "sglang", "trtllm"]),
)
def test_more_concurrency_never_lowers_tpot(
    c: int, extra: int, isl: int, osl: int, engine: str
) -> None:
    d = dep(engine=engine)
    lo = predict_physics(d, Workload(concurrency=c, input_len=isl, output_len=osl))
    hi = predict_physics(d, Workload(concurrency=c + extra, input_len=isl, output_len=osl))
    # Once the KV cache is full the running batch stops growing and TPOT plateaus; which requests
    # wait or are preempted then moves the mean by a few tenths of a percent either way.
    assert hi.tpot_ms_mean >= lo.tpot_ms_mean * 0.99  # type: ignore[operator]


@PROPS
@given(
    c=st.integers(1, 64),
    isl=st.integers(16, 8000),
    extra=st.integers(1, 8000),
    engine=st.sampled_from(["vllm", "sglang", "trtllm"]),
)
def test_longer_input_never_speeds_up_requests(c: int, isl: int, extra: int, engine: str) -> None:
    d = dep(engine=engine)
    short = predict_physics(d, Workload(concurrency=c, input_len=isl, output_len=32))
    long = predict_physics(d, Workload(concurrency=c, input_len=isl + extra, output_len=32))
    # More prompt is more work: the mean request latency and the slowest first tokens never drop
    # (0.5 % allows for float noise in the closed loop's steady-state shortcut).
    assert long.e2e_s_mean >= short.e2e_s_mean * 0.995  # type: ignore[operator]
    assert long.ttft_ms_p99 >= short.ttft_ms_p99 * 0.995  # type: ignore[operator]
    if c == 1:
        assert long.ttft_ms_mean >= short.ttft_ms_mean  # type: ignore[operator]
    # The *mean* TTFT of c > 1 may drop: when c prompts just overflow the token budget, the closed
    # loop's waves split differently and more requests get a prefill step of their own (c=3,
    # 3734 -> 4102 tokens on vLLM lowers it 26 % while the p99 rises). A real scheduler does too.


def test_mean_ttft_can_drop_when_waves_split() -> None:
    """The case behind the comment above, pinned so that a change to it is noticed (a finite run
    of 64 requests from the load generator's burst, where the waves come from)."""
    d = dep(engine="vllm")
    short = predict_physics(
        d, Workload(concurrency=3, input_len=3734, output_len=32, num_requests=64)
    )
    long = predict_physics(
        d, Workload(concurrency=3, input_len=4102, output_len=32, num_requests=64)
    )
    assert long.ttft_ms_mean < short.ttft_ms_mean  # type: ignore[operator]
    assert long.ttft_ms_p99 > short.ttft_ms_p99  # type: ignore[operator]
    assert long.e2e_s_mean > short.e2e_s_mean  # type: ignore[operator]


def test_an_idle_engine_starts_on_the_first_request_alone() -> None:
    """Requests sent at once reach the scheduler one after another: an idle engine prefills the
    first alone and the rest in the next step, so two clients' TTFTs differ by about one step.
    (Tokens reported as they are computed here: see test_steady for the overlap scheduler's
    one-step delay.)"""
    from budsim.core.simulator import weighted_summary

    res, _ = _simulate("trtllm", 2, 3188, 32, False, num_requests=64, late=False)
    mean, _, slowest = weighted_summary(res.ttft)  # type: ignore[attr-defined]
    first = min(res.ttft.values)  # type: ignore[attr-defined]
    d = dep(engine="trtllm")
    alone = step_model(d)(0, 0, 3188, 3188 * 3189 / 2, 1).total
    extra = request_overhead_s(resolve(d).engine, 3188)
    assert first == pytest.approx(alone + extra, rel=1e-6)
    assert slowest > first + alone * 0.5
    assert first < mean < slowest


def test_expert_parallelism_across_nodes_pays_the_scale_out_network() -> None:
    """EP over two H100 nodes sends the tokens' hidden states over the scale-out network (50 GB/s
    per GPU in the catalog), EP inside one node over NVLink: the same tokens per rank cost more
    communication across nodes, and more with more tokens."""
    two_nodes = step_model(dep(DSV3, engine="sglang", tp=1, dp=16, ep=16))
    one_node = step_model(dep(DSV3, engine="sglang", tp=1, dp=8, ep=8))
    per_rank = 512
    across = two_nodes(16 * per_rank, 16 * per_rank * 1000.0, 0, 0.0, 0).communication
    inside = one_node(8 * per_rank, 8 * per_rank * 1000.0, 0, 0.0, 0).communication
    assert across > 2 * inside > 0
    more = two_nodes(32 * per_rank, 32 * per_rank * 1000.0, 0, 0.0, 0).communication
    assert more > across


def test_a_lone_prompt_under_attention_dp_runs_on_one_rank() -> None:
    """Attention-DP ranks step together and a prompt's chunk runs on one of them: a lone 4,096-token
    prompt on 8 ranks takes far longer than 8 prompts of 512 (one per rank), and less than on one
    GPU holding every expert (its experts still spread over the 8)."""
    qwen = "Qwen/Qwen3-235B-A22B"
    spread = step_model(dep(qwen, "h200-sxm", engine="sglang", dp=8, ep=8))
    single = step_model(dep(qwen, "h200-sxm", engine="sglang"))
    tokens = 4096
    lone = spread(0, 0.0, tokens, tokens * (tokens + 1) / 2, 1).total
    balanced = spread(0, 0.0, tokens, 8 * 512 * 513 / 2, 8).total
    alone = single(0, 0.0, tokens, tokens * (tokens + 1) / 2, 1).total
    assert 2 * balanced < lone < alone


def test_trtllm_reserves_whole_requests_and_never_preempts() -> None:
    """TRT-LLM (GUARANTEED_NO_EVICT) admits a request only when its prompt and whole output fit
    beside the others' reservations; vLLM admits on the prompt alone and preempts as KV grows."""
    from budsim.core.simulator import simulate_serving

    isl, osl, room = 1000, 1000, 10  # a KV cache for exactly ten whole requests
    w = Workload(concurrency=64, input_len=isl, output_len=osl, num_requests=640)
    results = {}
    for engine in ("trtllm", "vllm"):
        d = dep(engine=engine)
        results[engine] = simulate_serving(
            step_model(d),
            resolve(d).engine,
            w,
            kv_capacity_tokens=room * (isl + osl),
            max_num_seqs=256,
            max_num_batched_tokens=8192,
        )
    trt, vllm = results["trtllm"], results["vllm"]
    assert trt.preemptions == 0 and vllm.preemptions > 0
    assert trt.requests == vllm.requests == 640
    # every step runs at most ten sequences, and with 64 clients waiting it runs all ten
    assert 9.5 < trt.mean_batch <= room
    # vLLM squeezes in more prompts than fit to the end, so its batch is larger on average
    assert vllm.mean_batch > room


@pytest.mark.parametrize("engine", ["vllm", "trtllm"])
def test_mean_ttft_grows_with_clients_when_prompts_fill_a_step(engine: str) -> None:
    # eight 1,024-token prompts fill an 8,192-token step exactly: in lockstep waves the loop kept
    # that burst forever and TTFT at 8 clients came out above TTFT at 16
    d = dep("MiniMaxAI/MiniMax-M2.5", "b200", engine=engine, tp=4, weight_dtype="fp8")
    ttft = [
        predict_physics(d, Workload(concurrency=c, input_len=1024, output_len=1024)).ttft_ms_mean
        for c in (4, 8, 16, 32)
    ]
    assert ttft == sorted(ttft), ttft


@PROPS
@given(
    model=st.sampled_from([LLAMA8, LLAMA70, DSV3, "Qwen/Qwen3-235B-A22B", "openai/gpt-oss-120b"])
)
def test_more_tp_never_raises_weights_per_device(model: str) -> None:
    previous = math.inf
    for tp in (1, 2, 4, 8):
        r = resolve(dep(model, "h200-sxm", tp=tp))
        w = weights_bytes_per_device(r.model, r.deployment)
        assert w <= previous
        previous = w


def _finite(c: int) -> int:
    """The requests of the finite runs these tests pin: ten per client, 64 to 4,096."""
    return min(max(10 * c, 64), 4096)


def _simulate(
    engine: str,
    c: int,
    isl: int,
    osl: int,
    shortcuts: bool,
    num_requests: int | None = None,
    late: bool | None = None,
    **kw: object,
) -> tuple[object, int]:
    """(ServingResult, step-time evaluations) of one closed loop on Llama-3.1-8B / H100: a finite
    run of `num_requests`, or steady state (None); `late` overrides whether the engine reports
    tokens a step late."""
    from dataclasses import replace

    from budsim.core.memory import plan_memory
    from budsim.core.simulator import simulate_serving

    d = dep(engine=engine, **kw)
    r = resolve(d)
    step = step_model(d)
    calls = [0]

    def counted(*args: float) -> object:
        calls[0] += 1
        return step(*args)

    plan = plan_memory(r.model, r.device, r.engine, r.deployment, isl + osl)
    engine = r.engine if late is None else replace(r.engine, reports_one_step_late=late)
    res = simulate_serving(
        counted,  # type: ignore[arg-type]
        engine,
        Workload(concurrency=c, input_len=isl, output_len=osl, num_requests=num_requests),
        kv_capacity_tokens=plan.kv_capacity_tokens,
        max_num_seqs=r.deployment.max_num_seqs or 256,
        max_num_batched_tokens=r.deployment.max_num_batched_tokens or 8192,
        shortcuts=shortcuts,
    )
    return res, calls[0]


def _means(res: object) -> list[float]:
    from budsim.core.simulator import weighted_summary

    out = []
    for values in (res.ttft, res.tpot, res.e2e):  # type: ignore[attr-defined]
        out.append(weighted_summary(values)[0])
    out.append(res.requests / res.makespan)  # type: ignore[attr-defined]
    return out


@pytest.mark.parametrize(
    ("engine", "c", "isl", "osl", "tolerance", "kw"),
    [
        # synchronised waves (every prompt of a wave in one prefill step): an exact cycle
        ("vllm", 64, 512, 128, 1e-9, {}),
        ("trtllm", 1, 1024, 256, 1e-9, {}),
        # more clients than sequence slots: requests queue, one wave at a time
        ("sglang", 64, 1024, 256, 1e-9, {"max_num_seqs": 8}),
        # partial prefill chunks drift and never repeat exactly: the steady-wave shortcut
        ("trtllm", 128, 2048, 256, 0.03, {}),
    ],
)
def test_closed_loop_shortcuts_match_the_full_simulation(
    engine: str, c: int, isl: int, osl: int, tolerance: float, kw: dict[str, object]
) -> None:
    full, full_calls = _simulate(engine, c, isl, osl, False, _finite(c), **kw)
    fast, fast_calls = _simulate(engine, c, isl, osl, True, _finite(c), **kw)
    assert fast.requests == full.requests  # type: ignore[attr-defined]
    assert fast.output_tokens == full.output_tokens  # type: ignore[attr-defined]
    for a, b in zip(_means(full), _means(fast), strict=True):
        assert b == pytest.approx(a, rel=tolerance)
    assert fast_calls < full_calls * 0.8  # the shortcut was taken


@pytest.mark.parametrize("engine", ["vllm", "sglang"])
def test_single_token_outputs_finish_at_their_first_token(engine: str) -> None:
    # output_len 1: the prompt's last chunk emits the only token, so each request ends there
    res, _ = _simulate(engine, 16, 700, 1, True, _finite(16))
    full, _ = _simulate(engine, 16, 700, 1, False, _finite(16))
    from budsim.core.simulator import weighted_summary

    assert res.requests == full.requests == 160  # type: ignore[attr-defined]  # ten per client
    assert res.output_tokens == res.requests  # type: ignore[attr-defined]
    assert len(res.tpot) == 0  # type: ignore[attr-defined]
    ttft, e2e = weighted_summary(res.ttft), weighted_summary(res.e2e)  # type: ignore[attr-defined]
    assert ttft[0] == pytest.approx(e2e[0]) and ttft[2] == pytest.approx(e2e[2])
    assert _means(res)[0] == pytest.approx(_means(full)[0], rel=0.03)  # steady-wave tolerance


def test_weighted_summary_is_the_summary_of_the_expanded_requests() -> None:
    from budsim.core.simulator import Samples, weighted_summary

    s = Samples()
    for value, count in ((3.0, 2), (1.0, 1), (2.0, 5), (10.0, 2)):
        s.add(value, count)
    # by hand: the ten requests are 1, 2 x5, 3 x2, 10 x2 -> mean 37/10; nearest-rank p50 is the
    # 5th smallest (2), p90 the 9th (10), p99 the 10th (10); max 10
    mean, (p50, p90, p99), top = weighted_summary(s)
    assert mean == pytest.approx(3.7)
    assert (p50, p90, p99, top) == (2.0, 10.0, 10.0, 10.0)
    assert s.mean(0, 2) == pytest.approx((3.0 * 2 + 1.0) / 3)
    # two more laps of the last two samples: the same values, counted three times
    s.repeat_since(2, 2)
    assert len(s) == 4 and s.counts == [2, 1, 15, 6]
    mean, (p50, _, _), _ = weighted_summary(s)
    assert mean == pytest.approx((6 + 1 + 30 + 60) / 24) and p50 == 2.0
    assert math.isnan(weighted_summary(Samples())[0])


@pytest.mark.parametrize(
    "model",
    [
        "google/gemma-4-31B-it-NVFP4",  # ModelOpt keeps excluded modules at 16 bit
        "nvidia/NVIDIA-Nemotron-3-Nano-30B-A3B-NVFP4",
        "openai/gpt-oss-120b",  # MXFP4 experts, 16-bit attention
        "meta-llama/Llama-3.1-8B",
    ],
)
def test_memory_plan_counts_the_checkpoint_as_stored(model: str) -> None:
    """Served in its own dtype, a checkpoint occupies the bytes it stores (what `analyze` reports),
    shared over the devices as its parameters are: the plan once counted every role at the
    dominant dtype, 19.3 of Gemma-4-31B-IT-NVFP4's 31.5 GB, and overstated the KV room."""
    one = resolve(Deployment(model=model, hardware="b200", engine="vllm"))
    stored = one.model.weight_bytes("auto")
    assert weights_bytes_per_device(one.model, one.deployment) == pytest.approx(stored, rel=1e-9)
    two = resolve(Deployment(model=model, hardware="b200", engine="vllm", tp=2))
    half = weights_bytes_per_device(two.model, two.deployment)
    assert half == pytest.approx(0.5 * stored, rel=1e-9)  # every role, embeddings too, over TP
