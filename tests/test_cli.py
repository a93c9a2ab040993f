"""The headless CLI as a user runs it: real subprocesses for exit codes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BUDSIM = [sys.executable, "-m", "budsim"]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*BUDSIM, *args], capture_output=True, text=True, timeout=120)


def test_predict_json_has_the_documented_keys() -> None:
    out = run(
        "predict",
        "--model",
        "meta-llama/Llama-3.1-8B",
        "--hardware",
        "h100-sxm",
        "--concurrency",
        "8",
        "--input-len",
        "512",
        "--output-len",
        "64",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    data = json.loads(out.stdout)
    for key in (
        "ttft_ms_mean",
        "ttft_ms_p50",
        "ttft_ms_p90",
        "ttft_ms_p99",
        "tpot_ms_mean",
        "tpot_ms_p50",
        "tpot_ms_p99",
        "e2e_s_mean",
        "e2e_s_p99",
        "e2e_s_max",
        "output_tok_s",
        "total_tok_s",
        "requests_per_s",
        "output_tok_s_per_device",
        "weights_gb_per_device",
        "kv_cache_gb_per_device",
        "max_concurrency",
        "fits",
        "bottleneck",
    ):
        assert key in data, key
    assert data["fits"] is True
    assert 0 < data["ttft_ms_p50"] <= data["ttft_ms_p99"]
    assert data["output_tok_s"] == pytest.approx(data["output_tok_s_per_device"])


def run_at_80_columns(*args: str) -> list[str]:
    """The output lines of a successful command in an 80-column terminal; none is wider."""
    out = subprocess.run(
        [*BUDSIM, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert max(len(line) for line in lines) <= 80
    return lines


def test_predict_tables_fit_80_columns_and_name_the_calibration() -> None:
    args = ["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm", "--concurrency", "8"]
    lines = run_at_80_columns("predict", *args, "--input-len", "512", "--output-len", "64")
    assert any(line.startswith("TTFT ms") or " TTFT ms" in line for line in lines)
    # the calibration id is whole on its own line, not folded into a table cell
    named = [
        line.removeprefix("calibration: ") for line in lines if line.startswith("calibration:")
    ]
    assert len(named) == 1 and named[0].strip(), "\n".join(lines)


def test_predict_says_what_it_assumed() -> None:
    """No load on the command line: the table says one client was assumed. A replica larger
    than a node: it says the replica spans nodes. Neither note with a load and one node, and
    every note fits 80 columns."""
    base = ["--model", "meta-llama/Llama-3.1-70B", "--hardware", "h100-sxm"]
    lengths = ["--input-len", "512", "--output-len", "64"]
    lines = run_at_80_columns("predict", *base, "--tp", "16", *lengths)
    notes = [line for line in lines if line.startswith("note: ")]
    assert any("no load given, so 1 client" in n for n in notes), "\n".join(lines)
    assert any("spans 2 nodes of 8" in n for n in notes), "\n".join(lines)
    assert all(len(n) <= 80 for n in notes)
    quiet = run_at_80_columns("predict", *base, "--tp", "8", "--concurrency", "4", *lengths)
    assert not [line for line in quiet if line.startswith("note: ")]


def test_predict_table_shows_the_bands_of_the_json_output() -> None:
    from budsim.core.report import band_text

    args = ["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm", "--concurrency", "8"]
    args += ["--input-len", "512", "--output-len", "64"]
    lines = run_at_80_columns("predict", *args)
    data = json.loads(
        subprocess.run(
            [*BUDSIM, "predict", *args, "--json"], capture_output=True, text=True, timeout=120
        ).stdout
    )
    for label, key in (("TTFT ms", "ttft_ms_mean"), ("TPOT ms", "tpot_ms_mean")):
        band = band_text(data, key)
        assert data[f"{key}_lo"] < data[f"{key}_hi"]
        row = next(line for line in lines if line.strip().startswith(label))
        assert row.rstrip().endswith(band), (row, band)
    assert f"out tok/s 80 % band: {band_text(data, 'output_tok_s')}" in lines


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "no/such-model", "--hardware", "h100-sxm"], "unknown model"),
        (["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h900"], "unknown hardware"),
        (
            ["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm", "--engine", "tgi"],
            "unknown engine",
        ),
        (["--model", "meta-llama/Llama-3.1-70B", "--hardware", "l4"], "does not fit"),
        (
            [
                "--model",
                "meta-llama/Llama-3.1-8B",
                "--hardware",
                "gaudi2",
                "--weight-dtype",
                "int4",
            ],
            "cannot run int4",
        ),
        (
            ["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm", "--output-len", "nan"],
            "output_len",
        ),
        (
            ["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm", "--input-len", "0"],
            "input_len",
        ),
        (
            ["--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm", "--nonsense"],
            "No such option",
        ),
    ],
)
def test_bad_input_is_one_line_exit_2(args: list[str], needle: str) -> None:
    base = {"--input-len": "128", "--output-len": "16", "--concurrency": "1"}
    for flag, value in base.items():
        if flag not in args:
            args = [*args, flag, value]
    out = run("predict", *args)
    assert out.returncode == 2
    assert out.stderr.startswith("error:") and needle in out.stderr
    assert out.stderr.strip().count("\n") == 0, out.stderr
    assert "Traceback" not in out.stderr


def test_cases_csv_answers_every_row_in_order(tmp_path: Path) -> None:
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "id,model,hardware,engine,tp,weight_dtype,kv_dtype,scenario,concurrency,batch_size,rate,input_len,output_len\n"
        "a,meta-llama/Llama-3.1-8B,h100-sxm,vllm,1,auto,auto,concurrency,16,,,512,64\n"
        "b,meta-llama/Llama-3.1-8B,h100-sxm,vllm,1,auto,auto,concurrency,16,,,-3,64\n"
        "c,meta-llama/Llama-3.1-70B,h200-sxm,sglang,4,fp8,fp8,static,,8,,1024,128\n"
        "d,meta-llama/Llama-3.1-8B,h100-sxm,vllm,1,auto,auto,rate,,,4,256,32\n"
    )
    out = run("predict", "--cases", str(cases), "--format", "jsonl")
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert [r["id"] for r in rows] == ["a", "b", "c", "d"]
    assert "input_len" in rows[1]["error"] and "ttft_ms_mean" not in rows[1]
    assert rows[0]["fits"] and rows[2]["fits"] and rows[3]["fits"]
    assert rows[2]["e2e_s_max"] > rows[2]["e2e_s_p50"] * 0.99


def test_cases_as_a_table(tmp_path: Path) -> None:
    """--format table (the default) prints one row per case at 80 columns, the numbers of the
    JSON output and a failed case's error in its row."""
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "id,model,hardware,engine,concurrency,input_len,output_len\n"
        "small,meta-llama/Llama-3.1-8B,h100-sxm,vllm,16,512,64\n"
        "broken,meta-llama/Llama-3.1-8B,h100-sxm,vllm,16,-3,64\n"
    )
    lines = run_at_80_columns("predict", "--cases", str(cases))
    rows = json.loads(run("predict", "--cases", str(cases), "--format", "json").stdout)
    small = next(line for line in lines if line.split()[:1] == ["small"])
    assert f"{rows[0]['tpot_ms_mean']:.4g}"[:4] in small.replace(",", "")
    assert any(line.split()[:1] == ["broken"] and "input_len" in line for line in lines)


