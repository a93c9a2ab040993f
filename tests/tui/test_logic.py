"""The TUI's plain-Python parts: fuzzy search, form validation, result views, the cancel-aware runner."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from budsim.tui import fuzzy
from budsim.tui.catalog import Catalog, load_catalog
from budsim.tui.form import SetupValues, check_form, values_from_inputs
from budsim.tui.runner import CancellableEvaluator, Progress, run_search
from budsim.tui.views import (
    describe,
    layout_text,
    memory_rows,
    performance_rows,
    view_from_response,
    view_from_store,
    why_text,
)

from .conftest import fixture_progress, load_json


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog()


def test_fuzzy_prefers_word_starts_and_short_names() -> None:
    names = ["Qwen/Qwen3-VL-8B-Instruct", "Qwen/Qwen3-8B", "meta-llama/Meta-Llama-3-8B"]
    ranked = [m.text for m in fuzzy.rank("qwen3 8b", names)]
    assert ranked[0] == "Qwen/Qwen3-8B"
    assert "meta-llama/Meta-Llama-3-8B" not in ranked  # no "q" in it
    assert fuzzy.match("zzz", "Qwen/Qwen3-8B") is None
    m = fuzzy.match("q3", "Qwen/Qwen3-8B")
    assert m is not None and len(m.positions) == 2


def test_textual_fuzzy_still_cannot_match_spaced_queries(catalog: Catalog) -> None:
    """budsim.tui.fuzzy exists because textual's Matcher takes a query's spaces literally: when
    this fails, textual learned it and the picker should use textual.fuzzy instead."""
    from textual.fuzzy import Matcher

    names = [text for text, _ in catalog.model_choices]
    for query in ("qwen3 8b", "gpt oss"):
        assert not any(Matcher(query).match(n) > 0 for n in names)
        assert fuzzy.rank(query, names)  # the picker's own matcher finds them


def test_catalog_lists_models_hardware_engines(catalog: Catalog) -> None:
    assert "Qwen/Qwen3-0.6B" in catalog.models
    assert "h100-sxm" in catalog.devices and "gaudi2" in catalog.devices
    assert catalog.engine_ids_for("cuda") == ["vllm", "sglang", "trtllm"]
    assert catalog.engine_ids_for("hpu") == ["vllm", "deepspeed"]  # no engine calibrated there
    assert "nvfp4" not in catalog.quantizations_for("hpu")
    ids = {value for _, value in catalog.model_choices}
    assert ids <= set(catalog.models)


def test_form_builds_a_request(catalog: Catalog) -> None:
    values = SetupValues(
        model="Qwen/Qwen3-0.6B",
        devices="4",
        engines=("vllm",),
        quantizations=("auto", "fp8"),
        scenario="rate",
        load="2.5",
        ttft_ms="500",
        target="latency",
        population="8",
        generations="2",
        seed="3",
    )
    check = check_form(values, catalog)
    assert check.ok, check.errors
    req = check.request
    assert req is not None
    assert req.devices == 4 and req.engines == ("vllm",)
    assert req.quantizations == ("auto", "fp8")
    assert req.workload.scenario == "rate" and req.workload.rate == 2.5
    assert req.constraints.ttft_ms == 500 and req.optimization_target == "latency"
    assert req.ga.population == 8 and req.ga.seed == 3
    # every engine selected means "no restriction"
    all_engines = values.with_(engines=("vllm", "sglang", "trtllm"))
    assert check_form(all_engines, catalog).request.engines is None  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"model": ""}, "model", "choose a model"),
        ({"devices": "two"}, "devices", "devices must be a positive integer, got 'two'"),
        ({"devices": "0"}, "devices", "devices must be a positive integer, got 0"),
        ({"devices": "12", "nodes": "5"}, "nodes", "nodes=5 must divide devices=12"),
        ({"engines": ()}, "engines", "engines must name at least one engine"),
        ({"load": "-3"}, "load", "concurrency must be a positive integer"),
        ({"ttft_ms": "fast"}, "ttft_ms", "ttft_ms must be a positive number, got 'fast'"),
        ({"population": "2"}, "population", "population must be a whole number >= 4, got 2"),
        ({"mutation": "1.5"}, "mutation", "mutation must be in [0, 1], got 1.5"),
        ({"hardware": "tpu-v9"}, "hardware", "unknown"),
    ],
)
def test_form_errors_name_the_field(
    catalog: Catalog, changes: dict[str, Any], field: str, words: str
) -> None:
    values = SetupValues(model="Qwen/Qwen3-0.6B").with_(**changes)
    check = check_form(values, catalog)
    assert not check.ok and check.request is None
    assert field in check.errors, check.errors
    assert words in check.errors[field]
    assert check.reason  # the run bar has something to say


def test_the_run_bar_names_a_field_once(catalog: Catalog) -> None:
    """A message that already starts with the field's label is not prefixed by it again (the
    run bar has 80 columns); one that names something else keeps the label."""
    base = SetupValues(model="Qwen/Qwen3-0.6B")
    population = check_form(base.with_(population="2"), catalog)
    assert population.reason == "population must be a whole number >= 4, got 2"
    load = check_form(base.with_(load="-3"), catalog)
    assert load.reason.startswith("load: concurrency must be a positive integer")


def test_form_waits_for_the_model_check(catalog: Catalog) -> None:
    values = SetupValues(model="Qwen/Qwen3-0.6B")
    assert "checking" in check_form(values, catalog, model_pending=True).errors["model"]
    bad = check_form(values.with_(model="nope"), catalog, model_error="unknown model 'nope'")
    assert bad.reason == "model: unknown model 'nope'"
    assert "loading" in check_form(values, None).reason


def test_values_round_trip_through_a_stored_request(catalog: Catalog) -> None:
    values = SetupValues(
        model="meta-llama/Llama-3.1-8B",
        devices="8",
        scenario="static",
        load="16",
        tpot_ms="40",
        population="20",
        generations="3",
        seed="11",
        patience="0",
        engines=("sglang",),
    )
    request = check_form(values, catalog).request
    assert request is not None
    back = values_from_inputs(request.to_dict())
    assert back.model == values.model and back.scenario == "static" and back.load == "16"
    assert back.tpot_ms == "40" and back.population == "20" and back.seed == "11"
    assert back.engines == ("sglang",)
    again = check_form(back, catalog).request
    assert again is not None and again.to_dict() == request.to_dict()


def test_rerun_keeps_workload_settings_the_form_has_no_field_for(catalog: Catalog) -> None:
    """A run made by `budsim optimize --rate 5 --burstiness 0.5 --num-requests 300` (and length
    spreads set through the API) keeps its arrival shape, request count and spreads when it is
    re-run from the TUI's history."""
    request = check_form(
        SetupValues(model="meta-llama/Llama-3.1-8B", scenario="rate", load="5"), catalog
    ).request
    assert request is not None
    stored = request.to_dict()
    stored["workload"] |= {"burstiness": 0.5, "num_requests": 300, "input_len_spread": 0.2}
    back = values_from_inputs(stored)
    assert back.burstiness == "0.5" and back.num_requests == "300"  # fields of the form
    assert back.workload_extra == (("input_len_spread", 0.2),)  # kept without one
    again = check_form(back.with_(load="6"), catalog).request
    assert again is not None
    assert again.workload.burstiness == 0.5 and again.workload.num_requests == 300
    assert again.workload.rate == 6.0 and again.workload.input_len_spread == 0.2
    # a form-made run has nothing extra to keep
    assert values_from_inputs(request.to_dict()).workload_extra == ()


