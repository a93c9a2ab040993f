"""The `budsim` command: a thin typer shell over budsim.core.

Each sub-module registers its commands on the one app; `budsim` with no command opens the TUI.
Heavy imports stay inside the command functions so `budsim --help` starts fast.
"""

from __future__ import annotations

import importlib
import os
import sys

import typer

from budsim import __version__
from budsim.core.errors import BudsimError

app = typer.Typer(
    name="budsim",
    help="Offline LLM deployment planner: predict, search and export engine configurations.",
    no_args_is_help=False,
    add_completion=False,
    pretty_exceptions_enable=False,
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

    def show(message: Warning | str, *_: object, **__: object) -> None:
        typer.echo(f"warning: {message}", err=True)

    warnings.showwarning = show


# Exit status when the reader of stdout goes away (`budsim models | head -1`): click's own, so the
# status is the same wherever the broken pipe is noticed.
BROKEN_PIPE_EXIT = 1


def _quiet_broken_pipe() -> None:
    """The reader of stdout is gone: exit without a traceback or Python's "Exception ignored"
    note. What is left in stdout's buffer cannot be delivered; stdout is pointed at /dev/null so
    the interpreter's flush at exit has nowhere to fail."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):  # stdout already closed or replaced by a non-file
        pass
    sys.exit(BROKEN_PIPE_EXIT)


def main() -> None:
    code: int | str | None
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
