"""Disaggregated serving: a prefill pool hands each request's KV cache to a decode pool (xPyD).

`DisaggDeployment` is two `Deployment`s of one model, engine and hardware: the prefill worker's
layout with `replicas` = the prefill workers, and the decode worker's with `replicas` = the decode
workers. A request's TTFT is its front end, its wait in the prefill queue, its prompt's prefill and
the KV handoff; its TPOT is the decode pool's alone. How they are found:

- Prefill: a worker runs prompts as prefill-only steps of up to its token budget, so it serves
  b = max(1, budget // input) prompts a step (rate mu = b / step time). The pool's queue is taken
  as M/D/1 per worker (Poisson arrivals from many clients, deterministic service): the wait is
  rho / (2 mu (1 - rho)) at utilisation rho = X / (P mu).
- KV handoff: the request's whole KV (every layer, at the KV format) moves from the prefill ranks
  to the decode ranks in parallel, over NVLink when the pools share a scale-up domain and over
  the scale-out network otherwise, plus the link's latency; and the handoff's control plane
  (routing the request to a prefill worker and its KV to a decode worker: bootstrap, transfer
  setup, the decode side picking the request up) costs HANDOFF_CONTROL_S per request beside the
  bytes moved.
- Decode: one worker is simulated (`simulate_serving`, the engine's scheduler) with its share of
  the requests in flight, each arriving with its prompt already in its KV cache (all but the last
  prompt token cached): TPOT and its percentiles come from that simulation.
- The two meet in a fixed point. A closed loop of C clients completes X = C / (TTFT + (osl - 1)
  TPOT) requests/s, the decode pool holds X (osl - 1) TPOT of them (Little), and TTFT depends on X
  through the prefill queue; a rate fixes X. Iterated until the decode batch settles.

TTFT percentiles take the prefill queue's wait as M/M/1-shaped around its M/D/1 mean (no wait with
probability 1 - rho, else exponential); end-to-end latency is a mean only. A finite run
(`num_requests`, a closed loop) adds its opening burst: C prompts at once on P prefill workers,
C of its N requests, before the steady state.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from .deployment import Deployment, Workload
from .errors import BudsimError
from .memory import kv_bytes_per_sequence
from .predict import Prediction, predict_physics, resolve, step_model
from .simulator import request_overhead_s
from .steptime import prompt_alone_s

__all__ = ["DisaggDeployment", "PoolTimes", "predict_disagg"]

ITERATIONS = 6  # decode-batch fixed-point rounds (it settles within 2-3 on the checked cases)
# The handoff's fixed control-plane time per request. The measured disaggregated runs (aic_silicon,
# NVIDIA Dynamo with SGLang, TRT-LLM and vLLM) at 8 clients or fewer, where no queue forms, take
# this much longer to their first token than the bytes, the prefill and the front end explain,
# at 1,024-token prompts as at 8,192: the median excess, fitted by benchmarks/disagg_accuracy.py
# (which reports it held out model by model and recomputes it; tests/test_disagg.py checks it).
HANDOFF_CONTROL_S = 0.2087


@dataclass(frozen=True)
class DisaggDeployment:
    prefill: Deployment  # replicas = prefill workers
    decode: Deployment  # replicas = decode workers

    def validate(self) -> None:
        p, d = self.prefill, self.decode
        for name in ("model", "hardware", "engine"):
            if getattr(p, name) != getattr(d, name):
                raise BudsimError(
                    f"the prefill and decode pools must serve one {name}: "
                    f"{getattr(p, name)!r} vs {getattr(d, name)!r}"
                )
        if p.spec_method != "none":
            raise BudsimError(
                "speculative decoding belongs to the decode pool, not the prefill one"
            )
        p.validate()
        d.validate()

    @property
    def devices(self) -> int:
        return self.prefill.devices + self.decode.devices


@dataclass(frozen=True)
class PoolTimes:
    """What a disaggregated prediction is made of (seconds, requests/s)."""

    prefill_alone_s: float  # one prompt on an idle prefill worker
    prefill_rate: float  # requests/s one prefill worker serves at most
    prefill_wait_s: float  # mean wait in the prefill queue
    transfer_s: float  # the KV handoff of one request: its bytes over the links
    handoff_s: float  # the handoff's fixed control-plane time (HANDOFF_CONTROL_S)
    front_end_s: float
    requests_per_s: float
    decode_in_flight: float  # requests one decode worker holds
    burst_s: float = 0.0  # what a finite run's opening burst adds to the mean TTFT


def _prefill_service(dep: Deployment, input_len: int) -> tuple[float, float]:
    """(one prompt alone, prompts/s at full batching) on one prefill worker."""
    r = resolve(dep)
    step = step_model(dep)
    budget = max(1, r.deployment.max_num_batched_tokens or 1)
    alone = prompt_alone_s(step, input_len, budget)  # a prompt longer than the budget: chunks
    per_step = max(1, budget // input_len)
    if per_step == 1:
        return alone, 1.0 / alone
    pairs = input_len * (input_len + 1) / 2.0
    batch = step(0, 0.0, per_step * input_len, per_step * pairs, per_step).total
    return alone, per_step / batch


def _transfer_s(dd: DisaggDeployment, input_len: int) -> float:
    """The KV handoff of one request: its whole KV over the links between the pools' ranks."""
    r = resolve(dd.decode)
    whole = kv_bytes_per_sequence(r.model, replace(r.deployment, tp=1, pp=1), input_len)
    links = min(dd.prefill.devices_per_replica, dd.decode.devices_per_replica)
    device = r.device
    same_domain = dd.devices <= device.devices_per_node
    bw = (device.scaleup_bw_gbs if same_domain else device.scaleout_bw_gbs) * 1e9
    latency = device.scaleup_latency_us * 1e-6 if same_domain else 10e-6
    if bw <= 0:
        raise BudsimError(f"{device.id} has no link bandwidth to move the KV cache between pools")
    return whole / (bw * links) + latency