def test_requests_field_is_a_finite_run_or_steady_state(catalog: Catalog) -> None:
    """The request-count field takes what `--num-requests` takes: a whole number >= 1, or
    nothing for the steady state."""
    base = SetupValues(model="meta-llama/Llama-3.1-8B", load="16")
    steady = check_form(base, catalog).request
    assert steady is not None and steady.workload.num_requests is None
    finite = check_form(base.with_(num_requests="160"), catalog).request
    assert finite is not None and finite.workload.num_requests == 160
    for bad in ("0", "-3", "2.5"):
        words = f"num_requests must be a positive integer, got {bad}"
        check = check_form(base.with_(num_requests=bad), catalog)
        assert check.request is None and words in check.errors["num_requests"]
        assert check.reason.startswith("requests:")


def test_prefix_cache_fields_reach_the_workload_and_a_rerun(catalog: Catalog) -> None:
    """The "prefix tok" and "cache hit" fields take what --shared-prefix-len and --cached-share take, and a
    re-run from history shows them again."""
    base = SetupValues(model="meta-llama/Llama-3.1-8B", input_len="4096", load="16")
    plain = check_form(base, catalog).request
    assert plain is not None and not plain.workload.prefix_caching
    request = check_form(base.with_(shared_prefix_len="3072", cached_share="0.5"), catalog).request
    assert request is not None
    assert request.workload.shared_prefix_len == 3072 and request.workload.cached_share == 0.5
    back = values_from_inputs(request.to_dict())
    assert (back.shared_prefix_len, back.cached_share) == ("3072", "0.5")
    assert values_from_inputs(plain.to_dict()).shared_prefix_len == ""
    for field, bad, words in (
        ("shared_prefix_len", "4096", "must be shorter than input_len (4096)"),
        ("shared_prefix_len", "-1", "whole number >= 0"),
        ("cached_share", "1", "in [0, 1)"),
        ("cached_share", "x", "cached_share must be in [0, 1), got 'x'"),
    ):
        check = check_form(base.with_(**{field: bad}), catalog)
        assert check.request is None and words in check.errors[field]


