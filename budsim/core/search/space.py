"""The gene space of one optimisation: which deployments are candidates, and how to keep them valid.

A genome is a tuple of option indices, one per gene in `GENES`. Every gene's options are sorted, so the
ordinal genes (parallel sizes, batch limits, memory fraction) can be stepped by mutation and the
categorical ones (engine, dtypes) reset. `SearchSpace.repair` maps any index tuple onto a valid,
canonical genome; `SearchSpace.enumerate` lists exactly the genomes `repair` can return, so the GA and the
exhaustive search look at the same set.

Validity rules (all enforced by repair):
- the engine runs on the hardware kind and the user allows it;
- TP stays inside a node and divides the attention heads; PP divides nothing but stays <= layers;
- attention-DP and EP exist only for MoE models on engines that run them; EP divides TP*DP and the
  number of routed experts;
- devices per replica (TP*PP*DP) and the replicas pack onto the nodes and the device budget;
- weight dtype: the checkpoint's own ("auto") or a smaller format the engine runs on that hardware;
- KV dtype among the engine's;
- max_num_batched_tokens >= max_num_seqs (vLLM refuses otherwise);
- batch limits above what the workload can ever fill are canonicalised to the smallest option that is
  not binding (they predict the same thing), which keeps duplicates out of the space.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Protocol

from ..deployment import Deployment, Workload
from ..dtypes import WEIGHT_BYTES
from ..errors import BudsimError

Genome = tuple[int, ...]

GENES: tuple[str, ...] = (
    "engine",
    "tp",
    "pp",
    "dp",
    "ep",
    "replicas",
    "weight_dtype",
    "kv_dtype",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
)
ENGINE, TP, PP, DP, EP, REPLICAS, WEIGHT, KV, SEQS, TOKENS, UTIL = range(len(GENES))
CATEGORICAL = frozenset({ENGINE, WEIGHT, KV})
ORDINAL = frozenset(range(len(GENES))) - CATEGORICAL
_FIELD = {"weight_dtype": "weight_dtypes", "kv_dtype": "kv_dtypes"}

DEFAULT_MAX_NUM_SEQS: tuple[int, ...] = (4, 8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_TOKEN_BUDGETS: tuple[int, ...] = (1024, 2048, 4096, 8192, 16384)
DEFAULT_MEMORY_FRACTIONS: tuple[float, ...] = (0.80, 0.85, 0.90, 0.95)
MAX_PP = 16

# Aliases users type for "keep the checkpoint's own weights".
_CHECKPOINT_ALIASES = frozenset({"auto", "none", "checkpoint", "native"})


def dtype_rank(dtype: str, checkpoint_dtype: str) -> tuple[float, str]:
    """Sort key for weight dtypes: bigger formats first; "auto" ranks at the checkpoint's size, first."""
    if dtype == "auto":
        return (-WEIGHT_BYTES.get(checkpoint_dtype, 2.0), "")
    return (-WEIGHT_BYTES.get(dtype, 2.0), dtype)


@dataclass(frozen=True)
class EngineChoice:
    """What the space needs to know about one engine on this hardware."""

    id: str
    weight_dtypes: tuple[str, ...]  # "auto" = the checkpoint's dtype, then smaller formats
    kv_dtypes: tuple[str, ...]
    parallelism: frozenset[str]
    spec_method: str = "none"  # speculative decoding (budsim.core.speculative) of this choice
    fp8_kv_needs_fp8_weights: bool = False  # EngineProfile's: an fp8 KV only beside fp8 weights
    spec_draft_model: str = ""  # spec_method "draft": the draft model the user named

    def pairs(self, weight: str, kv: str, checkpoint: str) -> bool:
        """Whether the engine runs these weight and KV formats together."""
        if not (self.fp8_kv_needs_fp8_weights and kv == "fp8"):
            return True
        return (checkpoint if weight == "auto" else weight) == "fp8"

    @property
    def label(self) -> str:
        """The engine gene's value: the engine id, with its speculative method ("vllm+eagle3")."""
        return self.id if self.spec_method == "none" else f"{self.id}+{self.spec_method}"


