"""`budsim calibrate`: fit a residual model to the user's own benchmark results.

Supported result files (the format is detected from the content):

- vLLM ``vllm bench serve --save-result`` JSON: ``mean_ttft_ms``, ``mean_tpot_ms``, ``completed``,
  ``total_input_tokens``, ``total_output_tokens``, ``max_concurrency``, ``request_rate``,
  ``burstiness``;
- SGLang ``python -m sglang.bench_serving --output-file`` JSONL (one run per line): the same
  ``mean_*_ms`` names plus ``mean_e2e_latency_ms``;
- NVIDIA genai-perf ``profile_export_genai_perf.json`` and AIPerf ``profile_export_aiperf.json``:
  ``time_to_first_token``/``inter_token_latency`` objects with ``unit`` and ``avg``, the sequence
  lengths, and the load in ``input_config`` (genai-perf: ``concurrency``/``request_rate``; AIPerf:
  ``loadgen.concurrency``/``loadgen.request_rate``, ``loadgen.arrival_pattern``/``arrival_smoothness``);
- guidellm reports (``benchmarks.json``): one point per benchmark, from
  ``metrics.<name>.successful.mean`` and the strategy (``concurrent`` streams, ``synchronous``, or a
  ``constant``/``poisson`` rate).

A point is simulated as the run its tool made: a finite run of the requests the file says it
sent (vLLM's ``num_prompts``, SGLang's ``completed``, AIPerf's and genai-perf's
``request_count``), or the steady state where it does not say (guidellm, which runs for a time).
A rate point is simulated with the arrivals its tool drew: Poisson, vLLM's ``--burstiness`` gamma
shape, AIPerf's gamma smoothness, and evenly spaced for a constant rate (CONSTANT_RATE_BURSTINESS).

TPOT is the time per output token after the first in all tools (guidellm's and genai-perf's
inter-token latency; guidellm's own ``time_per_output_token_ms`` includes the first token and is
not used).

Each point becomes a prediction case of the given deployment. The user target is the residual left
after the current calibration, log(measured / calibrated), per family. Few points give a shrunken
mean (n tau^2 / (n tau^2 + sigma^2) x the mean log ratio, tau = 0.3, sigma = 0.05); 20 or more give
a small monotone XGBoost model. The result is a JSON file in the user calibration folder, used
automatically for predictions on the same hardware and engine (and model, with ``--per-model``).
It keeps its benchmark points, each with the deployment it measured: a later `calibrate` of the
same calibration adds its points to them and refits on all (``replace`` starts over), and when the
shipped models it corrects on top of change (an upgrade, a retrain) it is refitted from them at its
next use (`refresh`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from budsim import __version__

from ..errors import BudsimError
from . import store
from .features import FEATURES, monotone_vector

TAU = 0.3  # prior spread of a user's residual (log scale)
SIGMA = 0.05  # run-to-run noise of one benchmark point (log scale)
XGB_MIN_POINTS = 20
USER_FAMILIES = ("ttft", "tpot")


@dataclass
class ResultPoint:
    """One benchmark run, normalised."""

    file: str
    tool: str
    scenario: str  # concurrency | rate
    concurrency: int | None
    rate: float | None
    input_len: float
    output_len: float
    ttft_ms: float | None
    tpot_ms: float | None
    e2e_ms: float | None = None
    output_tok_s: float | None = None
    model: str | None = None
    burstiness: float = 1.0  # gamma shape of the arrival gaps (rate scenario; 1 = Poisson)
    # the requests the run sent, where the file says (it is then simulated as that finite run;
    # None: as the steady state)
    num_requests: int | None = None
    # the requests' own (input, output) lengths where the file lists them (vLLM's
    # --save-detailed input_lens / output_lens), as a length mix in its text form; None: the
    # run is simulated at its mean lengths
    length_mix: str | None = None
    # the deployment measured (--deployment's fields), kept with each point: one calibration may
    # hold points of several deployments of its hardware and engine (None: the calibration's)
    deployment: dict[str, str] | None = None
    # the result file's content hash: one file counts once, whatever its name or folder
    source: str | None = None


MAX_REQUEST_TOKENS = 10_000_000  # beyond any model's context: a corrupt or mislabelled result

# Evenly spaced arrivals (AIPerf's and guidellm's "constant" rate) as a gamma shape: gaps within
# about 10 % of 1/rate, which queues like an exact constant rate.
CONSTANT_RATE_BURSTINESS = 100.0


def _arrivals(pattern: Any, smoothness: Any) -> float:
    """The gamma shape of a load generator's arrival pattern (poisson / constant / gamma)."""
    kind = str(pattern or "poisson").strip().lower()
    if kind == "constant":
        return CONSTANT_RATE_BURSTINESS
    if kind == "gamma":
        return _positive(smoothness) or 1.0
    return 1.0


