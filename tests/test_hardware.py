"""Hardware catalog: bundled specs, peak fallbacks, user TOML overrides, lookup and cluster shapes."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from budsim.core import hardware as hw
from budsim.core.errors import BudsimError
from budsim.core.hardware import (
    Device,
    get_device,
    load_hardware,
    make_cluster,
    normalise_hardware_id,
    user_hardware_path,
)

EXPECTED_IDS = {
    # NVIDIA
    "a100-sxm-40gb",
    "a100-sxm-80gb",
    "a100-pcie-80gb",
    "h100-sxm",
    "h100-pcie",
    "h100-nvl",
    "h200-sxm",
    "gh200",
    "b200",
    "b300",
    "gb200",
    "gb300",
    "l40s",
    "l4",
    "a10g",
    "rtx-4090",
    # AMD
    "mi250",
    "mi300x",
    "mi325x",
    # Intel Gaudi
    "gaudi2",
    "gaudi3",
    # CPUs
    "xeon-8480",
    "xeon-6980p",
    "epyc-9654",
}


@pytest.fixture(autouse=True)
def _isolated_user_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Never let a developer's real ~/.config/budsim/hardware.toml leak into the tests."""
    monkeypatch.delenv("BUDSIM_HARDWARE_FILE", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))


@pytest.fixture
def bundled() -> dict[str, Device]:
    return load_hardware()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------------------------- bundled catalog


def test_catalog_has_exactly_the_design_ids(bundled: dict[str, Device]) -> None:
    assert set(bundled) == EXPECTED_IDS


def test_every_entry_is_complete_and_sane(bundled: dict[str, Device]) -> None:
    for dev_id, dev in bundled.items():
        assert dev.id == dev_id
        assert dev.kind in hw.KINDS
        assert dev.sources, dev_id
        assert dev.memory_gb > 0 and dev.memory_bw_gbs > 0 and dev.tdp_w > 0
        assert dev.devices_per_node >= 1
        assert dev.price_per_hour > 0
        assert set(dev.tflops) <= set(hw.TFLOPS_DTYPES)
        assert "bf16" in dev.tflops or "fp16" in dev.tflops
        # Dense figures: fp8 never more than 2x bf16 (a 4x ratio would mean a sparsity number slipped in).
        if "fp8" in dev.tflops:
            assert dev.tflops["fp8"] <= 2.05 * dev.peak_tflops("bf16"), dev_id


def test_nvidia_entries_cite_aiconfigurator_where_it_has_a_system(
    bundled: dict[str, Device],
) -> None:
    for dev_id in ("h100-sxm", "h200-sxm", "b200", "b300", "gb200", "gb300", "l40s", "l4"):
        assert any("aiconfigurator" in s for s in bundled[dev_id].sources), dev_id


@pytest.mark.parametrize(
    ("dev_id", "memory_gb", "bw", "bf16", "fp8"),
    [
        ("h100-sxm", 85.9, 3350, 989, 1979),
        ("h200-sxm", 151.4, 4800, 989, 1979),
        ("a100-sxm-80gb", 85.9, 2039, 312, None),
        ("a100-sxm-40gb", 42.95, 1555, 312, None),
        ("b200", 193.3, 7700, 2250, 4500),
        ("mi300x", 206.2, 5300, 1307.4, 2614.9),
        ("gaudi2", 103.1, 2450, 432, 865),
        ("gaudi3", 137.4, 3700, 1835, 1835),
        ("l40s", 48, 864, 362.05, 733),
        ("l4", 24, 300, 121, 242),
    ],
)
def test_hand_checked_specs(
    bundled: dict[str, Device],
    dev_id: str,
    memory_gb: float,
    bw: float,
    bf16: float,
    fp8: float | None,
) -> None:
    dev = bundled[dev_id]
    assert dev.memory_gb == memory_gb
    assert dev.memory_bw_gbs == bw
    assert dev.tflops["bf16"] == pytest.approx(bf16)
    if fp8 is None:
        assert "fp8" not in dev.tflops
    else:
        assert dev.tflops["fp8"] == pytest.approx(fp8)


# What each vendor markets, in GiB: memory dies come in powers of two, so "192GB" of HBM is 192 GiB
# for AMD and Intel as for NVIDIA (#19: MI300X had 192 GB next to NVIDIA's converted 85.9 GB).
MARKETED_GIB = {
    "a100-sxm-40gb": 40,
    "a100-sxm-80gb": 80,
    "a100-pcie-80gb": 80,
    "h100-sxm": 80,
    "h100-pcie": 80,
    "h100-nvl": 94,
    "h200-sxm": 141,
    "gh200": 96,
    "b200": 180,
    "mi250": 128,
    "mi300x": 192,
    "mi325x": 256,
    "gaudi2": 96,
    "gaudi3": 128,
}


