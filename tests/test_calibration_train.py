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
from budsim.core.deployment import Deployment, Workload
from budsim.core.frontend import DEFAULT_FIXED_MS, front_end
from budsim.core.predict import predict, predict_physics
from budsim.learn.samples import SampleSet, build_samples
from budsim.learn.train import raw_predict, train


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
    grid = manifest["hyperparameters"]["grid"]
    cuda = manifest["kinds"]["cuda"]
    assert cuda["status"] == "calibrated" and len(cuda["id"]) == 8
    tpot = cuda["families"]["tpot"]
    assert tpot["status"] == "calibrated"
    # tree settings and per-segment shrinks were chosen by inner CV and are recorded
    assert tpot["hp"] in grid and tpot["feature_set"] in manifest["hyperparameters"]["feature_sets"]
    assert {k.split("|")[0].split("+")[0] for k in tpot["cv"]["grid"]} == set(grid)
    assert tpot["segment_shrink"]["versioned:dense:vllm"] == tpot["shrink"] > 0
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
    front_end_ms = front_end().fixed_ms

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
    # no pretrained folder: no front_end.json either, so the physics has the default front end
    fallback = predict_physics(dep, wl)
    assert pred.calibration == "physics" and pred.ttft_ms_mean == pytest.approx(
        fallback.ttft_ms_mean
    )
    shipped_fe, default_fe = phys.ttft_ms_mean, fallback.ttft_ms_mean
    assert default_fe - shipped_fe == pytest.approx(DEFAULT_FIXED_MS - front_end_ms, abs=1e-6)  # type: ignore[operator]

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

    def model(tree: dict[str, list[float]]) -> dict[str, object]:
        return {
            "learner": {
                "learner_model_param": {"num_feature": "2", "base_score": "0"},
                "gradient_booster": {
                    "name": "gbtree",
                    "model": {"trees": [tree], "tree_info": [0]},
                },
            }
        }

    good = {
        "left_children": [1, -1, -1],
        "right_children": [2, -1, -1],
        "split_indices": [1, 0, 0],
        "split_conditions": [0.5, -1.0, 2.0],
        "default_left": [1, 0, 0],
    }
    forest = Forest(model(good))
    assert forest.predict(np.array([[0.0, 0.0], [0.0, 1.0], [0.0, np.nan]])).ravel().tolist() == [
        -1.0,
        2.0,
        -1.0,  # missing: the default (left) branch
    ]
    for broken, why in (
        ({**good, "left_children": [0, -1, -1]}, "child index"),  # a node its own child
        ({**good, "left_children": [1, -1, -1], "right_children": [5, -1, -1]}, "child index"),
        ({**good, "split_indices": [7, 0, 0]}, "feature"),
        ({**good, "split_conditions": [0.5, -1.0]}, "inconsistent"),
        ({k: [*v, v[-1]] for k, v in good.items()}, "unreachable"),  # a fourth, orphan node
    ):
        with pytest.raises(ForestError, match=why):
            Forest(model(broken))


def test_shrink_guard_keeps_physics_when_calibration_would_hurt(samples: SampleSet) -> None:
    """A dataset whose residual is pure noise around zero must not be made worse."""
    from budsim.learn.train import choose_shrink, family_data

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


