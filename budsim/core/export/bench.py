"""The bench target: the benchmark that replays a plan's workload against the exported server, and the
`budsim calibrate` command that feeds its result back (plan -> deploy -> bench -> calibrate).

The client per engine (flags.VLLM_BENCH, flags.SGLANG_BENCH):

- vLLM: `vllm bench serve --backend vllm`, whose `--save-result` JSON `budsim calibrate` reads.
- SGLang: `python3 -m sglang.benchmark.serving` (its own client; `--output-file` JSON lines).
- TensorRT-LLM: `vllm bench serve --backend openai` against trtllm-serve's OpenAI API. Its flags are
  checked against vLLM's own parser and its result file is the vLLM one calibrate reads; every field
  its completions request sends (ignore_eos, repetition_penalty, stream_options) is a field of
  trtllm-serve's CompletionRequest, which rejects unknown ones. TensorRT-LLM's own copy of that client
  (tensorrt_llm/serve/scripts/benchmark_serving.py) could not be checked against a 1.2 release.

Several replicas are benchmarked through the LiteLLM proxy (litellm.sh), as users reach them; one
replica directly. The load is the workload's: a closed loop (--max-concurrency), a rate (with vLLM's
--burstiness) or a static batch (all requests at once). The calibrate command describes the run as
it was made (the measured lengths and load come from the result file; the deployment is the plan's),
so what the benchmark cannot replay (earlier turns cached, SGLang's bursty arrivals) is left out of it.
"""

from __future__ import annotations

import math
import re
import shlex
from dataclasses import dataclass, field

from ..deployment import Workload
from ..errors import BudsimError
from ..report import count_text
from .common import (
    Artifact,
    EngineRun,
    ExportOptions,
    Raw,
    node_address,
    num,
    render_command,
    script,
)
from .flags import ENGINE_TABLES, SGLANG_BENCH, VLLM_BENCH, FlagTable
from .plan import ExportPlan, slug

READY_TIMEOUT_S = 1800  # the benchmark waits this long for the server (a large model loads slowly)
MIN_PROMPTS = 100  # requests of a run the workload does not size
CLOSED_LOOP_ROUNDS = 10  # a closed loop sends this many requests per client
RATE_SECONDS = 120  # a rate run sends this many seconds of arrivals
PERCENTILES = "50,90,95,99"
MAX_RANGE_RATIO = 0.99  # vLLM's --random-range-ratio must be below 1

RESULT_DIR = "bench-results"
SCRIPT = "bench.sh"


@dataclass
class Load:
    """What the benchmark sends."""

    num_prompts: int
    concurrency: int | None  # closed loop / static batch
    rate: float | None  # arrivals per second
    burstiness: float
    tag: str  # for the result's file name
    text: str  # for the comment above the command
    notes: list[str] = field(default_factory=list)


def load_of(workload: Workload) -> Load:
    """The benchmark load of a workload: the closed loop, rate or batch it was predicted for."""
    sized = workload.num_requests
    if workload.scenario == "static":
        batch = workload.batch_size
        return Load(
            batch,
            batch,
            None,
            1.0,
            f"b{batch}",
            f"a static batch: {count_text(batch, 'request')} sent at once, run to completion",
        )
    if workload.scenario == "rate":
        rate = float(workload.rate)
        n = sized or max(MIN_PROMPTS, math.ceil(rate * RATE_SECONDS))
        arrivals = (
            "Poisson arrivals"
            if workload.burstiness == 1
            else f"gamma-distributed gaps of shape {num(workload.burstiness)}"
        )
        text = f"{num(rate)} requests/s, {arrivals}, {count_text(n, 'request')}"
        return Load(n, None, rate, float(workload.burstiness), f"r{num(rate)}", text)
    conc = workload.concurrency
    n = sized or max(MIN_PROMPTS, CLOSED_LOOP_ROUNDS * conc)
    text = f"a closed loop of {count_text(conc, 'request')} in flight, {count_text(n, 'request')}"
    return Load(n, conc, None, 1.0, f"c{conc}", text)


@dataclass
class Lengths:
    """The request lengths the benchmark sends and what it cannot reproduce."""

    input_len: int  # whole prompt (mean)
    output_len: int  # mean
    prefix: int  # tokens every prompt shares (replayed)
    spread: float  # budsim's symmetric spread, one for input and output (0: fixed)
    notes: list[str] = field(default_factory=list)