def test_cases_file_problems_are_one_line(tmp_path: Path) -> None:
    out = run("predict", "--cases", str(tmp_path / "missing.csv"), "--format", "jsonl")
    assert out.returncode == 2 and "cannot read" in out.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("id,model,colour\n1,x,red\n")
    out = run("predict", "--cases", str(bad), "--format", "jsonl")
    assert out.returncode == 2 and "unknown column" in out.stderr


def test_catalog_commands_json() -> None:
    models = json.loads(run("models", "--json").stdout)
    assert len(models) >= 60
    ids = {m["id"] for m in models}
    assert "deepseek-ai/DeepSeek-V3" in ids
    facts = json.loads(run("analyze", "deepseek-ai/DeepSeek-V3", "--json").stdout)
    assert facts["attention"] == "mla" and facts["is_moe"]
    assert facts["kv_bytes_per_token_bf16"] == 61 * 576 * 2
    hw = json.loads(run("hardware", "--json").stdout)
    assert {"h100-sxm", "gaudi2", "xeon-8480", "mi300x"} <= {d["id"] for d in hw}
    engines = json.loads(run("engines", "--json").stdout)
    assert {(e["id"], e["kind"]) for e in engines} >= {
        ("vllm", "cuda"),
        ("vllm", "rocm"),
        ("vllm", "hpu"),
        ("vllm", "cpu"),
        ("sglang", "cuda"),
        ("sglang", "rocm"),
        ("trtllm", "cuda"),
    }