@dataclass(frozen=True)
class Limits:
    """User limits on the search (None = no limit)."""

    max_devices: int | None = None
    max_memory_gb: float | None = None  # per device
    max_batch_size: int | None = None  # caps max_num_seqs
    engines: tuple[str, ...] | None = None
    quantizations: tuple[str, ...] | None = None  # weight dtypes; "auto"/"none" = the checkpoint's
    # speculative methods to try beside plain decoding, on the engines that run them
    speculative: tuple[str, ...] = ()


class _EngineLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def quantizations(self) -> tuple[str, ...]: ...
    @property
    def kv_dtypes(self) -> tuple[str, ...]: ...
    @property
    def parallelism(self) -> frozenset[str]: ...
    @property
    def kind(self) -> str: ...


@dataclass(frozen=True)
class SearchSpace:
    """Options per gene plus the packing facts repair needs. Build it with `build_space` or directly."""

    model: str
    hardware: str
    devices: int  # devices the search may use
    devices_per_node: int
    nodes: int
    engines: tuple[EngineChoice, ...]
    tp: tuple[int, ...]
    pp: tuple[int, ...]
    dp: tuple[int, ...] = (1,)
    ep: tuple[int, ...] = (1,)
    weight_dtypes: tuple[str, ...] = ("auto",)
    kv_dtypes: tuple[str, ...] = ("auto",)
    max_num_seqs: tuple[int, ...] = DEFAULT_MAX_NUM_SEQS
    max_num_batched_tokens: tuple[int, ...] = DEFAULT_TOKEN_BUDGETS
    gpu_memory_utilization: tuple[float, ...] = DEFAULT_MEMORY_FRACTIONS
    checkpoint_dtype: str = "bf16"
    num_experts: int = 0  # routed experts; 0 = dense model
    # Requests that can ever be in flight at once (concurrency / static batch); None for open-loop rates.
    max_in_flight: int | None = None
    input_len: int = 0  # the longest prompt (canonicalises the token budget); 0 = do not
    replicas_span_nodes: bool = True  # False: one replica must fit in a node (CPU engines)

    notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if not self.engines:
            raise BudsimError("no engine is left to search: check --engines and the hardware kind")
        for name in GENES[1:]:
            options = self.options(name)
            if not options:
                raise BudsimError(f"the search space has no option for {name}")
            if list(options) != sorted(options, key=self._sort_key(name)):
                raise ValueError(f"options for {name} must be sorted: {options}")
        if self.devices < 1 or self.devices_per_node < 1 or self.nodes < 1:
            raise BudsimError("the search needs at least one device")
        for engine in self.engines:
            if not set(engine.weight_dtypes) <= set(self.weight_dtypes):
                raise ValueError(f"engine {engine.id} weight dtypes not in the space")
            if not set(engine.kv_dtypes) <= set(self.kv_dtypes):
                raise ValueError(f"engine {engine.id} KV dtypes not in the space")
            if not engine.weight_dtypes or not engine.kv_dtypes:
                raise ValueError(f"engine {engine.id} has no dtype left")

    # ------------------------------------------------------------------ options

    def _sort_key(self, name: str) -> Any:
        if name == "weight_dtype":
            return self._dtype_rank
        if name == "kv_dtype":
            return lambda d: 0 if d == "auto" else 1
        return lambda v: v

    def _dtype_rank(self, dtype: str) -> tuple[float, str]:
        return dtype_rank(dtype, self.checkpoint_dtype)

    @cached_property
    def replicas(self) -> tuple[int, ...]:
        return tuple(range(1, self.devices + 1))

    def options(self, name: str) -> tuple[Any, ...]:
        if name == "engine":
            return tuple(e.label for e in self.engines)
        if name == "replicas":
            return self.replicas
        value: tuple[Any, ...] = getattr(self, _FIELD.get(name, name))
        return value

    @cached_property
    def gene_options(self) -> tuple[tuple[Any, ...], ...]:
        return tuple(self.options(name) for name in GENES)

    @cached_property
    def cardinalities(self) -> tuple[int, ...]:
        return tuple(len(o) for o in self.gene_options)

    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    # ------------------------------------------------------------------ layouts

    def max_replicas(self, per_replica: int) -> int:
        """How many replicas of `per_replica` devices pack onto the nodes and the device budget."""
        dpn = self.devices_per_node
        if per_replica <= dpn:
            packed = self.nodes * (dpn // per_replica)
        elif per_replica % dpn == 0 and self.replicas_span_nodes:
            packed = self.nodes // (per_replica // dpn)
        else:
            packed = 0
        return min(packed, self.devices // per_replica)

    @cached_property
    def _layouts(self) -> tuple[tuple[tuple[int, int, int, int, int], ...], ...]:
        """Per engine: every valid (tp, pp, dp, ep, replicas) index tuple, in index order."""
        out = []
        for engine in self.engines:
            layouts: list[tuple[int, int, int, int, int]] = []
            par = engine.parallelism
            for ti, tp in enumerate(self.tp):
                if tp > 1 and "tp" not in par:
                    continue
                for pi, pp in enumerate(self.pp):
                    if pp > 1 and "pp" not in par:
                        continue
                    for di, dp in enumerate(self.dp):
                        if dp > 1 and ("dp" not in par or not self.is_moe):
                            continue
                        per_replica = tp * pp * dp
                        max_rep = self.max_replicas(per_replica)
                        if max_rep < 1:
                            continue
                        for ei, ep in enumerate(self.ep):
                            if ep > 1 and ("ep" not in par or not self.is_moe):
                                continue
                            if (tp * dp) % ep or (self.is_moe and self.num_experts % ep):
                                continue
                            for ri in range(max_rep):
                                layouts.append((ti, pi, di, ei, ri))
            out.append(tuple(layouts))
        return tuple(out)

    @cached_property
    def _layout_sets(self) -> tuple[frozenset[tuple[int, int, int, int, int]], ...]:
        return tuple(frozenset(x) for x in self._layouts)

    def layouts(self, engine_index: int) -> tuple[tuple[int, int, int, int, int], ...]:
        return self._layouts[engine_index]

    # ------------------------------------------------------------------ batch canonicalisation

    def in_flight_per_replica(self, replicas: int) -> int | None:
        if self.max_in_flight is None:
            return None
        return max(1, math.ceil(self.max_in_flight / replicas))

    def seq_indices(self, replicas: int, dp: int = 1) -> range:
        """Valid max_num_seqs indices (the non-binding tail collapsed onto its smallest value).

        A replica sees ceil(in_flight / replicas) requests, spread over its `dp` attention ranks, each
        running up to max_num_seqs; any limit at or above ceil(per_replica / dp) never binds.
        """
        cap = self.in_flight_per_replica(replicas)
        n = len(self.max_num_seqs)
        if cap is None:
            return range(n)
        cap = max(1, math.ceil(cap / dp))
        for i, value in enumerate(self.max_num_seqs):
            if value >= cap:
                return range(i + 1)
        return range(n)

    def token_indices(self, seqs: int, replicas: int, dp: int = 1) -> range:
        """Valid token-budget indices: >= max_num_seqs, and none above the first that never binds.

        One engine step holds at most (running requests) x (prompt length) tokens, so a per-rank budget
        of ceil(min(per_replica, seqs * dp) * input_len / dp) or more schedules the same way.
        """
        budgets = self.max_num_batched_tokens
        lo = next((i for i, b in enumerate(budgets) if b >= seqs), len(budgets) - 1)
        hi = len(budgets) - 1
        cap = self.in_flight_per_replica(replicas)
        if cap is not None and self.input_len > 0:
            need = math.ceil(min(cap, seqs * dp) * self.input_len / dp)
            hi = next((i for i, b in enumerate(budgets) if b >= need), hi)
        return range(lo, max(lo, hi) + 1)

    # ------------------------------------------------------------------ repair

    def repair(self, genome: Sequence[int]) -> Genome:
        """The nearest valid canonical genome (the same genome when it is already valid)."""
        key = tuple(genome)
        memo = self._repair_memo
        hit = memo.get(key)
        if hit is None:
            hit = memo[key] = self._repair(key)
        return hit

    @cached_property
    def _repair_memo(self) -> dict[tuple[int, ...], Genome]:
        return {}

    def _repair(self, genome: tuple[int, ...]) -> Genome:
        if len(genome) != len(GENES):
            raise ValueError(f"a genome has {len(GENES)} genes, got {len(genome)}")
        g = [min(max(int(v), 0), n - 1) for v, n in zip(genome, self.cardinalities, strict=True)]
        ei = g[ENGINE]
        engine = self.engines[ei]
        layout = (g[TP], g[PP], g[DP], g[EP], g[REPLICAS])
        if layout not in self._layout_sets[ei]:
            layout = self._nearest_layout(ei, layout)
        g[TP], g[PP], g[DP], g[EP], g[REPLICAS] = layout
        g[WEIGHT] = self._nearest_dtype(g[WEIGHT], engine.weight_dtypes, self.weight_dtypes)
        g[KV] = self._nearest_dtype(g[KV], engine.kv_dtypes, self.kv_dtypes)
        if not engine.pairs(
            self.weight_dtypes[g[WEIGHT]], self.kv_dtypes[g[KV]], self.checkpoint_dtype
        ):
            g[KV] = self.kv_dtypes.index("auto")
        replicas, dp = self.replicas[g[REPLICAS]], self.dp[g[DP]]
        seqs = self._seq_memo.get((replicas, dp))
        if seqs is None:
            seqs = self._seq_memo[(replicas, dp)] = self.seq_indices(replicas, dp)
        g[SEQS] = min(max(g[SEQS], seqs.start), seqs.stop - 1)
        tkey = (self.max_num_seqs[g[SEQS]], replicas, dp)
        tokens = self._token_memo.get(tkey)
        if tokens is None:
            tokens = self._token_memo[tkey] = self.token_indices(*tkey)
        g[TOKENS] = min(max(g[TOKENS], tokens.start), tokens.stop - 1)
        return tuple(g)

    @cached_property
    def _seq_memo(self) -> dict[tuple[int, int], range]:
        return {}

    @cached_property
    def _token_memo(self) -> dict[tuple[int, int, int], range]:
        return {}

    def is_valid(self, genome: Sequence[int]) -> bool:
        return tuple(genome) == self.repair(genome)

    def _nearest_layout(
        self, engine_index: int, layout: tuple[int, int, int, int, int]
    ) -> tuple[int, int, int, int, int]:
        memo = self._layout_memo[engine_index]
        hit = memo.get(layout)
        if hit is not None:
            return hit
        import numpy as np

        candidates = self._layout_arrays[engine_index]
        if not len(candidates):  # pragma: no cover - build_space drops such engines
            raise BudsimError(f"engine {self.engines[engine_index].id} has no valid layout")
        # Keep TP most, then PP and DP, then EP, then replicas; on ties shrink rather than grow (fewer
        # devices, fewer hops), then the first in index order.
        here = np.asarray(layout)
        diff = candidates - here
        dist = np.abs(diff) @ np.array([8, 4, 4, 2, 1])
        grows = (diff > 0).sum(axis=1)
        n = len(candidates)
        key = (dist * 8 + grows) * n + np.arange(n)
        best = self._layouts[engine_index][int(np.argmin(key))]
        memo[layout] = best
        return best

    @cached_property
    def _layout_arrays(self) -> tuple[Any, ...]:
        import numpy as np

        return tuple(np.asarray(x, dtype=np.int64).reshape(-1, 5) for x in self._layouts)

    @cached_property
    def _layout_memo(self) -> tuple[dict[tuple[int, ...], tuple[int, int, int, int, int]], ...]:
        return tuple({} for _ in self.engines)

    @staticmethod
    def _nearest_dtype(index: int, allowed: tuple[str, ...], options: tuple[str, ...]) -> int:
        if options[index] in allowed:
            return index
        allowed_idx = [i for i, d in enumerate(options) if d in allowed]
        return min(allowed_idx, key=lambda i: (abs(i - index), i))

    # ------------------------------------------------------------------ enumeration

    def enumerate(self) -> Iterator[Genome]:
        """Every valid genome, each once, in a fixed order."""
        for ei in range(len(self.engines)):
            yield from self._engine_genomes(ei)

    def _engine_genomes(self, ei: int) -> Iterator[Genome]:
        """The valid genomes of engine `ei`, in enumerate's order."""
        formats = self._format_pairs(self.engines[ei])
        n_util = len(self.gpu_memory_utilization)
        for ti, pi, di, epi, ri in self._layouts[ei]:
            replicas, dp = self.replicas[ri], self.dp[di]
            for si in self.seq_indices(replicas, dp):
                tokens = self.token_indices(self.max_num_seqs[si], replicas, dp)
                for wi, ki in formats:
                    for bi in tokens:
                        for ui in range(n_util):
                            yield (ei, ti, pi, di, epi, ri, wi, ki, si, bi, ui)

    def engine_samples(self) -> list[Deployment]:
        """One deployment of each engine and (weight, KV) format pair it runs (the first valid
        genome of each): what loads the kernel tables a search of the space will read, before
        it starts."""
        samples: list[Deployment] = []
        for ei, engine in enumerate(self.engines):
            left = set(self._format_pairs(engine))
            for g in self._engine_genomes(ei):  # the first layout shows every pair
                if (g[WEIGHT], g[KV]) in left:
                    left.discard((g[WEIGHT], g[KV]))
                    samples.append(self.deployment(g))
                    if not left:
                        break
        return samples

    def _format_pairs(self, engine: EngineChoice) -> list[tuple[int, int]]:
        """(weight, KV) dtype indices the engine runs together."""
        return [
            (wi, ki)
            for wi, w in enumerate(self.weight_dtypes)
            if w in engine.weight_dtypes
            for ki, kv in enumerate(self.kv_dtypes)
            if kv in engine.kv_dtypes and engine.pairs(w, kv, self.checkpoint_dtype)
        ]

    @cached_property
    def size(self) -> int:
        """The number of valid genomes (computed without enumerating them one by one)."""
        total = 0
        for ei, engine in enumerate(self.engines):
            per = len(self._format_pairs(engine)) * len(self.gpu_memory_utilization)
            for _, _, di, _, ri in self._layouts[ei]:
                replicas, dp = self.replicas[ri], self.dp[di]
                for si in self.seq_indices(replicas, dp):
                    total += per * len(self.token_indices(self.max_num_seqs[si], replicas, dp))
        return total

    # ------------------------------------------------------------------ decoding

    def value(self, genome: Sequence[int], gene: int) -> Any:
        return self.gene_options[gene][genome[gene]]

    def decode(self, genome: Sequence[int]) -> dict[str, Any]:
        return {name: self.gene_options[i][genome[i]] for i, name in enumerate(GENES)}

    def deployment(self, genome: Sequence[int]) -> Deployment:
        v = self.decode(genome)
        choice = self.engines[genome[ENGINE]]
        return Deployment(
            model=self.model,
            hardware=self.hardware,
            engine=choice.id,
            spec_method=choice.spec_method,
            spec_draft_model=choice.spec_draft_model,
            tp=v["tp"],
            pp=v["pp"],
            dp=v["dp"],
            ep=v["ep"],
            replicas=v["replicas"],
            weight_dtype=v["weight_dtype"],
            kv_dtype=v["kv_dtype"],
            max_num_seqs=v["max_num_seqs"],
            max_num_batched_tokens=v["max_num_batched_tokens"],
            gpu_memory_utilization=v["gpu_memory_utilization"],
        )

    def describe(self) -> dict[str, Any]:
        """The space as plain data (stored with the run)."""
        return {
            "model": self.model,
            "hardware": self.hardware,
            "devices": self.devices,
            "devices_per_node": self.devices_per_node,
            "nodes": self.nodes,
            "engines": [
                {
                    "id": e.id,
                    "weight_dtypes": list(e.weight_dtypes),
                    "kv_dtypes": list(e.kv_dtypes),
                    "parallelism": sorted(e.parallelism),
                    "spec_method": e.spec_method,
                    "spec_draft_model": e.spec_draft_model,
                }
                for e in self.engines
            ],
            **{
                _FIELD.get(name, name): list(self.options(name))
                for name in GENES[1:]
                if name != "replicas"
            },
            "replicas": [1, self.devices],
            "checkpoint_dtype": self.checkpoint_dtype,
            "num_experts": self.num_experts,
            "max_in_flight": self.max_in_flight,
            "size": self.size,
            "notes": list(self.notes),
        }


# ---------------------------------------------------------------------- building from the catalog


class _ModelLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def checkpoint_dtype(self) -> str: ...
    @property
    def num_layers(self) -> int: ...
    @property
    def is_moe(self) -> bool: ...
    @property
    def num_experts(self) -> int: ...
    @property
    def layer_groups(self) -> Any: ...


def _powers_of_two(limit: int) -> list[int]:
    out, v = [], 1
    while v <= limit:
        out.append(v)
        v *= 2
    return out


def attention_heads(model: Any) -> int | None:
    """The head count TP must divide: the gcd of the query heads of every layer kind (None if unknown)."""
    heads = 0
    for group in getattr(model, "layer_groups", ()) or ():
        spec = group[0]
        q = int(getattr(spec, "q_heads", 0) or 0)
        if q > 0:
            heads = math.gcd(heads, q)
    return heads or None


def normalise_quant(name: str, checkpoint_dtype: str) -> str:
    key = name.strip().lower()
    if key in _CHECKPOINT_ALIASES or key == checkpoint_dtype:
        return "auto"
    aliases = {"awq": "int4", "gptq": "int4", "w4a16": "int4", "w8a8": "int8", "fp4": "nvfp4"}
    key = aliases.get(key, key)
    if key not in WEIGHT_BYTES:
        raise BudsimError(
            f"unknown quantisation {name!r}; choose among auto, {', '.join(WEIGHT_BYTES)}"
        )
    return "auto" if key == checkpoint_dtype else key


_SAME_SIZE = {"fp16": "bf16", "fp32": "bf16"}


def weight_options(
    engine_quants: Sequence[str],
    checkpoint_dtype: str,
    allowed: Sequence[str] | None = None,
    runs: Callable[[str], bool] | None = None,
) -> tuple[str, ...]:
    """Weight dtypes one engine can serve this checkpoint with.

    "auto" (the checkpoint as it is) plus every other format the engine runs; `runs(dtype)` says whether
    the engine can serve this checkpoint in that format (budsim.core.engines.runs_weights: never
    upcast, some formats only from a checkpoint already in them). Without `runs`, any format strictly
    smaller than the checkpoint qualifies. Formats the same size as the checkpoint (fp16 for bf16) are
    the checkpoint itself. `allowed` narrows to the user's --quant list.
    """
    ck_bytes = WEIGHT_BYTES.get(checkpoint_dtype, 2.0)
    ck_class = _SAME_SIZE.get(checkpoint_dtype, checkpoint_dtype)

    def ok(dtype: str) -> bool:
        if runs is not None:
            return runs(dtype)
        return dtype == checkpoint_dtype or WEIGHT_BYTES.get(dtype, ck_bytes) < ck_bytes

    out: list[str] = []
    if any(_SAME_SIZE.get(q, q) == ck_class for q in engine_quants) and ok(checkpoint_dtype):
        out.append("auto")
    for q in engine_quants:
        if _SAME_SIZE.get(q, q) == ck_class or q in out or not ok(q):
            continue
        out.append(q)
    if allowed is not None:
        keep = {normalise_quant(a, checkpoint_dtype) for a in allowed}
        out = [d for d in out if d in keep]
    return tuple(out)


def _runs_predicate(
    profile: Any, checkpoint_dtype: str, fp4_cores: bool = True
) -> Callable[[str], bool] | None:
    try:
        from ..engines import runs_weights
    except ImportError:  # pragma: no cover - older engines module
        return None

    quantised = _SAME_SIZE.get(checkpoint_dtype, checkpoint_dtype) != "bf16"

    def runs(dtype: str) -> bool:
        # A quantised checkpoint is searched only as it is: serving it in another format needs a
        # different checkpoint (made from the 16-bit original), which `budsim export` cannot make.
        # The predictor still answers such what-ifs (measured data has NVFP4 runs of FP8 models).
        if quantised and dtype != checkpoint_dtype:
            return False
        return bool(runs_weights(profile, dtype, checkpoint_dtype, fp4_cores))

    return runs


def searched_by_default(profile: _EngineLike) -> bool:
    """Whether a search (and the TUI's engine list) weighs `profile` unless engines are named.
    Physics-only engines are not ranked against calibrated ones; on a hardware kind with no
    calibration at all (CPU, Gaudi) every engine is physics-only, so all compete."""
    from ..calibration.store import kind_calibrated

    return bool(getattr(profile, "calibrated", True)) or not kind_calibrated(profile.kind)


def build_space(
    model: Any,
    cluster: Any,
    engines: Sequence[_EngineLike],
    workload: Workload,
    limits: Limits | None = None,
) -> SearchSpace:
    """The search space for a ModelSpec on a Cluster, over the given engine profiles (one hardware kind).

    Raises BudsimError when the user's limits leave nothing to search.
    """
    limits = limits or Limits()
    device = cluster.device
    total = int(cluster.count)
    if limits.max_devices is not None:  # (its bounds: budsim.core.schema.SearchInput)
        total = min(total, limits.max_devices)
    dpn = max(1, min(int(cluster.devices_per_node), total))
    nodes = max(1, int(cluster.nodes))
    notes: list[str] = []

    allowed_engines = None
    if limits.engines:
        allowed_engines = {e.strip().lower() for e in limits.engines}
    quant_allowed = list(limits.quantizations) if limits.quantizations else None
    if quant_allowed is not None:
        for q in quant_allowed:  # fail early on typos
            normalise_quant(q, model.checkpoint_dtype)

    choices: list[EngineChoice] = []
    for profile in engines:
        if allowed_engines is not None and profile.id not in allowed_engines:
            continue
        if allowed_engines is None and not searched_by_default(profile):
            notes.append(f"{profile.id}: physics-only, searched when named in --engines")
            continue
        if getattr(profile, "static_batches_only", False) and workload.scenario != "static":
            notes.append(f"{profile.id}: static batches only, not searched for this workload")
            continue
        w = weight_options(
            profile.quantizations,
            model.checkpoint_dtype,
            quant_allowed,
            runs=_runs_predicate(
                profile, model.checkpoint_dtype, bool(cluster.device.tflops.get("fp4"))
            ),
        )
        if not w:
            notes.append(f"{profile.id}: no allowed weight format for this checkpoint")
            continue
        kv = tuple(d for d in ("auto", "fp8") if d in profile.kv_dtypes) or ("auto",)
        pairing: bool = getattr(profile, "fp8_kv_needs_fp8_weights", False)
        choices.append(
            EngineChoice(
                profile.id, w, kv, frozenset(profile.parallelism), fp8_kv_needs_fp8_weights=pairing
            )
        )
        for entry in limits.speculative:
            # (prices steps: not at import)
            from ..speculative import check_draft, searched_method, speculation_unavailable

            method, draft = searched_method(entry)
            why = speculation_unavailable(method, profile.id, device.kind, model, draft)
            if why:
                notes.append(f"{profile.id}: no {method} ({why})")
                continue
            if draft:
                check_draft(model, draft)  # a draft the target cannot use stops the search
            choices.append(
                EngineChoice(
                    profile.id,
                    w,
                    kv,
                    frozenset(profile.parallelism),
                    method,
                    fp8_kv_needs_fp8_weights=pairing,
                    spec_draft_model=draft,
                )
            )
    if allowed_engines is not None:
        unknown = allowed_engines - {p.id for p in engines}
        if unknown:
            runs_here = ", ".join(sorted({p.id for p in engines})) or "none"
            raise BudsimError(
                f"engine(s) {', '.join(sorted(unknown))} do not run on {device.kind} hardware "
                f"({device.id}); engines there: {runs_here}"
            )
    if not choices:
        raise BudsimError(
            "no engine can serve this model with the allowed quantisations on "
            f"{device.id} ({'; '.join(notes) or 'no engine for this hardware'})"
        )

    heads = attention_heads(model)
    tp = [t for t in _powers_of_two(dpn) if heads is None or heads % t == 0]
    if dpn not in tp and (heads is None or heads % dpn == 0) and dpn <= total:
        tp.append(dpn)
    layers = int(getattr(model, "num_layers", MAX_PP) or MAX_PP)
    pp = [p for p in _powers_of_two(min(total, MAX_PP)) if p <= layers]
    is_moe = bool(getattr(model, "is_moe", False))
    num_experts = int(getattr(model, "num_experts", 0) or 0) if is_moe else 0
    dp = _powers_of_two(total) if num_experts else [1]
    ep = [e for e in _powers_of_two(total) if not num_experts or num_experts % e == 0]
    if not num_experts:
        ep = [1]

    seqs = list(DEFAULT_MAX_NUM_SEQS)
    if limits.max_batch_size is not None:
        seqs = [s for s in seqs if s <= limits.max_batch_size]
        if limits.max_batch_size not in seqs:
            seqs.append(limits.max_batch_size)
        seqs.sort()

    utils = list(DEFAULT_MEMORY_FRACTIONS)
    if limits.max_memory_gb is not None:
        cap = math.floor(100 * limits.max_memory_gb / device.memory_gb) / 100
        if cap < 0.05:
            raise BudsimError(
                f"--max-memory-gb {limits.max_memory_gb:g} is under 5% of one {device.id} "
                f"({device.memory_gb:g} GB)"
            )
        utils = [u for u in utils if u <= cap] or [min(cap, 0.99)]
        if cap < max(DEFAULT_MEMORY_FRACTIONS) and cap not in utils:
            utils.append(min(cap, 0.99))
        utils.sort()

    in_flight: int | None
    if workload.scenario == "concurrency":
        in_flight = workload.concurrency
    elif workload.scenario == "static":
        in_flight = workload.batch_size
    else:
        in_flight = None

    wd_union = sorted(
        {d for c in choices for d in c.weight_dtypes},
        key=lambda d: dtype_rank(d, model.checkpoint_dtype),
    )
    kv_union = sorted({d for c in choices for d in c.kv_dtypes}, key=lambda d: d != "auto")
    return SearchSpace(
        model=model.name,
        hardware=device.id,
        devices=total,
        devices_per_node=dpn,
        nodes=nodes,
        engines=tuple(choices),
        tp=tuple(tp),
        pp=tuple(pp),
        dp=tuple(dp),
        ep=tuple(ep),
        weight_dtypes=tuple(wd_union),
        kv_dtypes=tuple(kv_union),
        max_num_seqs=tuple(seqs),
        max_num_batched_tokens=DEFAULT_TOKEN_BUDGETS,
        gpu_memory_utilization=tuple(utils),
        checkpoint_dtype=model.checkpoint_dtype,
        num_experts=num_experts,
        max_in_flight=in_flight,
        input_len=workload.longest_input,
        replicas_span_nodes=device.kind != "cpu",
        notes=tuple(notes),
    )
