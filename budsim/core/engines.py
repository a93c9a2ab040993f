"""Serving-engine profiles: what each engine runs where, its scheduler, defaults and overheads.

The numbers describe the engine release in ENGINE_VERSIONS, the one version per engine that
`budsim engines` lists and every exported script targets (budsim.core.export.flags). Per-step CPU overheads are typical values for
that engine with CUDA graphs (or HPU graphs) on a modern host; eager runtimes (CPU) pay a per-layer launch
cost instead. LiteLLM and LLMC are not runtimes: they live in budsim.core.export.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from .dtypes import GGUF_DTYPES, WEIGHT_BYTES
from .errors import BudsimError


# kw_only: every profile names its fields, so the ones most engines share can default (to the
# common value) without reordering the class
@dataclass(frozen=True, kw_only=True)
class EngineProfile:
    id: str
    name: str
    version: str
    kind: str  # the hardware kind this profile is for
    quantizations: tuple[str, ...]  # weight dtypes it runs on this kind
    kv_dtypes: tuple[str, ...]
    parallelism: frozenset[str]  # subset of {"tp", "pp", "dp", "ep"}
    # "mixed" (vLLM v1, TRT-LLM: decodes and prefill chunks share a step) or "prefill_first"
    # (SGLang: a prefill batch runs alone); budsim.core.schedulers has one policy per engine
    scheduler: str
    default_max_num_seqs: int
    default_max_num_batched_tokens: int
    default_gpu_memory_utilization: float = 0.90
    # True when the fraction applies to the memory left after weights (TRT-LLM's
    # kv_cache_free_gpu_memory_fraction); False when it caps total device memory (vLLM, SGLang).
    memory_fraction_of_free: bool = False
    graphs: bool = True  # CUDA/HPU graphs for decode
    # vLLM on Gaudi: every step runs as a warmed-up HPU-graph shape, its batch and prompt chunks
    # padded up to the nearest bucket (budsim.core.buckets)
    graph_buckets: bool = False
    runtime_overhead_gb: float  # context, allocator slack, workspace
    graph_overhead_gb: float
    comm_overhead_gb: float  # NCCL/HCCL buffers when more than one device
    step_overhead_ms: float  # fixed scheduler + launch cost per iteration
    # per running sequence per iteration (batching, sampling, detokenise)
    per_seq_overhead_us: float
    # eager mode: kernel launches per layer per iteration (none where graphs replay the step)
    per_layer_launch_us: float = 0.0
    # ((min device GB, max_num_seqs, max_num_batched_tokens), ...): the engine's own defaults
    # by device memory, largest threshold first; below all of them the default_* values apply
    memory_defaults: tuple[tuple[float, int, int], ...] = ()
    # Engines that pad attention heads so TP need not divide them: TRT-LLM, and SGLang on CUDA,
    # which AIConfigurator measured (v0.5.9) at TP 64 on Qwen3.5-397B's 32 heads. The padded heads
    # cost compute (steptime rounds heads per device up).
    pads_heads: bool = False
    # Weight formats the engine only loads from a checkpoint already in that format (it cannot
    # quantise to them at load time): mxfp4 everywhere.
    prequantized_only: tuple[str, ...] = ("mxfp4",)
    # True where an fp8 KV cache comes only with fp8 weights: vLLM on Gaudi quantises both through
    # one Intel Neural Compressor config (--quantization inc --kv-cache-dtype fp8_inc).
    fp8_kv_needs_fp8_weights: bool = False
    # True: a request is admitted only when the KV for its whole prompt and output fits next to what
    # the running requests reserved, so nothing is ever preempted (TRT-LLM's default capacity policy,
    # GUARANTEED_NO_EVICT). False: admission needs room for the prompt only, and decode growth past
    # the cache preempts (vLLM, SGLang).
    reserves_output_kv: bool = False
    # True when the engine hands each step's tokens to its clients one step late: an overlap
    # scheduler launches step n + 1 before it processes step n's output on the CPU (TRT-LLM's
    # PyTorch backend, default since 1.0: "introduces one extra decoding step"; SGLang's
    # zero-overhead batch scheduler, default since v0.4). Every token, the first included, then
    # reaches the client one step later: TTFT and E2E grow by a step, TPOT does not change.
    reports_one_step_late: bool = False
    # False: the shipped calibration was never trained on this engine's runs, so its predictions
    # stay physics-only (budsim.core.predict skips the learned correction, the search only
    # compares it when asked for by name)
    calibrated: bool = True
    # True: the engine runs one static batch to completion and has no serving loop (no arrivals,
    # no admission while a batch runs), so only static workloads can be predicted for it
    static_batches_only: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)

    def defaults_for(self, device_memory_gb: float) -> tuple[int, int]:
        """(max_num_seqs, max_num_batched_tokens) the engine picks on a device of this size."""
        for min_gb, seqs, tokens in self.memory_defaults:
            if device_memory_gb >= min_gb:
                return seqs, tokens
        return self.default_max_num_seqs, self.default_max_num_batched_tokens


# One release per engine, the single source of the version: the profiles below describe it,
# `budsim engines` lists it, the exporter's flag tables (budsim.core.export.flags) were checked
# against it and its official images carry it. vLLM: 0.11.0 (CUDA, CPU images) and 0.11.2 (ROCm);
# TensorRT-LLM: trtllm-serve's PyTorch backend. llama.cpp: llama-server at ggml-org/llama.cpp
# commit 00dc8057, the build whose generated option table ../shared/reference/engine_flags/
# llama_server.txt holds (its bNNNN release tag was not resolvable offline, so the commit is the pin).
ENGINE_VERSIONS: dict[str, str] = {
    "vllm": "0.11.x",
    "sglang": "0.5.23",
    "trtllm": "1.2",
    "llamacpp": "commit 00dc8057",
    # DeepSpeed inference as LLM-Inference-Bench ran it on Gaudi2 (mid-2024; the rows do not
    # record the release: Habana's DeepSpeed fork of that time pairs with SynapseAI 1.16)
    "deepspeed": "habana fork, mid-2024",
}

_GPU_QUANT = ("bf16", "fp16", "fp8", "int8", "int4", "nvfp4", "mxfp4")
# GGUF files llama.cpp serves: the K-quant mixes, Q8_0, and the 16-bit BF16/F16 conversions
_GGUF_QUANT = ("q4_k_m", "q5_k_m", "q8_0", "bf16", "fp16")


def _llamacpp(kind: str, name: str, **knobs: Any) -> EngineProfile:
    """llama-server on one hardware kind. Shared behaviour (documented in tools/server/README.md
    at the pinned commit): `--parallel` slots (-1 = auto = 4 slots over a unified KV cache) batched
    together each iteration, decodes first and then prompt tokens up to `--batch-size` 2048
    (`--ubatch-size` 512 per physical pass), the way vLLM's mixed scheduler composes a step; no
    tensor parallelism: several GPUs split the layers (`--split-mode layer`, modelled as pp). No
    memory fraction exists: the plan sizes `--ctx-size` to the KV cache that fits in 90 % of the
    device, leaving room for the compute buffers. Overheads are round estimates of the host work
    per llama_decode call (graph build, slot bookkeeping, sampling), not fitted to measurements."""
    base: dict[str, Any] = dict(
        id="llamacpp",
        name=name,
        version=ENGINE_VERSIONS["llamacpp"],
        kind=kind,
        quantizations=_GGUF_QUANT,
        kv_dtypes=("auto",),
        parallelism=frozenset({"pp"}),
        scheduler="mixed",
        default_max_num_seqs=4,
        default_max_num_batched_tokens=2048,
        prequantized_only=(),
        calibrated=False,
        comm_overhead_gb=0.0,  # layer split hands activations over; no collective buffers
        notes=("physics only: no calibration was trained on llama.cpp runs",),
    )
    base.update(knobs)
    return EngineProfile(**base)


def _on_cuda(**knobs: Any) -> EngineProfile:
    """A serving engine's CUDA build (vLLM, SGLang, TRT-LLM): every GPU weight format, an fp8 KV
    cache, all four parallelisms, CUDA graphs, and the same CUDA context and NCCL buffers."""
    return EngineProfile(
        kind="cuda",
        quantizations=_GPU_QUANT,
        kv_dtypes=("auto", "fp8"),
        parallelism=frozenset({"tp", "pp", "dp", "ep"}),
        runtime_overhead_gb=1.5,
        comm_overhead_gb=0.4,
        **knobs,
    )


def _on_gaudi(**knobs: Any) -> EngineProfile:
    """An engine on Gaudi (vLLM's plugin, DeepSpeed): HPU graphs, and the SynapseAI runtime's
    context, graph cache and HCCL buffers, which are the same whichever engine drives them."""
    return EngineProfile(
        kind="hpu",
        runtime_overhead_gb=2.5,
        graph_overhead_gb=2.0,
        comm_overhead_gb=0.5,
        **knobs,
    )


_VLLM_CUDA = _on_cuda(
    id="vllm",
    name="vLLM",
    version=ENGINE_VERSIONS["vllm"],
    scheduler="mixed",
    default_max_num_seqs=256,
    default_max_num_batched_tokens=2048,
    memory_defaults=((70.0, 1024, 8192),),
    graph_overhead_gb=0.7,
    step_overhead_ms=1.6,
    per_seq_overhead_us=9.0,
    notes=("V1 engine: decode-first scheduling with chunked prefill",),
)


_SGLANG_CUDA = _on_cuda(
    id="sglang",
    name="SGLang",
    pads_heads=True,
    version=ENGINE_VERSIONS["sglang"],
    scheduler="prefill_first",
    default_max_num_seqs=1024,
    default_max_num_batched_tokens=4096,
    memory_defaults=((160.0, 1024, 16384), (60.0, 1024, 8192)),
    default_gpu_memory_utilization=0.88,
    graph_overhead_gb=0.8,
    step_overhead_ms=1.1,
    per_seq_overhead_us=6.0,
    reports_one_step_late=True,
    notes=("overlap scheduler hides most CPU work; prefill batches run alone by default",),
)


def _on_rocm(
    cuda: EngineProfile, *, step_overhead_ms: float, per_seq_overhead_us: float
) -> EngineProfile:
    """The engine's ROCm build: the CUDA profile's scheduler and defaults with ROCm's formats (no
    int8, nvfp4 or mxfp4 kernels there), HIP's larger runtime and graph buffers, its own per-step
    costs, and nothing CUDA-only (head padding, one-step-late reporting, the CUDA notes)."""
    return replace(
        cuda,
        name=f"{cuda.name} (ROCm)",
        kind="rocm",
        quantizations=("bf16", "fp16", "fp8", "int4"),
        runtime_overhead_gb=2.0,
        graph_overhead_gb=1.0,
        comm_overhead_gb=0.5,
        step_overhead_ms=step_overhead_ms,
        per_seq_overhead_us=per_seq_overhead_us,
        pads_heads=False,
        reports_one_step_late=False,
        notes=(),
    )


PROFILES: tuple[EngineProfile, ...] = (
    _VLLM_CUDA,
    _on_rocm(_VLLM_CUDA, step_overhead_ms=2.2, per_seq_overhead_us=10.0),
    _on_gaudi(
        id="vllm",
        name="vLLM (Gaudi plugin)",
        # fp8 from a bf16 checkpoint through Intel Neural Compressor: a calibration run measures
        # the scales once (vllm-gaudi's calibrate_model.sh), then the engine quantises at load
        version=f"{ENGINE_VERSIONS['vllm']} (vllm-gaudi)",
        quantizations=("bf16", "fp8"),
        kv_dtypes=("auto", "fp8"),
        fp8_kv_needs_fp8_weights=True,
        parallelism=frozenset({"tp", "pp"}),
        scheduler="mixed",
        default_max_num_seqs=128,
        default_max_num_batched_tokens=2048,
        step_overhead_ms=3.5,
        per_seq_overhead_us=15.0,
        graph_buckets=True,
        notes=(
            "HPU graphs: each step is padded to vllm-gaudi's exponential buckets (decode batch, "
            "prompt length)",
        ),
    ),
    EngineProfile(
        id="vllm",
        name="vLLM (CPU)",
        version=ENGINE_VERSIONS["vllm"],
        kind="cpu",
        quantizations=("bf16", "int8", "int4"),
        kv_dtypes=("auto",),
        parallelism=frozenset({"tp", "pp"}),
        scheduler="mixed",
        default_max_num_seqs=256,
        default_max_num_batched_tokens=4096,
        graphs=False,
        runtime_overhead_gb=4.0,
        graph_overhead_gb=0.0,
        comm_overhead_gb=0.5,
        step_overhead_ms=6.0,
        per_seq_overhead_us=40.0,
        per_layer_launch_us=60.0,
        notes=("memory budget is VLLM_CPU_KVCACHE_SPACE; one device = one socket",),
    ),
    _SGLANG_CUDA,
    _on_rocm(_SGLANG_CUDA, step_overhead_ms=1.6, per_seq_overhead_us=8.0),
    _on_cuda(
        id="trtllm",
        name="TensorRT-LLM",
        pads_heads=True,
        reserves_output_kv=True,
        version=f"{ENGINE_VERSIONS['trtllm']} (trtllm-serve, PyTorch backend)",
        scheduler="mixed",
        default_max_num_seqs=2048,
        default_max_num_batched_tokens=8192,
        memory_fraction_of_free=True,
        graph_overhead_gb=0.8,
        step_overhead_ms=1.0,
        per_seq_overhead_us=5.0,
        reports_one_step_late=True,
        notes=("in-flight batching; kv_cache_free_gpu_memory_fraction applies after weights",),
    ),
    # DeepSpeed inference (kernel injection, HPU graphs) on Gaudi: what LLM-Inference-Bench's 244
    # Gaudi2 rows ran. A script calls generate() on one static batch of prompts: the whole batch's
    # prompts run first (alone), then every sequence decodes each step to the last token; TP over
    # HCCL. There is no server: closed-loop and rate workloads are refused. The token budget is
    # 32k per prefill step (a batch's prompts in up to a few passes, its activations bounded like
    # a serving engine's); the overheads are round estimates, physics only.
    _on_gaudi(
        id="deepspeed",
        name="DeepSpeed inference (Gaudi)",
        version=ENGINE_VERSIONS["deepspeed"],
        quantizations=("bf16", "fp16"),
        kv_dtypes=("auto",),
        parallelism=frozenset({"tp"}),
        scheduler="prefill_first",
        default_max_num_seqs=256,
        default_max_num_batched_tokens=32768,
        step_overhead_ms=2.0,
        per_seq_overhead_us=10.0,
        calibrated=False,
        static_batches_only=True,
        notes=(
            "static batches only (no serving loop); physics only: no calibration was trained "
            "on DeepSpeed runs",
        ),
    ),
    # CUDA graphs for decode are on by default in ggml's CUDA backend (GGML_CUDA_GRAPHS)
    _llamacpp(
        "cuda",
        "llama.cpp (llama-server, CUDA)",
        runtime_overhead_gb=0.8,
        graph_overhead_gb=0.1,
        step_overhead_ms=0.8,
        per_seq_overhead_us=50.0,
    ),
    # HIP graphs are a build option (GGML_HIP_GRAPHS) off by default: every kernel is launched
    _llamacpp(
        "rocm",
        "llama.cpp (llama-server, ROCm)",
        graphs=False,
        runtime_overhead_gb=1.0,
        graph_overhead_gb=0.0,
        step_overhead_ms=1.0,
        per_seq_overhead_us=50.0,
        per_layer_launch_us=40.0,
    ),
    # CPU: no graphs and no launches, but ggml's threads meet at a barrier after every op
    _llamacpp(
        "cpu",
        "llama.cpp (llama-server, CPU)",
        graphs=False,
        runtime_overhead_gb=0.5,
        graph_overhead_gb=0.0,
        step_overhead_ms=1.0,
        per_seq_overhead_us=50.0,
        per_layer_launch_us=20.0,
    ),
)

# The engines the shipped calibration has one-hot features for: its feature vector is fixed by the
# pretrained models, so it does not grow with ENGINE_IDS.
CALIBRATED_ENGINE_IDS: tuple[str, ...] = ("vllm", "sglang", "trtllm")
ENGINE_IDS: tuple[str, ...] = (*CALIBRATED_ENGINE_IDS, "llamacpp", "deepspeed")


# What each engine calls budsim's three scheduler knobs (max_num_seqs, max_num_batched_tokens,
# gpu_memory_utilization), for the reports people read next to the engine's own docs; JSON keeps
# budsim's names. llama.cpp has no memory fraction: budsim's caps the KV pool, which sizes
# --ctx-size (budsim.core.export.llamacpp).
_KNOB_NAMES: dict[str, tuple[str, str, str]] = {
    "vllm": ("max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization"),
    "sglang": ("max_running_requests", "chunked_prefill_size", "mem_fraction_static"),
    "trtllm": ("max_batch_size", "max_num_tokens", "free_gpu_memory_fraction"),
    "llamacpp": ("parallel slots", "batch_size", "KV pool share (sizes ctx_size)"),
}


# the same in a few words, for narrow screens (the TUI at 80 columns)
_SHORT_KNOB_NAMES: dict[str, tuple[str, str, str]] = {
    "llamacpp": ("slots", "batch size", "KV pool share"),
}
_SHORT_DEFAULT = ("seqs", "batched tokens", "memory fraction")


def knob_names(engine_id: object, *, short: bool = False) -> tuple[str, str, str]:
    """The engine's own names of max_num_seqs, max_num_batched_tokens and the memory fraction
    (`short`: a few plain words each)."""
    if short:
        return _SHORT_KNOB_NAMES.get(str(engine_id), _SHORT_DEFAULT)
    return _KNOB_NAMES.get(str(engine_id), _KNOB_NAMES["vllm"])


@lru_cache(maxsize=64)
def get_engine(engine_id: str, kind: str) -> EngineProfile:
    """The profile of `engine_id` on hardware of `kind`, or a one-line error."""
    key = engine_id.strip().lower().replace("-", "").replace("_", "")
    aliases = {
        "tensorrtllm": "trtllm",
        "trt": "trtllm",
        "trtllm": "trtllm",
        "llama.cpp": "llamacpp",
        "llamaserver": "llamacpp",
        "deepspeedinference": "deepspeed",
    }
    key = aliases.get(key, key)
    if key not in ENGINE_IDS:
        raise BudsimError(f"unknown engine {engine_id!r}; choose one of {', '.join(ENGINE_IDS)}")
    for profile in PROFILES:
        if profile.id == key and profile.kind == kind:
            return profile
    kinds = sorted({p.kind for p in PROFILES if p.id == key})
    raise BudsimError(
        f"engine {key} does not run on {kind} hardware (it runs on: {', '.join(kinds)})"
    )


def runs_weights(
    engine: EngineProfile,
    weight_dtype: str,
    checkpoint_dtype: str,
    fp4_cores: bool = True,
) -> bool:
    """Whether `engine` can serve a `checkpoint_dtype` checkpoint with `weight_dtype` weights.

    It must run the format, never upcast (a 4-bit checkpoint cannot become bf16), formats it
    cannot quantise to at load time need a checkpoint already in that format, and nvfp4 needs FP4
    tensor cores (pass `fp4_cores=False` for hardware without them).
    """
    if weight_dtype == "nvfp4" and not fp4_cores:
        return False
    same_size = {"fp16": "bf16", "fp32": "bf16"}
    want = same_size.get(weight_dtype, weight_dtype)
    have = same_size.get(checkpoint_dtype, checkpoint_dtype)
    if weight_dtype not in engine.quantizations and want not in engine.quantizations:
        return False
    if want == have:
        return True
    if want in engine.prequantized_only:
        return False
    return _BITS.get(want, 16) <= _BITS.get(have, 16)


_BITS: dict[str, float] = {"bf16": 16, "fp8": 8, "int8": 8, "int4": 4, "nvfp4": 4, "mxfp4": 4}
_BITS.update({q: 8 * WEIGHT_BYTES[q] for q in GGUF_DTYPES})


def engines_for(kind: str) -> list[EngineProfile]:
    """Every engine profile that runs on hardware of `kind`."""
    return [p for p in PROFILES if p.kind == kind]


def all_profiles() -> tuple[EngineProfile, ...]:
    return PROFILES
