"""`budsim validate`: accuracy of physics alone vs calibrated, on models (or hardware) the fit never saw.

Nested cross-validation: the outer split holds out whole models (GroupKFold on the model's
architecture group: models with identical configs, DeepSeek-R1 and -V3, go together) or one
hardware at a time; for every outer training part, `train.fit_family` runs its own inner grouped CV
to pick the shrink and the band offset, then the held-out rows are predicted exactly as
`apply_calibration` would predict them (same residual -> Prediction scaling). Nothing about a
held-out model reaches the fit that scores it.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from budsim.core.calibration.apply import Residual, rescale
from budsim.core.calibration.features import FAMILIES, SCENARIO_FAMILIES

from .frontend_fit import fit_front_end
from .samples import Sample, SampleSet
from .train import (
    FOLDS,
    KINDS,
    fallback_band,
    family_data,
    fit_family,
    group_folds,
)

if TYPE_CHECKING:
    import pandas as pd

    from budsim.core.predict import Prediction

# The public sources the shipped models may be trained on (../shared/data/SOURCES.md has the details).
LICENCES = {
    "aic_silicon": "NVIDIA AIConfigurator silicon measurements (aiconfigurator-core 0.12.0), Apache-2.0",
    "llm_inference_bench": "Argonne LLM-Inference-Bench, BSD-3-Clause",
    "splitwise": "Microsoft Splitwise profiling (Mutinifni/splitwise-sim), MIT",
    "lmdeploy": "InternLM LMDeploy benchmark tables, Apache-2.0",
    "rocm_vllm": "ROCm/vllm dev-docker README tables, Apache-2.0",
    "trtllm_perf": "NVIDIA TensorRT-LLM performance-overview docs, Apache-2.0",
    "ml_energy_v2": "ML.ENERGY leaderboard v2, Apache-2.0",
    "ml_energy_v3": "ML.ENERGY benchmark v3, Apache-2.0",
}

# Which family's residual scales a measured column, per scenario.
_COLUMN_FAMILY = {
    "concurrency": {"ttft_ms": "ttft", "tpot_ms": "tpot"},
    "static": {"ttft_ms": "e2e", "tpot_ms": "e2e", "e2e_s": "e2e"},
}
_BAND_KEYS = {"out_tok_s": ("output_tok_s_lo", "output_tok_s_hi")}


# A frozen internal holdout: the architecture groups of these models are kept out of every
# cross-validation that designs are chosen by, and scored once, when a piece of work is finished
# (`budsim validate --holdout`), by models fitted on all the other rows. Chosen to span the kinds
# of model a user plans: an MLA mixture-of-experts served on Blackwell and Hopper (aic_silicon),
# a GQA mixture-of-experts (LLM-Inference-Bench, TRT-LLM tables, ML.ENERGY) and the 70B dense
# Llamas (Llama-2/3/3.1/3.3-70B and CodeLlama-70B share one shape group).
HOLDOUT_MODELS: tuple[str, ...] = (
    "moonshotai/Kimi-K2.5",
    "mistralai/Mixtral-8x7B-v0.1",
    "meta-llama/Meta-Llama-3-70B",
)


def holdout_groups(samples: list[Sample]) -> set[str]:
    """The architecture groups of HOLDOUT_MODELS among `samples`."""
    return {s.group for s in samples if s.model in HOLDOUT_MODELS}


def without_holdout(ss: SampleSet) -> SampleSet:
    """`ss` less the frozen holdout's rows (what cross-validation chooses designs on)."""
    held = holdout_groups(ss.samples)
    return dataclasses.replace(ss, samples=[s for s in ss.samples if s.group not in held])


def _outer_splits(fd: Any, split: str, holdout: set[str] | None = None) -> list[tuple[Any, Any]]:
    import numpy as np

    if split == "model":
        return group_folds(fd.groups, FOLDS)
    if split == "holdout":
        test = np.isin(fd.groups, sorted(holdout or ()))
        idx = np.arange(len(fd.groups))
        return [(idx[~test], idx[test])] if test.any() and (~test).any() else []
    hardware = sorted(set(fd.hardware.tolist()))
    if len(hardware) < 2:
        return []
    idx = np.arange(len(fd.hardware))
    return [(idx[fd.hardware != h], idx[fd.hardware == h]) for h in hardware]


