"""Shared helpers for the TUI tests: a temporary run store, fixture data, and waiting in Pilot."""

from __future__ import annotations

import asyncio
import functools
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test gets its own run store and no user hardware file or theme override."""
    monkeypatch.setenv("BUDSIM_DB", str(tmp_path / "runs.db"))
    monkeypatch.delenv("BUDSIM_HARDWARE_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.delenv("BUDSIM_THEME", raising=False)
    yield


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "runs.db"


def load_json(name: str) -> Any:
    """A fresh copy of the hand-written fixture `name` (tests/tui/fixtures/README.md): results in
    the optimiser's response shape with round, made-up numbers, not the predictor's output."""
    return json.loads((FIXTURES / name).read_text())


def best_result(response: Any) -> dict[str, Any]:
    """The fixture response's best configuration as a stored result row (RunStore.finish_run)."""
    return {
        "rank": 0,
        "kind": "best",
        "deployment": response["optimal_configuration"],
        "prediction": response["predicted_performance"],
        "objectives": response["objectives"],
        "feasible": True,
    }


def fixture_progress() -> list[Any]:
    from budsim.tui.runner import Point, Progress

    out = []
    for d in load_json("progress.json"):
        d = dict(d)
        d["points"] = tuple(Point(**p) for p in d["points"])
        d["leaders"] = tuple(d["leaders"])
        out.append(Progress(**d))
    return out


async def wait_for(
    pilot: Any, predicate: Callable[[], bool], timeout: float = 45.0, what: str = ""
) -> None:
    """Let the app run until `predicate()` holds (workers post messages in the meantime).

    The timeout is generous: CI machines are often shared; a healthy wait takes a second or two.
    """
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            app = pilot.app
            state = getattr(app, "run_state", None)
            where = f"screen {type(app.screen).__name__}"
            if state is not None:
                where += f", run {state.status} ({len(state.progress)} generations"
                where += f", error {state.error!r})" if state.error else ")"
            raise AssertionError(f"timed out waiting for {what or predicate}; {where}")
        await pilot.pause(0.05)


async def open_history(pilot: Any, runs: int) -> None:
    """From the setup screen (catalog loaded), F2 to History and wait until it lists `runs`."""
    from budsim.tui.screens.history import HistoryScreen

    app = pilot.app
    await wait_for(pilot, lambda: app.catalog is not None, what="catalog")
    await pilot.press("f2")
    await wait_for(
        pilot,
        lambda: isinstance(app.screen, HistoryScreen) and len(app.screen.runs) == runs,
        what="history",
    )
    await pilot.pause()


def screen_lines(app: Any) -> list[str]:
    """The screen as text, one string a row."""
    return [strip.text for strip in app.screen._compositor.render_strips()]


async def type_text(pilot: Any, text: str) -> None:
    await pilot.press(*list(text))


def async_test(fn: Callable[..., Awaitable[None]]) -> Callable[..., None]:
    """Run an async test body with asyncio.run (no pytest async plugin is required)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        asyncio.run(fn(*args, **kwargs))

    return wrapper
