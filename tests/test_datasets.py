"""Loaders of the measured e2e datasets, checked against rows read by hand from the raw files.

Every expected value below was computed from the quoted raw line (the data dir is
``$BUDSIM_DATA`` or ``../shared/data``); tests that need the data skip when it is absent.
"""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from measured import data_or_skip

from budsim.core.dtypes import KV_DTYPES, WEIGHT_DTYPES
from budsim.core.errors import BudsimError
from budsim.learn import datasets

REL = 1e-12


@pytest.fixture(scope="module")
def df() -> Any:
    return datasets.load_measurements(data_or_skip())


def _row(df: Any, source: str, row_id: str) -> Any:
    sel = df[(df.source == source) & (df.row_id == row_id)]
    assert len(sel) == 1, f"{source} {row_id}: {len(sel)} rows"
    return sel.iloc[0]


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


# ------------------------------------------------------------------------------------------------
# API behaviour that needs no data


def test_module_import_does_not_import_pandas() -> None:
    code = "import sys, budsim.learn.datasets; sys.exit('pandas' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    explicit = tmp_path / "explicit"
    explicit.mkdir()
    monkeypatch.setenv("BUDSIM_DATA", str(env_dir))
    assert datasets.data_dir() == env_dir.resolve()
    assert datasets.data_dir(explicit) == explicit.resolve()
    assert datasets.data_dir(str(explicit)) == explicit.resolve()


def test_data_dir_missing_raises(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BudsimError, match="not found"):
        datasets.data_dir(tmp_path / "nope")
    monkeypatch.setenv("BUDSIM_DATA", str(tmp_path / "also-nope"))
    with pytest.raises(BudsimError, match="BUDSIM_DATA"):
        datasets.data_dir()


def test_unknown_source_raises() -> None:
    with pytest.raises(BudsimError, match="unknown data source 'mlperf'"):
        datasets.load_measurements(sources=["mlperf"])


def test_named_source_missing_raises(tmp_path: Path) -> None:
    (tmp_path / "e2e").mkdir()
    with pytest.raises(BudsimError, match="splitwise"):
        datasets.load_measurements(tmp_path, sources=["splitwise"])
    # an empty data dir loads as an empty frame with the full schema when no source is named
    empty = datasets.load_measurements(tmp_path)
    assert len(empty) == 0
    assert list(empty.columns) == [c for c, _ in datasets.COLUMNS]


def test_available_sources() -> None:
    assert datasets.available_sources() == (
        "aic_silicon",
        "llm_inference_bench",
        "splitwise",
        "lmdeploy",
        "rocm_vllm",
        "trtllm_perf",
        "ml_energy_v2",
        "ml_energy_v3",
    )


def test_image_version_parsing() -> None:
    # container-image tags as they appear in aic_silicon silicon_data_source strings
    parse = datasets._image_version
    assert parse("workflow_run_id=253; nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6.post2") == (
        "1.2.0rc6.post2"
    )
    assert parse("wip=False; image=lmsysorg/sglang:v0.5.8.post1-cu130-amd64") == "0.5.8.post1"
    assert parse("x=1; image=nvcr.io#nvidia/tensorrt-llm/release:1.2.0rc6.post3") == (
        "1.2.0rc6.post3"
    )
    assert parse("measured=2026-04-17T00:00:00.000Z; vllm/vllm-openai:v0.19.0-cu130") == "0.19.0"
    assert parse("db-dump/2026-04-27; config_id=88; silicon_concurrency=16") is None


def test_splitwise_identity_filter() -> None:
    # perf_model.csv line 802: bloom-176b,a100-80gb,512,1,1024,...,175.807..,50.355..,17353.93..,8
    # expected e2e = 175.807 + 1023 * 50.355 = 51689 ms; 17354 / 51689 = 0.34 -> rejected
    assert not datasets.splitwise_consistent(
        175.8074180688709, 50.35533313366347, 17353.93786430359, 1024
    )
    # line 803: 175.18166382797062, 50.44950385448702, 51801.96499824524 -> ratio 1.0002 -> kept
    assert datasets.splitwise_consistent(
        175.18166382797062, 50.44950385448702, 51801.96499824524, 1024
    )
    # 20 % tolerance boundary: expected 1000 ms
    assert datasets.splitwise_consistent(1000.0, 0.0, 1199.0, 1)
    assert not datasets.splitwise_consistent(1000.0, 0.0, 1201.0, 1)


# ------------------------------------------------------------------------------------------------
# schema and counts


def test_schema_and_vocabularies(df: Any) -> None:
    assert list(df.columns) == [c for c, _ in datasets.COLUMNS]
    assert set(df.source) == set(datasets.SOURCES)
    assert set(df.hardware.dropna()) <= datasets.HARDWARE_IDS
    assert set(df.engine) <= set(datasets.ENGINES)
    assert set(df.scenario) <= set(datasets.SCENARIOS)
    assert set(df.weight_dtype) <= set(WEIGHT_DTYPES)
    assert set(df.kv_dtype) <= set(KV_DTYPES)
    assert set(df["mode"]) == {"agg", "disagg"}
    assert (df[["tp", "pp", "dp", "ep"]] >= 1).all().all()
    assert df.groupby("source").row_id.apply(lambda s: s.is_unique).all()
    # max_throughput has no load level; every other scenario has one except the aic row without
    # silicon_concurrency
    assert df[df.scenario == "max_throughput"].load.isna().all()
    assert df[df.scenario != "max_throughput"].load.isna().sum() == 1
    # every row has at least one target
    assert df[list(datasets.TARGETS)].notna().any(axis=1).all()


def test_counts_per_source(df: Any) -> None:
    counts = df.groupby("source").size().to_dict()
    assert counts == {
        "aic_silicon": 2759,  # 3597 rows, 838 repeats of a run merged (see below)
        "llm_inference_bench": 3908,  # 3945 lines, 37 repeated configurations merged
        "splitwise": 192,  # 228 configurations, 36 with no repeat passing the e2e identity
        "lmdeploy": 80,  # 180 static rows over 3 doc versions, 100 identical republications
        "rocm_vllm": 296,  # 602 README cells (3 "TODO"), repeats per vLLM version merged
        "trtllm_perf": 757,
        "ml_energy_v2": 298,
        "ml_energy_v3": 379,
    }
    scen = df.groupby(["source", "scenario"]).size().to_dict()
    assert scen[("trtllm_perf", "max_throughput")] == 699
    assert scen[("trtllm_perf", "static")] == 58
    assert scen[("rocm_vllm", "max_throughput")] == 56
    assert scen[("rocm_vllm", "static")] == 240


