"""Generation counter, progress bar, ETA and evaluations per second."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ProgressBar, Static

from ..runner import Progress
from ..views import fmt, fmt_duration


def progress_line(p: Progress | None, status: str) -> Text:
    text = Text()
    if p is None:
        text.append(f"{status}: preparing the search space…")
        return text
    if p.method == "exhaustive":
        text.append(f"batch {p.generation + 1}", style="bold")
    elif p.method == "local":
        text.append(f"local search round {p.local_round}", style="bold")
    else:
        text.append(f"generation {p.generation}/{p.generations}", style="bold")
    text.append(f" · {fmt(p.evaluations)} evaluated")
    text.append(f" · {p.evals_per_s:.1f}/s")
    text.append(f" · {p.feasible}/{p.population} feasible")
    text.append(f" · {fmt_duration(p.elapsed_s)}")
    if status == "running":
        eta = p.eta_s
        text.append(f" · ETA {fmt_duration(eta) if eta is not None else '-'}")
    else:
        text.append(f" · {status}", style="bold")
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
        self.query_one("#run-line", Static).update(progress_line(progress, status), layout=False)
        bar = self.query_one("#run-bar", ProgressBar)
        done = 1.0 if status == "completed" else (progress.fraction if progress else 0.0)
        bar.update(total=1000, progress=round(done * 1000))
