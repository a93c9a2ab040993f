"""Headless code must never pull in textual, and the CLI must start without heavy libraries."""

from __future__ import annotations

import subprocess
import sys

HEADLESS = [
    "budsim.core.deployment",
    "budsim.core.engines",
    "budsim.core.hardware",
    "budsim.core.model",
    "budsim.core.memory",
    "budsim.core.steptime",
    "budsim.core.simulator",
    "budsim.core.predict",
    "budsim.core.cases",
    "budsim.core.evaluate",
    "budsim.core.datasets",
    "budsim.cli",
    "budsim.core.facts",
    "budsim.core.search.optimize",
    "budsim.core.store",
    "budsim.core.export",
    "budsim.cli.optimize",
]


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return set(out.stdout.split())


def test_core_and_cli_do_not_import_textual() -> None:
    mods = _modules_after("\n".join(f"import {m}" for m in HEADLESS))
    assert "textual" not in mods
    assert "budsim.core.predict" in mods  # the imports really happened


def test_cli_start_is_light() -> None:
    mods = _modules_after("import budsim.cli")
    for heavy in ("textual", "pandas", "xgboost", "transformers", "sklearn", "deap"):
        assert heavy not in mods, f"{heavy} imported at CLI start"


def test_help_runs_without_textual() -> None:
    code = (
        "import sys\n"
        "from budsim.cli import app\n"
        "try:\n"
        "    app(['--help'], standalone_mode=False)\n"
        "except SystemExit:\n"
        "    pass\n"
        "assert 'textual' not in sys.modules, 'textual imported by --help'\n"
        "print('ok')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().endswith("ok")
