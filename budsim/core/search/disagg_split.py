"""Does disaggregated serving beat the aggregated best? Prefill:decode splits of its replica layout.

`compare_disaggregated` takes a finished search's best configuration, keeps its engine, formats
and replica layout for both pools, and predicts every split of the device budget into P prefill and
D decode workers (budsim.core.disagg), scored by the search's own scorer (objective and SLOs). It
answers with the best split and whether it beats the aggregated best on the search's target. A
search over the pools' own layouts is not done yet: this is the xPyD question for the layout the
aggregated search found.
"""

from __future__ import annotations

from typing import Any

from ..deployment import Workload
from ..disagg import DisaggDeployment, predict_disagg
from ..errors import BudsimError
from ..speculative import NO_SPECULATION
from .ga import Candidate
from .scoring import Scorer

__all__ = ["compare_disaggregated"]


def compare_disaggregated(
    best: Candidate, scorer: Scorer, devices: int, workload: Workload
) -> dict[str, Any]:
    """The P:D splits of `best`'s replica over `devices`, the best of them, and the verdict."""
    replica = best.deployment.with_(replicas=1)
    per = replica.devices_per_replica
    workers = devices // per
    layout = f"TP{replica.tp}" + (f"·DP{replica.dp}" if replica.dp > 1 else "")
    searched = (
        f"{replica.engine} {layout} {replica.weight_dtype} workers split into P prefill + D "
        f"decode over {devices} devices"
    )
    rows: list[dict[str, Any]] = []
    chosen: tuple[tuple[bool, float], dict[str, Any]] | None = None  # (feasible, target), row
    for p in range(1, workers):
        d = workers - p
        dd = DisaggDeployment(
            replica.with_(replicas=p, **NO_SPECULATION),
            replica.with_(replicas=d),
        )
        try:
            pred, _ = predict_disagg(dd, workload)
        except BudsimError as exc:
            rows.append({"prefill_workers": p, "decode_workers": d, "error": str(exc)})
            continue
        values = pred.to_dict()
        score = scorer.score(dd.decode, values)
        row = {
            "prefill_workers": p,
            "decode_workers": d,
            "devices": dd.devices,
            "feasible": score.feasible,
            "target": score.target,
            "ttft_ms_mean": values.get("ttft_ms_mean"),
            "tpot_ms_mean": values.get("tpot_ms_mean"),
            "output_tok_s_per_device": values.get("output_tok_s_per_device"),
            "predicted_performance": values,
            "constraints": [c.to_dict() for c in score.checks],
        }
        rows.append(row)
        key = (score.feasible, score.target)
        if chosen is None or key > chosen[0]:
            chosen = (key, row)
    if chosen is None:
        verdict = (
            f"no disaggregated split predicted: {per}-device replicas leave {workers} worker(s)"
            if workers < 2
            else "no disaggregated split could be predicted"
        )
        return {
            "searched": searched,
            "best": None,
            "splits": rows,
            "beats_aggregated": False,
            "verdict": verdict,
        }
    (feasible, target), row = chosen
    beats = feasible and (not best.feasible or target > best.target)
    split = f"{row['prefill_workers']}P{row['decode_workers']}D"
    if beats:
        verdict = f"disaggregated {split} beats the aggregated best on {scorer.target}"
    elif not feasible:
        verdict = f"no disaggregated split meets the SLOs (closest: {split})"
    else:
        verdict = f"aggregated serving stays ahead on {scorer.target} (best split: {split})"
    return {
        "searched": searched,
        "best": row,
        "splits": rows,
        "beats_aggregated": beats,
        "verdict": verdict,
    }
