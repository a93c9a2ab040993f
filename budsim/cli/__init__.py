"""The `budsim` command: a thin typer shell over budsim.core.

Each sub-module registers its commands on the one app; `budsim` with no command opens the TUI.
Heavy imports stay inside the command functions so `budsim --help` starts fast.
"""

from __future__ import annotations

import importlib
import io
import os
import stat
import sys
from typing import Any

import typer

from budsim import __version__
from budsim.core.errors import BudsimError

app = typer.Typer(
    name="budsim",
    help="Offline LLM deployment planner: predict, search and export engine configurations.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)

# Modules that add commands; each defines `register(app: typer.Typer) -> None`.
COMMAND_MODULES = (
    "budsim.cli.catalog",
    "budsim.cli.predict",
    "budsim.cli.optimize",
    "budsim.cli.runs",
    "budsim.cli.export",
    "budsim.cli.train",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"budsim {__version__}")
        raise typer.Exit()


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Show the version and exit."
    ),
) -> None:
    """With no command, open the interactive planner (TUI)."""
    if ctx.invoked_subcommand is None:
        from budsim.tui import run_tui

        run_tui()


def _register_all() -> None:
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # not written yet
                continue
            raise
        module.register(app)


_register_all()


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print a one-line error to stderr and return the Exit to raise."""
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _click_exceptions() -> tuple[type[Exception], type[Exception], type[Exception]]:
    """(UsageError, Abort, Exit) of the click that typer runs on (newer typer vendors its own)."""
    import importlib

    usage_error: type[Exception] = Exception
    for name in ("typer._click.exceptions", "click.exceptions"):
        try:
            usage_error = importlib.import_module(name).UsageError
            break
        except ImportError:
            continue
    return usage_error, typer.Abort, typer.Exit


def _one_line_warnings() -> None:
    """Warnings (physics-only fallbacks, a refitted user calibration) as one stderr line each,
    not Python's file:line report with a source line."""
    import warnings

    shown: set[str] = set()

    def show(message: Warning | str, *_: object, **__: object) -> None:
        # once per text: Python's filter dedupes per call site, and one fallback is reached from
        # several (the search's batch, the best configuration's own prediction)
        text = str(message)
        if text not in shown:
            shown.add(text)
            typer.echo(f"warning: {text}", err=True)

    warnings.showwarning = show


class _ReaderMayLeave(io.FileIO):
    """stdout's file descriptor when it is a pipe: once the reader has gone (`budsim runs show X
    | head -1`), it points itself at /dev/null and takes every later write. The command then
    finishes what it does (a run saved, files written, its failure reported) and exits with its
    own status: 0 when it succeeded (a reader that stops early, like head, is no failure of the
    command; `ls | head` ends the same for a shell without pipefail), and never 0 for a command
    that failed or was cut short. Commands print their results after their work, so what one
    goes on to do unread is little."""

    def write(self, data: Any, /) -> int:
        try:
            return super().write(data)
        except BrokenPipeError:
            _stdout_to_devnull()
            return memoryview(data).nbytes  # delivered as far as anyone will read


def _stdout_to_devnull() -> None:
    """Point file descriptor 1 at /dev/null (its reader is gone): later writes and the
    interpreter's flush at exit have nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout already closed or replaced by a non-file
        pass


def _let_the_reader_leave() -> None:
    """Route stdout through _ReaderMayLeave when it is a pipe or a socket (a terminal or a file
    has no reader to lose); the encoding and buffering stay Python's own."""
    old = sys.stdout
    try:
        mode = os.fstat(old.fileno()).st_mode
    except (AttributeError, OSError, ValueError):  # not a real file (a test's capture)
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        return
    old.flush()
    sys.stdout = io.TextIOWrapper(
        io.BufferedWriter(_ReaderMayLeave(old.fileno(), "w", closefd=False)),
        encoding=old.encoding,
        errors=old.errors,
        line_buffering=bool(old.line_buffering),
        write_through=getattr(old, "write_through", False),
    )


# Exit status when a broken pipe still cuts a command short (output that bypassed sys.stdout):
# click's own, and not 0, since the command did not finish.
BROKEN_PIPE_EXIT = 1


def _quiet_broken_pipe() -> None:
    """The reader of stdout is gone and the command was cut short: exit without a traceback or
    Python's "Exception ignored" note."""
    _stdout_to_devnull()
    sys.exit(BROKEN_PIPE_EXIT)


def main() -> None:
    code: int | str | None
    _let_the_reader_leave()
    try:
        try:
            code = _run()
        except SystemExit as exc:  # a command's own sys.exit, or click's after a broken pipe
            code = exc.code
        # Output written without a flush (csv to sys.stdout) would otherwise meet a closed pipe
        # at the interpreter's exit, where nothing can catch it.
        sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_pipe()
    if code:
        sys.exit(code)


def _run() -> int:
    """Run the command; the exit status, with every failure reported as one stderr line."""
    _one_line_warnings()
    usage_error, abort, exit_ = _click_exceptions()
    try:
        code = app(standalone_mode=False)
    except usage_error as exc:
        # one line instead of click's usage block
        typer.echo(f"error: {exc.format_message()}", err=True)  # type: ignore[attr-defined]
        return 2
    except abort:
        typer.echo("aborted", err=True)
        return 130
    except exit_ as exc:
        return int(exc.exit_code or 0)  # type: ignore[attr-defined]
    except BudsimError as exc:
        typer.echo(f"error: {exc}", err=True)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        return 130
    except BrokenPipeError:
        raise
    except Exception as exc:  # a bug still ends in one line; the traceback is there on request
        if os.environ.get("BUDSIM_DEBUG"):
            raise
        typer.echo(
            f"error: unexpected {type(exc).__name__}: {exc} (a budsim bug; "
            "run with BUDSIM_DEBUG=1 for the traceback)",
            err=True,
        )
        return 1
    return code if isinstance(code, int) else 0
