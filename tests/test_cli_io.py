"""The CLI as part of a shell pipeline: a reader that stops early (`budsim models | head -1`) is
no error: the command finishes, quietly, with its own exit status."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_cli_optimize import TINY, base_args

BUDSIM = [sys.executable, "-m", "budsim"]
# Python's own default: stdout to a pipe is block-buffered (the test runner may set
# PYTHONUNBUFFERED, which hides output that is only flushed at exit)
ENV = {k: v for k, v in os.environ.items() if k not in ("PYTHONUNBUFFERED", "BUDSIM_DEBUG")}
PREDICT = [
    "predict",
    "--model",
    "meta-llama/Llama-3.1-8B",
    "--hardware",
    "h100-sxm",
    "--input-len",
    "1024",
    "--output-len",
    "256",
]


def run_into_closed_pipe(args: list[str]) -> subprocess.CompletedProcess[str]:
    """Run budsim with its stdout a pipe whose reader has already gone: every write fails with
    EPIPE, the first one included."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run(
            [*BUDSIM, *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            env=ENV,
        )
    finally:
        os.close(write)


def cases_file(tmp_path: Path) -> Path:
    path = tmp_path / "cases.csv"
    rows = ["id,model,hardware,engine,input_len,output_len,concurrency"]
    rows += [f"c{i},meta-llama/Llama-3.1-8B,h100-sxm,vllm,{512 + i},128,4" for i in range(3)]
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(
    "args",
    [
        ["models"],
        ["models", "--plain"],
        ["hardware"],
        ["engines", "--json"],
        PREDICT,
        [*PREDICT, "--json"],
        ["--help"],
        # written with csv.writer and no flush: the broken pipe shows at the interpreter's exit
        ["predict", "--cases", "CASES", "--format", "csv"],
        ["predict", "--cases", "CASES", "--format", "jsonl"],
    ],
    ids=" ".join,
)
def test_a_reader_that_goes_away_is_not_an_error(args: list[str], tmp_path: Path) -> None:
    args = [str(cases_file(tmp_path)) if a == "CASES" else a for a in args]
    out = run_into_closed_pipe(args)
    assert out.stderr == "", out.stderr
    assert out.returncode == 0  # as `ls | head` ends for the shell (#19)


