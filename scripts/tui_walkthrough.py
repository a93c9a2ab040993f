#!/usr/bin/env python
"""Walk through every screen of the TUI in tmux and save what each one shows, for review.

    .venv/bin/python scripts/tui_walkthrough.py                  # docs/tui_walkthrough_80x24.txt
    .venv/bin/python scripts/tui_walkthrough.py --size 120x40    # docs/tui_walkthrough_120x40.txt

It starts `budsim` (no arguments: the TUI) in a detached tmux session of the given size on a private
tmux socket, with a fresh temporary run store (BUDSIM_DB) and config folder, types into it with
`tmux send-keys` and reads the screen with `tmux capture-pane -p`. Every step waits for the screen
it expects by polling the captured text (with a timeout), then for the frame to settle, so the
walk-through does not depend on the machine's speed. Two runs are saved with the CLI first so that
History and Compare have something to show. Run ids, times and timings differ between walks.

The flow: the empty setup form, the command palette and the key help, an empty History, an unknown
model, the fuzzy matches, a model's facts, the advanced (GA) settings with a bad value and then
population 8, 2 generations, seed 42, the run screen, the results (the table, each detail pane, a
second row, sorting), the export dialog, History with the CLI's runs, marking and comparing two
runs, the delete confirmation, a failed run re-opened and re-run (the run screen's error), a long
search cancelled half-way and its results, and quitting.

Needs tmux (3.0 or newer). Exits non-zero, printing the last screen, if a step times out.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
KEY_GAP_S = 0.06  # between two keys: tmux delivers each send-keys as one write
SLOW_GAP_S = 0.3  # after Escape (else the next key reads as Alt+key) and Ctrl+U (see set_field)
SLOW_KEYS = ("Escape", "C-u")
POLL_S = 0.05
SETTLE_S = 0.25  # a frame counts as drawn once two captures this far apart are the same
EXIT_MARK = "[budsim exited with status"


class WalkError(RuntimeError):
    def __init__(self, message: str, screen: str) -> None:
        super().__init__(message)
        self.screen = screen


class Tmux:
    """One detached tmux session on a private socket (so no user session is touched)."""

    def __init__(self, width: int, height: int, env: dict[str, str]) -> None:
        self.width, self.height = width, height
        self.socket = f"budsim-walk-{os.getpid()}"
        self.target = "walk"
        self.env = env

    def _tmux(self, *args: str, check: bool = True) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.socket, *args],
            capture_output=True,
            text=True,
            env=self.env,
            check=False,
        )
        if check and done.returncode != 0:
            raise RuntimeError(f"tmux {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def start(self, command: Sequence[str]) -> None:
        # the shell line keeps the pane open after the app ends, with its exit status (and any
        # traceback) still on screen
        line = f"{shlex.join(command)}; echo '{EXIT_MARK}' $?; sleep 600"
        args = ["new-session", "-d", "-s", self.target, "-x", str(self.width)]
        args += ["-y", str(self.height)]
        for key in ("BUDSIM_DB", "XDG_CONFIG_HOME", "BUDSIM_THEME", "TERM", "COLORTERM"):
            args += ["-e", f"{key}={self.env.get(key, '')}"]
        self._tmux(*args, line)

    def stop(self) -> None:
        self._tmux("kill-server", check=False)
        # tmux leaves its socket file behind
        folder = Path(self.env.get("TMUX_TMPDIR") or "/tmp") / f"tmux-{os.getuid()}"
        (folder / self.socket).unlink(missing_ok=True)

    def capture(self) -> str:
        return self._tmux("capture-pane", "-p", "-t", self.target)

    def keys(self, *keys: str) -> None:
        """tmux key names (Enter, Escape, Tab, BTab, C-r, F2, Down, Space...), one at a time."""
        for key in keys:
            self._tmux("send-keys", "-t", self.target, key)
            time.sleep(SLOW_GAP_S if key in SLOW_KEYS else KEY_GAP_S)

    def type(self, text: str) -> None:
        for char in text:
            self._tmux("send-keys", "-t", self.target, "-l", char)
            time.sleep(KEY_GAP_S / 2)


class Walk:
    def __init__(self, tmux: Tmux) -> None:
        self.tmux = tmux
        self.shots: list[tuple[str, str, str]] = []  # (label, what it shows, screen)
        self.last = ""

    # ------------------------------------------------------------------------------ waiting

    def wait(
        self,
        *needles: str,
        absent: Sequence[str] = (),
        any_of: Sequence[str] = (),
        timeout: float = 30.0,
        settle: bool = True,
        what: str = "",
    ) -> str:
        """Poll until every needle (and one of any_of, and none of absent) is on screen."""

        def ok(screen: str) -> bool:
            return (
                all(n in screen for n in needles)
                and not any(a in screen for a in absent)
                and (not any_of or any(a in screen for a in any_of))
            )

        deadline = time.monotonic() + timeout
        screen = self.tmux.capture()
        while not ok(screen):
            if EXIT_MARK in screen:
                raise WalkError(f"budsim ended while waiting for {what or needles}", screen)
            if time.monotonic() > deadline:
                want = what or ", ".join(repr(n) for n in (*needles, *any_of))
                raise WalkError(f"timed out after {timeout:.0f} s waiting for {want}", screen)
            time.sleep(POLL_S)
            screen = self.tmux.capture()
        if settle:
            screen = self.settle(ok)
        self.last = screen
        return screen

    def settle(self, ok: Callable[[str], bool] | None = None, limit: float = 2.0) -> str:
        """The screen once two captures SETTLE_S apart agree (or after `limit` seconds)."""
        deadline = time.monotonic() + limit
        screen = self.tmux.capture()
        while time.monotonic() < deadline:
            time.sleep(SETTLE_S)
            again = self.tmux.capture()
            if again == screen and (ok is None or ok(again)):
                break
            screen = again
        self.last = screen
        return screen

    def until(self, check: Callable[[str], bool], timeout: float = 10.0, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        screen = self.tmux.capture()
        while not check(screen):
            if time.monotonic() > deadline:
                raise WalkError(f"timed out waiting for {what}", screen)
            time.sleep(POLL_S)
            screen = self.tmux.capture()
        self.last = screen
        return screen

    # ------------------------------------------------------------------------------ recording

    def shot(self, label: str, note: str, screen: str | None = None) -> None:
        text = screen if screen is not None else self.settle()
        self.shots.append((label, note, text))
        print(f"  captured: {label}", flush=True)

    def pages(self, label: str, note: str, key: str = "PageDown", most: int = 6) -> None:
        """Capture, then press `key` and capture again until the screen stops changing."""
        screen = self.settle()
        self.shot(f"{label} (1)", note, screen)
        for page in range(2, most + 1):
            self.tmux.keys(key)
            again = self.settle()
            if again == screen:
                return
            self.shot(f"{label} ({page})", f"after {key}", again)
            screen = again

    # ------------------------------------------------------------------------------ form helpers

    def set_field(self, label: str, value: str) -> None:
        """Replace the focused field's text, and check it shows next to its label.

        Ctrl+U clears a Textual Input; a key typed right after it can land before the clear is
        done (and be cleared with the rest), hence the pause and the check.
        """
        shown = re.compile(rf"{re.escape(label)}\s+{re.escape(value)}(\s|$)", re.MULTILINE)
        for _ in range(3):
            self.tmux.keys("C-u")
            self.tmux.type(value)
            try:
                self.until(lambda s: bool(shown.search(s)), timeout=2.0, what=f"{label} {value}")
                return
            except WalkError:
                continue
        raise WalkError(f"the {label} field does not show {value!r}", self.tmux.capture())

    def open_advanced(self) -> str:
        """F3 toggles the advanced section; make sure it ends open, with population focused."""
        self.tmux.keys("F3")
        screen = self.wait(any_of=("▼ Advanced", "▶ Advanced"), what="the Advanced section")
        if "▼ Advanced" not in screen:
            self.tmux.keys("F3")
            screen = self.wait("▼ Advanced", what="the Advanced section open")
        return screen


def prefill(python: str, env: dict[str, str]) -> None:
    """Two saved runs from the CLI: one that completes and one whose SLO nothing meets."""
    common = ["--population", "8", "--generations", "2", "--input-len", "1024"]
    runs = [
        [
            *("-m", "Qwen/Qwen3-0.6B", "--hardware", "h100-sxm", "-n", "2"),
            *("--concurrency", "16", "--output-len", "256", "--seed", "42"),
            *("--slo-ttft-ms", "500", "--slo-percentile", "p99"),
        ],
        [
            *("-m", "Qwen/Qwen3-0.6B", "--hardware", "l4", "-n", "1"),
            *("--concurrency", "64", "--output-len", "512", "--seed", "7"),
            *("--slo-ttft-ms", "5", "--slo-percentile", "p99"),
        ],
    ]
    for args in runs:
        subprocess.run(
            [python, "-m", "budsim", "optimize", *common, *args],
            env=env,
            capture_output=True,
            check=False,  # the second one fails on purpose (and is saved as failed)
        )
    listing = subprocess.run(
        [python, "-m", "budsim", "runs", "list", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(listing.stdout)
    count = len(data if isinstance(data, list) else data.get("runs", []))
    if count != 2:
        raise RuntimeError(f"expected 2 saved runs from the CLI, found {count}")


def walk(w: Walk, python: str, env: dict[str, str]) -> None:
    t = w.tmux

    # ---- setup: empty form, palette, key help, empty history
    w.wait("·  setup", "can't run yet: model", what="the setup form with the catalog loaded")
    w.shot("setup: empty form", "first frame once the catalog has loaded; the Run bar says why not")
    t.keys("C-p")
    w.wait("Search for commands", what="the command palette")
    w.shot("command palette (Ctrl+P)", "every action is a command")
    t.type("advanced")
    w.wait("Toggle advanced settings", what="the palette's match")
    w.shot("command palette: filtered", "typed 'advanced'")
    t.keys("Escape")
    w.wait("·  setup", absent=("Search for commands",), what="the palette closed")
    t.keys("C-p")
    w.wait("Search for commands", what="the command palette")
    t.type("keys")
    w.wait("Keys", what="the Keys command")
    t.keys("Enter")
    w.wait("Page Up", absent=("Search for commands",), what="the key help")
    w.shot("key help (palette: Keys)", "the bindings of the focused widget and screen")
    t.keys("C-p")
    w.wait("Search for commands", what="the command palette")
    t.type("keys")
    w.wait("Keys", what="the Keys command")
    t.keys("Enter")
    w.settle()
    t.keys("F2")
    w.wait("·  history", "no saved runs yet", what="an empty history")
    w.shot("history: empty store", "F2 before any run was saved")
    t.keys("Escape")
    w.wait("·  setup", what="the setup form")

    print("  saving two runs with the CLI…", flush=True)
    prefill(python, env)

    # ---- the model: unknown, fuzzy matches, facts
    t.type("acme/no-such-model")
    w.wait("can't run yet: model", any_of=("not in", "unknown", "cannot"), what="the model error")
    w.shot("setup: unknown model", "an HF id that is neither in the catalog nor in the HF cache")
    t.keys("C-u")
    t.type("qwen3 0.6")
    w.wait("Qwen/Qwen3-0.6B", what="the fuzzy matches")
    w.shot("setup: fuzzy matches", "typed 'qwen3 0.6'; Down moves into the list")
    t.keys("C-u")
    t.type("Qwen/Qwen3-0.6B")
    w.wait("KV/token", what="the model's facts")
    t.keys("Escape")  # closes the match list
    w.wait("KV/token", "ready:", what="the form ready")
    w.shot("setup: model chosen", "the model's facts; defaults elsewhere; the form is ready")

    # ---- advanced settings: a bad value, then population 8, 2 generations, seed 42
    w.open_advanced()  # focuses population
    w.set_field("population", "x8")
    w.wait("can't run yet: population", what="the population error")
    w.shot("setup: a bad field value", "population 'x8': the field turns red, Run is disabled")
    w.set_field("population", "0")
    w.wait("can't run yet: population", absent=("'x8'",), what="the population error")
    w.shot("setup: an out-of-range value", "population 0")
    w.set_field("population", "8")
    t.keys("Tab")
    w.set_field("generations", "2")
    t.keys("Tab")
    w.set_field("seed", "42")
    w.wait("ready:", what="the form ready")
    w.shot("setup: advanced settings", "F3: population 8, 2 generations, seed 42")

    # ---- the run screen, then the results
    t.keys("C-r")
    screen = w.until(  # the run screen drawn down to its footer, unless the search was quicker
        lambda s: ("·  search" in s and "Results" in s) or "·  results" in s,
        timeout=30,
        what="the run screen",
    )
    if "·  search" in screen:
        w.shot("run screen: searching", "captured as soon as it showed (a short search)", screen)
    else:
        w.shot("run screen: missed", "the search ended before the run screen was captured", screen)
    w.wait("·  results", "★", timeout=120, what="the results")
    w.shot("results: the best configuration", "the table has focus; the detail is below it")
    t.keys("Tab", "End")  # into the detail pane; its end shows once the memory plan is in
    w.wait("memory per device", timeout=30, what="the memory plan")
    t.keys("Home")
    w.pages("results: detail panes", "Tab focuses the detail; PageDown scrolls it")
    t.keys("BTab", "Down")
    w.wait("·  results", what="the results")
    w.shot("results: second row", "Shift+Tab back to the table, Down: the detail follows the row")
    t.keys("s", "s")
    w.wait("sorted by tok/s/user", what="the sort notification")
    w.shot("results: sorted", "s twice: sorted by tok/s per user")

    # ---- export and copy
    t.keys("e")
    w.wait(any_of=("launch script", "configuration JSON"), timeout=30, what="the export dialog")
    w.pages("export dialog", "e: the selected configuration's launch script", most=4)
    t.keys("Escape")
    w.wait("·  results", absent=("Esc closes",), what="the results")
    t.keys("y")
    w.wait("copied", what="the copy notification")
    w.shot("results: configuration JSON copied", "y: OSC 52 clipboard")

    # ---- history: the two CLI runs and this one; compare two; delete (declined)
    t.keys("F2")
    w.wait("·  history", "3 runs", what="three saved runs")
    w.shot("history: three runs", "newest first: this search, then the CLI's failed and completed")
    t.keys("Space", "Down", "Down", "Space")
    w.wait("·  history", what="the history")
    w.shot("history: two runs marked", "Space marks (✓) the first and the third run")
    t.keys("c")
    w.wait("Compare runs", timeout=20, what="the comparison")
    w.pages("compare two runs", "c: the best configurations side by side", most=4)
    t.keys("Escape")
    w.wait("·  history", absent=("Compare runs",), what="the history")
    t.keys("d")
    w.wait("Delete run", what="the delete confirmation")
    w.shot("history: delete confirmation", "d asks first; n keeps the run")
    t.keys("n")
    w.wait("·  history", absent=("Delete run",), what="the history")

    # ---- a CLI run opened, and the form loaded from it
    t.keys("Enter")
    w.wait("·  results", "★", timeout=30, what="the CLI run's results")
    w.shot("results: a saved run re-opened", "Enter on the CLI's completed run (TTFT p99 SLO)")
    t.keys("n")
    w.wait("·  setup", what="the setup form")
    w.shot("setup: loaded from a run", "n on the results: the run's settings in the form")

    # ---- a long search, cancelled half-way
    w.open_advanced()
    w.set_field("population", "500")
    t.keys("Tab")
    w.set_field("generations", "1000")
    t.keys("Tab", "Tab")
    w.set_field("patience", "0")  # patience: never stop early
    w.wait("ready:", what="the form ready")
    t.keys("C-r")
    w.wait("·  search", "generation", timeout=60, settle=False, what="the search running")
    later = re.compile(r"gen(eration)? [1-9][0-9]*/")
    w.until(lambda s: bool(later.search(s)), timeout=60, what="the first generations")
    w.shot("run screen: searching", "population 500, 1000 generations: progress, charts, leaders")
    t.keys("F4")
    w.shot("run screen: table only", "F4 hides the charts")
    t.keys("F4", "c")
    screen = w.until(
        lambda s: "cancelling" in s or "cancelled" in s, timeout=60, what="the search cancelling"
    )
    if "·  search" in screen:
        w.shot("run screen: cancelling", "c: the search stops after the current chunk", screen)
    w.wait("·  results", "cancelled ·", timeout=60, what="the cancelled run's results")
    w.shot("results: a cancelled run", "what it found before c; the title says it was cancelled")

    # ---- the failed CLI run: opened, then re-run from the form
    t.keys("F2")
    w.wait("·  history", "4 runs", what="four saved runs")
    t.keys("Down", "Down")  # newest first: cancelled, this session's search, failed, completed
    time.sleep(0.3)
    w.shot("history: four runs", "the cancelled search on top; the cursor on the failed run")
    t.keys("Enter")
    screen = w.until(
        lambda s: "·  results" in s or "has no results" in s, timeout=30, what="the failed run"
    )
    if "·  results" in screen:
        screen = w.wait("·  results", "failed ·", what="the failed run's results")
    w.shot("results: a failed run re-opened", "nothing met TTFT p99 ≤ 5 ms: the closest ones")
    if "·  results" in screen:
        t.keys("Escape")
        w.wait("·  history", what="the history")
    t.keys("e")
    w.wait("·  setup", "ready:", timeout=30, what="the form loaded from the failed run")
    t.keys("C-r")
    w.wait("·  search", "✖", timeout=120, what="the search's failure")
    w.shot("run screen: failed search", "the reason, and the closest configurations")
    t.keys("Escape")
    w.wait("·  setup", what="the setup form")

    # ---- quit
    t.keys("C-q")
    w.wait(EXIT_MARK, settle=False, timeout=20, what="budsim to exit")
    screen = w.tmux.capture()
    if f"{EXIT_MARK} 0" not in screen:
        raise WalkError("budsim exited with an error", screen)


def render(shots: Sequence[tuple[str, str, str]], width: int, height: int, command: str) -> str:
    lines = [
        f"budsim TUI walk-through at {width}x{height} (tmux capture-pane text)",
        f"made by: {command}",
        "Run ids, dates and timings differ from walk to walk. Each screen is framed: │ marks its",
        "left and right edges, so text cut at the right edge shows.",
        "",
    ]
    for number, (label, note, screen) in enumerate(shots, 1):
        rows = screen.split("\n")[:height]
        rows += [""] * (height - len(rows))
        lines.append(f"=== {number:02d} {label} — {note}")
        lines.append("┌" + "─" * width + "┐")
        lines += ["│" + row.ljust(width) + "│" for row in rows]
        lines.append("└" + "─" * width + "┘")
        lines.append("")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="80x24", help="terminal size, WIDTHxHEIGHT")
    parser.add_argument("--out", type=Path, help="default: docs/tui_walkthrough_<size>.txt")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.size.lower().split("x"))
    out = args.out or ROOT / "docs" / f"tui_walkthrough_{width}x{height}.txt"
    python = sys.executable

    with tempfile.TemporaryDirectory(prefix="budsim-walk-") as tmp:
        env = dict(os.environ)
        env.update(
            BUDSIM_DB=str(Path(tmp) / "runs.db"),
            XDG_CONFIG_HOME=str(Path(tmp) / "config"),
            BUDSIM_THEME="",
            TERM="tmux-256color",
            COLORTERM="truecolor",
        )
        env.pop("BUDSIM_HARDWARE_FILE", None)
        tmux = Tmux(width, height, env)
        w = Walk(tmux)
        print(f"walking the TUI at {width}x{height} (store {env['BUDSIM_DB']})", flush=True)
        try:
            tmux.start([python, "-m", "budsim"])
            walk(w, python, env)
        except WalkError as exc:
            print(f"error: {exc}\n--- the screen:\n{exc.screen}", file=sys.stderr)
            return 1
        finally:
            tmux.stop()

    size = "" if (width, height) == (80, 24) else f" --size {width}x{height}"
    command = f".venv/bin/python scripts/tui_walkthrough.py{size}"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(w.shots, width, height, command) + "\n")
    print(f"wrote {len(w.shots)} screens to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
