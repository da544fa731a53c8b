"""A separate vLLM judge and the policy engine never claim the same GPUs at once.

vLLM sizes its KV cache from `gpu_memory_utilization` of the *whole* device (default 0.9), so a
judge engine started while the policy engine still holds its 90 % cannot allocate. When judging
starts, either the policy engine is stopped first (no later stage needs it: only `--judge same`
judges on it, and then no second engine starts), or both engines were given an explicit memory
split (`model.serving.gpu_memory_utilization + judge.serving.gpu_memory_utilization <= 1`), which
is said in a log line. On the CPU build both engines live in host memory (`kv_cache_gib` each), so
nothing is stopped there.

The same plan decides whether judging can overlap generation (`judge_overlaps_generation`): the
judge is then opened before generation and each checkpoint x seed is judged as soon as its answers
are in. Not when the policy engine must stop first, and not for a second local engine on the CPU
build, where both would decode on the same cores and gain nothing.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from evalbench.errors import InputError

log = logging.getLogger(__name__)

Plan = Literal["coexist", "split", "stop_policy"]


def judge_engine_plan(*, judge_kind: str, policy_managed: bool, cpu_build: bool,
                      policy_memory: float | None, judge_memory: float | None,
                      policy_needed_after: bool = False) -> Plan:
    """What to do with the policy engine when the judge starts (pure; see the module docstring)."""
    if judge_kind != "vllm" or not policy_managed or cpu_build:
        return "coexist"
    if policy_memory is not None and judge_memory is not None:
        if policy_memory + judge_memory > 1.0:
            raise InputError(f"policy and judge engines would share the GPUs with gpu_memory_utilization "
                             f"{policy_memory} + {judge_memory} > 1", field="judge.serving.gpu_memory_utilization")
        return "split"
    if policy_needed_after:
        raise InputError("a vLLM judge cannot start while the policy engine holds the GPUs and a later stage "
                         "still needs that engine: give model.serving.gpu_memory_utilization and "
                         "judge.serving.gpu_memory_utilization summing to at most 1",
                         field="judge.serving.gpu_memory_utilization")
    return "stop_policy"


def overlap_allowed(plan: Plan, *, judge_kind: str, policy_managed: bool, cpu_build: bool) -> bool:
    """Whether the judge may work while the policy engine still generates (pure; module docstring)."""
    if judge_kind != "vllm" or plan == "split":
        return True  # the policy's own engine (`same`), an endpoint, a scripted judge; or GPUs split
    if plan == "stop_policy":
        return False
    return not (policy_managed and cpu_build)  # coexist: two local engines on one CPU's cores


def _plan_inputs(spec: Any, policy: Any) -> dict[str, Any]:
    from evalbench.provenance import vllm_distribution
    from evalbench.serve.inprocess import InProcessEngine
    from evalbench.serve.vllm_server import VLLMServer, is_cpu_build

    handle = getattr(policy, "handle", None)
    return {"judge_kind": spec.judge.kind, "policy_managed": isinstance(handle, (VLLMServer, InProcessEngine)),
            "cpu_build": is_cpu_build(vllm_distribution())}


def judge_overlaps_generation(spec: Any, policy: Any) -> bool:
    """`overlap_allowed` for a run (`spec.overlap_judging` off: never)."""
    if not getattr(spec, "overlap_judging", True):
        return False
    if spec.judge.kind != "vllm":
        return True  # no engine of its own: nothing to plan (and vLLM need not be installed)
    inputs = _plan_inputs(spec, policy)
    plan = judge_engine_plan(**inputs, policy_memory=spec.model.serving.gpu_memory_utilization,
                             judge_memory=spec.judge.serving.gpu_memory_utilization)
    return overlap_allowed(plan, **inputs)


def make_room_for_judge(spec: Any, policy: Any) -> Plan:
    """Apply `judge_engine_plan` to a run: stop the policy engine (`policy.handle`) when it must go."""
    handle = getattr(policy, "handle", None)
    plan = judge_engine_plan(**_plan_inputs(spec, policy), policy_memory=spec.model.serving.gpu_memory_utilization,
                             judge_memory=spec.judge.serving.gpu_memory_utilization)
    if plan == "split":
        log.info("the vLLM judge shares the GPUs with the policy engine: policy %.2f + judge %.2f of GPU memory "
                 "(model.serving / judge.serving gpu_memory_utilization)", spec.model.serving.gpu_memory_utilization,
                 spec.judge.serving.gpu_memory_utilization)
    elif plan == "stop_policy":
        log.info("stopping the policy engine before the vLLM judge starts: both would claim the same GPUs and no "
                 "later stage needs the policy (to keep both, split memory with model.serving and judge.serving "
                 "gpu_memory_utilization)")
        handle.stop()
    return plan
