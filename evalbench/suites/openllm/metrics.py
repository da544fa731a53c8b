"""lm-eval per-sample logs -> evalbench SampleRecords -> summary metrics. Pure functions, no I/O.

Score keys are `<task>/<metric>` with lm-eval's task and metric names (`arc_challenge/acc_norm`,
`mmlu_anatomy/acc`). A metric computed under a filter other than lm-eval's "none" keeps the filter
in lm-eval's own spelling (`gsm8k/exact_match,flexible-extract`), except a task's headline filter,
which gets the plain key (`gsm8k/exact_match` is the strict `#### <n>` extraction that the Open LLM
Leaderboard v1 reported). A document of a group's member task also carries the group key
(`mmlu/acc`), so the mean of a key over the records is lm-eval's size-weighted group score.

A per-document value that is a list (IFEval's instruction-level accuracy) is scored as its mean
and weighted by its length (`data["weights"][key]`), which reproduces lm-eval's pooled
aggregation; values that are not numbers (e.g. the (gold, prediction) pairs of corpus-level F1 or
MCC) are left out of `scores` and named in `data["unscored"]`: lm-eval's own aggregate of those is
in the saved results JSON.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from evalbench.store import SampleRecord

# Open LLM Leaderboard v2 (https://huggingface.co/docs/leaderboards/open_llm_leaderboard/normalization):
# benchmark -> (prefix of its lm-eval member tasks, metric, how the random baseline is set).
# "per_subtask": normalise each member task with lower bound 1/num_choices (counted from its
# documents), then average the member tasks; a float: normalise the size-weighted score of all
# members with that lower bound; 0.0: generative, no baseline.
V2_NORMALISATION: dict[str, tuple[str, str, str | float]] = {
    "leaderboard_bbh": ("leaderboard_bbh_", "acc_norm", "per_subtask"),
    "leaderboard_musr": ("leaderboard_musr_", "acc_norm", "per_subtask"),
    "leaderboard_gpqa": ("leaderboard_gpqa_", "acc_norm", 0.25),
    "leaderboard_mmlu_pro": ("leaderboard_mmlu_pro", "acc", 0.1),
    "leaderboard_math_hard": ("leaderboard_math_", "exact_match", 0.0),
    # the mean of prompt- and instruction-level strict accuracy, no baseline
    "leaderboard_ifeval": ("leaderboard_ifeval", "ifeval", 0.0),
}


def metric_key(metric: str, filt: str, headline: str | None = None) -> str:
    """lm-eval (metric, filter) -> the metric part of an evalbench score key."""
    if filt == "none" or headline == f"{metric},{filt}":
        return metric
    return f"{metric},{filt}"


def _numeric(value: Any) -> tuple[float, int] | None:
    """(value, weight) of a per-document metric value, or None when it is not a number."""
    if isinstance(value, bool):
        return float(value), 1
    if isinstance(value, (int, float)):
        return (float(value), 1) if math.isfinite(float(value)) else None
    if isinstance(value, (list, tuple)) and value and all(isinstance(v, (bool, int, float)) for v in value):
        return sum(float(v) for v in value) / len(value), len(value)
    return None


def records_from_samples(rows: Iterable[Mapping[str, Any]], *, suite: str, checkpoint: str, seed: int,
                         task: str, leaf: str, headline: str | None = None) -> list[SampleRecord]:
    """Convert one leaf task's lm-eval sample log into one SampleRecord per document.

    Args:
        rows: lm-eval `samples_<leaf>.jsonl` rows (one per document and filter).
        task: the requested name (a task, or a group such as `mmlu`).
        leaf: the lm-eval task the rows belong to (== task unless task is a group).
        headline: the task's headline metric as "metric" or "metric,filter" (gets the plain key).
    """
    by_doc: dict[int, dict[str, Any]] = {}
    for row in rows:
        doc_id = int(row["doc_id"])
        entry = by_doc.setdefault(doc_id, {"scores": {}, "weights": {}, "unscored": [], "row": row, "filters": []})
        filt = str(row.get("filter", "none"))
        entry["filters"].append(filt)
        if filt == "none" or entry["row"].get("filter") != "none" and filt == _headline_filter(headline):
            entry["row"] = row
        for metric in row.get("metrics", []):
            name = metric_key(metric, filt, headline)
            value = _numeric(row.get(metric))
            if value is None:
                entry["unscored"].append(name)
                continue
            keys = [f"{leaf}/{name}"] + ([f"{task}/{name}"] if task != leaf else [])
            for key in keys:
                entry["scores"][key] = value[0]
                if value[1] != 1:
                    entry["weights"][key] = value[1]
    records = []
    for doc_id in sorted(by_doc):
        entry = by_doc[doc_id]
        row = entry["row"]
        data: dict[str, Any] = {"task": task, "leaf": leaf, "doc_id": doc_id,
                                "target": _short(row.get("target")), "doc_hash": row.get("doc_hash"),
                                "prompt_hash": row.get("prompt_hash")}
        if headline:
            data["headline"] = headline
        args = row.get("arguments") or []
        lls = _loglikelihoods(row)
        if lls is not None:
            data["n_choices"] = len(args)
            data["loglikelihoods"] = lls
        else:
            data["response"] = _short(_raw_response(row), 2000)
            data["filtered"] = _short(_first_response(row), 500)
        if entry["weights"]:
            data["weights"] = entry["weights"]
        if entry["unscored"]:
            data["unscored"] = sorted(set(entry["unscored"]))
        records.append(SampleRecord(suite=suite, checkpoint=checkpoint, seed=seed, sample_id=f"{leaf}/{doc_id}",
                                    scores=entry["scores"], data=data))
    return records


def _headline_filter(headline: str | None) -> str | None:
    return headline.split(",", 1)[1] if headline and "," in headline else None


def _loglikelihoods(row: Mapping[str, Any]) -> list[float] | None:
    """Per-choice log-likelihoods of a multiple-choice row (filtered_resps: [[ll, is_greedy], ...])."""
    resps = row.get("filtered_resps")
    if not isinstance(resps, list) or not resps:
        return None
    out = []
    for r in resps:
        if isinstance(r, (list, tuple)) and len(r) == 2 and isinstance(r[0], (int, float)) \
                and isinstance(r[1], bool):
            out.append(float(r[0]))
        else:
            return None
    return out


def _raw_response(row: Mapping[str, Any]) -> Any:
    """The model's generation (lm-eval `resps`: one list of outputs per request)."""
    resps = row.get("resps")
    while isinstance(resps, list) and resps:
        resps = resps[0]
    return resps


