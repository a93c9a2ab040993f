"""Loaders of the measured end-to-end datasets (``<data>/e2e``) into one normalised table.

`load_measurements()` returns one pandas DataFrame, one row per measured configuration, with
the columns of `COLUMNS` (see ``docs/datasets.md`` for what a row means per source and what was
filtered):

- identity: ``source`` (one of `SOURCES`), ``row_id`` (stable within the source), ``model`` (config
  directory under ``model_configs/`` or None), ``model_raw``, ``model_relation`` (the ALIASES.csv
  relation), ``model_group`` (the first config directory of the same architecture: identical
  configs, such as DeepSeek-R1 and -V3, share one; cross-validation holds out whole groups),
  ``hardware`` (budsim hardware id or None), ``hardware_raw``, ``hardware_note``;
- engine: ``engine`` (vllm | sglang | trtllm | llamacpp | deepspeed | lmdeploy | other),
  ``engine_version``;
- parallelism: ``n_devices`` (float: NaN only for disaggregated rows without worker counts), ``tp``,
  ``pp``, ``dp`` (attention DP), ``ep`` (ints, >= 1); ``mode`` (agg | disagg; disagg rows carry the
  decode pool's tp/pp/dp/ep, the prefill pool's in ``prefill_tp``/``_pp``/``_dp``/``_ep``, the worker
  counts in ``prefill_workers``/``decode_workers`` (NaN where unknown; all NaN for agg rows), and
  the pools in ``note``);
- precision: ``weight_dtype`` (bf16 | fp16 | fp8 | int8 | int4 | nvfp4 | mxfp4), ``kv_dtype``
  (auto | fp8);
- load: ``scenario`` (static | concurrency | max_num_seqs | max_throughput), ``load`` (batch size,
  client concurrency or max_num_seqs; NaN for max_throughput), ``realised_batch``,
  ``max_num_seqs`` (the engine's sequence cap per attention-DP rank where the source states it; NaN
  otherwise), ``max_num_batched_tokens`` (the engine's token budget per step where the source
  states it: llama.cpp's ``-b``/n_batch, which chunks the prompt; NaN otherwise), ``input_len``,
  ``output_len`` (means where the source has length distributions; NaN where unknown), ``workload``
  (task name for dataset-driven sources, else None);
- targets (NaN where not available): ``ttft_ms``, ``tpot_ms``, ``itl_p50_ms``, ``itl_p90_ms``,
  ``itl_p95_ms``, ``itl_p99_ms``, ``e2e_s`` (static: whole-batch seconds; concurrency: per-request
  mean), ``out_tok_s`` and ``total_tok_s`` (whole system);
- ``derived``: comma-separated names of target columns that were computed from other measured values
  (e.g. ``total_tok_s`` from an output-only throughput and fixed lengths) or filled by a proxy
  (``tpot_ms`` from the median inter-token latency) instead of being reported as such;
- ``note``: free-text caveats (raw llama.cpp batch, repeats merged, disaggregated pools, ...).

pandas is imported lazily; parsed tables are cached per (data dir, sources) in this process.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import statistics
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budsim.core.errors import BudsimError

if TYPE_CHECKING:
    import pandas as pd

SOURCES: tuple[str, ...] = (
    "aic_silicon",
    "llm_inference_bench",
    "splitwise",
    "lmdeploy",
    "rocm_vllm",
    "trtllm_perf",
    "ml_energy_v2",
    "ml_energy_v3",
)


def _hardware_ids() -> frozenset[str]:
    from budsim.core.hardware import bundled_hardware_ids

    return bundled_hardware_ids()


# Rows map onto the bundled hardware catalog's ids (a user's hardware.toml plays no part here).
HARDWARE_IDS: frozenset[str] = _hardware_ids()

ENGINES: tuple[str, ...] = (
    "vllm",
    "sglang",
    "trtllm",
    "llamacpp",
    "deepspeed",
    "lmdeploy",
    "other",
)
SCENARIOS: tuple[str, ...] = ("static", "concurrency", "max_num_seqs", "max_throughput")

# (column, kind): "str" columns are object dtype holding str or None; "int" int64; "float" float64.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("source", "str"),
    ("row_id", "str"),
    ("model", "str"),
    ("model_raw", "str"),
    ("model_relation", "str"),
    ("model_group", "str"),
    ("hardware", "str"),
    ("hardware_raw", "str"),
    ("hardware_note", "str"),
    ("engine", "str"),
    ("engine_version", "str"),
    ("mode", "str"),
    ("n_devices", "float"),
    ("tp", "int"),
    ("pp", "int"),
    ("dp", "int"),
    ("ep", "int"),
    ("prefill_workers", "float"),
    ("prefill_tp", "float"),
    ("prefill_pp", "float"),
    ("prefill_dp", "float"),
    ("prefill_ep", "float"),
    ("decode_workers", "float"),
    ("weight_dtype", "str"),
    ("kv_dtype", "str"),
    ("scenario", "str"),
    ("load", "float"),
    ("realised_batch", "float"),
    ("max_num_seqs", "float"),
    ("max_num_batched_tokens", "float"),
    ("input_len", "float"),
    ("output_len", "float"),
    ("workload", "str"),
    ("ttft_ms", "float"),
    ("tpot_ms", "float"),
    ("itl_p50_ms", "float"),
    ("itl_p90_ms", "float"),
    ("itl_p95_ms", "float"),
    ("itl_p99_ms", "float"),
    ("e2e_s", "float"),
    ("out_tok_s", "float"),
    ("total_tok_s", "float"),
    ("derived", "str"),
    ("note", "str"),
)
TARGETS: tuple[str, ...] = (
    "ttft_ms",
    "tpot_ms",
    "itl_p50_ms",
    "itl_p90_ms",
    "itl_p95_ms",
    "itl_p99_ms",
    "e2e_s",
    "out_tok_s",
    "total_tok_s",
)

# Relative tolerance of the splitwise identity e2e ~= prompt_time + (token_size - 1) * token_time.
SPLITWISE_TOLERANCE = 0.20

NAN = float("nan")
Record = dict[str, Any]

_CACHE: dict[tuple[str, tuple[str, ...]], pd.DataFrame] = {}
_SOURCE_CACHE: dict[tuple[str, str], list[Record]] = {}


def available_sources() -> tuple[str, ...]:
    """Names accepted by `load_measurements(sources=...)`, in load order."""
    return SOURCES


def data_dir(explicit: str | Path | None = None) -> Path:
    """The shared data directory: `explicit` > env ``BUDSIM_DATA`` > ``<repo>/../shared/data``."""
    if explicit is not None and str(explicit) != "":
        path, origin = Path(explicit).expanduser(), "given"
    elif os.environ.get("BUDSIM_DATA"):
        path, origin = Path(os.environ["BUDSIM_DATA"]).expanduser(), "BUDSIM_DATA"
    else:
        repo = Path(__file__).resolve().parents[2]
        path, origin = repo.parent / "shared" / "data", "default"
    if not path.is_dir():
        raise BudsimError(
            f"measured data directory {path} ({origin}) not found; "
            "set BUDSIM_DATA or pass the data directory explicitly"
        )
    return path.resolve()


def clear_cache() -> None:
    """Forget parsed tables (tests, or after the data directory changed on disk)."""
    _CACHE.clear()
    _SOURCE_CACHE.clear()


def load_measurements(
    data: str | Path | None = None, sources: Sequence[str] | None = None
) -> pd.DataFrame:
    """All measured end-to-end configurations of `sources` (default: all) as one normalised frame.

    A source whose files are absent is skipped when `sources` is None and is an error when named.
    The returned frame is a copy; callers may modify it.
    """
    if sources is None:
        wanted, strict = SOURCES, False
    else:
        if isinstance(sources, str):
            sources = [sources]
        unknown = [s for s in sources if s not in SOURCES]
        if unknown:
            raise BudsimError(
                f"unknown data source {unknown[0]!r}; choose from {', '.join(SOURCES)}"
            )
        wanted, strict = tuple(dict.fromkeys(sources)), True
    root = data_dir(data)
    key = (str(root), wanted)
    frame = _CACHE.get(key)
    if frame is None:
        records: list[Record] = []
        for name in wanted:
            records.extend(_source_records(root, name, strict))
        groups = _Context(root).model_groups()
        for rec in records:
            rec["model_group"] = groups.get(rec["model"], rec["model"])
        frame = _to_frame(records)
        _CACHE[key] = frame
    return frame.copy()


# --------------------------------------------------------------------------------------------------
# helpers


def _source_records(root: Path, name: str, strict: bool) -> list[Record]:
    key = (str(root), name)
    cached = _SOURCE_CACHE.get(key)
    if cached is not None:
        return cached
    loader, rel = _LOADERS[name]
    path = root / rel
    if not path.exists():
        if strict:
            raise BudsimError(f"data source {name!r} not found: {path} is missing")
        return []
    ctx = _Context(root)
    records = loader(path, ctx)
    _SOURCE_CACHE[key] = records
    return records


def _to_frame(records: list[Record]) -> pd.DataFrame:
    import numpy as np
    import pandas as pd

    cols: dict[str, Any] = {}
    for name, kind in COLUMNS:
        values = [r.get(name) for r in records]
        if kind == "str":
            cols[name] = pd.Series(values, dtype=object)
        elif kind == "int":
            cols[name] = pd.Series(np.asarray(values, dtype=np.int64))
        else:
            cols[name] = pd.Series(
                np.asarray([NAN if v is None else v for v in values], dtype=np.float64)
            )
    return pd.DataFrame(cols)


def _num(text: Any) -> float:
    """A float from a CSV/JSON cell; NaN for empty or missing."""
    if text is None:
        return NAN
    if isinstance(text, int | float):
        return float(text)
    text = str(text).strip()
    try:
        return float(text)
    except ValueError:  # "", "TODO", "-", "n/a": not measured
        return NAN


def _par(text: Any) -> int:
    """A parallelism degree: empty, NaN or 0 means "not set" -> 1."""
    value = _num(text)
    if math.isnan(value) or value <= 0:
        return 1
    return int(round(value))


def _finite(*values: float) -> bool:
    return all(not math.isnan(v) for v in values)


def _median(values: Iterable[float]) -> float:
    kept = [v for v in values if not math.isnan(v)]
    return statistics.median(kept) if kept else NAN


def _fmt(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _record(**fields: Any) -> Record:
    rec: Record = {name: None for name, _ in COLUMNS}
    rec.update(tp=1, pp=1, dp=1, ep=1, mode="agg", kv_dtype="auto", derived="", note="")
    rec.update(fields)
    if rec["hardware"] is not None and rec["hardware"] not in HARDWARE_IDS:
        raise AssertionError(f"unknown hardware id {rec['hardware']!r}")  # programming error
    return rec


def _derived(*names: str) -> str:
    return ",".join(names)


def _join(*parts: str) -> str:
    return "; ".join(p for p in parts if p)


class _Context:
    """Per-data-dir lookups: model aliases and which model configs exist."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._aliases: dict[str, tuple[str | None, str]] | None = None
        self._exists: dict[str, bool] = {}
        self._arch: dict[str, str] = {}

    def _load_aliases(self) -> dict[str, tuple[str | None, str]]:
        if self._aliases is None:
            self._aliases = {}
            path = self.root / "model_configs" / "ALIASES.csv"
            if path.is_file():
                with path.open(newline="", encoding="utf-8") as fh:
                    for row in csv.DictReader(fh):
                        target = (row.get("config_dir") or "").strip() or None
                        relation = (row.get("relation") or "").strip()
                        self._aliases[row["dataset_model_name"].strip()] = (target, relation)
        return self._aliases

    def _has_config(self, name: str) -> bool:
        if name not in self._exists:
            self._exists[name] = (self.root / "model_configs" / name / "config.json").is_file()
        return self._exists[name]

    def architecture(self, model: str | None, raw: str) -> str:
        """A model's config without the keys that only name or date it: two ids of one
        architecture (DeepSeek-R1 and -V3) give the same string; no config gives the raw name."""
        if model is None:
            return raw
        if model not in self._arch:
            config = json.loads((self.root / "model_configs" / model / "config.json").read_text())
            for key in ("transformers_version", "_name_or_path", "name_or_path"):
                config.pop(key, None)
            self._arch[model] = json.dumps(config, sort_keys=True)
        return self._arch[model]

    def shape(self, model: str) -> str:
        """A model's layer shapes (hidden size, layers, heads, FFN and expert sizes), without its
        vocabulary, context length, rope or sliding window: the facts that decide its speed. Models
        that differ only in those (Llama-3-8B and Llama-3.1-8B, Llama-2-70B and Llama-3.3-70B,
        DeepSeek-R1 and -V3) have one shape; a config budsim cannot read keeps its own text."""
        from budsim.core.model import model_from_config

        path = self.root / "model_configs" / model
        try:
            config = json.loads((path / "config.json").read_text())
            quant = path / "hf_quant_config.json"
            if quant.is_file():
                config["hf_quant_config"] = json.loads(quant.read_text())
            spec = model_from_config(config, model)
        except (BudsimError, OSError, ValueError):
            return self.architecture(model, model)
        layers = [
            (
                layer.attention == "linear",
                layer.q_heads,
                layer.kv_heads,
                layer.qk_dim,
                layer.v_dim,
                layer.mlp_kind,
                layer.dense_params,
                layer.num_experts,
                layer.top_k,
                layer.expert_params,
                layer.is_mla,
                count,
            )
            for layer, count in spec.layer_groups
        ]
        return json.dumps([spec.hidden_size, spec.num_layers, layers])

    def model_groups(self) -> dict[str, str]:
        """Config dir -> its cross-validation group: the first dir, in sorted order, with the same
        layer shapes (see `shape`). Grouping by shape rather than by config text keeps twins that
        no feature tells apart (they differ only in context length or vocabulary) on one side of
        a split."""
        folder = self.root / "model_configs"
        dirs = sorted(
            p.parent.relative_to(folder).as_posix() for p in folder.glob("*/*/config.json")
        )
        first: dict[str, str] = {}
        return {d: first.setdefault(self.shape(d), d) for d in dirs}

    def model(self, raw: str) -> tuple[str | None, str | None]:
        """(config dir, relation) for a model string of a table; (None, ...) when no config."""
        raw = raw.strip()
        hit = self._load_aliases().get(raw)
        if hit is not None:
            target, relation = hit
            if target is not None and self._has_config(target):
                return target, relation
            return None, relation or "none"
        if "/" in raw and self._has_config(raw):
            return raw, "exact"
        return None, None

    def model_columns(self, raw: str) -> dict[str, str | None]:
        """A record's model, model_raw and model_relation columns for a table's model string."""
        model, relation = self.model(raw)
        return {"model": model, "model_raw": raw, "model_relation": relation}