# ------------------------------------------------------------------------------------------ parsing
def _num(value: Any) -> float | None:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


def _positive(value: Any) -> float | None:
    v = _num(value)
    return v if v is not None and v > 0 else None


def _count(value: Any) -> int | None:
    """A request count from a result file (None: absent, or 0 for "not set")."""
    v = _positive(value)
    return round(v) if v is not None else None


def _load(
    max_concurrency: Any, rate: Any, fallback_concurrency: Any
) -> tuple[str, int | None, float | None]:
    conc = _positive(max_concurrency)
    if conc is not None:
        return "concurrency", round(conc), None
    r = _positive(rate)
    if r is not None:
        return "rate", None, r
    conc = _positive(fallback_concurrency)  # everything sent at once: a burst of this many
    if conc is not None:
        return "concurrency", round(conc), None
    raise BudsimError("the result does not say its concurrency or request rate")


def _serve_point(d: Mapping[str, Any], file: str, tool: str) -> ResultPoint:
    """vLLM --save-result and SGLang bench_serving share these names."""
    completed = _positive(d.get("completed"))
    if completed is None:
        raise BudsimError(f"{file}: no completed requests")
    isl = _positive(d.get("total_input_tokens"))
    osl = _positive(d.get("total_output_tokens"))
    if isl is None or osl is None:
        raise BudsimError(f"{file}: token totals missing")
    scenario, conc, rate = _load(d.get("max_concurrency"), d.get("request_rate"), completed)
    return ResultPoint(
        file=file,
        tool=tool,
        scenario=scenario,
        concurrency=conc,
        rate=rate,
        input_len=isl / completed,
        output_len=osl / completed,
        ttft_ms=_positive(d.get("mean_ttft_ms")),
        tpot_ms=_positive(d.get("mean_tpot_ms")),
        e2e_ms=_positive(d.get("mean_e2e_latency_ms") or d.get("mean_e2el_ms")),
        output_tok_s=_positive(d.get("output_throughput")),
        # vLLM writes model_id; SGLang's bench_serving, where it says, model
        model=str(d.get("model_id") or d.get("model") or "") or None,
        burstiness=_positive(d.get("burstiness")) or 1.0,  # vLLM's --burstiness
        # vLLM's --num-prompts; SGLang's files give only the requests completed
        num_requests=_count(d.get("num_prompts")) or round(completed),
        length_mix=_per_request_lengths(d),
    )


def _per_request_lengths(d: Mapping[str, Any]) -> str | None:
    """The run's requests as a length mix (budsim.core.lengths) when the file lists each one's
    lengths and they differ; None otherwise (or when they are too many distinct shapes)."""
    from ..lengths import mix_from_pairs, mix_text

    ins, outs = d.get("input_lens"), d.get("output_lens")
    if not isinstance(ins, list) or not isinstance(outs, list) or len(ins) != len(outs):
        return None
    try:
        pairs = [(int(i), int(o)) for i, o in zip(ins, outs, strict=True) if int(o) > 0]
        if len(set(pairs)) < 2:
            return None  # one shape: the means say it all
        mix = mix_from_pairs(pairs)
    except (TypeError, ValueError, BudsimError):
        return None
    return mix_text(mix, limit=None)


_UNIT_MS = {"ms": 1.0, "s": 1e3, "sec": 1e3, "us": 1e-3, "ns": 1e-6}


