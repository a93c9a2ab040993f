"""Workload (request shape and load), SLOs and the optimisation target."""

from __future__ import annotations

from textual.app import ComposeResult

from ..form import PERCENTILES, SCENARIOS, TARGETS, SetupValues
from .fields import Choice, Field, FormGrid


class WorkloadForm(FormGrid):
    def __init__(self, values: SetupValues) -> None:
        super().__init__(classes="form-grid", id="workload")
        self._v = values

    def compose(self) -> ComposeResult:
        v = self._v
        yield Field(
            "input tok",
            field_id="input_len",
            value=v.input_len,
            tooltip="Prompt tokens per request (ISL)",
        )
        yield Field(
            "output tok",
            field_id="output_len",
            value=v.output_len,
            tooltip="Output tokens per request (OSL)",
        )
        yield Field(
            "length mix",
            field_id="length_mix",
            value=v.length_mix,
            placeholder="fixed",
            tooltip="Request shapes instead of the input/output tokens, AIPerf style: "
            "ISL[|SD],OSL[|SD]:weight;... e.g. 256|40,128|20:0.7;2048,512:0.3 (as --length-mix)",
        )
        yield Choice(
            "load type",
            [(label, key) for key, label in SCENARIOS],
            field_id="scenario",
            value=v.scenario,
        )
        yield Field(
            "load",
            field_id="load",
            value=v.load,
            tooltip="Requests in flight, requests/s or batch size (per the load type)",
        )
        yield Field(
            "burstiness",
            field_id="burstiness",
            value=v.burstiness,
            tooltip="Rate only: gamma shape of the arrival gaps, as vllm bench serve "
            "--burstiness (1 Poisson, <1 bursty, >1 more even)",
        )
        yield Field(
            "requests",
            field_id="num_requests",
            value=v.num_requests,
            placeholder="steady",
            tooltip="Empty: the steady state (warm-up and drain left out). N: a finite "
            "benchmark run of N requests from a cold start, as --num-requests",
        )
        yield Field(
            "prefix tok",
            field_id="shared_prefix_len",
            value=v.shared_prefix_len,
            placeholder="0",
            tooltip="Prompt tokens every request shares (a system prompt): prefilled once and "
            "cached, their KV held once, as --shared-prefix-len",
        )
        yield Field(
            "cache hit",
            field_id="cached_share",
            value=v.cached_share,
            placeholder="0",
            tooltip="Share (0-0.99) of the rest of each prompt an earlier turn left in the prefix "
            "cache (multi-turn chat), as --cached-share",
        )
        yield Field(
            "TTFT ≤ ms",
            field_id="ttft_ms",
            value=v.ttft_ms,
            placeholder="none",
            tooltip="Time-to-first-token SLO in ms (empty = none)",
        )
        yield Field(
            "TPOT ≤ ms",
            field_id="tpot_ms",
            value=v.tpot_ms,
            placeholder="none",
            tooltip="Time-per-output-token SLO in ms (empty = none)",
        )
        yield Choice(
            "SLO at",
            [(p, p) for p in PERCENTILES],
            field_id="percentile",
            value=v.percentile,
        )
        yield Field(
            "min tok/s",
            field_id="min_tok_s",
            value=v.min_tok_s,
            placeholder="none",
            tooltip="Minimum output tokens/s of the whole deployment",
        )
        yield Choice(
            "target",
            [(label, key) for key, label in TARGETS],
            field_id="target",
            value=v.target,
            tooltip="What the headline best maximises",
        )
        yield Field(
            "spec decode",
            field_id="speculative",
            value=v.speculative,
            placeholder="off",
            tooltip="Speculative decoding to search beside plain decoding: any of mtp (the "
            "model's own MTP layers), eagle3 (a trained draft head), ngram (prompt lookup), "
            "draft:MODEL (a separate draft model), comma-separated, as --speculative",
        )