def lengths_of(workload: Workload, client: str) -> Lengths:
    notes: list[str] = []
    s_in, s_out = workload.input_len_spread, workload.output_len_spread
    spread = s_in or s_out
    if workload.length_mix:
        notes.append(
            f"the workload mixes {count_text(len(workload.length_mix), 'request shape')}: the random "
            f"dataset sends every request at the mix's mean lengths {workload.input_len} -> "
            f"{workload.output_len} tokens, not the mix (the client has no dataset of per-request "
            "output lengths: vLLM's custom dataset takes one --custom-output-len)"
        )
    elif s_in != s_out:
        tool = (
            "vLLM 0.11's --random-range-ratio"
            if client == "vllm"
            else "SGLang's --random-range-ratio"
        )
        notes.append(
            f"the workload spreads prompt lengths by {num(s_in * 100)} % and output lengths by "
            f"{num(s_out * 100)} %; {tool} draws both with one ratio, so both get "
            f"{num(spread * 100)} % (the means stay the planned ones)"
        )
    if workload.cached_share:
        notes.append(
            f"the plan counts {num(workload.cached_share * 100)} % of each prompt after the shared "
            "prefix as cached from earlier turns of a conversation; the benchmark sends independent "
            "requests, so none is, and the calibrate command leaves cached_share out: it describes "
            "the run as made"
        )
    return Lengths(
        workload.input_len,
        workload.output_len,
        workload.shared_prefix_len,
        spread,
        notes,
    )


# ---- the two clients ------------------------------------------------------------------------------


@dataclass
class Target:
    """Where the benchmark sends its requests."""

    base_url: str
    api_name: str  # the model name requests carry
    via_proxy: bool
    what: str  # for the comment


def _vllm_argv(
    plan: ExportPlan, target: Target, load: Load, lengths: Lengths, backend: str, seed: int
) -> tuple[list[str], list[str]]:
    T = VLLM_BENCH
    notes: list[str] = []
    argv = [*T.program, T.flag("--backend"), backend, T.flag("--base-url"), Raw('"$BASE_URL"')]
    argv += [T.flag("--model"), plan.model]
    if target.api_name != plan.model:
        argv += [T.flag("--served-model-name"), target.api_name]
    if plan.trust_remote_code:
        argv.append(T.flag("--trust-remote-code"))
    rest = lengths.input_len - lengths.prefix
    argv += [T.flag("--dataset-name"), "random"]
    argv += [T.flag("--random-input-len"), str(rest)]
    argv += [T.flag("--random-output-len"), str(lengths.output_len)]
    if lengths.prefix:
        argv += [T.flag("--random-prefix-len"), str(lengths.prefix)]
    # the spread of the whole prompt, carried by the part after the shared prefix
    ratio = lengths.spread * lengths.input_len / rest if lengths.spread else 0.0
    if ratio >= MAX_RANGE_RATIO:
        notes.append(
            f"a {num(lengths.spread * 100)} % spread of {lengths.input_len}-token prompts that share "
            f"{lengths.prefix} tokens needs a range ratio of {num(ratio)} after the prefix; vLLM "
            f"takes below 1, so {num(MAX_RANGE_RATIO)}"
        )
        ratio = MAX_RANGE_RATIO
    argv += [T.flag("--random-range-ratio"), num(round(ratio, 4))]
    argv.append(T.flag("--ignore-eos"))
    argv += [T.flag("--num-prompts"), str(load.num_prompts)]
    if load.concurrency is not None:
        argv += [T.flag("--max-concurrency"), str(load.concurrency)]
    if load.rate is not None:
        argv += [T.flag("--request-rate"), num(load.rate)]
        argv += [T.flag("--burstiness"), num(load.burstiness)]
    argv += [T.flag("--seed"), str(seed)]
    argv += [T.flag("--ready-check-timeout-sec"), str(READY_TIMEOUT_S)]
    argv += [T.flag("--percentile-metrics"), "ttft,tpot,itl,e2el"]
    argv += [T.flag("--metric-percentiles"), PERCENTILES]
    argv += [T.flag("--save-result"), T.flag("--result-dir"), Raw('"$RESULT_DIR"')]
    argv += [T.flag("--result-filename"), Raw('"$RESULT_FILE"')]
    return argv, notes


