"""Speculative decoding: a draft proposes k tokens, the target verifies them in one step.

Each decode step of a request then costs the target's verification of k + 1 tokens (priced as a
k-token prompt chunk over the request's context beside its decode token, plus the LM head of the
k extra rows) and k draft passes, and yields E(k, a) = (1 - a^(k+1)) / (1 - a) tokens on average
when each drafted token is accepted with probability a independently (Leviathan et al. 2023).
The serving simulator keeps one token per decode step, so `SpeculativeStep` hands it the time of a
step divided by E: a request's TPOT and its KV growth per token come out right in expectation, and
the benefit shrinks with the batch because verification turns the step compute-bound.

Draft passes, per method:
- mtp: the model's own multi-token-prediction layer (DeepSeek-V3/R1, GLM-4.5+, Qwen3.5/Next,
  MiniMax-M3 ...; config `num_nextn_predict_layers` / `mtp_num_hidden_layers`): one decoder layer
  of the model and its LM head per drafted token.
- eagle3: an EAGLE-3 head trained for the model: one decoder layer of the model's width and an LM
  head over a 32,000-token draft vocabulary (the published Llama-3 heads) per drafted token.
- ngram: prompt lookup on the CPU, no GPU work (its cost is not modelled).
- draft: a separate, smaller LLM of the target's tokenizer family (`Deployment.spec_draft_model`,
  e.g. Llama-3.2-1B for Llama-3.1-70B): k decode steps of the draft model itself per target step
  (its whole weights read k times, over its own KV cache), and its prefill of every prompt chunk.
  The draft runs at the target's TP on the same devices: SGLang's STANDALONE worker shares the
  target's TP group and TensorRT-LLM's two-model Draft_Target loads it with the target's mapping
  (vLLM would also allow draft_tensor_parallel_size 1, but vLLM 0.11 runs no draft model at all:
  see `speculation_unavailable`). Its weights (at its checkpoint's dtype: the engines quantise a
  draft only when told to) and its KV cache (one more set of layers per cached token, at the
  target's KV dtype) are added to every device's memory plan.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import BudsimError
from .steptime import StepTime

if TYPE_CHECKING:
    from .deployment import Deployment
    from .model import ModelSpec
    from .steptime import StepTimeModel

__all__ = [
    "METHODS",
    "SEARCHED_METHODS",
    "DRAFT_PREFIX",
    "SPEC_METHODS",
    "SpecMethod",
    "SPECULATING_ENGINES",
    "SPECULATING_KINDS",
    "SpeculativeStep",
    "NO_SPECULATION",
    "check_draft",
    "check_speculative",
    "draft_deployment",
    "draft_weight_bytes",
    "expected_tokens",
    "parse_searched",
    "searched_method",
    "spec_settings",
    "speculation_unavailable",
]


@dataclass(frozen=True)
class SpecMethod:
    name: str
    label: str
    default_tokens: int  # draft length k when the deployment leaves it at 0
    default_acceptance: float  # per drafted token, when the deployment leaves it unset
    draft_layers: int  # decoder layers one draft pass runs (0: no GPU work)
    draft_vocab: int | None  # LM head rows of a draft pass: None = the model's vocabulary
    source: str  # where the defaults come from


METHODS: dict[str, SpecMethod] = {
    "mtp": SpecMethod(
        "mtp",
        "MTP",
        3,
        0.70,
        1,
        None,
        "DeepSeek-V3 technical report: the second token is accepted 85-90 % of the time (k = 1); "
        "chained over k = 7 the released MTP module accepts 3.20 tokens a step on MT-Bench, "
        "HumanEval and GSM8K (nebius/MTP-DeepSeek-V3-0324 model card), which a per-token "
        "acceptance of 0.70 reproduces (3.14); k = 3 is SGLang's and TRT-LLM's usual setting",
    ),
    "eagle3": SpecMethod(
        "eagle3",
        "EAGLE-3",
        3,
        0.70,
        1,
        32_000,
        "EAGLE-3 (Li et al. 2025, arXiv 2503.01840) and the published chain-draft heads report "
        "2-3 accepted tokens a step on chat at k = 3-5; 0.70 per token gives 2.53 at k = 3. "
        "Acceptance depends on the domain and the head: set yours",
    ),
    "ngram": SpecMethod(
        "ngram",
        "n-gram",
        4,
        0.30,
        0,
        0,
        "an assumption, not a measurement: prompt lookup proposes only what the output copies "
        "from the prompt (summaries, code edits, RAG answers pay; open chat hardly does). Set "
        "the acceptance your traffic shows",
    ),
    "draft": SpecMethod(
        "draft",
        "draft model",
        4,
        0.60,
        0,
        0,
        "an assumption for a same-family draft 10-70x smaller than the target on chat: drafted "
        "tokens are accepted 55-59 % of the time for a Llama-3-8B draft of Llama-3-70B at 8-12 "
        "drafts (llama.cpp, devquasar.com 'Speculative decoding tradeoffs: GPU with large "
        "models'); Leviathan et al. 2023 (arXiv 2211.17192) find the acceptance of a draft model "
        "grows with its size and is task-dependent (code and translation accept more than open "
        "chat). k = 4: between the 3 of vLLM PR #24322's and the 5 of vLLM 0.6's draft-model "
        "examples. Measure your pair's acceptance and set it",
    ),
}
# the fields of a Deployment that speculate, at their values without speculative decoding
NO_SPECULATION: dict[str, Any] = {
    "spec_method": "none",
    "spec_tokens": 0,
    "spec_acceptance": None,
    "spec_draft_model": "",
}
SPEC_METHODS: tuple[str, ...] = ("none", *METHODS)
# what a search can try on its own; a separate draft model it cannot choose, so the user names one
# as DRAFT_PREFIX + model ("draft:Qwen/Qwen3-0.6B"), which the search then tries like a method
SEARCHED_METHODS: tuple[str, ...] = tuple(m for m in METHODS if m != "draft")
DRAFT_PREFIX = "draft:"
MAX_TOKENS = 16


def expected_tokens(tokens: int, acceptance: float) -> float:
    """Tokens a verification step yields on average: the accepted run of `tokens` drafted ones
    (each accepted with probability `acceptance` while all before it were) plus the target's own."""
    if acceptance >= 1.0:
        return float(tokens + 1)
    return (1.0 - acceptance ** (tokens + 1)) / (1.0 - acceptance)


