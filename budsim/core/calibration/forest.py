"""Evaluate an XGBoost tree ensemble from its JSON model file with numpy alone.

Loading reads JSON (never pickle, never code) and checks its shape. Prediction does not import
xgboost: each tree is laid out as a complete binary tree of the ensemble's depth, so one case is a
handful of vectorised gathers over all trees at once (a few tens of microseconds), where xgboost's
own single-row predict costs a few hundred; only the nodes on each tree's path are compared.

Only what budsim trains is supported: gbtree boosters with numerical splits (no categorical
splits, no linear boosters, one output per tree).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

import numpy as np


class ForestError(ValueError):
    """The JSON is not an XGBoost model this evaluator can run."""


def _floats(text: str) -> list[float]:
    """XGBoost writes base_score as "5E-1" or, for several targets, "[1E-1,2E-1]"."""
    text = text.strip()
    if text.startswith("["):
        return [float(v) for v in text.strip("[]").split(",") if v.strip()]
    return [float(text)]


class Forest:
    """A tree ensemble with `n_outputs` outputs over `n_features` inputs."""

    def __init__(self, model: Mapping[str, Any]) -> None:
        try:
            learner = model["learner"]
            params = learner["learner_model_param"]
            booster = learner["gradient_booster"]
            if booster.get("name") != "gbtree":
                raise ForestError(f"unsupported booster {booster.get('name')!r}")
            trees = booster["model"]["trees"]
            info = [int(v) for v in booster["model"]["tree_info"]]
            n_features = int(params["num_feature"])
            n_targets = max(1, int(params.get("num_target", "1") or 1))
            base = _floats(str(params["base_score"]))
        except (KeyError, TypeError, ValueError) as exc:
            if isinstance(exc, ForestError):
                raise
            raise ForestError(f"not an XGBoost JSON model ({exc})") from None
        if len(base) == 1 and n_targets > 1:
            base = base * n_targets
        if len(base) != n_targets or len(info) != len(trees):
            raise ForestError("inconsistent model: base_score or tree_info length")
        if any(t < 0 or t >= n_targets for t in info):
            raise ForestError("tree_info refers to an output the model does not have")
        self.n_features = n_features
        self.n_outputs = n_targets
        self.base = np.asarray(base, dtype=np.float64)
        self.objective = str(learner.get("objective", {}).get("name", ""))
        self._parsed = self._parse(trees)
        self._tree_info = info
        self._build()

    @classmethod
    def stack(cls, forests: list[Forest]) -> Forest:
        """One ensemble whose outputs are the outputs of `forests`, in order (one evaluation)."""
        if not forests:
            raise ForestError("nothing to stack")
        n_features = forests[0].n_features
        if any(f.n_features != n_features for f in forests):
            raise ForestError("stacked models must share their features")
        new = cls.__new__(cls)
        new.n_features = n_features
        new.n_outputs = sum(f.n_outputs for f in forests)
        new.base = np.concatenate([f.base for f in forests])
        new.objective = "stack"
        new._parsed = [t for f in forests for t in f._parsed]
        info: list[int] = []
        offset = 0
        for f in forests:
            info.extend(i + offset for i in f._tree_info)
            offset += f.n_outputs
        new._tree_info = info
        new._build()
        return new

    # ------------------------------------------------------------------ layout
    def _parse(self, trees: list[Mapping[str, Any]]) -> list[tuple[list[Any], ...]]:
        parsed: list[tuple[list[Any], ...]] = []
        for tree in trees:
            left = [int(v) for v in tree["left_children"]]
            right = [int(v) for v in tree["right_children"]]
            feat = [int(v) for v in tree["split_indices"]]
            cond = [float(v) for v in tree["split_conditions"]]
            dleft = [int(v) for v in tree["default_left"]]
            if tree.get("categories_nodes"):
                raise ForestError("categorical splits are not supported")
            n = len(left)
            if not (n == len(right) == len(feat) == len(cond) == len(dleft)) or n == 0:
                raise ForestError("inconsistent tree arrays")
            # depth of every node (parents come before children in XGBoost's numbering)
            node_depth = [0] * n
            for i in range(n):
                for child in (left[i], right[i]):
                    if child >= 0:
                        if child >= n or child <= i:
                            raise ForestError("malformed tree (child index)")
                        node_depth[child] = node_depth[i] + 1
                if feat[i] >= self.n_features and left[i] >= 0:
                    raise ForestError("split on a feature the model does not have")
            parsed.append((left, right, feat, cond, dleft, node_depth))
        return parsed

    def _build(self) -> None:
        parsed = self._parsed
        info = self._tree_info
        depth = max((max(t[5]) for t in parsed), default=0)
        self.depth = depth
        n_trees = len(parsed)
        inner = (1 << depth) - 1  # internal slots per complete tree
        leaves = 1 << depth
        width = max(inner, 1)
        feat_a = np.zeros((max(n_trees, 1), width), dtype=np.intp)
        thr_a = np.full((max(n_trees, 1), width), np.inf, dtype=np.float32)
        dl_a = np.ones((max(n_trees, 1), width), dtype=bool)
        leaf_a = np.zeros((max(n_trees, 1), leaves), dtype=np.float64)
        # collect in plain lists and assign once: per-element numpy writes dominate loading
        at: list[int] = []
        f_vals: list[int] = []
        t_vals: list[float] = []
        d_vals: list[bool] = []
        leaf_at: list[tuple[int, int, float]] = []  # (first flat slot, span, value)
        for t, (left, right, feat, cond, dleft, _) in enumerate(parsed):
            # walk (original node, heap slot, level)
            stack = [(0, 0, 0)]
            while stack:
                node, slot, level = stack.pop()
                if left[node] < 0:  # leaf: fill every leaf slot below this heap position
                    span = 1 << (depth - level)
                    leaf_at.append(
                        (t * leaves + (slot - ((1 << level) - 1)) * span, span, cond[node])
                    )
                    # internal slots below keep threshold +inf: values always go left, any is fine
                    continue
                at.append(t * width + slot)
                f_vals.append(feat[node])
                t_vals.append(cond[node])
                d_vals.append(bool(dleft[node]))
                stack.append((left[node], 2 * slot + 1, level + 1))
                stack.append((right[node], 2 * slot + 2, level + 1))
        if leaf_at and n_trees:
            # each tree's leaves tile its `leaves` slots exactly, so in slot order they are runs
            leaf_at.sort()
            _, spans, values = zip(*leaf_at, strict=True)
            leaf_a[:n_trees] = np.repeat(values, spans).reshape(n_trees, leaves)
        if at:
            idx = np.asarray(at, dtype=np.intp)
            feat_a.reshape(-1)[idx] = f_vals
            thr_a.reshape(-1)[idx] = np.asarray(t_vals, dtype=np.float32)
            dl_a.reshape(-1)[idx] = d_vals
        self._n_trees = n_trees
        self._inner = inner
        self._feat = feat_a[:n_trees].reshape(-1)
        self._thr = thr_a[:n_trees].reshape(-1)
        self._dl = dl_a[:n_trees].reshape(-1)
        self._leaf = leaf_a[:n_trees].reshape(-1)
        self._row_inner = np.arange(n_trees, dtype=np.intp) * inner
        self._row_leaf = np.arange(n_trees, dtype=np.intp) * leaves
        self._info = np.asarray(info, dtype=np.intp)

    # ------------------------------------------------------------------ predict
    def predict_one(self, x: np.ndarray) -> np.ndarray:
        """Outputs (n_outputs,) for one feature vector."""
        if self._n_trees == 0:
            return self.base.copy()
        xs = np.asarray(x, dtype=np.float32)
        missing = bool(np.isnan(xs).any())
        feat, thr, dl = self._feat, self._thr, self._dl
        # follow each tree's path only (depth comparisons per tree, not one per node)
        slot = self._row_inner.copy()  # flat index of each tree's current node
        pos = np.zeros(self._n_trees, dtype=np.intp)
        for _ in range(self.depth):
            xv = xs[feat[slot]]
            right = xv >= thr[slot]
            if missing:  # missing values take the default direction of each split
                nan = np.isnan(xv)
                right[nan] = ~dl[slot[nan]]
            step = 1 + right
            pos = 2 * pos + step
            slot = self._row_inner + pos
        vals = self._leaf[self._row_leaf + pos - self._inner]
        return self.base + np.bincount(self._info, weights=vals, minlength=self.n_outputs)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Outputs (n, n_outputs) for a matrix of feature vectors, all rows and trees at once."""
        X = np.atleast_2d(np.asarray(X, dtype=np.float32))
        n = len(X)
        if n == 0:
            return np.zeros((0, self.n_outputs))
        if self._n_trees == 0:
            return np.tile(self.base, (n, 1))
        rows = np.arange(n, dtype=np.intp)[:, None]
        missing = bool(np.isnan(X).any())
        pos = np.zeros((n, self._n_trees), dtype=np.intp)
        slot = np.broadcast_to(self._row_inner, pos.shape)
        for _ in range(self.depth):
            xv = X[rows, self._feat[slot]]
            right = xv >= self._thr[slot]
            if missing:
                nan = np.isnan(xv)
                right[nan] = ~self._dl[slot[nan]]
            pos = 2 * pos + 1 + right
            slot = self._row_inner + pos
        vals = self._leaf[self._row_leaf + pos - self._inner]
        return self.base + vals @ self._output_matrix()

    def _output_matrix(self) -> np.ndarray:
        """(n_trees, n_outputs) 0/1: which output each tree adds to."""
        cached = getattr(self, "_onehot", None)
        if cached is None:
            cached = np.zeros((self._n_trees, self.n_outputs))
            cached[np.arange(self._n_trees), self._info] = 1.0
            self._onehot = cached
        return cached


def load_forest(path: Any) -> Forest:
    """Read an XGBoost JSON model file into a Forest (ForestError / OSError on failure)."""
    with open(path, encoding="utf-8") as handle:
        try:
            data = json.load(handle)
        except json.JSONDecodeError as exc:
            raise ForestError(f"invalid JSON ({exc.msg} at line {exc.lineno})") from None
    if not isinstance(data, dict):
        raise ForestError("not an XGBoost JSON model")
    return Forest(data)