def _csv_rows(path: Path) -> Iterable[tuple[int, dict[str, str]]]:
    """(line number in the file, row) for each data row; the header is line 1."""
    with path.open(newline="", encoding="utf-8") as fh:
        reader = csv.DictReader(fh)
        for row in reader:
            yield reader.line_num, row


# --------------------------------------------------------------------------------------------------
# aic_silicon: NVIDIA AIConfigurator measured serving runs at fixed client concurrency

_AIC_HW = {
    "h100_sxm": "h100-sxm",
    "h200_sxm": "h200-sxm",
    "b200_sxm": "b200",
    "b300_sxm": "b300",
    "gb200": "gb200",
    "gb300": "gb300",
}
_AIC_QUANT = {"fp8": "fp8", "fp8_block": "fp8", "nvfp4": "nvfp4", "int4_wo": "int4", "int8": "int8"}
_AIC_PRECISION = {"fp8": "fp8", "fp4": "nvfp4", "int4": "int4", "bf16": "bf16", "fp16": "fp16"}
_IMAGE_RE = re.compile(r"(?:^|[;\s=])[\w.#-]+(?:/[\w.#-]+)+:([\w.+-]+)\s*(?:;|$)")


def _image_version(source: str) -> str | None:
    """Engine version from the container image tag in a silicon_data_source string."""
    match = _IMAGE_RE.search(source)
    if match is None:
        return None
    tag = re.sub(r"^v(?=\d)", "", match.group(1))
    tag = re.sub(r"(-cu\d+|-amd64|-arm64|-runtime)+$", "", tag)
    return tag or None