def test_aic_counts_and_gpu_formula(df: Any) -> None:
    aic = df[df.source == "aic_silicon"]
    assert (aic["mode"] == "agg").sum() == 1580  # 2077 rows in the file
    assert (aic["mode"] == "disagg").sum() == 1179  # 1520
    agg = aic[aic["mode"] == "agg"]
    assert (agg.n_devices == agg.tp * agg.dp * agg.pp).all()
    assert agg.load.isna().sum() == 1
    # disagg rows without worker counts cannot know their device count
    disagg = aic[aic["mode"] == "disagg"]
    assert disagg.n_devices.isna().sum() == 915
    # the pools' worker counts are known exactly where the device count is
    assert (disagg.prefill_workers.isna() == disagg.n_devices.isna()).all()
    assert (disagg.decode_workers.isna() == disagg.n_devices.isna()).all()
    known = disagg[disagg.n_devices.notna()]
    pools = known.prefill_workers * known.prefill_tp * known.prefill_dp * known.prefill_pp
    assert (pools + known.decode_workers * known.tp * known.dp * known.pp == known.n_devices).all()
    assert agg[["prefill_workers", "prefill_tp", "decode_workers"]].isna().all().all()
    assert (aic.scenario == "concurrency").all()
    assert aic.hardware.value_counts().to_dict() == {
        "b200": 1064,
        "gb200": 459,
        "h200-sxm": 434,
        "b300": 321,
        "h100-sxm": 282,
        "gb300": 199,
    }


def test_aic_quantised_rows_use_an_fp8_kv_cache(df: Any) -> None:
    aic = df[df.source == "aic_silicon"].set_index("row_id")
    # first data row of the file, checked by hand: MiniMax-M2.5, precision fp8, gemm/moe fp8
    row = aic.loc["minimaxm2_5_b300_vllm_fp8_agg_8192x1024_c128_cfg733"]
    assert (row.weight_dtype, row.kv_dtype) == ("fp8", "fp8")
    assert (row.tp, row.load, row.input_len, row.output_len) == (4, 128, 8192, 1024)
    quantised = aic.weight_dtype.isin(["fp8", "nvfp4"])
    assert (aic[quantised].kv_dtype == "fp8").all()
    assert (aic[~quantised].kv_dtype == "auto").all()


def test_aic_wide_ep_rows(df: Any) -> None:
    agg = df[(df.source == "aic_silicon") & (df["mode"] == "agg") & (df.hardware == "gb200")]
    # file: tp_size 72, attention_dp_size 1, moe_tp_size 72, moe_ep_size 1 (20 SGLang rows)
    sglang = agg[agg.engine == "sglang"]
    assert len(sglang) == 20
    assert set(zip(sglang.tp, sglang.dp, sglang.ep, sglang.n_devices, strict=True)) == {
        (1, 72, 72, 72.0)
    }
    assert (sglang.max_num_seqs.dropna() >= sglang.load[sglang.max_num_seqs.notna()]).all()
    # file line 2356, 2026_04_06_deepseek_r1_gb200_trtllm_fp4_agg_1024x1024_c1075...: tp_size 36,
    # attention_dp 1, moe_tp 36, moe_ep 1, batch 1075, TTFT 1823.14784, TPOT 17.926655
    trt = agg[(agg.engine == "trtllm") & (agg.load == 1075) & (agg.input_len == 1024)]
    row = trt[trt.ttft_ms.round(3) == 1823.148].iloc[0]
    assert (row.tp, row.dp, row.ep, row.n_devices) == (1, 36, 36, 36.0)
    wide = agg.note.fillna("").str.startswith("read as wide EP")
    assert wide.sum() == 20 + 35  # every agg row of the 2026-04-06 GB200 campaign
    # disagg decode pools recorded the same way: file line 770,
    # dsr1_gb200_sglang_fp8_disagg_1024x1024_c4096_cfg236: decode tp 1, attention_dp 32,
    # moe_tp 32, moe_ep 1 (TTFT 4059.41, TPOT 32.80). 82 decode pools read so; the 10 whose worker
    # counts are recorded are all this SGLang GB200 layout
    pools = df[df.note.fillna("").str.contains("decode pool read as wide EP")]
    assert len(pools) == 82
    assert set(pools.engine) == {"sglang", "trtllm"} and (pools.ep == pools.dp).all()
    counted = pools[pools.decode_workers.notna()]
    assert set(zip(counted.hardware, counted.tp, counted.dp, counted.ep, strict=True)) == {
        ("gb200", 1, 32, 32)
    }
    assert len(counted) == 10
    assert "dsr1_gb200_sglang_fp8_disagg_1024x1024_c4096_cfg236" in set(pools.row_id)
    # SGLang's two-node DeepSeek layout, tp 16 with experts TP 16 (2048 = 16 blocks of 128), stays
    h100 = df[(df.hardware == "h100-sxm") & (df.engine == "sglang") & (df["mode"] == "disagg")]
    assert set(zip(h100.tp, h100.dp, h100.ep, strict=True)) == {(16, 1, 1)}
    others = df[~df.index.isin(agg[wide].index) & ~df.index.isin(pools.index)]
    assert not others.note.fillna("").str.contains("wide EP").any()