CATALOG_HEADERS = {
    "hardware": (
        "id",
        "kind",
        "memory GB",
        "bandwidth GB/s",
        "bf16 TF",
        "fp8 TF",
        "per node",
        "$/h",
    ),
    "engines": (
        "engine",
        "version",
        "kind",
        "scheduler",
        "seqs",
        "tokens",
        "parallel",
        "weights",
    ),
}


@pytest.mark.parametrize("command", sorted(CATALOG_HEADERS))
def test_catalog_tables_keep_every_column_at_80_columns(command: str) -> None:
    """A table wider than the terminal folds its headers and cells; no column is cut off (the
    hardware and model tables used to lose their last column at 80 columns), and headers break
    between words only (the engines table used to print "paralleli" over "sm")."""
    lines = run_at_80_columns(command)
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    headers = CATALOG_HEADERS[command]
    assert lines[rule - 1].split()[-1] == headers[-1].split()[-1]
    header_words = " ".join(lines[1:rule]).split()
    assert sorted(header_words) == sorted(" ".join(headers).split())


def test_model_ids_are_never_cut_or_wrapped() -> None:
    """Ids are what a user copies: at 80 columns the models table leaves columns out (and names
    them) before it folds an id, and `--plain` prints one id per line for scripts."""
    ids = run("models", "--plain").stdout.split("\n")
    ids = [i for i in ids if i]
    assert len(ids) >= 60 and all(" " not in i for i in ids)
    lines = run_at_80_columns("models")
    for model_id in ids:
        assert any(f" {model_id} " in line for line in lines), model_id
    assert any(line.startswith("not shown at this width:") for line in lines)


def test_analyze_rejects_encoder_only_config(tmp_path: Path) -> None:
    cfg = tmp_path / "config.json"
    cfg.write_text(
        json.dumps(
            {
                "model_type": "bert",
                "architectures": ["BertForMaskedLM"],
                "hidden_size": 768,
                "num_hidden_layers": 12,
                "num_attention_heads": 12,
                "intermediate_size": 3072,
                "vocab_size": 30522,
            }
        )
    )
    out = run("analyze", str(cfg))
    assert out.returncode == 2 and out.stderr.startswith("error:")
    assert out.stderr.strip().count("\n") == 0


def test_cases_csv_from_a_spreadsheet_and_files_that_are_not_text(tmp_path: Path) -> None:
    """A byte-order mark before the header (as spreadsheets save CSV) is read; a file that is not
    UTF-8 ends in one line, for cases and for benchmark results alike."""
    bom = tmp_path / "cases.csv"
    bom.write_bytes(
        b"\xef\xbb\xbfmodel,hardware,engine,input_len,output_len,concurrency\n"
        b"meta-llama/Llama-3.1-8B,h100-sxm,vllm,128,32,2\n"
    )
    out = subprocess.run(
        [*BUDSIM, "predict", "--cases", str(bom), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["ttft_ms_mean"] > 0
    binary = tmp_path / "binary.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    for args in (
        ["predict", "--cases", str(binary), "--format", "jsonl"],
        ["calibrate", "--results", str(binary), "--deployment", "model=m,hardware=h100-sxm"],
        ["export", str(binary)],
    ):
        out = subprocess.run([*BUDSIM, *args], capture_output=True, text=True, timeout=120)
        assert out.returncode == 2
        assert out.stderr.startswith("error: ") and "UTF-8" in out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr


def test_an_unexpected_failure_still_ends_in_one_line() -> None:
    """Whatever goes wrong inside a command, the user sees one line (and the traceback only with
    BUDSIM_DEBUG=1)."""
    code = (
        "import sys, budsim.cli.predict as p, budsim.cli as c; "
        "p._predict_fields = lambda fields: 1 / 0; "
        "sys.argv = ['budsim', 'predict', '--model', 'm', '--hardware', 'h100-sxm']; c.main()"
    )
    env = {k: v for k, v in os.environ.items() if k != "BUDSIM_DEBUG"}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, env=env
    )
    assert out.returncode == 1
    assert out.stderr.strip().splitlines() == [
        "error: unexpected ZeroDivisionError: division by zero (a budsim bug; run with "
        "BUDSIM_DEBUG=1 for the traceback)"
    ]
    debug = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "BUDSIM_DEBUG": "1"},
    )
    assert "Traceback" in debug.stderr


