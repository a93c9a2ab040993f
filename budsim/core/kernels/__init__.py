"""Measured-kernel lookups: operator latencies from NVIDIA AIConfigurator's kernel tables.

`kernel_source(device, engine)` returns a `KernelSource` whose methods (gemm, context_attention,
generation_attention, moe, moe_alltoall, mla_context, mla_generation, allreduce, collective) give
seconds for arrays of shapes, read from the artefact in ``pretrained/kernels/`` (built by
scripts/build_kernel_tables.py) and scaled to the device by its roofline. numpy only; nothing is loaded until first use.

Modules: grid (tables and the interpolation numerics), sol (speed-of-light formulas), families (the
table families and utilisation), neighbours (transfer between measured shapes), systems (which
measured GPU answers for a device), artefact (the npz files), source (the lookups).
"""

from .source import KernelSource, kernel_source

__all__ = ["KernelSource", "kernel_source"]
