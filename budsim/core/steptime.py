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
        self.ep_bw = (inter_bw if spans else device.scaleup_bw_gbs * 1e9) * A2A_EFFICIENCY
        self.ep_lat = inter_lat if spans else intra_lat
        pp_spans = dep.devices_per_replica > per_node
        self.pp_bw = inter_bw if pp_spans else device.scaleup_bw_gbs * 1e9
        self.pp_lat = inter_lat if pp_spans else intra_lat
        self.fixed = engine.step_overhead_ms * 1e-3 + (
            engine.per_layer_launch_us * 1e-6 * model.num_layers / pp
        )
        self._memo: dict[float, tuple[float, float, float, float]] = {}

    @staticmethod
    def _roof(
        rl: Roofline, work: float, rows: float, byts: float, peak: float, bw: float
    ) -> tuple[float, float]:
        """(compute seconds, memory seconds) of one operator on the fitted roofline."""
        if rows <= 0:
            return 0.0, 0.0
        eta = rl.eta_max * rows / (rows + rl.half_rows)
        return work / (peak * eta), byts / (bw * rl.eta_mem)

    def _gemm(self, rl: Roofline, rows: float, params: float, wb: float) -> tuple[float, float]:
        if params <= 0 or rows <= 0:
            return 0.0, 0.0
        byts = params * wb + rows * self.hidden * 4 * ACT_BYTES
        return self._roof(rl, 2.0 * rows * params, rows, byts, self.peak, self.bw)

    def _token_ops(self, tokens_in: float) -> tuple[float, float, float, float]:
        """(compute, memory, communication, latency) of the operators that depend only on the
        number of tokens in the step: projections, FFN or experts, norms and collectives.

        They are the bulk of a step and the simulator revisits the same token counts often, so they
        are memoised per replica."""
        hit = self._memo.get(tokens_in)
        if hit is not None:
            return hit
        dep, eff = self.dep, self.eff
        pp, dp, tp = dep.pp, dep.dp, dep.tp
        tokens = tokens_in / (pp * dp)  # per attention rank per micro-batch
        stage_tokens = tokens_in / pp  # all DP ranks of a stage (MoE sees these)
        bw = self.bw
        gemm_rl = self.gemm_rl
        compute = memory = comm = latency = 0.0
        for g in self.groups:
            # Each op costs max(compute, memory) plus its latency; the larger side names the bottleneck.
            ops: list[tuple[float, float]] = [
                self._gemm(gemm_rl, tokens, g.attn_params, self.wb_attn)
            ]
            lat = 2 * gemm_rl.lat_us  # QKV and output projections
            if g.dense_params:
                ops.append(self._gemm(gemm_rl, tokens, g.dense_params, self.wb_dense))
                lat += 2 * gemm_rl.lat_us
            layer_comm = 0.0
            if g.num_experts:
                rl = eff.moe
                assignments = stage_tokens * g.top_k
                active = 1.0 - (1.0 - g.top_k / g.num_experts) ** stage_tokens
                ops.append(
                    self._roof(
                        rl,
                        2.0 * (assignments / dep.ep) * g.expert_params,
                        assignments / g.num_experts,
                        g.experts_local * active * g.expert_params * self.wb_expert,
                        self.peak,
                        bw,
                    )
                )
                lat += rl.lat_us
                group = tp * dp
                if dep.ep > 1:
                    # all-to-all dispatch + combine: each device sends its own share of the
                    # stage's tokens (tokens are replicated across TP ranks, so 1/(tp*dp) each)
                    msg = stage_tokens / group * g.top_k * self.hidden * ACT_BYTES
                    layer_comm += 2 * (self.ep_lat + msg * (dep.ep - 1) / dep.ep / self.ep_bw)
                elif dp > 1:
                    # experts TP-sharded over all ranks: gather tokens, reduce-scatter results
                    msg = stage_tokens * self.hidden * ACT_BYTES
                    layer_comm += self.ep_lat + 2 * (group - 1) / group * msg / self.ep_bw
            # norms, rotary, residual adds, activation: streaming activations
            ops.append((0.0, tokens * self.hidden * 12 * ACT_BYTES / (bw * gemm_rl.eta_mem)))
            lat += 4 * eff.elementwise_lat_us
            if tp > 1:
                # one all-reduce after attention, one after the FFN (for MoE layers whose experts
                # are spread over EP or DP ranks the second is the expert communication above)
                msg = tokens * self.hidden * ACT_BYTES
                all_reduce = self.tp_lat + 2 * (tp - 1) / tp * msg / self.tp_bw
                spread = g.num_experts and (dep.ep > 1 or dp > 1)
                layer_comm += (1 if spread else 2) * all_reduce
            for c, m in ops:
                if c > m:
                    compute += c * g.count
                else:
                    memory += m * g.count
            comm += layer_comm * g.count
            latency += lat * 1e-6 * g.count
        if pp > 1:
            comm += (pp - 1) / pp * (self.pp_lat + tokens * self.hidden * ACT_BYTES / self.pp_bw)
        out = (compute, memory, comm, latency)
        if len(self._memo) > 4096:  # bounded: thousands of step models may be cached at once
            self._memo.clear()
        self._memo[tokens_in] = out
        return out

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
        dep, eff = self.dep, self.eff
        pp = dep.pp
        micro = pp * dep.dp  # the batch is split over PP micro-batches and attention-DP ranks
        compute, memory, comm, latency = self._token_ops(n_decode + prefill_tokens)
        tokens = (n_decode + prefill_tokens) / micro
        dec_seqs = n_decode / micro
        mean_ctx = decode_ctx / n_decode if n_decode else 0.0
        pairs = prefill_pairs / micro
        attn_peak = self.peak_bf16 * eff.attn_context_eta
        dec_bw = self.bw * eff.attn_decode_eta_mem
        for g in self.groups:
            # attention itself: depends on the sequences and their contexts, not only on tokens
            if g.linear:
                c = 4.0 * tokens * g.heads * g.dec_dims * 64 / attn_peak
                m = dec_seqs * g.state_bytes * 2 / dec_bw
                if c > m:
                    compute += c * g.count
                else:
                    memory += m * g.count
                latency += eff.attn_decode_lat_us * 1e-6 * g.count
                continue
            if dec_seqs:
                ctx = min(mean_ctx, g.window)
                c = 2.0 * g.heads * g.dec_dims * dec_seqs * ctx / attn_peak
                m = dec_seqs * ctx * g.kv_bytes_tok / dec_bw
                if c > m:
                    compute += c * g.count
                else:
                    memory += m * g.count
                latency += eff.attn_decode_lat_us * 1e-6 * g.count
            if pairs:
                capped = pairs if g.window == math.inf else min(pairs, tokens * g.window)
                c = 2.0 * g.heads * g.pf_dims * capped / attn_peak
                if c > 0:
                    compute += c * g.count
                latency += eff.attn_context_lat_us * 1e-6 * g.count
        # LM head for the sequences that emit a token this step (on the last stage only)
        c, m = self._gemm(
            self.dense_rl, (n_decode + prefill_seqs) / micro, self.lm_head_params, EMBEDDING_BYTES
        )
        if c > m:
            compute += c / pp
        else:
            memory += m / pp
        overhead = (
            self.fixed / pp
            + self.engine.per_seq_overhead_us * 1e-6 * (n_decode + prefill_seqs) / micro
            + latency
        )
        # Every micro-batch passes through every stage: one iteration takes pp stage-times.
        return StepTime(
            total=(compute + memory + comm + overhead) * pp,
            compute=compute * pp,
            memory=memory * pp,
            communication=comm * pp,
            overhead=overhead * pp,
        )