def test_spec_decode_field_adds_methods_to_the_search(catalog: Catalog) -> None:
    base = SetupValues(model="meta-llama/Llama-3.1-8B", load="4")
    plain = check_form(base, catalog).request
    assert plain is not None and plain.speculative == ()
    request = check_form(base.with_(speculative="EAGLE3, ngram eagle3"), catalog).request
    assert request is not None and request.speculative == ("eagle3", "ngram")
    assert values_from_inputs(request.to_dict()).speculative == "eagle3,ngram"
    check = check_form(base.with_(speculative="medusa"), catalog)
    assert check.request is None
    assert check.reason == (
        "spec decode: unknown speculative method 'medusa'; choose mtp, eagle3, ngram, draft:MODEL"
    )
    # a draft model is searched when the field names it; the name keeps its case
    target = base.with_(model="Qwen/Qwen3-32B")
    request = check_form(target.with_(speculative="ngram, draft:Qwen/Qwen3-0.6B"), catalog).request
    assert request is not None and request.speculative == ("ngram", "draft:Qwen/Qwen3-0.6B")
    assert values_from_inputs(request.to_dict()).speculative == "ngram,draft:Qwen/Qwen3-0.6B"
    check = check_form(target.with_(speculative="draft"), catalog)
    assert check.request is None and "name it as draft:MODEL" in check.errors["speculative"]


def test_length_mix_field_stands_for_the_lengths(catalog: Catalog) -> None:
    base = SetupValues(model="meta-llama/Llama-3.1-8B", load="4")
    request = check_form(
        base.with_(input_len="", output_len="", length_mix="256|40,128:0.7; 2048,512:0.3"), catalog
    ).request
    assert request is not None
    assert request.workload.length_mix == ((0.7, 256, 128, 40.0, 0.0), (0.3, 2048, 512, 0.0, 0.0))
    back = values_from_inputs(request.to_dict())
    assert (back.input_len, back.output_len) == ("", "")
    assert back.length_mix == "256|40,128:0.7;2048,512:0.3"
    again = check_form(back, catalog).request
    assert again is not None and again.workload == request.workload
    check = check_form(base.with_(length_mix="1024"), catalog)
    assert check.request is None and "is not INPUT,OUTPUT" in check.errors["length_mix"]
    assert check.reason.startswith("length mix:")
    assert "input_len" in check_form(base.with_(input_len=""), catalog).errors  # no mix: required


