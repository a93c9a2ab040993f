"""The roofline cost source: operator times where no measured kernel tables apply.

Every operator costs lat + max(flops / (peak * eta_c), bytes / (bandwidth * eta_m)), with eta_c
growing with the rows a GEMM sees (small GEMMs leave the matrix units idle). NVIDIA devices are
priced from measured kernel tables instead (budsim.core.kernels); this source covers AMD, Gaudi and
CPUs, whose efficiencies are deliberately conservative round numbers per hardware kind (no kernel
measurements of them are available to fit).

`RooflineSource` answers the same calls as `budsim.core.kernels.KernelSource` (the `CostSource`
protocol), so `budsim.core.steptime` prices one operator list either way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import ArrayLike

from .dtypes import COMPUTE_DTYPE, kv_bytes, weight_bytes
from .hardware import Device

A2A_EFFICIENCY = 0.6  # all-to-all reaches a lower share of link bandwidth than all-reduce
INTER_NODE_LATENCY_FACTOR = 2.5


class CostSource(Protocol):
    """Operator times in seconds, vectorised over the array arguments (see budsim.core.kernels)."""

    basis: str

    def gemm(self, m: ArrayLike, n: int, k: int, fmt: str) -> np.ndarray: ...

    def context_attention(
        self,
        batch: ArrayLike,
        isl: ArrayLike,
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> np.ndarray: ...

    def generation_attention(
        self,
        batch: ArrayLike,
        ctx: ArrayLike,
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> np.ndarray: ...

    def moe(
        self,
        tokens: ArrayLike,
        hidden: int,
        inter: int,
        topk: int,
        experts: int,
        moe_tp: int,
        moe_ep: int,
        fmt: str,
        distribution: str = "power_law",
        gated: bool = True,
    ) -> np.ndarray: ...

    def mla_context(
        self, batch: ArrayLike, isl: ArrayLike, heads: int, kv_dtype: str, fmt: str
    ) -> tuple[np.ndarray, bool]: ...

    def mla_generation(
        self, batch: ArrayLike, ctx: ArrayLike, heads: int, kv_dtype: str, fmt: str
    ) -> tuple[np.ndarray, bool]: ...

    def allreduce(self, nbytes: ArrayLike, n: int) -> np.ndarray: ...

    def collective(self, op: str, nbytes: ArrayLike, n: int) -> np.ndarray: ...


@dataclass(frozen=True)
class _Eta:
    gemm: float  # share of the tensor peak a large GEMM reaches
    half_rows: float  # rows at which a GEMM reaches half of that
    memory: float  # share of the memory bandwidth a streaming kernel reaches
    moe: float  # share of the peak the grouped expert GEMMs reach
    attention: float  # share of the 16-bit peak prefill attention reaches
    decode: float  # share of the bandwidth decode attention reaches reading the KV cache
    latency_us: float  # a kernel's fixed cost


# Per hardware kind; round numbers, chosen conservative (see the module docstring), except hpu.
_ETA: dict[str, _Eta] = {
    "cuda": _Eta(0.70, 64.0, 0.78, 0.18, 0.40, 0.75, 4.0),
    "rocm": _Eta(0.55, 96.0, 0.70, 0.12, 0.30, 0.65, 6.0),
    # hpu: fitted (#17) to LLM-Inference-Bench's 244 Gaudi2 rows, DeepSpeed inference with HPU
    # graphs, by benchmarks/gaudi_accuracy.py (deterministic grid over the memory share, the MME
    # share and a kernel's fixed cost; all-rows fit shipped because grouped-CV out-of-fold median
    # APE of whole-batch latency fell 15.1 -> 9.9 %, every held-out architecture better; was
    # 0.72 / 0.60 / 8 us). decode, attention and moe keep their old ratios to memory and gemm.
    # These are DeepSpeed's kernels: vLLM on Gaudi reuses them as the device's efficiency, which
    # holds where vllm-gaudi's kernels (the same Habana fused ops and HPU graphs) match them; its
    # bucketing padding and scheduler costs sit in its engine profile, still unmeasured. The
    # DeepSpeed profile's 2 ms step overhead is a guess the fit is conditional on.
    "hpu": _Eta(0.56, 96.0, 0.88, 0.56 * 0.25, 0.56 * 0.35 / 0.60, 0.88 * 0.65 / 0.72, 6.0),
    "cpu": _Eta(0.45, 16.0, 0.60, 0.30, 0.25, 0.55, 15.0),
}
# Per (engine, hardware kind) where an engine's own kernels are measured to reach other shares
# than the kind's default: only engines without kernel tables (priced by this roofline) have one,
# and no other engine's source reads these (steptime.cost_source).
_ENGINE_ETA: dict[tuple[str, str], _Eta] = {
    # llama.cpp on CUDA: fitted (#17 item 3) to LLM-Inference-Bench's 460 answerable A100/H100/
    # GH200 llama.cpp rows (batch 1, F16 GGUF, ISL = OSL, -b 1-64, layer split) by
    # benchmarks/llamacpp_accuracy.py: fixed grid over the memory-bandwidth share and a kernel's
    # fixed cost (the rows are memory-bound throughout, so the matrix shares stay the defaults),
    # 4-fold GroupKFold by architecture group: whole-run latency median APE 27.9 % physics-only
    # (0.78 / 4 us) -> 8.3 % out of fold, every held-out group better; all-rows fit shipped
    # (4.4 % in sample). Conditional on the llamacpp profile's step overheads (engines.py).
    ("llamacpp", "cuda"): _Eta(0.70, 64.0, 0.58, 0.18, 0.40, 0.75 / 0.78 * 0.58, 12.0),
    # llama.cpp on ROCm: the same fit lands on the grid's floor (memory 0.16 of HBM, 24 us;
    # 66.9 -> 16.5 % out of fold), with MI250 and MI300X pulling apart: no streaming kernel is
    # that slow, so the model lacks a cost (a layer split over an MI250's two GCDs streams one
    # die's bandwidth at a time; mid-2024 HIP kernels for F16 mat-vec). Not shipped: defaults.
    ("llamacpp", "rocm"): _ETA["rocm"],
}
# MLA's cached latent per token (kv_lora_rank + rope dims of DeepSeek-V3 and its relatives)
MLA_LATENT = 576
MLA_VALUE = 512


def _arr(x: ArrayLike) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


class RooflineSource:
    """Operator times on `device` from its datasheet peaks and the efficiencies of its kind."""

    def __init__(self, device: Device, engine: str | None = None) -> None:
        self.device = device
        own = _ENGINE_ETA.get((engine, device.kind)) if engine else None
        self.eta = own or _ETA.get(device.kind, _ETA["cuda"])
        self.bw = device.memory_bw_gbs * 1e9
        self.basis = (
            f"roofline with {engine}'s {device.kind} efficiencies (no kernel tables)"
            if own
            else f"roofline with {device.kind} default efficiencies (no kernel tables)"
        )

    def _peak(self, fmt: str) -> float:
        return self.device.peak_tflops(COMPUTE_DTYPE.get(fmt.replace("_block", ""), "bf16")) * 1e12

    def _op(self, flops: np.ndarray, nbytes: np.ndarray, peak: float, eta: float) -> np.ndarray:
        lat = self.eta.latency_us * 1e-6
        return lat + np.maximum(flops / (peak * eta), nbytes / (self.bw * self.eta.memory))

    def gemm(self, m: ArrayLike, n: int, k: int, fmt: str) -> np.ndarray:
        rows = np.maximum(_arr(m), 1.0)
        wb = weight_bytes(fmt.replace("_block", ""))
        eta = self.eta.gemm * rows / (rows + self.eta.half_rows)
        nbytes = n * k * wb + rows * (n + k) * 2.0
        return self._op(2.0 * rows * n * k, nbytes, self._peak(fmt), eta)

    def context_attention(
        self,
        batch: ArrayLike,
        isl: ArrayLike,
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> np.ndarray:
        b, s = _arr(batch), _arr(isl)
        pairs = s * (s + 1) / 2 if window is None else s * np.minimum(s, window)
        flops = 4.0 * b * heads * head_dim * pairs
        nbytes = b * s * (2 * heads + 2 * kv_heads) * head_dim * 2.0
        return self._op(flops, nbytes, self._peak("bf16"), self.eta.attention)

    def generation_attention(
        self,
        batch: ArrayLike,
        ctx: ArrayLike,
        heads: int,
        kv_heads: int,
        head_dim: int,
        kv_dtype: str,
        window: int | None,
    ) -> np.ndarray:
        b, c = _arr(batch), _arr(ctx)
        if window is not None:
            c = np.minimum(c, window)
        nbytes = b * c * kv_heads * 2 * head_dim * kv_bytes(kv_dtype)
        flops = 4.0 * b * heads * head_dim * c
        lat = self.eta.latency_us * 1e-6
        return lat + np.maximum(
            flops / (self._peak("bf16") * self.eta.attention), nbytes / (self.bw * self.eta.decode)
        )

    def moe(
        self,
        tokens: ArrayLike,
        hidden: int,
        inter: int,
        topk: int,
        experts: int,
        moe_tp: int,
        moe_ep: int,
        fmt: str,
        distribution: str = "power_law",
        gated: bool = True,
    ) -> np.ndarray:
        t = np.maximum(_arr(tokens), 0.0)
        # gate, up and down matrices per expert; up and down only without a gate (relu2 experts)
        per_expert = (3.0 if gated else 2.0) * hidden * inter / moe_tp
        local = experts / moe_ep
        # the share of this rank's experts that at least one of the tokens routes to
        active = 1.0 - (1.0 - topk / experts) ** t
        nbytes = local * active * per_expert * weight_bytes(fmt.replace("_block", ""))
        flops = 2.0 * t * topk / moe_ep * per_expert
        rows = t * topk / experts
        eta = self.eta.moe * np.maximum(rows, 1e-9) / (rows + 2.0)
        lat = 8 * self.eta.latency_us * 1e-6
        return lat + np.maximum(
            flops / (self._peak(fmt) * eta), nbytes / (self.bw * self.eta.memory * 0.9)
        )

    def mla_context(
        self, batch: ArrayLike, isl: ArrayLike, heads: int, kv_dtype: str, fmt: str
    ) -> tuple[np.ndarray, bool]:
        # prefill runs un-absorbed: 192-wide keys, 128-wide values per head (DeepSeek-V3)
        b, s = _arr(batch), _arr(isl)
        flops = 2.0 * b * heads * (192 + 128) * s * (s + 1) / 2
        nbytes = b * s * heads * (192 * 2 + 128 * 2) * 2.0
        return self._op(flops, nbytes, self._peak("bf16"), self.eta.attention), False

    def mla_generation(
        self, batch: ArrayLike, ctx: ArrayLike, heads: int, kv_dtype: str, fmt: str
    ) -> tuple[np.ndarray, bool]:
        b, c = _arr(batch), _arr(ctx)
        nbytes = b * c * MLA_LATENT * kv_bytes(kv_dtype)
        flops = 2.0 * b * heads * (MLA_LATENT + MLA_VALUE) * c
        lat = self.eta.latency_us * 1e-6
        return lat + np.maximum(
            flops / (self._peak("bf16") * self.eta.attention), nbytes / (self.bw * self.eta.decode)
        ), False

    def _link(self, n: int) -> tuple[float, float]:
        """(bandwidth bytes/s, latency s) of a collective over n devices."""
        d = self.device
        if n <= d.devices_per_node:
            return d.scaleup_bw_gbs * 1e9, d.scaleup_latency_us * 1e-6
        return d.scaleout_bw_gbs * 1e9, d.scaleup_latency_us * 1e-6 * INTER_NODE_LATENCY_FACTOR

    def allreduce(self, nbytes: ArrayLike, n: int) -> np.ndarray:
        bw, lat = self._link(n)
        return lat + 2.0 * (n - 1) / n * _arr(nbytes) / bw

    def collective(self, op: str, nbytes: ArrayLike, n: int) -> np.ndarray:
        bw, lat = self._link(n)
        share = (n - 1) / n * _arr(nbytes)
        if op == "alltoall":
            return lat + share / (bw * A2A_EFFICIENCY)
        if op == "p2p":
            return lat + _arr(nbytes) / bw
        return lat + share / bw