@pytest.mark.parametrize("dev_id", sorted(MARKETED_GIB))
def test_memory_is_gb_for_every_vendor(bundled: dict[str, Device], dev_id: str) -> None:
    """memory_gb is 1e9 bytes everywhere: a part marketed as N GiB holds N * 1.074 GB."""
    assert bundled[dev_id].memory_gb == pytest.approx(MARKETED_GIB[dev_id] * 2**30 / 1e9, abs=0.06)


def test_interconnect_and_node_shape(bundled: dict[str, Device]) -> None:
    assert bundled["h100-sxm"].scaleup_bw_gbs == 450  # NVLink 4, one direction
    assert bundled["b200"].scaleup_bw_gbs == 900
    assert bundled["h100-pcie"].scaleup_bw_gbs < bundled["h100-sxm"].scaleup_bw_gbs
    assert bundled["gb200"].devices_per_node == 72  # NVL72 rack is one NVLink domain
    assert bundled["xeon-8480"].devices_per_node == 2  # two sockets per server
    assert bundled["mi250"].memory_gb == 137.4  # per OAM module (2 GCDs x 64 GiB)


def test_cpu_peaks_follow_from_cores_and_clock(bundled: dict[str, Device]) -> None:
    # 56 cores x 1024 AMX bf16 ops/cycle x 2.0 GHz
    assert bundled["xeon-8480"].tflops["bf16"] == pytest.approx(56 * 1024 * 2.0e9 / 1e12, rel=1e-3)
    # 8 channels x DDR5-4800 x 8 bytes
    assert bundled["xeon-8480"].memory_bw_gbs == pytest.approx(8 * 4800 * 8 / 1000)
    assert bundled["epyc-9654"].memory_bw_gbs == pytest.approx(12 * 4800 * 8 / 1000)


# -------------------------------------------------------------------------------------- peak_tflops


def test_peak_tflops_native_and_fallbacks(bundled: dict[str, Device]) -> None:
    a100 = bundled["a100-sxm-80gb"]
    assert a100.peak_tflops("fp8") == 312  # no fp8 on Ampere -> bf16
    assert a100.peak_tflops("fp4") == 312  # fp4 -> fp8 -> bf16
    assert a100.peak_tflops("int8") == 624
    h100 = bundled["h100-sxm"]
    assert h100.peak_tflops("fp4") == 1979  # fp4 -> fp8
    assert h100.peak_tflops("nvfp4") == 1979
    assert bundled["b200"].peak_tflops("fp4") == 9000
    assert bundled["gaudi3"].peak_tflops("int8") == 1835  # int8 -> fp8
    assert bundled["gaudi2"].peak_tflops("fp16") == 432  # fp16 -> bf16
    assert bundled["xeon-8480"].peak_tflops("fp16") == bundled["xeon-8480"].tflops["bf16"]
    assert bundled["b200"].supports("fp4") and not h100.supports("fp4")


def test_peak_tflops_rejects_unknown_dtype(bundled: dict[str, Device]) -> None:
    with pytest.raises(BudsimError, match="unknown compute dtype"):
        bundled["h100-sxm"].peak_tflops("fp64")


def test_device_is_hashable_picklable_and_immutable(bundled: dict[str, Device]) -> None:
    dev = bundled["h100-sxm"]
    assert pickle.loads(pickle.dumps(dev)) == dev
    assert len({dev, get_device("h100")}) == 1
    with pytest.raises(TypeError):
        dev.tflops["bf16"] = 1.0  # type: ignore[index]


def test_direct_construction_accepts_plain_dict() -> None:
    dev = Device(
        id="x",
        name="X",
        vendor="v",
        kind="cuda",
        memory_gb=10,
        memory_bw_gbs=100,
        tflops={"bf16": 50.0},
        devices_per_node=4,
        scaleup_bw_gbs=10,
        scaleup_latency_us=5,
        scaleout_bw_gbs=1,
        price_per_hour=1,
        tdp_w=100,
        arch="a",
        sources=["s"],  # type: ignore[arg-type]
    )
    assert dev.peak_tflops("fp8") == 50.0
    assert dev.sources == ("s",)
    hash(dev)