def test_why_text_says_when_the_best_leaves_devices_idle() -> None:
    response = load_json("response.json")
    fill = {
        "configuration": {**response["optimal_configuration"], "replicas": 4, "devices": 8},
        "predicted_performance": {"ttft_ms_mean": 41.9, "tpot_ms_mean": 4.36, "output_tok_s": 3607},
        "feasible": True,
        "devices_available": 8,
        "devices_used_by_best": 2,
    }
    view = view_from_response({**response, "fill_devices": fill})
    text = why_text(view)
    assert (
        "It uses 2 of the 8 devices as 1 replica of 2. Filled with replicas, TP2 ×4 on 8 "
        "devices at the same load" in text
    )
    assert "TTFT 41.9 ms, TPOT 4.36 ms, 3,607 tok/s in all." in text
    assert "Filled with replicas" not in why_text(view_from_response(response))  # none idle


def test_compare_xpyd_toggle_reaches_the_request_and_the_why_text(catalog: Catalog) -> None:
    base = SetupValues(model="meta-llama/Llama-3.1-8B", load="4")
    request = check_form(base.with_(disagg=True), catalog).request
    assert request is not None and request.disagg
    assert values_from_inputs(request.to_dict()).disagg
    plain = check_form(base, catalog).request
    assert plain is not None and not plain.disagg
    response = load_json("response.json")
    comparison = {
        "searched": "vllm TP2 bf16 workers split into P prefill + D decode over 8 devices",
        "best": {
            "prefill_workers": 1,
            "decode_workers": 3,
            "ttft_ms_mean": 250.0,
            "tpot_ms_mean": 9.5,
            "output_tok_s_per_device": 1200.0,
        },
        "splits": [],
        "beats_aggregated": False,
        "verdict": "aggregated serving stays ahead on throughput (best split: 1P3D)",
    }
    text = why_text(view_from_response({**response, "disaggregated": comparison}))
    assert (
        "Disaggregated (vllm TP2 bf16 workers split into P prefill + D decode over 8 devices): "
        "aggregated serving stays ahead on throughput (best split: 1P3D); 1P3D predicts TTFT 250 "
        "ms, TPOT 9.5 ms, 1,200 tok/s/dev." in text
    )
    assert "Disaggregated" not in why_text(view_from_response(response))


def test_burstiness_field_shapes_a_rate_and_is_checked(catalog: Catalog) -> None:
    base = SetupValues(model="meta-llama/Llama-3.1-8B", scenario="rate", load="5")
    request = check_form(base.with_(burstiness="0.25"), catalog).request
    assert request is not None and request.workload.burstiness == 0.25
    closed = check_form(base.with_(scenario="concurrency", load="8", burstiness="0.25"), catalog)
    assert closed.request is not None and closed.request.workload.burstiness == 1.0
    for bad, words in (("0.01", ">= 0.05 (1 = Poisson)"), ("x", "number"), ("", "required")):
        check = check_form(base.with_(burstiness=bad), catalog)
        assert "burstiness" in check.errors and words in check.errors["burstiness"]


