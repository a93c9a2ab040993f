"""Speculative decoding and prefix caching as the engines spell them (vLLM, SGLang, TRT-LLM).

The prediction priced a chain of k drafted tokens a step, each accepted with probability a
(budsim.core.speculative); the exported settings ask each engine for that chain:

- MTP: the model's own multi-token-prediction layers; no draft checkpoint to name.
- EAGLE-3: a draft head trained for the target model, which budsim does not know. Scripts take it
  from the DRAFT_MODEL environment variable and stop when it is unset; Kubernetes manifests set
  DRAFT_MODEL in the container's env to a "<SET ME ...>" value the user replaces; TensorRT-LLM's
  options file carries the same placeholder, which its script refuses to start with.
- n-gram: prompt lookup, no draft weights.
- draft model: the plan names it (`spec_draft_model`); SGLang runs it as STANDALONE, TensorRT-LLM
  as Draft_Target. vLLM 0.11 runs no separate draft model, so its export refuses one.

Prefix caching: the prediction counted a workload's shared prefix and cached turns as cache hits,
so the export keeps the engine's prefix cache on, explicitly where the engine has a switch.
"""

from __future__ import annotations

import json

from ..errors import BudsimError
from ..speculative import SPECULATING_KINDS, SpecMethod, spec_settings
from .common import Raw, quote
from .plan import ExportPlan

DRAFT_VAR = "DRAFT_MODEL"
# What stands for the EAGLE-3 draft head where no variable can (a YAML file, a k8s env value):
# never a repository id, so an engine that is started with it fails naming it.
PLACEHOLDER = "<SET ME: EAGLE-3 draft head trained for the served model>"
PLACEHOLDER_MARK = "<SET ME"
# n-gram prompt lookup: the shortest and longest prompt n-gram matched. Not modelled (budsim's
# n-gram acceptance is an assumption); 4 as in vLLM's n-gram example (prompt_lookup_max 4), 2 so
# a single repeated token does not start a draft. vLLM 0.11 sets both to 5 when neither is given.
NGRAM_MIN, NGRAM_MAX = 2, 4


def settings(plan: ExportPlan, engine: str) -> tuple[SpecMethod, int, float] | None:
    """(method, k, acceptance) of the plan, or None; refuses hardware the prediction never
    speculates on (budsim.core.speculative.SPECULATING_KINDS)."""
    found = spec_settings(plan.deployment)
    if found is not None and plan.device_kind not in SPECULATING_KINDS:
        raise BudsimError(
            f"speculative decoding ({found[0].label}) is modelled and exported only on "
            f"{'/'.join(SPECULATING_KINDS)} hardware, not for {engine} on {plan.device_kind}"
        )
    return found


def draft_word(context: str) -> str:
    """The argument that names the EAGLE-3 draft head: a shell expansion of DRAFT_MODEL in a
    script (host, docker), a Kubernetes $(DRAFT_MODEL) reference in a manifest's args."""
    if context == "k8s":
        return f"$({DRAFT_VAR})"
    return Raw(f'"${{{DRAFT_VAR}}}"')


def draft_env(context: str) -> dict[str, str]:
    """Environment a launch gets for the draft head: the placeholder in a Kubernetes container."""
    return {DRAFT_VAR: PLACEHOLDER} if context == "k8s" else {}


class _Draft:
    """Stands for the draft head in a JSON config (`json_word` puts the user's in its place)."""


DRAFT = _Draft()


def json_word(config: dict[str, object], context: str) -> str:
    """`config` as one JSON argument, with the user's draft head where `config` has DRAFT: in a
    script the JSON is single-quoted but for "${DRAFT_MODEL}", which the shell expands; in a
    Kubernetes manifest Kubernetes expands $(DRAFT_MODEL) from the container's env."""
    marker = "@@budsim-draft@@"
    text = json.dumps({k: (marker if v is DRAFT else v) for k, v in config.items()})
    if marker not in text:
        return text
    before, after = text.split(marker, 1)
    if context == "k8s":
        return f"{before}$({DRAFT_VAR}){after}"
    return Raw(f'{quote(before)}"${{{DRAFT_VAR}}}"{quote(after)}')


def draft_check(plan: ExportPlan) -> tuple[str, str]:
    """The script step that stops when DRAFT_MODEL is unset."""
    return (
        f"EAGLE-3 needs a draft head trained for {plan.model}, which budsim does not know: run "
        f"with {DRAFT_VAR}=<its Hugging Face id or directory>",
        f': "${{{DRAFT_VAR}:?set {DRAFT_VAR} to an EAGLE-3 draft head trained for the served '
        'model (a Hugging Face id or a directory); see the header}"',
    )


def placeholder_check(path: str, file: str) -> tuple[str, str]:
    """The script step that stops while `file` (at the shell word `path`) still holds the
    placeholder."""
    return (
        f"EAGLE-3 needs a draft head trained for the served model, which budsim does not know: "
        f"replace the {PLACEHOLDER_MARK} ...> value in {file} with its Hugging Face id or "
        "directory",
        f"! grep -qF {quote(PLACEHOLDER_MARK)} {path} || "
        f'{{ echo "set the EAGLE-3 draft head in {file} first" >&2; exit 2; }}',
    )


def ngram_note(how: str) -> str:
    return (
        f"n-gram drafts come from prompt lookup: {how}; budsim prices the acceptance above, not "
        "the lookup"
    )


def draft_model_note(plan: ExportPlan) -> str:
    """What a plan with a separate draft model loads beside the target."""
    draft = plan.deployment.spec_draft_model
    return (
        f"the draft model {draft} runs beside {plan.model} on the same devices at the same TP "
        "(its weights and KV cache were counted in the prediction's memory plan); it must share "
        "the target's tokenizer"
    )


def draft_note(plan: ExportPlan, where: str) -> str:
    return (
        f"EAGLE-3 needs a draft head trained for {plan.model} (the acceptance the prediction "
        f"assumed is that of such a head); budsim does not know one: {where}"
    )


def draft_env_note(plan: ExportPlan, context: str) -> str:
    """draft_note for engines that take the EAGLE-3 draft head from DRAFT_VAR (vLLM, SGLang)."""
    if context == "k8s":
        where = f"set the container's {DRAFT_VAR} env (now {PLACEHOLDER!r}) to one"
    else:
        where = f"the script takes it from {DRAFT_VAR} (a Hugging Face id or a directory)"
        if context == "docker":
            where += "; mount a local directory into the container"
    return draft_note(plan, where)