# ------------------------------------------------------------------------------------------- lookup


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("H100", "h100-sxm"),
        ("h100", "h100-sxm"),
        ("H100-SXM5-80GB", "h100-sxm"),
        ("h100_sxm", "h100-sxm"),
        ("NVIDIA H100 80GB HBM3", "h100-sxm"),
        ("A100-80GB", "a100-sxm-80gb"),
        ("A100-SXM4-80GB", "a100-sxm-80gb"),
        ("A100-40GB", "a100-sxm-40gb"),
        ("NVIDIA A100-SXM4-40GB", "a100-sxm-40gb"),
        ("a100", "a100-sxm-80gb"),
        ("MI300X", "mi300x"),
        ("AMD Instinct MI300X", "mi300x"),
        ("AMD MI250 GPU", "mi250"),
        ("Gaudi2", "gaudi2"),
        ("Habana Gaudi2", "gaudi2"),
        ("GH200", "gh200"),
        ("GH200 120GB", "gh200"),
        ("B200", "b200"),
        ("b200_sxm", "b200"),
        ("b300_sxm", "b300"),
        ("gb200", "gb200"),
        ("gb300", "gb300"),
        ("h200_sxm", "h200-sxm"),
        ("H200 141GB HBM3", "h200-sxm"),
        ("RTX4090", "rtx-4090"),
        ("Xeon 8480+", "xeon-8480"),
        ("L40S", "l40s"),
    ],
)
def test_alias_lookup(name: str, expected: str) -> None:
    assert get_device(name).id == expected


def test_unknown_device_lists_close_matches() -> None:
    with pytest.raises(
        BudsimError, match=r"unknown hardware 'h10'.*did you mean.*h100-sxm"
    ) as info:
        get_device("h10")
    assert "\n" not in str(info.value)
    with pytest.raises(BudsimError, match="unknown hardware"):
        get_device("tpu-v5e")
    with pytest.raises(BudsimError, match="non-empty"):
        get_device("  ")


def test_normalise_hardware_id() -> None:
    assert normalise_hardware_id(" NVIDIA  H100_SXM ") == "h100-sxm"
    assert normalise_hardware_id("AMD Instinct MI300X GPU") == "mi300x"


def test_aliases_are_unique_across_devices(bundled: dict[str, Device]) -> None:
    owners: dict[str, str] = {}
    for dev in bundled.values():
        for alias in dev.aliases:
            key = normalise_hardware_id(alias)
            assert key not in bundled or key == dev.id, alias
            assert owners.setdefault(key, dev.id) == dev.id, alias


# ------------------------------------------------------------------------------------------ clusters


def test_cluster_defaults_and_shapes() -> None:
    one = make_cluster("h100", 1)
    assert (one.count, one.nodes, one.devices_per_node) == (1, 1, 1)
    two_nodes = make_cluster("h100-sxm", 16)
    assert (two_nodes.nodes, two_nodes.devices_per_node) == (2, 8)
    assert two_nodes.multi_node and two_nodes.price_per_hour == pytest.approx(16 * 3.0)
    spread = make_cluster("h100-sxm", 8, nodes=2)
    assert (spread.nodes, spread.devices_per_node) == (2, 4)
    assert make_cluster("gb200", 72).nodes == 1
    assert make_cluster("h100", 12).devices_per_node == 6


@pytest.mark.parametrize(
    ("devices", "nodes", "message"),
    [
        (0, None, "positive integer"),
        (-8, None, "positive integer"),
        (8, 0, "node count must be a positive integer"),
        (True, None, "positive integer"),
        (16, 1, "at most 8"),
        (8, 3, "do not split evenly"),
        (9, None, "nodes=3"),
    ],
)
def test_cluster_validation(devices: int, nodes: int | None, message: str) -> None:
    with pytest.raises(BudsimError, match=message):
        make_cluster("h100-sxm", devices, nodes)


def test_cluster_unknown_device() -> None:
    with pytest.raises(BudsimError, match="unknown hardware"):
        make_cluster("nope-9000", 8)


# ------------------------------------------------------------------------------- user TOML overrides

NEW_DEVICE = """
[my-accel]
name = "My accelerator"
vendor = "acme"
kind = "cuda"
arch = "acme1"
memory_gb = 64
memory_bw_gbs = 2000
tflops = { bf16 = 500, fp8 = 1000 }
devices_per_node = 4
scaleup_bw_gbs = 200
scaleup_latency_us = 8
scaleout_bw_gbs = 25
price_per_hour = 1.25
tdp_w = 500
aliases = ["acme-x"]
"""


def test_user_file_adds_and_overrides(tmp_path: Path) -> None:
    user = _write(
        tmp_path / "hw.toml",
        NEW_DEVICE
        + """
[h100-sxm]
price_per_hour = 2.1
tflops = { fp8 = 1800, int8 = 0 }

[GB200]
devices_per_node = 4
""",
    )
    catalog = load_hardware(user)
    new = catalog["my-accel"]
    assert new.memory_gb == 64 and new.peak_tflops("fp4") == 1000
    assert any(str(user) in s for s in new.sources)
    h100 = catalog["h100-sxm"]
    assert h100.price_per_hour == 2.1
    assert h100.tflops["fp8"] == 1800 and h100.tflops["bf16"] == 989  # merged, not replaced
    assert "int8" not in h100.tflops  # 0 removes a dtype ...
    assert h100.peak_tflops("int8") == 1800  # ... so int8 falls back to fp8
    assert h100.memory_bw_gbs == 3350
    assert any("user override" in s for s in h100.sources)
    assert catalog["gb200"].devices_per_node == 4
    # The bundled catalog is not modified by loading a user file.
    assert load_hardware()["h100-sxm"].price_per_hour == 3.0
    # Lookups and clusters against the merged catalog.
    assert get_device("ACME-X", hardware=catalog).id == "my-accel"
    cluster = make_cluster("my-accel", 8, hardware=catalog)
    assert (cluster.nodes, cluster.devices_per_node) == (2, 4)