def _stat(d: Mapping[str, Any], name: str) -> float | None:
    obj = d.get(name)
    if not isinstance(obj, Mapping):
        return None
    value = _positive(obj.get("avg"))
    unit = str(obj.get("unit", "ms")).strip().lower()
    if value is None:
        return None
    return value * _UNIT_MS.get(unit, 1.0) if unit in _UNIT_MS else value


def _perf_point(d: Mapping[str, Any], file: str) -> ResultPoint:
    """genai-perf and AIPerf profile exports."""
    cfg = d.get("input_config") or {}
    loadgen = cfg.get("loadgen") if isinstance(cfg.get("loadgen"), Mapping) else None
    if loadgen is not None or "aiperf_version" in d or "schema_version" in d:
        tool = "aiperf"
        lg = loadgen or {}
        scenario, conc, rate = _load(lg.get("concurrency"), lg.get("request_rate"), None)
        # (older AIPerf releases name the pattern request_rate_mode)
        pattern = lg.get("arrival_pattern") or lg.get("request_rate_mode")
        burstiness = _arrivals(pattern, lg.get("arrival_smoothness"))
        num_requests = _count(lg.get("request_count"))
        endpoint = cfg.get("endpoint") or {}
        names = endpoint.get("model_names") if isinstance(endpoint, Mapping) else None
    else:
        tool = "genai-perf"
        scenario, conc, rate = _load(cfg.get("concurrency"), cfg.get("request_rate"), None)
        burstiness = 1.0  # genai-perf's request rate is Poisson
        num_requests = _count(cfg.get("request_count"))  # 0: a measurement interval instead
        names = cfg.get("model")
    isl = _stat(d, "input_sequence_length")
    osl = _stat(d, "output_sequence_length")
    if isl is None or osl is None:
        raise BudsimError(f"{file}: input/output sequence lengths missing")
    model = names[0] if isinstance(names, list) and names else None
    throughput = d.get("output_token_throughput")
    return ResultPoint(
        file=file,
        tool=tool,
        scenario=scenario,
        concurrency=conc,
        rate=rate,
        input_len=isl,
        output_len=osl,
        ttft_ms=_stat(d, "time_to_first_token"),
        tpot_ms=_stat(d, "inter_token_latency"),
        e2e_ms=_stat(d, "request_latency"),
        output_tok_s=_positive(throughput.get("avg")) if isinstance(throughput, Mapping) else None,
        model=str(model) if model else None,
        burstiness=burstiness,
        num_requests=num_requests,
    )


def _guidellm_mean(metrics: Mapping[str, Any], name: str) -> float | None:
    obj = metrics.get(name)
    if not isinstance(obj, Mapping):
        return None
    ok = obj.get("successful")
    return _positive(ok.get("mean")) if isinstance(ok, Mapping) else None


def _guidellm_points(d: Mapping[str, Any], file: str) -> list[ResultPoint]:
    points = []
    args = d.get("args") if isinstance(d.get("args"), Mapping) else {}
    model = args.get("model") if isinstance(args, Mapping) else None
    for i, bench in enumerate(d.get("benchmarks") or []):
        where = f"{file} benchmark {i}"
        if not isinstance(bench, Mapping):
            continue
        config = bench.get("config") or bench.get("args") or {}
        strategy = config.get("strategy") if isinstance(config, Mapping) else None
        strategy = strategy if isinstance(strategy, Mapping) else {}
        kind = str(strategy.get("type_", strategy.get("type", "")))
        metrics = bench.get("metrics") or {}
        conc: int | None
        rate: float | None
        if kind == "synchronous":
            scenario, conc, rate = "concurrency", 1, None
        elif kind == "concurrent":
            scenario, conc, rate = _load(strategy.get("streams"), None, None)
        elif kind in ("constant", "poisson", "async"):
            scenario, conc, rate = _load(None, strategy.get("rate"), None)
        else:
            continue  # throughput sweeps: no fixed load to reproduce
        isl = _guidellm_mean(metrics, "prompt_token_count")
        osl = _guidellm_mean(metrics, "output_token_count")
        if isl is None or osl is None:
            raise BudsimError(f"{where}: token counts missing")
        latency = _guidellm_mean(metrics, "request_latency")
        points.append(
            ResultPoint(
                file=file,
                tool="guidellm",
                scenario=scenario,
                concurrency=conc,
                rate=rate,
                input_len=isl,
                output_len=osl,
                ttft_ms=_guidellm_mean(metrics, "time_to_first_token_ms"),
                tpot_ms=_guidellm_mean(metrics, "inter_token_latency_ms"),
                e2e_ms=latency * 1e3 if latency else None,
                output_tok_s=_guidellm_mean(metrics, "output_tokens_per_second"),
                model=str(model) if model else None,
                burstiness=_arrivals(kind, None),
            )
        )
    return points


