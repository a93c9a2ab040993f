"""Measured rows -> the cases budsim predicts, and physics predictions joined to them.

One normalised measurement row (budsim.learn.datasets) becomes a Deployment, a Workload and the list of
(measured column, prediction key) pairs that compare like with like. The accuracy benchmark and the
training pipeline both go through `case_for_row` / `join_predictions`, so they read the datasets the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError

if TYPE_CHECKING:
    import pandas as pd

MODELLED_ENGINES = ("vllm", "sglang", "trtllm", "llamacpp", "deepspeed")
# Splitwise profiled a vLLM-style engine without naming it; it is simulated as vLLM.
ENGINE_BY_SOURCE = {"splitwise": "vllm"}
# A max-throughput run feeds requests "at infinite rate" and lets the scheduler fill its batch; it is
# simulated as a static batch this large, which keeps the engine saturated for most of the run.
MAX_THROUGHPUT_REQUESTS = 1024


REQUESTS_PER_CLIENT = 10  # AIConfigurator's silicon harness: request count 10 x concurrency


def benchmark_run_requests(concurrency: int) -> int:
    """Requests of the finite run a measured closed-loop row is simulated as.

    Benchmark tables come from finite runs started cold, so their rows are compared with the same
    run, not with steady state. AIConfigurator's silicon harness sent ten requests per client
    (genai-perf/aiperf request count 10 x concurrency); the other sources do not say, and about ten
    per client is how benchmark runs are usually sized. At least 64 and at most 4,096: the runs the
    shipped residual models were fitted on. (The floor differs from 10 x C below 7 clients; there
    the extra waves move some aic rows' simulated TTFT by up to 78 %, so it stays until the models
    are refitted on exact request counts.)"""
    return min(max(REQUESTS_PER_CLIENT * concurrency, 64), 4096)


# Which prediction key a measured column is compared with, per scenario.
# Static batches: the source's TTFT is the batch's prefill time (the last request's first token) and the
# whole-batch latency is the slowest request's end-to-end time.
METRIC_MAP: dict[str, dict[str, str]] = {
    "concurrency": {
        "ttft_ms": "ttft_ms_mean",
        "tpot_ms": "tpot_ms_mean",
        "out_tok_s": "output_tok_s",
    },
    "static": {
        "ttft_ms": "ttft_ms_p99",
        "tpot_ms": "tpot_ms_mean",
        "e2e_s": "e2e_s_max",
        "out_tok_s": "output_tok_s",
        "total_tok_s": "total_tok_s",
    },
    "max_num_seqs": {"tpot_ms": "tpot_ms_mean", "out_tok_s": "output_tok_s"},
    "max_throughput": {"out_tok_s": "output_tok_s", "total_tok_s": "total_tok_s"},
}


@dataclass(frozen=True)
class Case:
    deployment: Deployment
    workload: Workload
    targets: tuple[tuple[str, str, float], ...]  # (measured column, prediction key, measured value)


def _num(value: Any) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def _int(value: Any, default: int = 1) -> int:
    v = _num(value)
    return int(v) if math.isfinite(v) and v >= 1 else default


def model_ref(model: str) -> str:
    """The config the row was measured with: the data folder's own copy when present."""
    from .datasets import data_dir

    try:
        path = data_dir() / "model_configs" / model
    except BudsimError:
        return model
    return str(path) if (path / "config.json").is_file() else model


def case_for_row(row: Mapping[str, Any]) -> Case:
    """The prediction case that reproduces one measured row, or BudsimError saying why not."""
    if not row.get("model"):
        raise BudsimError("no model config for this row")
    if not row.get("hardware"):
        raise BudsimError("hardware outside the catalog")
    engine = row.get("engine")
    if engine == "other":
        engine = ENGINE_BY_SOURCE.get(str(row.get("source")), engine)
    if engine not in MODELLED_ENGINES:
        raise BudsimError(f"engine {engine} is not simulated")
    if row.get("mode") == "disagg":
        raise BudsimError("disaggregated serving is not simulated")
    scenario = row.get("scenario")
    if scenario not in METRIC_MAP:
        raise BudsimError(f"scenario {scenario} is not simulated")
    isl, osl = _num(row.get("input_len")), _num(row.get("output_len"))
    if not (math.isfinite(isl) and math.isfinite(osl)) or isl < 1 or osl < 1:
        raise BudsimError("lengths unknown")
    load = _num(row.get("load"))
    if scenario == "max_throughput":
        load = MAX_THROUGHPUT_REQUESTS
    if not math.isfinite(load) or load < 1:
        raise BudsimError("load unknown")
    stated_cap = _num(row.get("max_num_seqs"))
    max_seqs: int | None = round(stated_cap) if math.isfinite(stated_cap) else None
    # the token budget per step, where the run set it (llama.cpp's -b: the prompt's chunk size)
    stated_budget = _num(row.get("max_num_batched_tokens"))
    budget = round(stated_budget) if math.isfinite(stated_budget) and stated_budget >= 1 else None
    if scenario in ("static", "max_throughput"):
        workload = Workload(
            scenario="static", input_len=round(isl), output_len=round(osl), batch_size=round(load)
        )
    elif scenario == "concurrency":
        workload = Workload(
            scenario="concurrency",
            input_len=round(isl),
            output_len=round(osl),
            concurrency=round(load),
            num_requests=benchmark_run_requests(round(load)),
        )
    else:  # max_num_seqs: the engine cap; the realised batch is the load it actually ran at
        realised = _num(row.get("realised_batch"))
        conc = round(realised) if math.isfinite(realised) and realised >= 1 else round(load)
        max_seqs = round(load)
        workload = Workload(
            scenario="concurrency",
            input_len=round(isl),
            output_len=round(osl),
            concurrency=conc,
            num_requests=benchmark_run_requests(conc),
        )
    dep = Deployment(
        model=model_ref(str(row["model"])),
        hardware=str(row["hardware"]),
        engine=str(engine),
        tp=_int(row.get("tp")),
        pp=_int(row.get("pp")),
        dp=_int(row.get("dp")),
        ep=_int(row.get("ep")),
        weight_dtype=str(row.get("weight_dtype") or "auto"),
        kv_dtype=str(row.get("kv_dtype") or "auto"),
        max_num_seqs=max_seqs,
        max_num_batched_tokens=budget,
    )
    targets = []
    for column, key in METRIC_MAP[scenario].items():
        value = _num(row.get(column))
        if math.isfinite(value) and value > 0:
            targets.append((column, key, value))
    if not targets:
        raise BudsimError("no comparable measured metric")
    return Case(dep, workload, tuple(targets))


