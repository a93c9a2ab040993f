"""What is being planned: one candidate deployment and the workload it serves.

Both are plain frozen dataclasses so they hash (the GA caches fitness per genome) and are cheap to build
in the batch predictor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields, replace
from typing import Any, Literal

Scenario = Literal["concurrency", "static", "rate"]
SCENARIOS: tuple[str, ...] = ("concurrency", "static", "rate")


@dataclass(frozen=True)
class Deployment:
    """One engine configuration on one slice of a cluster, possibly replicated.

    Devices per replica = tp * pp * dp. `dp` is attention data parallelism inside one engine (MoE models
    in SGLang/TRT-LLM/vLLM); `ep` is expert parallelism for MoE layers and must divide tp * dp.
    `replicas` are independent engine copies behind a router.
    """

    model: str
    hardware: str
    engine: str
    tp: int = 1
    pp: int = 1
    dp: int = 1
    ep: int = 1
    replicas: int = 1
    weight_dtype: str = "auto"  # "auto" = the checkpoint's own dtype
    kv_dtype: str = "auto"  # "auto" = the activation dtype (bf16/fp16)
    max_num_seqs: int | None = None  # None = the engine's default
    max_num_batched_tokens: int | None = None  # None = the engine's default
    gpu_memory_utilization: float | None = None  # None = the engine's default
    # speculative decoding (budsim.core.speculative): "none", "mtp", "eagle3", "ngram" or
    # "draft"; the draft length k (0 = the method's default) and the acceptance per drafted token
    # (None = the method's default); "draft": the draft model (a catalog id, Hugging Face id or
    # config path, resolved like `model`)
    spec_method: str = "none"
    spec_tokens: int = 0
    spec_acceptance: float | None = None
    spec_draft_model: str = ""

    @property
    def devices_per_replica(self) -> int:
        return self.tp * self.pp * self.dp

    @property
    def devices(self) -> int:
        return self.devices_per_replica * self.replicas

    def validate(self) -> None:
        """BudsimError unless every field keeps the input rules (budsim.core.schema)."""
        from .schema import check_deployment

        check_deployment(self)

    def with_(self, **changes: Any) -> Deployment:
        return replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        # every field is a scalar, so no deep copy (asdict) is needed; the optimiser calls this a lot
        return {f.name: getattr(self, f.name) for f in fields(self)}


# Burstier arrivals than this (gaps with a coefficient of variation above 4.5) would need more
# simulated requests than a prediction affords for their mean rate to come out right.
MIN_BURSTINESS = 0.05


@dataclass(frozen=True)
class Workload:
    """The traffic: request shape and how requests arrive.

    - concurrency: closed loop, `concurrency` requests always in flight (vllm bench serve --max-concurrency)
    - static: `batch_size` requests at t=0, run to completion (benchmark_latency)
    - rate: arrivals at `rate` requests/s with gamma-distributed gaps of shape `burstiness`, as
      `vllm bench serve --burstiness` and AIPerf's `--arrival-smoothness` draw them: 1 = Poisson,
      below 1 burstier, above 1 more regular (100: gaps within about 10 % of 1/rate)
    `*_len_spread` > 0 draws lengths uniformly in [len*(1-spread), len*(1+spread)].
    """

    scenario: Scenario = "concurrency"
    input_len: int = 1024
    output_len: int = 256
    concurrency: int = 1
    batch_size: int = 1
    rate: float = 1.0
    burstiness: float = 1.0
    # None: steady state (warm-up and drain excluded); N: a finite benchmark run of N requests
    # from a cold start (a closed loop's clients all send at t = 0), every request counted
    num_requests: int | None = None
    input_len_spread: float = 0.0
    output_len_spread: float = 0.0
    seed: int = 0
    # Prefix caching (vLLM's automatic prefix caching, SGLang's radix cache, TRT-LLM's KV block
    # reuse): every prompt starts with `shared_prefix_len` tokens all requests share (a system
    # prompt: computed once, its KV held once), and of the rest of each prompt a share
    # `cached_share` was seen before by the same conversation (earlier turns) and is still cached.
    # Cached tokens are not prefilled again; the new ones still attend to them.
    shared_prefix_len: int = 0
    cached_share: float = 0.0
    # A mix of request shapes instead of the fixed lengths (budsim.core.lengths): entries of
    # (weight, input mean, output mean, input sd, output sd); input_len / output_len are then the
    # mix's means (`with_length_mix` sets both)
    length_mix: tuple[tuple[float, int, int, float, float], ...] = ()
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.length_mix and not isinstance(self.length_mix[0], tuple):
            # read back from JSON (a stored run): lists, which would not hash
            mix = tuple(
                (float(w), int(i), int(o), float(si), float(so))
                for w, i, o, si, so in self.length_mix
            )
            object.__setattr__(self, "length_mix", mix)

    @property
    def load(self) -> float:
        """The load level in the scenario's own unit."""
        if self.scenario == "concurrency":
            return float(self.concurrency)
        if self.scenario == "static":
            return float(self.batch_size)
        return float(self.rate)

    def validate(self) -> None:
        """BudsimError unless every field keeps the input rules (budsim.core.schema)."""
        from .schema import check_workload

        check_workload(self)

    def with_length_mix(self, mix: tuple[tuple[float, int, int, float, float], ...]) -> Workload:
        """This workload with request shapes drawn from `mix` (its means as input/output_len)."""
        from .lengths import mix_means

        isl, osl = mix_means(mix)
        return replace(self, length_mix=tuple(mix), input_len=isl, output_len=osl)

    @property
    def varied_lengths(self) -> bool:
        """Whether requests differ in length (spreads or a mix): they are then drawn at random."""
        return bool(self.input_len_spread or self.output_len_spread or self.length_mix)

    @property
    def longest_input(self) -> int:
        """Tokens of the longest prompt the lengths allow."""
        if self.length_mix:
            from .lengths import mix_longest

            return mix_longest(self.length_mix)[0]
        return math.ceil(self.input_len * (1 + self.input_len_spread))

    @property
    def prefix_caching(self) -> bool:
        """Whether the workload reuses cached prompt tokens (shared_prefix_len, cached_share)."""
        return bool(self.shared_prefix_len or self.cached_share)

    def cached_tokens(self, input_len: int) -> int:
        """Tokens of a new prompt of `input_len` tokens found in the prefix cache: the shared
        prefix plus `cached_share` of the rest. The last prompt token is always computed (it
        produces the first output token), as the engines do on a full hit."""
        if not self.prefix_caching:
            return 0
        shared = min(self.shared_prefix_len, input_len)
        return max(0, min(input_len - 1, shared + int(self.cached_share * (input_len - shared))))

    @property
    def longest_request(self) -> int:
        """Tokens (prompt + output) of the longest request the length spreads or mix allow."""
        if self.length_mix:
            from .lengths import mix_longest

            return mix_longest(self.length_mix)[2]
        return math.ceil(self.input_len * (1 + self.input_len_spread)) + math.ceil(
            self.output_len * (1 + self.output_len_spread)
        )
