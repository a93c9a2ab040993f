"""Architecture facts and memory per dtype of one model, for `budsim analyze` and the TUI."""

from __future__ import annotations

from typing import Any

GB = 1e9


def model_facts(ref: str, trust_remote_code: bool = False) -> dict[str, Any]:
    """Architecture facts and memory per dtype of one model (also used by the TUI)."""
    from budsim.core.dtypes import GGUF_DTYPES, WEIGHT_DTYPES
    from budsim.core.model import load_model

    m = load_model(ref, trust_remote_code=trust_remote_code)
    layer = m.layer_groups[0][0]
    return {
        "name": m.name,
        "model_type": m.model_type,
        "architecture": m.architecture,
        "total_params_b": m.total_params / 1e9,
        "active_params_b": m.active_params / 1e9,
        "layers": m.num_layers,
        "hidden_size": m.hidden_size,
        "attention": m.attention_kind,
        "q_heads": layer.q_heads,
        "kv_heads": layer.kv_heads,
        "vocab_size": m.vocab_size,
        "max_context": m.max_context,
        "is_moe": m.is_moe,
        "experts": m.num_experts,
        "top_k": m.top_k,
        "checkpoint_dtype": m.checkpoint_dtype,
        "quant_method": m.quant_method,
        "kv_bytes_per_token_bf16": m.kv_bytes_per_token(2.0),
        "kv_bytes_per_token_fp8": m.kv_bytes_per_token(1.0),
        # the serving engines' formats (llama.cpp's GGUF sizes are left out to keep the TUI's facts
        # within two lines at 80 columns)
        "weights_gb": {
            d: m.weight_bytes(d) / GB for d in WEIGHT_DTYPES if d != "fp16" and d not in GGUF_DTYPES
        },
    }