def test_requests_longer_than_the_model_context_are_flagged(tmp_path: Path) -> None:
    args = ["--model", "meta-llama/Llama-2-7b-hf", "--hardware", "h100-sxm", "--concurrency", "2"]
    out = subprocess.run(
        [*BUDSIM, "predict", *args, "--input-len", "4000", "--output-len", "500"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip() == (
        "warning: requests of up to 4,500 tokens exceed meta-llama/Llama-2-7b-hf's context of "
        "4,096 tokens; engines refuse them unless the context is extended"
    )
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "model,hardware,engine,input_len,output_len,concurrency\n"
        "meta-llama/Llama-2-7b-hf,h100-sxm,vllm,4000,500,2\n"
        "meta-llama/Llama-2-7b-hf,h100-sxm,vllm,3000,500,2\n"
    )
    out = subprocess.run(
        [*BUDSIM, "predict", "--cases", str(cases), "--format", "jsonl"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    long, short = (json.loads(line) for line in out.stdout.splitlines())
    assert "4,096 tokens" in long["warning"] and "warning" not in short


def test_predict_with_a_length_mix_a_prefix_cache_and_speculation(tmp_path: Path) -> None:
    base = ["predict", "--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm"]
    out = run(
        *base,
        "--concurrency",
        "8",
        "--length-mix",
        "128,64:0.7;4096,1024:0.3",
        "--shared-prefix-len",
        "100",
        "--spec-method",
        "eagle3",
    )
    assert out.returncode == 0, out.stderr
    assert "note: lengths drawn from the mix 128,64:0.7;4096,1024:0.3 (means 1318/352" in out.stdout
    assert "note: prefix cache: 100 shared prefix tokens" in out.stdout
    assert "note: speculative decoding EAGLE-3 k3 at an assumed acceptance of 0.70" in out.stdout
    pairs = tmp_path / "lengths.csv"
    pairs.write_text("input_len,output_len\n100,10\n300,30\n")
    mixed = run(*base, "--concurrency", "4", "--lengths-file", str(pairs), "--json")
    assert mixed.returncode == 0, mixed.stderr
    assert json.loads(mixed.stdout)["ttft_ms_p99"] > json.loads(mixed.stdout)["ttft_ms_p50"]
    both = run(*base, "--lengths-file", str(pairs), "--length-mix", "1,1")
    assert both.returncode == 2 and "not both" in both.stderr


def test_predict_with_a_length_preset_and_a_draft_model(tmp_path: Path) -> None:
    base = ["predict", "--model", "Qwen/Qwen3-32B", "--hardware", "h100-sxm", "--engine", "sglang"]
    base += ["--tp", "2", "--concurrency", "4"]
    out = run(
        *base,
        "--length-mix",
        "azure-conv",
        "--spec-method",
        "draft",
        "--spec-draft-model",
        "Qwen/Qwen3-0.6B",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    config = json.loads(out.stdout)["configuration"]
    assert config["spec_method"] == "draft" and config["spec_draft_model"] == "Qwen/Qwen3-0.6B"
    assert config["workload"]["input_len"] == 1235  # the preset's lognormal mean
    table = run(
        *base,
        "--length-mix",
        "azure-conv",
        "--spec-method",
        "draft",
        "--spec-draft-model",
        "Qwen/Qwen3-0.6B",
    )
    assert table.returncode == 0, table.stderr
    assert "the preset azure-conv, Azure LLM inference trace 2023" in table.stdout
    assert "azure-conv source: Azure/AzurePublicDataset" in table.stdout
    assert "draft model k4 (Qwen/Qwen3-0.6B)" in table.stdout
    # the cases CSV carries the draft model too
    cases = tmp_path / "cases.csv"
    cases.write_text(
        "model,hardware,engine,tp,concurrency,length_mix,spec_method,spec_draft_model\n"
        "Qwen/Qwen3-32B,h100-sxm,sglang,2,4,azure-conv,draft,Qwen/Qwen3-0.6B\n"
        "Qwen/Qwen3-32B,h100-sxm,sglang,2,4,azure-conv,draft,meta-llama/Meta-Llama-3.1-8B\n"
    )
    rows = run("predict", "--cases", str(cases), "--format", "jsonl")
    good, bad = (json.loads(line) for line in rows.stdout.splitlines())
    assert good["tpot_ms_mean"] > 0 and "tokenizer" in bad["error"]


def test_optimize_searches_a_named_draft_model_and_its_result_exports(tmp_path: Path) -> None:
    """--speculative draft:MODEL puts the draft beside plain decoding on SGLang and TRT-LLM; a
    draft result carries its draft model into the JSON, and export loads it."""
    base = ["optimize", "--model", "Qwen/Qwen3-32B", "--hardware", "h100-sxm", "--devices", "1"]
    base += ["--concurrency", "1", "--input-len", "512", "--output-len", "256", "--no-save"]
    base += ["--engines", "sglang", "--objective", "latency"]
    out = run(*base, "--speculative", "draft:Qwen/Qwen3-0.6B", "--generations", "2", "--json")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["request"]["speculative"] == ["draft:Qwen/Qwen3-0.6B"]
    configs = [doc["optimal_configuration"], *(a for a in doc.get("alternatives", []))]
    drafted = [c for c in configs if c.get("spec_method") == "draft"]
    assert drafted, [c.get("spec_method") for c in configs]
    assert {c["spec_draft_model"] for c in drafted} == {"Qwen/Qwen3-0.6B"}
    plan = tmp_path / "draft.json"
    plan.write_text(json.dumps(drafted[0]))
    exported = run("export", str(plan), "--target", "sglang")
    assert exported.returncode == 0, exported.stderr
    assert "--speculative-draft-model-path Qwen/Qwen3-0.6B" in exported.stdout
    for bad, needle in (
        ("draft", "name it as draft:MODEL"),
        ("draft:meta-llama/Llama-3.1-8B", "must share the target's tokenizer"),
    ):
        refused = run(*base, "--speculative", bad)
        assert refused.returncode == 2 and needle in refused.stderr, refused.stderr


def test_optimize_searches_speculation_and_takes_a_length_mix(tmp_path: Path) -> None:
    base = ["optimize", "--model", "meta-llama/Llama-3.1-8B", "--hardware", "h100-sxm"]
    base += ["--devices", "1", "--concurrency", "1", "--objective", "latency", "--no-save"]
    out = run(
        *base,
        "--input-len",
        "512",
        "--output-len",
        "128",
        "--speculative",
        "eagle3,ngram",
        "--population",
        "16",
        "--generations",
        "3",
        "--json",
    )
    assert out.returncode == 0, out.stderr
    best = json.loads(out.stdout)["optimal_configuration"]
    # one request in flight: a draft's tokens ride on the weight reads, so speculation wins
    assert best["spec_method"] in ("eagle3", "ngram")
    mix = run(*base, "--length-mix", "256,64:0.5;1024,256:0.5", "--generations", "1", "--json")
    assert mix.returncode == 0, mix.stderr
    assert json.loads(mix.stdout)["request"]["workload"]["length_mix"]
    for extra, needle in (
        (["--input-len", "512"], "missing output_len (or a length_mix)"),
        (["--input-len", "512", "--output-len", "64", "--length-mix", "1,1"], "not both"),
        (["--input-len", "512", "--output-len", "64", "--speculative", "medusa"], "medusa"),
    ):
        bad = run(*base, *extra)
        assert bad.returncode == 2 and needle in bad.stderr, bad.stderr