def spec_settings(dep: Deployment) -> tuple[SpecMethod, int, float] | None:
    """(method, draft length, acceptance) of `dep`, defaults filled in; None without speculation."""
    method = METHODS.get(dep.spec_method)
    if method is None:
        return None
    tokens = dep.spec_tokens or method.default_tokens
    acceptance = (
        dep.spec_acceptance if dep.spec_acceptance is not None else method.default_acceptance
    )
    return method, tokens, acceptance


def validate_speculative(dep: Deployment) -> None:
    """The deployment's own speculative fields (no model needed)."""
    if dep.spec_method not in SPEC_METHODS:
        raise BudsimError(
            f"unknown spec_method {dep.spec_method!r}; choose {', '.join(SPEC_METHODS)}"
        )
    tokens = dep.spec_tokens
    if not isinstance(tokens, int) or isinstance(tokens, bool) or not 0 <= tokens <= MAX_TOKENS:
        raise BudsimError(
            f"spec_tokens must be a whole number from 1 to {MAX_TOKENS} (0: the method's "
            f"default), got {tokens!r}"
        )
    acc = dep.spec_acceptance
    if acc is not None and not (isinstance(acc, (int, float)) and 0.0 <= acc < 1.0):
        raise BudsimError(f"spec_acceptance must be in [0, 1), got {acc!r}")
    if dep.spec_method == "none" and (tokens or acc is not None):
        raise BudsimError(
            "spec_tokens and spec_acceptance need a spec_method (mtp, eagle3, ngram, draft)"
        )
    draft = dep.spec_draft_model
    if not isinstance(draft, str):
        raise BudsimError(f"spec_draft_model must be a model id or path, got {draft!r}")
    if dep.spec_method == "draft" and not draft.strip():
        raise BudsimError(
            "spec_method draft needs spec_draft_model (--spec-draft-model: a catalog id, Hugging "
            "Face id or config path, e.g. meta-llama/Llama-3.2-1B)"
        )
    if dep.spec_method != "draft" and draft:
        raise BudsimError("spec_draft_model needs spec_method draft")


# Where speculation is modelled (and exported): the GPU engines' verification and draft kernels.
SPECULATING_ENGINES = frozenset({"vllm", "sglang", "trtllm"})
SPECULATING_KINDS = ("cuda", "rocm")