def test_aic_rows_that_record_an_n_gpu_run_as_n_squared(df: Any) -> None:
    aic = df[(df.source == "aic_silicon") & (df["mode"] == "agg")].set_index("row_id")
    # One Qwen3.5 SGLang run on 4 B200s (TTFT 661.896740739212, TPOT 18.854730144085675) is in the
    # file three times: line 343 (db dump, ..._cfg615: batch 32, tp_size 16, moe_tp 4, moe_ep 4),
    # line 1404 (..._c32_tp4_0_ep4_0_342: tp_size 4, moe_tp 1, moe_ep 4) and line 3453
    # (..._c32_tp4_ep4_1972: tp_size 16, moe_tp 4, moe_ep 4). Read as 4 GPUs, the three are one
    # run, kept once under the first.
    run = aic.loc["qwen3_5_b200_sglang_fp8_agg_1024x1024_c32_cfg615"]
    assert (run.ttft_ms, run.tpot_ms) == (661.896740739212, 18.854730144085675)
    assert (run.tp, run.dp, run.ep, run.n_devices) == (4, 1, 4, 4.0)
    assert "read as 4 GPUs" in run.note
    assert run.note.endswith(
        "same run as 2026_03_25_qwen3_5_397b_b200_sxm_sglang_fp8_agg_1024x1024_c32_tp4_0_ep4_0_342, "
        "2026_04_06_qwen3_5_397b_b200_sxm_sglang_fp8_agg_1024x1024_c32_tp4_ep4_1972"
    )
    assert not aic.index.str.endswith(("_tp4_0_ep4_0_342", "_c32_tp4_ep4_1972")).any()
    # vLLM's form. Line 299: kimik2_5_b200_vllm_fp4_agg_1024x1024_c32_cfg635: batch 8, tp_size 4,
    # attention_dp 4, moe_tp 1, moe_ep 16, TTFT 208.3183024878963, TPOT 18.513764939850052. Line 3481
    # (gap analysis, ..._c32_tp4_ep4_6) has 208.32 and 18.51 with batch 32, tp_size 4, moe_ep 4:
    # the same run to two decimals, which stays a row of its own (its numbers are not identical).
    vllm = aic.loc["kimik2_5_b200_vllm_fp4_agg_1024x1024_c32_cfg635"]
    vllm_twin = aic.loc[
        "kimi_k2_5_gap_analysis_kimi_k2_5_gap_analysis_b200_sxm_vllm_fp4_agg_1024x1024_c32_tp4_ep4_6"
    ]
    assert (round(vllm.ttft_ms, 2), round(vllm.tpot_ms, 2)) == (208.32, 18.51)
    assert (vllm_twin.ttft_ms, vllm_twin.tpot_ms) == (208.32, 18.51)
    for r in (vllm, vllm_twin):
        assert (r.tp, r.dp, r.ep, r.n_devices, r.max_num_seqs) == (4, 1, 4, 4.0, 32.0)
    read = aic[aic.note.str.contains("the row recorded tp x ep as its GPU count")]
    assert len(read) == 218  # 274 + 61 rows in the file, before repeats merge
    assert set(zip(read.tp * read.dp, read.ep, strict=True)) == {(4, 4), (8, 8)}
    # 2 x 2 fits one node and has no twin: Qwen3.5 on B300 keeps its 4 GPUs
    assert not aic[(aic.hardware == "b300") & (aic.ep == 2)].note.str.contains("read as").any()
    assert (aic[(aic.hardware == "b300") & (aic.ep == 2)].n_devices == 4.0).all()


def test_aic_repeated_runs_are_kept_once(df: Any) -> None:
    """The campaigns' tables overlap: 838 of the 3,597 rows repeat a run of another row exactly
    (same layout once read, load, lengths, TTFT and TPOT to the last digit). Kept twice, a run
    would count twice, and under the two names of one config (DeepSeek-R1 and -V3) it would sit on
    both sides of a grouped-by-model cross-validation split."""
    aic = df[df.source == "aic_silicon"].set_index("row_id")
    # line 284 (db dump, dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81, model deepseek-ai/DeepSeek-V3)
    # and lines 1351 and 2365 (the 2026-03-25 and 2026-04-06 tables, model deepseek-ai/DeepSeek-R1):
    # SGLang on 8 H200s at concurrency 4, one measurement; the configs differ only in their
    # transformers_version
    run = aic.loc["dsr1_h200_sglang_fp8_agg_1024x1024_c4_cfg81"]
    assert run.model == "deepseek-ai/DeepSeek-V3"
    assert run.note == (
        "same run as 2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_agg_1024x1024_c4_tp8_0_ep1_0_289, "
        "2026_04_06_deepseek_r1_h200_sxm_sglang_fp8_agg_1024x1024_c4_tp8_ep1_37"
    )
    assert (
        "2026_03_25_deepseek_r1_h200_sxm_sglang_fp8_agg_1024x1024_c4_tp8_0_ep1_0_289"
        not in aic.index
    )
    repeats = aic.note.str.extract(r"same run as (.*)$")[0].dropna().str.split(", ")
    assert repeats.str.len().sum() == 3597 - len(aic) == 838
    # what stays is one row per run: no two rows share every field that identifies a run
    key = ["hardware", "engine", "engine_version", "mode", "tp", "pp", "dp", "ep", "weight_dtype"]
    key += ["load", "input_len", "output_len", "ttft_ms", "tpot_ms"]
    agg = aic[aic["mode"] == "agg"].reset_index()
    agg["arch"] = agg.model.replace({"deepseek-ai/DeepSeek-R1": "deepseek-ai/DeepSeek-V3"})
    assert not agg.duplicated([*key, "arch", "max_num_seqs"]).any()


def test_aic_twin_rows_agree_on_their_layout(df: Any) -> None:
    # Campaigns copy runs between tables. Rows identical to the last digit are merged into one
    # (above); those the gap-analysis tables round to two decimals stay, and rows with the same
    # measured TTFT and TPOT to two decimals on the same hardware and lengths are one run, so once
    # read they must agree on parallelism, dtype and load. Without the n*n reading 110 of the 512
    # such groups (before merging) did not.
    agg = df[(df.source == "aic_silicon") & (df["mode"] == "agg")].copy()
    agg["t"], agg["p"] = agg.ttft_ms.round(2), agg.tpot_ms.round(2)
    groups = agg.groupby(["hardware", "input_len", "output_len", "t", "p"])
    layout = ["tp", "dp", "ep", "pp", "weight_dtype", "load"]
    sizes = groups.size()
    assert (sizes > 1).sum() == 159  # the duplication this check relies on
    assert (groups[layout].nunique(dropna=False) <= 1).all().all()


