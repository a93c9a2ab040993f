"""Shared by the benchmarks that fit roofline efficiencies to measured rows (gaudi_accuracy.py,
llamacpp_accuracy.py): predictions with patched efficiencies, and the grouped cross-validated
choice of a grid point.

The procedure (commit 06b4170): every point of a fixed, absolute grid predicts every row once;
within each fold of a GroupKFold over the model architecture groups (so no fold sees its own
architecture) the point with the lowest training median APE is chosen (ties: the one nearest a
fixed reference) and scored on the held-out fold.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def forget() -> None:
    """Drop every cache that holds prices made with other efficiencies."""
    from budsim.core import predict, steptime

    steptime._roofline.cache_clear()
    steptime._PRICES.clear()
    predict._STEP_MODELS.clear()
    predict._step_model_for.cache_clear()
    predict.resolve.cache_clear()
    predict.clear_simulation_cache()


def predict_with(rows: list[dict[str, Any]], table: dict[Any, Any], etas: Mapping[Any, Any]) -> Any:
    """Whole-run latency predictions (np.ndarray, NaN where unanswered) with `table[key]` set to
    each of `etas` (`roofline._ETA` or `roofline._ENGINE_ETA`), restored afterwards."""
    import numpy as np

    from budsim.learn.evaluate import join_predictions

    saved = {key: table[key] for key in etas}
    table.update(etas)
    forget()
    try:
        j = join_predictions(rows)
    finally:
        table.update(saved)
        forget()
    e2e = j[j.metric == "e2e_s"].set_index("row_id").predicted
    return np.asarray([float(e2e.get(r["row_id"], np.nan)) for r in rows], dtype=float)


def ape(pred: Any, measured: Any) -> Any:
    import numpy as np

    return np.abs(pred / measured - 1.0)


def best(apes: Any, mask: Any, nearness: Any) -> int:
    """The grid point (row of `apes`, grid point x row) with the lowest median APE over the rows in
    `mask`; ties go to the smallest `nearness`."""
    import numpy as np

    score = np.nanmedian(np.where(np.isfinite(apes[:, mask]), apes[:, mask], np.inf), axis=1)
    return int(np.lexsort((nearness, np.round(score, 6)))[0])


def cv_choices(apes: Any, groups: Any, nearness: Any) -> list[tuple[Any, int]]:
    """(held-out row indices, chosen grid point) per fold of a GroupKFold with one fold per group
    of `groups`."""
    import numpy as np
    from sklearn.model_selection import GroupKFold

    n = apes.shape[1]
    out = []
    for train, test in GroupKFold(n_splits=len(set(groups))).split(np.zeros(n), groups=groups):
        out.append((test, best(apes, np.isin(np.arange(n), train), nearness)))
    return out
