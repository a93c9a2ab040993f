"""Measured kernel latencies on a grid, and the numerics that read between the grid points.

A `GridTable` holds one kernel family of one (system, engine): a table of keys (one row per measured
configuration, e.g. an attention head layout) and, per key, latencies on the Cartesian product of a few
size axes (e.g. batch x sequence length). Cells that were not measured are NaN. It is built from raw rows
(`GridTable.from_rows`), so the same code serves the shipped artefact and the cross-validation, which
rebuilds tables from subsets of the rows.

Everything here works in log coordinates: sizes enter as log(size) and values as log(latency) or
log(utilisation). numpy only.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

__all__ = [
    "GridTable",
    "fill_holes",
    "monotone_envelope",
    "multilinear",
    "LatencyGrid",
    "roofline_lookup",
]


@dataclass(frozen=True, eq=False)
class GridTable:
    """Latencies (ms) of one kernel family: `latency_ms[key, i0, i1, ...]` at `axes[0][i0]`, ...

    `keys[key]` holds the integer key columns named by `key_names` (string-valued columns are codes
    into the family's vocabulary, kept by the caller). Axis values are positive and ascending.
    """

    key_names: tuple[str, ...]
    keys: IntArray  # (n_keys, len(key_names))
    axis_names: tuple[str, ...]
    axes: tuple[IntArray, ...]
    latency_ms: FloatArray  # (n_keys, *map(len, axes)), NaN where not measured

    def __post_init__(self) -> None:
        shape = (len(self.keys), *(len(a) for a in self.axes))
        if self.latency_ms.shape != shape:
            raise ValueError(f"latency grid has shape {self.latency_ms.shape}, expected {shape}")
        if self.keys.shape[1:] != (len(self.key_names),):
            raise ValueError("key table does not match key_names")

    @classmethod
    def from_rows(
        cls,
        key_cols: Mapping[str, ArrayLike],
        axis_cols: Mapping[str, ArrayLike],
        latency_ms: ArrayLike,
    ) -> GridTable:
        """Grid the raw rows. Rows that repeat a cell keep the fastest (repeats differ by noise or a
        first-run outlier, and an engine that has several kernels for a shape runs the fastest)."""
        lat = np.asarray(latency_ms, dtype=np.float64)
        n = lat.shape[0]
        key_names = tuple(key_cols)
        if key_names:
            key_mat = np.stack([np.asarray(key_cols[k], dtype=np.int64) for k in key_names], axis=1)
            keys, key_idx = np.unique(key_mat, axis=0, return_inverse=True)
            key_idx = key_idx.reshape(-1)
        else:
            keys, key_idx = np.zeros((1, 0), dtype=np.int64), np.zeros(n, dtype=np.int64)
        axes: list[IntArray] = []
        cell: list[IntArray] = [key_idx]
        for name in axis_cols:
            values = np.asarray(axis_cols[name], dtype=np.int64)
            if values.shape != (n,) or (values <= 0).any():
                raise ValueError(f"axis {name!r} needs one positive value per row")
            uniq = np.unique(values)
            axes.append(uniq)
            cell.append(np.searchsorted(uniq, values))
        grid = np.full((len(keys), *(len(a) for a in axes)), np.nan)
        np.fmin.at(grid, tuple(cell), lat)
        return cls(key_names, keys.astype(np.int64), tuple(axis_cols), tuple(axes), grid)

    # ----------------------------------------------------------------------------- selection

    def column(self, name: str) -> IntArray:
        return self.keys[:, self.key_names.index(name)]

    def select(self, mask: NDArray[np.bool_]) -> GridTable:
        """The table restricted to the keys where `mask` is true."""
        return GridTable(
            self.key_names, self.keys[mask], self.axis_names, self.axes, self.latency_ms[mask]
        )

    def masked(self, cells: NDArray[np.bool_]) -> GridTable:
        """The table with the cells where `cells` (broadcast to the grid) is true removed (NaN)."""
        grid = np.where(np.broadcast_to(cells, self.latency_ms.shape), np.nan, self.latency_ms)
        return GridTable(self.key_names, self.keys, self.axis_names, self.axes, grid)

    def compact(self) -> GridTable:
        """Drop keys with no measured cell and axis values no key measured."""
        measured = ~np.isnan(self.latency_ms)
        keep = np.asarray(measured.reshape(len(self.keys), -1).any(axis=1), dtype=bool)
        table = self.select(keep)
        grid = table.latency_ms
        axes = list(table.axes)
        for i in range(len(axes)):
            other = tuple(j for j in range(grid.ndim) if j != i + 1)
            used = (~np.isnan(grid)).any(axis=other)
            grid = np.compress(used, grid, axis=i + 1)
            axes[i] = axes[i][used]
        return GridTable(table.key_names, table.keys, table.axis_names, tuple(axes), grid)

    @property
    def n_measured(self) -> int:
        return int((~np.isnan(self.latency_ms)).sum())

    # ----------------------------------------------------------------------------- storage

    def to_arrays(self, prefix: str) -> dict[str, NDArray[np.generic]]:
        """Plain arrays for an npz (latency as float32, NaN for cells not measured)."""
        out: dict[str, NDArray[np.generic]] = {
            f"{prefix}.keys": self.keys.astype(np.int64),
            f"{prefix}.latency_ms": self.latency_ms.astype(np.float32),
        }
        for name, axis in zip(self.axis_names, self.axes, strict=True):
            out[f"{prefix}.axis.{name}"] = axis.astype(np.int64)
        return out

    @classmethod
    def from_arrays(
        cls,
        prefix: str,
        arrays: Mapping[str, NDArray[np.generic]],
        key_names: Sequence[str],
        axis_names: Sequence[str],
    ) -> GridTable:
        return cls(
            tuple(key_names),
            np.asarray(arrays[f"{prefix}.keys"], dtype=np.int64).reshape(-1, len(key_names)),
            tuple(axis_names),
            tuple(np.asarray(arrays[f"{prefix}.axis.{n}"], dtype=np.int64) for n in axis_names),
            np.asarray(arrays[f"{prefix}.latency_ms"], dtype=np.float64),
        )


# ------------------------------------------------------------------------------------ numerics


def monotone_envelope(values: FloatArray, axes: Sequence[int]) -> FloatArray:
    """The largest array <= `values` that is non-decreasing along each of `axes` (NaN kept as NaN).

    Each entry becomes the minimum over itself and every entry at larger indices along the axes,
    so a slow outlier (a first-run JIT compile, a poor tile choice) is lowered to what a larger
    size achieved; an engine can always pad up to the larger size.
    """
    holes = np.isnan(values)
    out = np.where(holes, np.inf, values)
    for axis in axes:
        flipped = np.flip(out, axis=axis)
        out = np.flip(np.minimum.accumulate(flipped, axis=axis), axis=axis)
    out[holes] = np.nan
    return out


def _neighbours(valid: NDArray[np.bool_]) -> tuple[IntArray, IntArray]:
    """Per position along the last axis: the index of the nearest valid entry at or before it
    (-1 if none) and at or after it (length if none)."""
    length = valid.shape[-1]
    idx = np.arange(length)
    left = np.maximum.accumulate(np.where(valid, idx, -1), axis=-1)
    right = np.flip(
        np.minimum.accumulate(np.flip(np.where(valid, idx, length), axis=-1), axis=-1), axis=-1
    )
    return left, right


def _axis_estimates(
    values: FloatArray, coord: FloatArray, axis: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Estimates for the holes of `values` from the measured entries along one axis.

    Returns (interior, edge, edge_distance): `interior` is the linear interpolation (in `coord`)
    between the nearest measured entries on both sides, NaN where a side is missing; `edge` holds
    the nearest measured entry where only one side exists, with its distance in `coord`.
    """
    moved = np.moveaxis(values, axis, -1)
    valid = ~np.isnan(moved)
    left, right = _neighbours(valid)
    length = moved.shape[-1]
    interior = np.full(moved.shape, np.nan)
    edge = np.full(moved.shape, np.nan)
    dist = np.full(moved.shape, np.inf)
    # Only the holes get estimates, so they are worked out at the holes alone (a filled table
    # is mostly measured cells; each hole's arithmetic is the same as over the whole grid).
    at = np.nonzero(~valid)
    near_left, near_right = left[at], right[at]
    has_left, has_right = near_left >= 0, near_right < length
    left_c, right_c = np.clip(near_left, 0, length - 1), np.clip(near_right, 0, length - 1)
    v_left, v_right = moved[(*at[:-1], left_c)], moved[(*at[:-1], right_c)]
    x, x_left, x_right = coord[at[-1]], coord[left_c], coord[right_c]
    both = has_left & has_right
    span = np.where(both, x_right - x_left, 1.0)
    t = np.where(both, (x - x_left) / span, 0.0)
    interior[at] = np.where(both, v_left + t * (v_right - v_left), np.nan)
    only_left = has_left & ~has_right
    only_right = has_right & ~has_left
    edge[at] = np.where(only_left, v_left, np.where(only_right, v_right, np.nan))
    dist[at] = np.where(only_left, x - x_left, np.where(only_right, x_right - x, np.inf))
    return (
        np.moveaxis(interior, -1, axis),
        np.moveaxis(edge, -1, axis),
        np.moveaxis(dist, -1, axis),
    )


def fill_holes(values: FloatArray, coords: Sequence[FloatArray]) -> FloatArray:
    """Fill the NaN cells of a grid whose trailing axes have log coordinates `coords`.

    Leading axes (before the trailing len(coords)) are independent tables. A hole bracketed along
    some axis gets the mean of the linear interpolations along every axis that brackets it; a hole
    that no axis brackets takes the nearest measured value along the closest axis (which, on a
    utilisation grid, holds utilisation at the edge of what was measured). Repeats until every table
    with at least one measured cell is full.
    """
    out = np.array(values, dtype=np.float64, copy=True)
    first = out.ndim - len(coords)
    while True:
        holes = np.isnan(out)
        if not holes.any():
            return out
        total = np.zeros_like(out)
        count = np.zeros_like(out)
        best_edge = np.full_like(out, np.nan)
        best_dist = np.full_like(out, np.inf)
        for i, coord in enumerate(coords):
            interior, edge, dist = _axis_estimates(out, np.asarray(coord, np.float64), first + i)
            ok = ~np.isnan(interior)
            total[ok] += interior[ok]
            count[ok] += 1
            closer = dist < best_dist
            best_edge = np.where(closer, edge, best_edge)
            best_dist = np.where(closer, dist, best_dist)
        if (count > 0).any():
            fill = count > 0
            out[fill] = total[fill] / count[fill]
            continue
        fill = holes & ~np.isnan(best_edge)
        if not fill.any():
            return out  # tables without any measured cell stay NaN
        out[fill] = best_edge[fill]


def _bracket(axis_log: FloatArray, q_log: FloatArray) -> tuple[IntArray, FloatArray]:
    """Lower node index and weight of the upper node for each query, clamped to the axis range."""
    q = np.minimum(np.maximum(q_log, axis_log[0]), axis_log[-1])
    lo = np.minimum(np.searchsorted(axis_log, q, side="right") - 1, len(axis_log) - 2)
    t = (q - axis_log[lo]) / (axis_log[lo + 1] - axis_log[lo])
    return lo, t


def multilinear(
    grid: FloatArray, axes_log: Sequence[FloatArray], queries_log: Sequence[ArrayLike]
) -> FloatArray:
    """Multilinear interpolation over the trailing len(axes_log) axes of `grid`, clamped at the
    edges. Result shape: grid's leading shape + the broadcast shape of the queries. A query exactly
    on a node returns that node's value.

    Written as nested lerps, lo + t * (hi - lo), one axis at a time: equal node values give exactly
    that value, and the result never decreases along an axis whose node values do not."""
    queries = np.broadcast_arrays(*(np.asarray(q, dtype=np.float64) for q in queries_log))
    d = len(axes_log)
    brackets: list[tuple[IntArray, FloatArray | None]] = []
    for axis, q in zip(axes_log, queries, strict=True):
        if len(axis) == 1:
            brackets.append((np.zeros(q.shape, dtype=np.int64), None))
        else:
            brackets.append(_bracket(np.asarray(axis, np.float64), q))
    # corner values: one array per corner of the axes that have two nodes
    corners: dict[tuple[int, ...], FloatArray] = {}
    for corner in product((0, 1), repeat=d):
        if any(up and b[1] is None for up, b in zip(corner, brackets, strict=True)):
            continue
        index = tuple(lo + up for up, (lo, _) in zip(corner, brackets, strict=True))
        where: tuple[Any, ...] = (Ellipsis, *index)
        corners[corner] = grid[where]
    for dim in reversed(range(d)):  # fold the last axis first
        weight = brackets[dim][1]
        folded: dict[tuple[int, ...], FloatArray] = {}
        for corner, value in corners.items():
            if corner[dim] == 1:
                continue
            head = corner[:dim]
            if weight is None:
                folded[head] = value
            else:
                upper = corners[(*head, 1, *corner[dim + 1 :])]
                folded[head] = value + weight * (upper - value)
        corners = folded
    return corners[()]


@dataclass(frozen=True, eq=False)
class LatencyGrid:
    """Latency of one query configuration on the target device at the grid nodes (log s), ready to
    be read at any sizes; see `roofline_lookup`."""

    nodes: tuple[FloatArray, ...]
    nodes_log: tuple[FloatArray, ...]
    log_latency: FloatArray
    offset: float = 0.0  # a fixed time (s) added to every answer (MoE launch overhead)

    @classmethod
    def build(
        cls,
        nodes: Sequence[FloatArray],
        node_log_util: FloatArray,
        sol: Callable[..., FloatArray],
        offset: float = 0.0,
    ) -> LatencyGrid:
        mesh = np.meshgrid(*nodes, indexing="ij")
        log_lat = monotone_envelope(np.log(sol(*mesh)) - node_log_util, range(len(nodes)))
        return cls(tuple(nodes), tuple(np.log(n) for n in nodes), log_lat, offset)

    def __call__(self, sol: Callable[..., FloatArray], queries: Sequence[FloatArray]) -> FloatArray:
        clamped = [np.clip(q, n[0], n[-1]) for q, n in zip(queries, self.nodes, strict=True)]
        logs = [np.log(c) for c in clamped]
        if len(self.nodes) == 1:
            inside = np.interp(logs[0], self.nodes_log[0], self.log_latency)
        else:
            inside = multilinear(self.log_latency, self.nodes_log, logs)
        # (outside the nodes only) hold utilisation: scale by the roofline from the edge to the query
        if all(np.array_equal(c, q) for c, q in zip(clamped, queries, strict=True)):
            scaled = np.exp(inside)
        else:
            scaled = np.exp(inside + (np.log(sol(*queries)) - np.log(sol(*clamped))))
        return scaled + self.offset if self.offset else scaled


def roofline_lookup(
    nodes: Sequence[FloatArray],
    node_log_util: FloatArray,
    sol: Callable[..., FloatArray],
    queries: Sequence[FloatArray],
) -> FloatArray:
    """Latency (s) at `queries` from a utilisation grid over `nodes` (one positive array per size axis).

    `sol(*coords)` is the target device's speed-of-light time at broadcastable coordinates. At the
    nodes, latency = sol / util; it is made non-decreasing along every size axis, then interpolated in
    log-log between nodes (which keeps it monotone). Outside the node range utilisation is held at
    the edge, so the latency follows the roofline: lat(q) = lat(edge) * sol(q) / sol(edge).
    """
    return LatencyGrid.build(nodes, node_log_util, sol)(sol, queries)
