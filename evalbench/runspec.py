"""The spec of `evalbench run`: what to evaluate, with what judge, over which seeds. Frozen, validated."""

from __future__ import annotations

import glob
import json
import re
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from evalbench.config import AdapterSpec, EndpointSpec, ServingSpec, Spec
from evalbench.errors import InputError

OPENAI_URL = "https://api.openai.com/v1"


class ModelSpec(Spec):
    """The policy: a base model and LoRA adapters served from one engine, or an external endpoint."""

    base: str
    served_name: str | None = None
    adapters: tuple[AdapterSpec, ...] = ()
    adapters_glob: tuple[str, ...] = ()
    include_base: bool = True
    engine: Literal["server", "inprocess"] = "server"
    dtype: str = "auto"
    # None: the model's own context length (AlpacaEval and MT-bench answers of modern models run long).
    max_model_len: int | None = None
    kv_cache_gib: float = Field(1.0, gt=0)
    # How the managed engine runs (parallelism, memory, eager mode, in-flight bound): not hashed.
    serving: ServingSpec = ServingSpec()
    # Generate through an OpenAI-compatible endpoint instead of serving `base` ourselves; each of
    # `served_models` (e.g. LoRA adapters on a remote vLLM) is a checkpoint, default: endpoint.model.
    endpoint: EndpointSpec | None = None
    served_models: tuple[str, ...] = ()
    # How the policy is reached, by name in `evalbench.backends.BACKENDS` (vllm-server,
    # vllm-inprocess, endpoint, replay, fake); default: endpoint when given, else `engine`.
    backend: str | None = None
    # replay: checkpoint name -> saved-output file (alpaca_eval model_outputs.json, FastChat answers).
    replay: dict[str, str] = Field(default_factory=dict)

    @field_validator("backend")
    @classmethod
    def _known_backend(cls, v: str | None) -> str | None:
        if v is not None:
            from evalbench.backends import BACKENDS

            if v not in BACKENDS:
                from evalbench.registry import did_you_mean

                raise ValueError(f"unknown backend '{v}'{did_you_mean(v, BACKENDS.names())} "
                                 f"(known: {', '.join(BACKENDS.names())})")
        return v


class JudgeSpec(Spec):
    """Who judges the suites that need a judge (alpaca, mtbench). One syntax everywhere: `--judge SPEC`.

    kind: `vllm` (a second managed vLLM server for `model`), `endpoint` (any OpenAI-compatible
    URL), `fake` (FakeJudge: scripted verdicts, for tests and dry runs) or `same` (the policy's
    own base model judges: allowed, with a loud warning, and its summary rows say
    `self_judged: true`). There is no silent default: a run with a judged suite must name `kind`
    (`RunSpec` checks it), so the field default below only keeps older run specs hashing alike.
    """

    kind: Literal["same", "vllm", "endpoint", "fake"] = "same"
    model: str | None = None
    endpoint: EndpointSpec | None = None
    # Constrain verdicts so every one parses (vLLM structured outputs). Default (None): on for
    # judges evalbench serves itself (`same`, `vllm`), off for endpoints, which may not support it.
    constrained: bool | None = None
    dtype: str = "auto"
    max_model_len: int | None = 4096
    # A `vllm` judge's engine options (for a judge on the policy's GPUs: gpu_memory_utilization).
    serving: ServingSpec = ServingSpec()
    # Judge requests in flight at once (default: the endpoint's max_concurrency, or the judge
    # engine's serving.max_in_flight). How, not what: not hashed.
    concurrency: int | None = Field(None, ge=1)

    @property
    def given(self) -> bool:
        """Whether `kind` was stated (on the command line or in a recipe) rather than defaulted."""
        return "kind" in self.model_fields_set

    @property
    def self_judged(self) -> bool:
        return self.kind == "same"

    def is_constrained(self) -> bool:
        return self.constrained if self.constrained is not None else self.kind in ("same", "vllm")

    def name(self, policy_base: str) -> str:
        if self.kind == "endpoint" and self.endpoint is not None:
            return self.endpoint.model
        if self.kind == "fake":
            return "fake"
        return Path(self.model or policy_base).name


