"""The local run store: one SQLite file (sqlite-utils, WAL) holding optimisation runs.

Location: `--db PATH`, else `$BUDSIM_DB`, else `$XDG_DATA_HOME/budsim/runs.db` (platformdirs' user data
dir). Tables:

- runs: inputs, GA settings, the search space, status (running | completed | cancelled | failed |
  interrupted), timestamps, duration, budsim version, model hash/version, the process that ran it
  (pid, hostname, process start token) and the final response JSON;
- generations: one row per generation, committed as it completes (stats, population, front, best);
- results: best (rank 0), alternatives and the rest of the Pareto front (or the closest candidates of a
  run that found nothing feasible), each with its deployment and prediction.

A run left `running` by a process that no longer exists is marked `interrupted` the next time the store
opens; it keeps every generation it finished, and its best-so-far becomes its rank-0 result.
The schema version lives in `PRAGMA user_version`; `MIGRATIONS[v]` upgrades version v to v + 1.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import __version__
from .errors import BudsimError

if TYPE_CHECKING:
    from sqlite_utils import Database

SCHEMA_VERSION = 1
# MIGRATIONS[v] takes a database at schema version v to v + 1 (inside one transaction).
MIGRATIONS: dict[int, Callable[[Database], None]] = {}

STATUSES = ("running", "completed", "cancelled", "failed", "interrupted")
RESULT_KINDS = ("best", "alternative", "pareto", "closest")

# Keys of a response's configuration that are derived, not Deployment fields.
_DERIVED_CONFIG_KEYS = ("devices", "devices_per_replica")
_RUN_JSON = ("inputs", "settings", "space", "metadata", "response")
_GEN_JSON = ("stats", "population", "front", "best")
_RES_JSON = ("deployment", "prediction", "objectives", "constraints")

# Metrics compared by `compare_runs` (prediction keys, then objectives).
COMPARE_METRICS = (
    "output_tok_s",
    "output_tok_s_per_device",
    "tok_s_per_user",
    "requests_per_s",
    "ttft_ms_p50",
    "ttft_ms_p90",
    "ttft_ms_p95",
    "ttft_ms_p99",
    "tpot_ms_p50",
    "tpot_ms_p90",
    "tpot_ms_p95",
    "tpot_ms_p99",
    "e2e_s_p50",
    "weights_gb_per_device",
    "kv_cache_gb_per_device",
    "devices",
)


class RunResult(NamedTuple):
    deployment: dict[str, Any]
    prediction: dict[str, Any] | None


def default_db_path() -> Path:
    env = os.environ.get("BUDSIM_DB")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_data_dir

    return Path(user_data_dir("budsim", appauthor=False)) / "runs.db"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _parse_time(text: str | None) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        return None


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start_token(pid: int) -> str | None:
    """An id for the process instance (boot id + start time in clock ticks); None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); starttime is field 22
    return f"{_boot_id()}:{fields[19]}"


def process_alive(pid: int | None, hostname: str | None, start_token: str | None) -> bool:
    """Whether the process that wrote a run still runs. Runs from other hosts count as alive."""
    if pid is None:
        return False
    if hostname and hostname != socket.gethostname():
        return True  # cannot tell from here; leave it alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    except OSError:
        return False
    if start_token is not None:
        current = process_start_token(pid)
        if current is not None and current != start_token:
            return False  # the pid was reused by another process
    return True


def _dumps(value: Any) -> str | None:
    if value is None:
        return None
    return json.dumps(value, default=_json_default, allow_nan=False)


def _dumps_clean(value: Any) -> str | None:
    """_dumps(_clean(value)), without walking `value` when every float is finite (the store's
    callers pass mappings with string keys, which json writes as _clean would)."""
    if value is None:
        return None
    try:
        return json.dumps(value, default=_json_default, allow_nan=False)
    except (ValueError, TypeError):  # a non-finite float, or a key json does not take
        return _dumps(_clean(value))


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "to_dict"):
        return value.to_dict()
    return str(value)


