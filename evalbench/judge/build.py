"""Build the Judge a `JudgeSpec` names, once per run: `with open_judge(spec, ...) as judge:`.

Every command goes through here (`run`, `alpaca judge`, `mtbench judge`), so one `--judge SPEC`
means the same judge, with the same constrained-decoding default, wherever it is given.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from evalbench.errors import InputError
from evalbench.judge.base import Judge, ModelJudge

__all__ = ["open_judge"]


@contextlib.contextmanager
def open_judge(spec: Any, *, cache: Any, policy: Any = None, policy_base: str | None = None,
               log_dir: str | Path | None = None, max_concurrency: int | None = None) -> Iterator[Judge]:
    """Yield the judge of `spec` (a JudgeSpec); a `vllm` judge's server lives as long as the block.

    Args:
        spec: the JudgeSpec (`evalbench.runspec`).
        cache: the model-call Cache (None: no cache); judge calls are keyed by the backend's
            identity, the request and its decoding, so the same judge hits the same entries.
        policy: the running policy engine (for `same`); `policy_base` names its base model.
        log_dir: where a managed judge server writes its log.
        max_concurrency: overrides the endpoint's parallel requests (None: the spec's).

    Raises:
        InputError: `same` without a served policy model.
    """
    from evalbench.generate.backend import CachedBackend

    name = spec.name(policy_base or "")
    constrained = spec.is_constrained()
    if spec.kind == "fake":
        from evalbench.judge.fake import FakeJudge

        yield FakeJudge(name=name)
    elif spec.kind == "same":
        if policy is None:
            raise InputError("judge 'same' needs a policy model served by this command; give --judge "
                             "vllm:MODEL, openai:MODEL or url=URL,model=NAME", field="--judge")
        yield ModelJudge(CachedBackend(policy.backend(policy.served_name), cache), name=name, kind="same",
                         constrained=constrained, self_judged=True)
    elif spec.kind == "vllm":
        from evalbench.config import ServerSpec
        from evalbench.serve.vllm_server import VLLMServer

        model = spec.model or policy_base
        if not model:
            raise InputError("judge 'vllm' needs a model: --judge vllm:MODEL", field="--judge")
        server_spec = ServerSpec(model=model, served_name="judge", dtype=spec.dtype, max_model_len=spec.max_model_len)
        with VLLMServer(server_spec, log_dir=Path(log_dir) if log_dir is not None else Path("logs")) as server:
            yield ModelJudge(CachedBackend(server.backend("judge"), cache), name=name, kind="vllm",
                             constrained=constrained)
    else:
        from evalbench.generate.client import OpenAICompatibleBackend

        e = spec.endpoint
        if e is None:
            raise InputError("an endpoint judge needs url=URL,model=NAME", field="--judge")
        backend = OpenAICompatibleBackend(e.base_url, e.model, api_key_env=e.api_key_env,
                                          max_concurrency=max_concurrency or e.max_concurrency,
                                          timeout_s=e.timeout_s, max_retries=e.max_retries)
        yield ModelJudge(CachedBackend(backend, cache), name=name, kind="endpoint", constrained=constrained)