def cross_validate(
    ss: SampleSet,
    seed: int = 0,
    *,
    split: str = "model",
    nthread: int = 1,
    log: Callable[[str], None] | None = None,
) -> pd.DataFrame:
    """One row per (measured row, metric): measured, physics, calibrated, band coverage.

    split: "model" (grouped 5-fold), "hardware" (leave one device out) or "holdout" (fit on every
    row outside the frozen holdout's groups, predict the holdout)."""
    import numpy as np
    import pandas as pd

    say = log or (lambda _m: None)
    # The front end is fitted to end-to-end rows (budsim.learn.frontend_fit), so every outer fold
    # refits it on its own training rows and sees the physics with that value; cached per fold.
    fold_samples: dict[tuple[frozenset[str], str], tuple[list[Sample], dict[str, Any]]] = {}
    front_ends: dict[str, float] = {}  # fold (the groups or hardware it holds out) -> fixed ms

    def samples_for(held: set[str], held_hw: str) -> tuple[list[Sample], dict[str, Any]]:
        key = (frozenset(held), held_hw)
        if key not in fold_samples:
            training = [s for s in ss.samples if s.group not in held and s.hardware != held_hw]
            shifted, fe = fit_front_end(ss.samples, training)
            label = ", ".join(sorted(held)) or held_hw
            front_ends[label] = fe.fixed_ms
            say(f"{split} fold without {label}: front end {fe.fixed_ms:g} ms ({fe.source})")
            fold_samples[key] = (
                shifted,
                {fam: family_data(shifted, None, fam) for fam in FAMILIES},
            )
        return fold_samples[key]

    # residual triple per (sample id, family); default: physics with the band of the other models
    assigned: dict[tuple[int, str], Residual] = {}
    status: dict[tuple[int, str], str] = {}
    physics: dict[int, Prediction] = {}  # each row's physics, with its fold's front end
    fold_of: dict[int, int] = {}  # each row's outer fold (the spread of the headline figures)
    frozen = holdout_groups(ss.samples) if split == "holdout" else set()
    for kind in KINDS:
        for fam in FAMILIES:
            fd = family_data(ss.samples, kind, fam)
            if not len(fd.y):
                continue
            for fold, (tr, te) in enumerate(_outer_splits(fd, split, frozen)):
                held = set(fd.groups[te].tolist()) if split == "model" else frozen
                held_hw = str(fd.hardware[te][0]) if split == "hardware" else ""
                shifted, everything = samples_for(held, held_hw)
                fdf = family_data(shifted, kind, fam)  # the same rows, in the same order
                allfd = everything[fam]
                keep = ~np.isin(allfd.groups, list(held)) if held else np.ones(len(allfd.y), bool)
                if held_hw:
                    keep &= allfd.hardware != held_hw
                fit = fit_family(
                    fdf, tr, seed, nthread=nthread, fallback=fallback_band(allfd.y[keep])
                )
                pred_res = fit.residuals(fdf, te)
                shrinks = ", ".join(f"{k} {v:g}" for k, v in sorted(fit.segment_shrink.items()))
                label = (
                    f"{fit.status} ({fit.hp}/{fit.fs}, shrink {shrinks})" if shrinks else fit.status
                )
                say(f"{split} {kind} {fam} fold {fold}: {label} on {len(te)} rows")
                for j, i in enumerate(te):
                    slot = (id(fd.samples[i]), fam)
                    assigned[slot] = (
                        float(pred_res[j, 0]),
                        float(pred_res[j, 1]),
                        float(pred_res[j, 2]),
                    )
                    status[slot] = fit.status
                    physics[id(fd.samples[i])] = fdf.samples[i].pred
                    fold_of[id(fd.samples[i])] = fold
    everything = {fam: family_data(ss.samples, None, fam) for fam in FAMILIES}
    fb = {fam: fallback_band(everything[fam].y) for fam in FAMILIES}
    out: list[dict[str, Any]] = []
    for s in ss.samples:
        if frozen and s.group not in frozen:
            continue  # the holdout split scores the holdout only
        fams = SCENARIO_FAMILIES.get(s.scenario, ())
        res = {fam: assigned.get((id(s), fam), (0.0, fb[fam][0], fb[fam][1])) for fam in fams}
        base = physics.get(id(s), s.pred)
        cal = copy.copy(base)
        rescale(cal, s.workload, res)
        calibrated = any(status.get((id(s), fam)) == "calibrated" for fam in fams)
        for column, key, measured in s.targets:
            phys = getattr(base, key, None)
            calv = getattr(cal, key, None)
            covered: float = math.nan
            scaled_by = _COLUMN_FAMILY.get(s.scenario, {}).get(column)
            if scaled_by is not None and phys:
                y = math.log(measured / phys)
                covered = float(res[scaled_by][1] <= y <= res[scaled_by][2])
            elif column in _BAND_KEYS:
                lo, hi = (getattr(cal, k, None) for k in _BAND_KEYS[column])
                if lo is not None and hi is not None:
                    covered = float(lo <= measured <= hi)
            out.append(
                {
                    "source": s.source,
                    "row_id": s.row_id,
                    "model": s.model,
                    "hardware": s.hardware,
                    "engine": s.engine,
                    "kind": s.kind,
                    "scenario": s.scenario,
                    "metric": column,
                    "measured": measured,
                    "physics": phys,
                    "calibrated": calv,
                    "covered": covered,
                    "calibrated_by_model": calibrated,
                    "fold": fold_of.get(id(s), -1),
                }
            )
    frame = pd.DataFrame(out)
    if len(frame):
        frame["physics_ape"] = (
            (frame["physics"] - frame["measured"]).abs() / frame["measured"] * 100
        )
        frame["calibrated_ape"] = (
            (frame["calibrated"] - frame["measured"]).abs() / frame["measured"] * 100
        )
    frame.attrs["front_end_ms"] = front_ends
    return frame


