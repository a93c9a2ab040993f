"""The measured data folder for tests that read it: skipped where it is absent (set BUDSIM_DATA)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from budsim.core.errors import BudsimError
from budsim.learn import datasets


def data_or_skip() -> Path:
    """The measured data folder, or skip the test."""
    try:
        return datasets.data_dir()
    except BudsimError:
        pytest.skip("measured data directory not available (set BUDSIM_DATA)")


def lib_rows() -> Any:
    """LLM-Inference-Bench's rows as the loader reads them."""
    return datasets.load_measurements(data_or_skip(), ("llm_inference_bench",))


def one_row(df: Any, row_id: str) -> dict[str, Any]:
    """The one row of `df` with this id, as a dict."""
    sel = df[df.row_id == row_id]
    assert len(sel) == 1
    return dict(sel.iloc[0])
