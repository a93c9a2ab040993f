"""The one description of what the exporter may emit, per engine and targeted version.

Every command-line option a generated command can contain is a key of its engine's table, and every
builder asks the table for the spelling (`TABLE.flag("--x")`), so an option missing here fails loudly at
build time instead of reaching a user's shell. tests/test_export.py checks each table against the option
lists taken from the engines' own argument parsers (../shared/reference/engine_flags/, see NOTES.md there)
and each generated command against these tables.

Versions targeted: vLLM, SGLang and TensorRT-LLM at the one version per engine in
budsim.core.engines.ENGINE_VERSIONS, which the predictions describe and `budsim engines` lists:

- vLLM 0.11.x `vllm serve`: every flag below is accepted by 0.11.0 *and* 0.33.0 (vllm_flag_history.tsv).
- SGLang 0.5.23 `python -m sglang.launch_server` (all flags but --attn-dp-size also exist in 0.5.3).
- TensorRT-LLM 1.2 `trtllm-serve` (PyTorch backend), spelled with the short option names that the 1.0-era
  serve.py also has (--tp_size, --kv_cache_free_gpu_memory_fraction, --extra_llm_api_options).
- llama.cpp `llama-server` at ggml-org/llama.cpp commit 00dc8057.
- LiteLLM proxy 1.110.2 (`litellm --config`).
- LLMC / LightCompress commit 9701d035 (run through torchrun).
- The bench target's clients: `vllm bench serve` of vLLM 0.11.x (every flag also in 0.33.0) and
  `python3 -m sglang.benchmark.serving` of SGLang 0.5.23. Their option lists were dumped from the
  parsers the wheels' own `add_cli_args` / `cli_main` build (tests/fixtures/bench_flags/, README
  there), as the engine lists were.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from ..engines import ENGINE_VERSIONS
from ..errors import BudsimError


@dataclass(frozen=True)
class FlagTable:
    """The options the exporter may emit for one program at one version.

    `flags` maps the exact option string to what budsim puts there. `env` lists the environment variables
    the exporter may set for the program. `yaml_keys` lists the dotted key paths a YAML file for the
    program may contain (`[]` marks a list item), when the program reads one.
    `reference` names the file under ../shared/reference/engine_flags/ the flags were checked against, and
    `reference_versions` the columns of its *_flag_history.tsv each flag must be present in.
    """

    engine: str
    program: tuple[str, ...]  # argv prefix that starts the program
    version: str
    flags: Mapping[str, str]
    env: Mapping[str, str] = field(default_factory=dict)
    yaml_keys: frozenset[str] = frozenset()
    reference: str | None = None
    reference_versions: tuple[str, ...] = ()
    health_path: str = "/health"
    default_port: int | None = None

    def flag(self, name: str) -> str:
        """The option string `name`, which must be in this table (a programming error otherwise)."""
        if name not in self.flags:
            raise BudsimError(
                f"internal: {name} is not in the {self.engine} {self.version} flag table"
            )
        return name

    def env_var(self, name: str) -> str:
        if name not in self.env:
            raise BudsimError(f"internal: {name} is not in the {self.engine} environment table")
        return name

    @property
    def title(self) -> str:
        return f"{self.engine} {self.version}"


VLLM = FlagTable(
    engine="vLLM",
    program=("vllm", "serve"),
    version=ENGINE_VERSIONS["vllm"],
    reference="vllm.txt",
    reference_versions=("0.11.0", "0.33.0"),
    default_port=8000,
    flags={
        "--tensor-parallel-size": "TP degree",
        "--pipeline-parallel-size": "PP degree",
        "--data-parallel-size": "attention data parallel ranks (MoE) / engine cores",
        "--data-parallel-size-local": "DP ranks on this node (multi-node DP)",
        "--data-parallel-start-rank": "first DP rank on this node (multi-node DP)",
        "--data-parallel-address": "address of DP rank 0 (multi-node DP)",
        "--data-parallel-rpc-port": "RPC port on DP rank 0 (multi-node DP)",
        "--headless": "no API server on this node (multi-node DP, rank > 0)",
        "--enable-expert-parallel": "EP over all TP x DP ranks (boolean, no size)",
        "--max-num-seqs": "max running sequences",
        "--max-num-batched-tokens": "token budget per iteration (chunked prefill)",
        "--max-model-len": "max context per sequence",
        "--gpu-memory-utilization": "fraction of device memory vLLM may use",
        "--kv-cache-dtype": "auto | fp8",
        "--quantization": "online quantisation of a 16-bit checkpoint (fp8)",
        "--dtype": "activation dtype when it differs from the checkpoint",
        "--served-model-name": "API model name",
        "--trust-remote-code": "custom model code",
        "--speculative-config": "speculative decoding, JSON: method mtp | eagle3 | ngram, k, ...",
        "--enable-prefix-caching": "prefix caching (on by default; explicit when the plan uses it)",
        "--kv-transfer-config": "disaggregated serving: the KV connector JSON (NixlConnector)",
        "--host": "bind address",
        "--port": "API port",
    },
    env={
        "CUDA_VISIBLE_DEVICES": "NVIDIA devices of this replica",
        "HIP_VISIBLE_DEVICES": "AMD devices of this replica",
        "DRAFT_MODEL": "k8s: the EAGLE-3 draft head the user names ($(DRAFT_MODEL) in the args)",
        "HABANA_VISIBLE_MODULES": "Gaudi modules of this replica",
        "VLLM_CPU_KVCACHE_SPACE": "CPU: KV cache GiB (platforms/cpu.py)",
        "VLLM_CPU_OMP_THREADS_BIND": "CPU: cores of each TP rank, ranks separated by |",
        "VLLM_SKIP_WARMUP": "Gaudi plugin: keep warm-up (HPU graph compilation) on",
        "VLLM_DECODE_BS_BUCKET_MAX": "Gaudi plugin: largest decode batch bucket = max_num_seqs",
        "VLLM_PROMPT_BS_BUCKET_MAX": "Gaudi plugin: largest prefill batch bucket",
        "PT_HPU_ENABLE_LAZY_COLLECTIVES": "Gaudi: collectives with HPU graphs (TP > 1)",
        "QUANT_CONFIG": "Gaudi: Intel Neural Compressor config of the measured fp8 scales",
    },
)

SGLANG = FlagTable(
    engine="SGLang",
    program=("python3", "-m", "sglang.launch_server"),
    version=ENGINE_VERSIONS["sglang"],
    reference="sglang.txt",
    reference_versions=("0.5.23",),
    default_port=30000,
    flags={
        "--model-path": "HF id or checkpoint directory",
        "--tp-size": "TP world size of one engine (= budsim tp x dp)",
        "--pp-size": "PP degree",
        "--dp-size": "data-parallel engine copies behind SGLang's router (dense models)",
        "--attn-dp-size": "attention data parallel inside the TP group (MoE)",
        "--ep-size": "expert parallel size",
        "--max-running-requests": "max running sequences",
        "--chunked-prefill-size": "prefill chunk (token budget)",
        "--mem-fraction-static": "fraction of device memory for weights + KV pool",
        "--kv-cache-dtype": "auto | fp8_e4m3",
        "--quantization": "online quantisation of a 16-bit checkpoint (fp8)",
        "--dtype": "activation dtype when it differs from the checkpoint",
        "--context-length": "max context per sequence",
        "--served-model-name": "API model name",
        "--trust-remote-code": "custom model code",
        "--nnodes": "nodes of one engine",
        "--node-rank": "this node's rank",
        "--dist-init-addr": "host:port of node rank 0",
        "--speculative-algorithm": "NEXTN (the model's MTP layers) | EAGLE3 | NGRAM",
        "--speculative-draft-model-path": "EAGLE-3 draft head (the user names it)",
        "--speculative-num-steps": "draft steps k",
        "--speculative-eagle-topk": "1: one chain of drafted tokens",
        "--speculative-num-draft-tokens": "k + 1 (the chain and the token it extends)",
        "--speculative-ngram-max-bfs-breadth": "1: n-gram drafts one chain, as predicted",
        "--disaggregation-mode": "disaggregated serving: prefill | decode",
        "--disaggregation-transfer-backend": "KV transfer between the pools: mooncake | nixl",
        "--disaggregation-bootstrap-port": "a prefill worker's KV bootstrap server (router: --prefill)",
        "--host": "bind address",
        "--port": "API port",
    },
    env={
        "CUDA_VISIBLE_DEVICES": "NVIDIA devices of this replica",
        "HIP_VISIBLE_DEVICES": "AMD devices of this replica",
        "DRAFT_MODEL": "k8s: the EAGLE-3 draft head the user names ($(DRAFT_MODEL) in the args)",
    },
)

TRTLLM = FlagTable(
    engine="TensorRT-LLM",
    program=("trtllm-serve",),
    version=f"{ENGINE_VERSIONS['trtllm']} (trtllm-serve, PyTorch backend)",
    reference="trtllm_serve.txt",
    default_port=8000,
    flags={
        "--backend": "pytorch",
        "--tp_size": "TP world size (= budsim tp x dp)",
        "--pp_size": "PP degree",
        "--ep_size": "MoE expert parallel size",
        "--max_batch_size": "max running sequences",
        "--max_num_tokens": "token budget per iteration",
        "--max_seq_len": "max context per sequence",
        "--kv_cache_free_gpu_memory_fraction": "KV cache share of the memory left after weights",
        "--extra_llm_api_options": "YAML with LLM-API settings that have no CLI option",
        "--trust_remote_code": "custom model code",
        "--host": "bind address",
        "--port": "API port",
    },
    env={"CUDA_VISIBLE_DEVICES": "NVIDIA devices of this replica"},
    yaml_keys=frozenset(
        {
            "enable_attention_dp",
            "enable_chunked_prefill",
            "kv_cache_config",
            "kv_cache_config.dtype",
            "kv_cache_config.free_gpu_memory_fraction",
            "kv_cache_config.enable_block_reuse",
            "speculative_config",
            "speculative_config.decoding_type",
            "speculative_config.max_draft_len",
            "speculative_config.speculative_model_dir",
            "speculative_config.num_nextn_predict_layers",
            "speculative_config.max_matching_ngram_size",
            "cuda_graph_config",
            "cuda_graph_config.enable_padding",
            "cuda_graph_config.max_batch_size",
        }
    ),
)

# ---- benchmark clients (the bench target) -------------------------------------------------------
# Their option lists are in tests/fixtures/bench_flags/ (`reference` names the file there, one per
# version in `reference_versions`), not in ../shared/reference/engine_flags/.

VLLM_BENCH = FlagTable(
    engine="vLLM",
    program=("vllm", "bench", "serve"),
    version=ENGINE_VERSIONS["vllm"],
    reference="vllm_bench_serve",
    reference_versions=("0.11.0", "0.33.0"),
    flags={
        "--backend": "vllm (a vLLM server) | openai (trtllm-serve, the LiteLLM proxy)",
        "--base-url": "http://host:port of the server or the proxy",
        "--model": "the checkpoint: the tokenizer, and the API name unless --served-model-name",
        "--served-model-name": "API model name when it differs from --model",
        "--trust-remote-code": "custom tokenizer code",
        "--dataset-name": "random: random token ids, nothing to download",
        "--random-input-len": "prompt tokens (after the shared prefix)",
        "--random-output-len": "output tokens",
        "--random-range-ratio": "lengths drawn in [len*(1-r), len*(1+r)] (one r for both)",
        "--random-prefix-len": "tokens of a prefix every prompt shares",
        "--ignore-eos": "generate exactly the output length",
        "--num-prompts": "requests of the run",
        "--max-concurrency": "closed loop: requests in flight",
        "--request-rate": "arrivals per second",
        "--burstiness": "gamma shape of the arrival gaps (1 = Poisson)",
        "--seed": "the workload's seed",
        "--ready-check-timeout-sec": "wait for the server to answer first",
        "--percentile-metrics": "ttft,tpot,itl,e2el",
        "--metric-percentiles": "50,90,95,99",
        "--save-result": "write the result JSON (what budsim calibrate reads)",
        "--result-dir": "folder of the result",
        "--result-filename": "name of the result",
    },
)

SGLANG_BENCH = FlagTable(
    engine="SGLang",
    # sglang.bench_serving is the deprecated alias (a FutureWarning) since 0.5.16
    program=("python3", "-m", "sglang.benchmark.serving"),
    version=ENGINE_VERSIONS["sglang"],
    reference="sglang_bench_serving",
    reference_versions=("0.5.23",),
    flags={
        "--backend": "sglang (native /generate) | sglang-oai (the LiteLLM proxy)",
        "--base-url": "http://host:port of the server or the proxy",
        "--model": "the checkpoint: the tokenizer",
        "--served-model-name": "API model name when it differs from --model",
        "--dataset-name": "random-ids (random token ids: no ShareGPT download) | "
        "generated-shared-prefix (a shared system prompt)",
        "--random-input-len": "longest prompt: lengths drawn in [len*r, len]",
        "--random-output-len": "longest output: lengths drawn in [len*r, len]",
        "--random-range-ratio": "r (1 = fixed lengths)",
        "--gsp-num-groups": "1: one system prompt every request shares",
        "--gsp-prompts-per-group": "requests of the run (generated-shared-prefix)",
        "--gsp-system-prompt-len": "the shared prefix",
        "--gsp-question-len": "prompt tokens after the prefix",
        "--gsp-output-len": "output tokens",
        "--gsp-range-ratio": "1: fixed lengths",
        "--num-prompts": "requests of the run",
        "--max-concurrency": "closed loop: requests in flight",
        "--request-rate": "Poisson arrivals per second",
        "--seed": "the workload's seed",
        "--ready-check-timeout-sec": "wait for the server to answer first",
        "--output-file": "JSONL result, one line per run (what budsim calibrate reads)",
    },
)

BENCH_TABLES: dict[str, FlagTable] = {"vllm": VLLM_BENCH, "sglang": SGLANG_BENCH}

# ---- disaggregated serving: what sits in front of the prefill and decode pools -----------------
# None of these programs is in ../shared/reference/engine_flags/; each table names its source.

# sglang-router 0.2.x (the `sglang_router` package in the lmsysorg/sglang:v0.5.23 image):
# sgl-project/sglang sgl-router/py_src/sglang_router/router_args.py, where --prefill takes
# `URL [BOOTSTRAP_PORT]` (nargs="+", repeated) and --decode `URL` (repeated). The
# sgl-model-gateway Python binding that replaced sgl-router keeps these options.
SGLANG_ROUTER = FlagTable(
    engine="SGLang router",
    program=("python3", "-m", "sglang_router.launch_router"),
    version="sglang-router 0.2 (router_args.py)",
    default_port=30000,
    flags={
        "--pd-disaggregation": "prefill/decode mode",
        "--prefill": "URL BOOTSTRAP_PORT of one prefill worker (repeated)",
        "--decode": "URL of one decode worker (repeated)",
        "--host": "bind address",
        "--port": "API port",
    },
)

# vLLM 0.11 ships no prefill/decode router: its NixlConnector guide (docs/features/
# nixl_connector_usage.md) runs the example proxy from the source tree,
# tests/v1/kv_connector/nixl_integration/toy_proxy_server.py (argparse; round-robin over each pool).
VLLM_PD_PROXY = FlagTable(
    engine="vLLM example proxy",
    program=("python3",),
    version="v0.11.0 tests/v1/kv_connector/nixl_integration/toy_proxy_server.py",
    flags={
        "--host": "bind address",
        "--port": "API port",
        "--prefiller-hosts": "address of each prefill worker",
        "--prefiller-ports": "port of each prefill worker (same order)",
        "--decoder-hosts": "address of each decode worker",
        "--decoder-ports": "port of each decode worker (same order)",
    },
)
# Environment of a vLLM worker with the NixlConnector (the same guide): the handshake port on its
# host (each worker's ranks count up from it) and the address the other pool reaches it at.
VLLM_NIXL_ENV: dict[str, str] = {
    "VLLM_NIXL_SIDE_CHANNEL_PORT": "first NIXL handshake port of this worker on its host",
    "VLLM_NIXL_SIDE_CHANNEL_HOST": "this worker's address (workers on several hosts)",
}

# `trtllm-serve disaggregated -c/--config_file F [-t/--server_start_timeout S]` (NOTES.md) and the
# keys of F: tensorrt_llm/llmapi/disagg_utils.py reads hostname, port, context_servers and
# generation_servers (num_instances, urls "host:port"); the other keys of a server section are
# LLM-API arguments (trtllm_serve.txt), there to describe the instances.
TRTLLM_DISAGG = FlagTable(
    engine="TensorRT-LLM",
    program=("trtllm-serve", "disaggregated"),
    version=f"{ENGINE_VERSIONS['trtllm']} (trtllm-serve disaggregated)",
    default_port=8000,
    flags={
        "--config_file": "the disaggregated server's YAML",
        "--server_start_timeout": "seconds to wait for the workers to come up",
    },
    yaml_keys=frozenset(
        {"hostname", "port"}
        | {
            f"{section}{key}"
            for section in ("context_servers", "generation_servers")
            for key in (
                "",
                ".num_instances",
                ".urls",
                ".tensor_parallel_size",
                ".pipeline_parallel_size",
                ".moe_expert_parallel_size",
                ".cache_transceiver_config",
                ".cache_transceiver_config.backend",
            )
        }
    ),
)
# LLM-API keys a disaggregated worker's --extra_llm_api_options file adds. disable_overlap_scheduler
# and cache_transceiver_config are in trtllm_serve.txt; cache_transceiver_config.backend
# (DEFAULT | UCX | NIXL | MPI) is CacheTransceiverConfig's field in llm_args.py of the 1.x releases.
TRTLLM_DISAGG_LLM_API_KEYS = frozenset(
    {"disable_overlap_scheduler", "cache_transceiver_config", "cache_transceiver_config.backend"}
)

# Speculative-decoding method values the exporter may emit (values of options, not options).
# vLLM: --speculative-config's "method", in both vLLM 0.11.0's SpeculativeMethod (docs.vllm.ai
# v0.11.0 vllm.config.speculative: ngram, eagle, eagle3, medusa, mlp_speculator, draft_model, the
# per-model *_mtp names and the generic mtp) and 0.33.0's --spec-method choices (NOTES.md).
VLLM_SPEC_METHODS = frozenset({"ngram", "eagle", "eagle3", "mtp", "draft_model"})
# SGLang 0.5.23 --speculative-algorithm (NOTES.md; NEXTN is rewritten to EAGLE at startup)
SGLANG_SPEC_ALGORITHMS = frozenset({"EAGLE", "EAGLE3", "NEXTN", "STANDALONE", "NGRAM"})
# TensorRT-LLM speculative_config.decoding_type read by 1.0-1.2 and the 2026 source (there `Eagle`
# is kept as the alias of `Eagle3`, which 1.0-1.1 do not have)
TRTLLM_DECODING_TYPES = frozenset({"MTP", "Eagle", "NGram"})

LLAMACPP = FlagTable(
    engine="llama.cpp",
    program=("llama-server",),
    version=ENGINE_VERSIONS["llamacpp"],
    reference="llama_server.txt",
    default_port=8080,  # this build's default is 9931; always pass --port
    flags={
        "--model": "GGUF file",
        "--alias": "API model name",
        "--ctx-size": "total context of all slots",
        "--parallel": "slots (max running sequences)",
        "--threads": "generation threads (physical cores)",
        "--threads-batch": "prompt-processing threads",
        "--batch-size": "logical batch (token budget)",
        "--ubatch-size": "physical batch",
        "--n-gpu-layers": "0 = pure CPU, all = every layer on the GPU(s)",
        "--split-mode": "layer = each GPU holds a contiguous share of the layers (budsim's pp)",
        "--cache-type-k": "KV cache type of K",
        "--cache-type-v": "KV cache type of V",
        "--flash-attn": "on | off | auto (a quantised V cache needs it on)",
        "--cont-batching": "continuous batching (default on; explicit)",
        "--metrics": "Prometheus endpoint",
        "--host": "bind address",
        "--port": "API port",
    },
)

LITELLM = FlagTable(
    engine="LiteLLM",
    program=("litellm",),
    version="1.110.2 (proxy)",
    reference="litellm_proxy.txt",
    health_path="/health/liveliness",
    default_port=4000,
    flags={
        "--config": "config.yaml",
        "--host": "bind address",
        "--port": "proxy port",
        "--num_workers": "uvicorn workers",
    },
    yaml_keys=frozenset(
        {
            "model_list",
            "model_list[].model_name",
            "model_list[].litellm_params",
            "model_list[].litellm_params.model",
            "model_list[].litellm_params.api_base",
            "model_list[].litellm_params.api_key",
            "model_list[].litellm_params.rpm",
            "model_list[].litellm_params.tpm",
            "model_list[].litellm_params.timeout",
            "model_list[].litellm_params.stream_timeout",
            "model_list[].model_info",
            "model_list[].model_info.id",
            "model_list[].model_info.max_input_tokens",
            "router_settings",
            "router_settings.routing_strategy",
            "router_settings.num_retries",
            "router_settings.allowed_fails",
            "router_settings.cooldown_time",
            "router_settings.enable_pre_call_checks",
            "litellm_settings",
            "litellm_settings.drop_params",
        }
    ),
)

LLMC = FlagTable(
    engine="LLMC",
    program=("torchrun",),
    version="(LightCompress commit 9701d035)",
    reference="llmc.txt",
    flags={"--config": "recipe YAML", "--task_id": "job id (required)"},
    env={"PYTHONPATH": "the LightCompress checkout"},
    yaml_keys=frozenset(
        {
            "base",
            "base.seed",
            "model",
            "model.type",
            "model.path",
            "model.torch_dtype",
            "model.tokenizer_mode",
            "calib",
            "calib.name",
            "calib.download",
            "calib.path",
            "calib.n_samples",
            "calib.bs",
            "calib.seq_len",
            "calib.preproc",
            "calib.seed",
            "quant",
            "quant.method",
            "quant.weight",
            "quant.weight.bit",
            "quant.weight.symmetric",
            "quant.weight.granularity",
            "quant.weight.group_size",
            "quant.weight.need_pack",
            "quant.weight.quant_type",
            "quant.weight.use_qtorch",
            "quant.act",
            "quant.act.bit",
            "quant.act.symmetric",
            "quant.act.granularity",
            "quant.act.quant_type",
            "quant.act.use_qtorch",
            "quant.special",
            "quant.quant_out",
            "save",
            "save.save_path",
            "save.save_vllm",
            "save.save_sgl",
        }
    ),
)

# NVIDIA Model-Optimizer post-training quantisation (examples/llm_ptq/hf_ptq.py, argparse in
# NVIDIA/Model-Optimizer; not in ../shared/reference): the checkpoints TensorRT-LLM (and vLLM/SGLang for
# NVFP4) load. --qformat: fp8 | int8_sq | int4_awq | nvfp4; --kv_cache_qformat: none | fp8.
MODELOPT = FlagTable(
    engine="ModelOpt",
    program=("hf_ptq.py",),
    version="examples/llm_ptq/hf_ptq.py",
    flags={
        "--pyt_ckpt_path": "HF id or checkpoint directory",
        "--qformat": "fp8 | int8_sq | int4_awq | nvfp4",
        "--kv_cache_qformat": "none | fp8",
        "--calib_size": "calibration samples",
        "--export_path": "output checkpoint directory",
        "--trust_remote_code": "custom model code",
    },
)

# torchrun (PyTorch's launcher) options used to start LLMC, as in LLMC's scripts/run_llmc.sh.
TORCHRUN_FLAGS: frozenset[str] = frozenset(
    {"--nnodes", "--nproc_per_node", "--rdzv_id", "--rdzv_backend", "--rdzv_endpoint"}
)

# `docker run` options the docker target emits (Docker CLI reference).
DOCKER_RUN_FLAGS: frozenset[str] = frozenset(
    {
        "--detach",
        "--name",
        "--gpus",
        "--runtime",
        "--device",
        "--group-add",
        "--security-opt",
        "--cap-add",
        "--ipc",
        "--shm-size",
        "--network",
        "--publish",
        "--volume",
        "--env",
        "--cpuset-cpus",
        "--cpuset-mems",
        "--entrypoint",
        "--restart",
    }
)

ENGINE_TABLES: dict[str, FlagTable] = {
    "vllm": VLLM,
    "sglang": SGLANG,
    "trtllm": TRTLLM,
    "llamacpp": LLAMACPP,
}

ALL_TABLES: dict[str, FlagTable] = {**ENGINE_TABLES, "litellm": LITELLM, "llmc": LLMC}

# Official images for the targeted versions, per engine and hardware kind. A kind missing here has no
# official image (pass --image to use your own build).
IMAGES: dict[tuple[str, str], str] = {
    ("vllm", "cuda"): "vllm/vllm-openai:v0.11.0",
    ("vllm", "rocm"): "rocm/vllm:rocm7.0.0_vllm_0.11.2_20251210",
    ("vllm", "cpu"): "public.ecr.aws/q9t5s3a7/vllm-cpu-release-repo:v0.11.0",
    (
        "vllm",
        "hpu",
    ): "vault.habana.ai/gaudi-docker/1.23.0/ubuntu22.04/habanalabs/vllm-installer-2.9.0:latest",
    ("sglang", "cuda"): "lmsysorg/sglang:v0.5.23",
    ("sglang", "rocm"): "lmsysorg/sglang:v0.5.23-rocm720-mi30x",
    ("trtllm", "cuda"): "nvcr.io/nvidia/tensorrt-llm/release:1.2.0",
    ("llamacpp", "cpu"): "ghcr.io/ggml-org/llama.cpp:server",
    ("llamacpp", "cuda"): "ghcr.io/ggml-org/llama.cpp:server-cuda",
}

# Where each image keeps the program, when it is not on PATH.
IMAGE_PROGRAM: dict[str, tuple[str, ...]] = {
    "llamacpp": ("/app/llama-server",),
}

# Which hardware kinds each engine's export supports (budsim.core.engines has the same matrix;
# llama.cpp is also the CPU alternative to a vLLM CPU plan).
ENGINE_KINDS: dict[str, tuple[str, ...]] = {
    "vllm": ("cuda", "rocm", "hpu", "cpu"),
    "sglang": ("cuda", "rocm"),
    "trtllm": ("cuda",),
    "llamacpp": ("cuda", "rocm", "cpu"),
}
