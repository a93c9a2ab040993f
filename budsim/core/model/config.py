"""Reading a Hugging Face ``config.json``: a lookup view over its many spellings of one key
(``_Cfg``) and the tables of what each ``model_type`` family implies (tied embeddings, biases,
gated FFN, q/k norms, learned positions, encoder and vision types to reject).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import BudsimError

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