def _aic_weight_dtype(precision: str, gemm: str, moe: str, model: str) -> str:
    for mode in (moe, gemm):
        if mode.strip():
            return _AIC_QUANT.get(mode.strip(), "bf16")
    if precision.strip() in _AIC_PRECISION:
        return _AIC_PRECISION[precision.strip()]
    upper = model.upper()
    if "NVFP4" in upper:
        return "nvfp4"
    if "FP8" in upper:
        return "fp8"
    return "bf16"


def _aic_wide_ep(row: Mapping[str, str], tp: int, dp: int, moe_tp: int, ep: int) -> bool:
    """DeepSeek runs (SGLang and TRT-LLM, mostly on GB200 racks: agg rows of the 2026-04-06
    campaign, decode pools of several campaigns) that record their experts as tensor-parallel over
    all N = tp x dp ranks (moe_tp_size = N, moe_ep_size 1) where that split cannot have run.
    DeepSeek's expert width, 2048, is quantised in blocks of 128 (FP8), so N-way expert TP needs N
    to divide 16; its 128 attention heads do not split 12, 20, 36, 52 or 72 ways either (agg rows
    record tp = N with attention_dp 1). What does fit is a wide-EP run: attention data-parallel over
    the N ranks and the experts spread over the same N (the engines place 256 experts plus
    redundant copies, e.g. 288 slots, on any N). The measured speeds agree: SGLang's 163k tok/s at
    8192 concurrent requests with a 39 ms TPOT needs 72 attention ranks, and at high load physics
    prices the N-way expert TP at 2-3x the measured TPOT, wide EP within about 10-30 %. TP 16
    (SGLang's two-node DeepSeek layout) divides and is kept as recorded."""
    n = tp * dp
    return (
        row["backend"].strip() in ("sglang", "trtllm")
        and "deepseek" in row["model_path"].lower()
        and n > 8
        and 16 % n != 0
        and min(tp, dp) == 1
        and moe_tp == n
        and ep == 1
    )


