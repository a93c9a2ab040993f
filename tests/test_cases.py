from __future__ import annotations

import pytest

from budsim.core.cases import parse_case
from budsim.core.errors import BudsimError

BASE = {
    "model": "meta-llama/Llama-3.1-8B",
    "hardware": "h100-sxm",
    "engine": "vllm",
    "input_len": "1024",
    "output_len": "128",
}


def test_scenario_is_inferred_from_the_load_column() -> None:
    _, wl = parse_case({**BASE, "batch_size": "16"})
    assert wl.scenario == "static" and wl.batch_size == 16
    _, wl = parse_case({**BASE, "rate": "2.5"})
    assert wl.scenario == "rate" and wl.rate == 2.5
    _, wl = parse_case({**BASE, "concurrency": "8"})
    assert wl.scenario == "concurrency" and wl.concurrency == 8


def test_two_loads_without_a_scenario_are_refused() -> None:
    """`--batch-size 3 --concurrency 4` used to run the closed loop and drop the batch silently."""
    with pytest.raises(BudsimError, match="give one load"):
        parse_case({**BASE, "batch_size": "3", "concurrency": "4"})
    # with the scenario named, the other columns may be filled (a CSV with every column)
    _, wl = parse_case({**BASE, "scenario": "static", "batch_size": "3", "concurrency": "4"})
    assert wl.scenario == "static" and wl.batch_size == 3


def test_defaults_and_parallel_sizes() -> None:
    dep, _ = parse_case({**BASE, "tp": "4", "pp": "", "weight_dtype": "FP8"})
    assert (dep.tp, dep.pp, dep.dp, dep.ep) == (4, 1, 1, 1)
    assert dep.weight_dtype == "fp8"
    assert dep.devices == 4


@pytest.mark.parametrize(
    ("field", "value", "needle"),
    [
        ("input_len", "0", "input_len"),
        ("input_len", "-5", "input_len"),
        ("output_len", "nan", "output_len"),
        ("output_len", "12.5", "output_len"),
        ("tp", "two", "tp"),
        ("rate", "inf", "rate"),
        ("weight_dtype", "fp3", "weight_dtype"),
        ("kv_dtype", "int4", "kv_dtype"),
        ("scenario", "burst", "scenario"),
        ("num_requests", "0", "num_requests"),
        ("num_requests", "10.5", "num_requests"),
    ],
)
def test_bad_values_give_one_line_errors(field: str, value: str, needle: str) -> None:
    with pytest.raises(BudsimError) as err:
        parse_case({**BASE, field: value})
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_num_requests_column_picks_a_finite_run() -> None:
    """A blank num_requests is the steady state; a number, a finite run of that many requests."""
    _, steady = parse_case({**BASE, "concurrency": "8", "num_requests": " "})
    _, finite = parse_case({**BASE, "concurrency": "8", "num_requests": "80"})
    assert steady.num_requests is None and finite.num_requests == 80


def test_missing_required_field() -> None:
    fields = dict(BASE)
    del fields["hardware"]
    with pytest.raises(BudsimError, match="missing hardware"):
        parse_case(fields)


def test_ep_must_divide_tp_times_dp() -> None:
    with pytest.raises(BudsimError, match="ep=3"):
        parse_case({**BASE, "tp": "4", "ep": "3"})


def test_prefix_cache_columns() -> None:
    """shared_prefix_len / cached_share columns (and --shared-prefix-len / --cached-share)."""
    _, wl = parse_case({**BASE, "shared_prefix_len": "512", "cached_share": "0.25"})
    assert (wl.shared_prefix_len, wl.cached_share) == (512, 0.25)
    _, wl = parse_case({**BASE, "shared_prefix_len": "0", "cached_share": ""})
    assert not wl.prefix_caching
    for fields, needle in (
        ({"shared_prefix_len": "-1"}, "whole number >= 0"),
        ({"shared_prefix_len": "12.5"}, "whole number >= 0"),
        ({"shared_prefix_len": "1024"}, "shorter than input_len"),
        ({"cached_share": "1.5"}, r"in \[0, 1\)"),
        ({"cached_share": "half"}, r"in \[0, 1\)"),
    ):
        with pytest.raises(BudsimError, match=needle):
            parse_case({**BASE, **fields})


def test_speculative_columns() -> None:
    dep, _ = parse_case(
        {**BASE, "spec_method": "EAGLE3", "spec_tokens": "4", "spec_acceptance": "0.6"}
    )
    assert (dep.spec_method, dep.spec_tokens, dep.spec_acceptance) == ("eagle3", 4, 0.6)
    dep, _ = parse_case({**BASE, "spec_method": ""})
    assert (dep.spec_method, dep.spec_tokens, dep.spec_acceptance) == ("none", 0, None)
    for fields, needle in (
        ({"spec_method": "medusa"}, "unknown spec_method"),
        ({"spec_method": "ngram", "spec_tokens": "2.5"}, "whole number >= 0"),
        ({"spec_method": "ngram", "spec_acceptance": "1"}, r"in \[0, 1\)"),
        ({"spec_tokens": "3"}, "need a spec_method"),
    ):
        with pytest.raises(BudsimError, match=needle):
            parse_case({**BASE, **fields})
