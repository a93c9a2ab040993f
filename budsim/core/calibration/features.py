"""Numeric features of one prediction case, shared by training, validation and `apply_calibration`.

Everything is a plain number so that hardware and models outside the training data still map to
points the models have seen neighbours of. The vector has two parts:

- a *deployment* part (hardware specs, model facts, engine, parallelism, dtypes and the physics
  step times at fixed reference points) that depends only on the resolved deployment and is cached;
- a *case* part (lengths, load, scenario and the physics outputs of this case).

Monotonicity: the features that change when the load or the input length grows are all
non-decreasing in them and are listed in `MONOTONE_UP`. Training constrains every model to be
non-decreasing in them, so a calibrated TPOT never falls when concurrency rises and a calibrated TTFT
never falls when the prompt grows (given that the physics itself is monotone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..deployment import Deployment, Workload
from ..dtypes import COMPUTE_DTYPE, kv_bytes, weight_bytes
from ..engines import CALIBRATED_ENGINE_IDS
from ..errors import BudsimError
from ..memory import resolve_kv_dtype
from ..predict import step_model
from ..simulator import request_overhead_s
from ..steptime import prompt_alone_s

if TYPE_CHECKING:
    import numpy as np

    from ..predict import Prediction, Resolved

# Metric families with their own residual models. Throughput is not modelled: it follows from the
# calibrated latencies (closed loop: Little's law; static batch: batch x lengths / latency).
FAMILIES: tuple[str, ...] = ("ttft", "tpot", "e2e")
# Which families apply to a scenario.
SCENARIO_FAMILIES: dict[str, tuple[str, ...]] = {
    "concurrency": ("ttft", "tpot"),
    "rate": ("ttft", "tpot"),
    "static": ("e2e",),
}

_DEPLOYMENT_FEATURES: tuple[str, ...] = (
    # hardware
    "hw_mem_bw_gbs",
    "hw_bf16_tflops",
    "hw_fp8_tflops",
    "hw_fp4_tflops",
    "hw_peak_used_tflops",
    "hw_memory_gb",
    "hw_scaleup_bw_gbs",
    "hw_devices_per_node",
    # model
    "m_active_params_b",
    "m_total_params_b",
    "m_kv_bytes_per_token",
    "m_is_moe",
    "m_is_mla",
    "m_experts",
    "m_top_k",
    "m_layers",
    "m_hidden",
    "m_not_full_attention",  # share of layers with sliding or linear attention
    # engine
    *(f"e_{e}" for e in CALIBRATED_ENGINE_IDS),
    "e_mixed_scheduler",
    # parallelism
    "p_tp",
    "p_pp",
    "p_dp",
    "p_ep",
    "p_devices",
    "p_multinode",
    # precision
    "d_weight_bytes",
    "d_kv_bytes",
    # physics at fixed reference points (independent of this case's load and lengths)
    "ref_decode1_ms",  # one decode step, batch 1, 1k context
    "ref_decode64_ms",  # one decode step, batch 64, 1k context each
    "ref_decode64_compute_share",
    "ref_decode64_comm_share",
    "ref_decode64_overhead_share",
    "ref_prefill_ms",  # one 2k-token prefill
    "ref_prefill_compute_share",
    "ref_prefill_comm_share",
    "mem_weights_share",  # weights / device memory
)
_CASE_FEATURES: tuple[str, ...] = (
    "s_concurrency",
    "s_static",
    "s_rate",
    "w_isl",
    "w_osl",
    "w_load",  # per replica: concurrency, batch, or in-flight requests of a rate (Little's law)
    "ph_log_ttft_ms",
    "ph_log_ttft_alone_ms",  # one request on an idle replica: ph_log_ttft_ms less the queueing
    "ph_log_tpot_ms",
    "ph_log_e2e_s",
    "ph_kv_pressure",  # load / sequences the KV cache holds
    "e_version_status",  # what the measurement says about its software (VERSION_* below)
)
FEATURES: tuple[str, ...] = _DEPLOYMENT_FEATURES + _CASE_FEATURES

# Sizes and shapes of the model itself. With a handful of models in a family's data they act as
# model identifiers: a tree that splits on them learns "this model" rather than a mechanism, and
# need not transfer to a model it never saw (the physics features already carry their effect).
# The MoE / MLA flags stay: they name a mechanism, not a model.
MODEL_FACTS: tuple[str, ...] = tuple(
    n for n in _DEPLOYMENT_FEATURES if n.startswith("m_") and n not in ("m_is_moe", "m_is_mla")
)

# Non-decreasing in load and input length; the models are constrained to be non-decreasing in them.
MONOTONE_UP: tuple[str, ...] = (
    "w_isl",
    "w_load",
    "ph_log_ttft_ms",
    "ph_log_ttft_alone_ms",
    "ph_log_tpot_ms",
    "ph_log_e2e_s",
    "ph_kv_pressure",
)
# Output length only matters monotonically for whole-request latency.
FAMILY_MONOTONE_UP: dict[str, tuple[str, ...]] = {
    "ttft": MONOTONE_UP,
    "tpot": MONOTONE_UP,
    "e2e": (*MONOTONE_UP, "w_osl"),
}

# `e_version_status`: how well the software that produced a measurement is identified. Measurements
# of an unnamed engine, or of a named one without its version (often years older, e.g. mid-2024
# vLLM-ROCm), differ systematically from current releases. A prediction is for an engine the user
# names and runs today, so it is VERSION_KNOWN unless `Workload.extra["engine_version"]` says
# otherwise ("" or None: the version is unknown).
VERSION_KNOWN = 1.0
VERSION_UNKNOWN = 0.0
VERSION_UNNAMED = -1.0  # the source does not name its engine (budsim simulates a stand-in)
ENGINE_VERSION_KEY = "engine_version"
# Guard segments: the shrink of the learned correction is chosen per value of `e_version_status`.
VERSION_SEGMENTS: dict[float, str] = {
    VERSION_KNOWN: "versioned",
    VERSION_UNKNOWN: "unversioned",
    VERSION_UNNAMED: "unnamed",
}


def version_status(engine: Any, version: Any) -> float:
    """`e_version_status` of a measured row from its engine and engine_version columns."""
    if engine == "other":
        return VERSION_UNNAMED
    if not isinstance(version, str) or not version.strip():
        return VERSION_UNKNOWN
    return VERSION_KNOWN


def workload_version_status(workload: Workload) -> float:
    """`e_version_status` of a prediction: known unless the workload says otherwise."""
    extra = workload.extra or {}
    if ENGINE_VERSION_KEY not in extra:
        return VERSION_KNOWN
    return version_status(extra.get("engine"), extra.get(ENGINE_VERSION_KEY))


_N_DEP = len(_DEPLOYMENT_FEATURES)
_DEP_CACHE: dict[Deployment, list[float]] = {}
_DEP_CACHE_MAX = 8192


def monotone_vector(family: str) -> list[int]:
    up = set(FAMILY_MONOTONE_UP[family])
    return [1 if name in up else 0 for name in FEATURES]


def _shares(st: Any) -> tuple[float, float, float]:
    total = st.total or 1.0
    return st.compute / total, st.communication / total, st.overhead / total


def deployment_features(resolved: Resolved) -> list[float]:
    """The deployment part of the vector (cached per resolved deployment)."""
    dep = resolved.deployment
    cached = _DEP_CACHE.get(dep)
    if cached is not None:
        return cached
    model, device, engine = resolved.model, resolved.device, resolved.engine
    wdtype = dep.weight_dtype
    kvdtype = resolve_kv_dtype(dep.kv_dtype)
    tf = device.tflops
    layers = sum(n for _, n in model.layer_groups) or 1
    not_full = sum(
        n for spec, n in model.layer_groups if spec.attention != "full" or spec.window is not None
    )
    step = step_model(resolved.deployment)
    dec1 = step(1, 1024.0, 0, 0.0, 0)
    dec64 = step(64, 64 * 1024.0, 0, 0.0, 0)
    pf = step(0, 0.0, 2048, 2048 * 2049 / 2.0, 1)
    d64 = _shares(dec64)
    p = _shares(pf)
    try:
        weights_gb = model.weight_bytes(wdtype) / 1e9 / max(1, dep.tp * dep.pp)
    except BudsimError:  # an unknown dtype string: leave the share at 0
        weights_gb = 0.0
    out = [
        device.memory_bw_gbs,
        float(tf.get("bf16") or tf.get("fp16") or 0.0),
        float(tf.get("fp8") or 0.0),
        float(tf.get("fp4") or 0.0),
        device.peak_tflops(COMPUTE_DTYPE.get(wdtype, "bf16")),
        device.memory_gb,
        device.scaleup_bw_gbs,
        float(device.devices_per_node),
        model.active_params / 1e9,
        model.total_params / 1e9,
        model.kv_bytes_per_token(kv_bytes(kvdtype)),
        float(model.is_moe),
        float(model.attention_kind == "mla"),
        float(model.num_experts),
        float(model.top_k),
        float(model.num_layers),
        float(model.hidden_size),
        not_full / layers,
        *(float(engine.id == e) for e in CALIBRATED_ENGINE_IDS),
        float(engine.scheduler == "mixed"),
        float(dep.tp),
        float(dep.pp),
        float(dep.dp),
        float(dep.ep),
        float(dep.devices_per_replica),
        float(dep.devices_per_replica > device.devices_per_node),
        weight_bytes(wdtype),
        kv_bytes(kvdtype),
        dec1.total * 1e3,
        dec64.total * 1e3,
        d64[0],
        d64[1],
        d64[2],
        pf.total * 1e3,
        p[0],
        p[1],
        weights_gb / device.memory_gb if device.memory_gb else 0.0,
    ]
    if len(_DEP_CACHE) >= _DEP_CACHE_MAX:
        _DEP_CACHE.clear()
    _DEP_CACHE[dep] = out
    return out


_ALONE_CACHE: dict[tuple[Deployment, int, int], float] = {}


def isolated_ttft_ms(resolved: Resolved, input_len: int, output_len: int = 2) -> float:
    """Physics TTFT of one request on an idle replica: its prompt's prefill chunks plus the
    engine's front-end latency (and, for an engine that reports tokens a step late, its mean
    decode step, as the simulator charges it). What a simulated TTFT adds to it is queueing behind
    other requests, which real closed loops show only in part (their waves drift apart), so the
    residual models see both."""
    dep = resolved.deployment
    key = (dep, input_len, output_len)
    cached = _ALONE_CACHE.get(key)
    if cached is not None:
        return cached
    step = step_model(dep)
    budget = max(1, dep.max_num_batched_tokens or resolved.engine.default_max_num_batched_tokens)
    seconds = prompt_alone_s(step, input_len, budget)
    if resolved.engine.reports_one_step_late and output_len > 1:
        # its decode steps run one after another, a span the simulator prices by its ends
        first = step(1, input_len + 1.0, 0, 0.0, 0).total
        last = step(1, input_len + output_len - 1.0, 0, 0.0, 0).total
        seconds += (first + last) / 2
    out = (seconds + request_overhead_s(resolved.engine, input_len)) * 1e3
    if len(_ALONE_CACHE) >= _DEP_CACHE_MAX:
        _ALONE_CACHE.clear()
    _ALONE_CACHE[key] = out
    return out


def _log(value: float | None) -> float:
    return math.log(value) if value and value > 0 and math.isfinite(value) else 0.0


def case_features(
    resolved: Resolved, workload: Workload, pred: Prediction, status: float | None = None
) -> list[float]:
    """The case part of the vector."""
    replicas = max(1, resolved.deployment.replicas)
    scen = workload.scenario
    if scen == "static":
        load = workload.batch_size / replicas
        e2e = pred.e2e_s_max
    elif scen == "concurrency":
        load = workload.concurrency / replicas
        e2e = pred.e2e_s_mean
    else:  # rate: requests in flight per replica (Little's law)
        load = workload.rate / replicas * (pred.e2e_s_mean or 0.0)
        e2e = pred.e2e_s_mean
    seqs = pred.max_concurrency / replicas if pred.max_concurrency else 0.0
    pressure = load / seqs if seqs > 0 else 4.0
    return [
        float(scen == "concurrency"),
        float(scen == "static"),
        float(scen == "rate"),
        float(workload.input_len),
        float(workload.output_len),
        float(load),
        _log(pred.ttft_ms_mean if scen != "static" else pred.ttft_ms_p99),
        _log(isolated_ttft_ms(resolved, workload.input_len, workload.output_len)),
        _log(pred.tpot_ms_mean),
        _log(e2e),
        min(pressure, 4.0),
        workload_version_status(workload) if status is None else float(status),
    ]


def feature_list(
    resolved: Resolved, workload: Workload, pred: Prediction, status: float | None = None
) -> list[float]:
    """The feature vector; `status` overrides `e_version_status` (training rows know theirs)."""
    return deployment_features(resolved) + case_features(resolved, workload, pred, status)


def feature_vector(resolved: Resolved, workload: Workload, pred: Prediction) -> np.ndarray:
    import numpy as np

    return np.asarray(feature_list(resolved, workload, pred), dtype=np.float32)


assert len(FEATURES) == _N_DEP + len(_CASE_FEATURES)

# The feature holding log(physics value) that each family's residual is relative to.
FAMILY_PHYSICS_FEATURE: dict[str, str] = {
    "ttft": "ph_log_ttft_ms",
    "tpot": "ph_log_tpot_ms",
    "e2e": "ph_log_e2e_s",
}
FEATURE_INDEX: dict[str, int] = {name: i for i, name in enumerate(FEATURES)}


def version_segment(status: float) -> str:
    """The version part of a guard segment (unexpected values: "versioned")."""
    return VERSION_SEGMENTS.get(float(status), VERSION_SEGMENTS[VERSION_KNOWN])


# Guard segments split by architecture class and engine too ("versioned:moe:vllm", ...): a
# correction learned on MoE models alone has no support for a dense model (nor the reverse), and
# one learned on one engine's measurements none for another engine's (their campaigns differ in
# ways no feature records: held out, vLLM's MiniMax-M2.5 TTFT went from 20 % to 65 % error under a
# correction learned on the SGLang and TRT-LLM runs of other models). So each (class, engine) gets
# its own shrink, chosen on its own out-of-fold rows, and 0 (physics) where the training data has
# none of it. Held out, the only dense model of aic_silicon (Llama-3.1-8B) and the only MoE model
# of LLM-Inference-Bench (Mixtral) were made worse than physics by a correction learned on the
# other class.
ARCH_CLASSES: tuple[str, ...] = ("dense", "moe")
SEGMENT_ENGINES: tuple[str, ...] = (*CALIBRATED_ENGINE_IDS, "other")
SEGMENTS: tuple[str, ...] = tuple(
    f"{v}:{a}:{e}" for v in VERSION_SEGMENTS.values() for a in ARCH_CLASSES for e in SEGMENT_ENGINES
)
_ENGINE_FEATURES = tuple(FEATURE_INDEX[f"e_{e}"] for e in CALIBRATED_ENGINE_IDS)


def engine_of(x: Sequence[float] | np.ndarray) -> str:
    """The engine a feature vector describes (its one-hot engine features)."""
    for engine, index in zip(CALIBRATED_ENGINE_IDS, _ENGINE_FEATURES, strict=True):
        if x[index]:
            return engine
    return "other"


def segment(status: float, is_moe: float, engine: str) -> str:
    """The guard segment of a row from its `e_version_status`, `m_is_moe` and engine."""
    arch = ARCH_CLASSES[1] if is_moe else ARCH_CLASSES[0]
    return f"{version_segment(status)}:{arch}:{engine}"