def _aic_squared_layout(row: Mapping[str, str], tp: int, dp: int) -> tuple[int, int, int] | None:
    """(tp, dp, ep) of the n-GPU EP run an agg row records as n*n GPUs, or None.

    Two campaigns (the 2026-04-06 table and the 2026-04-27 db dump) wrote a run named tp n, ep n on
    n GPUs as n*n GPUs, in two ways:
    - SGLang and TRT-LLM: tp_size (or attention_dp_size) n*n, moe_tp = moe_ep = n; the other campaigns
      record the same runs as tp (or attention_dp) n, moe_tp 1, moe_ep n. 91 of these 274 rows have a
      twin there with TTFT and TPOT identical to the last digit.
    - vLLM: tp_size n, attention_dp_size n, moe_tp 1, moe_ep n*n; the gap-analysis table records the
      same runs as tp n, moe_ep n (30 of these 61 rows have a twin identical to its two decimals).
    Every twin has n GPUs. Only n*n > 8 counts: a 16- or 64-GPU layout on HGX nodes of 8 GPUs is the
    impossible part, while 4 = 2 x 2 fits one node and has no twin to say otherwise."""
    moe_tp, moe_ep = _par(row["moe_tp_size"]), _par(row["moe_ep_size"])
    if moe_tp == moe_ep and moe_tp * moe_tp > 8 and tp * dp == moe_tp * moe_tp and min(tp, dp) == 1:
        n = moe_tp
        return (n, 1, n) if tp > 1 else (1, n, n)
    if moe_tp == 1 and tp == dp and tp * tp > 8 and moe_ep == tp * tp:
        return tp, 1, tp
    return None


def _aic_max_num_seqs(size: float, conc: float, dp: int) -> float:
    """The engine's sequence cap per attention-DP rank (`batch_size`, agg rows; dp=0 for disagg).

    Engines were started with it (SGLang ran 8192 sequences at once, far above its default). A few
    gap-analysis rows list a batch_size below concurrency / dp, which would queue most requests;
    the README calls those inconsistent, so they are left unknown (NaN)."""
    if dp < 1 or not math.isfinite(size) or size < 1:
        return NAN
    if math.isfinite(conc) and size * dp < conc:
        return NAN
    return size


def _load_aic(path: Path, ctx: _Context) -> list[Record]:
    out: list[Record] = []
    for _line, row in _csv_rows(path):
        source = row["silicon_data_source"]
        conc_match = re.search(r"silicon_concurrency=(\d+)", source)
        conc = float(conc_match.group(1)) if conc_match else NAN
        version = row["backend_version"].strip() or _image_version(source)
        isl, osl = _num(row["isl"]), _num(row["osl"])
        ttft, tpot = _num(row["silicon_ttft_ms"]), _num(row["silicon_tpot_ms"])
        mode = row["mode"].strip()
        notes: list[str] = []
        batch_size = _num(row["batch_size"])
        layout: dict[str, float] = {}  # a disagg run's pools
        if mode == "agg":
            tp, pp = _par(row["tp_size"]), _par(row["pp_size"])
            dp, ep = _par(row["attention_dp_size"]), _par(row["moe_ep_size"])
            if _aic_wide_ep(row, tp, dp, _par(row["moe_tp_size"]), ep):
                # --tp N with attention DP and expert parallelism over the same N ranks
                tp, dp, ep = 1, tp * dp, tp * dp
                notes.append("read as wide EP: tp_size=moe_tp_size over nodes with attention_dp 1")
            squared = _aic_squared_layout(row, tp, dp)
            if squared:
                # batch_size is per recorded attention-DP rank: fewer real ranks hold more each
                batch_size *= dp / squared[1]
                tp, dp, ep = squared
                notes.append(f"read as {tp * dp} GPUs: the row recorded tp x ep as its GPU count")
            n_devices = float(tp * dp * pp)
        else:
            pools = []
            n_devices = 0.0
            layout["prefill_workers"] = _num(row["prefill_num_workers"])
            layout["decode_workers"] = _num(row["decode_num_workers"])
            layout["prefill_tp"] = float(_par(row["prefill_tp_size"]))
            layout["prefill_pp"] = float(_par(row["prefill_pp_size"]))
            layout["prefill_dp"] = float(_par(row["prefill_attention_dp_size"]))
            layout["prefill_ep"] = float(_par(row["prefill_moe_ep_size"]))
            for pool in ("prefill", "decode"):
                ptp, ppp = _par(row[f"{pool}_tp_size"]), _par(row[f"{pool}_pp_size"])
                pdp, pep = _par(row[f"{pool}_attention_dp_size"]), _par(row[f"{pool}_moe_ep_size"])
                workers = _num(row[f"{pool}_num_workers"])
                n_devices += workers * ptp * pdp * ppp  # NaN when the worker count is unknown
                count = "?" if math.isnan(workers) else _fmt(workers)
                pools.append(f"{pool} {count}x(tp{ptp} dp{pdp} pp{ppp} ep{pep})")
            tp, pp = _par(row["decode_tp_size"]), _par(row["decode_pp_size"])
            dp, ep = _par(row["decode_attention_dp_size"]), _par(row["decode_moe_ep_size"])
            if _aic_wide_ep(row, tp, dp, _par(row["decode_moe_tp_size"]), ep):
                tp, dp, ep = 1, tp * dp, tp * dp
                notes.append("decode pool read as wide EP: moe_tp_size = its ranks, moe_ep 1")
            notes.append("disagg: " + ", ".join(pools) + "; tp/pp/dp/ep are the decode pool's")
        if math.isnan(conc):
            notes.append("no silicon_concurrency in silicon_data_source")
        if "ai-dynamo/" in source and version == _image_version(source):
            notes.append("engine_version is the NVIDIA Dynamo runtime image tag, not the engine's")
        e2e = (ttft + (osl - 1.0) * tpot) / 1000.0 if _finite(ttft, tpot) else NAN
        out_tok = conc * osl / e2e if _finite(conc, e2e) and e2e > 0 else NAN
        total_tok = conc * (isl + osl) / e2e if _finite(conc, e2e) and e2e > 0 else NAN
        system = row["system"].strip()
        weight_dtype = _aic_weight_dtype(
            row["precision"], row["gemm_quant_mode"], row["moe_quant_mode"], row["model_path"]
        )
        out.append(
            _record(
                source="aic_silicon",
                row_id=row["id"],
                **ctx.model_columns(row["model_path"]),
                hardware=_AIC_HW.get(system),
                hardware_raw=system,
                engine=row["backend"].strip(),
                engine_version=version,
                mode=mode,
                n_devices=n_devices,
                tp=tp,
                pp=pp,
                dp=dp,
                ep=ep,
                weight_dtype=weight_dtype,
                # The file has no KV-cache column. Quantised runs kept an FP8 KV cache: the
                # concurrency at which TTFT explodes (the KV cache is full) sits where an FP8 cache
                # fills, e.g. MiniMax-M2.5 FP8 on 2 x B200 with vLLM, ISL 8192: measured 831 ms at
                # C=64 and 11.5 s at C=128; an FP8 cache predicts 830 ms at C=64, a BF16 one 11.3 s.
                kv_dtype="fp8" if weight_dtype in ("fp8", "nvfp4") else "auto",
                max_num_seqs=_aic_max_num_seqs(batch_size, conc, dp if mode == "agg" else 0),
                scenario="concurrency",
                load=conc,
                input_len=isl,
                output_len=osl,
                ttft_ms=ttft,
                tpot_ms=tpot,
                e2e_s=e2e,
                out_tok_s=out_tok,
                total_tok_s=total_tok,
                derived=_derived("e2e_s", "out_tok_s", "total_tok_s"),
                note=_join(*notes),
                **layout,
            )
        )
    return _drop_repeated_runs(out, ctx)


