"""Training on a small synthetic dataset: determinism, loader round-trips, learned bias, guards."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from calibration_helpers import synthetic_rows

from budsim.core.calibration import store
from budsim.core.calibration.features import FEATURES
from budsim.core.calibration.forest import Forest
from budsim.core.calibration.frame import SampleSet, build_samples
from budsim.core.calibration.train import raw_predict, train
from budsim.core.deployment import Deployment, Workload
from budsim.core.predict import predict, predict_physics


@pytest.fixture(scope="module")
def samples() -> SampleSet:
    return build_samples(synthetic_rows(bias=1.3))


@pytest.fixture(scope="module")
def trained(samples: SampleSet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("pretrained")
    train(Path("unused"), out, seed=0, sample_set=samples)
    return out


@pytest.fixture()
def use_pretrained(trained: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("BUDSIM_PRETRAINED_DIR", str(trained))
    monkeypatch.setenv("BUDSIM_CALIBRATION_DIR", str(tmp_path / "user"))
    store.clear_caches()
    yield trained
    store.clear_caches()


def test_training_is_byte_identical(samples: SampleSet, trained: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    train(Path("unused"), again, seed=0, sample_set=samples)
    first = sorted(p.relative_to(trained).as_posix() for p in trained.rglob("*.json"))
    second = sorted(p.relative_to(again).as_posix() for p in again.rglob("*.json"))
    assert first == second and "cuda/ttft_point.json" in first
    for rel in first:
        assert (trained / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_manifest_records_data_features_and_scores(trained: Path) -> None:
    manifest = json.loads((trained / "manifest.json").read_text())
    assert manifest["features"] == list(FEATURES)
    assert manifest["libraries"]["xgboost"]
    assert manifest["hyperparameters"]["quantile_alpha"] == [0.1, 0.9]
    cuda = manifest["kinds"]["cuda"]
    assert cuda["status"] == "calibrated" and len(cuda["id"]) == 8
    tpot = cuda["families"]["tpot"]
    assert tpot["status"] == "calibrated"
    # the synthetic 30 % bias is learned: out-of-fold error falls far below physics
    assert tpot["cv"]["all"]["calibrated_median_ape"] < 5 < tpot["cv"]["all"]["physics_median_ape"]
    assert manifest["kinds"]["hpu"]["status"] == "uncalibrated"
    for fam in ("ttft", "tpot"):
        entry = cuda["families"][fam]
        for role in ("point", "band"):
            assert (trained / entry[role]["file"]).is_file()


def test_numpy_forest_matches_xgboost(trained: Path, samples: SampleSet) -> None:
    import xgboost as xgb

    X = np.asarray([s.x for s in samples.samples], dtype=np.float32)
    for fam in ("ttft", "tpot"):
        point = xgb.Booster(model_file=str(trained / f"cuda/{fam}_point.json"))
        band = xgb.Booster(model_file=str(trained / f"cuda/{fam}_band.json"))
        expected = raw_predict(point, band, X)
        forests = [
            Forest(json.loads((trained / f"cuda/{fam}_{r}.json").read_text()))
            for r in ("point", "band")
        ]
        got = Forest.stack(forests).predict(X)
        np.testing.assert_allclose(got, expected, atol=1e-4)


def test_loader_round_trip_applies_the_learned_bias(use_pretrained: Path) -> None:
    dep = Deployment(model="Qwen/Qwen3-8B", hardware="h100-sxm", engine="vllm")
    wl = Workload(input_len=1024, output_len=256, concurrency=4)
    phys = predict_physics(dep, wl)
    cal = predict(dep, wl)
    assert cal.calibration.startswith("pretrained/cuda@")
    assert cal.tpot_ms_mean / phys.tpot_ms_mean == pytest.approx(1.3, rel=0.08)
    # bands bracket the point; throughput follows Little's law as in the physics
    for key in ("ttft_ms_mean", "tpot_ms_mean", "e2e_s_mean", "output_tok_s"):
        lo, mid, hi = getattr(cal, f"{key}_lo"), getattr(cal, key), getattr(cal, f"{key}_hi")
        assert lo <= mid <= hi, key
    assert cal.output_tok_s * cal.e2e_s_mean == pytest.approx(phys.output_tok_s * phys.e2e_s_mean)
    # percentiles move with their mean
    assert cal.ttft_ms_p90 / phys.ttft_ms_p90 == pytest.approx(cal.ttft_ms_mean / phys.ttft_ms_mean)
    # uncalibrated families keep the physics value (static batches: no e2e data here)
    static = Workload(scenario="static", batch_size=4, input_len=512, output_len=128)
    assert predict(dep, static).e2e_s_max == pytest.approx(predict_physics(dep, static).e2e_s_max)


def test_missing_and_corrupt_models_fall_back_with_a_warning(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dep = Deployment(model="Qwen/Qwen3-8B", hardware="h100-sxm", engine="vllm")
    wl = Workload(input_len=512, output_len=128, concurrency=2)
    phys = predict_physics(dep, wl)

    broken = tmp_path / "broken"
    broken.mkdir()
    for path in trained.rglob("*.json"):
        target = broken / path.relative_to(trained)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(path.read_bytes())
    (broken / "cuda" / "tpot_band.json").write_text('{"learner": {"truncated"')
    (broken / "cuda" / "ttft_point.json").unlink()
    monkeypatch.setenv("BUDSIM_PRETRAINED_DIR", str(broken))
    store.clear_caches()
    with pytest.warns(store.CalibrationWarning, match="ttft_point.json is missing|does not match"):
        pred = predict(dep, wl)
    assert pred.calibration == "physics"
    assert pred.tpot_ms_mean == pytest.approx(phys.tpot_ms_mean)

    monkeypatch.setenv("BUDSIM_PRETRAINED_DIR", str(tmp_path / "nowhere"))
    store.clear_caches()
    with pytest.warns(store.CalibrationWarning, match="no pretrained calibration"):
        pred = predict(dep, wl)
    assert pred.calibration == "physics" and pred.ttft_ms_mean == pytest.approx(phys.ttft_ms_mean)

    (broken / "manifest.json").write_text("{not json")
    monkeypatch.setenv("BUDSIM_PRETRAINED_DIR", str(broken))
    store.clear_caches()
    with pytest.warns(store.CalibrationWarning, match="unreadable"):
        assert predict(dep, wl).calibration == "physics"
    store.clear_caches()


def test_model_from_a_newer_budsim_gives_a_clear_message(
    trained: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    newer = tmp_path / "newer"
    newer.mkdir()
    manifest = json.loads((trained / "manifest.json").read_text())
    manifest["budsim_version"] = "99.0.0"
    (newer / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("BUDSIM_PRETRAINED_DIR", str(newer))
    store.clear_caches()
    dep = Deployment(model="Qwen/Qwen3-8B", hardware="h100-sxm", engine="vllm")
    with pytest.warns(store.CalibrationWarning, match=r"trained by budsim 99\.0\.0, newer than"):
        pred = predict(dep, Workload(concurrency=2))
    assert pred.calibration == "physics"
    store.clear_caches()


def test_forest_rejects_what_it_cannot_run() -> None:
    from budsim.core.calibration.forest import ForestError

    with pytest.raises(ForestError):
        Forest({"learner": {"gradient_booster": {"name": "gblinear"}}})
    with pytest.raises(ForestError):
        Forest({"not": "a model"})


def test_shrink_guard_keeps_physics_when_calibration_would_hurt(samples: SampleSet) -> None:
    """A dataset whose residual is pure noise around zero must not be made worse."""
    from budsim.core.calibration.train import choose_shrink, family_data

    fd = family_data(samples.samples, "cuda", "tpot")
    rows = np.arange(len(fd.y))
    # a "prediction" that is far off for every row: every shrink makes things worse
    bad = -fd.y * 2 - 0.5
    shrink, table = choose_shrink(fd, rows, bad)
    assert shrink == 0.0
    assert all(v["allowed"] == 0.0 for k, v in table.items() if k != "physics")
    # the truth itself is always allowed and chosen at full strength
    shrink, _ = choose_shrink(fd, rows, fd.y.copy())
    assert shrink == 1.0
    assert math.isfinite(table["physics"]["all"])