def _decode_worker(dd: DisaggDeployment, workload: Workload, in_flight: float) -> Prediction:
    """One decode worker with `in_flight` requests whose prompts are already in its KV cache."""
    clients = max(1, math.ceil(in_flight))
    decode = Workload(
        scenario="concurrency",
        concurrency=clients,
        input_len=workload.input_len,
        output_len=workload.output_len,
        cached_share=1.0 - 1e-9,  # all but the last prompt token (Workload.cached_tokens)
    )
    return predict_physics(dd.decode.with_(replicas=1), decode)


def _wait_quantile(q: float, mean_wait: float, rho: float) -> float:
    """The q-quantile of the prefill queue's wait, shaped as M/M/1's: no wait with probability
    1 - rho, else exponential with mean mean_wait / rho (the M/D/1 mean keeps the scale)."""
    if rho <= 0 or mean_wait <= 0 or q <= 1.0 - rho:
        return 0.0
    return -(mean_wait / rho) * math.log((1.0 - q) / rho)


def _mixed_wait_quantile(q: float, share: float, spread: float, wait: float, rho: float) -> float:
    """The q-quantile of a finite run's prefill wait: a `share` of the requests in the opening
    burst (waits spread evenly over [0, spread]), the rest in the steady queue (_wait_quantile's
    shape)."""

    def below(t: float) -> float:
        burst = 1.0 if t >= spread else (t / spread if spread > 0 else 1.0)
        steady = 1.0 - (rho * math.exp(-t * rho / wait) if rho > 0 and wait > 0 else 0.0)
        return share * burst + (1.0 - share) * steady

    lo, hi = 0.0, max(spread, _wait_quantile(q, wait, rho), 1e-9)
    if below(lo) >= q:
        return 0.0
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if below(mid) < q else (lo, mid)
    return hi