# What identifies one aic run (with the architecture and, for disagg, the pools)
_RUN_FIELDS = (
    "hardware_raw",
    "engine",
    "engine_version",
    "mode",
    "n_devices",
    "tp",
    "pp",
    "dp",
    "ep",
    "weight_dtype",
    "kv_dtype",
    "max_num_seqs",
    "load",
    "input_len",
    "output_len",
    "ttft_ms",
    "tpot_ms",
)


def _drop_repeated_runs(records: list[Record], ctx: _Context) -> list[Record]:
    """One record per run. The campaigns' tables overlap: a run appears again in a later dump, in
    its own layout notation (read the same by _aic_squared_layout) or under the other name of an
    identical config (DeepSeek-R1 and -V3), with TTFT and TPOT equal to the last digit. Kept
    twice, it would count twice, and under two model names it would sit on both sides of a
    grouped-by-model cross-validation split. The first row is kept, naming its repeats."""
    kept: dict[tuple[Any, ...], Record] = {}
    for rec in records:
        key = (
            ctx.architecture(rec["model"], rec["model_raw"]),
            rec["note"] if rec["mode"] == "disagg" else "",  # the pools of a disagg run
            *(_key_value(rec[f]) for f in _RUN_FIELDS),
        )
        first = kept.get(key)
        if first is None:
            kept[key] = rec
            rec["_repeats"] = []
        else:
            first["_repeats"].append(rec["row_id"])
    out = list(kept.values())
    for rec in out:
        repeats = rec.pop("_repeats")
        if repeats:
            rec["note"] = _join(rec["note"], "same run as " + ", ".join(repeats))
    return out


def _key_value(value: Any) -> Any:
    """A dictionary-key form of a field: NaN equals NaN."""
    return "nan" if isinstance(value, float) and math.isnan(value) else value


# --------------------------------------------------------------------------------------------------
# llm_inference_bench: Argonne LLM-Inference-Bench main table (static batches, ISL = OSL)

_LIB_HW: dict[str, str | None] = {
    "Nvidia A100 GPU": "a100-sxm-40gb",  # Polaris nodes (README): A100-SXM4-40GB
    "Nvidia H100 GPU": "h100-sxm",  # "H100 80GB HBM3"
    "Nvidia GH200 GPU": "gh200",
    "AMD MI250 GPU": "mi250",
    "AMD MI300X GPU": "mi300x",
    "Habana Gaudi2": "gaudi2",
    "Intel PVC GPU": None,
    "Intel Max 1550": None,
    "SambaNova SN40L": None,
}
_LIB_ENGINE = {
    "vLLM": "vllm",
    "TensorRT-LLM": "trtllm",
    "llama.cpp": "llamacpp",
    "Deepspeed": "deepspeed",
    "Deepspeed-MII": "deepspeed",
    "sambaflow": "other",
}


