"""How well the band of an unmeasured device kind covers a device it never saw.

A prediction for a device kind with no measured runs of its workload (Gaudi and Xeon everywhere,
ROCm closed loops) carries a wide band: the envelope of the physics-only 80 % bands of the measured
devices (`budsim.learn.train.unmeasured_band`, shipped in `pretrained/manifest.json`). This script
holds each measured device out in turn, builds the band from the others exactly as training does,
and reports the share of the held-out device's measured runs inside it, beside the pooled
physics-only band (all other devices' residuals together) for comparison. A residual is
log(measured / physics), on the same simulated rows `budsim train` fits (front end fitted first).

Usage (from the repo root; about a minute on 2 cores):
    .venv/bin/python benchmarks/unmeasured_band.py --data ../shared/data --out benchmarks/unmeasured_band.md
"""

from __future__ import annotations

import argparse
import math
import platform
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from budsim.learn.frontend_fit import fit_front_end
from budsim.learn.train import (
    FAMILIES,
    UNMEASURED_MIN_ROWS,
    fallback_band,
    family_data,
    load_samples,
    unmeasured_band,
)


def _inside(y: np.ndarray, band: tuple[float, float]) -> float:
    return float(((y >= band[0]) & (y <= band[1])).mean() * 100)


def _factor(band: tuple[float, float]) -> str:
    return f"x{math.exp(band[0]):.2f} to x{math.exp(band[1]):.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    ns = parser.parse_args(argv)
    t0 = time.perf_counter()
    samples, _ = fit_front_end(load_samples(ns.data).samples)
    rows: list[str] = []
    summary: list[str] = []
    for fam in FAMILIES:
        fd = family_data(samples, None, fam)
        ok = ~np.isnan(fd.y)
        y, hardware = fd.y[ok], fd.hardware[ok]
        band, devices = unmeasured_band(y, hardware)
        summary.append(
            f"| {fam} | {devices} | {band[0]:+.3f} to {band[1]:+.3f} | {_factor(band)} "
            f"| {_factor(fallback_band(y))} |"
        )
        wide, pooled = [], []
        for device in sorted(set(hardware.tolist())):
            held = hardware == device
            if int(held.sum()) < UNMEASURED_MIN_ROWS:
                continue
            others, n_others = unmeasured_band(y[~held], hardware[~held])
            wide.append(_inside(y[held], others))
            pooled.append(_inside(y[held], fallback_band(y[~held])))
            rows.append(
                f"| {fam} | {device} | {int(held.sum())} | {n_others} | {_factor(others)} "
                f"| {wide[-1]:.1f} | {pooled[-1]:.1f} |"
            )
        rows.append(
            f"| {fam} | **median** | | | | **{statistics.median(wide):.1f}** "
            f"| **{statistics.median(pooled):.1f}** |"
        )
    text = "\n".join(
        [
            "# The band of an unmeasured device kind, each measured device held out",
            "",
            "Made by `.venv/bin/python benchmarks/unmeasured_band.py --data ../shared/data "
            "--out benchmarks/unmeasured_band.md` "
            f"on {platform.machine()}, Python {platform.python_version()}, in "
            f"{time.perf_counter() - t0:.0f} s (see the script's docstring).",
            "",
            "Shipped bands (log residual; as factors on the physics value), beside the pooled "
            "physics-only band that measured kinds carry:",
            "",
            "| family | devices | band (log) | band (factor) | pooled band (factor) |",
            "|---|---:|---|---|---|",
            *summary,
            "",
            f"Each device with at least {UNMEASURED_MIN_ROWS} measured runs held out: the band "
            "built from the other devices, and the share (%) of the held-out device's runs "
            "inside it and inside the pooled band of the other devices.",
            "",
            "| family | held-out device | runs | devices left | band from the others "
            "| inside, % | inside pooled band, % |",
            "|---|---|---:|---:|---|---:|---:|",
            *rows,
            "",
        ]
    )
    if ns.out:
        ns.out.write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
