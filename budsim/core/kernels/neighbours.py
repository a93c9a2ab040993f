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

__all__ = ["FULL_WINDOW", "a2a_neighbours", "attention_neighbours", "idw", "moe_neighbours"]

FULL_WINDOW = 1 << 20  # a window this long is full attention for every measured length
NEIGHBOURS = 4
MOE_NEIGHBOURS = 2


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


def _matrices(c: dict[str, FloatArray]) -> FloatArray:
    return np.where(c["gated"] > 0, 3.0, 2.0)


# MoE distance: log2 differences, equal weights, of what sets the cost of the grouped GEMMs on one
# rank once the SOL has accounted for the work (moe_sol) and the tokens are matched at equal rows
# per expert: the per-expert GEMM shape (hidden, inter/tp), how many experts the rank holds
# (experts/ep: the groups, and per-expert setup), the weights it holds (experts/ep x matrices x
# hidden x inter/tp: whether they stream from DRAM or stay in L2 between the benchmark's repeats,
# and how much of the time is fixed launch overhead), topk (routing and permutation work per
# token), the EP degree (the expert-map path and the benchmark's routing skew) and the number of
# matrices per expert (gated gate/up/down or non-gated up/down).
MOE_FEATURES: tuple[Callable[[dict[str, FloatArray]], FloatArray], ...] = (
    lambda c: np.log2(c["hidden"]),
    lambda c: np.log2(c["inter"] / c["tp"]),
    lambda c: np.log2(c["experts"] / c["ep"]),
    lambda c: np.log2(c["experts"] / c["ep"] * _matrices(c) * c["hidden"] * c["inter"] / c["tp"]),
    lambda c: np.log2(c["topk"]),
    lambda c: np.log2(c["ep"]),
    lambda c: np.log2(_matrices(c)),
)


def moe_neighbours(
    table: GridTable, candidates: IntArray, shape: dict[str, int], tp: int, ep: int
) -> tuple[IntArray, FloatArray]:
    """Among `candidates` (keys of one dtype and distribution), the MoE keys to transfer from, by the
    log2 distance over MOE_FEATURES. `shape`: hidden, inter, topk, experts, gated (0/1)."""
    cols = {name: table.column(name)[candidates].astype(np.float64) for name in table.key_names}
    query = {name: np.array([float(v)]) for name, v in shape.items()}
    query.update(tp=np.array([float(tp)]), ep=np.array([float(ep)]))
    d2 = np.zeros(len(candidates))
    for feature in MOE_FEATURES:
        d2 += (feature(cols) - feature(query)) ** 2
    # utilisation belongs to a kernel implementation: average only over keys that ran the kernel
    # of the nearest one (engines pick different MoE kernels for different models)
    same = cols["kernel"] == cols["kernel"][int(np.argmin(d2))]
    order, weights = idw(np.sqrt(d2[same]), MOE_NEIGHBOURS)
    return candidates[same][order], weights


def a2a_neighbours(
    table: GridTable, candidates: IntArray, hidden: int, topk: int, experts: int, ep: int
) -> tuple[IntArray, FloatArray]:
    """Among `candidates` (DeepEP keys of one kernel and phase), the keys to transfer from: the
    MOE_NEIGHBOURS nearest by log2 distance over hidden, topk, experts and EP (equal weights)."""
    d2 = np.zeros(len(candidates))
    for name, value in (("hidden", hidden), ("topk", topk), ("experts", experts), ("ep", ep)):
        d2 += (np.log2(table.column(name)[candidates].astype(np.float64)) - math.log2(value)) ** 2
    order, weights = idw(np.sqrt(d2), MOE_NEIGHBOURS)
    return candidates[order], weights
