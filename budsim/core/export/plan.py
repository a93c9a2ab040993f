"""What an export starts from: one chosen configuration, as plain values.

`ExportPlan` holds everything the targets need, so export never has to load a model or a hardware entry
itself. `from_config_json` builds one from a configuration JSON document; `budsim optimize --json` writes
its `optimal_configuration` in the same shape.

Configuration JSON schema (one object; unknown keys are ignored)::

    {
      "model": "meta-llama/Llama-3.1-8B-Instruct",   # HF id or local checkpoint path (required)
      "hardware": "h100-sxm",                        # hardware id (required); or {"id": ..., "kind": ...}
      "engine": "vllm",                              # vllm | sglang | trtllm (required)
      "tp": 2, "pp": 1, "dp": 1, "ep": 1, "replicas": 2,
      "prefill_workers": 2,            # disaggregated serving, as `budsim predict` takes it: the
      "decode_workers": 1,             # prefill pool's workers (TP/DP/EP: prefill_tp/_dp/_ep, default
                                       # tp/dp/ep) and the decode pool's (tp/dp/ep; no "replicas")
      "weight_dtype": "bf16",          # auto | bf16 | fp16 | fp8 | int8 | int4 | nvfp4 | mxfp4
      "kv_dtype": "auto",              # auto | fp8
      "max_num_seqs": 256, "max_num_batched_tokens": 8192, "gpu_memory_utilization": 0.9,
      "max_model_len": 8192,           # max context per sequence (default: the engine's)
      "spec_method": "eagle3",         # speculative decoding: none | mtp | eagle3 | ngram | draft
      "spec_tokens": 3,                # draft length k (0 = the method's default)
      "spec_draft_model": "",          # spec_method draft: the draft model (same tokenizer)
      "spec_acceptance": null,         # acceptance per drafted token the prediction assumed
                                       # (null = the method's default, budsim.core.speculative)
      "workload": {"input_len": 4096, "output_len": 512,   # the request's workload (max_model_len
                   "shared_prefix_len": 1024, "cached_share": 0.5},  # and prefix caching come from it)
      "shared_prefix_len": 1024,       # or at the top level: prompt prefix all requests share,
      "cached_share": 0.5,             # and the share of the rest cached from earlier turns
      "served_model_name": "llama-8b", # API name (default: model)
      "checkpoint_dtype": "bf16",      # the checkpoint's own weights (bf16 | fp16 | fp8 | int8 | int4 | ...)
      "checkpoint_quant": null,        # its quant_method (fp8, awq, gptq, compressed-tensors, ...)
      "model_type": "llama",           # HF config model_type (names the LLMC model class)
      "is_moe": false,
      "trust_remote_code": false,
      "device_kind": "cuda",           # cuda | rocm | hpu | cpu (default: from the hardware catalog)
      "devices_per_node": 8,           # default: from the hardware catalog
      "device_memory_gb": 80,          # default: from the hardware catalog
      "cpu_cores_per_device": 56,      # CPU plans: physical cores per socket
      "kv_bytes_per_token": 131072,    # KV bytes per token of context, whole model (llama.cpp sizing)
      "run_id": "r-...", "rank": 0, "budsim_version": "0.1.0",
      "predicted_performance": {       # budsim.core.predict.Prediction.to_dict() keys
        "ttft_ms_mean": 120.0, "ttft_ms_mean_lo": 95.0, "ttft_ms_mean_hi": 150.0,
        "tpot_ms_mean": 12.0, ..., "output_tok_s": 4000.0, "total_tok_s": 20000.0,
        "requests_per_s": 15.6, "weights_gb_per_device": 8.1, "kv_cache_gb_per_device": 60.2
      }
    }

The deployment fields may also sit in a nested "deployment" object. The output of `budsim
predict --json` is accepted as it stands: its "configuration" object, predicted by the rest. The
whole output of
`budsim optimize --json` is accepted too: `select_configuration` takes its "optimal_configuration"
(rank 0, with the top-level "predicted_performance"), "alternative_configurations" (rank 1..N) or
"pareto_front" (--pareto K, 0-based), and max_model_len from "request.workload" when not given.
With `disagg`, it takes the best prefill/decode split of `budsim optimize --disagg` ("disaggregated").
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from ... import __version__
from ..deployment import Deployment, Workload
from ..errors import BudsimError
from ..report import count_text
from ..speculative import NO_SPECULATION, expected_tokens, spec_settings

DEVICE_KINDS = ("cuda", "rocm", "hpu", "cpu")
QUANTISED = ("fp8", "int8", "int4", "nvfp4", "mxfp4")
SIXTEEN_BIT = ("bf16", "fp16", "fp32")

# Used only when budsim.core.hardware is not available or lacks the id (kind, devices per node,
# memory GB, physical cores per device for CPUs).
_FALLBACK_HARDWARE: dict[str, tuple[str, int, float, int | None]] = {
    "a100-sxm-40gb": ("cuda", 8, 40, None),
    "a100-sxm-80gb": ("cuda", 8, 80, None),
    "a100-pcie-80gb": ("cuda", 8, 80, None),
    "h100-sxm": ("cuda", 8, 80, None),
    "h100-pcie": ("cuda", 8, 80, None),
    "h100-nvl": ("cuda", 8, 94, None),
    "h200-sxm": ("cuda", 8, 141, None),
    "gh200": ("cuda", 1, 96, None),
    "b200": ("cuda", 8, 180, None),
    "b300": ("cuda", 8, 270, None),
    "gb200": ("cuda", 4, 186, None),
    "l40s": ("cuda", 8, 48, None),
    "l4": ("cuda", 8, 24, None),
    "a10g": ("cuda", 8, 24, None),
    "rtx-4090": ("cuda", 8, 24, None),
    "mi250": ("rocm", 8, 128, None),
    "mi300x": ("rocm", 8, 192, None),
    "mi325x": ("rocm", 8, 256, None),
    "gaudi2": ("hpu", 8, 96, None),
    "gaudi3": ("hpu", 8, 128, None),
    "xeon-8480": ("cpu", 2, 512, 56),
    "xeon-6980p": ("cpu", 2, 768, 128),
    "epyc-9654": ("cpu", 2, 768, 96),
}

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True)
class ExportPlan:
    """One chosen configuration and the facts about its model and hardware that export needs."""

    deployment: Deployment
    device_kind: str
    devices_per_node: int
    served_model_name: str | None = None
    checkpoint_dtype: str | None = None
    checkpoint_quant: str | None = None
    max_model_len: int | None = None
    model_type: str | None = None
    is_moe: bool = False
    trust_remote_code: bool = False
    device_memory_gb: float | None = None
    cpu_cores_per_device: int | None = None
    kv_bytes_per_token: float | None = None
    run_id: str | None = None
    rank: int | None = None
    source: str | None = None
    budsim_version: str = __version__
    prediction: Mapping[str, Any] = field(default_factory=dict)
    # prefix caching the prediction assumed (budsim.core.deployment.Workload): a prompt prefix all
    # requests share, and the share of the rest of each prompt cached from earlier turns
    shared_prefix_len: int = 0
    cached_share: float = 0.0
    # set when the configuration is not a finished run's answer (a failed run's closest one, a
    # cancelled run's best so far): the header leads with it and the CLI repeats it on stderr
    warning: str | None = None
    # the workload the prediction was made for (a stored run's, an optimiser response's request, a
    # configuration's "workload"); None when the source does not say. The bench target replays it.
    workload: Workload | None = None
    # disaggregated serving (budsim.core.disagg): the prefill pool, `replicas` = its workers; the
    # decode pool is then `deployment` (`replicas` = decode workers). None: aggregated serving.
    prefill: Deployment | None = None

    @property
    def model(self) -> str:
        return self.deployment.model

    @property
    def hardware(self) -> str:
        return self.deployment.hardware

    @property
    def engine(self) -> str:
        return self.deployment.engine

    @property
    def served_name(self) -> str:
        return self.served_model_name or self.deployment.model

    @property
    def disaggregated(self) -> bool:
        return self.prefill is not None

    def pool(self, role: str) -> ExportPlan:
        """One pool of a disaggregated plan as a plan of its own (role: prefill | decode); the
        prediction stays the whole deployment's."""
        if self.prefill is None:
            raise BudsimError("internal: pool() of a plan that is not disaggregated")
        deployment = self.prefill if role == "prefill" else self.deployment
        return replace(self, deployment=deployment, prefill=None)

    @property
    def moe(self) -> bool:
        return self.is_moe or self.deployment.ep > 1

    @property
    def prefix_caching(self) -> bool:
        """Whether the prediction counted prompt tokens as prefix-cache hits."""
        return bool(self.shared_prefix_len or self.cached_share)

    @property
    def weight_dtype(self) -> str:
        """The weights the plan serves: the deployment's dtype, or the checkpoint's for "auto"."""
        dtype = self.deployment.weight_dtype
        if dtype == "auto":
            return self.checkpoint_dtype or "auto"
        return dtype

    def validate(self) -> None:
        self.deployment.validate()
        if self.prefill is not None:
            from ..disagg import DisaggDeployment  # lazily: it loads the predictor

            DisaggDeployment(self.prefill, self.deployment).validate()
        if self.device_kind not in DEVICE_KINDS:
            raise BudsimError(
                f"unknown device kind {self.device_kind!r}; choose one of {', '.join(DEVICE_KINDS)}"
            )
        if self.devices_per_node < 1:
            raise BudsimError(f"devices_per_node must be >= 1, got {self.devices_per_node}")
        for label, value in (("model", self.model), ("served model name", self.served_name)):
            if not value or not value.strip():
                raise BudsimError(f"{label} is empty")
            if _CONTROL.search(value):
                raise BudsimError(f"{label} {value!r} contains control characters")
            if value.startswith("-"):
                raise BudsimError(
                    f"{label} {value!r} starts with '-', which engines would read as an option"
                )
        if self.max_model_len is not None and self.max_model_len < 1:
            raise BudsimError(f"max_model_len must be >= 1, got {self.max_model_len}")
        _prefix_reuse(self.shared_prefix_len, self.cached_share)
        if self.workload is not None:
            self.workload.validate()


