"""Speculative decoding: tokens per verification step, its cost, and where it stops paying."""

from __future__ import annotations

from typing import Any

import pytest

from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.model import load_model
from budsim.core.predict import predict_physics, step_model
from budsim.core.speculative import METHODS, SpeculativeStep, expected_tokens

LLAMA = "meta-llama/Llama-3.1-8B"


def _dep(**kw: object) -> Deployment:
    return Deployment(model=LLAMA, hardware="h100-sxm", engine="vllm", **kw)  # type: ignore[arg-type]


def test_expected_tokens_per_step() -> None:
    assert expected_tokens(3, 0.0) == 1.0  # every draft rejected: the target's own token
    assert expected_tokens(3, 0.5) == pytest.approx(1 + 0.5 + 0.25 + 0.125)
    assert expected_tokens(4, 0.999999) == pytest.approx(5.0, rel=1e-4)
    # the MTP default reproduces the 3.2 tokens a step reported for DeepSeek-V3's module at k = 7
    assert expected_tokens(7, METHODS["mtp"].default_acceptance) == pytest.approx(3.14, abs=0.01)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"spec_method": "medusa"}, "unknown spec_method"),
        ({"spec_method": "eagle3", "spec_tokens": 17}, "spec_tokens must be"),
        ({"spec_method": "eagle3", "spec_acceptance": 1.0}, r"spec_acceptance must be in \[0, 1\)"),
        ({"spec_tokens": 3}, "need a spec_method"),
    ],
)
def test_bad_speculative_settings_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BudsimError, match=message):
        _dep(**fields).validate()


def test_mtp_needs_the_models_own_mtp_layers() -> None:
    assert load_model("deepseek-ai/DeepSeek-V3").mtp_layers == 1
    assert load_model(LLAMA).mtp_layers == 0
    with pytest.raises(BudsimError, match="no multi-token-prediction layers"):
        predict_physics(_dep(spec_method="mtp"), Workload(concurrency=1))


def test_a_verification_step_costs_more_than_a_decode_step_and_yields_more_tokens() -> None:
    plain = step_model(_dep())
    spec = step_model(_dep(spec_method="eagle3", spec_tokens=3, spec_acceptance=0.7))
    assert isinstance(spec, SpeculativeStep) and spec.base is plain
    e = expected_tokens(3, 0.7)
    per_token = spec(8, 8 * 2048.0, 0, 0.0, 0).total
    decode = plain(8, 8 * 2048.0, 0, 0.0, 0).total
    # one real step (verification + 3 draft passes) is dearer than a decode step, but per token
    # it is cheaper at a small batch
    assert decode < per_token * e
    assert per_token < decode
    # a pure prefill step is not touched
    assert spec(0, 0.0, 2048, 2048 * 2049 / 2, 1) == plain(0, 0.0, 2048, 2048 * 2049 / 2, 1)


def test_the_gain_shrinks_with_the_batch_and_can_turn_into_a_loss() -> None:
    """Decode is memory-bound at a small batch (drafts ride on one weight read) and turns
    compute-bound as the batch grows (every drafted token is verified whether accepted or not)."""
    speedups = []
    for c in (1, 16, 256):
        wl = Workload(input_len=1024, output_len=256, concurrency=c)
        base = predict_physics(_dep(), wl).tpot_ms_mean
        fast = predict_physics(_dep(spec_method="ngram"), wl).tpot_ms_mean
        assert base is not None and fast is not None
        speedups.append(base / fast)
    assert speedups[0] > speedups[1] > speedups[2]
    assert speedups[0] > 1.2
    assert speedups[2] < 1.0  # 30 % acceptance at a batch of 256 costs more than it saves


