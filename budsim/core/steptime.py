"""StepTime: the duration of one engine iteration (a prefill chunk plus a batch of decodes).

One iteration of one replica is a sum of operators per layer (projections, attention, FFN or experts,
norms), the LM head, collective communication (TP all-reduce, EP all-to-all, PP hops) and the engine's
fixed CPU cost. Each operator costs lat + max(flops / (peak * eta_c), bytes / (bandwidth * eta_m)), where
eta_c grows with the rows a GEMM sees (small GEMMs leave tensor cores idle). The eta curves and
latencies come from budsim.core.efficiency (fitted to measured kernels where the hardware is covered).

`StepTimeModel` is built once per deployment, so the simulator can call it per event cheaply.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import NamedTuple

from .deployment import Deployment
from .dtypes import COMPUTE_DTYPE, kv_bytes
from .efficiency import Efficiency, Roofline, efficiency_for
from .engines import EngineProfile
from .hardware import Device
from .memory import (
    EMBEDDING_BYTES,
    body_bytes_per_param,
    kv_shard,
    resolve_kv_dtype,
    resolve_weight_dtype,
)
from .model import ModelSpec

ACT_BYTES = 2.0
STATE_BYTES = 4.0  # linear-attention / SSM state is kept in fp32
INTER_NODE_LATENCY_FACTOR = 2.5
A2A_EFFICIENCY = 0.6  # all-to-all reaches a lower share of link bandwidth than all-reduce


class StepTime(NamedTuple):
    """One iteration's duration (seconds) and where it went.

    A NamedTuple rather than a frozen dataclass: the simulator builds one per event, and a tuple is
    several times cheaper to create."""

    total: float
    compute: float
    memory: float
    communication: float
    overhead: float

    @property
    def bottleneck(self) -> str:
        parts = {
            "compute": self.compute,
            "memory": self.memory,
            "communication": self.communication,
            "overhead": self.overhead,
        }
        return max(parts, key=parts.__getitem__)


@dataclass(frozen=True)
class _Group:
    count: float  # layers of this kind in one pipeline stage
    attn_params: float  # per device
    dense_params: float  # per device
    expert_params: float  # one expert's params per device (expert-TP share)
    experts_local: float  # experts per EP rank
    num_experts: int
    top_k: int
    heads: float  # query heads per device
    pf_dims: float  # (qk + v) per head for prefill attention
    dec_dims: float  # (qk + v) per head for decode attention
    kv_bytes_tok: float  # KV bytes per token per device
    window: float  # math.inf for full attention
    linear: bool
    state_bytes: float  # recurrent state bytes per sequence per device


class StepTimeModel:
    """Step time of one replica of `dep`, precomputed for fast repeated calls."""

    def __init__(
        self, model: ModelSpec, device: Device, engine: EngineProfile, dep: Deployment
    ) -> None:
        self.model, self.device, self.engine, self.dep = model, device, engine, dep
        self.eff: Efficiency = efficiency_for(device, engine.id)
        wdtype = resolve_weight_dtype(model, dep.weight_dtype)
        cdtype = COMPUTE_DTYPE.get(wdtype, "bf16")
        self.peak = device.peak_tflops(cdtype) * 1e12
        self.gemm_rl: Roofline = self.eff.gemm_for(cdtype)
        self.dense_rl: Roofline = self.eff.gemm_for("bf16")  # LM head stays 16-bit
        self.peak_bf16 = device.peak_tflops("bf16") * 1e12
        self.bw = device.memory_bw_gbs * 1e9
        self.wb_attn = body_bytes_per_param(model, wdtype, "attn")
        self.wb_dense = body_bytes_per_param(model, wdtype, "dense")
        self.wb_expert = body_bytes_per_param(model, wdtype, "experts")
        kvb = kv_bytes(resolve_kv_dtype(dep.kv_dtype))
        tp, dp, pp = dep.tp, dep.dp, dep.pp
        group_size = tp * dp
        moe_tp = group_size / dep.ep
        self.groups: list[_Group] = []
        for layer, count in model.layer_groups:
            pf_qk = getattr(layer, "prefill_qk_dim", None) or layer.qk_dim
            pf_v = getattr(layer, "prefill_v_dim", None) or layer.v_dim
            self.groups.append(
                _Group(
                    count=count / pp,
                    attn_params=layer.attn_params / tp,
                    dense_params=layer.dense_params / tp,
                    expert_params=layer.expert_params / moe_tp,
                    experts_local=layer.num_experts / dep.ep if layer.num_experts else 0.0,
                    num_experts=layer.num_experts,
                    top_k=layer.top_k,
                    # rounded up: engines that pad heads compute the padding too
                    heads=float(max(1, math.ceil(layer.q_heads / tp))),
                    pf_dims=float(pf_qk + pf_v),
                    dec_dims=float(layer.qk_dim + layer.v_dim),
                    kv_bytes_tok=layer.kv_elems_per_token * kvb * kv_shard(layer, tp),
                    window=float(layer.window) if layer.window else math.inf,
                    linear=layer.attention == "linear",
                    state_bytes=layer.state_elems * STATE_BYTES / max(1, min(tp, layer.q_heads)),
                )
            )
        self.hidden = model.hidden_size
        self.lm_head_params = model.hidden_size * model.vocab_size / tp
        # Collectives: inside a node at the measured (or catalog) bus bandwidth; a group that spans
        # nodes runs at the scale-out bandwidth with a longer latency.
        per_node = device.devices_per_node
        intra_bw = (self.eff.allreduce_busbw_gbs or device.scaleup_bw_gbs) * 1e9
        intra_lat = (self.eff.allreduce_alpha_us or device.scaleup_latency_us) * 1e-6
        inter_bw = device.scaleout_bw_gbs * 1e9
        inter_lat = intra_lat * INTER_NODE_LATENCY_FACTOR
        self.tp_bw, self.tp_lat = (intra_bw, intra_lat) if tp <= per_node else (inter_bw, inter_lat)
        spans = group_size > per_node
        self.ep_nodes = math.ceil(group_size / per_node) if spans else 1
        self.ep_bw = (inter_bw if spans else device.scaleup_bw_gbs * 1e9) * A2A_EFFICIENCY
        self.ep_bw_local = device.scaleup_bw_gbs * 1e9 * A2A_EFFICIENCY
        self.ep_lat = inter_lat if spans else intra_lat
        pp_spans = dep.devices_per_replica > per_node
        self.pp_bw = inter_bw if pp_spans else device.scaleup_bw_gbs * 1e9
        self.pp_lat = inter_lat if pp_spans else intra_lat
        self.fixed = engine.step_overhead_ms * 1e-3 + (
            engine.per_layer_launch_us * 1e-6 * model.num_layers / pp
        )
        self._memo: dict[float, tuple[float, float, float, float]] = {}
        self.pp, self.dp = pp, dp
        self.micro = pp * dp  # the batch is split over PP micro-batches and attention-DP ranks
        self._token_coefficients()
        self._attention_coefficients()

    def _attention_coefficients(self) -> None:
        """Fold the per-layer attention and LM-head costs into a few coefficients.

        The simulator calls the model once per event, so the per-call work matters. For softmax
        attention the compute/memory ratio of a layer does not depend on the batch (both grow with
        sequences x context), so which side dominates is known here, and full-attention layers
        collapse to one coefficient per side. Windowed and linear layers keep a per-layer term."""
        eff = self.eff
        attn_peak = self.peak_bf16 * eff.attn_context_eta
        dec_bw = self.bw * eff.attn_decode_eta_mem
        self.dec_compute = self.dec_memory = 0.0  # seconds per (sequence x context token)
        self.pf_compute = 0.0  # seconds per causal (query, key) pair of full-attention layers
        # windowed layers: (window, decode coefficient, decode is compute, prefill coefficient)
        self.windowed: list[tuple[float, float, bool, float]] = []
        self.linear_groups = [g for g in self.groups if g.linear]
        self.dec_latency = self.pf_latency = self.linear_latency = 0.0
        for g in self.groups:
            if g.linear:
                self.linear_latency += eff.attn_decode_lat_us * 1e-6 * g.count
                continue
            c = 2.0 * g.heads * g.dec_dims / attn_peak
            m = g.kv_bytes_tok / dec_bw
            pf = 2.0 * g.heads * g.pf_dims / attn_peak * g.count
            self.dec_latency += eff.attn_decode_lat_us * 1e-6 * g.count
            self.pf_latency += eff.attn_context_lat_us * 1e-6 * g.count
            if g.window != math.inf:
                self.windowed.append((g.window, max(c, m) * g.count, c > m, pf))
                continue
            if c > m:
                self.dec_compute += c * g.count
            else:
                self.dec_memory += m * g.count
            self.pf_compute += pf
        self.attn_peak, self.dec_bw = attn_peak, dec_bw
        # LM head: a GEMM on the fitted roofline is linear in its rows (eta ~ rows / (rows + half)),
        # compute = a + b * rows and memory = c + d * rows
        rl, params = self.dense_rl, self.lm_head_params
        self.lm_compute = (
            2.0 * params * rl.half_rows / (self.peak * rl.eta_max),
            2.0 * params / (self.peak * rl.eta_max),
        )
        self.lm_memory = (
            params * EMBEDDING_BYTES / (self.bw * rl.eta_mem),
            self.hidden * 4 * ACT_BYTES / (self.bw * rl.eta_mem),
        )
        self.per_seq = self.engine.per_seq_overhead_us * 1e-6

    @staticmethod
    def _roof(
        rl: Roofline, work: float, rows: float, byts: float, peak: float, bw: float
    ) -> tuple[float, float]:
        """(compute seconds, memory seconds) of one operator on the fitted roofline."""
        if rows <= 0:
            return 0.0, 0.0
        eta = rl.eta_max * rows / (rows + rl.half_rows)
        return work / (peak * eta), byts / (bw * rl.eta_mem)

    def _token_coefficients(self) -> None:
        """Fold the token-count operators into linear coefficients (see _token_ops).

        A GEMM on the fitted roofline is linear in its rows on each side (compute: eta ~ rows /
        (rows + half), so flops / eta = a + b * rows; memory: weights + activations), and the
        collectives are latency + bytes / bandwidth. Only the experts' cost (the share of experts
        a batch touches) is not linear; those groups keep their own term."""
        dep, eff = self.dep, self.eff
        pp, dp, tp = dep.pp, dep.dp, dep.tp
        rl = self.gemm_rl
        to_c = 2.0 / (self.peak * rl.eta_max)  # compute seconds per (param x row), plus half rows
        to_m = 1.0 / (self.bw * rl.eta_mem)
        act_row = self.hidden * 4 * ACT_BYTES  # activation bytes a GEMM moves per row
        # (compute at 0, compute per token, memory at 0, memory per token), times the layer count
        self._gemms: list[tuple[float, float, float, float]] = []
        self._moe: list[_Group] = []
        streaming = comm0 = comm1 = latency = bulk_gain = 0.0
        for g in self.groups:
            lat = 2 * rl.lat_us  # QKV and output projections
            for params, wb in ((g.attn_params, self.wb_attn), (g.dense_params, self.wb_dense)):
                if params <= 0:
                    continue
                self._gemms.append(
                    (
                        g.count * params * rl.half_rows * to_c,
                        g.count * params * to_c,
                        g.count * params * wb * to_m,
                        g.count * act_row * to_m,
                    )
                )
            if g.dense_params:
                lat += 2 * rl.lat_us
            if g.num_experts:
                self._moe.append(g)
                lat += eff.moe.lat_us
                group = tp * dp
                if dep.ep > 1:
                    # all-to-all dispatch + combine: each device sends its own share of the
                    # stage's tokens (tokens are replicated across TP ranks, so 1/(tp*dp) each)
                    per_token = dp / group * self.hidden * ACT_BYTES
                    copies = g.top_k * (dep.ep - 1) / dep.ep / self.ep_bw
                    comm0 += g.count * 2 * self.ep_lat
                    comm1 += g.count * 2 * per_token * copies
                    if self.ep_nodes > 1:
                        # Across nodes, the throughput dispatch kernels that engines run for
                        # batches with prefill (DeepEP "normal") send a token once to each remote
                        # node holding any of its experts and fan it out over NVLink there, so
                        # the scale-out link carries the expected number of distinct remote nodes
                        # per token rather than top_k copies. Decode batches use the low-latency
                        # kernels, which send one copy per expert.
                        n = self.ep_nodes
                        remote = (n - 1) * (1.0 - (1.0 - 1.0 / n) ** g.top_k)
                        bulk = remote / self.ep_bw + g.top_k / self.ep_bw_local
                        bulk_gain += g.count * 2 * per_token * max(0.0, copies - bulk)
                elif dp > 1:
                    # experts TP-sharded over all ranks: gather tokens, reduce-scatter results
                    per_token = dp * self.hidden * ACT_BYTES / self.ep_bw
                    comm0 += g.count * self.ep_lat
                    comm1 += g.count * 2 * (group - 1) / group * per_token
            # norms, rotary, residual adds, activation: streaming activations (memory-bound)
            streaming += g.count * self.hidden * 12 * ACT_BYTES * to_m
            lat += 4 * eff.elementwise_lat_us
            if tp > 1:
                # one all-reduce after attention, one after the FFN (for MoE layers whose experts
                # are spread over EP or DP ranks the second is the expert communication above)
                spread = g.num_experts and (dep.ep > 1 or dp > 1)
                times = g.count * (1 if spread else 2)
                comm0 += times * self.tp_lat
                comm1 += times * 2 * (tp - 1) / tp * self.hidden * ACT_BYTES / self.tp_bw
            latency += lat * 1e-6 * g.count
        if pp > 1:
            comm0 += (pp - 1) / pp * self.pp_lat
            comm1 += (pp - 1) / pp * self.hidden * ACT_BYTES / self.pp_bw
        self._streaming, self._comm0, self._comm1, self._latency = streaming, comm0, comm1, latency
        self._bulk_comm_gain = bulk_gain  # per token: what steps with prefill save (see above)

    def _rank_ops(self, tokens: float) -> tuple[float, float]:
        """(compute, memory) of the operators one attention rank runs on its own `tokens`
        (projections, dense FFN, norms; not the experts, which see every rank's tokens)."""
        compute = memory = 0.0
        for c0, c1, m0, m1 in self._gemms:
            c, m = c0 + c1 * tokens, m0 + m1 * tokens
            if c > m:
                compute += c
            else:
                memory += m
        return compute, memory + self._streaming * tokens

    def _token_ops(self, tokens_in: float) -> tuple[float, float, float, float]:
        """(compute, memory, communication, latency) of the operators that depend only on the
        number of tokens in the step: projections, FFN or experts, norms and collectives.

        They are the bulk of a step and the simulator revisits the same token counts often, so they
        are memoised per replica. Each op costs max(compute, memory) plus its latency; the larger
        side names the bottleneck."""
        hit = self._memo.get(tokens_in)
        if hit is not None:
            return hit
        dep = self.dep
        tokens = tokens_in / self.micro  # per attention rank per micro-batch
        compute = memory = 0.0
        if tokens > 0:
            compute, memory = self._rank_ops(tokens)
            stage_tokens = tokens_in / self.pp  # all DP ranks of a stage (MoE sees these)
            for g in self._moe:
                assignments = stage_tokens * g.top_k
                active = 1.0 - (1.0 - g.top_k / g.num_experts) ** stage_tokens
                c, m = self._roof(
                    self.eff.moe,
                    2.0 * (assignments / dep.ep) * g.expert_params,
                    assignments / g.num_experts,
                    g.experts_local * active * g.expert_params * self.wb_expert,
                    self.peak,
                    self.bw,
                )
                if c > m:
                    compute += c * g.count
                else:
                    memory += m * g.count
        out = (compute, memory, self._comm0 + self._comm1 * tokens, self._latency)
        if len(self._memo) > 4096:  # bounded: thousands of step models may be cached at once
            self._memo.clear()
        self._memo[tokens_in] = out
        return out

    @property
    def decode_slope(self) -> float | None:
        """Seconds a decode-only step gains per token of summed decode context, when that is one
        constant (no sliding-window layers): the simulator then prices a run of decode steps
        without evaluating its last step. None otherwise."""
        if self.windowed:
            return None
        return (self.dec_compute + self.dec_memory) / self.micro * self.pp

    def __call__(
        self,
        n_decode: float,
        decode_ctx: float,
        prefill_tokens: float,
        prefill_pairs: float,
        prefill_seqs: float,
    ) -> StepTime:
        """Time of one iteration of the whole replica.

        n_decode: sequences decoding one token; decode_ctx: the sum of their context lengths;
        prefill_tokens: prompt tokens processed; prefill_pairs: causal attention (query, key)
        pairs of those chunks; prefill_seqs: chunks in the step.
        """
        pp, micro = self.pp, self.micro
        ops = self._memo.get(n_decode + prefill_tokens)
        if ops is None:
            ops = self._token_ops(n_decode + prefill_tokens)
        compute, memory, comm, latency = ops
        if prefill_tokens and self._bulk_comm_gain:
            comm -= self._bulk_comm_gain * (n_decode + prefill_tokens) / micro
        tokens = (n_decode + prefill_tokens) / micro  # per rank, spread evenly
        dec_seqs = n_decode / micro
        pairs = prefill_pairs / micro
        if prefill_seqs and self.dp > 1:
            # Attention-DP: each prompt chunk runs on one rank and the ranks step together, so the
            # step waits for the rank with the most chunks (a lone prompt: one rank works, the
            # others idle). The operators above assumed the tokens spread evenly.
            busiest = math.ceil(prefill_seqs / self.dp) * self.dp / prefill_seqs
            if busiest > 1.0:
                extra = prefill_tokens * (busiest - 1.0) / micro
                c_even, m_even = self._rank_ops(tokens)
                c_busy, m_busy = self._rank_ops(tokens + extra)
                compute += c_busy - c_even
                memory += m_busy - m_even
                comm += (self._comm1 - self._bulk_comm_gain) * extra
                pairs *= busiest
        if dec_seqs:
            # full attention: sequences x mean context = the summed context per micro-batch
            ctx_tokens = decode_ctx / micro
            compute += self.dec_compute * ctx_tokens
            memory += self.dec_memory * ctx_tokens
            latency += self.dec_latency
        if pairs:
            compute += self.pf_compute * pairs
            latency += self.pf_latency
        if self.windowed:
            mean_ctx = decode_ctx / n_decode if n_decode else 0.0
            for window, dec, dec_is_compute, pf in self.windowed:
                if dec_seqs:
                    cost = dec * dec_seqs * min(mean_ctx, window)
                    if dec_is_compute:
                        compute += cost
                    else:
                        memory += cost
                if pairs:
                    compute += pf * min(pairs, tokens * window)
        if self.linear_groups:
            latency += self.linear_latency
            for g in self.linear_groups:
                c = 4.0 * tokens * g.heads * g.dec_dims * 64 / self.attn_peak
                m = dec_seqs * g.state_bytes * 2 / self.dec_bw
                if c > m:
                    compute += c * g.count
                else:
                    memory += m * g.count
        # LM head for the sequences that emit a token this step (on the last stage only)
        rows = (n_decode + prefill_seqs) / micro
        if rows > 0:
            c = self.lm_compute[0] + self.lm_compute[1] * rows
            m = self.lm_memory[0] + self.lm_memory[1] * rows
            if c > m:
                compute += c / pp
            else:
                memory += m / pp
        overhead = self.fixed / pp + self.per_seq * rows + latency
        # Every micro-batch passes through every stage: one iteration takes pp stage-times.
        # (tuple.__new__: the NamedTuple's own __new__ is a Python function, once per event)
        return tuple.__new__(
            StepTime,
            (
                (compute + memory + comm + overhead) * pp,
                compute * pp,
                memory * pp,
                comm * pp,
                overhead * pp,
            ),
        )