def test_caching_and_copies(df: Any) -> None:
    data = data_or_skip()
    start = time.perf_counter()
    again = datasets.load_measurements(data)
    assert time.perf_counter() - start < 0.5
    assert again.equals(df)
    again.loc[:, "ttft_ms"] = -1.0
    assert (datasets.load_measurements(data).ttft_ms != -1.0).any()
    sub = datasets.load_measurements(data, sources=["lmdeploy", "splitwise"])
    assert set(sub.source) == {"lmdeploy", "splitwise"}
    assert len(sub) == 80 + 192


# ------------------------------------------------------------------------------------------------
# aic_silicon hand-checked rows


def test_aic_agg_attention_dp_row(df: Any) -> None:
    # silicon_train.csv line 594:
    # dsr1_b200_trtllm_fp4_agg_1024x8192_c256_cfg191,db-dump/2026-04-27; config_id=191;
    # silicon_concurrency=256; ...; nvcr.io/nvidia/tensorrt-llm/release:1.2.0rc6.post2,trtllm,
    # 1.2.0rc6.post2,deepseek-ai/DeepSeek-V3,b200_sxm,fp4,agg,1024,8192,nvfp4,nvfp4,
    # 4,1,1,64,8,8,,,,,,,,,,,,,,,906.6183994952098,21.374843718536397
    # (batch 4, tp 1, pp 1, attention_dp 64, moe_tp 8, moe_ep 8). Line 2070 records the same run
    # (TTFT and TPOT identical to the last digit) as batch 32, tp 1, attention_dp 8, moe_tp 1,
    # moe_ep 8: attention DP over 8 GPUs, which the db dump wrote as 8 x 8.
    r = _row(df, "aic_silicon", "dsr1_b200_trtllm_fp4_agg_1024x8192_c256_cfg191")
    assert r.model == "deepseek-ai/DeepSeek-V3"
    assert r.model_relation == "exact"
    assert r.hardware == "b200"
    assert (r.engine, r.engine_version, r["mode"]) == ("trtllm", "1.2.0rc6.post2", "agg")
    assert (r.tp, r.pp, r.dp, r.ep) == (1, 1, 8, 8)
    assert r.n_devices == 8.0  # tp * attention_dp * pp
    assert r.max_num_seqs == 32.0  # batch 4 per 64 ranks = 32 per real rank
    assert "read as 8 GPUs" in r.note
    assert (r.weight_dtype, r.kv_dtype) == ("nvfp4", "fp8")  # quantised runs: FP8 KV
    assert (r.scenario, r.load) == ("concurrency", 256.0)  # concurrency, not batch_size 4
    assert (r.input_len, r.output_len) == (1024.0, 8192.0)
    assert r.ttft_ms == 906.6183994952098
    assert r.tpot_ms == 21.374843718536397
    e2e = (906.6183994952098 + 8191 * 21.374843718536397) / 1000.0  # = 176.0016...
    assert r.e2e_s == pytest.approx(e2e, rel=REL)
    assert r.out_tok_s == pytest.approx(256 * 8192 / e2e, rel=REL)
    assert r.total_tok_s == pytest.approx(256 * (1024 + 8192) / e2e, rel=REL)
    assert set(r.derived.split(",")) == {"e2e_s", "out_tok_s", "total_tok_s"}


def test_aic_missing_version_and_missing_concurrency(df: Any) -> None:
    # line 450: dsr1_b200_sglang_fp4_agg_1024x8192_c16_cfg88,db-dump/2026-04-27; config_id=88;
    # silicon_concurrency=16; measured=...; workflow_run_id=123,sglang,,deepseek-ai/DeepSeek-V3,
    # b200_sxm,fp4,agg,1024,8192,nvfp4,nvfp4,16,4,1,1,4,1,...,595.1418789598392,14.486688556566357
    r = _row(df, "aic_silicon", "dsr1_b200_sglang_fp4_agg_1024x8192_c16_cfg88")
    assert r.engine_version is None  # empty backend_version and no image in the source string
    assert (r.tp, r.dp, r.ep, r.n_devices, r.load) == (4, 1, 1, 4.0, 16.0)
    # line 891: deepseek_r1_deepseek_r1_gb200_trtllm_agg_4000x1000_c_tp8_epnone_1,source_file=
    # .../gb200/trtllm/1.2.0rc6.post1/deepseek_r1.csv; ...; image=nvcr.io/nvidia/ai-dynamo/
    # tensorrtllm-runtime:0.8.0; dynamo_version=0.8.0,trtllm,1.2.0rc6.post1,deepseek-ai/DeepSeek-R1,
    # gb200,fp4,agg,4000,1000,nvfp4,nvfp4,28,8,1,,1,8,...,39682.8381495343,31.491031573249757
    r = _row(df, "aic_silicon", "deepseek_r1_deepseek_r1_gb200_trtllm_agg_4000x1000_c_tp8_epnone_1")
    assert r.engine_version == "1.2.0rc6.post1"  # backend_version wins over the image tag
    assert _nan(r.load)  # no silicon_concurrency=
    assert (r.tp, r.dp, r.ep, r.n_devices) == (8, 1, 8, 8.0)  # empty attention_dp -> 1
    assert r.hardware == "gb200"
    assert r.e2e_s == pytest.approx((39682.8381495343 + 999 * 31.491031573249757) / 1000, rel=REL)
    assert _nan(r.out_tok_s)


