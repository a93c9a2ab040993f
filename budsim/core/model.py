"""ModelSpec: the architecture facts the planner needs, derived from a Hugging Face ``config.json``.

Where a model comes from (``load_model``):

1. a local directory holding ``config.json`` (and optionally ``hf_quant_config.json``) or a path to a
   ``config.json``;
2. the bundled offline catalog (``budsim/core/catalog/models/<org>__<name>.json``), by HF id
   (case-insensitive), by the short name after the slash when unambiguous, or by an alias
   (``budsim/core/catalog/models/aliases.json``, e.g. ``Llama-3-8B`` or
   ``meta-llama/Llama-3.1-8B-Instruct``);
3. the Hugging Face cache, or the Hub itself when ``allow_network`` is set (the CLI's
   ``--allow-download``, the TUI's "HF Hub" switch): ``transformers`` ``AutoConfig`` (imported
   lazily), falling back to the raw ``config.json``. A Hub that cannot serve the config (no network,
   an unknown or gated repo) is a one-line error.

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

Checkpoint precision: ``checkpoint_dtype`` is the dtype holding most of the quantised weights
(``quantization_config`` or ModelOpt ``hf_quant_config.json``: fp8, awq/gptq bits, mxfp4, nvfp4,
compressed-tensors num_bits/type, mixed-precision ``quantized_layers``); ``checkpoint_bytes`` is the
checkpoint's size with modules it leaves unquantised (``modules_to_not_convert``, ``ignore``,
``exclude_modules``) at 16 bit. ``ModelSpec.name`` is the reference the model was loaded by and
``source`` says where the config came from (``catalog:<id>``, a path or ``hf:<id>``).
"""

from __future__ import annotations

import functools
import json
import math
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from . import dtypes
from .errors import BudsimError

CATALOG_DIR = Path(__file__).resolve().parent / "catalog" / "models"
ALIASES_FILE = CATALOG_DIR / "aliases.json"

_BODY = frozenset({"attn", "dense", "shared", "experts"})
_SIXTEEN_BIT = 2.0


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
    def num_moe_layers(self) -> int:
        return sum(n for spec, n in self.layer_groups if spec.mlp_kind == "moe")

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


# --------------------------------------------------------------------------------------------------
# Config access helpers
# --------------------------------------------------------------------------------------------------


class _Cfg:
    """Read-only view on a config dict with first-of-several-keys lookups."""

    def __init__(self, data: Mapping[str, Any], name: str) -> None:
        self.d = data
        self.name = name

    def get(self, *keys: str, default: Any = None) -> Any:
        for key in keys:
            if key in self.d and self.d[key] is not None:
                return self.d[key]
        return default

    def int_(self, *keys: str, default: int | None = None, required: bool = False) -> int:
        value = self.get(*keys)
        if value is None:
            if required or default is None:
                raise BudsimError(
                    f"model config {self.name!r} lacks {keys[0]!r}; is it a decoder-only LLM config?"
                )
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise BudsimError(
                f"model config {self.name!r}: {keys[0]} must be a number, got {value!r}"
            )
        if isinstance(value, float) and not value.is_integer():
            raise BudsimError(
                f"model config {self.name!r}: {keys[0]} must be an integer, got {value}"
            )
        return int(value)

    def pos(self, *keys: str, default: int | None = None) -> int:
        value = self.int_(*keys, default=default)
        if value <= 0:
            raise BudsimError(
                f"model config {self.name!r}: {keys[0]} must be positive, got {value}"
            )
        return value

    def opt_int(self, *keys: str) -> int | None:
        value = self.get(*keys)
        if value is None or isinstance(value, bool):
            return None
        if isinstance(value, (int, float)):
            return int(value)
        return None

    def flag(self, *keys: str, default: bool = False) -> bool:
        value = self.get(*keys)
        return bool(value) if value is not None else default


def _first_list(value: Any) -> list[Any] | None:
    return list(value) if isinstance(value, (list, tuple)) else None


# --------------------------------------------------------------------------------------------------
# Model-family tables
# --------------------------------------------------------------------------------------------------

_ENCODER_TYPES = frozenset(
    "bert roberta xlm-roberta xlm_roberta deberta deberta-v2 distilbert albert electra camembert "
    "mpnet modernbert nomic_bert ernie xlm flaubert longformer big_bird convbert funnel layoutlm "
    "megatron-bert rembert roformer squeezebert esm".split()
)
_VISION_TYPES = frozenset(
    "vit clip_vision_model siglip_vision_model siglip clip convnext convnextv2 resnet dinov2 deit "
    "beit swin swinv2 detr yolos segformer mobilevit efficientnet regnet sam".split()
)
_ENCODER_HEADS = tuple(
    "ForMaskedLM ForSequenceClassification ForTokenClassification ForQuestionAnswering "
    "ForMultipleChoice ForNextSentencePrediction ForPreTraining ForImageClassification "
    "ForObjectDetection ForSemanticSegmentation ForAudioClassification ForCTC".split()
)
_DECODER_HEADS = ("ForCausalLM", "LMHeadModel", "ForConditionalGeneration")

# FFN with two matrices (up, down) instead of the gated three.
_NON_GATED = frozenset(
    "gpt2 gptj gpt_neox gpt_neo gpt_bigcode opt bloom falcon phi starcoder2 mpt codegen nemotron "
    "persimmon stablelm_epoch biogpt xglm".split()
)
# Families whose HF config class ties input and output embeddings by default.
_TIED_BY_DEFAULT = frozenset(
    "gemma gemma2 gemma3 gemma3_text gemma4 gemma4_text opt bloom gpt2 gpt_bigcode falcon "
    "starcoder2 phi3small mpt codegen xglm".split()
)
# Families with a learned absolute position-embedding table.
_LEARNED_POSITIONS = frozenset("opt gpt2 gpt_bigcode gpt_neo biogpt xglm".split())
# Families with biases on q/k/v (Qwen 1/1.5/2 style).
_QKV_BIAS = frozenset("qwen2 qwen2_moe qwen2_vl qwen2_5_vl qwen chatglm glm4".split())
# Families with biases everywhere (attention + MLP).
_ALL_BIAS = frozenset("gpt2 gpt_neox opt bloom phi gpt_bigcode starcoder2".split())
# Families whose norms are LayerNorms with a bias.
_LAYERNORM_BIAS = frozenset("bloom opt gpt2 gptj gpt_neox phi falcon starcoder2 phi3small".split())
# Families with a per-head q/k RMSNorm.
_QK_NORM = frozenset(
    "qwen3 qwen3_moe qwen3_vl_text qwen3_vl_moe_text gemma3_text gemma4_text".split()
)


def _gated(model_type: str, c: _Cfg) -> bool:
    if model_type in _NON_GATED:
        return False
    if model_type == "starcoder2" or c.get("mlp_type") == "default":
        return False
    act = str(c.get("hidden_act", "mlp_hidden_act", "activation_function", default="silu")).lower()
    return not (model_type == "nemotron_h" or act in ("relu2", "squared_relu"))


# --------------------------------------------------------------------------------------------------
# Layer construction
# --------------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    spec: LayerSpec
    attn_idx: int | None  # config module index of the mixer (for quantisation exclusions)
    mlp_idx: int | None  # config module index of the FFN


@dataclass
class _Mixer:
    attention: str
    window: int | None
    q_heads: int
    kv_heads: int
    qk_dim: int
    v_dim: int
    kv_elems: int
    state: int
    params: int
    is_mla: bool
    prefill_qk: int | None = None
    prefill_v: int | None = None
    gemms: tuple[tuple[str, int, int, str], ...] = ()  # see LayerSpec.gemms


@dataclass
class _Ffn:
    kind: str  # dense | moe
    dense: int
    experts: int
    top_k: int
    expert: int
    router: int
    gemms: tuple[tuple[str, int, int, str], ...] = ()  # see LayerSpec.gemms
    expert_in: int = 0  # see LayerSpec.expert_in
    expert_inter: int = 0
    expert_gated: bool = True


_NO_MIXER = _Mixer("linear", None, 0, 0, 0, 0, 0, 0, 0, False)
_NO_FFN = _Ffn("dense", 0, 0, 0, 0, 0)


def _make_layer(
    mixer: _Mixer, ffn: _Ffn, extra: int, attn_idx: int | None, mlp_idx: int | None
) -> _Layer:
    spec = LayerSpec(
        attention=mixer.attention,
        window=mixer.window,
        q_heads=mixer.q_heads,
        kv_heads=mixer.kv_heads,
        qk_dim=mixer.qk_dim,
        v_dim=mixer.v_dim,
        kv_elems_per_token=mixer.kv_elems,
        state_elems=mixer.state,
        attn_params=mixer.params + ffn.router + extra,
        mlp_kind=ffn.kind,
        dense_params=ffn.dense,
        num_experts=ffn.experts if ffn.kind == "moe" else 0,
        top_k=ffn.top_k if ffn.kind == "moe" else 0,
        expert_params=ffn.expert if ffn.kind == "moe" else 0,
        is_mla=mixer.is_mla,
        prefill_qk_dim=mixer.prefill_qk,
        prefill_v_dim=mixer.prefill_v,
        gemms=mixer.gemms + ffn.gemms,
        expert_in=ffn.expert_in if ffn.kind == "moe" else 0,
        expert_inter=ffn.expert_inter if ffn.kind == "moe" else 0,
        expert_gated=ffn.expert_gated,
    )
    return _Layer(spec, attn_idx, mlp_idx)


def _gqa_mixer(
    hidden: int,
    heads: int,
    kv: int,
    head_dim: int,
    *,
    attention: str = "full",
    window: int | None = None,
    v_head_dim: int | None = None,
    qkv_bias: bool = False,
    o_bias: bool = False,
    qk_norm: int = 0,
    q_gate: bool = False,
    no_v_proj: bool = False,
    sinks: bool = False,
    extra: int = 0,
) -> _Mixer:
    vd = v_head_dim or head_dim
    q_out = heads * head_dim * (2 if q_gate else 1)
    params = hidden * q_out + hidden * kv * head_dim + heads * vd * hidden
    if not no_v_proj:
        params += hidden * kv * vd
    if qkv_bias:
        params += heads * head_dim + kv * head_dim + (0 if no_v_proj else kv * vd)
    if o_bias:
        params += hidden
    if sinks:
        params += heads
    params += qk_norm + extra
    kv_elems = kv * (head_dim + vd)
    qkv = q_out + kv * head_dim + (0 if no_v_proj else kv * vd)
    gemms = (("attn", qkv, hidden, "col"), ("attn", hidden, heads * vd, "row"))
    return _Mixer(
        attention, window, heads, kv, head_dim, vd, kv_elems, 0, params, False, gemms=gemms
    )