def test_higher_acceptance_is_never_slower_and_ttft_is_unchanged_at_low_load() -> None:
    wl = Workload(input_len=1024, output_len=256, concurrency=4)
    tpots = []
    for acceptance in (0.3, 0.6, 0.9):
        p = predict_physics(_dep(spec_method="eagle3", spec_acceptance=acceptance), wl)
        assert p.tpot_ms_mean is not None
        tpots.append(p.tpot_ms_mean)
    assert tpots[0] > tpots[1] > tpots[2]
    plain = predict_physics(_dep(), Workload(input_len=1024, output_len=256, concurrency=1))
    spec = predict_physics(
        _dep(spec_method="eagle3"), Workload(input_len=1024, output_len=256, concurrency=1)
    )
    assert spec.ttft_ms_mean == pytest.approx(plain.ttft_ms_mean, rel=0.02)


def test_draft_weights_are_counted_in_memory() -> None:
    wl = Workload(concurrency=1)
    plain = predict_physics(_dep(), wl)
    eagle = predict_physics(_dep(spec_method="eagle3"), wl)
    ngram = predict_physics(_dep(spec_method="ngram"), wl)
    # an EAGLE-3 head of Llama-3.1-8B: one 4,096-wide layer, its fusion and a 32k-row head, 16 bit
    assert 0.5 < eagle.weights_gb_per_device - plain.weights_gb_per_device < 1.2
    assert ngram.weights_gb_per_device == plain.weights_gb_per_device


# ---- a separate draft model ------------------------------------------------------------------

QWEN, QWEN_DRAFT = "Qwen/Qwen3-32B", "Qwen/Qwen3-0.6B"


def _draft_dep(**kw: object) -> Deployment:
    fields: dict[str, object] = {"engine": "sglang", "tp": 2, "spec_method": "draft"}
    fields.update({"spec_draft_model": QWEN_DRAFT, **kw})
    return Deployment(model=QWEN, hardware="h100-sxm", **fields)  # type: ignore[arg-type]


def test_a_draft_model_runs_k_decode_steps_of_its_own_per_target_step() -> None:
    from budsim.core.speculative import draft_deployment

    spec = step_model(_draft_dep(spec_tokens=4, spec_acceptance=0.6))
    plain = step_model(_draft_dep().with_(spec_method="none", spec_draft_model=""))
    drafter = step_model(draft_deployment(_draft_dep()))
    assert isinstance(spec, SpeculativeStep) and spec.drafter is drafter
    e = expected_tokens(4, 0.6)
    n, ctx = 8, 8 * 2048.0
    # one target step: verification (dearer than a decode step) plus 4 draft decode steps
    step = spec(n, ctx, 0, 0.0, 0).total * e
    assert step > plain(n, ctx, 0, 0.0, 0).total + 4 * drafter(n, ctx, 0, 0.0, 0).total
    # the draft prefills every prompt chunk as well
    prompt = (2048, 2048 * 2049 / 2, 1)
    assert spec(0, 0.0, *prompt).total == pytest.approx(
        plain(0, 0.0, *prompt).total + drafter(0, 0.0, *prompt).total
    )


def test_a_draft_models_gain_shrinks_with_the_batch() -> None:
    speedups = []
    for c in (1, 16, 128):
        wl = Workload(input_len=1024, output_len=256, concurrency=c)
        base = predict_physics(_draft_dep(spec_method="none", spec_draft_model=""), wl)
        fast = predict_physics(_draft_dep(), wl)
        assert base.tpot_ms_mean is not None and fast.tpot_ms_mean is not None
        speedups.append(base.tpot_ms_mean / fast.tpot_ms_mean)
    assert speedups[0] > speedups[1] > speedups[2]
    assert speedups[0] > 1.2  # a 0.6B draft of a 32B target pays at low load
    assert speedups[2] < 1.0  # and costs more than it saves once verification is compute-bound


