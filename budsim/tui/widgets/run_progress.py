"""Generation counter, progress bar, ETA and evaluations per second."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from ..runner import Progress
from ..views import fmt, fmt_duration


def progress_line(p: Progress | None, status: str, width: int | None = None) -> Text:
    """Where the search is; in the compact form ("gen 12/50 · ETA 40.2 s · 1,234 evals · ...")
    when the full one is wider than `width`, so that it stays one line at 80 columns."""
    text = _progress_line(p, status, compact=False)
    if width and text.cell_len > width:
        text = _progress_line(p, status, compact=True)
    return text


def _progress_line(p: Progress | None, status: str, *, compact: bool) -> Text:
    text = Text()
    if p is None:
        text.append(f"{status}: preparing the search space…")
        return text
    if p.method == "exhaustive":
        text.append(f"batch {p.generation + 1}", style="bold")
    elif p.method == "local":
        text.append(f"local {'' if compact else 'search '}round {p.local_round}", style="bold")
    else:
        gen = "gen" if compact else "generation"
        text.append(f"{gen} {p.generation}/{p.generations}", style="bold")
    running = status == "running"
    eta = f"ETA {fmt_duration(p.eta_s) if p.eta_s is not None else '-'}"
    if compact and running:  # the ETA first; the elapsed time left out
        text.append(f" · {eta}")
    exhaustive = p.method == "exhaustive"
    of = f" of {fmt(p.space_size)}" if exhaustive and p.space_size else ""
    text.append(f" · {fmt(p.evaluations)}{of} {'evals' if compact else 'evaluated'}")
    rate = f" · {fmt(round(p.evals_per_s))}/s"
    if not compact:
        text.append(rate)
    # an exhaustive batch has no population: its event lists the batch's top 10 only, and
    # "feasible/population" read "107/10 feasible"
    text.append(
        f" · {fmt(p.feasible)} feasible in {'it' if compact else 'the batch'}"
        if exhaustive
        else f" · {p.feasible}/{p.population} feasible"
    )
    if compact:
        text.append(rate)
    if not (compact and running):
        text.append(f" · {fmt_duration(p.elapsed_s)}")
    if not running:
        text.append(f" · {status}", style="bold")
    elif not compact:
        text.append(f" · {eta}")
    return text


class RunProgress(Vertical):
    DEFAULT_CSS = """
    RunProgress { height: 2; }
    RunProgress #run-line { height: 1; }
    RunProgress ProgressBar { height: 1; }
    RunProgress ProgressBar Bar { width: 1fr; }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="run-line")
        yield ProgressBar(total=1000, show_eta=False, id="run-bar")

    def show(self, progress: Progress | None, status: str) -> None:
        line = self.query_one("#run-line", Static)
        line.update(progress_line(progress, status, line.size.width), layout=False)
        bar = self.query_one("#run-bar", ProgressBar)
        done = 1.0 if status == "completed" else (progress.fraction if progress else 0.0)
        bar.update(total=1000, progress=round(done * 1000))