def _document_points(doc: Any, name: str) -> list[ResultPoint]:
    """The points of one JSON result document (format detected from its keys)."""
    if not isinstance(doc, Mapping):
        raise BudsimError(f"{name}: unrecognised result format")
    if "benchmarks" in doc:
        return _guidellm_points(doc, name)
    if "time_to_first_token" in doc:
        return [_perf_point(doc, name)]
    if "mean_ttft_ms" in doc:
        tool = "sglang" if "mean_e2e_latency_ms" in doc else "vllm"
        return [_serve_point(doc, name, tool)]
    raise BudsimError(
        f"{name}: unrecognised result format (expected vLLM/SGLang bench, genai-perf, "
        "AIPerf or guidellm output)"
    )


def parse_results(path: Path) -> list[ResultPoint]:
    """Every benchmark point in one result file (format detected from the content)."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise BudsimError(f"cannot read {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise BudsimError(f"{path} is not UTF-8 text (a JSON or JSONL result file)") from None
    name = path.name
    stripped = text.strip()
    if not stripped:
        raise BudsimError(f"{name} is empty")
    try:
        doc = json.loads(stripped)
    except json.JSONDecodeError:
        try:
            docs = [json.loads(line) for line in stripped.splitlines() if line.strip()]
        except json.JSONDecodeError as exc:
            raise BudsimError(f"{name} is neither JSON nor JSON lines ({exc.msg})") from None
        points = [_serve_point(d, name, "sglang") for d in docs if isinstance(d, Mapping)]
    else:
        points = _document_points(doc, name)
    if not points:
        raise BudsimError(f"{name}: no benchmark with a fixed concurrency or rate")
    source = hashlib.sha256(stripped.encode()).hexdigest()[:16]
    return [dataclasses.replace(p, source=source) for p in points]


# ------------------------------------------------------------------------------------------ fitting
def parse_deployment(spec: str) -> dict[str, str]:
    """'model=X,hardware=h100-sxm,engine=vllm,tp=2' -> fields."""
    fields: dict[str, str] = {}
    for part in re.split(r"[,\s]+", spec.strip()):
        if not part:
            continue
        if "=" not in part:
            raise BudsimError(f"--deployment expects key=value pairs, got {part!r}")
        key, value = part.split("=", 1)
        fields[key.strip().replace("-", "_")] = value.strip()
    for key in ("model", "hardware"):
        if not fields.get(key):
            raise BudsimError(f"--deployment needs {key}=...")
    return fields


def _case(fields: Mapping[str, str], point: ResultPoint) -> tuple[Any, Any]:
    from ..cases import parse_case

    for what, tokens in (("input", point.input_len), ("output", point.output_len)):
        if tokens > MAX_REQUEST_TOKENS:
            raise BudsimError(
                f"{point.file}: {tokens:.3g} {what} tokens per request is not a plausible benchmark"
            )
    case = {k: v for k, v in fields.items() if k not in ("scenario", "concurrency", "rate")}
    case.setdefault("engine", "vllm")
    if point.length_mix:
        case["length_mix"] = point.length_mix  # the requests as they were (parse_case)
    else:
        case["input_len"] = str(max(1, round(point.input_len)))
        case["output_len"] = str(max(2, round(point.output_len)))
    case["scenario"] = point.scenario
    if point.scenario == "concurrency":
        case["concurrency"] = str(point.concurrency)
    else:
        case["rate"] = str(point.rate)
        case["burstiness"] = str(point.burstiness)
    if point.num_requests:
        case["num_requests"] = str(point.num_requests)
    return parse_case(case)


def shrunken_mean(values: list[float]) -> tuple[float, float]:
    """(offset, shrink factor) of the mean log ratio."""
    n = len(values)
    if n == 0:
        return 0.0, 0.0
    factor = n * TAU**2 / (n * TAU**2 + SIGMA**2)
    return factor * sum(values) / n, factor


def _fit_xgb(X: list[list[float]], y: list[float], family: str, seed: int) -> dict[str, Any]:
    import numpy as np
    import xgboost as xgb

    mono = ",".join(str(v) for v in monotone_vector(family))
    dm = xgb.DMatrix(np.asarray(X, dtype=np.float32), label=np.asarray(y))
    booster = xgb.train(
        {
            "max_depth": 2,
            "eta": 0.1,
            "min_child_weight": 3,
            "reg_lambda": 10.0,
            "nthread": 1,
            "seed": seed,
            "monotone_constraints": f"({mono})",
        },
        dm,
        60,
    )
    return dict(json.loads(bytes(booster.save_raw("json"))))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower() or "calibration"


def _resolved_case(fields: Mapping[str, str], point: ResultPoint) -> tuple[Any, Any, Any]:
    """(deployment, workload, resolved deployment) of one point as `fields` describe it."""
    from ..predict import resolve

    dep, workload = _case(fields, point)
    return dep, workload, resolve(dep)


def _identity(resolved: Any) -> tuple[str, str, str, str]:
    """(hardware, engine, model, hardware kind): what a calibration is for."""
    return resolved.device.id, resolved.engine.id, resolved.model.name, resolved.device.kind


def _label(identity: tuple[str, str, str, str], per_model: bool) -> str:
    """The default name of a calibration: hardware-engine (-model with --per-model)."""
    hardware, engine, model_name, _ = identity
    return _slug(f"{hardware}-{engine}" + (f"-{model_name}" if per_model else ""))


def calibrate(
    results: Iterable[Path],
    deployment: str,
    *,
    name: str | None = None,
    per_model: bool = False,
    replace: bool = False,
    seed: int = 0,
    directory: Path | None = None,
) -> dict[str, Any]:
    """Fit a user calibration from result files and save it. The points join those the
    calibration of that name already holds and it is refitted on all of them (`replace`: it
    starts over from these). Returns what was saved with its path, "added" (the points of these
    files it did not hold yet), "result_files" (how many its points come from) and "warnings"
    (a result file that measured another model)."""
    fields = parse_deployment(deployment)
    new = [
        dataclasses.replace(p, deployment=dict(fields))
        for path in results
        for p in parse_results(Path(path))
    ]
    if not new:
        raise BudsimError("no benchmark results given (--results FILE ...)")
    folder = directory or store.user_dir()
    label = _slug(name or _label(_identity(_resolved_case(fields, new[0])[2]), per_model))
    held, created = ([], None) if replace else _held(folder / f"{label}.json")
    points, repeats = merge_points(held, new)
    content = fit_points(
        fields, points, name=label, per_model=per_model, seed=seed, created=created
    )
    mismatch = model_mismatch(fields, new)
    return {
        **save(content, folder),
        "added": len(new) - repeats,
        "result_files": result_files(points),
        "warnings": [mismatch] if mismatch else [],
    }


def _held(path: Path) -> tuple[list[ResultPoint], str | None]:
    """The points the saved calibration at `path` holds and when it was created ([], None: there
    is none)."""
    if not path.exists():
        return [], None
    entry = store.read_user_file(path)  # (warns why, when it cannot be used)
    try:
        if entry is None:
            raise ValueError("unreadable file")
        return stored_points(entry.data), entry.created or None
    except (KeyError, TypeError, ValueError) as exc:
        raise BudsimError(
            f"cannot add to the user calibration {path.stem}: its stored points are unusable "
            f"({exc}); --replace starts it over from these results"
        ) from None


def stored_points(data: Mapping[str, Any]) -> list[ResultPoint]:
    """The benchmark points a saved calibration holds, each with the deployment it measured
    (files of older budsims name one deployment for all their points)."""
    known = {f.name for f in dataclass_fields(ResultPoint)}
    default = {str(k): str(v) for k, v in dict(data["deployment"]).items()}
    points = []
    for row in data["points"]:
        point = ResultPoint(**{k: v for k, v in dict(row).items() if k in known})
        points.append(point if point.deployment else dataclasses.replace(point, deployment=default))
    return points


def _measurement(point: ResultPoint) -> str:
    """What a point measured, whichever file (or copy of it) it came from."""
    d = asdict(point)
    for key in ("file", "source", "deployment"):
        d.pop(key)
    return json.dumps(d, sort_keys=True)


def merge_points(held: list[ResultPoint], new: list[ResultPoint]) -> tuple[list[ResultPoint], int]:
    """`held` and `new` without repeats, and how many of `new` were repeats. A measurement given
    again (the same file, or a copy) replaces the one held, so the latest --deployment stands;
    it moves to the end, behind the points that still say what the calibration is for."""
    by_measurement = {_measurement(p): p for p in held}
    repeats = 0
    for point in new:
        key = _measurement(point)
        repeats += by_measurement.pop(key, None) is not None
        by_measurement[key] = point
    return list(by_measurement.values()), repeats


def result_files(points: Iterable[ResultPoint]) -> int:
    """How many result files the points come from (by content; the name where not recorded)."""
    return len({p.source or p.file for p in points})


def _model_key(ref: str) -> str:
    """A model reference comparable across tools: the catalog's name, and for a local checkpoint
    (a folder a server loaded, a config.json) the folder's name."""
    from ..model import canonical_model_name

    ref = ref.strip().rstrip("/")
    if ref.endswith(".json"):
        ref = str(Path(ref).parent)
    if ref.startswith(("/", ".", "~")):
        ref = Path(ref).name
    return canonical_model_name(ref).lower() if ref else ""