def _first_response(row: Mapping[str, Any]) -> Any:
    resps = row.get("filtered_resps")
    if isinstance(resps, list) and resps:
        return resps[0]
    return resps


def _short(value: Any, limit: int = 500) -> Any:
    if value is None or isinstance(value, (int, float, bool)):
        return value
    text = value if isinstance(value, str) else str(value)
    return text if len(text) <= limit else text[:limit] + "..."


# ---------------------------------------------------------------------------------------------
# summaries


def weighted_mean(records: Sequence[SampleRecord], key: str) -> tuple[float | None, float | None, int]:
    """(mean, standard error, n documents) of `key` over the records that carry it.

    Unweighted keys: the sample mean and `sd(ddof=1)/sqrt(n)`, lm-eval's `mean_stderr`. Weighted
    keys (list-valued per-document metrics): the pooled mean sum(w*x)/sum(w); no standard error.
    """
    pairs = [(r.scores[key], float((r.data.get("weights") or {}).get(key, 1))) for r in records
             if r.scores.get(key) is not None]
    n = len(pairs)
    if n == 0:
        return None, None, 0
    total_w = sum(w for _, w in pairs)
    mean = sum(x * w for x, w in pairs) / total_w
    if any(w != 1 for _, w in pairs):
        return mean, None, n
    if n < 2:
        return mean, None, n
    var = sum((x - mean) ** 2 for x, _ in pairs) / (n - 1)
    return mean, math.sqrt(var / n), n


