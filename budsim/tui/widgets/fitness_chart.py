"""Best and mean of the target per generation."""

from __future__ import annotations

from collections.abc import Sequence

from textual_plotext import PlotextPlot

from ..runner import Progress
from ..views import TARGET_INFO


class FitnessChart(PlotextPlot):
    DEFAULT_CSS = """
    FitnessChart { height: 1fr; min-height: 6; }
    """

    def show(self, history: Sequence[Progress], target: str) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        _, unit, _ = TARGET_INFO.get(target, (target, "", 1.0))
        gens = [p.generation for p in history if p.best_target is not None]
        # the chart plots feasible configurations only: say so when there is none yet
        plt.title(f"{unit}: best, mean" if gens or not history else "nothing feasible yet")
        best = [p.best_target for p in history if p.best_target is not None]
        mean = [p.mean_target for p in history if p.best_target is not None]
        if gens:
            plt.plot(gens, best, label="best", marker="braille", color="green")
            if all(m is not None for m in mean):
                plt.plot(gens, mean, label="mean", marker="braille", color="cyan")
            last = max(gens)
            step = max(1, (last + 5) // 6)
            plt.xticks(list(range(0, last + 1, step)))
            if len(gens) == 1:
                plt.xlim(gens[0] - 1, gens[0] + 1)
        self.refresh()
