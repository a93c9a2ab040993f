"""HPU-graph buckets: the fixed shapes vLLM on Gaudi pads every step to.

Gaudi runs a captured graph per tensor shape, so the vLLM plugin (vllm-gaudi) warms up a set of
bucket shapes and pads each step up to the nearest one: the decode batch to a batch bucket, each
prompt chunk's length to a query bucket. The padded rows are computed like real ones (GEMMs, LM
head) but hold no KV cache, so decode attention reads only the real sequences' blocks. A shape
beyond the largest bucket runs unpadded (after a graph compile, which steady state amortises).

The buckets follow vllm-gaudi's default exponential strategy (`VLLM_BUCKETING_STRATEGY=exp`,
`vllm_gaudi/extension/bucketing/exponential.py`, `warmup_range_with_limit`): `limit` values spaced
exponentially from `min` to `max`, each rounded up to a multiple of `step`, duplicates dropped,
with 1 kept as its own bucket when `min` is 1. Decode batch: (1, 2, max_num_seqs, ceil(log2
max_num_seqs) + 1); prompt query length: (block, block, max_num_batched_tokens, ceil(log2
max_num_batched_tokens)) with a 128-token block. With 256 sequences the decode batches are 1, 2, 4,
8, 14, 24, 42, 78, 140 and 256, so 43 running requests compute as 78 rows.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from .steptime import StepTime

BLOCK_TOKENS = 128  # vllm-gaudi's KV block size, also the prompt buckets' minimum and step


def exponential_buckets(low: int, step: int, high: int, limit: int) -> tuple[int, ...]:
    """vllm-gaudi's exponential warm-up range: `limit` values from `low` to `high`."""
    keep_low = low in (0, 1)
    start = step if keep_low else low
    if limit <= 1 or high <= start:
        return tuple(sorted({high, low} if keep_low else {high}))
    values = {
        math.ceil(start * (high / start) ** (i / (limit - 1)) / step) * step for i in range(limit)
    }
    if keep_low:
        values.add(low)
    out = sorted(values)
    out[-1] = min(out[-1], high)
    return tuple(out)


def pad(buckets: tuple[int, ...], value: float) -> float:
    """The bucket a step of `value` rows runs as (itself beyond the largest bucket)."""
    if value <= 0:
        return value
    i = bisect.bisect_left(buckets, math.ceil(value))
    return float(buckets[i]) if i < len(buckets) else value


@dataclass(frozen=True)
class GaudiBuckets:
    decode_batch: tuple[int, ...]
    prompt_query: tuple[int, ...]


@lru_cache(maxsize=64)
def gaudi_buckets(max_num_seqs: int, max_num_batched_tokens: int) -> GaudiBuckets:
    """The buckets vllm-gaudi warms up for these engine limits."""
    seqs = max(1, max_num_seqs)
    tokens = max(BLOCK_TOKENS, max_num_batched_tokens)
    return GaudiBuckets(
        decode_batch=exponential_buckets(1, 2, seqs, math.ceil(math.log2(seqs)) + 1),
        prompt_query=exponential_buckets(
            BLOCK_TOKENS, BLOCK_TOKENS, tokens, math.ceil(math.log2(tokens))
        ),
    )


class BucketedStep:
    """A step model whose every step runs padded to vllm-gaudi's buckets (see the module doc).

    Decode: the batch pads to a batch bucket; the context sum stays, as padded rows hold no KV,
    and the host's per-sequence work stays with the real sequences.
    Prompt chunks: each chunk's length pads to a query bucket; a fresh chunk's causal pairs grow
    with the square of its padded length."""

    decode_slope: float | None = None  # padding is not linear in the batch: priced per step

    def __init__(
        self,
        model: Callable[[float, float, float, float, float], StepTime],
        buckets: GaudiBuckets,
        host_row_s: float = 0.0,
    ) -> None:
        """host_row_s: the step time `model` charges per decoding sequence for host work
        (scheduling, detokenising), which padded rows do not cause."""
        self.model = model
        self.buckets = buckets
        self.host_row_s = host_row_s

    def __call__(
        self,
        n_decode: float,
        decode_ctx: float,
        prefill_tokens: float,
        prefill_pairs: float,
        prefill_seqs: float,
    ) -> StepTime:
        b = self.buckets
        real = n_decode
        if n_decode:
            n_decode = pad(b.decode_batch, n_decode)
        if prefill_seqs and prefill_tokens:
            chunk = prefill_tokens / prefill_seqs
            grown = pad(b.prompt_query, chunk) / chunk
            prefill_tokens *= grown
            prefill_pairs *= grown * grown
        t = self.model(n_decode, decode_ctx, prefill_tokens, prefill_pairs, prefill_seqs)
        host = self.host_row_s * (n_decode - real)
        if host:
            t = StepTime(t.total - host, t.compute, t.memory, t.communication, t.overhead - host)
        return t