@pytest.mark.parametrize(
    ("model", "hardware", "engine", "tp", "input_len"),
    [
        ("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm", "vllm", 1, 1000),
        # longer than a step's token budget: the prompt is prefilled in chunks
        ("meta-llama/Llama-3.1-8B-Instruct", "h100-sxm", "vllm", 1, 20000),
        ("mistralai/Mixtral-8x7B-v0.1", "a100-sxm-80gb", "sglang", 4, 9000),
    ],
)
def test_isolated_ttft_is_the_simulated_ttft_of_a_lone_request(
    model: str, hardware: str, engine: str, tp: int, input_len: int
) -> None:
    """The `ph_log_ttft_alone_ms` feature: what the simulator gives one client on an idle engine
    (a closed loop of concurrency 1), so the physics TTFT minus it is queueing alone."""
    from budsim.core.calibration.features import FEATURE_INDEX, feature_list, isolated_ttft_ms
    from budsim.core.predict import resolve

    dep = Deployment(model=model, hardware=hardware, engine=engine, tp=tp)
    lone = Workload(scenario="concurrency", input_len=input_len, output_len=64, concurrency=1)
    alone = isolated_ttft_ms(resolve(dep), input_len, 64)
    assert alone == pytest.approx(predict_physics(dep, lone).ttft_ms_mean, rel=1e-6)
    busy = Workload(scenario="concurrency", input_len=input_len, output_len=64, concurrency=64)
    pred = predict_physics(dep, busy)
    assert pred.ttft_ms_mean is not None and pred.ttft_ms_mean > alone
    x = feature_list(resolve(dep), busy, pred)
    assert x[FEATURE_INDEX["ph_log_ttft_alone_ms"]] == pytest.approx(math.log(alone), rel=1e-6)


def test_version_status_of_rows_and_predictions() -> None:
    """Named engine + version -> known; named without version -> unknown; `other` -> unnamed; a
    user's prediction is for a current, named engine unless its workload says otherwise."""
    from budsim.core.calibration.features import (
        VERSION_KNOWN,
        VERSION_UNKNOWN,
        VERSION_UNNAMED,
        version_status,
        workload_version_status,
    )

    assert version_status("vllm", "0.6.6") == VERSION_KNOWN
    assert version_status("vllm", None) == VERSION_UNKNOWN
    assert version_status("vllm", math.nan) == VERSION_UNKNOWN
    assert version_status("vllm", " ") == VERSION_UNKNOWN
    assert version_status("other", None) == VERSION_UNNAMED
    assert workload_version_status(Workload()) == VERSION_KNOWN
    assert workload_version_status(Workload(extra={"engine_version": "0.4.2"})) == VERSION_KNOWN
    assert workload_version_status(Workload(extra={"engine_version": None})) == VERSION_UNKNOWN


def test_real_rows_carry_their_version_status() -> None:
    """Hand-checked rows of ../shared/data: LLM-Inference-Bench records no engine version (mid-2024
    vLLM), the ROCm dev-docker tables do (vLLM 0.6.6 .. 0.10.0), Splitwise names no engine."""
    from budsim.core.calibration.features import FEATURE_INDEX
    from budsim.core.errors import BudsimError
    from budsim.learn.datasets import data_dir, load_measurements

    try:
        root = data_dir()
    except BudsimError:  # the shared data is optional for the test suite
        pytest.skip("no measured data")
    rows = load_measurements(root, ["llm_inference_bench", "rocm_vllm", "splitwise"])
    picked = []
    for source in ("llm_inference_bench", "rocm_vllm", "splitwise"):
        sub = rows[(rows["source"] == source) & (rows["hardware"].notna())]
        sub = sub[sub["engine"].isin(["vllm", "other"])]
        picked.extend(sub.head(40).to_dict("records"))
    ss = build_samples(picked)
    col = FEATURE_INDEX["e_version_status"]
    by_source: dict[str, set[float]] = {}
    for s in ss.samples:
        by_source.setdefault(s.source, set()).add(s.x[col])
    assert by_source["llm_inference_bench"] == {0.0}
    assert by_source["rocm_vllm"] == {1.0}
    assert by_source["splitwise"] == {-1.0}