def _sglang_argv(
    plan: ExportPlan, target: Target, load: Load, lengths: Lengths, seed: int
) -> tuple[list[str], list[str]]:
    T = SGLANG_BENCH
    notes: list[str] = []
    backend = "sglang-oai" if target.via_proxy else "sglang"
    argv = [*T.program, T.flag("--backend"), backend, T.flag("--base-url"), Raw('"$BASE_URL"')]
    argv += [T.flag("--model"), plan.model]
    if target.api_name != plan.model:
        argv += [T.flag("--served-model-name"), target.api_name]
    if lengths.prefix:
        # one group: every request starts with the same system prompt; this dataset sends
        # groups x prompts per group requests and draws the system prompt's length with the ratio
        # too, so lengths stay fixed (ratio 1)
        argv += [T.flag("--dataset-name"), "generated-shared-prefix"]
        argv += [T.flag("--gsp-num-groups"), "1"]
        argv += [T.flag("--gsp-prompts-per-group"), str(load.num_prompts)]
        argv += [T.flag("--gsp-system-prompt-len"), str(lengths.prefix)]
        argv += [T.flag("--gsp-question-len"), str(lengths.input_len - lengths.prefix)]
        argv += [T.flag("--gsp-output-len"), str(lengths.output_len)]
        argv += [T.flag("--gsp-range-ratio"), "1"]
        if lengths.spread:
            notes.append(
                "SGLang's shared-prefix dataset would draw the system prompt's length with the "
                f"range ratio too, so the {num(lengths.spread * 100)} % length spread is not "
                "replayed: every request has the mean lengths"
            )
    else:
        # SGLang draws lengths in [len*r, len]: the planned [mean*(1-s), mean*(1+s)] is
        # len = mean*(1+s), r = (1-s)/(1+s)
        s = lengths.spread
        argv += [T.flag("--dataset-name"), "random-ids"]
        argv += [T.flag("--random-input-len"), str(round(lengths.input_len * (1 + s)))]
        argv += [T.flag("--random-output-len"), str(round(lengths.output_len * (1 + s)))]
        argv += [T.flag("--random-range-ratio"), num(round((1 - s) / (1 + s), 4))]
        argv += [T.flag("--num-prompts"), str(load.num_prompts)]
    if load.concurrency is not None:
        argv += [T.flag("--max-concurrency"), str(load.concurrency)]
    if load.rate is not None:
        argv += [T.flag("--request-rate"), num(load.rate)]
        if load.burstiness != 1:
            notes.append(
                f"SGLang's benchmark sends Poisson arrivals (it has no --burstiness), not the "
                f"planned gamma gaps of shape {num(load.burstiness)}; its result records none, so "
                "budsim calibrate takes the run as Poisson, as it was"
            )
    argv += [T.flag("--seed"), str(seed)]
    argv += [T.flag("--ready-check-timeout-sec"), str(READY_TIMEOUT_S)]
    argv += [T.flag("--output-file"), Raw('"$RESULT_DIR/$RESULT_FILE"')]
    return argv, notes


# ---- the calibrate command -------------------------------------------------------------------------

_UNSPLITTABLE = re.compile(r"[,\s]")


def calibrate_deployment(plan: ExportPlan, engine: str, shared_prefix: int) -> str:
    """The `budsim calibrate --deployment` value of the plan served by `engine` (the fields
    budsim.core.cases.parse_case reads; defaults left out)."""
    if _UNSPLITTABLE.search(plan.model):
        raise BudsimError(
            f"model {plan.model!r} contains a comma or a space, which `budsim calibrate "
            "--deployment` cannot carry (it splits its key=value pairs there)"
        )
    dep = plan.deployment
    pairs: list[tuple[str, object]] = [
        ("model", plan.model),
        ("hardware", plan.hardware),
        ("engine", engine),
        ("tp", dep.tp),
    ]
    pairs += [(name, getattr(dep, name)) for name in ("pp", "dp", "ep", "replicas")]
    pairs = [(k, v) for k, v in pairs if k not in ("pp", "dp", "ep", "replicas") or v != 1]
    for name in ("weight_dtype", "kv_dtype"):
        if getattr(dep, name) != "auto":
            pairs.append((name, getattr(dep, name)))
    for name in ("max_num_seqs", "max_num_batched_tokens", "gpu_memory_utilization"):
        value = getattr(dep, name)
        if value is not None:
            pairs.append((name, num(value)))
    if dep.spec_method != "none":
        pairs.append(("spec_method", dep.spec_method))
        if dep.spec_tokens:
            pairs.append(("spec_tokens", dep.spec_tokens))
        if dep.spec_acceptance is not None:
            pairs.append(("spec_acceptance", num(dep.spec_acceptance)))
        if dep.spec_draft_model:
            pairs.append(("spec_draft_model", dep.spec_draft_model))
    if shared_prefix:
        pairs.append(("shared_prefix_len", shared_prefix))
    return ",".join(f"{k}={v}" for k, v in pairs)


# ---- the script ----------------------------------------------------------------------------------------