def test_a_draft_models_weights_and_kv_cache_are_in_the_memory_plan() -> None:
    wl = Workload(input_len=1024, output_len=256, concurrency=4)
    plain = predict_physics(_draft_dep(spec_method="none", spec_draft_model=""), wl)
    spec = predict_physics(_draft_dep(), wl)
    draft = load_model(QWEN_DRAFT)
    # its bf16 weights, split over TP2 (about 0.6 GB a device)
    added = spec.memory.weights_gb - plain.memory.weights_gb
    assert added == pytest.approx(draft.total_params * 2 / 2 / 1e9, rel=0.15)
    # its own layers cache every token too: fewer tokens fit
    assert spec.memory.kv_bytes_per_token > plain.memory.kv_bytes_per_token * 1.3
    assert spec.memory.kv_capacity_tokens < plain.memory.kv_capacity_tokens


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"spec_draft_model": ""}, "needs spec_draft_model"),
        ({"spec_method": "eagle3"}, "spec_draft_model needs spec_method draft"),
        ({"spec_draft_model": "meta-llama/Meta-Llama-3.1-8B"}, "must share the target's tokenizer"),
        ({"engine": "vllm"}, "vLLM 0.11 runs no separate draft model"),
    ],
)
def test_bad_draft_models_are_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(BudsimError, match=message):
        predict_physics(_draft_dep(**fields), Workload(concurrency=1))


def test_the_search_tries_a_named_draft_model_where_the_engine_runs_one() -> None:
    from budsim.core.speculative import speculation_unavailable

    model = load_model(QWEN)
    assert speculation_unavailable("draft", "sglang", "cuda", model, "Qwen/Qwen3-0.6B") is None
    assert "no draft model named" in str(speculation_unavailable("draft", "sglang", "cuda", model))
    why = speculation_unavailable("draft", "vllm", "cuda", model, "Qwen/Qwen3-0.6B")
    assert "vLLM 0.11" in str(why)


def test_searched_speculation_is_parsed_once_for_every_caller() -> None:
    from budsim.core.speculative import parse_searched, searched_method

    typed = parse_searched(["MTP, draft:Qwen/Qwen3-0.6B", "ngram mtp", "Draft:Qwen/Qwen3-0.6B"])
    assert typed == ("mtp", "draft:Qwen/Qwen3-0.6B", "ngram")
    assert parse_searched("") == () and parse_searched(None) == ()
    assert searched_method("draft:Qwen/Qwen3-0.6B") == ("draft", "Qwen/Qwen3-0.6B")
    assert searched_method("EAGLE3") == ("eagle3", "")
    with pytest.raises(BudsimError, match="name it as draft:MODEL"):
        parse_searched("draft")
    with pytest.raises(BudsimError, match="name it as draft:MODEL"):
        parse_searched("draft:")
    with pytest.raises(BudsimError, match="unknown speculative method 'medusa'"):
        parse_searched("eagle3,medusa")


def _space_searching(speculative: tuple[str, ...]) -> Any:
    from budsim.core.search.optimize import OptimizationRequest, prepare

    request = OptimizationRequest(
        model=QWEN,
        hardware="h100-sxm",
        devices=4,
        workload=Workload(concurrency=4, input_len=1024, output_len=256),
        speculative=speculative,
    )
    return prepare(request).space


def test_a_search_with_a_draft_model_pairs_it_with_the_engines_that_run_one() -> None:
    """The space pairs the named draft with the engines that run one (never vLLM 0.11), and its
    deployments carry the draft, so predictions price it and exports load it; a draft the
    target cannot use stops the search with the reason."""
    space = _space_searching(("draft:Qwen/Qwen3-0.6B",))
    drafts = [i for i, e in enumerate(space.engines) if e.spec_method == "draft"]
    assert {space.engines[i].id for i in drafts} == {"sglang", "trtllm"}
    assert {space.engines[i].spec_draft_model for i in drafts} == {"Qwen/Qwen3-0.6B"}
    described = [e for e in space.describe()["engines"] if e["spec_method"] == "draft"]
    assert [e["spec_draft_model"] for e in described] == ["Qwen/Qwen3-0.6B"] * 2
    # plain decoding stays in the space beside the draft
    assert {e.id for e in space.engines if e.spec_method == "none"} == {"vllm", "sglang", "trtllm"}
    with pytest.raises(BudsimError, match="must share the target's tokenizer"):
        _space_searching(("draft:meta-llama/Llama-3.1-8B",))