def test_aic_weight_dtypes(df: Any) -> None:
    # line 893: ...h100_sxm_trtllm_agg_1024x128_c8_tp1_epnone_1,...; silicon_concurrency=8,trtllm,
    # 1.0.0rc3,meta-llama/Llama-3.1-8B-Instruct,h100_sxm,,agg,1024,128,,,8,1,1,,1,1,...,
    # 190.9545068625,7.94357745   (precision and quant modes empty -> bf16)
    r = _row(
        df,
        "aic_silicon",
        "meta_llama_llama_3_1_8b_instruct_meta_llama_llama_3_1_8b_instruct_h100_sxm_trtllm_agg_"
        "1024x128_c8_tp1_epnone_1",
    )
    assert r.weight_dtype == "bf16"
    assert r.model == "meta-llama/Meta-Llama-3.1-8B"
    assert r.model_relation == "same architecture"
    assert (r.hardware, r.n_devices, r.load, r.ttft_ms) == ("h100-sxm", 1.0, 8.0, 190.9545068625)
    # line 1070: ..._h200_sxm_sglang_agg_1000x100_c160_tp1_epnone_1,...,sglang,0.5.6.post2,
    # meta-llama/Llama-3.1-8B-Instruct,h200_sxm,fp8,agg,1000,100,fp8_block,fp8_block,160,...
    r = _row(
        df,
        "aic_silicon",
        "meta_llama_llama_3_1_8b_instruct_meta_llama_llama_3_1_8b_instruct_h200_sxm_sglang_agg_"
        "1000x100_c160_tp1_epnone_1",
    )
    assert (r.weight_dtype, r.engine_version, r.load) == ("fp8", "0.5.6.post2", 160.0)
    # line 1381: 2026_03_25_kimi_k2_5_b200_sxm_vllm_int4_agg_1024x8192_c16_tp8_0_ep1_0_319,...;
    # image=vllm/vllm-openai:v0.15.1,vllm,0.15.1,moonshotai/Kimi-K2.5,b200_sxm,int4,agg,1024,8192,
    # int4_wo,int4_wo,16,8,1,1,8,1,...,169.94694257664378,14.999136066987928
    r = _row(
        df,
        "aic_silicon",
        "2026_03_25_kimi_k2_5_b200_sxm_vllm_int4_agg_1024x8192_c16_tp8_0_ep1_0_319",
    )
    assert (r.weight_dtype, r.engine, r.engine_version) == ("int4", "vllm", "0.15.1")
    assert (r.tp, r.ep, r.n_devices, r.model) == (8, 1, 8.0, "moonshotai/Kimi-K2.5")


def test_aic_disagg_row(df: Any) -> None:
    # line 81: kimik2_5_gb200_trtllm_fp4_disagg_1024x1024_c4_cfg759,...; silicon_concurrency=4; ...;
    # nvcr.io/nvidia/ai-dynamo/tensorrtllm-runtime:1.1.0-dev.2,trtllm,1.1.0-dev.2,
    # moonshotai/Kimi-K2.5,gb200,fp4,disagg,1024,1024,nvfp4,nvfp4,,,,,,,
    # 1,1,1,1,4,1,4,   (prefill: batch 1, workers 1, tp 1, pp 1, attention_dp 4, moe_tp 1, ep 4)
    # 1,4,8,1,1,1,8,   (decode: batch 1, workers 4, tp 8, pp 1, attention_dp 1, moe_tp 1, ep 8)
    # 195.51323120103916,5.316830920749418
    r = _row(df, "aic_silicon", "kimik2_5_gb200_trtllm_fp4_disagg_1024x1024_c4_cfg759")
    assert r["mode"] == "disagg"
    assert r.n_devices == 1 * (1 * 4 * 1) + 4 * (8 * 1 * 1)  # 36
    assert (r.tp, r.pp, r.dp, r.ep) == (8, 1, 1, 8)  # decode pool
    assert (r.load, r.weight_dtype, r.engine_version) == (4.0, "nvfp4", "1.1.0-dev.2")
    assert (r.prefill_workers, r.prefill_tp, r.prefill_pp, r.prefill_dp, r.prefill_ep) == (
        1,
        1,
        1,
        4,
        4,
    )
    assert r.decode_workers == 4
    assert "prefill 1x(tp1 dp4 pp1 ep4)" in r.note
    assert "decode 4x(tp8 dp1 pp1 ep8)" in r.note
    assert "Dynamo runtime image tag" in r.note  # 1.1.0-dev.2 is the ai-dynamo image's tag
    assert r.ttft_ms == 195.51323120103916


# ------------------------------------------------------------------------------------------------
# llm_inference_bench


def test_lib_vllm_trtllm_rows(df: Any) -> None:
    # All_results.csv line 2:
    # Nvidia GH200 GPU,1,TensorRT-LLM,mistralai/Mistral-7B-v0.1,128,1,0.688306736946106,
    #   371.92720375776975
    r = _row(df, "llm_inference_bench", "L2")
    assert (r.hardware, r.engine, r.engine_version) == ("gh200", "trtllm", None)
    assert (r.n_devices, r.tp, r.pp) == (1.0, 1, 1)
    assert r.model == "mistralai/Mistral-7B-v0.1"
    assert (r.weight_dtype, r.kv_dtype, r.scenario, r.load) == ("fp16", "auto", "static", 1.0)
    assert (r.input_len, r.output_len) == (128.0, 128.0)
    assert r.e2e_s == 0.688306736946106
    assert r.total_tok_s == 371.92720375776975  # = (128 + 128) * 1 / 0.6883
    assert r.out_tok_s == pytest.approx(371.92720375776975 / 2, rel=REL)
    assert _nan(r.ttft_ms) and _nan(r.tpot_ms)  # no TPOT invented from e2e
    # line 455: Nvidia A100 GPU,4,TensorRT-LLM,meta-llama/Llama-2-7b-hf,128,1,0.7403770923614502,...
    r = _row(df, "llm_inference_bench", "L455")
    assert (r.hardware, r.n_devices, r.tp, r.pp) == ("a100-sxm-40gb", 4.0, 4, 1)
    assert "40GB" in r.hardware_note


def test_lib_llamacpp_is_batch1_layer_split(df: Any) -> None:
    # line 898: Nvidia H100 GPU,4,llama.cpp,meta-llama/Llama-2-7b-hf,128,1,1.590836,160.921656
    r = _row(df, "llm_inference_bench", "L898")
    assert (r.engine, r.n_devices, r.tp, r.pp, r.load) == ("llamacpp", 4.0, 1, 4, 1.0)
    assert r.e2e_s == 1.590836
    assert r.total_tok_s == 160.921656  # = 2 * 128 / 1.590836 (single stream)
    # line 899: Nvidia H100 GPU,4,llama.cpp,meta-llama/Llama-2-7b-hf,128,16,1.302518,196.542397
    r = _row(df, "llm_inference_bench", "L899")
    assert r.load == 1.0  # "Batch Size" 16 is llama-bench n_batch on one sequence
    assert "Batch Size 16" in r.note
    assert r.out_tok_s == pytest.approx(128 / 1.302518, rel=1e-6)