def join_predictions(
    rows: Iterable[Mapping[str, Any]],
    predictor: Callable[[Deployment, Workload], Mapping[str, Any]] | None = None,
) -> pd.DataFrame:
    """One output row per (measured row, metric): measured, predicted, and the row's identity.

    Rows that cannot be simulated appear once with `error` set, so the share answered is honest.
    """
    import pandas as pd

    if predictor is None:
        from budsim.core.predict import predict_physics

        def predictor(dep: Deployment, wl: Workload) -> Mapping[str, Any]:
            pred = predict_physics(dep, wl)
            if not pred.fits:
                raise BudsimError(pred.memory.reason if pred.memory else "does not fit")
            return pred.to_dict()

    out: list[dict[str, Any]] = []
    for row in rows:
        ident = {
            k: row.get(k)
            for k in ("source", "row_id", "model", "hardware", "engine", "scenario", "mode")
        }
        try:
            case = case_for_row(row)
            pred = predictor(case.deployment, case.workload)
        except BudsimError as exc:
            out.append({**ident, "metric": None, "error": str(exc)})
            continue
        for column, key, measured in case.targets:
            predicted = pred.get(key)
            out.append(
                {
                    **ident,
                    "metric": column,
                    "measured": measured,
                    "predicted": predicted,
                    "error": None if predicted else f"no prediction for {key}",
                }
            )
    return pd.DataFrame(out)


def disagg_case_for_row(
    row: Mapping[str, Any],
) -> tuple[Any, Workload, tuple[tuple[str, float], ...]]:
    """A measured disaggregated run as (DisaggDeployment, its workload, (metric, measured) pairs),
    or BudsimError saying why not. Predicted as the finite run the harness made: 10 requests per
    client, the clients' opening burst included (the disaggregated model is analytic, so it needs
    none of benchmark_run_requests' clamps, which keep the aggregated simulations' cost down)."""
    from budsim.core.disagg import DisaggDeployment

    if row.get("mode") != "disagg":
        raise BudsimError("not a disaggregated run")
    if not row.get("model") or not row.get("hardware"):
        raise BudsimError("model or hardware outside the catalog")
    workers = (_num(row.get("prefill_workers")), _num(row.get("decode_workers")))
    if not all(math.isfinite(w) and w >= 1 for w in workers):
        raise BudsimError("the pools' worker counts are not recorded")
    conc = _num(row.get("load"))
    isl, osl = _num(row.get("input_len")), _num(row.get("output_len"))
    if not all(math.isfinite(v) and v >= 1 for v in (conc, isl, osl)):
        raise BudsimError("load or lengths unknown")
    common: dict[str, Any] = {
        "model": model_ref(str(row["model"])),
        "hardware": str(row["hardware"]),
        "engine": str(row.get("engine")),
        "weight_dtype": str(row.get("weight_dtype") or "auto"),
        "kv_dtype": str(row.get("kv_dtype") or "auto"),
    }

    def pool(prefix: str, count: float) -> Deployment:  # the decode pool's layout is unprefixed
        sizes: dict[str, Any] = {k: _int(row.get(prefix + k)) for k in ("tp", "pp", "dp", "ep")}
        return Deployment(replicas=round(count), **sizes, **common)

    prefill, decode = pool("prefill_", workers[0]), pool("", workers[1])
    workload = Workload(
        scenario="concurrency",
        concurrency=round(conc),
        input_len=round(isl),
        output_len=round(osl),
        num_requests=REQUESTS_PER_CLIENT * round(conc),
    )
    targets = tuple(
        (metric, _num(row.get(metric)))
        for metric in ("ttft_ms", "tpot_ms")
        if math.isfinite(_num(row.get(metric))) and _num(row.get(metric)) > 0
    )
    return DisaggDeployment(prefill, decode), workload, targets
