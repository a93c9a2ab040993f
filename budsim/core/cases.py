"""One prediction case from loosely typed fields (CLI flags or a CSV row) -> (Deployment, Workload).

Both `budsim predict --model ...` and `budsim predict --cases FILE.csv` go through `parse_case`, so a bad
value gets the same one-line message in both.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .deployment import Deployment, Workload

CASE_COLUMNS = (
    "id",
    "model",
    "hardware",
    "engine",
    "tp",
    "pp",
    "dp",
    "ep",
    "replicas",
    "weight_dtype",
    "kv_dtype",
    "scenario",
    "concurrency",
    "batch_size",
    "rate",
    "burstiness",
    "input_len",
    "output_len",
    "max_num_seqs",
    "max_num_batched_tokens",
    "gpu_memory_utilization",
    "num_requests",
    "shared_prefix_len",
    "cached_share",
    "spec_method",
    "spec_tokens",
    "spec_acceptance",
    "spec_draft_model",
    "length_mix",
)


def parse_case(fields: Mapping[str, Any]) -> tuple[Deployment, Workload]:
    """Build and validate a deployment and workload from string-ish fields (the rules:
    budsim.core.schema)."""
    from .schema import deployment_input, workload_input

    return deployment_input(fields).to_deployment(), workload_input(fields).to_workload()
