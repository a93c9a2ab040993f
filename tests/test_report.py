"""The plain-text labels of saved runs that the CLI and the TUI share (budsim.core.report)."""

from __future__ import annotations

from budsim.core.report import break_after_slashes, run_label, slo_parts, workload_brief

WORKLOAD = {"scenario": "concurrency", "input_len": 1024, "output_len": 256, "concurrency": 16}


def test_workload_brief_names_lengths_and_load() -> None:
    assert workload_brief(WORKLOAD) == "1024/256 C16"
    static = {"scenario": "static", "input_len": 128, "output_len": 64, "batch_size": 32}
    assert workload_brief({**static, "num_requests": 32}) == "128/64 B32"
    rate = {**WORKLOAD, "scenario": "rate", "rate": 2.5, "burstiness": 1.0}
    assert workload_brief(rate) == "1024/256 2.5 req/s"
    bursty = {**rate, "burstiness": 0.5, "num_requests": 500, "input_len_spread": 0.1}
    assert workload_brief(bursty) == "1024±10%/256 2.5 req/s burst 0.5 n=500"


def test_slo_parts_name_the_percentile_of_each_latency_limit() -> None:
    assert slo_parts({"ttft_ms": 500.0, "tpot_ms": None, "percentile": "p90"}) == [
        "TTFT p90 ≤ 500 ms"
    ]
    both = {"ttft_ms": 500.0, "tpot_ms": 25.0, "percentile": "p99", "min_output_tok_s": 2000.0}
    assert slo_parts({**both, "max_memory_gb": 60.0, "min_requests_per_s": 1.5}) == [
        "TTFT p99 ≤ 500 ms",
        "TPOT p99 ≤ 25 ms",
        "≥ 2,000 tok/s",
        "≥ 1.5 req/s",
        "≤ 60 GB per device",
    ]
    assert slo_parts({"tpot_ms": 40.0, "percentile": "mean"}) == ["TPOT mean ≤ 40 ms"]
    assert slo_parts({"percentile": "p95"}) == []


def test_run_label_tells_apart_two_runs_of_one_model_under_two_names() -> None:
    """A run stored under an alias before #19 shows the catalog id, like one stored after."""
    old = {
        "model": "Meta-Llama-3.1-8B",
        "inputs": {"workload": WORKLOAD, "constraints": {"ttft_ms": 500.0, "percentile": "p90"}},
    }
    new = {  # a listed run: the workload and constraints at the top level
        "model": "meta-llama/Meta-Llama-3.1-8B",
        "workload": WORKLOAD,
        "constraints": {"ttft_ms": 500.0, "percentile": "p95"},
    }
    a, b = run_label(old), run_label(new)
    assert a.model == b.model == "meta-llama/Meta-Llama-3.1-8B"
    assert a.workload == b.workload == "1024/256 C16"
    assert (a.slo_text, b.slo_text) == ("TTFT p90 ≤ 500 ms", "TTFT p95 ≤ 500 ms")
    bare = run_label({"model": "/data/llama/config.json", "inputs": {}})
    assert (bare.model, bare.workload, bare.slo_text) == ("/data/llama/config.json", "-", "no SLO")


def test_break_after_slashes_folds_between_the_parts_of_an_id() -> None:
    model = "meta-llama/Meta-Llama-3.1-8B"
    assert break_after_slashes(model, 28) == model
    assert break_after_slashes(model, 20) == "meta-llama/\nMeta-Llama-3.1-8B"
    assert break_after_slashes("/data/models/llama-3/config.json", 14) == (
        "/data/models/\nllama-3/\nconfig.json"
    )
    assert break_after_slashes("2 x h100-sxm", 4) == "2 x h100-sxm"  # no slash: unchanged
    assert break_after_slashes(f"{model} on 2 x h100-sxm", 20).splitlines() == [
        "meta-llama/",
        "Meta-Llama-3.1-8B on 2 x h100-sxm",
    ]


def test_speculative_decoding_and_prefix_caching_are_named() -> None:
    from budsim.core.report import layout_text, workload_brief, workload_text

    assert layout_text({"tp": 2, "replicas": 3, "spec_method": "eagle3"}) == "TP2 ×3 +EAGLE-3 k3"
    assert layout_text({"tp": 8, "spec_method": "mtp", "spec_tokens": 1}) == "TP8 +MTP k1"
    assert layout_text({"tp": 1, "spec_method": "none"}) == "TP1"
    w = {"concurrency": 16, "input_len": 4096, "output_len": 256}
    cached = {**w, "shared_prefix_len": 3072, "cached_share": 0.5}
    assert workload_brief(cached) == "4096/256 C16 pfx3072+50%"
    assert workload_brief({**w, "cached_share": 0.5}) == "4096/256 C16 pfx+50%"
    assert workload_brief(w) == "4096/256 C16"
    assert workload_text(cached).endswith("· 3072 shared prefix tokens · 50 % of the rest cached")


def test_the_long_report_says_what_a_prediction_rests_on() -> None:
    from budsim.core.report import performance_rows

    pred = {"ttft_ms_mean": 20.0, "calibration": "physics", "rests_on": "physics only (TTFT)"}
    rows = {label: value for label, value, _ in performance_rows(pred, extended=True)}
    assert rows["rests on"] == "physics only (TTFT)" and rows["calibration"] == "physics"
    assert "rests on" not in {label for label, _, _ in performance_rows(pred)}