def test_lib_unknown_hardware_and_repeats(df: Any) -> None:
    # line 1521: Intel PVC GPU,1,vLLM,meta-llama/Llama-2-7b-hf,128,1,18.744642267934978,13.657...
    r = _row(df, "llm_inference_bench", "L1521")
    assert r.hardware is None
    assert r.hardware_raw == "Intel PVC GPU"
    assert r.e2e_s == 18.744642267934978
    # lines 2459 and 2465 repeat one configuration:
    # AMD MI250 GPU,2,vLLM,meta-llama/Llama-2-7b-hf,128,1,1.4722065975336591,173.8886379322499
    # AMD MI250 GPU,2,vLLM,meta-llama/Llama-2-7b-hf,128,1,1.4684160144310832,174.3375157204231
    r = _row(df, "llm_inference_bench", "L2459")
    assert r.hardware == "mi250"
    assert r.e2e_s == pytest.approx((1.4722065975336591 + 1.4684160144310832) / 2, rel=REL)
    assert r.total_tok_s == pytest.approx((173.8886379322499 + 174.3375157204231) / 2, rel=REL)
    assert "median of 2 repeats" in r.note
    assert not (df.row_id[df.source == "llm_inference_bench"] == "L2465").any()


def test_lib_deci_has_no_config(df: Any) -> None:
    deci = df[(df.source == "llm_inference_bench") & (df.model_raw == "Deci/DeciLM-7B")]
    assert len(deci) == 84  # 85 lines, one repeat merged; kept with model None
    assert deci.model.isna().all()
    assert (deci.model_relation == "none").all()


# ------------------------------------------------------------------------------------------------
# splitwise


def test_splitwise_filtered_median_row(df: Any) -> None:
    # perf_model.csv lines 802-806, all starting "bloom-176b,a100-80gb,512,1,1024,0.0,0.0," and
    # ending ",8" (tp); in between prompt_time,token_time,e2e_time (ms):
    #   802: 175.8074180688709,50.35533313366347,17353.93786430359
    #   803: 175.18166382797062,50.44950385448702,51801.96499824524
    #   804: 179.97782514430585,50.55913117869902,51917.52934455872
    #   805: 173.88690705411136,50.5482324368101,51899.7266292572
    #   806: 173.92455809749663,50.51579097020035,51866.46342277527
    # line 802 violates the e2e identity (ratio 0.34) and is dropped; median of the other 4
    r = _row(df, "splitwise", "bloom-176b|a100-80gb|tp8|p512|b1|t1024")
    assert r.model == "bigscience/bloom"
    assert (r.hardware, r.engine, r.n_devices, r.tp) == ("a100-sxm-80gb", "other", 8.0, 8)
    assert (r.scenario, r.load, r.input_len, r.output_len) == ("static", 1.0, 512.0, 1024.0)
    assert r.ttft_ms == pytest.approx((173.92455809749663 + 175.18166382797062) / 2, rel=REL)
    assert r.tpot_ms == pytest.approx((50.51579097020035 + 50.5482324368101) / 2, rel=REL)
    e2e_s = (51866.46342277527 + 51899.7266292572) / 2 / 1000.0  # ms -> s
    assert r.e2e_s == pytest.approx(e2e_s, rel=REL)
    assert r.out_tok_s == pytest.approx(1 * 1024 / e2e_s, rel=REL)
    assert r.total_tok_s == pytest.approx(1 * (512 + 1024) / e2e_s, rel=REL)
    assert "4/5" in r.note


def test_splitwise_dropped_and_power_capped(df: Any) -> None:
    sw = df[df.source == "splitwise"]
    # llama2-70b,a100-80gb,512,64,128,... tp 2: e2e is 17x prompt + 127 token steps in all 5 repeats
    assert not (sw.row_id == "llama2-70b|a100-80gb|tp2|p512|b64|t128").any()
    pcap = sw[sw.hardware_raw == "h100-80gb-pcap"]
    assert len(pcap) == 64
    assert pcap.hardware.isna().all()
    assert pcap.hardware_note.str.contains("power-capped").all()


# ------------------------------------------------------------------------------------------------
# lmdeploy


def test_lmdeploy_row_and_dedupe(df: Any) -> None:
    # raw/a100_fp16_v0.1.0a1_3e391df467.md, section llama2-70b (same line in v0.1.0):
    # | 16 | 4 | 2048 | 128 | 189.34 | 73.98 | 5.776 | 0.437 | 7.612 | 0.035 | 0.036 | 0.036 |
    #   0.037 |
    r = _row(df, "lmdeploy", "llama2-70b|b16|tp4|p2048|o128")
    assert r.model == "meta-llama/Llama-2-70b-hf"
    assert (r.hardware, r.engine, r.engine_version) == ("a100-sxm-80gb", "lmdeploy", "0.1.0a1")
    assert (r.n_devices, r.tp, r.weight_dtype) == (4.0, 4, "fp16")
    assert (r.scenario, r.load, r.input_len, r.output_len) == ("static", 16.0, 2048.0, 128.0)
    assert r.ttft_ms == pytest.approx(5776.0, rel=REL)  # FTL(ave) 5.776 s
    assert r.itl_p50_ms == pytest.approx(35.0, rel=REL)
    assert r.tpot_ms == pytest.approx(35.0, rel=REL)  # proxy: median per-token latency
    assert r.itl_p95_ms == pytest.approx(36.0, rel=REL)
    assert r.itl_p99_ms == pytest.approx(37.0, rel=REL)
    assert r.out_tok_s == 189.34
    assert r.e2e_s == pytest.approx(16 * 128 / 189.34, rel=REL)
    assert r.total_tok_s == pytest.approx(189.34 * (2048 + 128) / 128, rel=REL)
    assert r.note == "identical in lmdeploy 0.1.0a1, 0.1.0"
    # the v0.2.0 "FP16" table repeats the llama2-7b table: | 1 | 1 | 1 | 128 | 100.02 | 76.55 | ...
    r = _row(df, "lmdeploy", "llama2-7b|b1|tp1|p1|o128")
    assert r.note == "identical in lmdeploy 0.1.0a1, 0.1.0, 0.2.0"
    assert r.out_tok_s == 100.02
    lm = df[df.source == "lmdeploy"]
    assert lm.model_raw.value_counts().to_dict() == {
        "llama2-7b": 20,
        "llama2-13b": 20,
        "internlm-20b": 20,
        "llama2-70b": 20,
    }


