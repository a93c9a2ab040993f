"""Shared CLI output helpers: JSON to stdout, rich tables otherwise."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import typer

from budsim.core.report import break_after_slashes, fmt

# a cell that reads as a number or a range ("1,234", "0.5", "3.5s", "12–15", "-"): such
# columns align right
_NUM = r"[-+]?[\d,]*\.?\d+(e[-+]?\d+)?"
NUMBER = re.compile(rf"^(-|{_NUM}(–{_NUM})?\s?[a-zA-Z%]{{0,2}})$")


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


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    optional: Sequence[str] = (),
    slashed: Sequence[str] = (),
    min_widths: Mapping[str, int] | None = None,
    console: Any = None,
) -> None:
    """A rich table that fits the terminal. `optional` names columns, least useful first, that
    are left out (and named under the table) while the table cannot fit even with every column
    folded to its longest word. `slashed` names columns of org/name ids or paths, whose words
    may also fold after a '/' (meta-llama/ over Meta-Llama-3.1-8B) when the table needs it.
    `min_widths` keeps columns of short words from folding narrower than that (an SLO of
    "TTFT p90 ≤ 500 ms" then reads two words a line, not one); no column exceeds its text."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    # Narrow terminals (80 columns in tmux) fold long values instead of cutting them off. Rich
    # crops the right-hand columns of a table it cannot fit, so the widths are set here: the
    # natural ones where they fit; otherwise the columns with the most room to give narrow one
    # character at a time, down to their longest word (headers and multi-word cells then break
    # between words), and only if that is still too wide does the widest column fold words.
    cells = [[fmt(v) for v in row] for row in rows]
    console = console or Console()
    columns = list(columns)

    # measured as shown: without the rich markup a cell may carry (a coloured status)
    plain = [[Text.from_markup(c).plain if "[" in c else c for c in row] for row in cells]

    def longest_word(text: str) -> int:
        return max((len(w) for w in text.split()), default=0)

    def longest_part(text: str) -> int:  # words of a slashed column also fold after a '/'
        return max(
            (len(p) for w in text.split() for p in re.findall(r"[^/]*/|[^/]+$", w)), default=0
        )

    def widths(measure: Callable[[str], int]) -> list[int]:
        return [
            max([measure(col), *(measure(r[i]) for r in plain)]) for i, col in enumerate(columns)
        ]

    def floors() -> list[int]:
        out = []
        for i, (col, word, full) in enumerate(
            zip(columns, widths(longest_word), widths(len), strict=True)
        ):
            floor = max([longest_word(col), *(longest_part(r[i]) for r in plain)])
            floor = floor if col in slashed else word
            out.append(min(full, max(floor, (min_widths or {}).get(col, 0))))
        return out

    def budget() -> int:  # each column costs its text, one space of padding either side, a divider
        return console.width - 3 * len(columns) + 1

    hidden = []
    for name in optional:
        if sum(floors()) <= budget():
            break
        i = columns.index(name)
        hidden.append(columns.pop(i))
        for row in (*cells, *plain):
            del row[i]
    fit, floor = widths(len), floors()
    while sum(fit) > budget():
        slack = [w - f for w, f in zip(fit, floor, strict=True)]
        if max(slack) <= 0:
            break
        fit[slack.index(max(slack))] -= 1
    while sum(fit) > budget() and max(fit) > 4:  # still too wide: the widest column folds words
        fit[fit.index(max(fit))] -= 1
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False)
    for i, col in enumerate(columns):
        table.add_column(
            col.replace(" ", "\n") if len(col) > fit[i] else col,
            overflow="fold",
            justify="right" if i and all(NUMBER.match(r[i]) for r in plain) else "left",
            min_width=fit[i],
            max_width=fit[i],
        )
    for i, col in enumerate(columns):
        if col in slashed:
            for row in cells:
                if "[" not in row[i]:  # a cell with rich markup is left as it is
                    row[i] = break_after_slashes(row[i], fit[i])
    for row in cells:
        table.add_row(*row)
    console.print(table)
    if hidden:
        console.print(f"not shown at this width: {', '.join(hidden)} (see --json)", style="dim")