def model_mismatch(fields: Mapping[str, str], points: Iterable[ResultPoint]) -> str | None:
    """A one-line warning when result files say they measured another model than the deployment
    names (None: they agree, or do not say)."""
    want = _model_key(fields["model"])
    if not want:
        return None
    other = {p.file: p.model for p in points if p.model and _model_key(p.model) not in ("", want)}
    if not other:
        return None
    measured = "; ".join(f"{file} measured {model}" for file, model in other.items())
    return (
        f"{measured}, not --deployment model={fields['model']}; its points are calibrated as "
        f"{fields['model']} (check --deployment)"
    )


def _base_models(kind: str) -> store.ModelSet | None:
    """The shipped models a user calibration of this hardware kind corrects on top of: those of
    the kind where they cover TTFT and TPOT, else none (the physics)."""
    pre = store.pretrained(kind)
    return pre if pre is not None and pre.covers(USER_FAMILIES) else None


def base_name(kind: str) -> str:
    """`pretrained/cuda@<hash>` or `physics`: what `_base_models` gives, by name."""
    pre = _base_models(kind)
    return pre.name if pre is not None else "physics"


def fit_points(
    fields: Mapping[str, str],
    points: list[ResultPoint],
    *,
    name: str | None = None,
    per_model: bool = False,
    seed: int = 0,
    created: str | None = None,
) -> dict[str, Any]:
    """The user calibration (file content) that `points` of the deployment `fields` give."""
    import numpy as np

    from ..predict import predict_physics
    from .features import feature_list

    X: list[list[float]] = []
    targets: dict[str, list[tuple[int, float]]] = {fam: [] for fam in USER_FAMILIES}
    rows: list[dict[str, Any]] = []
    identity: tuple[str, str, str, str] | None = None
    for point in points:
        dep, workload, resolved = _resolved_case(point.deployment or fields, point)
        key = _identity(resolved)
        identity = identity or key
        # one calibration serves one hardware and engine (and model): points of another
        # (an old --name reused) would be fitted as if measured there
        what = 3 if per_model else 2
        if key[:2] != identity[:2] or (per_model and _model_key(key[2]) != _model_key(identity[2])):
            raise BudsimError(
                f"{point.file}: measured {', '.join(key[:what])}, but the calibration holds "
                f"points of {', '.join(identity[:what])} (give another --name, or --replace to "
                "start it over)"
            )
        pred = predict_physics(dep, workload)
        if not pred.fits or pred.ttft_ms_mean is None:
            reason = pred.memory.reason if pred.memory else "does not fit"
            raise BudsimError(f"{point.file}: the deployment does not fit ({reason})")
        x = feature_list(resolved, workload, pred)
        base = {fam: 0.0 for fam in USER_FAMILIES}
        pre = _base_models(resolved.device.kind)
        if pre is not None:
            res = pre.predict(USER_FAMILIES, np.asarray(x, dtype=np.float32))
            base = {fam: res[fam][0] for fam in USER_FAMILIES}
        row: dict[str, Any] = {**asdict(point), "residual": {}}
        for fam, measured, physics in (
            ("ttft", point.ttft_ms, pred.ttft_ms_mean),
            ("tpot", point.tpot_ms, pred.tpot_ms_mean),
        ):
            if measured and physics:
                value = math.log(measured / physics) - base[fam]
                targets[fam].append((len(X), value))
                row["residual"][fam] = round(value, 6)
        X.append(x)
        rows.append(row)
    if identity is None:
        raise BudsimError("no benchmark results given (--results FILE ...)")
    hardware, engine, model_name, kind = identity
    families: dict[str, Any] = {}
    for fam, pairs in targets.items():
        if not pairs:
            continue
        values = [v for _, v in pairs]
        if len(pairs) >= XGB_MIN_POINTS:
            model = _fit_xgb([X[i] for i, _ in pairs], values, fam, seed)
            families[fam] = {"type": "xgboost", "n": len(pairs), "offset": 0.0, "model": model}
        else:
            offset, factor = shrunken_mean(values)
            families[fam] = {
                "type": "mean",
                "n": len(pairs),
                "offset": round(offset, 6),
                "shrink": round(factor, 6),
            }
    if not families:
        raise BudsimError("the results carry neither TTFT nor TPOT")
    label = name or _label(identity, per_model)
    now = datetime.now(timezone.utc).isoformat(timespec="seconds")  # noqa: UP017
    return {
        "format": store.USER_FORMAT,
        "budsim_version": __version__,
        "name": _slug(label),
        "created": created or now,
        "fitted": now,
        "match": {
            "hardware": hardware,
            "engine": engine,
            "model": model_name if per_model else None,
            "kind": kind,
        },
        "deployment": dict(fields),
        "base": [base_name(kind)],
        "seed": seed,
        "features": list(FEATURES),
        "families": families,
        "points": rows,
    }