def summarise(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    import pandas as pd

    if frame.empty:
        return pd.DataFrame()
    g = frame.groupby(by, dropna=False)
    table = pd.DataFrame(
        {
            "n": g.size(),
            "physics median APE %": g["physics_ape"].median().round(1),
            "calibrated median APE %": g["calibrated_ape"].median().round(1),
            "physics MAPE %": g["physics_ape"].mean().round(1),
            "calibrated MAPE %": g["calibrated_ape"].mean().round(1),
            "physics within 20 %": g["physics_ape"]
            .apply(lambda s: (s <= 20).mean() * 100)
            .round(0),
            "calibrated within 20 %": g["calibrated_ape"]
            .apply(lambda s: (s <= 20).mean() * 100)
            .round(0),
            "band coverage %": (g["covered"].mean() * 100).round(0),
        }
    )
    return table.reset_index()


def never_worse(frame: pd.DataFrame) -> pd.DataFrame:
    """Per dataset and metric: is the calibrated median APE at most the physics one?"""
    t = summarise(frame, ["source", "metric"])
    if t.empty:
        return t
    t = t[["source", "metric", "n", "physics median APE %", "calibrated median APE %"]].copy()
    t["never worse"] = [
        "yes" if c <= p + 1e-9 else "NO"
        for p, c in zip(t["physics median APE %"], t["calibrated median APE %"], strict=True)
    ]
    return t


def to_markdown(df: pd.DataFrame) -> str:
    import pandas as pd

    if df.empty:
        return "(no rows)"
    cols = [str(c) for c in df.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        cells = []
        for v in r:
            if v is None or (isinstance(v, float) and pd.isna(v)):
                cells.append("")
            elif isinstance(v, float):
                cells.append(f"{v:g}")
            else:
                cells.append(str(v))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


# Issue #15's targets for the grouped cross-validation (repeated runs merged, architectures held
# out together, the front end refitted inside every fold).
TPOT_TARGET, TTFT_TARGET, SLICE_TPOT_LIMIT, SLICE_MIN_ROWS = 10.0, 20.0, 25.0, 30


def targets_table(by_model: pd.DataFrame) -> pd.DataFrame:
    import pandas as pd

    def med(frame: pd.DataFrame, col: str) -> float:
        return float(frame[col].median()) if len(frame) else math.nan

    agg = by_model[(by_model["source"] == "aic_silicon") & (by_model["scenario"] == "concurrency")]
    lib = by_model[(by_model["source"] == "llm_inference_bench") & (by_model["metric"] == "e2e_s")]
    rows = []
    for label, frame, limit in (
        ("aic_silicon agg TPOT median APE", agg[agg["metric"] == "tpot_ms"], TPOT_TARGET),
        ("aic_silicon agg TTFT median APE", agg[agg["metric"] == "ttft_ms"], TTFT_TARGET),
        ("LLM-Inference-Bench static-batch latency median APE", lib, 12.0),
    ):
        phys, cal = med(frame, "physics_ape"), med(frame, "calibrated_ape")
        rows.append(
            {
                "target": f"{label} <= {limit:g} %",
                "n": len(frame),
                "physics": round(phys, 1),
                "calibrated": round(cal, 1),
                "calibrated per fold": fold_spread(frame),
                "met": "yes" if cal <= limit else "no",
            }
        )
    slices = worst_slices(by_model)
    worst = slices.iloc[0] if len(slices) else None
    rows.append(
        {
            "target": f"no aic hardware x engine slice of >= {SLICE_MIN_ROWS} rows worse than "
            f"{SLICE_TPOT_LIMIT:g} % TPOT"
            + (f" (worst: {worst['hardware']} {worst['engine']})" if worst is not None else ""),
            "n": int(worst["n"]) if worst is not None else 0,
            "physics": float(worst["physics median APE %"]) if worst is not None else math.nan,
            "calibrated": float(worst["calibrated median APE %"])
            if worst is not None
            else math.nan,
            "met": "yes"
            if worst is None or worst["calibrated median APE %"] <= SLICE_TPOT_LIMIT
            else "no",
        }
    )
    latency = by_model[by_model["metric"].isin(["ttft_ms", "tpot_ms", "e2e_s"])]
    cov = float(latency["covered"].mean() * 100) if len(latency) else math.nan
    rows.append(
        {
            "target": "80 % band coverage within 75-90 % (latency metrics)",
            "n": len(latency),
            "physics": math.nan,
            "calibrated": round(cov, 1),
            "met": "yes" if 75 <= cov <= 90 else "no",
        }
    )
    return pd.DataFrame(rows)


def fold_spread(frame: pd.DataFrame) -> str:
    """The calibrated median APE's range over the outer folds ("10.2-15.8"): how much a headline
    figure moves with which architectures a fold holds out."""
    if "fold" not in frame or frame.empty:
        return ""
    per_fold = frame[frame["fold"] >= 0].groupby("fold")["calibrated_ape"].median()
    if len(per_fold) < 2:
        return ""
    return f"{per_fold.min():.1f}-{per_fold.max():.1f}"


def worst_slices(by_model: pd.DataFrame) -> pd.DataFrame:
    """aic_silicon TPOT per hardware x engine slice of >= SLICE_MIN_ROWS rows, worst first."""
    agg = by_model[
        (by_model["source"] == "aic_silicon")
        & (by_model["scenario"] == "concurrency")
        & (by_model["metric"] == "tpot_ms")
    ]
    table = summarise(agg, ["hardware", "engine"])
    if table.empty:
        return table
    table = table[table["n"] >= SLICE_MIN_ROWS]
    cols = ["hardware", "engine", "n", "physics median APE %", "calibrated median APE %"]
    return table.sort_values("calibrated median APE %", ascending=False)[cols].reset_index(
        drop=True
    )


def shipped_table() -> pd.DataFrame:
    import pandas as pd

    from budsim.core.calibration import store

    data = store.manifest()
    rows = []
    for kind, info in sorted((data or {}).get("kinds", {}).items()):
        for fam, entry in info.get("families", {}).items():
            if not entry.get("rows"):
                continue
            cv = entry.get("cv", {}).get("all", {})
            rows.append(
                {
                    "kind": kind,
                    "family": fam,
                    "rows": entry.get("rows"),
                    "models": entry.get("models"),
                    "status": entry.get("status"),
                    "shrink": entry.get("shrink"),
                    "segment shrink": ", ".join(
                        f"{k} {v:g}" for k, v in sorted(entry.get("segment_shrink", {}).items())
                    ),
                    "inner-CV physics mAPE %": cv.get("physics_median_ape"),
                    "inner-CV calibrated mAPE %": cv.get("calibrated_median_ape"),
                    "reason": entry.get("reason", ""),
                }
            )
    return pd.DataFrame(rows)


KERNEL_REPORT = Path(__file__).resolve().parents[2] / "benchmarks" / "kernel_accuracy.md"


def kernel_section() -> list[str]:
    """The kernel-level cross-validation's overall table (benchmarks/kernel_accuracy.md, made by
    its own command), so that this report carries both levels."""
    lines = ["## Kernel level: operator latencies on held-out shapes", ""]
    try:
        text = KERNEL_REPORT.read_text(encoding="utf-8")
    except OSError:
        return [*lines, "(benchmarks/kernel_accuracy.md is missing)", ""]
    head = text.split("\n## ", 2)
    intro = next((line for line in text.splitlines() if line.startswith("Generated by")), "")
    overall = next((part for part in head[1:] if part.startswith("Overall")), "")
    table = [line for line in overall.splitlines() if line.startswith("|")]
    return [
        *lines,
        "Each operator family of the measured kernel tables is held out by group (GEMM by weight "
        "shape, attention by head layout, MoE by model shape, MLA by head count, collectives by "
        "message size and by GPU count) and predicted by the lookup built without it, on the "
        "GPU that measured it. " + intro.replace("Generated by", "From").strip(),
        "",
        *table,
        "",
        "Per system and format: `benchmarks/kernel_accuracy.md`.",
        "",
    ]


def front_end_section(by_model: pd.DataFrame) -> list[str]:
    from budsim.core import frontend

    shipped = frontend.front_end()
    folds = by_model.attrs.get("front_end_ms", {})
    values = sorted(folds.values())
    span = f"{values[0]:g}-{values[-1]:g} ms" if values else "none"
    return [
        "## The front end, refitted per fold",
        "",
        f"Shipped: {shipped.fixed_ms:g} ms fixed ({shipped.source}) + "
        f"{shipped.tokenize_us_per_token:g} us per prompt token (`pretrained/front_end.json`, "
        "see `budsim.core.frontend`). Refitted inside the grouped cross-validation's folds: "
        f"{span} over {len(values)} folds.",
        "",
    ]


def holdout_section(holdout: pd.DataFrame | None) -> list[str]:
    lines = ["## Frozen holdout", ""]
    if holdout is None:
        return [*lines, "Not scored in this run (`budsim validate --holdout` scores it).", ""]
    return [
        *lines,
        "Fitted on every row outside the holdout (front end included), scored once on the rows "
        "of " + ", ".join(HOLDOUT_MODELS) + " and their architecture groups.",
        "",
        to_markdown(summarise(holdout, ["source", "metric"])),
        "",
        to_markdown(summarise(holdout, ["source", "model", "engine", "hardware", "metric"])),
        "",
    ]


def report(
    by_model: pd.DataFrame,
    by_hardware: pd.DataFrame,
    ss: SampleSet,
    elapsed: float,
    *,
    command: str,
    holdout: pd.DataFrame | None = None,
) -> str:
    latency = ["ttft_ms", "tpot_ms", "e2e_s"]
    worse = never_worse(by_model)
    n_worse = int((worse["never worse"] == "NO").sum()) if not worse.empty else 0
    parts = [
        "# Accuracy: physics alone vs calibrated",
        "",
        f"Generated by `{command}` in {elapsed:.0f} s on {platform.machine()} "
        f"(Python {platform.python_version()}). Regenerate it after retraining with:",
        "",
        "```",
        "budsim train --data ../shared/data --out pretrained --seed 0",
        "budsim validate --data ../shared/data --out docs/accuracy.md",
        "```",
        "",
        "Every number comes from the code path `budsim predict` runs (`predict_physics`, then the "
        "learned correction), on measured rows the fits never saw. Each measured row is simulated "
        "as the run its benchmark made (`evaluate.case_for_row`: the aic_silicon closed loops as "
        "finite runs of 10 requests per client from a cold start, static batches as batches). "
        "Repeated runs are merged (`datasets._drop_repeated_runs`).",
        "",
        "- **Grouped by model**: 5-fold cross-validation where each fold holds out whole "
        "architecture groups (models with the same layer shapes, such as DeepSeek-R1 and -V3, or "
        "Llama-3-8B and Llama-3.1-8B, are one group), so every score is for models the fit never "
        "saw. **Leave-one-hardware-out**: each fold holds out one device.",
        "- **Everything fitted to end-to-end rows is fitted inside the folds**: the physics' one "
        "such constant, the front end's fixed latency (`budsim.core.frontend`), is refitted on "
        "each fold's training rows and the fold's physics, residual targets and features use it; "
        "the learned corrections then choose their shrink and band offset by their own inner "
        "grouped cross-validation (nested), exactly as `budsim train` does on all data.",
        "- **A frozen holdout** (`validate.HOLDOUT_MODELS`: "
        + ", ".join(HOLDOUT_MODELS)
        + ", with their architecture groups) is kept out of both cross-validations, which designs "
        "were chosen by; it is scored only by `budsim validate --holdout`, once a piece of work is "
        "finished, with models fitted on every other row.",
        "",
        "APE = |predicted - measured| / measured; band coverage = share of measured values inside "
        "the predicted 80 % band. A family the guards leave physics-only keeps the physics value "
        "and carries the physics-only band. Throughput metrics are not modelled separately: they "
        "follow from the calibrated latencies (closed loop: Little's law; static batch: batch x "
        "lengths / latency), and are shown so that consistency is visible.",
        "",
        "## Targets (grouped by model)",
        "",
        "`calibrated per fold`: the range of the calibrated median APE over the outer folds, "
        "each scored on the architectures it held out (how much a headline figure depends on "
        "which models a fold left out).",
        "",
        to_markdown(targets_table(by_model)),
        "",
        "aic_silicon TPOT per hardware x engine slice (grouped by model):",
        "",
        to_markdown(worst_slices(by_model)),
        "",
        *holdout_section(holdout),
        *kernel_section(),
        *front_end_section(by_model),
        "## Shipped models (`pretrained/manifest.json`)",
        "",
        "What `budsim train` decided on all data; the cross-validated numbers below are for the "
        "same procedure run inside each fold, so a fold may calibrate a family that the shipped "
        "models leave physics-only (or the reverse).",
        "",
        to_markdown(shipped_table()),
        "",
        "## Never worse than physics (per dataset and metric, grouped by model)",
        "",
        f"{n_worse} dataset/metric pair(s) are worse calibrated than physics alone.",
        "",
        to_markdown(worse),
        "",
        "## Per dataset and metric (grouped by model)",
        "",
        to_markdown(summarise(by_model, ["source", "metric"])),
        "",
        "## Per dataset, engine, hardware and metric (grouped by model)",
        "",
        to_markdown(summarise(by_model, ["source", "engine", "hardware", "metric"])),
        "",
        "## Leave-one-hardware-out (latency metrics)",
        "",
        to_markdown(
            summarise(
                by_hardware[by_hardware["metric"].isin(latency)]
                if not by_hardware.empty
                else by_hardware,
                ["kind", "hardware", "source", "metric"],
            )
        ),
        "",
        "## Training data and licences",
        "",
        *[
            f"- `{src}` ({n} rows with a target): {LICENCES.get(src, 'see SOURCES.md')}"
            for src, n in sorted(ss.rows_used.items())
        ],
        "",
        "## Rows used",
        "",
        f"Simulated rows with a measured target per dataset: {dict(sorted(ss.rows_used.items()))}. "
        "Rows budsim cannot simulate (disaggregated serving, engines without a profile, hardware "
        "outside the catalog, unknown lengths, max-throughput runs) are not scored here; "
        "`benchmarks/accuracy.py` lists them.",
        "",
    ]
    return "\n".join(parts)


def validate(
    data: Path | None,
    out: Path | None,
    seed: int = 0,
    *,
    nthread: int = 1,
    sample_set: SampleSet | None = None,
    log: Callable[[str], None] | None = None,
    command: str = "budsim validate",
    holdout: bool = False,
) -> tuple[str, pd.DataFrame]:
    """Run both cross-validations on the rows outside the frozen holdout, score the holdout when
    asked, and write the markdown report to `out` (when given)."""
    from .train import load_samples

    t0 = time.perf_counter()
    ss = sample_set if sample_set is not None else load_samples(data)
    dev = without_holdout(ss)
    by_model = cross_validate(dev, seed, split="model", nthread=nthread, log=log)
    by_hardware = cross_validate(dev, seed, split="hardware", nthread=nthread, log=log)
    held = cross_validate(ss, seed, split="holdout", nthread=nthread, log=log) if holdout else None
    text = report(
        by_model, by_hardware, dev, time.perf_counter() - t0, command=command, holdout=held
    )
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return text, by_model