def _clean(value: Any) -> Any:
    """Replace non-finite floats (not valid JSON) by None, recursively."""
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def _load(row: Mapping[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    out = dict(row)
    for col in columns:
        raw = out.get(col)
        if isinstance(raw, str):
            try:
                out[col] = json.loads(raw)
            except ValueError:
                pass
    return out


def _database_class() -> type[Database]:
    """sqlite_utils' Database, imported without pandas: sqlite_utils imports pandas when it can
    (to store DataFrames and Timestamps, which the store never passes), and pandas would be most
    of a command's start-up (0.3 of its 0.5 s with pyarrow). Where pandas is already loaded,
    nothing changes."""
    import sys

    if "pandas" in sys.modules or "sqlite_utils" in sys.modules:
        from sqlite_utils import Database

        return Database
    sys.modules["pandas"] = None  # type: ignore[assignment]  # import pandas: ImportError
    try:
        from sqlite_utils import Database

        return Database
    finally:
        del sys.modules["pandas"]


class RunStore:
    """One open store. Thread-safe for the GA worker + UI pattern (one connection, one lock)."""

    def __init__(self, path: str | Path | None = None, *, recover: bool = True) -> None:
        Database = _database_class()
        self.path = Path(path).expanduser() if path is not None else default_db_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        try:
            self.conn = sqlite3.connect(str(self.path), timeout=10.0, check_same_thread=False)
        except sqlite3.Error as exc:
            raise BudsimError(f"cannot open the run store {self.path}: {exc}") from None
        self.db = Database(self.conn)
        try:
            self.db.enable_wal()
            # WAL without a sync per commit (the optimiser commits every generation): a crash
            # keeps the store consistent and loses at most the last commits
            self.conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self.conn.close()
            raise BudsimError(f"{self.path} is not a budsim run store ({exc})") from None
        self.recovered: list[str] = self.recover_interrupted() if recover else []

    # ------------------------------------------------------------------ schema

    @property
    def schema_version(self) -> int:
        return int(self.conn.execute("PRAGMA user_version").fetchone()[0])

    @property
    def journal_mode(self) -> str:
        return str(self.conn.execute("PRAGMA journal_mode").fetchone()[0])

    def _set_version(self, version: int) -> None:
        self.conn.execute(f"PRAGMA user_version = {int(version)}")
        self.db.table("schema_history").insert({"version": version, "applied_at": _now()})

    def _create_schema(self) -> None:
        db = self.db
        db.table("runs").create(
            {
                "id": str,
                "created_at": str,
                "finished_at": str,
                "status": str,
                "model": str,
                "hardware": str,
                "devices": int,
                "objective": str,
                "inputs": str,
                "settings": str,
                "space": str,
                "budsim_version": str,
                "model_version": str,
                "model_hash": str,
                "pid": int,
                "hostname": str,
                "process_start": str,
                "duration_s": float,
                "generations": int,
                "evaluations": int,
                "metadata": str,
                "response": str,
                "error": str,
            },
            pk="id",
            not_null={"id", "created_at", "status"},
        )
        db.table("generations").create(
            {
                "run_id": str,
                "generation": int,
                "created_at": str,
                "elapsed_s": float,
                "evaluations": int,
                "stats": str,
                "population": str,
                "front": str,
                "best": str,
            },
            pk=("run_id", "generation"),
            foreign_keys=[("run_id", "runs", "id")],
        )
        db.table("results").create(
            {
                "run_id": str,
                "rank": int,
                "kind": str,
                "feasible": int,
                "deployment": str,
                "prediction": str,
                "objectives": str,
                "constraints": str,
            },
            pk=("run_id", "rank"),
            foreign_keys=[("run_id", "runs", "id")],
        )
        db.table("runs").create_index(["created_at"])
        db.table("runs").create_index(["status"])
        db.table("schema_history").create({"version": int, "applied_at": str})

    def _migrate(self) -> None:
        with self._lock, self.conn:
            version = self.schema_version
            target = SCHEMA_VERSION
            if version == 0 and "runs" not in self.db.table_names():
                self._create_schema()
                self._set_version(target)
                return
            if version == 0:
                version = 1  # a v1 store written before user_version was set
            if version > target:
                raise BudsimError(
                    f"{self.path} was written by a newer budsim (schema {version} > {target}); "
                    "upgrade budsim or use another --db"
                )
            while version < target:
                step = MIGRATIONS.get(version)
                if step is None:
                    raise BudsimError(f"no migration from run-store schema {version}")
                step(self.db)
                version += 1
                self._set_version(version)

    # ------------------------------------------------------------------ writing

    def create_run(
        self,
        *,
        inputs: Mapping[str, Any],
        settings: Mapping[str, Any] | None = None,
        model: str | None = None,
        hardware: str | None = None,
        devices: int | None = None,
        objective: str | None = None,
        model_hash: str | None = None,
        model_version: str | None = None,
        space: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        run_id = run_id or uuid.uuid4().hex
        pid = os.getpid()
        row = {
            "id": run_id,
            "created_at": _now(),
            "finished_at": None,
            "status": "running",
            "model": model or inputs.get("model"),
            "hardware": hardware or inputs.get("hardware"),
            "devices": devices if devices is not None else inputs.get("devices"),
            "objective": objective or inputs.get("optimization_target"),
            "inputs": _dumps_clean(inputs),
            "settings": _dumps_clean(settings or {}),
            "space": _dumps_clean(space) if space is not None else None,
            "budsim_version": __version__,
            "model_version": model_version,
            "model_hash": model_hash,
            "pid": pid,
            "hostname": socket.gethostname(),
            "process_start": process_start_token(pid),
            "duration_s": None,
            "generations": 0,
            "evaluations": 0,
        }
        with self._lock, self.conn:
            self.db.table("runs").insert(row)
        return run_id

    def record_generation(
        self,
        run_id: str,
        generation: int,
        *,
        stats: Mapping[str, Any],
        population: Sequence[Mapping[str, Any]] = (),
        front: Sequence[Mapping[str, Any]] = (),
        best: Mapping[str, Any] | None = None,
    ) -> None:
        """Store one finished generation and commit it."""
        row = {
            "run_id": run_id,
            "generation": int(generation),
            "created_at": _now(),
            "elapsed_s": stats.get("elapsed_s"),
            "evaluations": stats.get("evaluations"),
            "stats": _dumps_clean(stats),
            "population": _dumps_clean(list(population)),
            "front": _dumps_clean(list(front)),
            "best": _dumps_clean(best) if best is not None else None,
        }
        with self._lock, self.conn:
            self.db.table("generations").insert(row, replace=True)
            self.conn.execute(
                "UPDATE runs SET generations = (SELECT COUNT(*) FROM generations WHERE run_id = ?),"
                " evaluations = ? WHERE id = ?",
                (run_id, row["evaluations"] or 0, run_id),
            )

    def finish_run(
        self,
        run_id: str,
        status: str,
        *,
        results: Sequence[Mapping[str, Any]] = (),
        metadata: Mapping[str, Any] | None = None,
        response: Mapping[str, Any] | None = None,
        error: str | None = None,
    ) -> None:
        if status not in STATUSES:
            raise ValueError(f"unknown run status {status!r}")
        with self._lock, self.conn:
            run = self._row(run_id)
            finished = _now()
            started = _parse_time(run.get("created_at"))
            ended = _parse_time(finished)
            duration = (
                (metadata or {}).get("duration_seconds")
                if metadata and metadata.get("duration_seconds") is not None
                else (ended - started if started is not None and ended is not None else None)
            )
            update: dict[str, Any] = {
                "status": status,
                "finished_at": finished,
                "duration_s": duration,
                "error": error,
            }
            if metadata is not None:
                update["metadata"] = _dumps_clean(metadata)
                if metadata.get("configurations_evaluated") is not None:
                    update["evaluations"] = metadata["configurations_evaluated"]
            if response is not None:
                update["response"] = _dumps_clean(response)
            self.db.table("runs").update(run_id, update)
            if results:
                self._write_results(run_id, results)

    def _write_results(self, run_id: str, results: Sequence[Mapping[str, Any]]) -> None:
        self.conn.execute("DELETE FROM results WHERE run_id = ?", (run_id,))
        rows = []
        for i, r in enumerate(results):
            kind = r.get("kind", "alternative")
            if kind not in RESULT_KINDS:
                raise ValueError(f"unknown result kind {kind!r}")
            rows.append(
                {
                    "run_id": run_id,
                    "rank": int(r.get("rank", i)),
                    "kind": kind,
                    "feasible": int(bool(r.get("feasible", True))),
                    "deployment": _dumps_clean(r["deployment"]),
                    "prediction": _dumps_clean(r.get("prediction")),
                    "objectives": _dumps_clean(r.get("objectives")),
                    "constraints": _dumps_clean(r.get("constraints")),
                }
            )
        self.db.table("results").insert_all(rows)

    def recover_interrupted(self) -> list[str]:
        """Mark `running` runs whose process is gone as interrupted; returns their ids."""
        recovered = []
        with self._lock:
            rows = list(self.db.table("runs").rows_where("status = ?", ["running"]))
        for run in rows:
            if process_alive(run.get("pid"), run.get("hostname"), run.get("process_start")):
                continue
            with self._lock, self.conn:
                last = self.conn.execute(
                    "SELECT created_at, best, evaluations FROM generations WHERE run_id = ?"
                    " ORDER BY generation DESC LIMIT 1",
                    (run["id"],),
                ).fetchone()
                ended = last[0] if last else run["created_at"]
                started = _parse_time(run["created_at"])
                stop = _parse_time(ended)
                self.db.table("runs").update(
                    run["id"],
                    {
                        "status": "interrupted",
                        "finished_at": ended,
                        "duration_s": (stop - started) if started and stop else None,
                        "error": "the process running this search stopped before it finished",
                    },
                )
                has_results = self.conn.execute(
                    "SELECT 1 FROM results WHERE run_id = ? LIMIT 1", (run["id"],)
                ).fetchone()
                if last and last[1] and not has_results:
                    best = json.loads(last[1])
                    self._write_results(
                        run["id"],
                        [
                            {
                                "rank": 0,
                                "kind": "best",
                                "feasible": best.get("feasible", True),
                                "deployment": {
                                    k: v
                                    for k, v in (best.get("configuration") or {}).items()
                                    if k not in _DERIVED_CONFIG_KEYS
                                },
                                "prediction": best.get("predicted_performance"),
                                "objectives": best.get("objectives"),
                                "constraints": best.get("constraints"),
                            }
                        ],
                    )
            recovered.append(run["id"])
        return recovered

    def delete_run(self, run_id: str) -> str:
        full = self.resolve(run_id)
        with self._lock, self.conn:
            self.conn.execute("DELETE FROM results WHERE run_id = ?", (full,))
            self.conn.execute("DELETE FROM generations WHERE run_id = ?", (full,))
            self.conn.execute("DELETE FROM runs WHERE id = ?", (full,))
        return full

    # ------------------------------------------------------------------ reading

    def resolve(self, run_id: str) -> str:
        """The full id for an id or a unique prefix of one."""
        key = run_id.strip().lower()
        if not key:
            raise BudsimError("empty run id")
        with self._lock:
            exact = self.conn.execute("SELECT id FROM runs WHERE id = ?", (key,)).fetchone()
            if exact:
                return str(exact[0])
            like = key.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
            rows = self.conn.execute(
                "SELECT id FROM runs WHERE id LIKE ? ESCAPE '\\' LIMIT 3", (like,)
            ).fetchall()
        if not rows:
            raise BudsimError(f"no run {run_id!r} in {self.path}; see `budsim runs list`")
        if len(rows) > 1:
            raise BudsimError(f"run id {run_id!r} is ambiguous; give more characters")
        return str(rows[0][0])

    def _row(self, run_id: str) -> dict[str, Any]:
        full = self.resolve(run_id)
        with self._lock:
            return dict(self.db.table("runs").get(full))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return _load(self._row(run_id), _RUN_JSON)

    def list_runs(
        self, *, limit: int | None = None, status: str | None = None
    ) -> list[dict[str, Any]]:
        """Newest first, with each run's workload and constraints (from its inputs), a short
        summary of its best result, and its `metadata`: the finished search's, or for a run that
        has none (running, interrupted) what its saved generations show (`generations_evolved`,
        `local_search_rounds`, `method`), so that every view counts a search the same way
        (`report.search_steps_text`) rather than one counting the saved rows (the initial
        population and each local round are rows too)."""
        where = "WHERE r.status = ?" if status else ""
        params: list[Any] = [status] if status else []
        sql = (
            "SELECT r.id, r.created_at, r.finished_at, r.status, r.model, r.hardware, r.devices,"
            " r.objective, r.duration_s, r.generations, r.evaluations, r.error, r.inputs,"
            " r.metadata, g.evolved, g.local_rounds, g.exhaustive,"
            " b.deployment AS best_deployment, b.prediction AS best_prediction,"
            " b.objectives AS best_objectives"
            " FROM runs r LEFT JOIN results b ON b.run_id = r.id AND b.rank = 0"
            " LEFT JOIN (SELECT run_id,"
            "  SUM(generation > 0 AND json_extract(stats, '$.method') = 'ga') AS evolved,"
            "  SUM(json_extract(stats, '$.method') = 'local') AS local_rounds,"
            "  MAX(json_extract(stats, '$.method') = 'exhaustive') AS exhaustive"
            "  FROM generations GROUP BY run_id) g ON g.run_id = r.id"
            f" {where} ORDER BY r.created_at DESC, r.rowid DESC"
        )
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._lock:
            cursor = self.conn.execute(sql, params)
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        out = []
        for row in rows:
            loaded = _load(
                row, ("best_deployment", "best_prediction", "best_objectives", "inputs", "metadata")
            )
            inputs = loaded.pop("inputs")
            saved = {k: loaded.pop(k) for k in ("evolved", "local_rounds", "exhaustive")}
            if not isinstance(loaded.get("metadata"), Mapping):
                loaded["metadata"] = (
                    {"method": "exhaustive"}
                    if saved["exhaustive"]
                    else {
                        "generations_evolved": saved["evolved"] or 0,
                        "local_search_rounds": saved["local_rounds"] or 0,
                    }
                    if saved["evolved"] is not None
                    else {}
                )
            out.append({**loaded, **_request_summary(inputs)})
        return out

    def get_generations(self, run_id: str, *, population: bool = False) -> list[dict[str, Any]]:
        full = self.resolve(run_id)
        cols = "run_id, generation, created_at, elapsed_s, evaluations, stats, front, best"
        if population:
            cols += ", population"
        with self._lock:
            cursor = self.conn.execute(
                f"SELECT {cols} FROM generations WHERE run_id = ? ORDER BY generation", (full,)
            )
            names = [d[0] for d in cursor.description]
            rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        return [_load(r, _GEN_JSON) for r in rows]

    def get_results(self, run_id: str) -> list[dict[str, Any]]:
        full = self.resolve(run_id)
        with self._lock:
            rows = list(self.db.table("results").rows_where("run_id = ?", [full], order_by="rank"))
        out = []
        for r in rows:
            loaded = _load(r, _RES_JSON)
            loaded["feasible"] = bool(loaded.get("feasible"))
            out.append(loaded)
        return out

    def get_run_result(self, run_id: str, rank: int = 0) -> RunResult:
        """The deployment and prediction of one result (rank 0 = the best)."""
        full = self.resolve(run_id)
        with self._lock:
            row = self.conn.execute(
                "SELECT deployment, prediction FROM results WHERE run_id = ? AND rank = ?",
                (full, int(rank)),
            ).fetchone()
        if row is None:
            run = self._row(full)
            if rank == 0:
                raise BudsimError(
                    f"run {full[:8]} ({run['status']}) has no result to use"
                    + (f": {run['error']}" if run.get("error") else "")
                )
            raise BudsimError(f"run {full[:8]} has no result at rank {rank}")
        deployment = json.loads(row[0])
        prediction = json.loads(row[1]) if row[1] else None
        return RunResult(deployment, prediction)

    def compare_runs(self, run_a: str, run_b: str) -> dict[str, Any]:
        """Side-by-side best configurations and key metrics (b relative to a)."""
        runs = [self.get_run(run_a), self.get_run(run_b)]
        bests: list[RunResult | None] = []
        objectives: list[dict[str, Any]] = []
        for run in runs:
            try:
                bests.append(self.get_run_result(run["id"]))
            except BudsimError:
                bests.append(None)
            res = self.get_results(run["id"])
            objectives.append((res[0].get("objectives") or {}) if res else {})
        config_keys: list[str] = []
        for best in bests:
            for key in best.deployment if best else {}:
                if key not in config_keys:
                    config_keys.append(key)
        configuration = {
            key: [best.deployment.get(key) if best else None for best in bests]
            for key in config_keys
        }
        metrics: dict[str, dict[str, Any]] = {}
        sources: list[tuple[str, Sequence[Mapping[str, Any]]]] = [
            ("prediction", [(b.prediction or {}) if b else {} for b in bests]),
            ("objective", objectives),
        ]
        for source, values in sources:
            keys = COMPARE_METRICS if source == "prediction" else tuple(objectives[0] or {})
            for key in keys:
                if key in metrics:
                    continue
                a, b = values[0].get(key), values[1].get(key)
                if a is None and b is None:
                    continue
                entry: dict[str, Any] = {"a": a, "b": b, "delta": None, "ratio": None}
                if isinstance(a, (int, float)) and isinstance(b, (int, float)):
                    entry["delta"] = b - a
                    entry["ratio"] = (b / a) if a else None
                metrics[key] = entry
        return {
            "runs": [_summary(r) for r in runs],
            "configuration": configuration,
            "metrics": metrics,
        }

    def close(self) -> None:
        with self._lock:
            self.conn.close()

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _summary(run: Mapping[str, Any]) -> dict[str, Any]:
    keys = (
        "id",
        "created_at",
        "finished_at",
        "status",
        "model",
        "hardware",
        "devices",
        "objective",
        "duration_s",
        "generations",
        "evaluations",
    )
    return {**{k: run.get(k) for k in keys}, **_request_summary(run.get("inputs"))}


def _request_summary(inputs: Any) -> dict[str, Any]:
    """The workload and constraints (SLOs) of a run's stored inputs (None where missing)."""
    inputs = inputs if isinstance(inputs, Mapping) else {}
    return {"workload": inputs.get("workload"), "constraints": inputs.get("constraints")}


def open_store(path: str | Path | None = None) -> RunStore:
    """Open (creating or migrating) the run store; marks dead `running` runs as interrupted."""
    return RunStore(path)
