"""State the app's message handlers own (plain data; the worker only ever sees the events in it)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .runner import Progress

if TYPE_CHECKING:
    from budsim.core.search.optimize import OptimizationRequest

ACTIVE = ("running", "cancelling")


@dataclass
class RunState:
    """One search from start to end. `version` changes whenever something visible changes."""

    token: int
    request: OptimizationRequest
    cancel: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    status: str = "running"  # running | cancelling | completed | cancelled | failed
    run_id: str | None = None
    progress: list[Progress] = field(default_factory=list)
    error: str | None = None
    closest: list[dict[str, Any]] = field(default_factory=list)
    response: dict[str, Any] | None = None
    started_at: float = field(default_factory=time.perf_counter)
    cancel_requested_at: float | None = None
    finished_at: float | None = None  # when the UI thread heard the end
    worker_ended_at: float | None = None  # when the worker thread returned
    version: int = 0
    worker_started: bool = False

    @property
    def searching(self) -> bool:
        """A worker thread is (still) running this search."""
        return self.worker_started and not self.done.is_set()

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    def touch(self) -> None:
        self.version += 1
