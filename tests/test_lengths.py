"""Request-length mixes: parsing, a user's pairs, drawing, and percentiles that reflect the mix."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from budsim.core.cases import parse_case
from budsim.core.deployment import Deployment, Workload
from budsim.core.errors import BudsimError
from budsim.core.lengths import (
    LengthSampler,
    mix_from_pairs,
    mix_from_text,
    mix_longest,
    mix_means,
    mix_text,
    read_pairs_csv,
)
from budsim.core.predict import predict_physics


def test_mix_text_in_aiperf_style() -> None:
    mix = mix_from_text("256|40,128|20:0.7; 2048,512:0.3")
    assert mix == ((0.7, 256, 128, 40.0, 20.0), (0.3, 2048, 512, 0.0, 0.0))
    assert mix_means(mix) == (round(0.7 * 256 + 0.3 * 2048), round(0.7 * 128 + 0.3 * 512))
    # the longest draw: mean + 3 sd (clamped there), so the KV cache and context are sized by it
    assert mix_longest(mix) == (2048, 512, 2560)
    assert mix_longest(mix_from_text("1000|100,100|10"))[2] == 1300 + 130
    assert mix_text(mix) == "256|40,128|20:0.7;2048,512:0.3"
    assert mix_from_text("64,32") == ((1.0, 64, 32, 0.0, 0.0),)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "no entries"),
        ("1024", "is not INPUT,OUTPUT"),
        ("1024,x", "output length 'x' is not a number"),
        ("0,5", "whole number >= 1"),
        ("10.5,5", "whole number >= 1"),
        ("100|-1,5", "sd must be >= 0"),
        ("100,5:0", "weights must be positive"),
    ],
)
def test_bad_mixes_give_one_line_errors(text: str, needle: str) -> None:
    with pytest.raises(BudsimError, match=needle):
        mix_from_text(text)


def test_a_users_pairs_are_folded_and_replayed(tmp_path: Path) -> None:
    f = tmp_path / "lengths.csv"
    f.write_text("input_len,output_len\n100,10\n100,10\n300,30\n")
    mix = read_pairs_csv(f)
    assert mix == ((2.0, 100, 10, 0.0, 0.0), (1.0, 300, 30, 0.0, 0.0))
    draws = [LengthSampler(mix)(random.Random(i)) for i in range(300)]
    assert set(draws) == {(100, 10), (300, 30)}
    share = draws.count((100, 10)) / len(draws)
    assert 0.55 < share < 0.78  # 2 in 3
    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,completion\n1,2\n")
    with pytest.raises(BudsimError, match="input_len and output_len columns"):
        read_pairs_csv(bad)
    bad.write_text("input_len,output_len\n1,two\n")
    with pytest.raises(BudsimError, match=r"bad.csv:2: input_len and output_len must be whole"):
        read_pairs_csv(bad)
    with pytest.raises(BudsimError, match="distinct"):
        mix_from_pairs((i, 1) for i in range(1, 10_002))


def test_draws_stay_in_their_bounds() -> None:
    mix = mix_from_text("500|400,50|100")
    sample = LengthSampler(mix)
    rng = random.Random(0)
    draws = [sample(rng) for _ in range(2000)]
    assert min(d[0] for d in draws) >= 1 and max(d[0] for d in draws) <= 500 + 1200
    assert max(d[1] for d in draws) <= 50 + 300


def test_workload_with_a_mix() -> None:
    w = Workload(concurrency=8).with_length_mix(mix_from_text("128,64:0.7;4096,1024:0.3"))
    w.validate()
    assert (w.input_len, w.output_len) == (1318, 352) and w.varied_lengths
    assert w.longest_request == 4096 + 1024 and w.longest_input == 4096
    with pytest.raises(BudsimError, match="not both"):
        Workload(input_len_spread=0.2, length_mix=w.length_mix).validate()
    _, parsed = parse_case(
        {
            "model": "meta-llama/Llama-3.1-8B",
            "hardware": "h100-sxm",
            "engine": "vllm",
            "length_mix": "128,64:0.7;4096,1024:0.3",
        }
    )
    assert parsed.length_mix == w.length_mix and parsed.input_len == 1318


def test_percentiles_reflect_the_mix() -> None:
    """Short and long requests together: the p99 TTFT is a long prompt's, far above the p50 of
    mostly short ones, where a fixed-length workload of the same means has p50 = p99."""
    dep = Deployment(model="meta-llama/Llama-3.1-8B", hardware="h100-sxm", engine="vllm")
    mixed = predict_physics(
        dep, Workload(concurrency=16).with_length_mix(mix_from_text("128,64:0.7;4096,1024:0.3"))
    )
    fixed = predict_physics(dep, Workload(concurrency=16, input_len=1318, output_len=352))
    assert mixed.ttft_ms_p99 is not None and mixed.ttft_ms_p50 is not None
    assert mixed.ttft_ms_p99 > 3 * mixed.ttft_ms_p50
    assert fixed.ttft_ms_p99 == pytest.approx(fixed.ttft_ms_p50, rel=0.05)


# ---- lognormal lengths and named presets -------------------------------------------------------


def test_a_lognormal_length_keeps_its_mean_and_its_tail() -> None:
    import math

    from budsim.core.lengths import LOGNORMAL_BINS

    mix = mix_from_text("760~0.985,100")
    assert len(mix) == LOGNORMAL_BINS
    assert sum(e[0] for e in mix) == pytest.approx(1.0)
    # the mix's mean is the lognormal's, e^(mu + sigma^2 / 2), far above the median
    assert mix_means(mix)[0] == pytest.approx(760 * math.exp(0.985**2 / 2), rel=0.01)
    sampler, rng = LengthSampler(mix), random.Random(3)
    draws = sorted(sampler(rng)[0] for _ in range(20_000))
    assert 650 < draws[len(draws) // 2] < 850  # about the median
    assert draws[int(0.9 * len(draws))] > 2 * 760  # a long right tail
    with pytest.raises(BudsimError, match="MEDIAN~SIGMA"):
        mix_from_text("760~5,100")


def test_the_azure_conversation_preset_matches_its_source() -> None:
    from budsim.core.lengths import PRESETS, preset

    named = preset(" Azure-Conv ")
    assert named is PRESETS["azure-conv"]
    assert "AzureLLMInferenceTrace_conv.csv" in named.source and "7909210" in named.source
    mix = mix_from_text("azure-conv")
    assert len(mix) == 64  # 8 x 8 slices, input and output independent
    isl, osl = mix_means(mix)
    # the trace's means are 1,155 / 211 tokens; the lognormal fit's 1,235 / 219
    assert 1150 <= isl <= 1250 and 205 <= osl <= 225
    assert mix_longest(mix)[0] >= 10_000  # the trace's longest prompt is 14,050 tokens
    wl = parse_case(
        {
            "model": "meta-llama/Llama-3.1-8B",
            "hardware": "h100-sxm",
            "engine": "vllm",
            "concurrency": 2,
            "length_mix": "azure-conv",
        }
    )[1]
    assert wl.length_mix == mix
