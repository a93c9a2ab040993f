"""FrontEnd: the time a request spends outside the engine's GPU steps, as its client sees it.

A benchmark client measures TTFT from sending the request to receiving the first streamed token, so
it includes work no engine iteration does: the HTTP request and the OpenAI protocol, tokenising the
prompt, handing the request to the engine's scheduler and streaming the first chunk back. budsim
models it as two physical terms, added to every request's TTFT and end-to-end latency:

- `fixed_ms`: the front end's fixed cost per request. It is the one constant fitted to end-to-end
  measurements: `budsim train` sets it (budsim.learn.frontend_fit) to the median, over the vLLM runs
  at a concurrency of at most LOW_LOAD (where a request rarely waits behind another), of the measured TTFT minus the simulated
  one without it, and writes it to ``pretrained/front_end.json``; `budsim validate` refits it inside
  every cross-validation fold. Only vLLM runs are used: with vLLM the data's largest MoE models
  (MiniMax-M2.5, Kimi-K2.5) show 10-20 ms at low load, while the SGLang and TRT-LLM campaigns of
  DeepSeek-V3/R1 and Qwen3.5-397B show a further 100-250 ms that no front end spends (the same
  software serves small models too) and that the learned calibration, not the physics, accounts for.
- `tokenize_us_per_token`: tokenising the prompt, TOKENIZE_US_PER_TOKEN per input token (Hugging
  Face's Rust tokenizers encode on the order of a million tokens per second per core).

Per-output-token work (detokenising, streaming each chunk) runs beside the GPU steps; it is the
engine profiles' per-sequence step overhead (budsim.core.engines.EngineProfile.per_seq_overhead_us).
A user's own benchmark (`budsim calibrate`) learns their front end on top.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .paths import ENV_PRETRAINED, pretrained_dir

TOKENIZE_US_PER_TOKEN = 1.0
# Used when no trained value is shipped (a checkout without pretrained/front_end.json).
DEFAULT_FIXED_MS = 15.0
FILE_NAME = "front_end.json"


@dataclass(frozen=True)
class FrontEnd:
    fixed_ms: float
    tokenize_us_per_token: float = TOKENIZE_US_PER_TOKEN
    source: str = "default"

    def seconds(self, input_len: int) -> float:
        """Front-end latency of one request with `input_len` prompt tokens."""
        return self.fixed_ms * 1e-3 + self.tokenize_us_per_token * 1e-6 * input_len

    def to_dict(self) -> dict[str, float | str]:
        return {
            "fixed_ms": self.fixed_ms,
            "tokenize_us_per_token": self.tokenize_us_per_token,
            "source": self.source,
        }


@lru_cache(maxsize=4)
def _shipped(directory: str) -> FrontEnd:
    try:
        data = json.loads((Path(directory) / FILE_NAME).read_text(encoding="utf-8"))
        return FrontEnd(
            fixed_ms=float(data["fixed_ms"]),
            tokenize_us_per_token=float(data["tokenize_us_per_token"]),
            source=str(data.get("source", FILE_NAME)),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return FrontEnd(DEFAULT_FIXED_MS)


def front_end() -> FrontEnd:
    """The shipped front end (``pretrained/front_end.json``), or the default. Looked up by the
    pretrained folder's environment variable alone: the simulation cache asks per deployment."""
    return _for_env(os.environ.get(ENV_PRETRAINED))


@lru_cache(maxsize=8)
def _for_env(env: str | None) -> FrontEnd:
    return _shipped(str(pretrained_dir()))


def clear_cache() -> None:
    _shipped.cache_clear()
    _for_env.cache_clear()
