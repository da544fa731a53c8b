"""β annealing and learning-rate schedules as pure functions of the step (no torch, no state).

β annealing (Annealing-DPO / Annealing-IPO; methods.md): β moves from `start` to `end` over
training along a named shape; no public trainer implements it, so the trainer builds
`LossParams(beta=beta_for_step(step, total, start, end, kind))` each step: `start` at the first
step, `end` at the last.

The learning rate is linear warm-up then decay, the `transformers` convention
(`get_cosine_schedule_with_warmup` / `get_linear_schedule_with_warmup`): lr(0) = 0, lr(warmup)
= peak, lr(total) = min_lr. Published WPO/DPO recipes use 10 % warm-up and cosine decay.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Literal

from evalbench.errors import InputError
from evalbench.registry import Registry

ScheduleKind = Literal["constant", "linear", "cosine"]

# shape name -> fraction of the way from start to end at progress p in [0, 1];
# every shape is 0 at p = 0, non-decreasing, and (except constant) 1 at p = 1.
SCHEDULES: Registry[Callable[[float], float]] = Registry("schedule")
SCHEDULES.add("constant", lambda p: 0.0)
SCHEDULES.add("linear", lambda p: p)
# half a cosine period, as nanoGPT and transformers decay the learning rate
SCHEDULES.add("cosine", lambda p: 0.5 * (1.0 - math.cos(math.pi * p)))


def _shape(kind: str, field: str) -> Callable[[float], float]:
    try:
        return SCHEDULES.get(kind)
    except KeyError as exc:
        raise InputError(str(exc), field=field) from None


def _progress(step: int, start: int, length: int) -> float:
    # Clamped: past the end the schedule holds its final value instead of cycling back.
    return min(max((step - start) / max(1, length), 0.0), 1.0)


def beta_at(step: int, total_steps: int, start: float, end: float | None = None,
            kind: ScheduleKind = "constant") -> float:
    """β at optimisation step `step` (0-based) of `total_steps`.

    `start + (end − start) · shape(step / total_steps)`: β(0) = start and β(total_steps) = end
    for linear and cosine; constant is `start` throughout (and rejects an `end` that differs).
    Steps outside [0, total_steps] are clamped.

    Raises:
        InputError: total_steps < 1, non-positive β, unknown kind, or an `end` for constant.
    """
    end = start if end is None else end
    if total_steps < 1:
        raise InputError(f"total_steps must be >= 1, got {total_steps}", field="total_steps")
    if not (start > 0 and end > 0):
        raise InputError(f"beta must be > 0 at both ends, got start={start}, end={end}", field="beta")
    shape = _shape(kind, "beta.kind")
    if kind == "constant" and end != start:
        raise InputError(f"a constant beta schedule ignores end={end}; use kind 'linear' or 'cosine'",
                         field="beta.end")
    return start + (end - start) * shape(_progress(step, 0, total_steps))


def beta_for_step(step: int, total_steps: int, start: float, end: float | None = None,
                  kind: ScheduleKind = "constant") -> float:
    """β of optimisation step `step` (0-based) of a run of `total_steps` steps.

    `beta_at(step, total_steps - 1, ...)`: `start` at the first step and exactly `end` at the
    last one (`beta_at(step, total_steps)` would stop one step short of `end`). A one-step run
    trains at `start`.

    Raises:
        InputError: as `beta_at`.
    """
    return beta_at(step, max(total_steps - 1, 1), start, end, kind)


def lr_at(step: int, total: int, warmup: int, peak: float, kind: ScheduleKind = "cosine",
          min_lr: float = 0.0) -> float:
    """Learning rate at step `step` (0-based): linear warm-up to `peak`, then decay.

    `peak · step/warmup` for step < warmup, then `peak + (min_lr − peak) · shape(p)` with
    `p = (step − warmup)/(total − warmup)` clamped to [0, 1]. kind "constant" keeps `peak`
    after warm-up. Matches `transformers.get_{cosine,linear,constant}_schedule_with_warmup`
    for min_lr = 0.

    Raises:
        InputError: total < 1, warmup outside [0, total], negative rates, or an unknown kind.
    """
    if total < 1:
        raise InputError(f"total steps must be >= 1, got {total}", field="total_steps")
    if not 0 <= warmup <= total:
        raise InputError(f"warmup must be in [0, {total}], got {warmup}", field="warmup_steps")
    if peak < 0 or min_lr < 0 or min_lr > peak:
        raise InputError(f"need 0 <= min_lr <= peak, got min_lr={min_lr}, peak={peak}", field="lr")
    shape = _shape(kind, "lr.kind")
    if step < warmup:
        return peak * max(step, 0) / warmup
    return peak + (min_lr - peak) * shape(_progress(step, warmup, total - warmup))
