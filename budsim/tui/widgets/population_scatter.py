"""The population: tok/s per device against tok/s per user (or latency), Pareto front highlighted."""

from __future__ import annotations

from textual_plotext import PlotextPlot

from ..runner import Point, Progress
from ..views import OBJECTIVE_LABELS


class PopulationScatter(PlotextPlot):
    DEFAULT_CSS = """
    PopulationScatter { height: 1fr; min-height: 6; }
    """

    def show(self, progress: Progress | None) -> None:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        x_label = OBJECTIVE_LABELS.get(progress.x_name, progress.x_name) if progress else ""
        plt.title(f"tok/s/dev vs {x_label}" if x_label else "population")
        if progress is not None and progress.points:
            groups: dict[str, list[Point]] = {"infeasible": [], "feasible": [], "front": []}
            for pt in progress.points:
                key = "front" if pt.front else ("feasible" if pt.feasible else "infeasible")
                groups[key].append(pt)
            styles = {
                "infeasible": ("gray", "dot"),
                "feasible": ("cyan", "•"),
                "front": ("red", "◆"),
            }
            for key, pts in groups.items():
                if pts:
                    color, marker = styles[key]
                    plt.scatter(
                        [p.x for p in pts],
                        [p.y for p in pts],
                        color=color,
                        marker=marker,
                        label=key,
                    )
        self.refresh()
