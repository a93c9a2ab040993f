"""Shared CLI output helpers: JSON to stdout, rich tables otherwise."""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import typer

from budsim.core.report import fmt


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def echo_json(data: Any) -> None:
    typer.echo(json.dumps(_clean(data), indent=2, default=str))


def print_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    from rich import box
    from rich.console import Console
    from rich.table import Table

    # Narrow terminals (80 columns in tmux) fold long values instead of cutting them off.
    cells = [[fmt(v) for v in row] for row in rows]
    first = min(28, max([len(columns[0]), *(len(r[0]) for r in cells)]))
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(
            col,
            overflow="fold",
            justify="left" if i == 0 else "right",
            min_width=first if i == 0 else None,
        )
    for row in cells:
        table.add_row(*row)
    Console().print(table)