def test_result_view_and_why_text() -> None:
    response = load_json("response.json")
    view = view_from_response(response)
    best = view.best
    assert best is not None and best.kind == "best" and best.rank == 0
    assert [r.rank for r in view.rows] == list(range(len(view.rows)))
    assert view.run_id == "5eed0000c0ffee00aa11bb22cc33dd44"
    why = why_text(view)
    assert describe(best.configuration) in why
    assert "best tok/s per device" in why
    assert "bottleneck" in why.lower()
    # the list keeps one row per prediction and the best's why-text says so (#19)
    assert "One row per prediction" in why
    rows = dict((label, value) for label, value, _ in performance_rows(best.prediction or {}))
    assert rows["TTFT mean"].endswith("ms") and rows["E2E mean"].endswith(" s")
    plan = load_json("memory_plan.json")
    parts = dict(memory_rows(plan))
    assert parts["weights"] == pytest.approx(plan["weights_gb"])
    assert sum(parts.values()) == pytest.approx(plan["device_memory_gb"])
    assert layout_text({"tp": 2, "pp": 2, "replicas": 3}) == "TP2·PP2 ×3"


def test_view_from_store_without_a_response() -> None:
    run = {"id": "abc", "status": "interrupted", "objective": "cost", "inputs": {"model": "m"}}
    results = [
        {
            "rank": 0,
            "kind": "best",
            "deployment": {"engine": "vllm", "tp": 1},
            "prediction": {"output_tok_s_per_device": 10.0},
            "objectives": {"usd_per_1m_output_tokens": 3.0, "target": -3.0},
            "feasible": True,
        }
    ]
    view = view_from_store(run, results)
    assert view.status == "interrupted" and view.target == "cost"
    assert view.best is not None and view.best.configuration["engine"] == "vllm"
    assert "3 $/1M" in why_text(view)


def test_a_closest_configuration_counts_its_devices() -> None:
    """A failed run stores its closest configurations with their layout only: the detail and
    the why-text count the devices from it ("- devices" had shown)."""
    from budsim.core.report import devices_in

    cfg = {"engine": "vllm", "tp": 2, "pp": 2, "replicas": 2}
    assert devices_in(cfg) == 8 and devices_in({**cfg, "devices": 6}) == 6
    run = {"id": "abc", "status": "failed", "objective": "throughput", "inputs": {"devices": 8}}
    results = [{"rank": 0, "kind": "closest", "deployment": cfg, "feasible": False}]
    view = view_from_store(run, results)
    assert "It uses 8 devices as 2 replicas of 4" in why_text(view, view.rows[0])


def test_progress_fraction_and_eta() -> None:
    history = fixture_progress()
    first, last = history[0], history[-1]
    assert first.generation == 0 and last.generation == last.generations
    assert last.fraction == 1.0 and last.eta_s == 0.0
    assert 0 < first.fraction < 1 and first.eta_s is not None and first.eta_s > 0
    assert first.evals_per_s == pytest.approx(first.evaluations / first.elapsed_s)
    assert any(p.front for p in last.points)
    assert all(p.feasible for p in last.points if p.front)
    best = last.leaders[0]
    assert best["objectives"]["output_tok_s_per_device"] == pytest.approx(last.best_target)


class _SlowEvaluator:
    def __init__(self) -> None:
        self.calls = 0

    def evaluate(self, deployments: Any) -> list[dict[str, Any] | None]:
        self.calls += 1
        time.sleep(0.05)
        return [{"x": 1} for _ in deployments]


def test_cancellable_evaluator_stops_between_chunks() -> None:
    cancel = threading.Event()
    inner = _SlowEvaluator()
    evaluator = CancellableEvaluator(inner, cancel, chunk=2)
    assert evaluator.evaluate(list(range(6))) == [{"x": 1}] * 6  # type: ignore[arg-type]
    assert inner.calls == 3
    timer = threading.Timer(0.08, cancel.set)
    timer.start()
    started = time.perf_counter()
    out = evaluator.evaluate(list(range(100)))  # type: ignore[arg-type]
    took = time.perf_counter() - started
    timer.join()
    assert len(out) == 100 and out[-1] is None and out[0] == {"x": 1}
    assert took < 0.5


