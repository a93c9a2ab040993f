"""The facts of the chosen model: parameters, layers, attention, KV per token, weights per dtype."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.text import Text
from textual.widgets import Static

from ..views import fmt, fmt_bytes


def facts_text(facts: Mapping[str, Any]) -> Text:
    """Four short lines that fit 78 columns."""
    text = Text()
    kind = "MoE" if facts.get("is_moe") else "dense"
    if facts.get("is_moe"):
        kind += f" {facts.get('experts')} experts, top-{facts.get('top_k')}"
    text.append(str(facts.get("name")), style="bold")
    text.append(f"  {facts.get('model_type')} · {kind} · ")
    text.append(f"{str(facts.get('attention', '')).upper()} ")
    text.append(f"{facts.get('q_heads')}q/{facts.get('kv_heads')}kv")
    text.append(f" · ctx {fmt(facts.get('max_context'))}\n")
    text.append("params ", style="dim")
    text.append(f"{fmt(facts.get('total_params_b'), 3)} B")
    if facts.get("is_moe"):
        text.append(f" ({fmt(facts.get('active_params_b'), 3)} B active)")
    text.append(" · ")
    text.append("layers ", style="dim")
    text.append(f"{facts.get('layers')}")
    text.append(" · ")
    text.append("hidden ", style="dim")
    text.append(f"{fmt(facts.get('hidden_size'))}")
    text.append(" · ")
    text.append("checkpoint ", style="dim")
    text.append(str(facts.get("checkpoint_dtype")))
    text.append("\n")
    text.append("KV/token ", style="dim")
    text.append(
        f"{fmt_bytes(facts.get('kv_bytes_per_token_bf16'))} 16-bit · "
        f"{fmt_bytes(facts.get('kv_bytes_per_token_fp8'))} fp8\n"
    )
    text.append("weights ", style="dim")
    weights = facts.get("weights_gb") or {}
    text.append(" · ".join(f"{k} {v:.3g} GB" for k, v in weights.items()))
    return text


class ModelFacts(Static):
    DEFAULT_CSS = """
    ModelFacts { height: auto; min-height: 1; padding: 0 1; color: $text; }
    ModelFacts.-error { color: $error; }
    ModelFacts.-pending { color: $text-muted; }
    """

    def show_facts(self, facts: Mapping[str, Any]) -> None:
        self.remove_class("-error", "-pending")
        self.update(facts_text(facts))

    def show_error(self, message: str) -> None:
        self.remove_class("-pending")
        self.add_class("-error")
        self.update(Text(message))

    def show_pending(self, message: str = "checking the model…") -> None:
        if self.has_class("-pending") and getattr(self, "_pending_text", None) == message:
            return  # typing on: same message, skip the layout pass
        self._pending_text = message
        self.remove_class("-error")
        self.add_class("-pending")
        self.update(Text(message))
