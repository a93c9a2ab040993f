"""Headless code must never pull in textual, the CLI must start without heavy libraries, and the
runtime never imports the learning pipeline (budsim.learn)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

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
    "budsim.learn",
    "budsim.learn.evaluate",
    "budsim.learn.datasets",
    "budsim.learn.samples",
    "budsim.learn.train",
    "budsim.learn.validate",
    "budsim.cli",
    "budsim.core.facts",
    "budsim.core.search.optimize",
    "budsim.core.store",
    "budsim.core.export",
    "budsim.cli.optimize",
]

# The CLI modules of the commands that serve users (`budsim.cli.train` holds `train` and `validate`,
# which import budsim.learn inside the commands, and `calibrate`, which is runtime).
RUNTIME_CLI = [
    "budsim.cli",
    "budsim.cli.catalog",
    "budsim.cli.export",
    "budsim.cli.hub",
    "budsim.cli.optimize",
    "budsim.cli.output",
    "budsim.cli.predict",
    "budsim.cli.runs",
    "budsim.cli.train",
]
PACKAGE = Path(__file__).resolve().parents[1] / "budsim"


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


def test_runtime_does_not_import_learn() -> None:
    """Importing every module of budsim.core and budsim.tui and the CLI leaves budsim.learn out."""
    code = (
        "import importlib, pkgutil\n"
        "import budsim.core, budsim.tui\n"
        "for pkg in (budsim.core, budsim.tui):\n"
        "    for info in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + '.'):\n"
        "        importlib.import_module(info.name)\n"
        + "\n".join(f"import {m}" for m in RUNTIME_CLI)
    )
    mods = _modules_after(code)
    assert "budsim.core.calibration.user" in mods  # the walk really happened
    assert "budsim.tui.app" in mods
    assert not {m for m in mods if m == "budsim.learn" or m.startswith("budsim.learn.")}


def _learn_imports(path: Path, module: str) -> list[str]:
    """The imports of budsim.learn anywhere in one source file, lazy ones inside functions too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join([*parts, base] if base else parts)
            names = [base] + [f"{base}.{alias.name}" for alias in node.names]
        if any(n.split(".")[:2] == ["budsim", "learn"] for n in names):
            found.append(f"{path}:{getattr(node, 'lineno', 0)}")
    return found


def test_runtime_sources_never_import_learn() -> None:
    """No import of budsim.learn in the runtime's source, not even inside a function; only the
    `train` and `validate` commands (budsim/cli/train.py) may import it, inside the commands."""
    files = [*(PACKAGE / "core").rglob("*.py"), *(PACKAGE / "tui").rglob("*.py")]
    files += [PACKAGE / "cli" / f"{m.rpartition('.')[2]}.py" for m in RUNTIME_CLI[1:]]
    files.append(PACKAGE / "cli" / "__init__.py")
    bad = []
    for path in files:
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        if path.name != "train.py" or path.parent.name != "cli":
            bad += _learn_imports(path, module)
    assert not bad, bad
    # the one allowed importer really is found by the scan (so the scan itself works)
    assert _learn_imports(PACKAGE / "cli" / "train.py", "budsim.cli.train")