def clean(text: object) -> str:
    """A value made safe for a one-line comment: control characters (newlines) escaped."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(text))


def slug(text: str, max_len: int = 40) -> str:
    """A lowercase [a-z0-9-] name (DNS-1123 label friendly) derived from `text`."""
    base = text.rstrip("/").rsplit("/", 1)[-1] or text
    out = re.sub(r"[^a-z0-9]+", "-", base.lower()).strip("-")
    return (out[:max_len].strip("-")) or "model"


# ---- prediction summary --------------------------------------------------------------------------

_TTFT_KEYS = ("ttft_ms_mean", "ttft_ms_p50", "ttft_ms")
_TPOT_KEYS = ("tpot_ms_mean", "tpot_ms_p50", "tpot_ms")
_TPUT_KEYS = ("output_tok_s", "throughput_tok_s", "throughput")


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def metric(prediction: Mapping[str, Any], keys: Sequence[str]) -> tuple[float | None, ...]:
    """(value, lo, hi) of the first key present in the prediction; None where missing."""
    for key in keys:
        value = _number(prediction.get(key))
        if value is not None:
            return value, _number(prediction.get(f"{key}_lo")), _number(prediction.get(f"{key}_hi"))
    return None, None, None


def _fmt(value: float) -> str:
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _banded(name: str, triple: tuple[float | None, ...], unit: str) -> str:
    value, lo, hi = triple
    if value is None:
        return f"{name} n/a"
    band = f" [{_fmt(lo)}-{_fmt(hi)}]" if lo is not None and hi is not None else ""
    return f"{name} {_fmt(value)}{band} {unit}"


def prediction_line(prediction: Mapping[str, Any]) -> str:
    parts = [
        _banded("TTFT", metric(prediction, _TTFT_KEYS), "ms"),
        _banded("TPOT", metric(prediction, _TPOT_KEYS), "ms"),
        _banded("throughput", metric(prediction, _TPUT_KEYS), "output tok/s"),
    ]
    rps = _number(prediction.get("requests_per_s"))
    if rps is not None:
        parts.append(f"{_fmt(rps)} req/s")
    return ", ".join(parts)


def header_lines(plan: ExportPlan, what: str, notes: Sequence[str] = ()) -> list[str]:
    """The comment header every output starts with (without the leading '# ')."""
    dep = plan.deployment
    run = f"run {plan.run_id}" if plan.run_id else "run (none)"
    if plan.rank is not None:
        run += f", rank {plan.rank}"
    if plan.source:
        run += f", from {plan.source}"
    lines = [
        f"{what}",
        *([f"WARNING: {plan.warning}"] if plan.warning else []),
        f"generated by budsim {plan.budsim_version}; {run}",
        f"model: {plan.model} (served as {plan.served_name})",
        (
            f"hardware: {plan.hardware} ({plan.device_kind}, {plan.devices_per_node} per node), "
            + (
                _pools_text(plan.prefill, dep)
                if plan.prefill is not None
                else f"{count_text(dep.devices, 'device')} = {count_text(dep.replicas, 'replica')} "
                f"x {_layout(dep)}"
            )
        ),
        (
            f"plan: engine {dep.engine}, weights {plan.weight_dtype}, KV {dep.kv_dtype}, "
            f"max_num_seqs {dep.max_num_seqs or 'default'}, "
            f"max_num_batched_tokens {dep.max_num_batched_tokens or 'default'}, "
            f"memory fraction {dep.gpu_memory_utilization or 'default'}, "
            f"max_model_len {plan.max_model_len or 'default'}"
        ),
        *speculative_lines(plan),
        *prefix_lines(plan),
        f"predicted: {prediction_line(plan.prediction)}",
    ]
    lines.extend(f"note: {n}" for n in notes)
    return [clean(line) for line in lines]


def _layout(dep: Deployment) -> str:
    return f"TP{dep.tp} PP{dep.pp} DP{dep.dp} EP{dep.ep}"


def _pools_text(prefill: Deployment, decode: Deployment) -> str:
    total = prefill.devices + decode.devices
    return (
        f"{count_text(total, 'device')} disaggregated = "
        f"{count_text(prefill.replicas, 'prefill worker')} x {_layout(prefill)} + "
        f"{count_text(decode.replicas, 'decode worker')} x {_layout(decode)}"
    )


def speculative_lines(plan: ExportPlan) -> list[str]:
    """What the prediction assumed of speculative decoding (none: no lines)."""
    settings = spec_settings(plan.deployment)
    if settings is None:
        return []
    method, k, acceptance = settings
    if plan.deployment.spec_acceptance is not None:
        source = "set for this plan"
    else:
        source = f"budsim's {method.label} default, an assumption: measure yours"
    return [
        (
            f"speculative decoding: {method.label}, {k} draft tokens a step, acceptance "
            f"{acceptance:.2f} per drafted token ({source}); the prediction assumed it: "
            f"{expected_tokens(k, acceptance):.2f} tokens per target step, so a lower acceptance "
            "means a longer TPOT than predicted"
        )
    ]


def prefix_lines(plan: ExportPlan) -> list[str]:
    """What the prediction assumed of prefix caching (none: no lines)."""
    if not plan.prefix_caching:
        return []
    parts = []
    if plan.shared_prefix_len:
        parts.append(f"every prompt starts with the same {plan.shared_prefix_len}-token prefix")
    if plan.cached_share:
        parts.append(
            f"{plan.cached_share * 100:.0f} % of the rest of each prompt is cached from earlier turns"
        )
    return [
        f"prefix caching: {'; '.join(parts)}. The prediction counted these tokens as prefix-cache "
        "hits (never prefilled again), so the engine's prefix cache must stay on"
    ]


def comment_block(lines: Sequence[str]) -> str:
    return "".join(f"# {line}\n" if line else "#\n" for line in lines)


# ---- reading a configuration JSON ----------------------------------------------------------------


def _as_int(name: str, value: Any, *, optional: bool = False) -> int | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != int(value):
        raise BudsimError(f"configuration field {name} must be an integer, got {value!r}")
    return int(value)


def _as_float(name: str, value: Any) -> float | None:
    if value is None:
        return None
    number = _number(value)
    if number is None:
        raise BudsimError(f"configuration field {name} must be a number, got {value!r}")
    return number


def _as_str(name: str, value: Any, *, optional: bool = True) -> str | None:
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise BudsimError(f"configuration field {name} must be a non-empty string, got {value!r}")
    return value


def _is_response(doc: Mapping[str, Any]) -> bool:
    return any(
        key in doc
        for key in ("optimal_configuration", "alternative_configurations", "pareto_front")
    )


# deployment fields a configuration may leave out, with the value that means
_SPEC_DEFAULTS: dict[str, Any] = NO_SPECULATION


def _same_deployment(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys: tuple[str, ...] = ("model", "hardware", "engine", "tp", "pp", "dp", "ep", "replicas")
    keys += ("weight_dtype", "kv_dtype", "max_num_seqs", "max_num_batched_tokens")
    keys += ("gpu_memory_utilization",)
    if not all(a.get(k) == b.get(k) for k in keys):
        return False
    return all(a.get(k, d) == b.get(k, d) for k, d in _SPEC_DEFAULTS.items())


def select_configuration(
    doc: Mapping[str, Any], *, rank: int | None = None, pareto: int | None = None
) -> tuple[dict[str, Any], int | None]:
    """The configuration a document holds, flattened with its predicted_performance.

    An optimiser response (`budsim optimize --json`) is indexed like the run store: rank 0 is the
    optimal configuration, rank i the i-th alternative; `pareto` K is pareto_front[K] (0-based).
    A plain configuration object takes neither.
    """
    if not _is_response(doc):
        if (rank or 0) != 0 or pareto is not None:
            raise BudsimError(
                "this configuration file holds one configuration; --rank/--pareto need the output "
                "of `budsim optimize --json` or a run id"
            )
        config = doc.get("configuration")
        if isinstance(config, Mapping):  # `budsim predict --json`: the prediction around it
            predicted = {k: v for k, v in doc.items() if k != "configuration"}
            return {**config, "predicted_performance": predicted}, rank
        return dict(doc), rank
    extra: dict[str, Any] = {}
    request = doc.get("request")
    if isinstance(request, Mapping) and isinstance(request.get("workload"), Mapping):
        extra["workload"] = request["workload"]
    metadata = doc.get("simulation_metadata")
    if isinstance(metadata, Mapping) and metadata.get("budsim_version"):
        extra["budsim_version"] = metadata["budsim_version"]
    if doc.get("simulation_id"):
        extra["run_id"] = doc["simulation_id"]
    alternatives = [
        a for a in doc.get("alternative_configurations") or [] if isinstance(a, Mapping)
    ]
    if pareto is not None:
        front = doc.get("pareto_front")
        if not isinstance(front, list) or not front:
            raise BudsimError("this optimiser output has no pareto_front; drop --pareto")
        if not 0 <= pareto < len(front):
            raise BudsimError(f"--pareto {pareto} is out of range 0..{len(front) - 1}")
        entry = front[pareto]
        if not isinstance(entry, Mapping):
            raise BudsimError(f"pareto_front[{pareto}] is not an object")
        config = entry.get("configuration", entry)
        prediction = entry.get("predicted_performance")
        if prediction is None:  # the front lists objectives only; find the prediction elsewhere
            known = [(doc.get("optimal_configuration"), doc.get("predicted_performance"))]
            known += [
                (a.get("configuration"), a.get("predicted_performance")) for a in alternatives
            ]
            for other, pred in known:
                if isinstance(other, Mapping) and _same_deployment(other, config):
                    prediction = pred
                    break
        return {**extra, **config, "predicted_performance": prediction or {}}, None
    rank = rank or 0
    if rank == 0:
        config = doc.get("optimal_configuration")
        if not isinstance(config, Mapping):
            raise BudsimError("the optimisation found no feasible configuration to export")
        prediction = doc.get("predicted_performance") or {}
    else:
        if not 1 <= rank <= len(alternatives):
            raise BudsimError(
                f"--rank {rank} is out of range 0..{len(alternatives)} "
                "(0 = optimal, then the alternatives; use --pareto for the rest of the front)"
            )
        config = alternatives[rank - 1].get("configuration") or {}
        prediction = alternatives[rank - 1].get("predicted_performance") or {}
    return {**extra, **config, "predicted_performance": prediction}, rank


def select_disaggregated(
    doc: Mapping[str, Any], what: str = "this optimiser output"
) -> tuple[dict[str, Any], str | None]:
    """The best prefill/decode split of an optimiser response (`budsim optimize --disagg`) as a
    configuration (prefill_workers, decode_workers and the split's prediction), and a warning when
    the comparison found aggregated serving ahead."""
    comparison = doc.get("disaggregated")
    if not isinstance(comparison, Mapping):
        raise BudsimError(
            f"{what} has no prefill/decode split; run `budsim optimize --disagg` to compare one"
        )
    best = comparison.get("best")
    if not isinstance(best, Mapping):
        verdict = comparison.get("verdict") or "none was predicted"
        raise BudsimError(f"{what} has no prefill/decode split to export: {clean(verdict)}")
    # the split's pools take the best configuration's engine and formats, each its own TP (runs
    # saved before the pools had layouts of their own: the replica's)
    config, _ = select_configuration(doc)
    config = {k: v for k, v in config.items() if k != "replicas"}
    config.update(
        prefill_workers=best.get("prefill_workers"),
        decode_workers=best.get("decode_workers"),
        predicted_performance=best.get("predicted_performance") or {},
    )
    if best.get("decode_tp") is not None:
        config["tp"] = best["decode_tp"]
    if best.get("prefill_tp") is not None:
        config["prefill_tp"] = best["prefill_tp"]
    warning = None
    if not comparison.get("beats_aggregated"):
        warning = (
            f"{comparison.get('verdict')}; this split is exported because --disagg asked for it"
        )
    return config, warning


# the pools of a disaggregated configuration, named as `budsim predict` takes them
_POOL_FIELDS = ("prefill_workers", "decode_workers", "prefill_tp", "prefill_dp", "prefill_ep")


def _pools(flat: Mapping[str, Any], deployment: Deployment) -> tuple[Deployment, Deployment | None]:
    """(decode pool, prefill pool) of a disaggregated configuration; (deployment, None) else."""
    values = {name: _as_int(name, flat.get(name), optional=True) for name in _POOL_FIELDS}
    workers = values["prefill_workers"]
    if workers is None:
        given = [name for name, value in values.items() if value is not None]
        if given:
            raise BudsimError(f"configuration field {given[0]} needs prefill_workers")
        return deployment, None
    decode = 1 if values["decode_workers"] is None else values["decode_workers"]
    if workers < 1 or decode < 1:
        raise BudsimError("prefill_workers and decode_workers must be at least 1")
    if flat.get("replicas", 1) != 1:
        raise BudsimError("with prefill_workers, decode_workers counts the decode replicas")
    # the prefill pool never speculates (budsim.core.disagg): drafting belongs to decode
    prefill = deployment.with_(
        tp=values["prefill_tp"] or deployment.tp,
        dp=values["prefill_dp"] or deployment.dp,
        ep=values["prefill_ep"] or deployment.ep,
        replicas=workers,
        **NO_SPECULATION,
    )
    return deployment.with_(replicas=decode), prefill


def workload_from(workload: Mapping[str, Any]) -> Workload | None:
    """The Workload a configuration's "workload" object describes (its unknown keys ignored), held
    to the workload rules (budsim.core.schema.WorkloadInput); None when it lacks the request
    lengths."""
    from dataclasses import fields

    known = {f.name for f in fields(Workload)} - {"extra"}
    if "input_len" not in workload or "output_len" not in workload:
        return None
    values = {k: v for k, v in workload.items() if k in known}
    try:
        values["length_mix"] = tuple(tuple(entry) for entry in values.get("length_mix") or ())
        parsed = Workload(**values)  # (a JSON document's lists made the tuples it hashes)
        parsed.validate()
    except (BudsimError, TypeError, ValueError) as exc:
        raise BudsimError(f"the configuration's workload: {exc}") from None
    return parsed


def _prefix_reuse(shared_prefix_len: Any, cached_share: Any) -> tuple[int, float]:
    """The prefix-caching fields, by the workload's rules for them (a configuration may carry them
    without a workload)."""
    from ..schema import workload_input

    reuse = workload_input(
        {"shared_prefix_len": shared_prefix_len, "cached_share": cached_share}, fields_only=True
    )
    return reuse.shared_prefix_len, reuse.cached_share


def max_len_from_workload(workload: Mapping[str, Any]) -> int | None:
    """Longest request of the workload (Workload.longest_request: spreads and length mixes
    included), rounded up to 1024 tokens."""
    parsed = workload_from(workload)
    if parsed is None:
        return None
    return int(math.ceil(parsed.longest_request / 1024) * 1024)


def _hardware_facts(hw_id: str) -> tuple[str | None, int | None, float | None, int | None]:
    """(kind, devices per node, memory GB, CPU cores) from budsim.core.hardware or the fallback table."""
    try:
        from .. import hardware as hardware_module  # written in parallel; may not exist yet

        device = hardware_module.get_device(hw_id)
    except (ImportError, AttributeError, BudsimError):
        device = None
    fallback = _FALLBACK_HARDWARE.get(hw_id)
    cores = fallback[3] if fallback else None
    if device is not None:
        cores = getattr(device, "cores", None) or cores
        return (
            str(device.kind),
            int(device.devices_per_node),
            float(device.memory_gb),
            cores,
        )
    if fallback:
        return fallback
    return None, None, None, None


def _model_facts(model: str, kv_dtype: str) -> dict[str, Any]:
    """Checkpoint facts from budsim.core.model when it can read the model offline; {} otherwise."""
    try:
        from .. import model as model_module  # written in parallel; may not exist yet

        spec = model_module.load_model(model, allow_network=False)
    except Exception:  # any failure just means "unknown"; the config file can say it
        return {}
    return {
        "checkpoint_dtype": getattr(spec, "checkpoint_dtype", None),
        "checkpoint_quant": getattr(spec, "quant_method", None),
        "model_type": getattr(spec, "model_type", None),
        "is_moe": bool(getattr(spec, "is_moe", False)),
        "max_context": getattr(spec, "max_context", None),
        "kv_bytes_per_token": _kv_per_token(spec, kv_dtype),
    }


def _kv_per_token(spec: Any, kv_dtype: str) -> float | None:
    try:
        return float(spec.kv_bytes_per_token(1.0 if kv_dtype == "fp8" else 2.0))
    except Exception:
        return None


def from_config_json(
    doc: Mapping[str, Any],
    *,
    rank: int | None = None,
    pareto: int | None = None,
    source: str | None = None,
    run_id: str | None = None,
    disagg: bool = False,
) -> ExportPlan:
    """Parse a configuration JSON document (see the module docstring) into a validated ExportPlan.
    `disagg`: the document must hold a disaggregated plan (an optimiser response's best split)."""
    if not isinstance(doc, Mapping):
        raise BudsimError("a configuration JSON must be an object")
    disagg_warning = None
    if disagg and (rank or pareto is not None):
        raise BudsimError("--disagg exports the best prefill/decode split; drop --rank/--pareto")
    if disagg and _is_response(doc):
        cfg, disagg_warning = select_disaggregated(doc)
        picked_rank = None
    else:
        cfg, picked_rank = select_configuration(doc, rank=rank, pareto=pareto)
    flat: dict[str, Any] = {}
    nested = cfg.get("deployment")
    if isinstance(nested, Mapping):
        flat.update(nested)
    flat.update({k: v for k, v in cfg.items() if k != "deployment"})

    from ..schema import DeploymentInput, deployment_input

    fields = {name: flat.get(name) for name in DeploymentInput.model_fields}
    if isinstance(fields["model"], Mapping):
        fields["model"] = fields["model"].get("id") or fields["model"].get("name")
    hw_kind: str | None = None
    if isinstance(fields["hardware"], Mapping):
        hw_kind = _as_str("hardware.kind", fields["hardware"].get("kind"))
        fields["hardware"] = fields["hardware"].get("id")
    if flat.get("prefill_workers") is not None:
        fields["replicas"] = None  # checked by _pools; the pools carry their own worker counts
    deployment = deployment_input(fields).to_deployment()
    model, hardware = deployment.model, deployment.hardware
    deployment, prefill = _pools(flat, deployment)
    if disagg and prefill is None:
        raise BudsimError(
            "this configuration is not disaggregated: --disagg needs prefill_workers and "
            "decode_workers in it, or the output of `budsim optimize --disagg`"
        )

    kind, per_node, memory_gb, cores = _hardware_facts(hardware)
    kind = _as_str("device_kind", flat.get("device_kind")) or hw_kind or kind
    if kind is None:
        raise BudsimError(
            f"unknown hardware {hardware!r}: add device_kind (cuda|rocm|hpu|cpu) and "
            "devices_per_node to the configuration"
        )
    per_node = _as_int("devices_per_node", flat.get("devices_per_node", per_node or 8))
    memory = _as_float("device_memory_gb", flat.get("device_memory_gb", memory_gb))
    cores = _as_int("cpu_cores_per_device", flat.get("cpu_cores_per_device", cores), optional=True)

    facts: dict[str, Any] = {}
    if "checkpoint_dtype" not in flat:
        facts = _model_facts(model, deployment.kv_dtype)
    checkpoint_quant = flat.get(
        "checkpoint_quant", flat.get("quant_method", facts.get("checkpoint_quant"))
    )
    prediction = cfg.get("predicted_performance", cfg.get("prediction")) or {}
    if not isinstance(prediction, Mapping):
        raise BudsimError("predicted_performance must be an object")
    max_len = _as_int("max_model_len", flat.get("max_model_len"), optional=True)
    workload = flat.get("workload")
    if max_len is None and isinstance(workload, Mapping):
        max_len = max_len_from_workload(workload)
        limit = facts.get("max_context")
        if max_len is not None and isinstance(limit, int) and limit > 0:
            max_len = min(max_len, limit)
    kv_per_token = flat.get("kv_bytes_per_token", facts.get("kv_bytes_per_token"))
    reuse: Mapping[str, Any] = workload if isinstance(workload, Mapping) else {}
    shared_prefix, cached_share = _prefix_reuse(
        flat.get("shared_prefix_len", reuse.get("shared_prefix_len")),
        flat.get("cached_share", reuse.get("cached_share")),
    )
    plan = ExportPlan(
        deployment=deployment,
        device_kind=kind.lower(),
        devices_per_node=per_node or 8,
        served_model_name=_as_str("served_model_name", flat.get("served_model_name")),
        checkpoint_dtype=_as_str(
            "checkpoint_dtype", flat.get("checkpoint_dtype", facts.get("checkpoint_dtype"))
        ),
        checkpoint_quant=_as_str("checkpoint_quant", checkpoint_quant),
        max_model_len=max_len,
        model_type=_as_str("model_type", flat.get("model_type", facts.get("model_type"))),
        is_moe=bool(flat.get("is_moe", facts.get("is_moe", False))),
        trust_remote_code=bool(flat.get("trust_remote_code", False)),
        device_memory_gb=memory,
        cpu_cores_per_device=cores,
        kv_bytes_per_token=_as_float("kv_bytes_per_token", kv_per_token),
        run_id=run_id or _as_str("run_id", cfg.get("run_id", doc.get("run_id"))),
        rank=picked_rank
        if picked_rank is not None
        else _as_int("rank", cfg.get("rank"), optional=True),
        source=source,
        budsim_version=str(cfg.get("budsim_version", doc.get("budsim_version", __version__))),
        prediction=dict(prediction),
        shared_prefix_len=shared_prefix,
        cached_share=cached_share,
        workload=workload_from(workload) if isinstance(workload, Mapping) else None,
        warning=disagg_warning,
        prefill=prefill,
    )
    plan.validate()
    return plan


def run_warning(run: Mapping[str, Any]) -> str | None:
    """Why a stored run's configuration is not a finished search's answer, or None."""
    status, short = run.get("status"), str(run.get("id") or "")[:8]
    if status in ("failed", "infeasible"):
        return (
            f"run {short} failed (no configuration met its constraints); this is one of its "
            "closest configurations and does not meet them"
        )
    if status in ("cancelled", "interrupted"):
        return f"run {short} was {status}; this is the best of the generations it finished"
    if status == "running":
        return f"run {short} is still running; this is its best so far"
    return None


def plan_from_store(
    run_id: str,
    *,
    rank: int | None = None,
    pareto: int | None = None,
    db: str | None = None,
    disagg: bool = False,
) -> ExportPlan:
    """The plan of one result of a stored run (rank 0 = best), of its Pareto front (--pareto K),
    or of the prefill/decode split `budsim optimize --disagg` kept with it (disagg)."""
    try:
        from .. import store as store_module
    except ImportError:
        raise BudsimError(
            "run store not available: pass a configuration JSON file instead of a run id"
        ) from None
    store = store_module.open_store(db)
    try:
        full = store.resolve(run_id)
        run = store.get_run(full)
        inputs = run.get("inputs") or {}
        extra: dict[str, Any] = {"budsim_version": run.get("budsim_version") or __version__}
        if isinstance(inputs, Mapping) and isinstance(inputs.get("workload"), Mapping):
            extra["workload"] = inputs["workload"]
        if disagg:
            if rank or pareto is not None:
                raise BudsimError(
                    "--disagg exports the best prefill/decode split; drop --rank/--pareto"
                )
            response = run.get("response")
            what = f"run {full[:8]} ({run.get('status')})"
            if not isinstance(response, Mapping):
                raise BudsimError(
                    f"{what} has no saved response to take a prefill/decode split from"
                )
            config, warning = select_disaggregated(response, what)
            plan = from_config_json(
                {**extra, **config}, source=f"run {full[:8]} disaggregated", run_id=full
            )
            warnings = [w for w in (run_warning(run), warning) if w]
            return replace(plan, warning="; ".join(warnings) or None)
        if pareto is not None:
            response = run.get("response")
            if not isinstance(response, Mapping):
                raise BudsimError(f"run {full[:8]} ({run.get('status')}) has no Pareto front saved")
            config, _ = select_configuration(response, pareto=pareto)
            if not config.get("predicted_performance"):
                for row in store.get_results(full):
                    if isinstance(row.get("deployment"), Mapping) and _same_deployment(
                        row["deployment"], config
                    ):
                        config["predicted_performance"] = row.get("prediction") or {}
                        break
            doc = {**extra, **config}
            return from_config_json(doc, source=f"run {full[:8]} pareto {pareto}", run_id=full)
        result = store.get_run_result(full, rank or 0)
        doc = {
            **extra,
            **result.deployment,
            "predicted_performance": result.prediction or {},
            "rank": rank or 0,
        }
        return replace(from_config_json(doc, run_id=full), warning=run_warning(run))
    finally:
        close = getattr(store, "close", None)
        if callable(close):
            close()