class RunSpec(Spec):
    suites: tuple[str, ...]
    model: ModelSpec
    judge: JudgeSpec = JudgeSpec()
    seeds: tuple[int, ...] = (0,)
    limit: int | None = Field(None, ge=1)
    suite_options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    baseline: str | None = None
    results_dir: str = "results"
    cache_path: str | None = None
    # Where the stages run (evalbench.executors): `local` (default) or `ray` on the cluster at
    # `ray_address` with `ray_engines` engines per base model (default: as many as the GPUs allow,
    # one per node without GPUs). How, not what: left out of the spec hash (EXECUTION_FIELDS).
    executor: str = "local"
    ray_address: str | None = None
    ray_engines: int | None = Field(None, ge=1)
    # Judged suites score each checkpoint x seed as soon as its answers are in, while the others
    # still generate, wherever the judge can be open during generation (evalbench.serve.sharing).
    # Same records either way; False scores only after every unit has generated.
    overlap_judging: bool = True

    def spec_hash(self) -> str:
        """sha256 of the spec without EXECUTION_FIELDS: a run resumes under any executor."""
        from evalbench.io import canonical_json, sha256_text

        return sha256_text(canonical_json(self.model_dump(mode="json", exclude=HASH_EXCLUDED)))

    @field_validator("executor")
    @classmethod
    def _known_executor(cls, v: str) -> str:
        from evalbench.executors import EXECUTORS

        if v not in EXECUTORS:
            from evalbench.registry import did_you_mean

            raise ValueError(f"unknown executor '{v}'{did_you_mean(v, EXECUTORS.names())} "
                             f"(known: {', '.join(EXECUTORS.names())})")
        return v

    @field_validator("suites")
    @classmethod
    def _known_suites(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        from evalbench.suites.base import SUITES

        if not v:
            raise ValueError("at least one suite is required")
        for name in v:
            if name not in SUITES:
                from evalbench.registry import did_you_mean

                raise ValueError(f"unknown suite '{name}'{did_you_mean(name, SUITES.names())} "
                                 f"(known: {', '.join(SUITES.names())})")
        if len(set(v)) != len(v):
            raise ValueError("a suite is listed twice")
        return v

    @field_validator("seeds")
    @classmethod
    def _seeds(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if not v or len(set(v)) != len(v):
            raise ValueError("seeds must be a non-empty list without repeats")
        return v

    @model_validator(mode="after")
    def _judge_is_explicit(self) -> RunSpec:
        # No silent self-judging (issue 14): a judged suite needs a judge someone chose.
        from evalbench.suites.base import SUITES

        judged = [name for name in self.suites if SUITES.get(name).needs_judge]
        if judged and not self.judge.given:
            raise InputError(f"{', '.join(judged)} need{'s' if len(judged) == 1 else ''} a judge and none was "
                             f"given: {JUDGE_SYNTAX} (in a recipe: judge.kind)", field="--judge")
        if judged and self.judge.kind == "same" and (self.model.endpoint is not None
                                                     or self.model.backend == "replay"):
            raise InputError("judge 'same' needs a policy model that evalbench serves (not an endpoint or saved "
                             "outputs); give --judge vllm:MODEL, openai:MODEL or url=URL,model=NAME", field="--judge")
        return self


# RunSpec fields that say how a run executes, not what it computes (not hashed).
EXECUTION_FIELDS = ("executor", "ray_address", "ray_engines", "overlap_judging")
# ...and the nested serving options (parallelism, memory, in-flight bounds): the same run on more GPUs.
HASH_EXCLUDED: dict[str, Any] = {**{f: True for f in EXECUTION_FIELDS}, "model": {"serving"},
                                 "judge": {"serving", "concurrency"}}

JUDGE_SYNTAX = ("vllm:MODEL | openai:MODEL | url=URL,model=NAME[,key_env=VAR] | same (the policy's base "
                "model judges itself: warned, rows marked self_judged) | fake (scripted verdicts, for tests)")


def parse_judge_arg(arg: str) -> dict[str, Any]:
    """`--judge SPEC` as JudgeSpec fields; the one judge syntax of every command.

    `vllm:MODEL` serves MODEL on a second vLLM server; `openai:MODEL` is api.openai.com with
    $OPENAI_API_KEY; `url=URL,model=NAME[,key_env=VAR]` is any OpenAI-compatible endpoint, sent
    the key in $VAR (no key without key_env, except $OPENAI_API_KEY for api.openai.com: a key is
    never sent to another host unless asked); `same` and `fake` as in JudgeSpec.
    """
    arg = arg.strip()
    if arg in ("same", "fake"):
        return {"kind": arg}
    if arg.startswith("vllm:") and arg[5:]:
        return {"kind": "vllm", "model": arg[5:]}
    if arg.startswith("openai:") and arg[7:]:
        return {"kind": "endpoint", "endpoint": {"base_url": OPENAI_URL, "model": arg[7:],
                                                 "api_key_env": "OPENAI_API_KEY"}}
    if "=" in arg:
        parts = dict(p.split("=", 1) for p in arg.split(",") if "=" in p)
        unknown = set(parts) - {"url", "model", "key_env"}
        if unknown or "url" not in parts or "model" not in parts:
            raise InputError(f"judge must be url=URL,model=NAME[,key_env=VAR]; got {arg!r}", field="--judge")
        key_env = parts.get("key_env") or ("OPENAI_API_KEY" if "api.openai.com" in parts["url"] else None)
        return {"kind": "endpoint", "endpoint": {"base_url": parts["url"], "model": parts["model"],
                                                 "api_key_env": key_env}}
    raise InputError(f"unknown judge {arg!r}: use {JUDGE_SYNTAX}", field="--judge")


_SEED_RE = re.compile(r"(?:^|[-_/])(?:seed|s)[-_]?(\d+)$")


def checkpoint_meta(name: str, path: str | None) -> dict[str, Any]:
    """group / train_seed / method of a checkpoint, from train_meta.json or its name."""
    meta: dict[str, Any] = {}
    if path is not None:
        meta_file = Path(path) / "train_meta.json"
        if meta_file.exists():
            try:
                meta = json.loads(meta_file.read_text())
            except ValueError as exc:
                raise InputError(f"invalid JSON: {exc}", path=meta_file) from None
    train_seed = meta.get("seed")
    match = _SEED_RE.search(name)
    if train_seed is None and match:
        train_seed = int(match.group(1))
    group = meta.get("group") or (name[: match.start()] if match and match.start() > 0 else name)
    return {"group": group, "train_seed": train_seed, "method": meta.get("method"), "train_meta": meta}


def expand_adapters(spec: ModelSpec) -> list[AdapterSpec]:
    """Explicit adapters plus every adapter directory matched by the globs, named `<parent>-<dir>`."""
    adapters = list(spec.adapters)
    names = {a.name for a in adapters}
    for pattern in spec.adapters_glob:
        matches = sorted(p for p in glob.glob(pattern) if (Path(p) / "adapter_config.json").exists())
        if not matches:
            raise InputError(f"no adapter directories (with adapter_config.json) match {pattern!r}",
                             field="--adapters-glob")
        for p in matches:
            path = Path(p)
            name = f"{path.parent.name}-{path.name}" if path.parent.name else path.name
            if name in names:
                raise InputError(f"two adapters would be served as '{name}'", path=p, field="--adapters-glob")
            names.add(name)
            adapters.append(AdapterSpec(name=name, path=str(path)))
    return adapters