# ------------------------------------------------------------------------------------------------
# rocm_vllm


def test_rocm_latency_units_and_median(df: Any) -> None:
    # rocm_vllm_dev_docker_readme_tables_dedup.csv lines 77-78 (same configuration, two READMEs):
    # 0.6.6,6.3.1,latency,Llama 3.1 405B (amd/Llama-3.1-70B-Instruct-FP8-KV),FP8,8,1.0,128,2048,,,,
    #   46.632,sec,...
    # 0.6.6,6.3.1,latency,Llama 3.1 405B (amd/Llama-3.1-70B-Instruct-FP8-KV),FP8,8,1.0,128,2048,,,,
    #   51739.70,ms,...
    r = _row(
        df,
        "rocm_vllm",
        "latency|Llama 3.1 405B (amd/Llama-3.1-70B-Instruct-FP8-KV)|vllm0.6.6|rocm6.3.1"
        "|b1|128x2048",
    )
    assert r.e2e_s == pytest.approx((46.632 + 51.7397) / 2, rel=REL)  # 51739.70 ms -> 51.7397 s
    assert r.model == "meta-llama/Meta-Llama-3.1-405B"
    assert r.model_relation == "ambiguous"
    assert (r.hardware, r.n_devices, r.tp) == ("mi300x", 8.0, 8)
    assert (r.weight_dtype, r.kv_dtype, r.engine, r.engine_version) == (
        "fp8",
        "fp8",
        "vllm",
        "0.6.6",
    )
    assert (r.scenario, r.load) == ("static", 1.0)
    assert r.out_tok_s == pytest.approx(2048 / r.e2e_s, rel=REL)
    # lines 35-36: 0.10.0,6.4.1,latency,Llama 3.1 70B (amd/Llama-3.1-70B-Instruct-FP8-KV),FP8,8,1.0,
    # 128,2048,,,,17.188,sec,...  and  ...,17.236,sec,...
    r = _row(
        df,
        "rocm_vllm",
        "latency|Llama 3.1 70B (amd/Llama-3.1-70B-Instruct-FP8-KV)|vllm0.10.0|rocm6.4.1"
        "|b1|128x2048",
    )
    assert r.e2e_s == pytest.approx(17.212, rel=REL)
    assert r.model == "meta-llama/Meta-Llama-3.1-70B"


def test_rocm_throughput_row(df: Any) -> None:
    # line 73: 0.10.0,6.4.1,throughput,Llama 3.1 70B (amd/Llama-3.1-70B-Instruct-FP8-KV),FP8,8,,
    # 128,2048,3200.0,3200.0,13383.3,,,...
    r = _row(
        df,
        "rocm_vllm",
        "throughput|Llama 3.1 70B (amd/Llama-3.1-70B-Instruct-FP8-KV)|vllm0.10.0|rocm6.4.1"
        "|n3200|128x2048",
    )
    assert r.scenario == "max_throughput"
    assert _nan(r.load)
    assert r.total_tok_s == 13383.3  # input + output tokens
    assert r.out_tok_s == pytest.approx(13383.3 * 2048 / (128 + 2048), rel=REL)
    assert "max_num_seqs=3200" in r.note


# ------------------------------------------------------------------------------------------------
# trtllm_perf


def test_trtllm_rows(df: Any) -> None:
    # trtllm_perf_overview_tables.csv line 2:
    # "TRT-LLM release/0.5.0 ... (engine build, static batching)",GPT-J 6B,H100,TP1,1,FP8,64.0,128,
    # 128.0,10907.0,total_output_tokens_per_sec
    r = _row(df, "trtllm_perf", "L2")
    assert r.model == "EleutherAI/gpt-j-6b"
    assert (r.hardware, r.engine, r.engine_version) == ("h100-sxm", "trtllm", "0.5.0")
    assert (r.weight_dtype, r.kv_dtype) == ("fp8", "fp8")
    assert (r.scenario, r.load, r.n_devices, r.tp) == ("static", 64.0, 1.0, 1)
    assert r.out_tok_s == 10907.0
    assert r.total_tok_s == pytest.approx(21814.0, rel=REL)
    assert r.e2e_s == pytest.approx(64 * 128 / 10907.0, rel=REL)
    # line 40: "TRT-LLM release/0.5.0 ...",GPT-J 6B,H100,TP1,1,FP8,1.0,128,,7.0,
    #   first_token_latency_ms
    r = _row(df, "trtllm_perf", "L40")
    assert (r.scenario, r.load, r.ttft_ms, r.input_len) == ("static", 1.0, 7.0, 128.0)
    assert _nan(r.output_len) and _nan(r.out_tok_s)
    # line 618: "TRT-LLM ... v0.13.0 data (... max-throughput)",Mixtral 8x7B,H200 141GB HBM3,TP2,2,
    # FP8,,128,128.0,25135.25,"output_tokens_per_sec_total (...)"
    r = _row(df, "trtllm_perf", "L618")
    assert r.model == "mistralai/Mixtral-8x7B-v0.1"
    assert (r.hardware, r.engine_version, r.n_devices, r.tp) == ("h200-sxm", "0.13.0", 2.0, 2)
    assert r.scenario == "max_throughput"
    assert _nan(r.load)
    assert r.out_tok_s == 25135.25
    assert r.total_tok_s == pytest.approx(50270.5, rel=REL)


# ------------------------------------------------------------------------------------------------
# ML.ENERGY


