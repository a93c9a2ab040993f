"""The SQLite run store: schema, WAL, per-generation commits, interrupted-run recovery, migrations."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from budsim.core import store as store_mod
from budsim.core.errors import BudsimError
from budsim.core.store import RunResult, open_store

DEPLOYMENT = {
    "model": "m",
    "hardware": "h100-sxm",
    "engine": "vllm",
    "tp": 4,
    "pp": 1,
    "dp": 1,
    "ep": 1,
    "replicas": 2,
    "weight_dtype": "fp8",
    "kv_dtype": "auto",
    "max_num_seqs": 64,
    "max_num_batched_tokens": 4096,
    "gpu_memory_utilization": 0.9,
}


def _stats(gen: int) -> dict[str, object]:
    return {"best": {"target": 100.0 + gen}, "evaluations": 10 * (gen + 1), "elapsed_s": 0.1 * gen}


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _new_run(store: store_mod.RunStore, model: str = "m") -> str:
    return store.create_run(
        inputs={"model": model, "hardware": "h100-sxm", "devices": 8},
        settings={"population_size": 10},
        objective="throughput",
        model_hash="abc123",
    )


def test_default_path_follows_env_and_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BUDSIM_DB", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert store_mod.default_db_path() == tmp_path / "xdg" / "budsim" / "runs.db"
    monkeypatch.setenv("BUDSIM_DB", str(tmp_path / "custom.db"))
    assert store_mod.default_db_path() == tmp_path / "custom.db"
    with open_store() as s:
        assert s.path == tmp_path / "custom.db"
    assert (tmp_path / "custom.db").exists()


def test_wal_schema_version_and_tables(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        assert s.journal_mode == "wal"
        assert s.schema_version == store_mod.SCHEMA_VERSION
        assert {"runs", "generations", "results"} <= set(s.db.table_names())
    conn = sqlite3.connect(tmp_path / "runs.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == store_mod.SCHEMA_VERSION


def test_round_trip(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        run_id = _new_run(s)
        for gen in range(3):
            s.record_generation(
                run_id,
                gen,
                stats=_stats(gen),
                population=[{"configuration": {"tp": 4}, "feasible": True}],
                front=[{"configuration": {"tp": 4}}],
            )
        prediction = {"output_tok_s": 1234.5, "ttft_ms_p50": 80.0, "fits": True, "x": float("nan")}
        s.finish_run(
            run_id,
            "completed",
            results=[
                {"rank": 0, "kind": "best", "deployment": DEPLOYMENT, "prediction": prediction},
                {
                    "rank": 1,
                    "kind": "alternative",
                    "deployment": {**DEPLOYMENT, "tp": 8, "replicas": 1},
                    "prediction": {"output_tok_s": 1000.0},
                },
            ],
            metadata={"duration_seconds": 1.5, "configurations_evaluated": 30},
            response={"simulation_id": run_id, "status": "completed"},
        )
        run = s.get_run(run_id[:6])  # prefix lookup
        assert run["id"] == run_id
        assert run["status"] == "completed"
        assert run["duration_s"] == 1.5
        assert run["evaluations"] == 30
        assert run["generations"] == 3
        assert run["inputs"]["devices"] == 8
        assert run["response"]["simulation_id"] == run_id
        assert run["model_hash"] == "abc123"
        assert run["pid"] == os.getpid()
        best = s.get_run_result(run_id)
        assert isinstance(best, RunResult)
        deployment, pred = best
        assert deployment == DEPLOYMENT
        assert pred is not None and pred["output_tok_s"] == 1234.5
        assert pred["x"] is None  # NaN stored as JSON null
        assert s.get_run_result(run_id, rank=1).deployment["tp"] == 8
        with pytest.raises(BudsimError, match="rank 5"):
            s.get_run_result(run_id, rank=5)
        results = s.get_results(run_id)
        assert [r["kind"] for r in results] == ["best", "alternative"]
        gens = s.get_generations(run_id, population=True)
        assert [g["generation"] for g in gens] == [0, 1, 2]
        assert gens[2]["stats"]["best"]["target"] == 102.0
        assert gens[0]["population"][0]["configuration"]["tp"] == 4
        listed = s.list_runs()
        assert listed[0]["id"] == run_id
        assert listed[0]["best_deployment"]["engine"] == "vllm"


def test_generation_commits_are_visible_to_another_connection(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    writer = open_store(path)
    run_id = _new_run(writer)
    writer.record_generation(run_id, 0, stats=_stats(0))
    writer.record_generation(run_id, 1, stats=_stats(1))
    # The writer stays open (a search in progress); a separate reader sees both generations.
    reader = sqlite3.connect(path)
    count = reader.execute(
        "SELECT COUNT(*) FROM generations WHERE run_id = ?", (run_id,)
    ).fetchone()
    assert count[0] == 2
    status = reader.execute("SELECT status FROM runs WHERE id = ?", (run_id,)).fetchone()[0]
    assert status == "running"
    reader.close()
    writer.close()


def test_dead_process_marks_run_interrupted_and_keeps_generations(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with open_store(path) as s:
        live = _new_run(s, "alive")
        dead = _new_run(s, "dead")
        best = {
            "configuration": {**DEPLOYMENT, "devices": 8, "devices_per_replica": 4},
            "predicted_performance": {"output_tok_s": 999.0},
            "objectives": {"target": 1.0},
            "feasible": True,
        }
        for gen in range(4):
            s.record_generation(dead, gen, stats=_stats(gen), best=best)
        s.db.table("runs").update(dead, {"pid": _dead_pid()})
    with open_store(path) as s:
        assert s.recovered == [dead]
        run = s.get_run(dead)
        assert run["status"] == "interrupted"
        assert run["finished_at"] is not None
        assert run["generations"] == 4
        assert len(s.get_generations(dead)) == 4
        # The best-so-far of the last finished generation becomes the usable result.
        deployment, prediction = s.get_run_result(dead)
        assert deployment == DEPLOYMENT  # derived keys dropped: it builds a Deployment again
        assert prediction == {"output_tok_s": 999.0}
        # This process is still alive, so its run is left alone.
        assert s.get_run(live)["status"] == "running"


def test_reused_pid_counts_as_dead(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        run_id = _new_run(s)
        token = s.get_run(run_id)["process_start"]
        if token is None:
            pytest.skip("no /proc on this platform")
        s.db.table("runs").update(run_id, {"process_start": "other-boot:1"})
    with open_store(tmp_path / "runs.db") as s:
        assert s.get_run(run_id)["status"] == "interrupted"


def test_run_from_another_host_is_left_alone(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        run_id = _new_run(s)
        s.db.table("runs").update(run_id, {"hostname": "some-other-host", "pid": _dead_pid()})
    with open_store(tmp_path / "runs.db") as s:
        assert s.get_run(run_id)["status"] == "running"


def test_delete_compare_and_errors(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        a, b = _new_run(s, "a"), _new_run(s, "b")
        for run_id, tps, tp in ((a, 100.0, 4), (b, 150.0, 8)):
            s.finish_run(
                run_id,
                "completed",
                results=[
                    {
                        "rank": 0,
                        "kind": "best",
                        "deployment": {**DEPLOYMENT, "tp": tp},
                        "prediction": {"output_tok_s_per_device": tps, "devices": 8},
                        "objectives": {"output_tok_s_per_device": tps},
                    }
                ],
            )
        cmp = s.compare_runs(a, b)
        assert cmp["configuration"]["tp"] == [4, 8]
        metric = cmp["metrics"]["output_tok_s_per_device"]
        assert metric["delta"] == pytest.approx(50.0)
        assert metric["ratio"] == pytest.approx(1.5)
        assert s.delete_run(a) == a
        assert [r["id"] for r in s.list_runs()] == [b]
        assert s.db.execute("SELECT COUNT(*) FROM results WHERE run_id = ?", [a]).fetchone()[0] == 0
        with pytest.raises(BudsimError, match="no run"):
            s.get_run(a)
        with pytest.raises(BudsimError, match="empty"):
            s.get_run(" ")
        with pytest.raises(ValueError):
            s.finish_run(b, "weird")


def test_listed_and_compared_runs_carry_their_workload_and_slos(tmp_path: Path) -> None:
    """What tells two runs of one model apart (#19): the workload and constraints of their
    inputs come with each listed run and each run of a comparison."""
    workload = {"scenario": "concurrency", "input_len": 1024, "output_len": 256, "concurrency": 16}
    with open_store(tmp_path / "runs.db") as s:
        ids = []
        for percentile in ("p90", "p95"):
            constraints = {"ttft_ms": 500.0, "percentile": percentile}
            inputs = {"model": "m", "workload": workload, "constraints": constraints}
            ids.append(s.create_run(inputs=inputs, hardware="h100-sxm", devices=2))
        bare = _new_run(s)  # inputs without a workload or constraints
        listed = {r["id"]: r for r in s.list_runs()}
        assert [listed[i]["constraints"]["percentile"] for i in ids] == ["p90", "p95"]
        assert listed[ids[0]]["workload"] == workload
        assert listed[bare]["workload"] is None and listed[bare]["constraints"] is None
        assert "inputs" not in listed[bare]
        runs = s.compare_runs(ids[0], ids[1])["runs"]
        assert [r["constraints"]["percentile"] for r in runs] == ["p90", "p95"]
        assert runs[1]["workload"]["concurrency"] == 16


def test_failed_run_without_results_explains(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        run_id = _new_run(s)
        s.finish_run(run_id, "failed", error="nothing fits")
        with pytest.raises(BudsimError, match="failed.*nothing fits"):
            s.get_run_result(run_id)


def test_migration_hook_upgrades_old_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "runs.db"
    with open_store(path) as s:
        run_id = _new_run(s)
    calls: list[int] = []

    def add_notes(db: object) -> None:
        calls.append(1)
        db.execute("ALTER TABLE runs ADD COLUMN notes TEXT")  # type: ignore[attr-defined]

    monkeypatch.setattr(store_mod, "SCHEMA_VERSION", 2)
    monkeypatch.setattr(store_mod, "MIGRATIONS", {1: add_notes})
    with open_store(path) as s:
        assert s.schema_version == 2
        assert "notes" in s.db.table("runs").columns_dict
        assert s.get_run(run_id)["id"] == run_id  # data kept
        history = [r["version"] for r in s.db.table("schema_history").rows]
        assert history == [1, 2]
    with open_store(path):
        pass
    assert calls == [1]  # applied once


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    open_store(path).close()
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(BudsimError, match="newer budsim"):
        open_store(path)


def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(BudsimError, match="not a budsim run store"):
        open_store(path)


def test_json_columns_are_valid_json(tmp_path: Path) -> None:
    with open_store(tmp_path / "runs.db") as s:
        run_id = _new_run(s)
        s.record_generation(run_id, 0, stats={"best": {"target": float("inf")}})
    raw = sqlite3.connect(tmp_path / "runs.db").execute("SELECT stats FROM generations").fetchone()
    assert json.loads(raw[0])["best"]["target"] is None
