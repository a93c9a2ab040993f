"""Physics-only accuracy of budsim's disaggregated-serving model on the aic_silicon disagg runs.

Regenerate the committed table (a minute or two on 2 cores):

    python benchmarks/disagg_accuracy.py --data ../shared/data --out benchmarks/disagg_accuracy.md

Every aic disaggregated run whose pools' worker counts are recorded is predicted with
`budsim.core.disagg.predict_disagg` (the code path of `budsim predict --prefill-workers`), from the
row as `budsim.core.evaluate.disagg_case_for_row` reads it. Nothing in the disaggregated model is
fitted to these rows (the front end's fixed latency is fitted on the aggregated vLLM runs), so every
row is one the model never saw; the runs are compared with steady-state predictions.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd

from budsim.core.calibration.validate import to_markdown
from budsim.core.datasets import load_measurements
from budsim.core.disagg import predict_disagg
from budsim.core.errors import BudsimError
from budsim.core.evaluate import disagg_case_for_row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    os.environ.setdefault("BUDSIM_DATA", str(args.data))
    start = time.perf_counter()
    rows = load_measurements(args.data, ["aic_silicon"])
    rows = rows[rows["mode"] == "disagg"]
    out = []
    skipped: Counter[str] = Counter()
    for row in rows.to_dict("records"):
        try:
            dd, workload, targets = disagg_case_for_row(row)
            pred, _ = predict_disagg(dd, workload)
        except BudsimError as exc:
            skipped[str(exc).split(":")[0][:70]] += 1
            continue
        for metric, measured in targets:
            predicted = getattr(pred, f"{metric}_mean")
            out.append(
                {
                    "hardware": row["hardware"],
                    "engine": row["engine"],
                    "model": row["model"],
                    "metric": metric,
                    "signed": (predicted - measured) / measured * 100,
                }
            )
    df = pd.DataFrame(out)
    df["ape"] = df["signed"].abs()
    seconds = time.perf_counter() - start

    def table(by: list[str]) -> str:
        g = df.groupby(by)
        t = pd.DataFrame(
            {
                "n": g.size(),
                "median APE %": g["ape"].median().round(1),
                "median signed %": g["signed"].median().round(1),
                "within 25 %": (g["ape"].apply(lambda s: (s <= 25).mean() * 100)).round(0),
            }
        ).reset_index()
        return to_markdown(t)

    lines = [
        "# Disaggregated serving: physics accuracy on the aic_silicon disagg runs",
        "",
        f"`python benchmarks/disagg_accuracy.py --data ../shared/data --out {args.out}` on "
        f"{platform.machine()}, Python {platform.python_version()}, in {seconds:.0f} s.",
        "",
        "Targets (issue #16): TTFT median APE <= 25 %, TPOT <= 15 %, on architectures held out. No "
        "part of the disaggregated model is fitted to these rows. Runs compared with steady-state "
        "predictions.",
        "",
        f"Rows predicted: {len(df) // 2 if len(df) else 0} runs of {len(rows)}; left out: "
        + (", ".join(f"{n} ({why})" for why, n in skipped.most_common()) or "none")
        + ".",
        "",
        "## By metric",
        "",
        table(["metric"]),
        "",
        "## By metric, hardware and engine",
        "",
        table(["metric", "hardware", "engine"]),
        "",
        "## By metric and model",
        "",
        table(["metric", "model"]),
        "",
    ]
    text = "\n".join(lines)
    if args.out:
        args.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
