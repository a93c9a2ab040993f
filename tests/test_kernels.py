"""The measured-kernel lookups (budsim.core.kernels) and their artefact in pretrained/kernels/.

Exact hits are checked against rows read from the AIConfigurator parquet tables (the data dir is
``$BUDSIM_DATA`` or ``../shared/data``; those tests skip when it is absent). The rows were picked by
hand among points the monotone envelope leaves as measured (a point slower than a larger size is
lowered, see grid.monotone_envelope).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from measured import data_or_skip

from budsim.core.hardware import get_device
from budsim.core.kernels import KernelSource, kernel_source
from budsim.core.kernels.artefact import (
    EngineTables,
    artefact_dir,
    read_npz,
    sha256_file,
    write_npz,
)
from budsim.core.kernels.grid import GridTable, fill_holes, monotone_envelope, multilinear
from budsim.core.kernels.sol import PROFILES, gemm_sol, moe_rank_load

REL = 1e-6
AIC = Path("kernels/aiconfigurator/data")


def _parquet(path: str) -> Any:
    pd = pytest.importorskip("pandas")
    return pd.read_parquet(data_or_skip() / AIC / path)


def _row(df: Any, **where: Any) -> float:
    sel = df
    for col, value in where.items():
        sel = sel[sel[col] == value]
    assert len(sel) == 1, f"{where}: {len(sel)} rows"
    return float(sel["latency"].iloc[0]) * 1e-3  # ms -> s


def _ks(device: str, engine: str) -> KernelSource:
    ks = kernel_source(get_device(device), engine)
    assert ks is not None
    return ks


# ------------------------------------------------------------------------------- exact hits


def test_gemm_exact_rows() -> None:
    df = _parquet("h200_sxm/gemm/trtllm/1.3.0rc20/gemm_perf.parquet")
    ks = _ks("h200-sxm", "trtllm")
    for m, n, k, dtype, fmt in [
        (8192, 4096, 4096, "fp8", "fp8"),
        (16384, 4096, 4096, "bfloat16", "bf16"),
    ]:
        want = _row(df, m=m, n=n, k=k, gemm_dtype=dtype)
        assert float(ks.gemm(m, n, k, fmt)) == pytest.approx(want, rel=REL)


def test_attention_exact_rows() -> None:
    gen = _parquet("h200_sxm/attention/vllm/0.24.0/generation_attention_perf.parquet")
    ks = _ks("h200-sxm", "vllm")
    layout = {"num_heads": 32, "num_key_value_heads": 8, "head_dim": 128, "window_size": 0}
    for batch, step in [(64, 4095), (128, 2047)]:
        want = _row(gen, batch_size=batch, step=step, kv_cache_dtype="bfloat16", **layout)
        got = ks.generation_attention(batch, step, 32, 8, 128, "bf16", None)
        assert float(got) == pytest.approx(want, rel=REL)
    ctx = _parquet("h100_sxm/attention/trtllm/1.3.0rc20/context_attention_perf.parquet")
    ks = _ks("h100-sxm", "trtllm")
    want = _row(ctx, batch_size=4, isl=4096, kv_cache_dtype="bfloat16", **layout)
    assert float(ks.context_attention(4, 4096, 32, 8, 128, "bf16", 0)) == pytest.approx(
        want, rel=REL
    )


def test_moe_mla_comm_exact_rows() -> None:
    moe = _parquet("h200_sxm/moe/trtllm/1.3.0rc20/moe_perf.parquet")
    ks = _ks("h200-sxm", "trtllm")
    mixtral = {"hidden_size": 4096, "inter_size": 14336, "topk": 2, "num_experts": 8}
    want = _row(
        moe,
        num_tokens=4096,
        moe_tp_size=1,
        moe_ep_size=1,
        moe_dtype="bfloat16",
        distribution="balanced",
        **mixtral,
    )
    got = ks.moe(4096, 4096, 14336, 2, 8, 1, 1, "bf16", "balanced")
    assert float(got) == pytest.approx(want, rel=REL)

    mla = _parquet("h200_sxm/mla/trtllm/1.3.0rc20/mla_generation_module_perf.parquet")
    # the module tables count the new token in `step`; the API takes cached tokens
    want = _row(
        mla, num_heads=16, batch_size=64, step=4096, kv_cache_dtype="fp8", gemm_type="fp8_block"
    )
    got, with_projections = ks.mla_generation(64, 4095, 16, "fp8", "fp8_block")
    assert with_projections
    assert float(got) == pytest.approx(want, rel=REL)

    ar = _parquet("h200_sxm/comm/vllm/0.24.0/custom_allreduce_perf.parquet")
    ks = _ks("h200-sxm", "vllm")
    # message_size counts bf16 elements
    want = _row(ar, backend="vllm_graph", num_gpus=8, message_size=1048576)
    assert float(ks.allreduce(2 * 1048576, 8)) == pytest.approx(want, rel=REL)
    nccl = _parquet("h200_sxm/comm/nccl/2.29.2/nccl_perf.parquet")
    want = _row(nccl, nccl_dtype="half", op_name="all_gather", num_gpus=4, message_size=4194304)
    assert float(ks.collective("all_gather", 2 * 4194304, 4)) == pytest.approx(want, rel=REL)


# ----------------------------------------------------------------------------- monotonicity


@pytest.mark.parametrize(
    ("device", "engine", "fmt"),
    [("h100-sxm", "vllm", "bf16"), ("h200-sxm", "sglang", "fp8"), ("b200", "trtllm", "nvfp4")],
)
def test_gemm_monotone_in_m(device: str, engine: str, fmt: str) -> None:
    ks = _ks(device, engine)
    m = np.unique(np.geomspace(1, 32768, 400).astype(int))
    for n, k in [(4096, 4096), (6144, 5120), (128256, 4096), (2560, 64)]:
        t = ks.gemm(m, n, k, fmt)
        assert np.all(np.diff(t) >= 0), (n, k)
        assert np.all(t > 0)


def test_decode_attention_monotone_in_context() -> None:
    ctx = np.unique(np.geomspace(1, 262144, 300).astype(int))
    for device, engine in [("h100-sxm", "vllm"), ("a100-sxm-80gb", "sglang"), ("b300", "trtllm")]:
        ks = _ks(device, engine)
        for layout in [(32, 8, 128), (40, 40, 128), (28, 4, 128), (64, 8, 64)]:
            for batch in (1, 32, 512):
                t = ks.generation_attention(batch, ctx, *layout, "bf16", None)
                assert np.all(np.diff(t) >= 0), (device, layout, batch)
        # a sliding window caps the attended context: far cheaper than full attention beyond it
        ctx = np.array([8192, 65536])
        windowed = ks.generation_attention(8, ctx, 32, 8, 128, "bf16", 4096)
        full = ks.generation_attention(8, ctx, 32, 8, 128, "bf16", None)
        assert windowed[1] < 0.5 * full[1] and windowed[1] < 1.5 * windowed[0]


# ------------------------------------------------------------------------- device scaling


def test_blackwell_variants_borrow_b200() -> None:
    for device in ("b300", "gb200"):
        ks = _ks(device, "trtllm")
        assert ks.system == "b200_sxm" and ks.scaled
        assert ks.basis.startswith("b200_sxm trtllm ")
        assert f"scaled to {device} (compute x" in ks.basis
    b200 = _ks("b200", "trtllm")
    assert not b200.scaled and "scaled" not in b200.basis
    # B300's fp4 peak is 1.5x B200's: a compute-bound nvfp4 GEMM runs ~1.5x faster
    big = (8192, 8192, 8192, "nvfp4")
    ratio = float(b200.gemm(*big) / _ks("b300", "trtllm").gemm(*big))
    assert ratio == pytest.approx(13500 / 9000, rel=0.02)


def test_h100_pcie_scaled_by_bandwidth_when_memory_bound() -> None:
    sxm, pcie = _ks("h100-sxm", "vllm"), _ks("h100-pcie", "vllm")
    assert pcie.system == "h100_sxm" and pcie.scaled and "scaled to h100-pcie" in pcie.basis
    bw = get_device("h100-sxm").memory_bw_gbs / get_device("h100-pcie").memory_bw_gbs
    # m = 1 GEMM and long-context decode attention read far more bytes than they compute
    gemm = float(pcie.gemm(1, 8192, 8192, "bf16") / sxm.gemm(1, 8192, 8192, "bf16"))
    assert gemm == pytest.approx(bw, rel=0.01)
    attn = pcie.generation_attention(64, 8192, 32, 8, 128, "bf16", None) / (
        sxm.generation_attention(64, 8192, 32, 8, 128, "bf16", None)
    )
    assert float(attn) == pytest.approx(bw, rel=0.01)


def test_device_mapping() -> None:
    assert _ks("gh200", "sglang").system == "h200_sxm"
    assert _ks("a100-sxm-40gb", "vllm").system == "a100_sxm"
    for device in ("l4", "a10g", "rtx-4090"):
        assert _ks(device, "vllm").system == "l40s"
    for device in ("mi300x", "gaudi2", "xeon-8480"):
        assert kernel_source(get_device(device), "vllm") is None
    assert kernel_source(get_device("h100-sxm"), "llamacpp") is None


# -------------------------------------------------------------------------------- formats


def test_int8_on_h100_close_to_fp8_at_decode() -> None:
    ks = _ks("h100-sxm", "vllm")
    m = np.arange(1, 17)
    for n, k in [(4096, 4096), (14336, 4096), (8192, 28672)]:
        ratio = ks.gemm(m, n, k, "int8") / ks.gemm(m, n, k, "fp8")
        assert np.all(np.abs(ratio - 1) <= 0.10)
    assert ks.basis_for("gemm", "int8").endswith("int8 from fp8 util")


def test_int4_weight_only_vs_bf16() -> None:
    for device, engine in [("h100-sxm", "vllm"), ("a100-sxm-80gb", "trtllm"), ("l40s", "sglang")]:
        ks = _ks(device, engine)
        n = k = 8192
        assert ks.gemm(1, n, k, "int4") < ks.gemm(1, n, k, "bf16")
        big = np.array([4096, 8192, 16384])
        assert np.all(ks.gemm(big, n, k, "int4") > ks.gemm(big, n, k, "bf16"))
    assert "int4_wo/bf16 util ratio" in _ks("h100-sxm", "vllm").basis_for("gemm", "int4")
    # A100 TRT-LLM measured int4_wo itself
    assert _ks("a100-sxm-80gb", "trtllm").basis_for("gemm", "int4").endswith("kernel tables")


def test_format_rules() -> None:
    h100 = _ks("h100-sxm", "trtllm")
    with pytest.raises(ValueError, match="fp4"):
        h100.gemm(16, 4096, 4096, "nvfp4")
    with pytest.raises(ValueError, match="weight format"):
        h100.gemm(16, 4096, 4096, "fp6")
    assert float(h100.gemm(64, 4096, 4096, "fp16")) == float(h100.gemm(64, 4096, 4096, "bf16"))
    # mxfp4: w4a16 on Hopper, fp4 math on Blackwell
    assert "mxfp4 as w4a16" in h100.basis_for("gemm", "mxfp4")
    assert "mxfp4 from nvfp4 util" in _ks("b200", "vllm").basis_for("gemm", "mxfp4")
    # A100 has no fp8 math: fp8 weights run as w8a16 (TRT-LLM measured int8 weight-only)
    a100 = _ks("a100-sxm-80gb", "trtllm")
    assert "fp8 from int8_wo util" in a100.basis_for("gemm", "fp8")
    assert a100.gemm(1, 8192, 8192, "fp8") < a100.gemm(1, 8192, 8192, "bf16")
    # vLLM on A100 measured bf16 only: TRT-LLM's w8a16 table on the same system answers
    assert "fp8 from int8_wo util (trtllm" in _ks("a100-sxm-80gb", "vllm").basis_for("gemm", "fp8")
    # no weight-only table on the system at all: bf16 utilisation x the A100 int8_wo/bf16 ratio
    assert "fp8 as w8a16" in _ks("a10g", "vllm").basis_for("gemm", "fp8")
    # int8 on A100 vLLM: the SmoothQuant table of TRT-LLM on the same system
    assert "trtllm" in _ks("a100-sxm-80gb", "vllm").basis_for("gemm", "int8")


def test_moe_formats_and_distributions() -> None:
    ks = _ks("h200-sxm", "sglang")
    tokens = np.array([1, 64, 4096])
    fp8 = ks.moe(tokens, 2048, 768, 8, 128, 1, 1, "fp8")
    assert "fp8 from fp8_block util" in ks.basis_for("moe", "fp8")
    bf16 = ks.moe(tokens, 2048, 768, 8, 128, 1, 1, "bf16")
    assert fp8[0] < bf16[0]  # decode: half the weight bytes
    # "power_law" is power_law_1.2 where measured
    default = ks.moe(4096, 7168, 2048, 8, 256, 1, 8, "fp8_block")
    assert default == ks.moe(4096, 7168, 2048, 8, 256, 1, 8, "fp8_block", "power_law_1.2")
    assert default != ks.moe(4096, 7168, 2048, 8, 256, 1, 8, "fp8_block", "balanced")
    with pytest.raises(ValueError, match="distribution"):
        ks.moe(1, 2048, 768, 8, 128, 1, 1, "bf16", "zipf")
    # an unmeasured shape borrows from neighbours and stays monotone in tokens
    t = ks.moe(np.unique(np.geomspace(1, 65536, 200).astype(int)), 5120, 1536, 8, 160, 2, 4, "bf16")
    assert np.all(np.diff(t) >= 0) and np.all(t > 0)


def test_moe_gated_and_routing() -> None:
    # Nemotron-3 Nano's experts are non-gated (up, down): an exact row of that label
    moe = _parquet("h200_sxm/moe/trtllm/1.3.0rc20/moe_perf.parquet")
    nano = {"hidden_size": 2688, "inter_size": 1856, "topk": 6, "num_experts": 128}
    want = _row(
        moe,
        num_tokens=512,
        moe_tp_size=1,
        moe_ep_size=1,
        moe_dtype="bfloat16",
        distribution="balanced",
        **nano,
    )
    ks = _ks("h200-sxm", "trtllm")
    got = ks.moe(512, 2688, 1856, 6, 128, 1, 1, "bf16", "balanced", gated=False)
    assert float(got) == pytest.approx(want, rel=REL)
    # an unmeasured shape: gated experts do 1.5x the GEMM work, so a compute-bound call is slower
    big = np.array([8192, 16384])
    gated = ks.moe(big, 5120, 2048, 8, 192, 1, 1, "bf16", "balanced")
    plain = ks.moe(big, 5120, 2048, 8, 192, 1, 1, "bf16", "balanced", gated=False)
    assert np.all(gated > 1.2 * plain)


def test_moe_rank_load() -> None:
    tokens = np.array([1.0, 4.0, 64.0, 4096.0])
    # balanced: a 1/ep share of the pairs, at least one (token 0 picks expert 0), one per expert
    pairs, touched = moe_rank_load(tokens, 256, 8, 32, 0.0)
    np.testing.assert_allclose(pairs, [1.0, 1.0, 16.0, 1024.0])
    np.testing.assert_allclose(touched, [1.0, 1.0, 8.0, 8.0])
    # power law: the timed rank is the most loaded one, more than its share, and deterministic
    pairs, touched = moe_rank_load(tokens, 256, 8, 32, 1.2)
    assert np.all(pairs[1:] > tokens[1:] * 8 / 32) and np.all(touched <= 8)
    again, _ = moe_rank_load(tokens, 256, 8, 32, 1.2)
    np.testing.assert_array_equal(pairs, again)
    # without EP every pair is on the one rank
    pairs, _ = moe_rank_load(tokens, 128, 8, 1, 1.01)
    np.testing.assert_allclose(pairs, tokens * 8)


def test_mla_tables_and_engine_fallback() -> None:
    t, module = _ks("h200-sxm", "vllm").mla_context(np.array([1, 8]), 2048, 16, "bf16", "fp8")
    assert module and np.all(t > 0)
    t, module = _ks("h200-sxm", "sglang").mla_generation(32, 4096, 16, "fp8", "fp8")
    assert not module and float(t) > 0
    a100 = _ks("a100-sxm-80gb", "vllm")  # vLLM measured no MLA on A100: TRT-LLM's tables
    assert any("mla_context" in note and "trtllm" in note for note in a100.notes)
    t, module = a100.mla_generation(8, 1024, 32, "bf16", "bf16")
    assert not module and float(t) > 0


def test_comm_scaling() -> None:
    ks = _ks("h100-sxm", "vllm")
    sizes = np.array([4096.0, 1 << 20, 1 << 28])
    assert np.all(ks.allreduce(sizes, 1) == 0)
    eight, six, sixteen = ks.allreduce(sizes, 8), ks.allreduce(sizes, 6), ks.allreduce(sizes, 16)
    assert np.all(sixteen >= eight)
    # beyond one node the ring runs over the scale-out network: bandwidth-bound sizes slow down
    dev = get_device("h100-sxm")
    assert sixteen[-1] / eight[-1] > 0.5 * dev.scaleup_bw_gbs / dev.scaleout_bw_gbs
    assert np.all(six > 0)
    for op in ("all_gather", "reduce_scatter", "alltoall"):
        t = ks.collective(op, sizes, 4)
        assert np.all(np.diff(t) > 0)
    with pytest.raises(ValueError, match="collective"):
        ks.collective("broadcast", sizes, 4)


def test_comm_alpha_beta_between_and_beyond_counts() -> None:
    ks = _ks("h200-sxm", "vllm")
    sizes = np.geomspace(256, 1 << 30, 40)
    four, six, eight = (ks.collective("all_reduce", sizes, n) for n in (4, 6, 8))
    # between measured counts: between their times for every size (within noise)
    assert np.all(six >= 0.9 * np.minimum(four, eight)) and np.all(
        six <= 1.1 * np.maximum(four, eight)
    )
    # beyond the node the bus bandwidth is at most the best measured fraction of the link
    sixteen = ks.collective("all_gather", sizes, 16)
    dev = get_device("h200-sxm")
    busbw = (15 / 16) * sizes[-1] / sixteen[-1] / 1e9
    assert busbw <= dev.scaleout_bw_gbs * 1.05
    # small messages: the latency term grows with the ring's steps
    assert ks.collective("all_reduce", 256, 16) > ks.collective("all_reduce", 256, 8)


def test_moe_alltoall() -> None:
    a2a = _parquet("h200_sxm/comm/trtllm/1.3.0rc11/moe_a2a_perf.parquet")
    shape = {"hidden_size": 7168, "topk": 8, "num_experts": 256, "ep_size": 8}
    want = _row(
        a2a, comm_backend="trtllm_deepep_ll", comm_dtype="bfloat16", phase="dispatch",
        num_tokens=128, **shape,
    )  # fmt: skip
    ks = _ks("h200-sxm", "trtllm")
    # latency is in us in these tables (read as ms by _row): seconds = us * 1e-6
    got = ks.moe_alltoall(128, 7168, 8, 256, 8, "dispatch")
    assert float(got) == pytest.approx(want * 1e-3, rel=REL)
    # decode-sized batches use the low-latency kernels, prefill-sized ones the normal kernels
    tokens = np.array([1, 64, 128, 129, 4096])
    auto = ks.moe_alltoall(tokens, 7168, 8, 256, 8, "combine")
    low = ks.moe_alltoall(tokens, 7168, 8, 256, 8, "combine", mode="low_latency")
    normal = ks.moe_alltoall(tokens, 7168, 8, 256, 8, "combine", mode="normal")
    np.testing.assert_array_equal(auto, np.where(tokens <= 128, low, normal))
    assert np.all(np.diff(normal) >= 0) and np.all(auto > 0)
    # an unmeasured shape and EP; no EP costs nothing; no DeepEP tables on A100
    other = ks.moe_alltoall(tokens, 5120, 8, 160, 16, "dispatch")
    assert np.all(other > 0) and np.all(np.isfinite(other))
    assert np.all(ks.moe_alltoall(tokens, 7168, 8, 256, 1, "dispatch") == 0)
    with pytest.raises(ValueError, match="DeepEP"):
        _ks("a100-sxm-80gb", "vllm").moe_alltoall(8, 7168, 8, 256, 8, "dispatch")
    with pytest.raises(ValueError, match="phase"):
        ks.moe_alltoall(8, 7168, 8, 256, 8, "gather")


def test_zero_sizes_cost_nothing() -> None:
    ks = _ks("h100-sxm", "vllm")
    assert ks.gemm(np.array([0, 4]), 4096, 4096, "bf16")[0] == 0.0
    assert ks.generation_attention(np.array([0, 2]), 100, 32, 8, 128, "bf16", None)[0] == 0.0
    assert ks.moe(0, 4096, 14336, 2, 8, 1, 1, "bf16") == 0.0


def test_calls_are_fast() -> None:
    ks = _ks("h100-sxm", "vllm")
    m = np.arange(1, 101)
    calls = [
        lambda: ks.gemm(m, 6144, 4096, "fp8"),
        lambda: ks.context_attention(m, 2048, 32, 8, 128, "bf16", None),
        lambda: ks.generation_attention(m, 2048, 32, 8, 128, "fp8", None),
        lambda: ks.moe(m, 2048, 768, 8, 128, 1, 4, "bf16"),
        lambda: ks.allreduce(m * 8192.0, 4),
    ]
    for call in calls:
        call()  # the first call of a configuration prepares it
        start = time.perf_counter()
        for _ in range(20):
            call()
        assert (time.perf_counter() - start) / 20 < 2e-3  # ~0.1-0.3 ms measured


# --------------------------------------------------------------------- numerics, no data


def _synthetic(util: float) -> tuple[GridTable, Any]:
    """A GEMM table whose every point runs at `util` of the H100 bf16 roofline."""
    dev = get_device("h100-sxm")
    m, n, k = np.meshgrid([1, 8, 64, 512, 4096], [256, 1024, 4096], [512, 2048, 8192])
    sol = gemm_sol(m, n, k, PROFILES["bfloat16"], dev)
    table = GridTable.from_rows(
        {"dtype": np.zeros(m.size, dtype=int)},
        {"m": m.ravel(), "n": n.ravel(), "k": k.ravel()},
        (sol / util * 1e3).ravel(),
    )
    return table, dev


def test_constant_utilisation_reproduces_the_roofline_anywhere() -> None:
    table, dev = _synthetic(0.5)
    # drop a whole (n, k) shape: the lookup must still work from the rest
    cells = np.zeros(table.latency_ms.shape, dtype=bool)
    cells[0, :, 1, 1] = True
    et = EngineTables("h100_sxm", "vllm", {"gemm": table.masked(cells)}, {"gemm": "test"})
    ks = KernelSource(dev, "vllm", lambda s, e: et if (s, e) == ("h100_sxm", "vllm") else None)
    on_nodes = np.array([1, 8, 512, 4096, 100000])  # beyond the grid too
    between = np.array([3, 100, 2000])  # log-log between (this sparse grid's) nodes: roughly
    for n, k in [(1024, 2048), (3000, 700), (65536, 16384)]:
        want = gemm_sol(on_nodes, n, k, PROFILES["bfloat16"], dev) / 0.5
        np.testing.assert_allclose(ks.gemm(on_nodes, n, k, "bf16"), want, rtol=1e-9)
        want = gemm_sol(between, n, k, PROFILES["bfloat16"], dev) / 0.5
        np.testing.assert_allclose(ks.gemm(between, n, k, "bf16"), want, rtol=0.2)


def test_fill_holes_and_envelope() -> None:
    coords = [np.log(np.array([1.0, 2.0, 4.0, 8.0]))]
    v = np.array([[0.0, np.nan, 2.0, np.nan], [np.nan, np.nan, np.nan, np.nan]])
    out = fill_holes(v, coords)
    np.testing.assert_allclose(out[0], [0.0, 1.0, 2.0, 2.0])  # interior linear, edge held
    assert np.isnan(out[1]).all()  # a key without data stays empty
    env = monotone_envelope(np.array([[3.0, 1.0, np.nan, 2.0, 5.0]]), [1])
    np.testing.assert_allclose(env[0], [1.0, 1.0, np.nan, 2.0, 5.0])
    grid = np.arange(12.0).reshape(3, 4)
    axes = [np.log([1.0, 2.0, 4.0]), np.log([1.0, 10.0, 100.0, 1000.0])]
    assert multilinear(grid, axes, [np.log(2.0), np.log(100.0)]) == grid[1, 2]
    assert multilinear(grid, axes, [np.log(100.0), np.log(1e6)]) == grid[2, 3]  # clamped


def test_fill_holes_interpolates_along_every_axis_that_brackets_a_hole() -> None:
    """Holes get the mean of the interpolations of every axis bracketing them, in rounds: the
    centre of a plane is bracketed only once its edges are filled (grid._axis_estimates works
    out the holes alone)."""
    plane = np.array([[1.0, np.nan, 3.0], [np.nan, np.nan, np.nan], [7.0, np.nan, 9.0]])
    coords = [np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0, 2.0])]
    out = fill_holes(np.stack([plane, np.full((3, 3), np.nan)]), coords)
    np.testing.assert_array_equal(out[0], np.arange(1.0, 10.0).reshape(3, 3))
    assert np.isnan(out[1]).all()


def test_npz_writer_is_deterministic_and_pickle_free(tmp_path: Path) -> None:
    arrays: dict[str, np.ndarray] = {
        "b.x": np.arange(5, dtype=np.int64),
        "a.y": np.array([1.5, np.nan], np.float32),
    }
    write_npz(tmp_path / "one.npz", arrays)
    time.sleep(1.1)  # a zip timestamp would differ now
    write_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    back = read_npz(tmp_path / "one.npz")
    np.testing.assert_array_equal(back["b.x"], arrays["b.x"])


# ------------------------------------------------------------------------------- artefact


def test_artefact_matches_manifest() -> None:
    directory = artefact_dir()
    manifest = json.loads((directory / "manifest.json").read_text())
    files = {p.name for p in directory.glob("*.npz")}
    assert files == {o["file"] for o in manifest["outputs"]}
    assert len(files) == 15
    total = 0
    for out in manifest["outputs"]:
        path = directory / out["file"]
        assert sha256_file(path) == out["sha256"], out["file"]
        assert path.stat().st_size == out["bytes"] < 5 * 1024 * 1024
        total += out["bytes"]
        with np.load(path, allow_pickle=False) as data:
            assert "meta" in data.files
    assert total <= 30 * 1024 * 1024
    assert manifest["command"].startswith("python scripts/build_kernel_tables.py --data")
    for src in manifest["sources"]:
        assert len(src["sha256"]) == 64 and src["rows"] >= src["rows_used"] >= 0
        # an older full table may be wholly replaced by the newest one
        assert src["rows_used"] > 0 or src["selection"] == "older-full"


def test_manifest_sources_match_the_data() -> None:
    data = data_or_skip()
    manifest = json.loads((artefact_dir() / "manifest.json").read_text())
    for src in manifest["sources"][:12]:
        assert sha256_file(data / src["path"]) == src["sha256"], src["path"]


def test_import_is_light() -> None:
    code = (
        "import sys, time; import numpy; t = time.perf_counter(); import budsim.core.kernels; "
        "dt = time.perf_counter() - t; import budsim.core; "
        "assert 'pandas' not in sys.modules, 'pandas'; print(dt)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert float(out.stdout) < 0.25  # ~20-40 ms on the build machine; loose for slow CI
    code = "import sys, budsim.core; print('budsim.core.kernels' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