def test_runs_show_into_head(tmp_path: Path) -> None:
    """The issue's example: `budsim runs show X | head -1` prints its first line and nothing on
    stderr, whatever the moment the reader leaves."""
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY))
    db = tmp_path / "runs.db"
    # a search whose reader left still finishes its work: the run is saved, and it succeeded
    made = run_into_closed_pipe([*base_args(str(model), db), "--json"])
    assert (made.returncode, made.stderr) == (0, ""), made.stderr
    listed = subprocess.run(
        [*BUDSIM, "runs", "list", "--json", "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    (run,) = json.loads(listed.stdout)
    assert run["status"] == "completed", run
    run_id = run["id"]
    for args in (["runs", "show", run_id], ["runs", "show", run_id, "--json"], ["runs", "list"]):
        closed = run_into_closed_pipe([*args, "--db", str(db)])
        assert (closed.returncode, closed.stderr) == (0, ""), closed.stderr
        head = subprocess.run(
            f"{sys.executable} -m budsim {' '.join(args)} --db {db} | head -1",
            shell=True,
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert head.stderr == "" and len(head.stdout.splitlines()) == 1, head


def test_a_failed_command_keeps_its_status_when_the_reader_goes_away(tmp_path: Path) -> None:
    """Exit status 0 after a broken pipe only for a command that succeeded: a search that finds
    nothing prints its closest configurations, then fails, whoever reads them."""
    model = tmp_path / "tiny.json"
    model.write_text(json.dumps(TINY))
    args = [*base_args(str(model), tmp_path / "runs.db"), "--slo-tpot-ms", "0.001"]
    read = subprocess.run([*BUDSIM, *args], capture_output=True, text=True, timeout=120, env=ENV)
    assert "closest" in read.stdout and read.returncode != 0, read
    gone = run_into_closed_pipe(args)
    assert (gone.returncode, gone.stderr) == (read.returncode, read.stderr)
    assert gone.stderr.startswith("error: ") and gone.stderr.count("\n") == 1, gone.stderr


@pytest.mark.parametrize(
    "command",
    [
        [*PREDICT[:1], "--hardware", "h100-sxm", "--input-len", "64", "--output-len", "8"],
        [
            "optimize",
            "--hardware",
            "l4",
            "--devices",
            "1",
            "--input-len",
            "64",
            "--output-len",
            "8",
        ],
        ["analyze"],
    ],
    ids=lambda c: c[0],
)
def test_allow_download_fetches_or_says_why_not_in_one_line(command: list[str]) -> None:
    """predict, optimize and analyze take --allow-download (the unknown-model hint names it);
    when the Hub cannot be reached the error is one line, not huggingface_hub's retry log."""
    model = "someorg/not-cached-anywhere-xyz"
    args = [*command, model] if command == ["analyze"] else [*command, "--model", model]
    if command[0] == "optimize":
        args += ["--concurrency", "1", "--no-save"]
    env = {**ENV, "HF_HUB_OFFLINE": "1"}
    plain = subprocess.run([*BUDSIM, *args], capture_output=True, text=True, timeout=120, env=env)
    assert plain.returncode == 2
    assert "or allow downloads (--allow-download; in the TUI the HF Hub switch)" in plain.stderr
    fetched = subprocess.run(
        [*BUDSIM, *args, "--allow-download"], capture_output=True, text=True, timeout=120, env=env
    )
    assert fetched.returncode == 2
    assert fetched.stderr.splitlines() == [
        f"error: cannot download the config of {model!r} from the Hugging Face Hub: "
        "HF_HUB_OFFLINE is set"
    ]


def test_allow_download_with_cases_fetches_each_model_once(tmp_path: Path) -> None:
    cases = tmp_path / "cases.csv"
    rows = ["id,model,hardware,engine,input_len,output_len,concurrency"]
    rows += [f"r{i},someorg/not-cached-xyz,h100-sxm,vllm,64,8,1" for i in range(2)]
    rows += ["ok,meta-llama/Llama-3.1-8B,h100-sxm,vllm,64,8,1"]
    cases.write_text("\n".join(rows) + "\n")
    out = subprocess.run(
        [*BUDSIM, "predict", "--cases", str(cases), "--format", "jsonl", "--allow-download"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**ENV, "HF_HUB_OFFLINE": "1"},
    )
    assert out.returncode == 0, out.stderr
    answers = [json.loads(line) for line in out.stdout.splitlines()]
    assert [a["id"] for a in answers] == ["r0", "r1", "ok"]
    assert all("HF_HUB_OFFLINE is set" in a["error"] for a in answers[:2])
    assert "error" not in answers[2]


@pytest.mark.parametrize("command", [[], ["calibrate"], ["export"]], ids=lambda c: " ".join(c))
def test_help_paragraphs_wrap_at_the_terminal_not_at_the_docstring(command: list[str]) -> None:
    """A docstring's own line breaks left ragged lines ("engine" alone on one) at 80 columns."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "COLUMNS": "80"}
    out = subprocess.run(
        [sys.executable, "-m", "budsim", *command, "--help"],
        capture_output=True,
        text=True,
        env=env,
    ).stdout
    # prose only: the option table wraps inside its own narrow column
    lines = [line.strip() for line in out.splitlines() if not line.startswith(("│", "╭", "╰"))]
    for line, after in zip(lines, lines[1:], strict=False):
        # a wrapped line filled well short of the width, with more of its sentence after it
        # (a short line ending a sentence or before an option row is fine)
        if line and after and line[-1] not in ".:)":
            assert len(line) > 40 or line.count(" ") > 4, (line, after)
