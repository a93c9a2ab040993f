"""Does disaggregated serving beat the aggregated best? Prefill and decode pools over its devices.

`compare_disaggregated` takes a finished search's best configuration and keeps its engine and
formats for both pools. Each pool's workers take a layout of their own: the best's replica layout,
and, where that replica is plain tensor parallelism, every power-of-two TP up to a node (a prompt
wants more TP than a decode batch does, or less). Every P prefill x D decode split of the device
budget in those layouts is predicted (budsim.core.disagg) and scored by the search's own scorer
(objective and SLOs); the answer is the best split and whether it beats the aggregated best on
the search's target.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..deployment import Deployment, Workload
from ..disagg import DisaggDeployment, predict_disagg
from ..errors import BudsimError
from ..hardware import get_device
from ..speculative import NO_SPECULATION
from .ga import Candidate
from .scoring import Scorer

__all__ = ["compare_disaggregated", "split_label"]


def split_label(row: Mapping[str, Any]) -> str:
    """The split's label, "2P TP2 + 1D TP4" ("2P1D" for a run saved before the pools had layouts
    of their own)."""
    p, d = row["prefill_workers"], row["decode_workers"]
    tp_p, tp_d = row.get("prefill_tp"), row.get("decode_tp")
    if tp_p is None or tp_d is None:
        return f"{p}P{d}D"
    return f"{p}P TP{tp_p} + {d}D TP{tp_d}"


def _pool_layouts(replica: Deployment, devices: int) -> list[Deployment]:
    """The layouts a pool's workers may take: the replica's own, and for plain tensor parallelism
    every power-of-two TP that fits a node and leaves a device for the other pool."""
    layouts = [replica]
    if replica.dp == 1 and replica.ep == 1 and replica.pp == 1:
        per_node = get_device(replica.hardware).devices_per_node
        tp = 1
        while tp <= min(per_node, devices - 1):
            if tp != replica.tp:
                layouts.append(replica.with_(tp=tp))
            tp *= 2
    return sorted(layouts, key=lambda dep: dep.tp)


def compare_disaggregated(
    best: Candidate, scorer: Scorer, devices: int, workload: Workload
) -> dict[str, Any]:
    """The prefill/decode splits of `devices` in the pools' layouts, the best, and the verdict."""
    replica = best.deployment.with_(replicas=1)
    layouts = _pool_layouts(replica, devices)
    tps = "/".join(f"TP{dep.tp}" for dep in layouts)
    layout = tps + (f"·DP{replica.dp}" if replica.dp > 1 else "")
    searched = (
        f"{replica.engine} {replica.weight_dtype} pools of {layout} workers, P prefill + D "
        f"decode over {devices} devices"
    )
    rows: list[dict[str, Any]] = []
    chosen: tuple[tuple[bool, float], dict[str, Any]] | None = None  # (feasible, target), row
    for prefill_layout in layouts:
        for decode_layout in layouts:
            a, b = prefill_layout.devices_per_replica, decode_layout.devices_per_replica
            for p in range(1, (devices - b) // a + 1):
                d = (devices - p * a) // b  # the rest of the budget decodes
                split = {
                    "prefill_workers": p,
                    "decode_workers": d,
                    "prefill_tp": prefill_layout.tp,
                    "decode_tp": decode_layout.tp,
                }
                dd = DisaggDeployment(
                    prefill_layout.with_(replicas=p, **NO_SPECULATION),
                    decode_layout.with_(replicas=d),
                )
                try:
                    pred, _ = predict_disagg(dd, workload)
                except BudsimError as exc:
                    rows.append({**split, "error": str(exc)})
                    continue
                values = pred.to_dict()
                score = scorer.score(dd.decode, values)
                row = {
                    **split,
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
            f"no disaggregated split predicted: {devices} device(s) cannot hold two pools"
            if not rows
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
    label = split_label(row)
    if beats:
        verdict = f"disaggregated {label} beats the aggregated best on {scorer.target}"
    elif not feasible:
        verdict = f"no disaggregated split meets the SLOs (closest: {label})"
    else:
        verdict = f"aggregated serving stays ahead on {scorer.target} (best split: {label})"
    return {
        "searched": searched,
        "best": row,
        "splits": rows,
        "beats_aggregated": beats,
        "verdict": verdict,
    }