def test_default_user_path_via_xdg_and_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    xdg_file = tmp_path / "xdg" / "budsim" / "hardware.toml"
    assert user_hardware_path() == xdg_file
    xdg_file.parent.mkdir(parents=True)
    _write(xdg_file, "[l4]\nprice_per_hour = 0.5\n")
    assert get_device("l4").price_per_hour == 0.5
    # Editing the file is picked up (the cache is keyed on mtime and size).
    _write(xdg_file, "[l4]\nprice_per_hour = 0.55\n")
    assert get_device("l4").price_per_hour == 0.55

    env_file = _write(tmp_path / "other.toml", NEW_DEVICE)
    monkeypatch.setenv("BUDSIM_HARDWARE_FILE", str(env_file))
    assert user_hardware_path() == env_file
    assert get_device("my-accel").tdp_w == 500
    assert get_device("l4").price_per_hour == 0.7  # the XDG file is ignored now

    monkeypatch.setenv("BUDSIM_HARDWARE_FILE", str(tmp_path / "missing.toml"))
    with pytest.raises(BudsimError, match="missing.toml"):
        get_device("h100")


def test_missing_xdg_file_is_fine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "nowhere"))
    assert set(load_hardware()) == EXPECTED_IDS


def test_new_entry_missing_fields_names_file_and_field(tmp_path: Path) -> None:
    user = _write(tmp_path / "hw.toml", '[tpu-v5e]\nname = "TPU"\nmemory_gb = 16\n')
    with pytest.raises(BudsimError) as info:
        load_hardware(user)
    message = str(info.value)
    assert str(user) in message and "tpu-v5e" in message
    assert "memory_bw_gbs" in message and "tflops" in message
    assert "\n" not in message


def test_partial_entry_under_an_alias_hints_at_the_id(tmp_path: Path) -> None:
    user = _write(tmp_path / "hw.toml", "[h100]\nprice_per_hour = 1.0\n")
    with pytest.raises(BudsimError, match=r"\[h100-sxm\]"):
        load_hardware(user)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[h100-sxm\nprice_per_hour = 1\n", "cannot parse hardware file"),
        ("price_per_hour = 1\n", "must be a table"),
        ("[h100-sxm]\nmemory_bw = 1\n", "unknown field"),
        ("[h100-sxm]\nmemory_gb = -1\n", "positive number"),
        ('[h100-sxm]\nmemory_gb = "80"\n', "positive number"),
        ("[h100-sxm]\ndevices_per_node = 2.5\n", "positive integer"),
        ('[h100-sxm]\nkind = "tpu"\n', "kind must be one of"),
        ("[h100-sxm]\ntflops = { fp64 = 60 }\n", "not one of"),
        ("[h100-sxm]\ntflops = { bf16 = 0, fp16 = 0 }\n", "at least a bf16 or fp16"),
        ('["bad id"]\nname = "x"\n', "hardware id must be"),
    ],
)
def test_malformed_user_file(tmp_path: Path, text: str, message: str) -> None:
    user = _write(tmp_path / "bad.toml", text)
    with pytest.raises(BudsimError, match=message) as info:
        load_hardware(user)
    assert str(user) in str(info.value)
    assert "\n" not in str(info.value)


def test_explicit_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(BudsimError, match="does not exist"):
        load_hardware(tmp_path / "nope.toml")


def test_user_alias_clash_is_reported(tmp_path: Path) -> None:
    user = _write(tmp_path / "hw.toml", NEW_DEVICE.replace('["acme-x"]', '["h200"]'))
    with pytest.raises(BudsimError, match="claimed by both"):
        load_hardware(user)


def test_hardware_listing_states_its_unit() -> None:
    from typer.testing import CliRunner

    from budsim.cli import app

    out = CliRunner().invoke(app, ["hardware"], env={"COLUMNS": "80"}).stdout
    lines = out.splitlines()
    rule = next(i for i, line in enumerate(lines) if set(line.strip()) == {"─"})
    header = [line.split() for line in lines[1:rule] if line.strip()]
    assert "memory" in header[0] and "GB" in header[1]  # "memory GB", folded at 80 columns
    (mi300x,) = [line.split() for line in lines if line.startswith(" mi300x ")]
    assert mi300x[2] == "206.2"
    assert lines[-1].startswith("memory GB = 10^9 bytes")