def parse_searched(entries: Any) -> tuple[str, ...]:
    """The speculative decoding a search tries beside plain decoding, from what a user typed
    (`--speculative`, the TUI's field, a stored request): methods and `draft:MODEL` entries, comma-
    or space-separated, lowercased except the draft model's name, without repeats. Raises
    BudsimError naming what it cannot read."""
    words: list[str] = []
    for entry in [entries] if isinstance(entries, str) else list(entries or ()):
        words += str(entry).replace(",", " ").split()
    out: list[str] = []
    for word in words:
        method, draft = searched_method(word)
        if method == "draft" and not draft:
            raise BudsimError(
                "a search cannot choose a draft model: name it as draft:MODEL (a catalog id, "
                "Hugging Face id or config path of a model with the target's tokenizer)"
            )
        if method not in SEARCHED_METHODS and method != "draft":
            choices = ", ".join((*SEARCHED_METHODS, "draft:MODEL"))
            raise BudsimError(f"unknown speculative method {word!r}; choose {choices}")
        entry = f"{DRAFT_PREFIX}{draft}" if method == "draft" else method
        if entry not in out:
            out.append(entry)
    return tuple(out)


def searched_method(entry: str) -> tuple[str, str]:
    """(method, draft model) of one searched entry: ("draft", "Qwen/Qwen3-0.6B") for
    "draft:Qwen/Qwen3-0.6B", (method, "") otherwise."""
    if entry.lower().startswith(DRAFT_PREFIX):
        return "draft", entry[len(DRAFT_PREFIX) :].strip()
    return entry.strip().lower(), ""


def speculation_unavailable(
    method: str, engine: str, kind: str, model: Any, draft: str = ""
) -> str | None:
    """Why `engine` on `kind` hardware cannot run `method` for `model` (None: it can); `draft`:
    the draft model a `draft` method would load."""
    if method not in METHODS:
        raise BudsimError(f"unknown speculative method {method!r}; choose {', '.join(METHODS)}")
    if engine not in SPECULATING_ENGINES or kind not in SPECULATING_KINDS:
        return f"not modelled for {engine} on {kind}"
    if method == "mtp" and not int(getattr(model, "mtp_layers", 0) or 0):
        return "the model has no MTP layers"
    if method == "draft":
        return _draft_unavailable(engine) or (None if draft else "no draft model named")
    return None


def _draft_unavailable(engine: str) -> str | None:
    # vLLM's V1 engine (all of 0.11) raises NotImplementedError for a draft model; vllm PR #24322
    # added it after 0.13 (vllm issue #31883: 0.13.0 still refuses)
    if engine == "vllm":
        return "vLLM 0.11 runs no separate draft model (its V1 engine refuses one)"
    return None


def check_speculative(model: ModelSpec, dep: Deployment) -> None:
    """Refuse a method the model cannot run (MTP needs the model's own MTP layers; a draft model
    must share its vocabulary and run on an engine that takes one)."""
    if dep.spec_method == "mtp" and not model.mtp_layers:
        raise BudsimError(
            f"{model.name} has no multi-token-prediction layers (its config sets no "
            "num_nextn_predict_layers / mtp_num_hidden_layers); use eagle3 or ngram"
        )
    if dep.spec_method == "draft":
        why = _draft_unavailable(dep.engine)
        if why:
            raise BudsimError(f"{why}; use sglang or trtllm, or eagle3 / ngram")
        check_draft(model, dep.spec_draft_model)


def check_draft(model: ModelSpec, draft_ref: str) -> ModelSpec:
    """The draft model `draft_ref` names, resolved like the target; refused unless it shares the
    target's vocabulary."""
    from .model import load_model

    draft = load_model(draft_ref)
    if draft.vocab_size != model.vocab_size:
        raise BudsimError(
            f"draft {draft.name} has a vocabulary of {draft.vocab_size:,} tokens, "
            f"{model.name} {model.vocab_size:,}: a draft model must share the target's tokenizer"
        )
    return draft


def draft_model(dep: Deployment) -> ModelSpec:
    """The separate draft model of a `draft` deployment, resolved like the target."""
    from .model import load_model

    return load_model(dep.spec_draft_model)


def draft_deployment(dep: Deployment) -> Deployment:
    """The draft model as a deployment of its own: the target's devices, engine and TP (and its
    attention-DP ranks, each drafting for its own sequences), one pipeline stage, no experts
    split, its checkpoint's weights and the target's KV dtype."""
    from .deployment import Deployment

    return Deployment(
        model=dep.spec_draft_model,
        hardware=dep.hardware,
        engine=dep.engine,
        tp=dep.tp,
        dp=dep.dp,
        kv_dtype=dep.kv_dtype,
    )