def test_run_search_reports_progress_and_saves(db_path: Any, catalog: Catalog) -> None:
    from budsim.core.store import open_store

    values = SetupValues(model="Qwen/Qwen3-0.6B", population="8", generations="2", seed="5")
    request = check_form(values, catalog).request
    assert request is not None
    seen: list[Progress] = []
    created: list[str] = []
    outcome = run_search(
        request,
        cancel=threading.Event(),
        on_progress=seen.append,
        on_created=created.append,
        db_path=db_path,
    )
    assert outcome.status == "completed"
    assert [p.generation for p in seen] == list(range(len(seen)))
    assert [p.method for p in seen][:3] == ["ga"] * 3  # evolution, then local-search rounds
    assert [p.local_round for p in seen[3:]] == list(range(1, len(seen) - 2))
    assert created == [outcome.run_id]
    with open_store(db_path) as store:
        run = store.get_run(created[0])
        assert run["status"] == "completed" and run["generations"] == len(seen)
    assert outcome.response["optimal_configuration"]["model"] == "Qwen/Qwen3-0.6B"


def test_pool_and_thread_predictions_agree(catalog: Catalog) -> None:
    """Predicting in the process pool (the app's default) gives the same search as in-thread."""
    values = SetupValues(model="Qwen/Qwen3-0.6B", population="8", generations="1", seed="9")
    request = check_form(values, catalog).request
    assert request is not None
    in_thread = run_search(request, cancel=threading.Event(), save=False, workers=0)
    pooled = run_search(request, cancel=threading.Event(), save=False, workers=1)
    a, b = in_thread.response, pooled.response
    assert a["optimal_configuration"] == b["optimal_configuration"]
    assert a["predicted_performance"] == b["predicted_performance"]
    assert [c["configuration"] for c in a["pareto_front"]] == [
        c["configuration"] for c in b["pareto_front"]
    ]


def test_pooled_evaluator_survives_a_dead_pool() -> None:
    """If the prediction processes die, the search carries on in the worker thread."""
    import os
    import signal

    from budsim.core.deployment import Deployment, Workload
    from budsim.tui.runner import PooledEvaluator, PredictionPool

    workload = Workload(input_len=512, output_len=64, concurrency=4)
    deps = [
        Deployment(model="Qwen/Qwen3-0.6B", hardware="h100-sxm", engine="vllm", tp=tp)
        for tp in (1, 2)
    ]
    evaluator = PooledEvaluator(workload, threading.Event(), workers=1)
    first = evaluator.evaluate(deps)
    pool = PredictionPool.get(1)
    for pid in list(pool._processes):  # noqa: SLF001 - simulate a crashed child
        os.kill(pid, signal.SIGKILL)
    time.sleep(0.5)
    again = evaluator.evaluate(deps)
    assert [p["output_tok_s"] for p in again] == [p["output_tok_s"] for p in first]  # type: ignore[index]
    assert evaluator.evaluate(deps) == again  # a fresh pool serves the next batch


def test_exhaustive_progress_has_no_population() -> None:
    """An exhaustive batch's event lists its top 10 only: the line gave '107/10 feasible'; it
    counts the batch's feasible ones and the evaluations against the whole space instead."""
    from dataclasses import replace

    from budsim.tui.widgets.run_progress import progress_line

    batch = replace(
        fixture_progress()[0],
        method="exhaustive",
        generation=2,
        feasible=107,
        population=10,
        evaluations=1_536,
        space_size=43_392,
    )
    for width in (None, 78):  # the full line and the compact one that fits 80 columns
        text = progress_line(batch, "running", width).plain
        assert "107/10" not in text
        assert f"107 feasible in {'the batch' if width is None else 'it'}" in text
        assert "batch 3" in text and "1,536 of 43,392" in text and "gen" not in text
        assert width is None or len(text) <= width