def summarize_tasks(records: Sequence[SampleRecord], tasks: Sequence[str], *, report_subtasks: bool = False,
                    average: bool = True) -> dict[str, float | int | None]:
    """`<task>/<metric>`, `<task>/<metric>_stderr` for each requested task, plus `average`.

    `average` is the unweighted mean over the requested tasks of each one's headline metric (the
    Open LLM Leaderboard v1 average when the tasks are its six); it is None when a task has no score.
    """
    out: dict[str, float | int | None] = {}
    keys = sorted({k for r in records for k in r.scores})
    wanted = set(tasks)
    for key in keys:
        task = key.split("/", 1)[0]
        is_top = task in wanted
        if not is_top and not report_subtasks:
            continue
        mean, se, _ = weighted_mean(records, key)
        out[key] = mean
        out[f"{key}_stderr"] = se
    if average and tasks:
        heads = []
        for task in tasks:
            headline = next((r.data.get("headline") for r in records if r.data.get("task") == task
                             and r.data.get("headline")), None)
            value = out.get(f"{task}/{headline.split(',')[0]}") if headline else None
            heads.append(value)
        out["average"] = sum(heads) / len(heads) if heads and all(h is not None for h in heads) else None
    return out


def normalise(value: float | None, lower: float) -> float | None:
    """Open LLM Leaderboard v2: 100 * (value - lower) / (1 - lower), clipped at 0 from below."""
    if value is None:
        return None
    if lower <= 0:
        return 100.0 * value
    return 100.0 * max(0.0, value - lower) / (1.0 - lower)


def pooled_mean(records: Sequence[SampleRecord], metric: str) -> float | None:
    """Mean of each record's own `<leaf>/<metric>` over all records (lm-eval's size-weighted group score)."""
    num = den = 0.0
    for r in records:
        key = f"{r.data.get('leaf')}/{metric}"
        if r.scores.get(key) is None:
            continue
        w = float((r.data.get("weights") or {}).get(key, 1))
        num += r.scores[key] * w
        den += w
    return num / den if den else None


def summarize_v2(records: Sequence[SampleRecord], group: str = "leaderboard") -> dict[str, float | int | None]:
    """Raw scores of the leaderboard group (every member task) plus the normalised benchmark scores
    (`<benchmark>/normalized`, 0-100) and their mean `average`, as the Open LLM Leaderboard v2 does."""
    out = summarize_tasks(records, [group], report_subtasks=True, average=False)
    bench_scores: list[float | None] = []
    for bench, (prefix, metric, lower) in V2_NORMALISATION.items():
        members = [r for r in records if str(r.data.get("leaf", "")).startswith(prefix)]
        if bench == "leaderboard_ifeval":
            strict_p = pooled_mean(members, "prompt_level_strict_acc")
            strict_i = pooled_mean(members, "inst_level_strict_acc")
            score = None if strict_p is None or strict_i is None else 100.0 * (strict_p + strict_i) / 2
        elif lower == "per_subtask":
            per_leaf = []
            for leaf in sorted({r.data["leaf"] for r in members}):
                docs = [r for r in members if r.data["leaf"] == leaf]
                choices = [r.data["n_choices"] for r in docs if r.data.get("n_choices")]
                lb = sum(1.0 / c for c in choices) / len(choices) if choices else 0.0
                per_leaf.append(normalise(pooled_mean(docs, metric), lb))
            score = (sum(per_leaf) / len(per_leaf)  # type: ignore[arg-type]
                     if per_leaf and all(v is not None for v in per_leaf) else None)
        else:
            score = normalise(pooled_mean(members, metric), float(lower))
        out[f"{bench}/normalized"] = score
        bench_scores.append(score)
    out["average"] = (sum(bench_scores) / len(bench_scores)  # type: ignore[arg-type]
                      if all(s is not None for s in bench_scores) else None)
    return out