def save(
    content: dict[str, Any], folder: Path, *, path: Path | None = None, clear: bool = True
) -> dict[str, Any]:
    """Write a calibration as `<name>.json` in `folder` (or over `path`), atomically; returns it
    with its path. clear: forget loaded models (a refresh needs not: the new stamp reloads it)."""
    import tempfile

    folder.mkdir(parents=True, exist_ok=True)
    path = path or folder / f"{content['name']}.json"
    # a unique temporary name: search workers may refresh the same calibration at once
    handle, tmp = tempfile.mkstemp(dir=folder, prefix=f".{content['name']}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8") as out:
        out.write(json.dumps(content, indent=1, sort_keys=True) + "\n")
    os.replace(tmp, path)
    if clear:
        store.clear_caches()
    return {**content, "path": str(path)}


def stale_reason(data: Mapping[str, Any]) -> str | None:
    """Why a saved calibration no longer fits this budsim (None: it does). Its residuals are
    relative to the shipped models it was fitted on top of, so new shipped models (a budsim
    upgrade, or a retrained `pretrained/`) or a new feature set make it stale."""
    if list(data.get("features", [])) != list(FEATURES):
        return "it was fitted for another feature set"
    kind = str(dict(data.get("match", {})).get("kind") or "cuda")
    was, now = [str(b) for b in data.get("base", [])], base_name(kind)
    if was != [now]:
        return f"it was fitted on top of {', '.join(was) or 'unknown models'}, now {now}"
    return None


