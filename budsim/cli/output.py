"""Shared CLI output helpers: JSON to stdout, rich tables otherwise."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
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

    # Narrow terminals (80 columns in tmux) fold long values instead of cutting them off. Rich
    # crops the right-hand columns of a table it cannot fit, so the widths are set here: at most
    # the natural ones; when those do not fit, headers and multi-word cells break between words
    # and the first column (names) folds into what the others leave.
    cells = [[fmt(v) for v in row] for row in rows]
    console = Console()

    def longest_word(text: str) -> int:
        return max((len(w) for w in text.split()), default=0)

    def widths(header: Callable[[str], int], cell: Callable[[str], int]) -> list[int]:
        return [max([header(col), *(cell(r[i]) for r in cells)]) for i, col in enumerate(columns)]

    # each column costs its text, one space of padding either side and the divider
    budget = console.width - 3 * len(columns) + 1
    fit = widths(len, len)
    breaks = sum(fit) > budget
    if breaks:
        fit = widths(longest_word, longest_word)
    fit[0] = max(10, min(fit[0], budget - sum(fit[1:])))
    while sum(fit) > budget and max(fit) > 4:  # still too wide: the widest column folds words
        fit[fit.index(max(fit))] -= 1
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(
            col.replace(" ", "\n") if breaks else col,
            overflow="fold",
            justify="left" if i == 0 else "right",
            min_width=fit[i],
            max_width=fit[i],
        )
    for row in cells:
        table.add_row(*row)
    console.print(table)