def _mla_mixer(
    c: _Cfg, hidden: int, *, attention: str = "full", window: int | None = None
) -> _Mixer:
    heads = c.pos("num_attention_heads")
    rank = c.pos("kv_lora_rank")
    rope = c.pos("qk_rope_head_dim")
    nope = c.int_("qk_nope_head_dim", default=0)
    v = c.pos("v_head_dim", default=nope or 128)
    q_rank = c.opt_int("q_lora_rank")
    qk_head = nope + rope
    gemms: list[tuple[str, int, int, str]] = []
    if q_rank:
        q = hidden * q_rank + q_rank + q_rank * heads * qk_head
        # engines fuse the two down-projections (q_a and kv_a) into one replicated GEMM
        gemms += [("attn", q_rank + rank + rope, hidden, "rep")]
        gemms += [("attn", heads * qk_head, q_rank, "col")]
    else:
        q = hidden * heads * qk_head
        gemms += [("attn", rank + rope, hidden, "rep"), ("attn", heads * qk_head, hidden, "col")]
    kv = hidden * (rank + rope) + rank + rank * heads * (nope + v)
    o = heads * v * hidden
    gemms += [("attn", heads * (nope + v), rank, "col"), ("attn", hidden, heads * v, "row")]
    params = q + kv + o
    if c.flag("attention_bias"):
        params += hidden
    return _Mixer(
        attention,
        window,
        heads,
        1,
        rank + rope,
        rank,
        rank + rope,
        0,
        params,
        True,
        qk_head,
        v,
        gemms=tuple(gemms),
    )


def _dsa_indexer(c: _Cfg, hidden: int) -> tuple[int, int]:
    """DeepSeek-V3.2 / GLM-5 sparse-attention indexer: (params, cached elems per token)."""
    n = c.opt_int("index_n_heads")
    d = c.opt_int("index_head_dim")
    if not n or not d:
        return 0, 0
    q_rank = c.opt_int("q_lora_rank") or hidden
    params = q_rank * n * d + hidden * d + 2 * d + hidden * n
    return params, d


def _ffn_gemms(hidden: int, inter: int, gated: bool) -> tuple[tuple[str, int, int, str], ...]:
    """The up (gate and up fused when gated) and down projections of one MLP."""
    return (("dense", (2 if gated else 1) * inter, hidden, "col"), ("dense", hidden, inter, "row"))


def _dense_ffn(hidden: int, inter: int, gated: bool, bias: bool = False) -> _Ffn:
    params = (3 if gated else 2) * hidden * inter
    if bias:
        params += inter * (2 if gated else 1) + hidden
    return _Ffn("dense", params, 0, 0, 0, 0, gemms=_ffn_gemms(hidden, inter, gated))


def _expert_params(hidden: int, inter: int, gated: bool, bias: bool = False) -> int:
    params = (3 if gated else 2) * hidden * inter
    if bias:
        params += inter * (2 if gated else 1) + hidden
    return params


def _layer_flags(values: Any, n: int, truthy: Iterable[Any]) -> list[bool] | None:
    items = _first_list(values)
    if items is None:
        return None
    if len(items) < n:
        raise BudsimError(f"per-layer list has {len(items)} entries for {n} layers")
    truth = set(truthy)
    return [item in truth for item in items[:n]]


def _moe_layer_mask(c: _Cfg, n: int) -> list[bool]:
    """Which layers are MoE, from the many ways configs say it."""
    mlp_types = _first_list(c.get("mlp_layer_types"))
    if mlp_types and len(mlp_types) >= n:
        return [str(t).lower() in ("sparse", "moe") for t in mlp_types[:n]]
    freq = c.get("moe_layer_freq")
    if isinstance(freq, (list, tuple)):
        flags = _layer_flags(freq, n, (1, True, "1"))
        assert flags is not None
        return flags
    first_dense = c.int_("first_k_dense_replace", default=0)
    step = c.int_("interleave_moe_layer_step", "decoder_sparse_step", "moe_layer_freq", default=1)
    step = max(1, step)
    only_dense = set(_first_list(c.get("mlp_only_layers")) or [])
    explicit = _first_list(c.get("moe_layers"))
    mask = []
    for i in range(n):
        if explicit is not None:
            mask.append(i in explicit)
            continue
        if i < first_dense or i in only_dense:
            mask.append(False)
            continue
        if c.get("interleave_moe_layer_step") is not None:
            mask.append((i + 1) % step == 0)  # Llama 4: layers step-1, 2*step-1, ...
        elif c.get("decoder_sparse_step") is not None:
            mask.append((i + 1) % step == 0)  # Qwen2/3-MoE
        else:
            mask.append((i - first_dense) % step == 0)  # DeepSeek moe_layer_freq
    return mask


def _layer_types(c: _Cfg, n: int) -> list[str] | None:
    types = _first_list(c.get("layer_types"))
    if types is None:
        return None
    if len(types) < n:
        raise BudsimError(
            f"model config {c.name!r}: layer_types has {len(types)} entries for {n} layers"
        )
    out = []
    for t in types[:n]:
        s = str(t).lower()
        if "linear" in s or "mamba" in s or "ssm" in s or "recurrent" in s:
            out.append("linear")
        elif "sliding" in s or "local" in s or "chunk" in s or "swa" in s:
            out.append("sliding")
        else:
            out.append("full")
    return out


# ------------------------------------------------------------------ generic / dense decoders


def _generic_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads", "n_head", "num_heads", "n_heads")
    kv = _kv_heads(c, heads)
    head_dim = c.pos(
        "head_dim", "kv_channels", "attention_head_dim", default=max(1, hidden // heads)
    )
    gated = _gated(mt, c)
    inter = _intermediate(c, mt, hidden, gated)
    all_bias = mt in _ALL_BIAS or c.flag("use_bias", "bias", "add_bias_linear")
    qkv_bias = all_bias or mt in _QKV_BIAS or c.flag("attention_bias", "qkv_bias", "add_qkv_bias")
    mlp_bias = all_bias or c.flag("mlp_bias")
    qk_norm = 2 * head_dim if (mt in _QK_NORM or c.flag("use_qk_norm", "qk_layernorm")) else 0
    norms = (4 if mt.startswith("gemma2") or mt.startswith("gemma3") else 2) * hidden
    if mt in _LAYERNORM_BIAS:
        norms *= 2  # LayerNorm has a bias
    window, kinds = _window_kinds(c, mt, n)
    ffn = _dense_ffn(hidden, inter, gated, mlp_bias)
    layers = []
    for i in range(n):
        attention = kinds[i]
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention=attention,
            window=window if attention == "sliding" else None,
            qkv_bias=qkv_bias,
            o_bias=all_bias,
            qk_norm=qk_norm,
        )
        layers.append(_make_layer(mixer, ffn, norms, i, i))
    return layers


def _kv_heads(c: _Cfg, heads: int) -> int:
    if c.get("multi_query") is True and c.get("new_decoder_architecture") is not True:
        return 1
    kv = c.opt_int("num_key_value_heads", "num_kv_heads", "n_head_kv", "multi_query_group_num")
    if kv is None:
        return heads
    if kv <= 0 or kv > heads:
        raise BudsimError(
            f"model config {c.name!r}: num_key_value_heads must be in 1..{heads}, got {kv}"
        )
    return kv


def _intermediate(c: _Cfg, mt: str, hidden: int, gated: bool) -> int:
    if mt == "phi3small":
        return c.pos("ff_intermediate_size", "intermediate_size")
    if mt == "qwen":  # QWen(1) stores 2x the per-branch width
        return c.pos("intermediate_size") // 2
    value = c.opt_int("intermediate_size", "ffn_dim", "n_inner", "ffn_hidden_size", "d_ff")
    if value is None:
        if gated:
            raise BudsimError(
                f"model config {c.name!r} lacks 'intermediate_size'; is it a decoder-only LLM config?"
            )
        return 4 * hidden
    if value <= 0:
        raise BudsimError(
            f"model config {c.name!r}: intermediate_size must be positive, got {value}"
        )
    return value


def _window_kinds(c: _Cfg, mt: str, n: int) -> tuple[int | None, list[str]]:
    """Sliding window size and per-layer attention kind for GQA decoders."""
    window = c.opt_int("sliding_window", "sliding_window_size", "attention_window_size")
    types = _layer_types(c, n)
    if types is not None:
        if window is None and "sliding" in types:
            raise BudsimError(f"model config {c.name!r} has sliding layers but no sliding_window")
        return window, types
    if not window or window <= 0:
        return None, ["full"] * n
    if mt == "gemma2":
        return window, ["sliding" if i % 2 == 0 else "full" for i in range(n)]
    if mt in ("gemma3", "gemma3_text"):
        pattern = c.int_("sliding_window_pattern", default=6)
        return window, ["sliding" if (i + 1) % pattern else "full" for i in range(n)]
    use = c.get("use_sliding_window")
    if use is False:
        return None, ["full"] * n
    max_window_layers = c.opt_int("max_window_layers")
    if use is True and max_window_layers is not None:
        return window, ["sliding" if i >= max_window_layers else "full" for i in range(n)]
    mpe = c.opt_int("max_position_embeddings")
    if mpe is not None and window >= mpe:
        return None, ["full"] * n
    return window, ["sliding"] * n


# ------------------------------------------------------------------ classic families


def _gptj_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("n_head", "num_attention_heads")
    head_dim = hidden // heads
    inter = c.pos("n_inner", default=4 * hidden)
    mixer = _gqa_mixer(hidden, heads, heads, head_dim)
    ffn = _dense_ffn(hidden, inter, False, True)
    return [_make_layer(mixer, ffn, 2 * hidden, i, i) for i in range(n)]