def _load_lib(path: Path, ctx: _Context) -> list[Record]:
    groups: dict[tuple[str, ...], list[tuple[int, dict[str, str]]]] = {}
    for line, row in _csv_rows(path):
        key = tuple(
            row[c].strip()
            for c in (
                "Hardware",
                "Num of Hardware",
                "Framework",
                "Model",
                "Input Output Length",
                "Batch Size",
            )
        )
        groups.setdefault(key, []).append((line, row))
    out: list[Record] = []
    for (hw_raw, n_raw, framework, model_raw, length_raw, batch_raw), rows in groups.items():
        n = int(n_raw)
        length, batch = float(length_raw), float(batch_raw)
        latency = _median(_num(r["Latency"]) for _, r in rows)
        total = _median(_num(r["Throughput"]) for _, r in rows)
        engine = _LIB_ENGINE.get(framework, "other")
        notes = []
        chunk = NAN
        if engine == "llamacpp":
            # -b is how many prompt tokens one llama_decode call takes: -b 1 feeds the prompt a
            # token at a time (the rows at -b 1 take about twice as long as at -b 16)
            load, chunk = 1.0, batch
            tp, pp = 1, n
            notes.append(
                f"llama.cpp: raw Batch Size {batch_raw} is llama-bench n_batch on one sequence "
                "(treated as batch 1); multi-device = layer split (pp)"
            )
        else:
            load = batch
            tp, pp = n, 1
        if len(rows) > 1:
            notes.append(
                f"median of {len(rows)} repeats (lines {', '.join(str(x) for x, _ in rows)})"
            )
        hardware = _LIB_HW.get(hw_raw)
        out.append(
            _record(
                source="llm_inference_bench",
                row_id=f"L{rows[0][0]}",
                **ctx.model_columns(model_raw),
                hardware=hardware,
                hardware_raw=hw_raw,
                hardware_note=(
                    "A100 memory size not stated; Polaris nodes are A100-SXM4-40GB"
                    if hardware == "a100-sxm-40gb"
                    else None
                ),
                engine=engine,
                n_devices=float(n),
                tp=tp,
                pp=pp,
                weight_dtype="fp16",
                scenario="static",
                load=load,
                max_num_batched_tokens=chunk,
                input_len=length,
                output_len=length,
                e2e_s=latency,
                total_tok_s=total,
                out_tok_s=total * length / (length + length),  # ISL = OSL
                derived=_derived("out_tok_s"),
                note=_join(*notes),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# splitwise: Splitwise profiling (static batches, ms)

_SPLITWISE_HW: dict[str, tuple[str | None, str | None]] = {
    "a100-80gb": ("a100-sxm-80gb", "DGX-A100"),
    "h100-80gb": ("h100-sxm", "DGX-H100"),
    "h100-80gb-pcap": (None, "DGX-H100 power-capped (not h100-sxm at full power)"),
}


def splitwise_consistent(prompt_ms: float, token_ms: float, e2e_ms: float, tokens: float) -> bool:
    """The filter applied to raw splitwise rows: e2e within 20 % of prompt + (tokens-1) * token."""
    expected = prompt_ms + (tokens - 1.0) * token_ms
    if not _finite(expected, e2e_ms) or expected <= 0:
        return False
    return abs(e2e_ms / expected - 1.0) <= SPLITWISE_TOLERANCE


def _load_splitwise(path: Path, ctx: _Context) -> list[Record]:
    cols = ("model", "hardware", "tensor_parallel", "prompt_size", "batch_size", "token_size")
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for _line, row in _csv_rows(path):
        groups.setdefault(tuple(row[c].strip() for c in cols), []).append(row)
    out: list[Record] = []
    for key, rows in groups.items():
        model_raw, hw_raw, tp_raw, prompt_raw, batch_raw, tokens_raw = key
        prompt, batch, tokens = float(prompt_raw), float(batch_raw), float(tokens_raw)
        kept = [
            r
            for r in rows
            if splitwise_consistent(
                _num(r["prompt_time"]), _num(r["token_time"]), _num(r["e2e_time"]), tokens
            )
        ]
        if not kept:
            continue
        ttft = _median(_num(r["prompt_time"]) for r in kept)
        tpot = _median(_num(r["token_time"]) for r in kept)
        e2e = _median(_num(r["e2e_time"]) for r in kept) / 1000.0
        hardware, hw_note = _SPLITWISE_HW.get(hw_raw, (None, None))
        tp = int(tp_raw)
        out.append(
            _record(
                source="splitwise",
                row_id=f"{model_raw}|{hw_raw}|tp{tp_raw}|p{prompt_raw}|b{batch_raw}|t{tokens_raw}",
                **ctx.model_columns(model_raw),
                hardware=hardware,
                hardware_raw=hw_raw,
                hardware_note=hw_note,
                engine="other",
                n_devices=float(tp),
                tp=tp,
                weight_dtype="fp16",
                scenario="static",
                load=batch,
                input_len=prompt,
                output_len=tokens,
                ttft_ms=ttft,
                tpot_ms=tpot,
                e2e_s=e2e,
                out_tok_s=batch * tokens / e2e,
                total_tok_s=batch * (prompt + tokens) / e2e,
                derived=_derived("out_tok_s", "total_tok_s"),
                note=f"median of {len(kept)}/{len(rows)} repeats passing the e2e identity",
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# lmdeploy: TurboMind static inference benchmark on A100-80GB (seconds)

_LMDEPLOY_METRICS = (
    "throughput(out tok/s)",
    "FTL(ave)(s)",
    "FTL(min)(s)",
    "FTL(max)(s)",
    "50%(s)",
    "75%(s)",
    "95%(s)",
    "99%(s)",
    "mem(GB)",
)


def _lmdeploy_version(source: str) -> str | None:
    match = re.search(r"_v(\d[\w.]*?)_[0-9a-f]+\.md$", source)
    return match.group(1) if match else None


def _version_key(version: str | None) -> tuple[int, ...]:
    nums = [int(x) for x in re.findall(r"\d+", version or "")]
    # 0.1.0a1 sorts before 0.1.0: an alpha/rc marker lowers the release number
    if version and re.search(r"[a-z]", version):
        return (*nums[:3], -1, *nums[3:])
    return (*nums, 0)


def _load_lmdeploy(path: Path, ctx: _Context) -> list[Record]:
    rows = [
        row
        for _line, row in _csv_rows(path)
        if row["section"].strip() == "Static Inference Benchmark"
    ]
    rows.sort(key=lambda r: _version_key(_lmdeploy_version(r["source"])))
    seen: dict[tuple[str, ...], Record] = {}
    out: list[Record] = []
    for row in rows:
        version = _lmdeploy_version(row["source"])
        shape = tuple(_fmt(_num(row[c])) for c in ("batch", "tp", "prompt_tokens", "output_tokens"))
        values = tuple(_fmt(_num(row[c])) for c in _LMDEPLOY_METRICS)
        dedup_key = shape + values
        if dedup_key in seen:  # identical table republished in a later version
            rec = seen[dedup_key]
            rec["_versions"].append(version)
            continue
        model_raw = row["subsection"].strip()
        batch, tp = _num(row["batch"]), int(_num(row["tp"]))
        isl, osl = _num(row["prompt_tokens"]), _num(row["output_tokens"])
        out_tok = _num(row["throughput(out tok/s)"])
        rec = _record(
            source="lmdeploy",
            row_id=f"{model_raw}|b{_fmt(batch)}|tp{tp}|p{_fmt(isl)}|o{_fmt(osl)}",
            **ctx.model_columns(model_raw),
            hardware="a100-sxm-80gb",
            hardware_raw="A100-80G",
            engine="lmdeploy",
            engine_version=version,
            n_devices=float(tp),
            tp=tp,
            weight_dtype="fp16",
            scenario="static",
            load=batch,
            input_len=isl,
            output_len=osl,
            ttft_ms=_num(row["FTL(ave)(s)"]) * 1000.0,
            tpot_ms=_num(row["50%(s)"]) * 1000.0,
            itl_p50_ms=_num(row["50%(s)"]) * 1000.0,
            itl_p95_ms=_num(row["95%(s)"]) * 1000.0,
            itl_p99_ms=_num(row["99%(s)"]) * 1000.0,
            out_tok_s=out_tok,
            e2e_s=batch * osl / out_tok,
            total_tok_s=out_tok * (isl + osl) / osl,
            derived=_derived("tpot_ms", "e2e_s", "total_tok_s"),
            _versions=[version],
        )
        seen[dedup_key] = rec
        out.append(rec)
    for rec in out:
        versions = [v for v in rec.pop("_versions") if v]
        if len(versions) > 1:
            rec["note"] = "identical in lmdeploy " + ", ".join(versions)
    return out


# --------------------------------------------------------------------------------------------------
# rocm_vllm: AMD ROCm vLLM dev-docker README tables (MI300X x8, FP8 weights + FP8 KV)


def _load_rocm(path: Path, ctx: _Context) -> list[Record]:
    cols = (
        "vllm_version",
        "rocm_version",
        "kind",
        "model",
        "batch_size",
        "input_len",
        "output_len",
        "num_prompts",
    )
    groups: dict[tuple[str, ...], list[dict[str, str]]] = {}
    for _line, row in _csv_rows(path):
        groups.setdefault(tuple(row[c].strip() for c in cols), []).append(row)
    out: list[Record] = []
    for key, rows in groups.items():
        vllm, rocm, kind, model_raw, batch_raw, isl_raw, osl_raw, prompts_raw = key
        isl, osl = _num(isl_raw), _num(osl_raw)
        model, relation = ctx.model(model_raw)
        ident = f"{model_raw}|vllm{vllm}|rocm{rocm}"
        short = re.sub(r"\s*\(.*\)$", "", model_raw)
        ckpt = re.search(r"\(([^)]*)\)", model_raw)
        notes = [f"rocm {rocm}"]
        if relation == "ambiguous":
            notes.append(
                f"README section {short!r} shows checkpoint {ckpt.group(1) if ckpt else '?'}"
            )
        if len(rows) > 1:
            notes.append(f"median of {len(rows)} README values")
        common = dict(
            source="rocm_vllm",
            model=model,
            model_raw=model_raw,
            model_relation=relation,
            hardware="mi300x",
            hardware_raw="8x AMD Instinct MI300X (192GiB, 750W)",
            engine="vllm",
            engine_version=vllm,
            n_devices=float(_par(rows[0]["tp"])),
            tp=_par(rows[0]["tp"]),
            weight_dtype="fp8",
            kv_dtype="fp8",
            input_len=isl,
            output_len=osl,
        )
        if kind == "latency":
            batch = _num(batch_raw)
            seconds = []
            for r in rows:
                unit = r["latency_unit"].strip().lower()
                scale = {"sec": 1.0, "s": 1.0, "ms": 1e-3}.get(unit)
                if scale is None:
                    raise BudsimError(f"{path}: unknown latency_unit {unit!r}")
                seconds.append(_num(r["latency"]) * scale)
            e2e = _median(seconds)
            if math.isnan(e2e):  # README cells marked "TODO"
                continue
            out.append(
                _record(
                    **common,
                    row_id=f"latency|{ident}|b{_fmt(batch)}|{isl_raw}x{osl_raw}",
                    scenario="static",
                    load=batch,
                    e2e_s=e2e,
                    out_tok_s=batch * osl / e2e,
                    total_tok_s=batch * (isl + osl) / e2e,
                    derived=_derived("out_tok_s", "total_tok_s"),
                    note=_join(*notes),
                )
            )
        elif kind == "throughput":
            total = _median(_num(r["throughput_tok_s"]) for r in rows)
            if math.isnan(total):
                continue
            seqs = rows[0]["max_num_seqs"].strip()
            notes.insert(
                1, f"num_prompts={_fmt(_num(prompts_raw))}, max_num_seqs={_fmt(_num(seqs))}"
            )
            out.append(
                _record(
                    **common,
                    row_id=f"throughput|{ident}|n{_fmt(_num(prompts_raw))}|{isl_raw}x{osl_raw}",
                    scenario="max_throughput",
                    load=NAN,
                    total_tok_s=total,
                    out_tok_s=total * osl / (isl + osl),
                    derived=_derived("out_tok_s"),
                    note=_join(*notes),
                )
            )
    return out


# --------------------------------------------------------------------------------------------------
# trtllm_perf: NVIDIA TensorRT-LLM published performance tables (v0.13 and release 0.5)

_TRTLLM_HW = {
    "H100 80GB HBM3": "h100-sxm",
    "H200 141GB HBM3": "h200-sxm",
    "A100-SXM4-80GB": "a100-sxm-80gb",
    "GH200 120GB": "gh200",
    "L40S": "l40s",
    "H100": "h100-sxm",
    "A100": "a100-sxm-80gb",
}


def _load_trtllm(path: Path, ctx: _Context) -> list[Record]:
    out: list[Record] = []
    for line, row in _csv_rows(path):
        doc = row["doc"]
        version = "0.13.0" if "v0.13.0" in doc else "0.5.0" if "0.5.0" in doc else None
        unit = row["unit"].strip()
        value = _num(row["value"])
        isl, osl = _num(row["isl"]), _num(row["osl"])
        batch = _num(row["batch_size"])
        fp8 = row["precision"].strip().upper() == "FP8"
        tp_match = re.search(r"TP(\d+)", row["parallelism"])
        tp = int(tp_match.group(1)) if tp_match else 1
        pp_match = re.search(r"PP(\d+)", row["parallelism"])
        pp = int(pp_match.group(1)) if pp_match else 1
        gpu = row["gpu"].strip()
        fields: Record = dict(
            source="trtllm_perf",
            row_id=f"L{line}",
            **ctx.model_columns(row["model"]),
            hardware=_TRTLLM_HW.get(gpu),
            hardware_raw=gpu,
            engine="trtllm",
            engine_version=version,
            n_devices=_num(row["n_gpus"]),
            tp=tp,
            pp=pp,
            weight_dtype="fp8" if fp8 else "fp16",
            kv_dtype="fp8" if fp8 else "auto",
            input_len=isl,
            output_len=osl,
        )
        if unit == "first_token_latency_ms":
            fields.update(
                scenario="static", load=1.0 if math.isnan(batch) else batch, ttft_ms=value
            )
        elif unit.startswith("output_tokens_per_sec_total"):
            fields.update(
                scenario="max_throughput",
                load=NAN,
                out_tok_s=value,
                total_tok_s=value * (isl + osl) / osl,
                derived=_derived("total_tok_s"),
            )
        elif unit == "total_output_tokens_per_sec":
            fields.update(
                scenario="static",
                load=batch,
                out_tok_s=value,
                e2e_s=batch * osl / value,
                total_tok_s=value * (isl + osl) / osl,
                derived=_derived("e2e_s", "total_tok_s"),
            )
        else:
            raise BudsimError(f"{path}: unknown unit {unit!r} on line {line}")
        out.append(_record(**fields))
    return out


# --------------------------------------------------------------------------------------------------
# ML.ENERGY leaderboard v2 (vLLM, max batch size cap, seconds)

_MLE_HW = {
    "NVIDIA A100-SXM4-40GB": "a100-sxm-40gb",
    "A100-SXM4-40GB": "a100-sxm-40gb",
    "NVIDIA H100 80GB HBM3": "h100-sxm",
    "H100 80GB HBM3": "h100-sxm",
    "H100": "h100-sxm",
    "B200": "b200",
}


def _mle_record(
    source: str,
    row_id: str,
    model_raw: str,
    ctx: _Context,
    gpu: str,
    task: Any,
    **fields: Any,
) -> Record:
    """One ML.ENERGY row (leaderboard v2 or benchmark v3): vLLM on `gpu` serving `task`'s requests
    with at most `load` running at once (its max_num_seqs cap)."""
    return _record(
        source=source,
        row_id=row_id,
        **ctx.model_columns(model_raw),
        hardware=_MLE_HW.get(gpu),
        hardware_raw=gpu,
        engine="vllm",
        scenario="max_num_seqs",
        workload=task,
        **fields,
    )


def _load_mle_v2(path: Path, ctx: _Context) -> list[Record]:
    out: list[Record] = []
    for file in sorted(path.glob("*/*/*/*/bs*.json")):
        rel = file.relative_to(path)
        task = rel.parts[0]
        with file.open(encoding="utf-8") as fh:
            d = json.load(fh)
        tp, pp = _par(d.get("TP")), _par(d.get("PP"))
        out.append(
            _mle_record(
                "ml_energy_v2",
                rel.as_posix(),
                str(d["Model"]),
                ctx,
                str(d.get("GPU", rel.parts[1])),
                task,
                n_devices=float(tp * pp),
                tp=tp,
                pp=pp,
                weight_dtype="bf16",
                load=_num(d.get("Max BS (reqs)")),
                realised_batch=_num(d.get("Avg BS (reqs)")),
                output_len=_num(d.get("Avg Output Tokens")),
                tpot_ms=_num(d.get("Avg TPOT (s)")) * 1000.0,
                out_tok_s=_num(d.get("Token tput (tok/s)")),
            )
        )
    return out


# --------------------------------------------------------------------------------------------------
# ML.ENERGY benchmark v3 (vLLM, max_num_seqs cap, ms)

_MLE_V3_DTYPE = {
    "bfloat16": "bf16",
    "bf16": "bf16",
    "float16": "fp16",
    "fp16": "fp16",
    "fp8": "fp8",
    "mxfp4": "mxfp4",
    "nvfp4": "nvfp4",
    "int4": "int4",
}


def _load_mle_v3(path: Path, ctx: _Context) -> list[Record]:
    out: list[Record] = []
    for file in sorted(path.glob("*.json")):
        with file.open(encoding="utf-8") as fh:
            d = json.load(fh)
        precision = str(d.get("weight_precision", "bfloat16")).lower()
        task = d.get("task")
        for i, c in enumerate(d.get("configurations", [])):
            par = c.get("parallelization") or {}
            if isinstance(par, str):
                par = json.loads(par.replace("'", '"'))
            n = _par(c.get("num_gpus"))
            tp_raw, ep, dp = (
                _par(par.get("tensor_parallel")),
                _par(par.get("expert_parallel")),
                _par(par.get("data_parallel")),
            )
            tp = tp_raw
            note = ""
            if tp * dp != n and n % dp == 0:
                tp = n // dp  # vLLM --enable-expert-parallel: attention TP spans the EP group
                note = f"raw parallelization tensor={tp_raw} expert={ep} data={dp} on {n} GPUs"
            median_itl = _num(c.get("median_itl_ms"))
            out.append(
                _mle_record(
                    "ml_energy_v3",
                    f"{file.stem}#{i}",
                    str(d["model_id"]),
                    ctx,
                    str(c.get("gpu_model")),
                    task,
                    n_devices=float(n),
                    tp=tp,
                    dp=dp,
                    ep=ep,
                    weight_dtype=_MLE_V3_DTYPE.get(precision, "bf16"),
                    load=_num(c.get("max_num_seqs")),
                    realised_batch=_num(c.get("avg_batch_size")),
                    output_len=_num(c.get("avg_output_len")),
                    tpot_ms=median_itl,
                    itl_p50_ms=median_itl,
                    itl_p90_ms=_num(c.get("p90_itl_ms")),
                    itl_p95_ms=_num(c.get("p95_itl_ms")),
                    itl_p99_ms=_num(c.get("p99_itl_ms")),
                    out_tok_s=_num(c.get("output_throughput_tokens_per_sec")),
                    derived=_derived("tpot_ms"),
                    note=note,
                )
            )
    return out


_LOADERS: dict[str, tuple[Callable[[Path, _Context], list[Record]], str]] = {
    "aic_silicon": (_load_aic, "e2e/aic_silicon/silicon_train.csv"),
    "llm_inference_bench": (_load_lib, "e2e/llm_inference_bench/main/Plots/All_results.csv"),
    "splitwise": (_load_splitwise, "e2e/splitwise/data/perf_model.csv"),
    "lmdeploy": (_load_lmdeploy, "e2e/lmdeploy/lmdeploy_a100_fp16_tables.csv"),
    "rocm_vllm": (
        _load_rocm,
        "e2e/rocm_vllm_devdocker/rocm_vllm_dev_docker_readme_tables_dedup.csv",
    ),
    "trtllm_perf": (_load_trtllm, "e2e/trtllm_perf_overview/trtllm_perf_overview_tables.csv"),
    "ml_energy_v2": (_load_mle_v2, "e2e/ml_energy_v2/data/llm_text_generation"),
    "ml_energy_v3": (_load_mle_v3, "e2e/ml_energy_v3/public/data/models"),
}