def refresh(entry: store.UserEntry) -> Mapping[str, Any] | None:
    """`entry`'s calibration, refitted from the benchmark points it stores when it is stale
    (and saved again); None when that is impossible (it is then not used)."""
    reason = stale_reason(entry.data)
    if reason is None:
        return entry.data
    data = entry.data
    try:
        points = stored_points(data)
        content = fit_points(
            dict(data["deployment"]),
            points,
            name=entry.name,
            per_model=entry.model is not None,
            seed=int(data.get("seed", 0)),
            created=entry.created or None,
        )
    except (BudsimError, KeyError, TypeError, ValueError) as exc:
        store.warn(
            f"user calibration {entry.name} is out of date ({reason}) and cannot be refitted "
            f"from its stored points ({exc}); not used: rerun `budsim calibrate`"
        )
        return None
    try:
        save(content, entry.path.parent, path=entry.path, clear=False)
        where = "saved"
    except OSError as exc:
        where = f"for this run only: cannot save it ({exc})"
    store.warn(
        f"user calibration {entry.name}: {reason}; refitted from its {len(points)} stored "
        f"benchmark points ({where})"
    )
    return content


def list_calibrations() -> list[dict[str, Any]]:
    """Summaries of the saved user calibrations."""
    out = []
    for entry in store.user_entries():
        fams = entry.data.get("families", {})
        stale = stale_reason(entry.data)
        try:
            points = stored_points(entry.data)
        except (KeyError, TypeError, ValueError):  # none stored (it is then not used either)
            points = []
        out.append(
            {
                "name": entry.name,
                "hardware": entry.hardware,
                "engine": entry.engine,
                "model": entry.model or "(any)",
                "points": len(points),
                "result_files": result_files(points),
                # (no points when they could not be read: then nothing to pair with the rows)
                "measured": [
                    _measured(p, r)
                    for p, r in zip(points, entry.data.get("points") or [], strict=False)
                ],
                "ttft": _describe(fams.get("ttft")),
                "tpot": _describe(fams.get("tpot")),
                "base": ", ".join(entry.data.get("base", [])),
                # a stale one is refitted from its points when a prediction first uses it
                "state": "ok" if stale is None else "stale",
                "stale": stale,
                "created": entry.created,
                "path": str(entry.path),
            }
        )
    return out