def _qwen1_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    head_dim = c.pos("kv_channels", default=hidden // heads)
    inter = c.pos("intermediate_size") // 2
    mixer = _gqa_mixer(hidden, heads, heads, head_dim, qkv_bias=True)
    ffn = _dense_ffn(hidden, inter, True)
    return [_make_layer(mixer, ffn, 2 * hidden, i, i) for i in range(n)]


def _falcon_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads", "n_head")
    if c.flag("new_decoder_architecture"):
        kv = c.pos("num_kv_heads", "n_head_kv", default=heads)
        norms = 4 * hidden  # ln_attn + ln_mlp, with bias
    else:
        kv = 1 if c.flag("multi_query", default=True) else heads
        norms = 2 * hidden
    head_dim = hidden // heads
    inter = c.pos("ffn_hidden_size", default=4 * hidden)
    bias = c.flag("bias")
    mixer = _gqa_mixer(hidden, heads, kv, head_dim, qkv_bias=bias, o_bias=bias)
    ffn = _dense_ffn(hidden, inter, False, bias)
    return [_make_layer(mixer, ffn, norms, i, i) for i in range(n)]


def _phi3small_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = hidden // heads
    inter = c.pos("ff_intermediate_size", "intermediate_size")
    # Block-sparse attention on alternate layers still caches every token: modelled as full.
    mixer = _gqa_mixer(hidden, heads, kv, head_dim, qkv_bias=True, o_bias=True)
    ffn = _dense_ffn(hidden, inter, True, True)
    return [_make_layer(mixer, ffn, 4 * hidden, i, i) for i in range(n)]


def _decilm_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """Nemotron-NAS (Llama-3.x-Nemotron Super/Ultra): per-layer block_configs."""
    blocks = _first_list(c.get("block_configs"))
    if blocks is None or len(blocks) < n:
        raise BudsimError(
            f"model config {c.name!r}: block_configs missing or shorter than the layers"
        )
    heads = c.pos("num_attention_heads")
    head_dim = c.pos("head_dim", default=hidden // heads)
    layers = []
    for i, block in enumerate(blocks[:n]):
        attn = block.get("attention", {}) if isinstance(block, Mapping) else {}
        ffn_cfg = block.get("ffn", {}) if isinstance(block, Mapping) else {}
        if attn.get("no_op"):
            mixer = _NO_MIXER
        elif attn.get("replace_with_linear"):
            mixer = replace(_NO_MIXER, params=hidden * hidden)
        else:
            group = int(attn.get("n_heads_in_group") or 1)
            window = attn.get("window_length")
            mixer = _gqa_mixer(
                hidden,
                heads,
                max(1, heads // group),
                head_dim,
                attention="sliding" if window else "full",
                window=int(window) if window else None,
            )
        if ffn_cfg.get("no_op"):
            ffn = _NO_FFN
        elif ffn_cfg.get("replace_with_linear"):
            ffn = _Ffn("dense", hidden * hidden, 0, 0, 0, 0)
        else:
            mult = float(ffn_cfg.get("ffn_mult") or 0)
            if mult <= 0:
                raise BudsimError(f"model config {c.name!r}: block {i} has no ffn_mult")
            inter = int(2 * mult * hidden / 3)
            inter = -(-inter // 256) * 256
            ffn = _dense_ffn(hidden, inter, True)
        norms = (hidden if mixer.params else 0) + (hidden if ffn.dense else 0)
        layers.append(_make_layer(mixer, ffn, norms, i, i))
    return layers


# ------------------------------------------------------------------ MoE families


def _moe_ffn(
    c: _Cfg,
    hidden: int,
    *,
    experts: int,
    top_k: int,
    expert_inter: int,
    shared_inter: int = 0,
    gated: bool = True,
    expert_bias: bool = False,
    router_bias: bool = False,
    shared_gate: bool = False,
    latent: int | None = None,
    extra_dense: int = 0,
) -> _Ffn:
    width = latent or hidden
    expert = _expert_params(width, expert_inter, gated, expert_bias)
    dense = _expert_params(hidden, shared_inter, gated) if shared_inter else 0
    if shared_gate:
        dense += hidden
    gemms = [("router", experts, hidden, "rep")]
    if shared_inter:
        gemms += _ffn_gemms(hidden, shared_inter, gated)
    if latent:
        dense += 2 * hidden * latent
        gemms += [("dense", latent, hidden, "rep"), ("dense", hidden, latent, "rep")]
    dense += extra_dense
    router = hidden * experts + (experts if router_bias else 0)
    return _Ffn(
        "moe",
        dense,
        experts,
        top_k,
        expert,
        router,
        gemms=tuple(gemms),
        expert_in=width,
        expert_inter=expert_inter,
        expert_gated=gated,
    )


def _experts_top_k(c: _Cfg) -> tuple[int, int]:
    experts = c.pos(
        "n_routed_experts", "num_local_experts", "num_experts", "moe_num_experts", "n_experts"
    )
    top_k = c.pos(
        "num_experts_per_tok",
        "experts_per_token",
        "num_experts_per_token",
        "moe_top_k",
        "top_k_experts",
        "moe_k",
    )
    if top_k > experts:
        raise BudsimError(f"model config {c.name!r}: top-k {top_k} exceeds {experts} experts")
    return experts, top_k


def _shared_inter(c: _Cfg, expert_inter: int) -> int:
    value = c.opt_int(
        "shared_expert_intermediate_size",
        "moe_shared_expert_intermediate_size",
        "shared_intermediate_size",
        "share_expert_dim",
    )
    count = c.opt_int("n_shared_experts", "num_shared_experts")
    if value is not None:
        return value * (count if count and count > 1 and c.get("share_expert_dim") is None else 1)
    if count:
        return count * expert_inter
    return 0


def _mixtral_like_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    """Mixtral, Qwen2/3-MoE (+VL), MiniMax-M2, PhiMoE, OLMoE, GraniteMoE and other GQA MoE decoders."""
    heads = c.pos("num_attention_heads")
    kv = _kv_heads(c, heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size", "intermediate_size")
    shared = _shared_inter(c, expert_inter)
    dense_inter = c.opt_int("intermediate_size") or expert_inter
    qk_norm = 0
    if mt in _QK_NORM or c.flag("use_qk_norm"):
        if str(c.get("qk_norm_type", default="per_head")) == "per_layer":
            qk_norm = (heads + kv) * head_dim
        else:
            qk_norm = 2 * head_dim
    window, kinds = _window_kinds(c, mt, n)
    mask = _moe_layer_mask(c, n)
    layers = []
    for i in range(n):
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention=kinds[i],
            window=window if kinds[i] == "sliding" else None,
            qkv_bias=mt in _QKV_BIAS or c.flag("attention_bias"),
            qk_norm=qk_norm,
        )
        if mask[i]:
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=shared,
                shared_gate=mt in ("qwen2_moe",) and shared > 0,
            )
        else:
            ffn = _dense_ffn(hidden, dense_inter, True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _deepseek_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    """DeepSeek-V2/V3/V3.2/R1, Kimi-K2, GLM-5 (MLA + optional DSA indexer), and GQA variants (GLM-4.5)."""
    mla = c.opt_int("kv_lora_rank") is not None
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size")
    shared = _shared_inter(c, expert_inter)
    dense_inter = c.pos("intermediate_size", default=expert_inter)
    mask = _moe_layer_mask(c, n)
    indexer_params, indexer_elems = _dsa_indexer(c, hidden)
    indexer_types = _first_list(c.get("indexer_types"))
    layers = []
    for i in range(n):
        if mla:
            mixer = _mla_mixer(c, hidden)
            has_indexer = indexer_params and (
                indexer_types is None or str(indexer_types[i]).lower() != "shared"
            )
            if has_indexer:
                mixer = replace(
                    mixer,
                    params=mixer.params + indexer_params,
                    kv_elems=mixer.kv_elems + indexer_elems,
                )
        else:
            heads = c.pos("num_attention_heads")
            kv = _kv_heads(c, heads)
            head_dim = c.pos("head_dim", default=hidden // heads)
            mixer = _gqa_mixer(
                hidden,
                heads,
                kv,
                head_dim,
                qkv_bias=c.flag("attention_bias"),
                qk_norm=2 * head_dim if c.flag("use_qk_norm") else 0,
            )
        if mask[i]:
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=shared,
                router_bias=str(c.get("topk_method", default="")) == "noaux_tc",
            )
        else:
            ffn = _dense_ffn(hidden, dense_inter, True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _deepseek_v4_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """DeepSeek-V4: one shared latent KV head, grouped low-rank output, compressed-KV layers.

    ``compress_ratios[i]`` 0 = sliding-window-only layer; 4 = compressed sparse attention (with an
    indexer over compressed keys); 128 = heavily compressed attention over all compressed KV.
    """
    heads = c.pos("num_attention_heads")
    head_dim = c.pos("head_dim")
    q_rank = c.pos("q_lora_rank")
    o_rank = c.pos("o_lora_rank", default=hidden)
    o_groups = c.pos("o_groups", default=1)
    window = c.opt_int("sliding_window") or 128
    ratios = _first_list(c.get("compress_ratios")) or [0] * n
    index_heads = c.int_("index_n_heads", default=0)
    index_dim = c.int_("index_head_dim", default=0)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size")
    ffn = _moe_ffn(
        c,
        hidden,
        experts=experts,
        top_k=top_k,
        expert_inter=expert_inter,
        shared_inter=_shared_inter(c, expert_inter),
    )
    hc = c.int_("hc_mult", default=1)
    # hyper-connection mixing weights of the attention and FFN sub-layers, plus two norms
    extra = 2 * hidden + (2 * hc * hidden * (hc * hc + 2 * hc) if hc > 1 else 0)
    base = hidden * q_rank + q_rank + q_rank * heads * head_dim  # q down/up
    base += hidden * head_dim + head_dim  # the single latent KV head
    base += heads * head_dim * o_rank + o_groups * o_rank * hidden  # grouped low-rank output
    base += heads  # attention sinks
    layers = []
    for i in range(n):
        ratio = int(ratios[i]) if i < len(ratios) else 0
        params = base
        if ratio:
            params += 2 * hidden * head_dim + 2 * head_dim * ratio  # compressor (kv + gate)
            elems = -(-head_dim // ratio)
            if ratio == 4 and index_heads and index_dim:
                params += q_rank * index_heads * index_dim + hidden * index_heads
                params += 2 * hidden * index_dim
                elems += -(-index_dim // ratio)
            mixer = _Mixer("full", None, heads, 1, head_dim, head_dim, elems, 0, params, True)
        else:
            mixer = _Mixer(
                "sliding", window, heads, 1, head_dim, head_dim, head_dim, 0, params, True
            )
        layers.append(_make_layer(mixer, ffn, extra, i, i))
    return layers


def _gpt_oss_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads")
    head_dim = c.pos("head_dim", default=hidden // heads)
    experts, top_k = _experts_top_k(c)
    inter = c.pos("intermediate_size")
    window, kinds = _window_kinds(c, "gpt_oss", n)
    if _first_list(c.get("layer_types")) is None and window:
        kinds = ["sliding" if i % 2 == 0 else "full" for i in range(n)]
    ffn = _moe_ffn(
        c,
        hidden,
        experts=experts,
        top_k=top_k,
        expert_inter=inter,
        expert_bias=True,
        router_bias=True,
    )
    layers = []
    for i in range(n):
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention=kinds[i],
            window=window if kinds[i] == "sliding" else None,
            qkv_bias=True,
            o_bias=True,
            sinks=True,
        )
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _llama4_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("intermediate_size")
    dense_inter = c.pos("intermediate_size_mlp", default=expert_inter)
    chunk = c.opt_int("attention_chunk_size")
    no_rope = _first_list(c.get("no_rope_layers"))
    interval = c.int_("no_rope_layer_interval", default=4)
    if no_rope is None or len(no_rope) < n:
        no_rope = [int((i + 1) % interval != 0) for i in range(n)]
    mask = _moe_layer_mask(c, n)
    layers = []
    for i in range(n):
        chunked = bool(no_rope[i]) and chunk is not None
        mixer = _gqa_mixer(
            hidden,
            heads,
            kv,
            head_dim,
            attention="sliding" if chunked else "full",
            window=chunk if chunked else None,
            qkv_bias=c.flag("attention_bias"),
        )
        if mask[i]:
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=expert_inter,
            )
        else:
            ffn = _dense_ffn(hidden, dense_inter, True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _gemma4_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    global_head_dim = c.pos("global_head_dim", default=head_dim)
    k_eq_v = c.flag("attention_k_eq_v")
    global_kv = c.pos("num_global_key_value_heads", default=kv) if k_eq_v else kv
    window, kinds = _window_kinds(c, "gemma4_text", n)
    inter = c.pos("intermediate_size")
    moe = c.flag("enable_moe_block")
    shared_kv_layers = c.int_("num_kv_shared_layers", default=0)
    layers = []
    for i in range(n):
        sliding = kinds[i] == "sliding"
        if sliding:
            mixer = _gqa_mixer(
                hidden,
                heads,
                kv,
                head_dim,
                attention="sliding",
                window=window,
                qk_norm=2 * head_dim,
            )
        else:
            mixer = _gqa_mixer(
                hidden,
                heads,
                global_kv,
                global_head_dim,
                no_v_proj=k_eq_v,
                qk_norm=2 * global_head_dim,
            )
        if i >= n - shared_kv_layers > 0:
            mixer = replace(mixer, kv_elems=0)  # reuses an earlier layer's cache (YOCO)
        if moe:
            experts, top_k = _experts_top_k(c)
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=c.pos("moe_intermediate_size", "expert_intermediate_size"),
                extra_dense=_expert_params(hidden, inter, True),
            )
        else:
            ffn = _dense_ffn(hidden, inter, True)
        layers.append(_make_layer(mixer, ffn, 5 * hidden, i, i))
    return layers


def _mimo_v2_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """MiMo-V2-Flash: 1 global + 5 sliding-window layers, different KV heads per kind, MoE."""
    pattern = _layer_flags(c.get("hybrid_layer_pattern"), n, (1, True, "1"))
    sliding_flags = pattern or [False] * n
    window = c.pos("sliding_window", "sliding_window_size", default=128)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size")
    shared = _shared_inter(c, expert_inter)
    dense_inter = c.pos("intermediate_size")
    mask = _moe_layer_mask(c, n)
    layers = []
    for i in range(n):
        if sliding_flags[i]:
            heads = c.pos("swa_num_attention_heads", "num_attention_heads")
            kv = c.pos("swa_num_key_value_heads", "num_key_value_heads")
            hd = c.pos("swa_head_dim", "head_dim")
            vd = c.pos("swa_v_head_dim", "v_head_dim", default=hd)
            mixer = _gqa_mixer(
                hidden, heads, kv, hd, v_head_dim=vd, attention="sliding", window=window, sinks=True
            )
        else:
            heads = c.pos("num_attention_heads")
            kv = c.pos("num_key_value_heads")
            hd = c.pos("head_dim")
            vd = c.pos("v_head_dim", default=hd)
            mixer = _gqa_mixer(hidden, heads, kv, hd, v_head_dim=vd)
        if mask[i]:
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=shared,
                router_bias=True,
            )
        else:
            ffn = _dense_ffn(hidden, dense_inter, True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _minimax_m3_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads")
    head_dim = c.pos("head_dim", default=hidden // heads)
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size", "intermediate_size")
    shared = _shared_inter(c, expert_inter)
    dense_inter = c.pos("dense_intermediate_size", "intermediate_size")
    mask = _moe_layer_mask(c, n)
    sparse = c.get("sparse_attention_config") or {}
    sparse_flags = (
        _layer_flags(sparse.get("sparse_attention_freq"), n, (1, True, "1")) or [False] * n
    )
    index_heads = int(sparse.get("sparse_num_index_heads") or 0)
    index_dim = int(sparse.get("sparse_index_dim") or 0)
    layers = []
    for i in range(n):
        extra = 0
        if sparse_flags[i] and index_heads and index_dim:
            extra = hidden * index_heads * index_dim + hidden * index_dim
        mixer = _gqa_mixer(hidden, heads, kv, head_dim, qk_norm=2 * head_dim, extra=extra)
        if sparse_flags[i] and index_dim:
            mixer = replace(mixer, kv_elems=mixer.kv_elems + index_dim)
        if mask[i]:
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=shared,
                router_bias=True,
            )
        else:
            ffn = _dense_ffn(hidden, dense_inter, True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _step_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """Step-3.x Flash style: full/sliding GQA layers, first dense layers then MoE with a shared expert."""
    return _mixtral_like_layers(c, "step", hidden, n)


# ------------------------------------------------------------------ hybrid linear-attention families


def _gdn_mixer(c: _Cfg, hidden: int) -> _Mixer:
    """Gated DeltaNet (Qwen3-Next / Qwen3.5 linear_attention layers)."""
    k_heads = c.pos("linear_num_key_heads")
    v_heads = c.pos("linear_num_value_heads")
    k_dim = c.pos("linear_key_head_dim")
    v_dim = c.pos("linear_value_head_dim")
    kernel = c.pos("linear_conv_kernel_dim", default=4)
    key = k_heads * k_dim
    value = v_heads * v_dim
    conv = 2 * key + value
    params = hidden * (2 * key + 2 * value) + hidden * 2 * v_heads + conv * kernel
    params += 2 * v_heads + v_dim + value * hidden
    state = v_heads * k_dim * v_dim + conv * (kernel - 1)
    return _Mixer("linear", None, v_heads, k_heads, k_dim, v_dim, 0, state, params, False)


def _qwen_next_layers(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    kinds = _layer_types(c, n)
    if kinds is None:
        interval = c.pos("full_attention_interval", default=4)
        kinds = ["full" if (i + 1) % interval == 0 else "linear" for i in range(n)]
    is_moe = c.get("num_experts") is not None and c.get("moe_intermediate_size") is not None
    mask = _moe_layer_mask(c, n) if is_moe else [False] * n
    layers = []
    for i in range(n):
        if kinds[i] == "linear":
            mixer = _gdn_mixer(c, hidden)
        else:
            mixer = _gqa_mixer(
                hidden,
                heads,
                kv,
                head_dim,
                q_gate=c.flag("attn_output_gate", default=True),
                qk_norm=2 * head_dim,
            )
        if mask[i]:
            experts, top_k = _experts_top_k(c)
            expert_inter = c.pos("moe_intermediate_size")
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=_shared_inter(c, expert_inter),
                shared_gate=True,
            )
        else:
            ffn = _dense_ffn(hidden, c.pos("intermediate_size"), True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _minimax_linear_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    """MiniMax-Text-01 / M1: lightning (linear) attention with a softmax layer every few layers."""
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", default=hidden // heads)
    types = _first_list(c.get("attn_type_list"))
    if types is None or len(types) < n:
        raise BudsimError(f"model config {c.name!r}: attn_type_list missing or too short")
    experts, top_k = _experts_top_k(c)
    inter = c.pos("intermediate_size")
    ffn = _moe_ffn(c, hidden, experts=experts, top_k=top_k, expert_inter=inter)
    layers = []
    for i in range(n):
        if int(types[i]) == 0:
            params = hidden * 3 * heads * head_dim + hidden * heads * head_dim
            params += heads * head_dim * hidden + heads * head_dim
            state = heads * head_dim * head_dim
            mixer = _Mixer(
                "linear", None, heads, heads, head_dim, head_dim, 0, state, params, False
            )
        else:
            mixer = _gqa_mixer(hidden, heads, kv, head_dim)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _kda_mixer(lc: Mapping[str, Any], hidden: int) -> _Mixer:
    """Kimi Delta Attention (Kimi-Linear / Kimi-K3 linear layers)."""
    heads = int(lc.get("num_heads") or 0)
    hd = int(lc.get("head_dim") or 0)
    kernel = int(lc.get("short_conv_kernel_size") or 4)
    if heads <= 0 or hd <= 0:
        raise BudsimError("linear_attn_config needs positive num_heads and head_dim")
    width = heads * hd
    params = 3 * hidden * width + 3 * width * kernel  # q, k, v + short convs
    if lc.get("use_full_rank_gate"):
        params += hidden * width
    else:
        params += hidden * hd + hd * width  # forget gate low rank
    params += hidden * hd + hd * width  # output gate low rank
    params += hidden * heads + 2 * width + hd + width * hidden  # beta, A/dt, norm, o_proj
    state = heads * hd * hd + 3 * width * (kernel - 1)
    return _Mixer("linear", None, heads, heads, hd, hd, 0, state, params, False)


def _kimi_linear_layers(c: _Cfg, hidden: int, n: int) -> list[_Layer]:
    lc = c.get("linear_attn_config") or {}
    full = {int(x) for x in (_first_list(lc.get("full_attn_layers")) or [])}
    kda = {int(x) for x in (_first_list(lc.get("kda_layers")) or [])}
    experts, top_k = _experts_top_k(c)
    expert_inter = c.pos("moe_intermediate_size")
    shared = _shared_inter(c, expert_inter)
    latent = c.opt_int("routed_expert_hidden_size")
    dense_inter = c.pos("intermediate_size")
    mask = _moe_layer_mask(c, n)
    layers = []
    for i in range(n):
        one_based = i + 1
        if one_based in kda and one_based not in full:
            mixer = _kda_mixer(lc, hidden)
        else:
            mixer = _mla_mixer(c, hidden)
        if mask[i]:
            ffn = _moe_ffn(
                c,
                hidden,
                experts=experts,
                top_k=top_k,
                expert_inter=expert_inter,
                shared_inter=shared,
                router_bias=True,
                latent=latent if latent and latent != hidden else None,
            )
        else:
            ffn = _dense_ffn(hidden, dense_inter, True)
        layers.append(_make_layer(mixer, ffn, 2 * hidden, i, i))
    return layers


def _nemotron_h_layers(c: _Cfg, hidden: int) -> list[_Layer]:
    """Nemotron-H / Nemotron 3: Mamba-2, attention, MLP and MoE blocks, paired into layers."""
    pattern = c.get("hybrid_override_pattern")
    blocks: list[str]
    if isinstance(pattern, str) and pattern:
        blocks = list(pattern)
    else:
        names = _first_list(c.get("layers_block_type"))
        if not names:
            raise BudsimError(
                f"model config {c.name!r}: no hybrid_override_pattern / layers_block_type"
            )
        table = {"mamba": "M", "attention": "*", "mlp": "-", "moe": "E"}
        try:
            blocks = [table[str(x).lower()] for x in names]
        except KeyError as exc:
            raise BudsimError(
                f"model config {c.name!r}: unknown block type {exc.args[0]!r}"
            ) from None
    heads = c.pos("num_attention_heads")
    kv = c.pos("num_key_value_heads", default=heads)
    head_dim = c.pos("head_dim", "attention_head_dim", default=hidden // heads)
    m_heads = c.pos("mamba_num_heads")
    m_head_dim = c.pos("mamba_head_dim")
    groups = c.pos("n_groups", default=1)
    d_state = c.pos("ssm_state_size")
    kernel = c.pos("conv_kernel", default=4)
    d_inner = m_heads * m_head_dim
    conv_dim = d_inner + 2 * groups * d_state
    mamba_params = hidden * (2 * d_inner + 2 * groups * d_state + m_heads)
    mamba_params += conv_dim * kernel + conv_dim + 3 * m_heads + d_inner + d_inner * hidden
    mamba_state = m_heads * m_head_dim * d_state + conv_dim * (kernel - 1)
    mamba = _Mixer(
        "linear", None, m_heads, groups, d_state, m_head_dim, 0, mamba_state, mamba_params, False
    )
    attn = _gqa_mixer(hidden, heads, kv, head_dim)
    mlp_inter = c.opt_int("intermediate_size")

    def ffn_for(ch: str) -> _Ffn:
        if ch == "-":
            if not mlp_inter:
                raise BudsimError(f"model config {c.name!r}: MLP blocks need intermediate_size")
            return _dense_ffn(hidden, mlp_inter, False)
        experts, top_k = _experts_top_k(c)
        expert_inter = c.pos("moe_intermediate_size")
        shared_inter = c.int_("moe_shared_expert_intermediate_size", default=0)
        latent = c.opt_int("moe_latent_size")
        ffn = _moe_ffn(
            c,
            hidden,
            experts=experts,
            top_k=top_k,
            expert_inter=expert_inter,
            gated=False,
            router_bias=True,
            latent=latent,
        )
        shared = _expert_params(hidden, shared_inter, False) if shared_inter else 0
        return replace(ffn, dense=ffn.dense + shared)

    layers: list[_Layer] = []
    current: list[Any] | None = None  # [mixer, mixer_idx, ffn, ffn_idx]
    for idx, ch in enumerate(blocks):
        if ch in ("M", "*"):
            if current is not None:
                layers.append(_pair(current, hidden))
            current = [mamba if ch == "M" else attn, idx, None, None]
        elif ch in ("-", "E"):
            if current is not None and current[2] is None:
                current[2], current[3] = ffn_for(ch), idx
            else:
                if current is not None:
                    layers.append(_pair(current, hidden))
                current = [None, None, ffn_for(ch), idx]
        else:
            raise BudsimError(f"model config {c.name!r}: unknown block {ch!r} in hybrid pattern")
    if current is not None:
        layers.append(_pair(current, hidden))
    return layers


def _pair(current: list[Any], hidden: int) -> _Layer:
    mixer: _Mixer = current[0] or _NO_MIXER
    ffn: _Ffn = current[2] or _NO_FFN
    norms = hidden * ((1 if current[0] else 0) + (1 if current[2] else 0))
    return _make_layer(mixer, ffn, norms, current[1], current[3])


# --------------------------------------------------------------------------------------------------
# Quantisation
# --------------------------------------------------------------------------------------------------

_ALGO_DTYPE: dict[str, tuple[str, float]] = {
    "FP8": ("fp8", 1.0),
    "FP8_PB_WO": ("fp8", 1.0),
    "FP8_BLOCK": ("fp8", 1.0),
    "FP8_PER_CHANNEL_PER_TOKEN": ("fp8", 1.0),
    "W8A8_FP8": ("fp8", 1.0),
    "MXFP8": ("fp8", 1.0 + 1.0 / 32),
    "NVFP4": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "W4A16_NVFP4": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "NVFP4_AWQ": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "W4A8_NVFP4_FP8": ("nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]),
    "MXFP4": ("mxfp4", dtypes.WEIGHT_BYTES["mxfp4"]),
    "W4A8_MXFP4_FP8": ("mxfp4", dtypes.WEIGHT_BYTES["mxfp4"]),
    "W4A16_AWQ": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "W4A8_AWQ": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "INT4_AWQ": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "INT4": ("int4", dtypes.WEIGHT_BYTES["int4"]),
    "INT8": ("int8", 1.0),
    "W8A8_SQ_PER_CHANNEL": ("int8", 1.0),
    "INT8_SQ": ("int8", 1.0),
    "W8A16": ("int8", 1.0),
}


@dataclass
class _QuantPlan:
    method: str | None = None
    dtype: str = "bf16"  # dominant quantised dtype (checkpoint_dtype)
    default: float = _SIXTEEN_BIT  # bytes/param of body components not otherwise listed
    default_dtype: str = "bf16"
    # (layer or None for all, components, bytes per param, dtype) applied in order; later wins
    rules: list[tuple[int | None, frozenset[str], float, str]] | None = None
    kv_dtype: str | None = None


def _use(plan: _QuantPlan, dtype: str) -> None:
    """Quantise the whole body to ``dtype`` by default."""
    plan.dtype = plan.default_dtype = dtype
    plan.default = dtypes.WEIGHT_BYTES[dtype]


def _torch_dtype(value: Any) -> str:
    s = str(value or "bfloat16").lower().replace("torch.", "")
    if s in ("float16", "fp16", "half"):
        return "fp16"
    return "bf16"  # bfloat16, float32 (served in 16 bit), unknown


@functools.lru_cache(maxsize=65536)
def _classify_module(pattern: str) -> tuple[int | None, frozenset[str]]:
    """Map a module name / glob / ``re:`` regex to (layer index or None for all, components)."""
    s = pattern[3:] if pattern.startswith("re:") else pattern
    s = s.replace("\\.", ".").lower()
    if any(
        t in s for t in ("vision", "visual", "mm_projector", "multi_modal", "patch_merge", "audio")
    ):
        return None, frozenset()
    if re.search(r"(^|[.*])mtp([.*]|$)", s):
        return None, frozenset()
    m = re.search(r"layers\.(\d+)", s)
    layer = int(m.group(1)) if m else None
    rest = s[m.end() :] if m else s
    if m and re.fullmatch(r"[.*]*", rest):
        return layer, _BODY
    if re.search(r"embed_tokens|embeddings|(^|\.)wte($|\.)|tok_embeddings", rest):
        return layer, frozenset({"embed"})
    if re.search(r"lm_head|(^|[.*])head$|^output$", rest):
        return layer, frozenset({"lm_head"})
    if "shared_expert" in rest:
        return layer, frozenset({"shared"})
    if "experts" in rest:
        return layer, frozenset({"experts"})
    if re.search(r"(^|[.*])(gate|router|e_score_correction_bias|shared_expert_gate)([.*]|$)", rest):
        return layer, frozenset()
    if re.search(r"norm|layernorm", rest.split(".")[-1] if rest else ""):
        return layer, frozenset()
    if re.search(r"self_attn|(^|[.*])attn([.*]|$)|attention|linear_attn|indexer|mixer", rest):
        return layer, frozenset({"attn"})
    if re.search(r"mlp|ffn|feed_forward|block_sparse_moe", rest):
        return layer, frozenset({"dense", "shared"})
    return layer, frozenset()


def _patterns(value: Any) -> list[str]:
    items = _first_list(value)
    if items is None:
        return [value] if isinstance(value, str) else []
    return [str(x) for x in items]


def _ct_weight_dtype(weights: Mapping[str, Any], fmt: str) -> tuple[str, float] | None:
    """compressed-tensors weight scheme -> (dtype, bytes per param)."""
    bits = int(weights.get("num_bits") or 16)
    kind = str(weights.get("type") or "int").lower()
    group = weights.get("group_size")
    if bits >= 16:
        return None
    if bits == 8:
        return ("fp8", 1.0) if kind == "float" else ("int8", 1.0)
    if bits == 4 and kind == "float":
        if "mxfp4" in fmt or group == 32:
            return "mxfp4", dtypes.WEIGHT_BYTES["mxfp4"]
        return "nvfp4", dtypes.WEIGHT_BYTES["nvfp4"]
    if bits == 4:
        g = int(group) if isinstance(group, int) and group > 0 else 128
        per_group = 2.0 if weights.get("symmetric", True) else 4.0
        return "int4", 0.5 + per_group / g
    return "int8", bits / 8.0


def _int_bits_dtype(bits: int, group: Any) -> tuple[str, float]:
    if bits <= 4:
        g = int(group) if isinstance(group, int) and group > 0 else 0
        return "int4", (0.5 + 4.0 / g) if g else 0.5
    return "int8", 1.0


def _kv_from(value: Any) -> str | None:
    if isinstance(value, str):
        return "fp8" if "fp8" in value.lower() else None
    if isinstance(value, Mapping):
        if int(value.get("num_bits") or 16) == 8:
            return "fp8"
    return None


def _quant_plan(
    qc: Mapping[str, Any] | None,
    hfq: Mapping[str, Any] | None,
    base: str,
    expert_dtype: str | None = None,
) -> _QuantPlan:
    """Interpret ``quantization_config`` / ModelOpt ``hf_quant_config.json``."""
    plan = _build_quant_plan(qc, hfq, base)
    if expert_dtype and str(expert_dtype).lower() in ("fp4", "mxfp4"):
        assert plan.rules is not None
        # DeepSeek-V4 style: routed experts ship in FP4 (e8m0 block scales) inside an FP8 checkpoint
        fp4 = (None, frozenset({"experts"}), dtypes.WEIGHT_BYTES["mxfp4"], "mxfp4")
        plan.rules.insert(0, fp4)  # explicit per-layer entries (NVFP4 re-quantisation) still win
    return plan


def _build_quant_plan(
    qc: Mapping[str, Any] | None, hfq: Mapping[str, Any] | None, base: str
) -> _QuantPlan:
    plan = _QuantPlan(dtype=base, default_dtype=base, rules=[])
    assert plan.rules is not None
    counts: dict[str, int] = {}
    modelopt: Mapping[str, Any] | None = None
    if hfq:
        modelopt = hfq.get("quantization") if isinstance(hfq.get("quantization"), Mapping) else hfq
    qc = qc or {}
    method = str(qc.get("quant_method") or "").lower() or None
    if modelopt is None and (qc.get("quant_algo") or method == "modelopt"):
        modelopt = qc
    if (
        modelopt is not None
        and (modelopt.get("quant_algo") or modelopt.get("quantized_layers"))
        and (method in (None, "modelopt") or modelopt.get("quant_algo") == "MIXED_PRECISION")
    ):
        plan.method = "modelopt"
        plan.kv_dtype = _kv_from(modelopt.get("kv_cache_quant_algo")) or _kv_from(
            qc.get("kv_cache_scheme")
        )
        algo = str(modelopt.get("quant_algo") or "").upper()
        layers = modelopt.get("quantized_layers")
        if algo == "MIXED_PRECISION" or isinstance(layers, Mapping):
            for module, info in (layers or {}).items():
                sub = str((info or {}).get("quant_algo") or "").upper()
                found = _ALGO_DTYPE.get(sub)
                if found is None:
                    continue
                layer, comps = _classify_module(str(module))
                if comps:
                    plan.rules.append((layer, comps, found[1], found[0]))
                    counts[found[0]] = counts.get(found[0], 0) + 1
            if counts:
                plan.dtype = max(counts, key=lambda k: counts[k])
        else:
            found = _ALGO_DTYPE.get(algo)
            if found is not None:
                plan.dtype, plan.default = found
                plan.default_dtype = found[0]
        if method == "fp8" and algo == "MIXED_PRECISION":
            # an FP8 block-scaled checkpoint whose experts were re-quantised (DeepSeek-V4 NVFP4):
            # everything not listed stays FP8, so the exclusion list does not mean 16 bit
            plan.default, plan.default_dtype = 1.0, "fp8"
            return plan
        for pat in _patterns(modelopt.get("exclude_modules")) + _patterns(qc.get("ignore")):
            layer, comps = _classify_module(pat)
            if comps:
                plan.rules.append((layer, comps, _SIXTEEN_BIT, base))
        return plan

    if not method:
        return plan
    plan.method = method
    ignore = _patterns(qc.get("modules_to_not_convert")) + _patterns(qc.get("ignore"))
    ignore += _patterns(qc.get("llm_int8_skip_modules"))
    if method in ("fp8", "fbgemm_fp8", "ptpc_fp8"):
        _use(plan, "fp8")
    elif method == "mxfp4":
        _use(plan, "mxfp4")
    elif method in ("awq", "gptq", "awq_marlin", "gptq_marlin", "auto-round", "autoround"):
        bits = int(qc.get("bits") or qc.get("w_bit") or 4)
        group = qc.get("group_size") or qc.get("q_group_size")
        plan.dtype, plan.default = _int_bits_dtype(bits, group)
        plan.default_dtype = plan.dtype
    elif method == "bitsandbytes":
        if qc.get("load_in_4bit"):
            plan.dtype, plan.default = "int4", 0.5 + 4.0 / 64
        else:
            plan.dtype, plan.default = "int8", 1.0
        plan.default_dtype = plan.dtype
    elif method in ("experts_int8",):
        plan.dtype = "int8"
        plan.rules.append((None, frozenset({"experts"}), 1.0, "int8"))
    elif method == "compressed-tensors":
        plan.kv_dtype = _kv_from(qc.get("kv_cache_scheme"))
        fmt = str(qc.get("format") or "").lower()
        groups = qc.get("config_groups") or {}
        for group in groups.values() if isinstance(groups, Mapping) else []:
            weights = group.get("weights") if isinstance(group, Mapping) else None
            if not isinstance(weights, Mapping):
                continue
            found = _ct_weight_dtype(weights, str(group.get("format") or fmt).lower())
            if found is None:
                continue
            targets = _patterns(group.get("targets"))
            if not targets or any(t.lower() == "linear" for t in targets):
                plan.default, plan.default_dtype = found[1], found[0]
                counts[found[0]] = counts.get(found[0], 0) + 1_000_000
            else:
                for t in targets:
                    layer, comps = _classify_module(t)
                    if comps:
                        plan.rules.append((layer, comps, found[1], found[0]))
                        counts[found[0]] = counts.get(found[0], 0) + 1
        if counts:
            plan.dtype = max(counts, key=lambda k: counts[k])
    elif method == "quark":
        glob_cfg = qc.get("global_quant_config") or {}
        weight = glob_cfg.get("weight") if isinstance(glob_cfg, Mapping) else None
        wdt = str((weight or {}).get("dtype") or "").lower() if isinstance(weight, Mapping) else ""
        if "fp8" in wdt:
            _use(plan, "fp8")
        elif "fp4" in wdt:
            _use(plan, "mxfp4")
        elif "int4" in wdt or "uint4" in wdt:
            _use(plan, "int4")
        elif "int8" in wdt:
            _use(plan, "int8")
        ignore += _patterns(qc.get("exclude"))
        plan.kv_dtype = "fp8" if qc.get("kv_cache_quant_config") else None
    else:
        raw_bits = qc.get("bits") or qc.get("w_bit") or qc.get("num_bits")
        if isinstance(raw_bits, int) and raw_bits < 16:
            plan.dtype, plan.default = _int_bits_dtype(raw_bits, qc.get("group_size"))
            plan.default_dtype = plan.dtype
    for pat in ignore:
        layer, comps = _classify_module(pat)
        if comps:
            plan.rules.append((layer, comps, _SIXTEEN_BIT, base))
    return plan


def _checkpoint_bytes(
    layers: Sequence[_Layer], plan: _QuantPlan, embed: int, head: int, final_norm: int
) -> tuple[float, str]:
    """Bytes of the checkpoint as stored, and the dtype holding most of the quantised parameters."""
    rules = list(enumerate(plan.rules or []))
    total = float(final_norm) * _SIXTEEN_BIT
    by_dtype: dict[str, float] = {}
    # Embeddings and LM head: 16-bit unless a rule quantises them explicitly.
    emb_b = head_b = _SIXTEEN_BIT
    for _, (layer, comps, per, _dt) in rules:
        if layer is None and "embed" in comps:
            emb_b = per
        if layer is None and "lm_head" in comps:
            head_b = per
    total += embed * emb_b + head * head_b
    whole_model = [r for r in rules if r[1][0] is None]
    by_layer: dict[int, list[tuple[int, tuple[int | None, frozenset[str], float, str]]]] = {}
    for r in rules:
        if r[1][0] is not None:
            by_layer.setdefault(int(r[1][0]), []).append(r)
    for lay in layers:
        spec = lay.spec
        parts = (
            ("attn", float(spec.attn_params), lay.attn_idx),
            ("dense", float(spec.dense_params), lay.mlp_idx),
            ("experts", float(spec.num_experts * spec.expert_params), lay.mlp_idx),
        )
        for comp, count, idx in parts:
            if not count:
                continue
            per, dt = plan.default, plan.default_dtype
            extra = by_layer.get(idx, []) if idx is not None else []
            applicable = sorted(whole_model + extra) if extra else whole_model
            for _, (_layer, names, rule_per, rule_dt) in applicable:
                if comp == "dense":
                    hit = ("shared" in names) if spec.mlp_kind == "moe" else ("dense" in names)
                else:
                    hit = comp in names
                if hit:
                    per, dt = rule_per, rule_dt
            total += count * per
            if per < _SIXTEEN_BIT:
                by_dtype[dt] = by_dtype.get(dt, 0.0) + count
    dominant = max(by_dtype, key=lambda k: by_dtype[k]) if by_dtype else plan.dtype
    if not by_dtype and plan.method and plan.default >= _SIXTEEN_BIT:
        dominant = plan.dtype
    return total, dominant


# --------------------------------------------------------------------------------------------------
# Parsing entry point
# --------------------------------------------------------------------------------------------------


def _text_config(config: Mapping[str, Any], name: str) -> tuple[dict[str, Any], Mapping[str, Any]]:
    """The text-decoder part of a config (multimodal wrappers keep it in text_config/llm_config)."""
    if not isinstance(config, Mapping):
        raise BudsimError(f"model config {name!r} is not a JSON object")
    inner = None
    for key in ("text_config", "llm_config", "language_config", "text_model_config"):
        if isinstance(config.get(key), Mapping):
            inner = config[key]
            break
    if inner is None:
        return dict(config), config
    merged = dict(inner)
    for key in (
        "quantization_config",
        "hf_quant_config",
        "tie_word_embeddings",
        "torch_dtype",
        "dtype",
    ):
        if merged.get(key) is None and config.get(key) is not None:
            merged[key] = config[key]
    if config.get("quantization_config") is not None:
        merged["quantization_config"] = config["quantization_config"]
    if not merged.get("architectures") and config.get("architectures"):
        merged["architectures"] = config["architectures"]
    return merged, config


def _reject_non_decoder(top: Mapping[str, Any], merged: Mapping[str, Any], name: str) -> None:
    mt = str(top.get("model_type") or merged.get("model_type") or "").lower()
    archs = [str(a) for a in (top.get("architectures") or [])]
    if top.get("is_encoder_decoder") is True or merged.get("is_encoder_decoder") is True:
        raise BudsimError(
            f"model {name!r} is an encoder-decoder model; budsim plans decoder-only LLMs"
        )
    if mt in _ENCODER_TYPES:
        raise BudsimError(
            f"model {name!r} is an encoder-only model ({mt}); budsim plans decoder-only LLMs"
        )
    if mt in _VISION_TYPES:
        raise BudsimError(
            f"model {name!r} is a vision model ({mt}); budsim plans decoder-only LLMs"
        )
    if archs and not any(a.endswith(_DECODER_HEADS) for a in archs):
        if any(a.endswith(_ENCODER_HEADS) for a in archs):
            raise BudsimError(
                f"model {name!r} ({archs[0]}) is not a text-generation decoder; budsim plans "
                "decoder-only LLMs"
            )
    has_text = any(
        isinstance(top.get(k), Mapping) for k in ("text_config", "llm_config", "language_config")
    )
    if (
        isinstance(top.get("vision_config"), Mapping)
        and not has_text
        and top.get("vocab_size") is None
    ):
        raise BudsimError(f"model {name!r} is a vision-only config; budsim plans decoder-only LLMs")


def _max_context(c: _Cfg, mt: str) -> int:
    mpe = c.opt_int(
        "max_position_embeddings", "n_positions", "seq_length", "max_sequence_length", "n_ctx"
    )
    rs = c.get("rope_scaling")
    if not isinstance(rs, Mapping):
        rp = c.get("rope_parameters")
        rs = rp if isinstance(rp, Mapping) and "rope_type" in rp else None
    base = mpe if mpe and mpe > 0 else 2048
    if isinstance(rs, Mapping):
        kind = str(rs.get("rope_type") or rs.get("type") or "default").lower()
        factor = rs.get("factor")
        if isinstance(factor, (int, float)) and factor > 1:
            if kind == "yarn":
                orig = rs.get("original_max_position_embeddings")
                if isinstance(orig, (int, float)) and orig > 0:
                    return max(base, int(orig * factor))
            elif kind in ("linear", "dynamic") and not mt.startswith("gemma3"):
                return int(base * factor)
    return base


def _dispatch(c: _Cfg, mt: str, hidden: int, n: int) -> list[_Layer]:
    arch = str((c.get("architectures") or [""])[0])
    if mt in ("gptj",):
        return _gptj_layers(c, hidden, n)
    if mt == "qwen" or arch == "QWenLMHeadModel":
        return _qwen1_layers(c, hidden, n)
    if mt in ("falcon", "RefinedWeb", "RefinedWebModel"):
        return _falcon_layers(c, hidden, n)
    if mt == "phi3small":
        return _phi3small_layers(c, hidden, n)
    if mt in ("nemotron-nas", "nemotron_nas", "deci") or c.get("block_configs") is not None:
        return _decilm_layers(c, hidden, n)
    if mt == "nemotron_h" or c.get("hybrid_override_pattern") is not None:
        return _nemotron_h_layers(c, hidden)
    if mt in ("deepseek_v4", "deepseek_ref") or c.get("compress_ratios") is not None:
        return _deepseek_v4_layers(c, hidden, n)
    if mt == "kimi_linear" or c.get("linear_attn_config") is not None:
        return _kimi_linear_layers(c, hidden, n)
    if mt.startswith(("qwen3_next", "qwen3_5")) or c.get("linear_num_value_heads") is not None:
        return _qwen_next_layers(c, mt, hidden, n)
    if c.get("attn_type_list") is not None:
        return _minimax_linear_layers(c, hidden, n)
    if mt == "gpt_oss":
        return _gpt_oss_layers(c, hidden, n)
    if mt.startswith("llama4"):
        return _llama4_layers(c, hidden, n)
    if mt.startswith("gemma4"):
        return _gemma4_layers(c, hidden, n)
    if mt == "mimo_v2_flash" or c.get("hybrid_layer_pattern") is not None:
        return _mimo_v2_layers(c, hidden, n)
    if mt == "minimax_m3" or c.get("sparse_attention_config") is not None:
        return _minimax_m3_layers(c, hidden, n)
    if c.get("kv_lora_rank") is not None or mt.startswith(
        ("deepseek", "kimi_k2", "glm_moe", "glm4_moe")
    ):
        return _deepseek_layers(c, mt, hidden, n)
    if c.get("n_routed_experts") is not None and c.get("moe_intermediate_size") is not None:
        return _deepseek_layers(c, mt, hidden, n)
    moe_keys = ("num_local_experts", "num_experts", "n_routed_experts", "moe_num_experts")
    if any(isinstance(c.get(k), int) and c.get(k) > 0 for k in moe_keys):
        if mt.startswith("step"):
            return _step_layers(c, hidden, n)
        return _mixtral_like_layers(c, mt, hidden, n)
    return _generic_layers(c, mt, hidden, n)


def model_from_config(config: Mapping[str, Any], name: str) -> ModelSpec:
    """Build a ModelSpec from a raw HF ``config.json`` dict (or a trimmed catalog copy).

    A ModelOpt ``hf_quant_config.json`` may be passed inside the dict under ``"hf_quant_config"``.
    Raises BudsimError with one line for non-decoder or malformed configs.
    """
    merged, top = _text_config(config, name)
    _reject_non_decoder(top, merged, name)
    c = _Cfg(merged, name)
    mt = str(merged.get("model_type") or top.get("model_type") or "").lower()
    archs = merged.get("architectures") or top.get("architectures") or []
    architecture = str(top.get("architectures", [None])[0] if top.get("architectures") else "") or (
        str(archs[0]) if archs else mt or "unknown"
    )
    hidden = c.pos("hidden_size", "n_embd", "d_model", "dim", "model_dim")
    pattern = merged.get("hybrid_override_pattern") or merged.get("layers_block_type")
    n_default = len(pattern) if pattern and mt == "nemotron_h" else None
    n = c.pos("num_hidden_layers", "n_layer", "num_layers", "n_layers", default=n_default)
    vocab = c.pos("vocab_size", "padded_vocab_size", "n_vocab")
    layers = _dispatch(c, mt, hidden, n)
    if not layers:
        raise BudsimError(f"model config {name!r} describes no decoder layers")
    for lay in layers:
        if lay.spec.total_params < 0 or lay.spec.kv_elems_per_token < 0:
            raise BudsimError(f"model config {name!r} gives negative layer sizes")

    tie_default = mt in _TIED_BY_DEFAULT
    tie = bool(c.get("tie_word_embeddings", default=tie_default))
    positions = 0
    if mt in _LEARNED_POSITIONS:
        mpe = c.opt_int("max_position_embeddings", "n_positions") or 2048
        positions = (mpe + (2 if mt == "opt" else 0)) * hidden

    groups: dict[LayerSpec, int] = {}
    for lay in layers:
        groups[lay.spec] = groups.get(lay.spec, 0) + 1

    base = _torch_dtype(merged.get("torch_dtype") or merged.get("dtype"))
    qc = merged.get("quantization_config")
    hfq = merged.get("hf_quant_config")
    plan = _quant_plan(
        qc if isinstance(qc, Mapping) else None,
        hfq if isinstance(hfq, Mapping) else None,
        base,
        merged.get("expert_dtype"),
    )
    head = 0 if tie else vocab * hidden
    ckpt, ckpt_dtype = _checkpoint_bytes(layers, plan, vocab * hidden + positions, head, hidden)

    return ModelSpec(
        name=name,
        model_type=mt or "unknown",
        architecture=architecture,
        hidden_size=hidden,
        num_layers=len(layers),
        vocab_size=vocab,
        tie_word_embeddings=tie,
        max_context=_max_context(c, mt),
        layer_groups=tuple(groups.items()),
        checkpoint_dtype=ckpt_dtype,
        quant_method=plan.method,
        checkpoint_bytes=ckpt,
        kv_cache_dtype=plan.kv_dtype,
        position_embedding_params=positions,
        fp8_block=isinstance(qc, Mapping)
        and plan.method == "fp8"
        and bool(qc.get("weight_block_size")),
        mtp_layers=c.opt_int("num_nextn_predict_layers", "mtp_num_hidden_layers") or 0,
    )


# --------------------------------------------------------------------------------------------------
# Catalog, aliases and loading
# --------------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=1)
def _catalog_index() -> dict[str, tuple[str, Path]]:
    """lower-case id -> (id, file)."""
    index: dict[str, tuple[str, Path]] = {}
    if CATALOG_DIR.is_dir():
        for path in sorted(CATALOG_DIR.glob("*__*.json")):
            org, _, short = path.stem.partition("__")
            model_id = f"{org}/{short}"
            index[model_id.lower()] = (model_id, path)
    return index


@functools.lru_cache(maxsize=1)
def _alias_table() -> tuple[dict[str, str], dict[str, str], frozenset[str]]:
    """(lower-case alias -> catalog id, alias -> checkpoint dtype override, ambiguous names)."""
    if not ALIASES_FILE.is_file():
        return {}, {}, frozenset()
    data = json.loads(ALIASES_FILE.read_text())
    aliases = {str(k).lower(): str(v) for k, v in (data.get("aliases") or {}).items()}
    dtype_over = {str(k).lower(): str(v) for k, v in (data.get("dtype") or {}).items()}
    ambiguous = frozenset(str(k).lower() for k in (data.get("ambiguous") or []))
    return aliases, dtype_over, ambiguous


def list_catalog() -> list[str]:
    """Catalog ids (HF ``org/name``), sorted."""
    return sorted(model_id for model_id, _ in _catalog_index().values())


def list_aliases() -> dict[str, str]:
    """Every alias the catalog accepts, alias -> catalog id."""
    return dict(_alias_table()[0])


_STRIP_SUFFIXES = (
    "-instruct",
    "-chat",
    "-hf",
    "-it",
    "-base",
    "-thinking",
    "-2507",
    "-0905",
    "-0324",
)


def _norm_name(name: str) -> str:
    s = name.strip().lower().replace("_", "-").replace(" ", "-")
    s = s.rsplit("/", 1)[-1]
    if s.startswith("meta-llama-"):
        s = s[len("meta-") :]
    changed = True
    while changed:
        changed = False
        for suffix in _STRIP_SUFFIXES:
            if s.endswith(suffix):
                s = s[: -len(suffix)]
                changed = True
    return s


def _resolve(name: str) -> tuple[str, str | None] | None:
    key = name.strip().lower()
    if not key:
        return None
    index = _catalog_index()
    aliases, dtype_over, ambiguous = _alias_table()
    if key in ambiguous or " ".join(key.split()) in ambiguous:
        return None  # the benchmark data names two different models this way
    if key in index:
        return index[key][0], None
    if key in aliases and aliases[key].lower() in index:
        return index[aliases[key].lower()][0], dtype_over.get(key)
    spaced = " ".join(key.split())
    if spaced in aliases and aliases[spaced].lower() in index:
        return index[aliases[spaced].lower()][0], dtype_over.get(spaced)
    short = key.rsplit("/", 1)[-1]
    hits = {model_id for k, (model_id, _) in index.items() if k.rsplit("/", 1)[-1] == short}
    if len(hits) == 1:
        return hits.pop(), None
    alias_hits = {
        (v, dtype_over.get(k)) for k, v in aliases.items() if k.rsplit("/", 1)[-1] == short
    }
    if len(alias_hits) == 1:
        target, over = alias_hits.pop()
        if target.lower() in index:
            return index[target.lower()][0], over
    norm = _norm_name(key)
    if not norm:
        return None
    hits = {model_id for k, (model_id, _) in index.items() if _norm_name(k) == norm}
    if len(hits) == 1:
        return hits.pop(), None
    if not hits:
        alias_hits = {(v, dtype_over.get(k)) for k, v in aliases.items() if _norm_name(k) == norm}
        if len(alias_hits) == 1:
            target, over = alias_hits.pop()
            if target.lower() in index:
                return index[target.lower()][0], over
    return None


def resolve_alias(name: str) -> str | None:
    """The catalog id a model name refers to (exact id, alias, short name or a close variant)."""
    found = _resolve(name)
    return found[0] if found else None


def canonical_model_name(ref: str) -> str:
    """The one name a model goes by in saved runs and run listings: the catalog id for any name
    the catalog resolves to it (an alias, the short name, another spelling), so
    ``Llama-3.1-70B``, ``Meta-Llama-3.1-70B`` and ``meta-llama/Llama-3.1-70B`` are one model.
    A local config path, a name the catalog does not know (a Hub id) and an alias that names a
    pre-quantised checkpoint (its weight format differs from the catalog id's) stay as given.
    Offline and cheap: no config is read."""
    name = ref.strip()
    if not name or _looks_like_path(name):
        return name
    return _catalog_name(name)


@functools.lru_cache(maxsize=1024)
def _catalog_name(name: str) -> str:
    found = _resolve(name)
    if found is None or found[1] is not None:
        return name
    return found[0]


def _looks_like_path(ref: str) -> bool:
    """Whether `load_model` takes `ref` for a local path rather than a model name."""
    return (
        ref.startswith((".", "/", "~")) or ref.endswith(".json") or Path(ref).expanduser().exists()
    )


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise BudsimError(f"cannot read {what} {path}: {exc}") from None
    except json.JSONDecodeError as exc:
        raise BudsimError(
            f"{what} {path} is not valid JSON ({exc.msg} at line {exc.lineno})"
        ) from None
    if not isinstance(data, dict):
        raise BudsimError(f"{what} {path} is not a JSON object")
    return data


def _from_path(path: Path, name: str) -> ModelSpec:
    cfg_path = path / "config.json" if path.is_dir() else path
    if not cfg_path.is_file():
        raise BudsimError(f"no config.json in {path}")
    config = _read_json(cfg_path, "model config")
    hfq_path = cfg_path.parent / "hf_quant_config.json"
    if hfq_path.is_file() and "hf_quant_config" not in config:
        config["hf_quant_config"] = _read_json(hfq_path, "quantisation config")
    spec = model_from_config(config, name)
    return replace(spec, source=str(cfg_path))


def _apply_dtype_override(spec: ModelSpec, dtype: str) -> ModelSpec:
    """An alias naming a pre-quantised checkpoint of a catalogued architecture (e.g. ``-FP8``)."""
    if dtype == spec.checkpoint_dtype:
        return spec
    per = dtypes.weight_bytes(dtype)
    return replace(
        spec,
        checkpoint_dtype=dtype,
        quant_method=spec.quant_method or ("modelopt" if dtype == "nvfp4" else dtype),
        checkpoint_bytes=spec.body_params * per + spec.embedding_params * _SIXTEEN_BIT,
    )


def _from_hub(ref: str, trust_remote_code: bool, allow_network: bool) -> ModelSpec | None:
    """The model from the Hugging Face cache, else (with `allow_network`) from the Hub; None when
    the cache lacks it and the network is not allowed."""
    cached = _from_hub_files(ref, trust_remote_code, local_only=True)
    if cached is not None or not allow_network:
        return cached
    _check_on_hub(ref)  # one clear line when the Hub cannot give the config, before any retries
    return _from_hub_files(ref, trust_remote_code, local_only=False)


def _check_on_hub(ref: str) -> None:
    """Raise a one-line BudsimError unless the Hub can serve `ref`'s config.json now: no network,
    offline mode, an unknown, gated or private repo, or a repo without a config."""
    try:
        from huggingface_hub import get_hf_file_metadata, hf_hub_url
        from huggingface_hub.errors import (
            EntryNotFoundError,
            GatedRepoError,
            HfHubHTTPError,
            HFValidationError,
            OfflineModeIsEnabled,
            RepositoryNotFoundError,
        )
    except ImportError:
        raise BudsimError(
            f"cannot download {ref!r}: huggingface_hub is not installed (pip install "
            "huggingface_hub), or pass a config.json path"
        ) from None
    _quiet_hub_logs()
    where = f"the config of {ref!r} from the Hugging Face Hub"
    try:
        get_hf_file_metadata(hf_hub_url(ref, "config.json"), timeout=10)
    except HFValidationError:
        raise BudsimError(f"{ref!r} is not a Hugging Face repo id (org/name)") from None
    except OfflineModeIsEnabled:
        raise BudsimError(f"cannot download {where}: HF_HUB_OFFLINE is set") from None
    except GatedRepoError:
        raise BudsimError(
            f"cannot download {where}: the repo is gated; accept its terms on huggingface.co "
            "and log in (`hf auth login`), or pass a config.json path"
        ) from None
    except RepositoryNotFoundError:
        raise BudsimError(
            f"{ref!r} is not a model on the Hugging Face Hub (or it is private: log in with "
            "`hf auth login`)"
        ) from None
    except EntryNotFoundError:
        raise BudsimError(f"{ref!r} on the Hugging Face Hub has no config.json") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "an error"
        raise BudsimError(f"cannot download {where}: the Hub answered {status}") from None
    except Exception as exc:  # noqa: BLE001 - the transport's own errors: no network, DNS, timeout
        reason = str(exc).strip() or type(exc).__name__
        raise BudsimError(
            f"cannot download {where}: no connection ({reason}); check the network or pass a "
            "config.json path"
        ) from None


def _quiet_hub_logs() -> None:
    """huggingface_hub logs every retry as a warning on stderr; budsim reports one line."""
    try:
        from huggingface_hub.utils import logging as hub_logging

        hub_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover - checked by the caller
        pass


def _from_hub_files(ref: str, trust_remote_code: bool, *, local_only: bool) -> ModelSpec | None:
    config: dict[str, Any] | None = None
    # transformers prints a "PyTorch was not found" advisory on import; budsim only needs configs
    os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")
    try:
        from transformers import AutoConfig  # heavy: imported lazily

        cfg = AutoConfig.from_pretrained(
            ref, trust_remote_code=trust_remote_code, local_files_only=local_only
        )
        config = cfg.to_dict()
    except Exception:  # noqa: BLE001 - any failure falls back to the raw file
        config = None
    hfq: dict[str, Any] | None = None
    try:
        from huggingface_hub import hf_hub_download

        if config is None:
            path = hf_hub_download(ref, "config.json", local_files_only=local_only)
            config = _read_json(Path(path), "model config")
        try:
            qpath = hf_hub_download(ref, "hf_quant_config.json", local_files_only=local_only)
            hfq = _read_json(Path(qpath), "quantisation config")
        except Exception:  # noqa: BLE001 - optional file
            hfq = None
    except BudsimError:
        raise
    except Exception:  # noqa: BLE001
        pass
    if config is None:
        return None
    if hfq is not None:
        config["hf_quant_config"] = hfq
    return replace(model_from_config(config, ref), source=f"hf:{ref}")


@functools.lru_cache(maxsize=256)
def load_model(
    ref: str, *, trust_remote_code: bool = False, allow_network: bool = False
) -> ModelSpec:
    """Load a ModelSpec from a path, the bundled catalog, or (if allowed / cached) the HF Hub."""
    ref = ref.strip()
    if not ref:
        raise BudsimError("empty model name; pass an HF id, a catalog alias or a config path")
    path = Path(ref).expanduser()
    looks_like_path = _looks_like_path(ref)
    if looks_like_path and path.exists():
        return _from_path(path, ref)
    if looks_like_path and (ref.endswith(".json") or ref.startswith((".", "/", "~"))):
        raise BudsimError(f"model path {ref} does not exist")
    found = _resolve(ref)
    if found is not None:
        model_id, dtype_override = found
        file = _catalog_index()[model_id.lower()][1]
        spec = model_from_config(_read_json(file, "catalog model"), ref)
        spec = replace(spec, source=f"catalog:{model_id}")
        if dtype_override:
            spec = _apply_dtype_override(spec, dtype_override)
        return spec
    if "/" in ref:
        hub = _from_hub(ref, trust_remote_code, allow_network)
        if hub is not None:
            return hub
    close = _suggestions(ref)
    did_you_mean = f"; did you mean {', '.join(close)}?" if close else ""
    # Only an org/name id is looked up on the Hub. The CLI's predict, optimize and analyze take
    # --allow-download; the TUI's model field has the same switch ("HF Hub").
    hint = (
        ", or allow downloads (--allow-download; in the TUI the HF Hub switch)"
        if "/" in ref and not allow_network
        else ""
    )
    raise BudsimError(
        f"unknown model {ref!r}: not a local path, not in the bundled catalog and not in the Hugging"
        f" Face cache; pass a config.json path{hint}{did_you_mean}"
    )


def _suggestions(ref: str, limit: int = 3) -> list[str]:
    import difflib

    ids = list_catalog()
    norm = _norm_name(ref)
    exact = [i for i in ids if _norm_name(i) == norm]
    if exact:
        return exact[:limit]
    by_short = {i.rsplit("/", 1)[-1].lower(): i for i in ids}
    close = difflib.get_close_matches(ref.rsplit("/", 1)[-1].lower(), list(by_short), limit, 0.6)
    return [by_short[c] for c in close]