def draft_weight_bytes(model: ModelSpec, dep: Deployment, bytes_per_param: float) -> float:
    """Weights the draft adds to a replica (over its TP group): an EAGLE-3 head (one layer of the
    model's width, its feature fusion (3 x hidden -> hidden) and its draft LM head, 16 bit), or a
    draft model's whole checkpoint. The MTP layers ship in the checkpoint (counted with it only
    when served: here) and n-gram lookup has none."""
    settings = spec_settings(dep)
    if settings is not None and settings[0].name == "draft":
        from .memory import weights_bytes_per_device

        draft = draft_deployment(dep)
        return weights_bytes_per_device(draft_model(dep), draft.with_(tp=1, dp=1))
    if settings is None or settings[0].draft_layers == 0:
        return 0.0
    method = settings[0]
    layer = model.body_params / max(model.num_layers, 1)
    if method.name == "mtp":
        return model.mtp_layers * layer * bytes_per_param
    h = model.hidden_size
    head = (method.draft_vocab or model.vocab_size) * h
    return (layer + 3 * h * h) * 2.0 + head * 2.0


class SpeculativeStep:
    """The step-time model of a speculative deployment, per generated token (see module doc).

    A step with decodes costs the target's verification of k + 1 tokens per decoding sequence
    plus k draft passes, over the E tokens it yields; a step's prompt chunks are not divided (they
    advance as in a step without speculation)."""

    decode_slope: float | None = None  # verification is not linear in the context: priced per step

    def __init__(self, base: StepTimeModel, model: ModelSpec, dep: Deployment) -> None:
        settings = spec_settings(dep)
        assert settings is not None
        method, self.k, acceptance = settings
        self.base = base
        self.basis = base.basis
        self.tokens_per_step = expected_tokens(self.k, acceptance)
        # a draft pass: `draft_layers` of the model's layers and an LM head of `draft_vocab` rows
        self.layer_share = method.draft_layers / max(model.num_layers, 1)
        vocab = model.vocab_size
        self.head_share = (
            0.0 if method.draft_layers == 0 else (method.draft_vocab or vocab) / max(vocab, 1)
        )
        self.drafter: StepTimeModel | None = None
        if method.name == "draft":
            from .predict import step_model  # (predict builds this model: not at import)

            drafter = step_model(draft_deployment(dep))
            assert not isinstance(drafter, SpeculativeStep)
            self.drafter = drafter

    def __call__(
        self,
        n_decode: float,
        decode_ctx: float,
        prefill_tokens: float,
        prefill_pairs: float,
        prefill_seqs: float,
    ) -> StepTime:
        base = self.base
        drafter = self.drafter
        # a draft model prefills every prompt chunk too (its own KV cache), in a pass of its own
        draft_prompt = (
            drafter(0, 0, prefill_tokens, prefill_pairs, prefill_seqs).total
            if drafter is not None and prefill_seqs
            else 0.0
        )
        if not n_decode:
            step = base(0, 0, prefill_tokens, prefill_pairs, prefill_seqs)
            if not draft_prompt:
                return step
            t, c, m, comm, o = step
            return tuple.__new__(StepTime, (t + draft_prompt, c + draft_prompt, m, comm, o))
        k, e = self.k, self.tokens_per_step
        # the k drafted tokens of each sequence, verified as a prompt chunk over its context
        extra_pairs = k * decode_ctx + n_decode * k * (k + 1) / 2
        verify = base(
            n_decode,
            decode_ctx,
            prefill_tokens + n_decode * k,
            prefill_pairs + extra_pairs,
            prefill_seqs + n_decode,
        )
        # LM head rows: the step priced one per chunk; verification needs k + 1 per sequence
        head = base.lm_head_time(n_decode * (k + 1)) - base.lm_head_time(2 * n_decode)
        draft = 0.0
        if self.layer_share:
            plain = base(n_decode, decode_ctx, 0, 0.0, 0)
            body = plain.total - plain.overhead - base.lm_head_time(n_decode)
            draft = k * (body * self.layer_share + base.lm_head_time(n_decode) * self.head_share)
        if drafter is not None:
            # k sequential decode steps of the draft model over the same sequences
            draft = k * drafter(n_decode, decode_ctx, 0, 0.0, 0).total + draft_prompt
        prompt = base(0, 0, prefill_tokens, prefill_pairs, prefill_seqs) if prefill_seqs else None
        spent = verify.total + head + draft
        shared = (prompt.total if prompt is not None else 0.0) + draft_prompt
        scale = (spent - shared) / spent / e if spent > 0 else 0.0
        # parts scaled alike; the prompt chunks' time is kept whole
        keep = (shared / spent) if spent > 0 else 0.0
        factor = keep + scale
        return tuple.__new__(
            StepTime,
            (
                spent * factor,
                (verify.compute + head + draft) * factor,
                verify.memory * factor,
                verify.communication * factor,
                verify.overhead * factor,
            ),
        )
