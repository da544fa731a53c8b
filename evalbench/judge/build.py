"""The run's Judge from its `JudgeSpec`, built once: `judge = make_judge(spec.judge, backend, policy_base=...)`.

The driver (`evalbench.api`) opens the judge's backend through the backend registry (a managed
vLLM server, an endpoint, or the policy engine for `same`) and hands it here; every command that
judges (`run`, `alpaca judge`, `mtbench judge`) is a run, so one `--judge SPEC` means the same
judge, with the same constrained-decoding default, wherever it is given.
"""

from __future__ import annotations

from typing import Any

from evalbench.judge.base import Judge, ModelJudge

__all__ = ["make_judge"]


def make_judge(spec: Any, backend: Any, *, policy_base: str) -> Judge:
    """The Judge of `spec` (a `runspec.JudgeSpec`) over `backend` (a CachedBackend; unused for `fake`).

    Its identity is fixed here: name (`spec.name`), kind, model, the backend's identity, whether
    verdicts are constrained (`spec.is_constrained()`), and `self_judged` for kind `same`, which
    also logs a loud warning.
    """
    name = spec.name(policy_base)
    if spec.kind == "fake":
        from evalbench.judge.fake import FakeJudge

        return FakeJudge(name=name)
    if backend is None:
        raise ValueError(f"a judge of kind {spec.kind!r} needs a backend")
    return ModelJudge(backend, name=name, kind=spec.kind, constrained=spec.is_constrained(),
                      self_judged=spec.self_judged)
