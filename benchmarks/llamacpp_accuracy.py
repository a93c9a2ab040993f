"""Physics-only accuracy of the llama.cpp engine model on LLM-Inference-Bench's llama.cpp rows.

Every llama.cpp row of ``e2e/llm_inference_bench`` (1,235 in the main table) is one sequence: ISL
prompt tokens fed in chunks of the run's ``-b`` (n_batch), then OSL = ISL tokens generated; the
measured value is the whole run's latency. `budsim.core.evaluate.case_for_row` turns each row
into that batch-1 static run (multi-GPU rows as a layer split, pp) and `join_predictions`
predicts it with physics only (no calibration exists for llama.cpp). Rows on hardware outside the
catalog (Intel PVC) are counted as not answered.

The last table is not a shipped model: it says how much one latency factor per hardware kind
would recover, fitted inside grouped cross-validation folds (sklearn GroupKFold over the model
architecture groups, so no fold sees its own architecture) and scored on the held-out fold.

    .venv/bin/python benchmarks/llamacpp_accuracy.py > benchmarks/llamacpp_accuracy.md
"""

from __future__ import annotations

import math
import sys
from typing import Any

HARDWARE_ORDER = ("a100-sxm-40gb", "h100-sxm", "gh200", "mi250", "mi300x")


def _table(frame: Any, key: str, order: tuple[str, ...] | None = None) -> list[str]:
    lines = [
        f"| {key} | rows | median APE | median signed error |",
        "|---|---:|---:|---:|",
    ]
    groups = frame.groupby(key)
    names = [n for n in (order or ()) if n in groups.groups] or sorted(groups.groups)
    for name in names:
        g = groups.get_group(name)
        lines.append(f"| {name} | {len(g)} | {g.ape.median():.1%} | {g.signed.median():+.1%} |")
    return lines


def _cross_validated(frame: Any) -> tuple[float, float, int]:
    """Median APE and signed error of one fitted latency factor per hardware kind, out of fold."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    from budsim.core.hardware import get_device

    kinds = np.asarray([get_device(h).kind for h in frame.hardware])
    resid = np.log(frame.measured.to_numpy() / frame.predicted.to_numpy())
    groups = frame.model_group.to_numpy()
    folds = min(5, len(set(groups)))
    out = np.empty(len(frame))
    for train, test in GroupKFold(n_splits=folds).split(resid, groups=groups):
        for kind in set(kinds[test]):
            fit = kinds[train] == kind
            factor = float(np.median(resid[train][fit])) if fit.any() else 0.0
            sel = test[kinds[test] == kind]
            out[sel] = frame.predicted.to_numpy()[sel] * math.exp(factor)
    ratio = out / frame.measured.to_numpy()
    return float(np.median(np.abs(ratio - 1))), float(np.median(ratio - 1)), folds


def main() -> int:
    from budsim.core.datasets import data_dir, load_measurements
    from budsim.core.engines import ENGINE_VERSIONS
    from budsim.core.evaluate import join_predictions

    df = load_measurements(data_dir(), ("llm_inference_bench",))
    rows = df[df.engine == "llamacpp"]
    joined = join_predictions(rows.to_dict("records"))
    joined = joined.merge(rows[["row_id", "model_group"]], on="row_id")
    answered = joined[(joined.metric == "e2e_s") & joined.error.isna()].copy()
    answered["signed"] = answered.predicted / answered.measured - 1.0
    answered["ape"] = answered.signed.abs()
    unanswered = joined[joined.metric.isna()]
    by_raw = rows.set_index("row_id").hardware_raw

    print("# llama.cpp engine: physics-only accuracy on LLM-Inference-Bench")
    print()
    print(
        "Whole-run latency (ISL prompt + OSL = ISL output, one sequence, prompt chunked by the "
        "run's `-b`) predicted by budsim's physics for the `llamacpp` profile "
        f"({ENGINE_VERSIONS['llamacpp']}); no calibration is applied or exists for llama.cpp. "
        "Measured: Argonne LLM-Inference-Bench main table (mid-2024 llama.cpp builds, F16 "
        "GGUF). APE = |predicted / measured - 1|; signed error = predicted / measured - 1 "
        "(negative: budsim predicts faster than measured)."
    )
    print()
    print(
        "Remake: `.venv/bin/python benchmarks/llamacpp_accuracy.py > benchmarks/llamacpp_accuracy.md`"
    )
    print()
    print(
        f"Rows: {len(rows)}; answered {len(answered)}; not answered {len(unanswered)} "
        "(by reason and hardware below)."
    )
    print()
    print(
        f"**All answered rows: median APE {answered.ape.median():.1%}, median signed error "
        f"{answered.signed.median():+.1%}.**"
    )
    print()
    print("## Per hardware")
    print()
    print("\n".join(_table(answered, "hardware", HARDWARE_ORDER)))
    print()
    print("## Per model")
    print()
    print("\n".join(_table(answered, "model")))
    print()
    print("## Not answered")
    print()
    print("| reason | hardware (raw) | rows |")
    print("|---|---|---:|")
    for (reason, raw), n in (
        unanswered.assign(raw=unanswered.row_id.map(by_raw))
        .groupby(["error", "raw"])
        .size()
        .items()
    ):
        print(f"| {reason} | {raw} | {n} |")
    print()
    ape, signed, folds = _cross_validated(answered)
    print("## What one latency factor per hardware kind would recover (not shipped)")
    print()
    print(
        f"Fitted as the median log(measured / physics) per kind (cuda, rocm) on the training "
        f"folds of a {folds}-fold GroupKFold over model architecture groups, applied to the "
        f"held-out fold: cross-validated median APE {ape:.1%}, median signed error "
        f"{signed:+.1%}. The physics above ships unchanged; this only sizes what a trained "
        "calibration for llama.cpp could gain."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