def test_ml_energy_v2_rows(df: Any) -> None:
    # data/llm_text_generation/code/H100 80GB HBM3/google/codegemma-7b/bs128+tp1+pp1.json:
    # {"Model": "google/codegemma-7b", "GPU": "NVIDIA H100 80GB HBM3", "TP": 1, "PP": 1,
    #  "Avg TPOT (s)": 0.06137106847481049, "Token tput (tok/s)": 1607.8592277116104,
    #  "Avg Output Tokens": 84.60060975609755, "Avg BS (reqs)": 126.97036158861884,
    #  "Max BS (reqs)": 128}
    r = _row(df, "ml_energy_v2", "code/H100 80GB HBM3/google/codegemma-7b/bs128+tp1+pp1.json")
    assert (r.model, r.hardware, r.engine) == ("google/codegemma-7b", "h100-sxm", "vllm")
    assert (r.scenario, r.load) == ("max_num_seqs", 128.0)
    assert r.realised_batch == 126.97036158861884
    assert r.tpot_ms == pytest.approx(61.37106847481049, rel=REL)
    assert r.out_tok_s == 1607.8592277116104
    assert r.output_len == 84.60060975609755
    assert _nan(r.input_len) and _nan(r.ttft_ms)
    assert (r.workload, r.weight_dtype, r.derived) == ("code", "bf16", "")
    # chat/A100-SXM4-40GB/mistralai/Mixtral-8x22B-Instruct-v0.1/bs32+tp8+pp2.json: "TP": 8, "PP": 2
    r = _row(
        df,
        "ml_energy_v2",
        "chat/A100-SXM4-40GB/mistralai/Mixtral-8x22B-Instruct-v0.1/bs32+tp8+pp2.json",
    )
    assert (r.hardware, r.n_devices, r.tp, r.pp) == ("a100-sxm-40gb", 16.0, 8, 2)
    assert r.model == "mistralai/Mixtral-8x22B-v0.1"


def test_ml_energy_v3_rows(df: Any) -> None:
    # public/data/models/Qwen__Qwen3-30B-A3B-Instruct-2507__lm-arena-chat.json configurations[24]:
    # {"avg_batch_size": 255.80208333333334, "avg_output_len": 920.416015625, "gpu_model": "H100",
    #  "max_num_seqs": 256, "median_itl_ms": 34.58299767225981, "num_gpus": 2,
    #  "output_throughput_tokens_per_sec": 7154.113418980205, "p90_itl_ms": 37.12718449532986,
    #  "p95_itl_ms": 39.88573867827654, "p99_itl_ms": 56.68182469904422,
    #  "parallelization": {"data_parallel": 1, "expert_parallel": 2, "tensor_parallel": 1}}
    r = _row(df, "ml_energy_v3", "Qwen__Qwen3-30B-A3B-Instruct-2507__lm-arena-chat#24")
    assert (r.model, r.model_relation) == ("Qwen/Qwen3-30B-A3B", "same architecture")
    assert (r.hardware, r.n_devices) == ("h100-sxm", 2.0)
    assert (r.tp, r.dp, r.ep) == (2, 1, 2)  # 2 GPUs, DP 1: attention TP 2 (raw tensor=1)
    assert "tensor=1 expert=2 data=1" in r.note
    assert (r.scenario, r.load, r.realised_batch) == ("max_num_seqs", 256.0, 255.80208333333334)
    assert r.tpot_ms == 34.58299767225981 == r.itl_p50_ms
    assert (r.itl_p90_ms, r.itl_p95_ms, r.itl_p99_ms) == (
        37.12718449532986,
        39.88573867827654,
        56.68182469904422,
    )
    assert r.out_tok_s == 7154.113418980205
    assert r.output_len == 920.416015625
    assert (r.workload, r.weight_dtype, r.derived) == ("lm-arena-chat", "bf16", "tpot_ms")
    # Qwen__Qwen3-14B__gpqa.json configurations[0]: "gpu_model": "B200", "num_gpus": 1,
    # "max_num_seqs": 8, "median_itl_ms": 33.62808651581872
    r = _row(df, "ml_energy_v3", "Qwen__Qwen3-14B__gpqa#0")
    assert (r.hardware, r.n_devices, r.load, r.tpot_ms) == ("b200", 1.0, 8.0, 33.62808651581872)
    # gpt-oss-20b is an MXFP4 checkpoint; Nemotron-Nano has no config (kept, model None)
    v3 = df[df.source == "ml_energy_v3"]
    assert (v3[v3.model_raw == "openai/gpt-oss-20b"].weight_dtype == "mxfp4").all()
    nemo = v3[v3.model_raw.str.startswith("nvidia/NVIDIA-Nemotron-Nano")]
    assert len(nemo) == 56
    assert nemo.model.isna().all()


def test_models_of_one_architecture_share_a_group(df: Any) -> None:
    """Models whose layers have the same shapes are held out together by a grouped-by-model
    cross-validation: DeepSeek-R1 and -V3 (only transformers_version differs), Llama-3-8B and
    Llama-3.1-8B (only the context length differs), Llama-2-70B and Llama-3-70B (vocabulary and
    rope); distinct shapes stay apart."""
    groups = df.dropna(subset=["model"]).groupby("model").model_group.unique()
    group = {model: list(g)[0] for model, g in groups.items()}
    assert all(len(g) == 1 for g in groups)
    assert group["deepseek-ai/DeepSeek-V3"] == group["deepseek-ai/DeepSeek-R1"]
    assert group["meta-llama/Meta-Llama-3.1-8B"] == group["meta-llama/Meta-Llama-3-8B"]
    assert group["meta-llama/Meta-Llama-3-70B"] == group["meta-llama/Llama-2-70b-hf"]
    assert group["meta-llama/Llama-2-7b-hf"] == group["huggyllama/llama-7b"]
    # different shapes: 8B vs 70B, dense vs MoE, MLA with 256 vs 384 experts
    assert group["meta-llama/Meta-Llama-3-8B"] != group["meta-llama/Meta-Llama-3-70B"]
    assert group["mistralai/Mixtral-8x7B-v0.1"] != group["mistralai/Mistral-7B-v0.1"]
    assert group["moonshotai/Kimi-K2.5"] != group["deepseek-ai/DeepSeek-R1"]
    assert df[df.model.isna()].model_group.isna().all()