def predict_disagg(
    dd: DisaggDeployment, workload: Workload, handoff_s: float = HANDOFF_CONTROL_S
) -> tuple[Prediction, PoolTimes]:
    """The physics prediction of a disaggregated deployment (see the module doc); `handoff_s`:
    the handoff's control-plane time (the benchmark refits it without the rows it scores)."""
    dd.validate()
    workload.validate()
    if workload.scenario == "static":
        raise BudsimError(
            "disaggregated serving is planned for a concurrency or a rate, not a batch"
        )
    if workload.varied_lengths or workload.prefix_caching:
        raise BudsimError(
            "disaggregated serving takes fixed lengths without prefix caching (not modelled yet)"
        )
    if workload.num_requests is not None and workload.scenario != "concurrency":
        raise BudsimError(
            "a finite disaggregated run is modelled for a closed loop (--concurrency)"
        )
    isl, osl = workload.input_len, workload.output_len
    prefill_plan = predict_physics(
        dd.prefill.with_(replicas=1), Workload(concurrency=1, input_len=isl, output_len=1)
    )
    if not prefill_plan.fits:
        raise BudsimError("a prompt does not fit a prefill worker's memory")
    alone, mu = _prefill_service(dd.prefill, isl)
    workers_p, workers_d = dd.prefill.replicas, dd.decode.replicas
    capacity = workers_p * mu
    transfer = _transfer_s(dd, isl)
    front = request_overhead_s(resolve(dd.prefill).engine, isl)

    def ttft(x: float) -> tuple[float, float]:
        rho = x / capacity
        wait = rho / (2.0 * mu * (1.0 - rho)) if rho < 1.0 else math.inf
        return front + alone + wait + transfer + handoff_s, wait

    closed = workload.scenario == "concurrency"
    if not closed and workload.rate >= capacity:
        raise BudsimError(
            f"the prefill pool serves at most {capacity:.3g} req/s; the rate is {workload.rate:g}"
        )
    in_flight = workload.concurrency / workers_d if closed else 1.0
    decode = _decode_worker(dd, workload, in_flight)
    x = workload.rate
    for _ in range(ITERATIONS):
        if not decode.fits or decode.tpot_ms_mean is None:
            raise BudsimError("the decode pool cannot hold the requests (memory)")
        tpot = decode.tpot_ms_mean / 1e3
        if closed:
            # X (TTFT(X) + (osl - 1) TPOT) = C, increasing in X: bisection below the capacity
            lo, hi = 0.0, capacity
            for _ in range(60):
                mid = (lo + hi) / 2
                if mid * (ttft(mid)[0] + (osl - 1) * tpot) < workload.concurrency:
                    lo = mid
                else:
                    hi = mid
            x = lo
        settled = max(1.0, x * (osl - 1) * tpot / workers_d)
        if math.ceil(settled) == math.ceil(in_flight):
            break
        in_flight = settled
        decode = _decode_worker(dd, workload, in_flight)
    first, wait = ttft(x)
    rho = x / capacity
    base = first - wait  # the mean wait is replaced by its quantile
    quantiles = {q: (base + _wait_quantile(q, wait, rho)) * 1e3 for q in (0.5, 0.9, 0.95, 0.99)}
    run = "steady state (disaggregated: TTFT percentiles from the prefill queue, E2E mean only)"
    steady_first = first
    if workload.num_requests is not None:
        # A finite run from a cold start, as a load generator makes it: its C clients send at
        # once, so each prefill worker meets C / P prompts together and the k-th of them waits
        # k / mu; what follows is the steady state (the pools desynchronise the clients: each
        # request leaves the prefill pool at its own time). The burst is C of the N requests.
        share = min(1.0, workload.concurrency / workload.num_requests)
        spread = max(0.0, workload.concurrency / workers_p - 1.0) / mu  # the last one's wait
        first = share * (base + spread / 2.0) + (1.0 - share) * first
        quantiles = {
            q: (base + _mixed_wait_quantile(q, share, spread, wait, rho)) * 1e3
            for q in (0.5, 0.9, 0.95, 0.99)
        }
        run = (
            f"finite run of {workload.num_requests:,} requests (disaggregated: the opening burst "
            "on the prefill pool, then steady state; E2E mean only)"
        )
    tpot_s = (decode.tpot_ms_mean or 0.0) / 1e3
    e2e = first + (osl - 1) * tpot_s
    devices = dd.devices
    pred = Prediction(
        ttft_ms_mean=first * 1e3,
        ttft_ms_p50=quantiles[0.5],
        ttft_ms_p90=quantiles[0.9],
        ttft_ms_p95=quantiles[0.95],
        ttft_ms_p99=quantiles[0.99],
        tpot_ms_mean=decode.tpot_ms_mean,
        tpot_ms_p50=decode.tpot_ms_p50,
        tpot_ms_p90=decode.tpot_ms_p90,
        tpot_ms_p95=decode.tpot_ms_p95,
        tpot_ms_p99=decode.tpot_ms_p99,
        itl_ms_mean=decode.tpot_ms_mean,
        e2e_s_mean=e2e,
        output_tok_s=x * osl,
        total_tok_s=x * (isl + osl),
        requests_per_s=x,
        output_tok_s_per_device=x * osl / devices,
        tok_s_per_user=1.0 / tpot_s if tpot_s else None,
        weights_gb_per_device=decode.weights_gb_per_device,
        kv_cache_gb_per_device=decode.kv_cache_gb_per_device,
        max_concurrency=decode.max_concurrency * workers_d,
        fits=True,
        bottleneck="prefill" if x >= 0.9 * capacity else decode.bottleneck,
        devices=devices,
        run=run,
        basis=decode.basis,
        memory=decode.memory,
    )
    times = PoolTimes(
        alone, mu, wait, transfer, handoff_s, front, x, in_flight, first - steady_first
    )
    return pred, times