def test_max_throughput_runs_are_validated_but_not_trained_on() -> None:
    """TensorRT-LLM's published tables: the 0.5 static batches report a batch latency (a training
    target); the 0.13 max-throughput runs report only a saturated throughput, which is compared
    (a target of validation) but gives no latency residual to learn from."""
    from budsim.core.errors import BudsimError
    from budsim.learn.datasets import data_dir, load_measurements

    try:
        root = data_dir()
    except BudsimError:  # the shared data is optional for the test suite
        pytest.skip("no measured data")
    rows = load_measurements(root, ["trtllm_perf"])
    static = rows[rows["scenario"] == "static"].head(10).to_dict("records")
    saturated = rows[rows["scenario"] == "max_throughput"].head(10).to_dict("records")
    ss = build_samples(static + saturated)
    by_id = {s.row_id: s for s in ss.samples}
    assert {r["row_id"] for r in static} <= set(by_id)
    assert {r["row_id"] for r in saturated} <= set(by_id)
    for r in static:
        assert "e2e" in by_id[r["row_id"]].residuals
    for r in saturated:
        sample = by_id[r["row_id"]]
        assert sample.residuals == {}
        assert {column for column, _, _ in sample.targets} == {"out_tok_s", "total_tok_s"}


def test_shrink_is_chosen_per_version_segment(
    samples: SampleSet, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A segment whose correction helps is calibrated, one whose correction hurts stays physics,
    and a segment without rows gets shrink 0 (physics) at prediction time."""
    from budsim.core.calibration.features import FEATURE_INDEX
    from budsim.learn.train import choose_segment_shrinks, family_data, shrink_vector

    fd = family_data(samples.samples, "cuda", "tpot")
    rows = np.arange(len(fd.y))
    col = FEATURE_INDEX["e_version_status"]
    fd.X[:, col] = np.where(rows % 2 == 0, 1.0, 0.0)  # even rows versioned, odd unversioned
    r = np.where(rows % 2 == 0, fd.y, -fd.y * 2 - 0.5)
    monkeypatch.setattr("budsim.learn.train.HW_MIN_ROWS", 20)
    per_segment = len(rows) // 2
    monkeypatch.setattr("budsim.learn.train.MIN_ROWS", per_segment)
    shrinks, _ = choose_segment_shrinks(fd, rows, r)
    # one hardware (h100-sxm) with enough rows and models: it gets its own entry too
    assert shrinks == {
        "versioned:dense:vllm": 1.0,
        "versioned:dense:vllm|h100-sxm": 1.0,
        "unversioned:dense:vllm": 0.0,
        "unversioned:dense:vllm|h100-sxm": 0.0,
    }
    # a segment with fewer rows than a family needs gets no correction, however well it fits
    monkeypatch.setattr("budsim.learn.train.MIN_ROWS", per_segment + 1)
    assert choose_segment_shrinks(fd, rows, r)[0] == {
        "versioned:dense:vllm": 0.0,
        "unversioned:dense:vllm": 0.0,
    }
    # nor does one whose rows come from fewer architecture groups than MIN_MODELS: its inner
    # cross-validation cannot show that the correction carries to models it never saw
    monkeypatch.setattr("budsim.learn.train.MIN_ROWS", per_segment)
    groups = len(set(fd.groups[rows % 2 == 0].tolist()))
    assert groups >= 2
    monkeypatch.setattr("budsim.learn.train.MIN_MODELS", groups + 1)
    assert choose_segment_shrinks(fd, rows, r)[0]["versioned:dense:vllm"] == 0.0
    segs = np.asarray(
        [
            "versioned:dense:vllm",
            "versioned:dense:vllm",
            "unversioned:dense:vllm",
            "unnamed:dense:vllm",
        ],
        dtype=object,
    )
    hw = np.asarray(["h100-sxm", "b200", "b200", "h100-sxm"], dtype=object)
    table = {
        "versioned:dense:vllm": 0.5,
        "versioned:dense:vllm|h100-sxm": 1.0,
        "unversioned:dense:vllm": 0.25,
    }
    assert list(shrink_vector(table, segs, hw)) == [1.0, 0.5, 0.25, 0.0]


def test_stored_segment_shrink_applies_by_the_version_status_feature() -> None:
    from budsim.core.calibration.features import FEATURE_INDEX
    from budsim.core.calibration.store import FamilyModel, ModelSet

    forest = Forest(_constant_model(0.5))
    model = FamilyModel(
        "tpot",
        shrink=1.0,
        segment_shrink=(("unversioned:dense:vllm", 0.5), ("versioned:dense:vllm", 1.0)),
        has_band=False,
    )
    ms = ModelSet("t", {"tpot": model}, {"tpot": [forest]})
    x = np.zeros(len(FEATURES), dtype=np.float32)
    x[FEATURE_INDEX["e_vllm"]] = 1.0
    col = FEATURE_INDEX["e_version_status"]
    x[col] = 1.0
    assert ms.predict(("tpot",), x)["tpot"][0] == pytest.approx(0.5)
    x[col] = 0.0
    assert ms.predict(("tpot",), x)["tpot"][0] == pytest.approx(0.25)
    x[col] = -1.0  # a segment the training had no rows of: physics
    assert ms.predict(("tpot",), x)["tpot"][0] == pytest.approx(0.0)
    x[col] = 1.0
    x[FEATURE_INDEX["m_is_moe"]] = 1.0  # an architecture class the training had no rows of
    assert ms.predict(("tpot",), x)["tpot"][0] == pytest.approx(0.0)
    x[FEATURE_INDEX["m_is_moe"]] = 0.0
    x[FEATURE_INDEX["e_vllm"]], x[FEATURE_INDEX["e_sglang"]] = 0.0, 1.0
    # an engine the training had no rows of
    assert ms.predict(("tpot",), x)["tpot"][0] == pytest.approx(0.0)
    x[FEATURE_INDEX["e_vllm"]], x[FEATURE_INDEX["e_sglang"]] = 1.0, 0.0
    model = FamilyModel(
        "tpot",
        segment_shrink=(("versioned:dense:vllm", 0.5), ("versioned:dense:vllm|b200", 1.0)),
        has_band=False,
    )
    ms = ModelSet("t", {"tpot": model}, {"tpot": [forest]})
    x[col] = 1.0
    assert ms.predict(("tpot",), x, "b200")["tpot"][0] == pytest.approx(0.5)
    assert ms.predict(("tpot",), x, "h100-sxm")["tpot"][0] == pytest.approx(0.25)
    # a segment left physics-only carries the physics-only band, not the learned one
    model = FamilyModel(
        "tpot", segment_shrink=(("versioned:dense:vllm", 0.0),), fallback=(-0.3, 0.4)
    )
    band = Forest(_constant_model(0.5))
    ms = ModelSet("t", {"tpot": model}, {"tpot": [forest, band]})
    assert ms.predict(("tpot",), x)["tpot"] == pytest.approx((0.0, -0.3, 0.4))


def _constant_model(value: float) -> dict[str, object]:
    """A one-leaf XGBoost JSON model predicting `value`."""
    import xgboost as xgb

    X = np.zeros((4, len(FEATURES)), dtype=np.float32)
    dm = xgb.DMatrix(X, label=np.full(4, value), feature_names=list(FEATURES))
    booster = xgb.train({"max_depth": 1, "eta": 1.0, "base_score": value, "nthread": 1}, dm, 1)
    return json.loads(bytes(booster.save_raw("json")).decode())


def test_fold_spread_is_the_range_of_the_folds_medians() -> None:
    import pandas as pd

    from budsim.learn.validate import fold_spread

    frame = pd.DataFrame(
        {"fold": [0, 0, 0, 1, 1, -1], "calibrated_ape": [1.0, 5.0, 9.0, 20.0, 30.0, 99.0]}
    )
    assert fold_spread(frame) == "5.0-25.0"  # fold 0's median 5, fold 1's 25; -1 is unscored
    assert fold_spread(frame[frame["fold"] == 0]) == ""  # one fold: no spread to give
