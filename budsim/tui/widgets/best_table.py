"""The best configurations found so far: a plain text table, cheap to redraw every generation.

(A DataTable re-renders every cell after each update, which is most of the UI thread's work during a
search; this widget draws the rows as styled text and drops trailing columns that do not fit.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.text import Text
from textual.widgets import Static

from ..views import OBJECTIVE_LABELS, fmt, kv_text, layout_text, weights_text

COLUMNS: tuple[tuple[str, str], ...] = (  # (key, header); "second" is the second objective
    ("n", "#"),
    ("engine", "engine"),
    ("layout", "layout"),
    ("weights", "weights"),
    ("kv", "KV"),
    ("seqs", "seqs"),
    ("per_device", "tok/s/dev"),
    ("second", "second"),
    ("usd", "$/1M"),
    ("tokens", "batch tok"),
    ("util", "mem"),
)
RIGHT = frozenset({"seqs", "per_device", "second", "usd", "tokens", "util"})


def leader_cells(i: int, m: Mapping[str, Any], second: str) -> dict[str, str]:
    cfg = m.get("configuration") or {}
    obj = m.get("objectives") or {}
    return {
        "n": str(i) if m.get("feasible") else f"{i}✗",
        "engine": str(cfg.get("engine")),
        "layout": layout_text(cfg),
        "weights": weights_text(cfg),
        "kv": kv_text(cfg),
        "seqs": fmt(cfg.get("max_num_seqs")),
        "per_device": fmt(obj.get("output_tok_s_per_device")),
        "second": fmt(obj.get(second)),
        "usd": fmt(obj.get("usd_per_1m_output_tokens"), 3),
        "tokens": fmt(cfg.get("max_num_batched_tokens")),
        "util": fmt(cfg.get("gpu_memory_utilization")),
    }


def table_text(rows: Sequence[dict[str, str]], second: str, width: int) -> Text:
    headers = {
        k: (OBJECTIVE_LABELS.get(second, second) if k == "second" else h) for k, h in COLUMNS
    }
    widths = {k: max([len(headers[k])] + [len(r[k]) for r in rows]) for k, _ in COLUMNS}
    keys: list[str] = []
    used = 0
    for key, _ in COLUMNS:
        need = widths[key] + (2 if keys else 0)
        if keys and used + need > width:
            break
        keys.append(key)
        used += need

    def cell(key: str, value: str) -> str:
        return value.rjust(widths[key]) if key in RIGHT else value.ljust(widths[key])

    text = Text(no_wrap=True, overflow="crop")
    text.append("  ".join(cell(k, headers[k]) for k in keys), style="bold")
    for r in rows:
        text.append("\n")
        line = "  ".join(cell(k, r[k]) for k in keys)
        text.append(line, style="red" if r["n"].endswith("✗") else "")
    return text


class BestTable(Static):
    DEFAULT_CSS = """
    BestTable { height: 1fr; min-height: 4; }
    """

    def __init__(self, *, id: str | None = None) -> None:  # noqa: A002
        super().__init__("", id=id)
        self._rows: list[dict[str, str]] = []
        self._second = "tok_s_per_user"

    def show(self, leaders: Sequence[Mapping[str, Any]], second: str) -> None:
        self._rows = [leader_cells(i, m, second) for i, m in enumerate(leaders, 1)]
        self._second = second
        self.update(self._text(), layout=False)

    def _text(self) -> Text:
        if not self._rows:
            return Text("waiting for the first generation…", style="dim")
        return table_text(self._rows, self._second, max(20, self.size.width or 78))

    def on_resize(self) -> None:
        self.update(self._text(), layout=False)

    @property
    def row_count(self) -> int:
        return len(self._rows)
