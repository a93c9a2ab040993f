"""Choosing measured configurations to transfer utilisation from, for shapes the tables lack.

Attention head layouts and MoE model shapes are measured sparsely; a query that misses them borrows the
utilisation of the nearest measured keys (inverse-square-distance weights over the `count` nearest, in
log2 space). An exact key gets weight 1.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np

from .grid import FloatArray, GridTable, IntArray

__all__ = ["FULL_WINDOW", "attention_neighbours", "idw", "moe_neighbours"]

FULL_WINDOW = 1 << 20  # a window this long is full attention for every measured length
NEIGHBOURS = 4


def idw(dist: FloatArray, count: int = NEIGHBOURS) -> tuple[IntArray, FloatArray]:
    """Indices of the `count` smallest distances and their normalised 1/d^2 weights (an exact
    match, d = 0, takes all the weight). Ties break by index, so the choice is deterministic."""
    order = np.argsort(dist, kind="stable")[:count]
    near = dist[order]
    if near[0] == 0.0:
        return order[:1], np.ones(1)
    weights = 1.0 / near**2
    return order, weights / weights.sum()


def _nearest_only(values: FloatArray, target: float) -> np.ndarray:
    """Mask of the entries of `values` closest to `target` in log2 (all of them if one matches)."""
    gap = np.abs(np.log2(values) - math.log2(target))
    return np.asarray(gap == gap.min())


def effective_window(window: FloatArray) -> FloatArray:
    return np.where(window > 0, window, FULL_WINDOW).astype(np.float64)


def attention_neighbours(
    table: GridTable, heads: int, kv_heads: int, head_dim: int, kv_code: int, window: int
) -> tuple[IntArray, FloatArray, list[str]]:
    """Keys of an attention table to take utilisation from for one head layout, with weights.

    Candidates are narrowed to the same KV format, then the nearest window (full attention counts as
    a 2^20 window), then the same head dim (else the nearest); among those the distance is over
    log2(heads / kv_heads) (the GQA ratio) and log2(heads). Returns notes on any narrowing that could
    not match exactly.
    """
    notes: list[str] = []
    mask = np.ones(len(table.keys), dtype=bool)
    kv = table.column("kv")
    if (kv == kv_code).any():
        mask &= kv == kv_code
    else:
        notes.append("KV format not measured, utilisation of the other KV format")
    win = effective_window(table.column("window").astype(np.float64))
    target_win = float(window) if window > 0 else float(FULL_WINDOW)
    near_win = _nearest_only(np.where(mask, win, np.inf), target_win) & mask
    if not (win[near_win] == target_win).all():
        notes.append(f"window {window} not measured, nearest window {int(win[near_win][0])}")
    mask = near_win
    hd = table.column("head_dim").astype(np.float64)
    near_hd = _nearest_only(np.where(mask, hd, np.inf), float(head_dim)) & mask
    if not (hd[near_hd] == head_dim).all():
        notes.append(
            f"head_dim {head_dim} not measured, utilisation of head_dim {int(hd[near_hd][0])}"
        )
    mask = near_hd
    idx = np.flatnonzero(mask)
    h = table.column("heads")[idx].astype(np.float64)
    g = table.column("kv_heads")[idx].astype(np.float64)
    dist = np.hypot(np.log2(h / g) - math.log2(heads / kv_heads), np.log2(h) - math.log2(heads))
    order, weights = idw(dist)
    return idx[order], weights, notes


# MoE distance: (feature of hidden, inter, topk, experts, moe_tp, moe_ep; weight). The weights were
# chosen by the leave-one-shape-out cross-validation on four (system, engine) tables and checked on
# four others (median error 1-4 points lower than equal weights on hidden, inter, topk, experts,
# experts per rank and TP): matching the EP degree, the hidden size, topk, the per-rank expert count
# and width and the token-expert pairs per rank matters most.
MOE_FEATURES: tuple[tuple[Callable[[dict[str, FloatArray]], FloatArray], float], ...] = (
    (lambda c: np.log2(c["hidden"]), 2.0),
    (lambda c: np.log2(c["inter"]), 0.5),
    (lambda c: np.log2(c["topk"]), 2.0),
    (lambda c: np.log2(c["experts"]), 0.5),
    (lambda c: np.log2(c["experts"] / c["ep"]), 2.0),
    (lambda c: np.log2(c["ep"]), 4.0),
    (lambda c: np.log2(c["inter"] / c["tp"]), 2.0),
    (lambda c: np.log2(c["topk"] / c["experts"]), 1.0),
    (lambda c: np.log2(c["topk"] / c["ep"]), 2.0),
)


def moe_neighbours(
    table: GridTable, candidates: IntArray, shape: dict[str, int], tp: int, ep: int
) -> tuple[IntArray, FloatArray]:
    """Among `candidates` (keys of one dtype and distribution), the MoE keys to transfer from, by the
    weighted log2 distance of MOE_FEATURES."""
    cols = {name: table.column(name)[candidates].astype(np.float64) for name in table.key_names}
    query = {name: np.array([float(v)]) for name, v in shape.items()}
    query.update(tp=np.array([float(tp)]), ep=np.array([float(ep)]))
    d2 = np.zeros(len(candidates))
    for feature, weight in MOE_FEATURES:
        d2 += (weight * (feature(cols) - feature(query))) ** 2
    order, weights = idw(np.sqrt(d2))
    return candidates[order], weights
