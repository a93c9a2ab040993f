"""ModelSpec and LayerSpec: the architecture facts of one text decoder that the planner needs.

Conventions (all counts are parameters, not bytes):

- ``total_params`` counts every weight a serving engine loads for the text decoder: embeddings,
  LM head (once when tied), all layers, norms, routers and biases. Vision/audio towers and MTP /
  next-token-prediction heads are *not* counted (DeepSeek-V3 671 B, not 685 B).
- ``active_params`` counts what one token touches: every non-expert weight, ``top_k`` routed experts
  per MoE layer, *and the whole embedding table plus LM head*. That is the convention of Mistral
  (Mixtral 12.9 B), DeepSeek (V3 37 B) and Qwen (Qwen3-235B-A22B 22 B). OpenAI's gpt-oss figures
  (5.1 B) leave out the input embedding table but keep the unembedding: that number is
  ``active_params - input_embedding_params``.
- Norms, MoE routers and other small per-layer extras are folded into ``LayerSpec.attn_params`` so that
  attention + dense + experts add up to the whole layer.
- A layer is one mixer (attention / linear attention / SSM) plus the FFN after it. Nemotron-H style
  models whose config lists mixer and FFN blocks separately are paired back into such layers, so
  ``num_layers`` can be smaller than the config's ``num_hidden_layers``.
- Linear-attention and SSM layers are ``attention="linear"``: no growing KV cache, a fixed per-sequence
  state of ``state_elems`` elements (stored in fp32 by most engines).
- Sliding-window and chunked (Llama 4) layers are ``attention="sliding"`` with ``window`` tokens.
- DeepSeek-V4 compressed layers (``compress_ratios`` 4 / 128) are modelled as full layers caching
  ``head_dim / ratio`` elements per token (plus the compressed indexer keys); its small uncompressed
  sliding window (128 tokens) is ignored for those layers.
- DeepSeek-V3.2 / GLM-5 sparse-attention (DSA) indexer keys are cached per token as well and are
  included in ``kv_elems_per_token`` (engines store them in fp8; the element count is kept).
- Blocks without a mixer (Nemotron-NAS no-op attention, an FFN-only Nemotron-H block) are
  ``attention="linear"`` layers with ``q_heads == 0`` and no state.
- float32 checkpoints are served in 16 bit and reported as ``bf16``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .. import dtypes

# --------------------------------------------------------------------------------------------------
# Public dataclasses
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerSpec:
    """One kind of decoder layer; ModelSpec groups identical ones.

    ``attn_params`` holds the mixer (attention, MLA, linear attention or SSM block) plus the layer's small
    extras (norms, MoE router). ``dense_params`` is the always-active FFN: the dense MLP of a dense
    layer, or shared experts (+ latent projections / parallel dense MLP) of a MoE layer.
    """

    attention: str  # "full" | "sliding" | "linear"
    window: int | None  # tokens visible to a sliding/chunked layer; None for full
    q_heads: int  # query heads (whole model, before TP); linear/SSM: its heads
    kv_heads: int  # KV heads; MLA: 1 (one shared latent)
    qk_dim: int  # per-head dim of the score dot product (MLA absorbed: kv_lora_rank + rope dim)
    v_dim: int  # per-head value dim (MLA absorbed: kv_lora_rank)
    kv_elems_per_token: int  # cached elements per token in this layer; linear: 0
    state_elems: int  # fixed per-sequence state elements (linear-attention/SSM layers), else 0
    attn_params: int  # mixer block + norms + router
    mlp_kind: str  # "dense" | "moe"
    dense_params: int  # dense FFN params; MoE layer: shared-expert (always active) params
    num_experts: int  # routed experts (0 for dense)
    top_k: int  # routed experts per token (0 for dense)
    expert_params: int  # params of ONE routed expert
    is_mla: bool
    # MLA prefill runs un-absorbed (per-head nope+rope keys, v_head_dim values): those dims, else None
    prefill_qk_dim: int | None = None
    prefill_v_dim: int | None = None
    # The weight matrices of the mixer and the always-active FFN as (role, n, k, split): y = x W^T
    # with W of n x k; role "attn" | "dense" | "router"; split says how tensor parallelism cuts it:
    # "col" (n), "row" (k) or "rep" (replicated). Empty for mixers described by parameter count only.
    gemms: tuple[tuple[str, int, int, str], ...] = ()
    # One routed expert's shape: its input width (the hidden size, or a latent one), intermediate
    # width and whether it is gated (three matrices) or not (two). 0 / True for dense layers.
    expert_in: int = 0
    expert_inter: int = 0
    expert_gated: bool = True

    @property
    def total_params(self) -> int:
        return self.attn_params + self.dense_params + self.num_experts * self.expert_params

    @property
    def active_params(self) -> int:
        return self.attn_params + self.dense_params + self.top_k * self.expert_params

    def kv_bytes_per_token(self, kv_dtype_bytes: float, tp: int = 1) -> float:
        """KV-cache bytes one token adds to this layer on one of `tp` tensor-parallel ranks: the KV
        heads are split over the ranks (at least one each), MLA's latent and a single KV head are
        replicated on every rank."""
        share = 1.0
        if not self.is_mla and self.kv_heads > 1:
            share = max(1, math.ceil(self.kv_heads / tp)) / self.kv_heads
        return self.kv_elems_per_token * kv_dtype_bytes * share


@dataclass(frozen=True)
class ModelSpec:
    """Architecture of one text decoder; see the module docstring for the counting conventions."""

    name: str
    model_type: str
    architecture: str
    hidden_size: int
    num_layers: int
    vocab_size: int
    tie_word_embeddings: bool
    max_context: int
    layer_groups: tuple[tuple[LayerSpec, int], ...]  # (spec, how many layers), first-seen order
    checkpoint_dtype: str  # bf16 | fp16 | fp8 | int4 | mxfp4 | nvfp4 | int8
    quant_method: str | None  # fp8, awq, gptq, mxfp4, modelopt, compressed-tensors, ...
    # Extras (not in the original contract, all defaulted):
    checkpoint_bytes: float = (
        0.0  # weight bytes of the checkpoint as stored (mixed precision aware)
    )
    kv_cache_dtype: str | None = None  # KV-cache dtype the checkpoint was calibrated for ("fp8")
    position_embedding_params: int = 0  # learned absolute position embeddings (OPT, GPT-2)
    # FP8 weights scaled per block (DeepSeek-style weight_block_size, e.g. 128 x 128) rather than per
    # tensor or channel: engines run them through other kernels (DeepGEMM, CUTLASS block-scaled).
    fp8_block: bool = False
    # multi-token-prediction layers shipped with the checkpoint (DeepSeek-V3 style), usable as a
    # speculative draft (budsim.core.speculative); 0 = none
    mtp_layers: int = 0
    source: str = ""  # where the config came from: catalog:<id>, a path, or hf:<id>

    # ---------------------------------------------------------------- parameter counts
    @property
    def input_embedding_params(self) -> int:
        """The input token embedding table (plus learned position embeddings)."""
        return self.vocab_size * self.hidden_size + self.position_embedding_params

    @property
    def embedding_params(self) -> int:
        """Input embedding + LM head, counted once when tied."""
        head = 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size
        return self.input_embedding_params + head

    @property
    def body_params(self) -> int:
        """Everything but the embeddings and LM head (final norm included)."""
        return sum(spec.total_params * n for spec, n in self.layer_groups) + self.hidden_size

    @property
    def total_params(self) -> int:
        return self.body_params + self.embedding_params

    @property
    def active_params(self) -> int:
        """Parameters one token touches, embeddings and LM head included (see module docstring)."""
        inactive = sum(
            (spec.num_experts - spec.top_k) * spec.expert_params * n
            for spec, n in self.layer_groups
        )
        return self.total_params - inactive

    # ---------------------------------------------------------------- structure
    @property
    def is_moe(self) -> bool:
        return any(spec.mlp_kind == "moe" for spec, _ in self.layer_groups)

    @property
    def num_experts(self) -> int:
        return max((spec.num_experts for spec, _ in self.layer_groups), default=0)

    @property
    def top_k(self) -> int:
        return max((spec.top_k for spec, _ in self.layer_groups), default=0)

    @property
    def attention_kind(self) -> str:
        """mha | gqa | mqa | mla | hybrid (layers of more than one kind: sliding/full/linear mixes)."""
        kinds = {spec.attention for spec, _ in self.layer_groups if spec.q_heads > 0}
        mla = [spec.is_mla for spec, _ in self.layer_groups if spec.attention != "linear"]
        if len(kinds) > 1:
            return "hybrid"
        if mla and all(mla):
            return "mla"
        attn = [spec for spec, _ in self.layer_groups if spec.attention != "linear"]
        if not attn:
            return "hybrid"
        spec = attn[0]
        if spec.kv_heads >= spec.q_heads:
            return "mha"
        if spec.kv_heads == 1:
            return "mqa"
        return "gqa"

    def kv_bytes_per_token(self, kv_dtype_bytes: float, context: int | None = None) -> float:
        """KV-cache bytes one token adds, summed over all layers.

        With ``context`` given, a sliding/chunked layer counts ``min(context, window) / context`` of a
        token (its cache stops growing at ``window``). Linear/SSM layers add nothing here; see
        ``state_bytes_per_sequence``.
        """
        total = 0.0
        for spec, n in self.layer_groups:
            if spec.attention == "linear" or spec.kv_elems_per_token == 0:
                continue
            share = 1.0
            if spec.window is not None and context:
                share = min(context, spec.window) / context
            total += spec.kv_bytes_per_token(kv_dtype_bytes) * share * n
        return total

    def state_bytes_per_sequence(self, state_dtype_bytes: float = 4.0) -> float:
        """Fixed recurrent state (linear attention / SSM) of one sequence, all layers."""
        return float(sum(spec.state_elems * n for spec, n in self.layer_groups) * state_dtype_bytes)

    def weight_bytes(self, dtype: str) -> float:
        """Bytes of all weights with the body at ``dtype``.

        ``auto`` (or the checkpoint's own dtype) gives the checkpoint as stored: mixed precision and
        modules the checkpoint leaves unquantised (gpt-oss attention, ModelOpt exclusions) stay at
        16 bit. Any other dtype quantises the whole body; embeddings and LM head stay 16 bit.
        """
        if dtype in ("auto", "") or (dtype == self.checkpoint_dtype and self.checkpoint_bytes > 0):
            if self.checkpoint_bytes > 0:
                return self.checkpoint_bytes
            dtype = self.checkpoint_dtype
        per = dtypes.weight_bytes(dtype)
        emb = dtypes.embedding_bytes(dtype)
        return self.body_params * per + self.embedding_params * emb

    def summary(self) -> dict[str, Any]:
        """A flat, JSON-friendly description (for `budsim models show`)."""
        return {
            "name": self.name,
            "model_type": self.model_type,
            "architecture": self.architecture,
            "layers": self.num_layers,
            "hidden_size": self.hidden_size,
            "vocab_size": self.vocab_size,
            "total_params_b": round(self.total_params / 1e9, 3),
            "active_params_b": round(self.active_params / 1e9, 3),
            "attention": self.attention_kind,
            "moe": self.is_moe,
            "experts": self.num_experts,
            "top_k": self.top_k,
            "max_context": self.max_context,
            "checkpoint_dtype": self.checkpoint_dtype,
            "quant_method": self.quant_method,
            "kv_bytes_per_token_bf16": self.kv_bytes_per_token(2.0),
            "weights_gb_auto": round(self.weight_bytes("auto") / 1e9, 2),
            "source": self.source,
        }
