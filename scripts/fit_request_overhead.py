#!/usr/bin/env python3
"""Derive the CUDA engine profiles' per-request front-end latency (`request_overhead_ms`).

The front end (HTTP, tokenisation, detokenisation, the client) adds a latency to every request that
the step-time model does not see. It is set to the median, over the aic_silicon aggregated-serving
rows at a concurrency of at most 4 (where queueing is negligible), of the measured TTFT minus the
simulated TTFT without that latency. Rerun it whenever the step time or the scheduler changes, and
copy the printed values into budsim/core/engines.py:

    python scripts/fit_request_overhead.py --data ../shared/data

These are in-sample constants; docs/architecture.md says so next to the accuracy figures.
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

from budsim.core.datasets import load_measurements
from budsim.core.engines import get_engine
from budsim.core.evaluate import join_predictions

LOW_LOAD = 4  # clients; above this, queueing behind other prompts dominates TTFT
ENGINES = ("vllm", "sglang", "trtllm")


def excess_by_engine(data: Path | None) -> dict[str, tuple[int, float]]:
    """engine -> (rows, median measured TTFT minus simulated TTFT without the front end, ms)."""
    rows = load_measurements(data, ["aic_silicon"])
    rows = rows[(rows["mode"] == "agg") & (rows["load"] <= LOW_LOAD)]
    joined = join_predictions(rows.to_dict("records"))
    ttft = joined[(joined["metric"] == "ttft_ms") & joined["error"].isna()]
    out = {}
    for engine in ENGINES:
        part = ttft[ttft["engine"] == engine]
        current = get_engine(engine, "cuda").request_overhead_ms
        excess = part["measured"] - (part["predicted"].astype(float) - current)
        out[engine] = (len(part), statistics.median(excess.tolist()))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--data", type=Path, default=None, help="default: $BUDSIM_DATA or ../shared/data"
    )
    args = ap.parse_args()
    for engine, (n, ms) in excess_by_engine(args.data).items():
        current = get_engine(engine, "cuda").request_overhead_ms
        print(f"{engine:7s} request_overhead_ms={ms:.1f}  (now {current:g}; {n} rows)")


if __name__ == "__main__":
    main()