def _target(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> Target:
    launches = run.api_launches
    if len(launches) > 1:
        return Target(
            f"http://localhost:{options.proxy_port}",
            plan.served_name,
            True,
            f"the LiteLLM proxy in front of the {len(launches)} replicas (start litellm.sh first)",
        )
    launch = launches[0]
    address = node_address(options, launch.node, run.nodes)
    # trtllm-serve has no served-model-name: it answers to what it loaded (as litellm.yaml says)
    name = run.model_ref if run.engine == "trtllm" else plan.served_name
    what = f"the {ENGINE_TABLES[run.engine].engine} server"
    return Target(f"http://{address}:{launch.port}", name, False, what)


def artifacts(plan: ExportPlan, run: EngineRun, options: ExportOptions) -> list[Artifact]:
    engine = run.engine
    if engine not in ("vllm", "sglang", "trtllm"):
        raise BudsimError(
            f"no benchmark for {ENGINE_TABLES[engine].engine}: budsim predicts (and calibrates) "
            "vLLM, SGLang and TensorRT-LLM"
        )
    workload = plan.workload
    if workload is None:
        raise BudsimError(
            "the configuration does not say the workload it was planned for (a stored run and "
            '`budsim optimize --json` output do; a configuration file needs a "workload" object), '
            "so there is nothing to replay"
        )
    workload.validate()
    client = "sglang" if engine == "sglang" else "vllm"
    table: FlagTable = SGLANG_BENCH if client == "sglang" else VLLM_BENCH
    target = _target(plan, run, options)
    load = load_of(workload)
    lengths = lengths_of(workload, client)
    if client == "sglang":
        argv, notes = _sglang_argv(plan, target, load, lengths, workload.seed)
        suffix = "jsonl"
    else:
        backend = "vllm" if engine == "vllm" and not target.via_proxy else "openai"
        argv, notes = _vllm_argv(plan, target, load, lengths, backend, workload.seed)
        suffix = "json"
    deployment = calibrate_deployment(plan, engine, lengths.prefix)

    program = " ".join(table.program)
    title = f"{table.title}: `{program}` replaying the planned workload, then `budsim calibrate`"
    header_notes = [f"workload: {load.text}; {_lengths_text(lengths)}"]
    if engine == "trtllm":
        header_notes.append(
            "trtllm-serve speaks the OpenAI API; vLLM's client drives it (--backend openai) and "
            "writes the result budsim calibrate reads. The TensorRT-LLM image has no vLLM: run this "
            "where `pip install vllm==0.11.0` works"
        )
    header_notes += load.notes + lengths.notes + notes
    header_notes.append(
        "the last line it prints is the `budsim calibrate` command that feeds the result back "
        "(the deployment as planned; the lengths and load as measured)"
    )

    result_file = f"{slug(plan.served_name)}-{engine}-{load.tag}-$(date +%Y%m%d-%H%M%S).{suffix}"
    prelude = [
        (
            f"where the requests go: {target.what}; set BASE_URL to reach it from elsewhere",
            f'BASE_URL="${{BASE_URL:-{target.base_url}}}"',
        ),
        (
            "the result file (set RESULT_DIR / RESULT_FILE to choose another)",
            f'RESULT_DIR="${{RESULT_DIR:-{RESULT_DIR}}}"\n'
            f'RESULT_FILE="${{RESULT_FILE:-{result_file}}}"\n'
            'mkdir -p "$RESULT_DIR"',
        ),
    ]
    checks = []
    if client == "vllm":
        checks.append(
            (
                "the client: vllm bench serve (vLLM 0.11)",
                "command -v vllm >/dev/null || "
                '{ echo "this benchmark runs vllm bench serve: install vLLM 0.11 '
                '(pip install vllm==0.11.0)" >&2; exit 1; }',
            )
        )
    bench = render_command(argv, head=len(table.program))
    calibrate = (
        'echo "result: $RESULT_DIR/$RESULT_FILE; feed it back into budsim with:"\n'
        "printf 'budsim calibrate --results %q --deployment %s\\n' "
        f'"$RESULT_DIR/$RESULT_FILE" {shlex.quote(shlex.quote(deployment))}'
    )
    text = script(
        plan,
        title,
        [(0, load.text, bench), (0, "feed the result back", calibrate)],
        notes=header_notes,
        background=False,
        nodes=1,
        prelude=prelude,
        checks=checks,
    )
    return [Artifact(SCRIPT, text, "sh", "bench")]


def _lengths_text(lengths: Lengths) -> str:
    text = f"{lengths.input_len} -> {lengths.output_len} tokens"
    if lengths.spread:
        text += f", spread {num(lengths.spread * 100)} %"
    if lengths.prefix:
        text += f", the first {lengths.prefix} prompt tokens shared by every request"
    return text