def _measured(point: ResultPoint, row: Mapping[str, Any]) -> dict[str, Any]:
    """One stored point as `calibrate --list` shows it. The ratios are measured / what budsim
    predicted without this calibration: the correction the point asks for."""
    residual = row.get("residual") or {}
    return {
        "file": point.file,
        "deployment": point.deployment,
        "load": f"c={point.concurrency}" if point.concurrency else f"{point.rate:g}/s",
        "input_len": round(point.input_len),
        "output_len": round(point.output_len),
        "ttft_ms": point.ttft_ms,
        "tpot_ms": point.tpot_ms,
        **{
            f"{fam}_ratio": round(math.exp(float(residual[fam])), 3) if fam in residual else None
            for fam in USER_FAMILIES
        },
    }


def _describe(spec: Any) -> str:
    if not isinstance(spec, Mapping):
        return "-"
    if spec.get("type") == "xgboost":
        return "xgboost"
    return f"x{math.exp(float(spec.get('offset', 0.0))):.3f}"


def reset(name: str | None = None) -> int:
    """Delete the user calibrations (only `name` when given); returns how many were removed."""
    folder = store.user_dir()
    if not folder.is_dir():
        return 0
    removed = 0
    for path in sorted(folder.glob("*.json")):
        if name is not None and path.stem != _slug(name):
            continue
        path.unlink()
        removed += 1
    store.clear_caches()
    if name is not None and removed == 0:
        raise BudsimError(f"no user calibration named {name!r} (see `budsim calibrate --list`)")
    return removed
