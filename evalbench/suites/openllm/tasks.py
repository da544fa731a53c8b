"""Which lm-eval tasks evalbench knows, where their data comes from, and the task files it writes.

Offline, the Open LLM Leaderboard v1 tasks read the files under `openllm/` in the data dir through
task YAMLs generated from `evalbench/assets/openllm_tasks/` (see docs/openllm.md for the mapping).
Each generated YAML `include:`s lm-eval's installed registry config of the same name and changes
only where the documents come from, so prompts, few-shot settings, metrics, filters and task
versions are lm-eval's own. The generated files carry the registry names (`arc_challenge`,
`mmlu_anatomy`, ...) and are put on lm-eval's include path after its defaults, where a later
definition overrides an earlier one; lm-eval's `mmlu` groups then resolve to the offline
subjects through their tags.

Online, the names resolve to lm-eval's registry tasks and their hub datasets, as `lm_eval --tasks`
does. Everything here is cheap to import; lm-eval is only imported to list its task names.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from evalbench.errors import InputError, MissingExtra
from evalbench.io import canonical_json, sha256_text, write_json_atomic
from evalbench.registry import did_you_mean
from evalbench.resources import OPENLLM_TASKS

log = logging.getLogger(__name__)

ASSETS = OPENLLM_TASKS
DATA_MODULE = "openllm_data.py"
DataMode = Literal["auto", "offline", "online"]

# Open LLM Leaderboard v1 (HF, 2023-2024): task, few-shot count, headline metric ("metric" or
# "metric,filter" as lm-eval names them). GSM8K's headline is the strict `#### <n>` extraction.
V1_TASKS: tuple[tuple[str, int, str], ...] = (
    ("arc_challenge", 25, "acc_norm"),
    ("hellaswag", 10, "acc_norm"),
    ("mmlu", 5, "acc"),
    ("truthfulqa_mc2", 0, "acc"),
    ("winogrande", 5, "acc"),
    ("gsm8k", 5, "exact_match,strict-match"),
)
V2_GROUP = "leaderboard"

# Offline task name -> asset template. MMLU is one template instantiated per subject.
OFFLINE_TEMPLATES: dict[str, str] = {
    "arc_challenge": "arc_challenge.yaml",
    "hellaswag": "hellaswag.yaml",
    "winogrande": "winogrande.yaml",
    "truthfulqa_mc2": "truthfulqa_mc2.yaml",
    "gsm8k": "gsm8k.yaml",
}
MMLU_TEMPLATE = "mmlu_subject.yaml"
# Offline tasks that generate text; every other offline task is scored by log-likelihoods.
GENERATIVE = frozenset({"gsm8k"})
MMLU_GROUPS = ("mmlu", "mmlu_stem", "mmlu_other", "mmlu_social_sciences", "mmlu_humanities")

# The leaderboard group's hub datasets (lm-eval 0.4.13 `tasks/leaderboard/*`): none is in the
# shared data, so `openllm_v2` runs online only.
V2_DATASETS: dict[str, str] = {
    "leaderboard_ifeval": "wis-k/instruction-following-eval",
    "leaderboard_bbh": "SaylorTwift/bbh",
    "leaderboard_math_hard": "DigitalLearningGmbH/MATH-lighteval",
    "leaderboard_gpqa": "Idavidrein/gpqa (gated)",
    "leaderboard_musr": "TAUR-Lab/MuSR",
    "leaderboard_mmlu_pro": "TIGER-Lab/MMLU-Pro",
}

_PLACEHOLDER = re.compile(r"@@([a-z_]+)(?::([^@]+))?@@")


def lm_eval_tasks_dir() -> Path:
    """lm-eval's installed `tasks/` directory, found without importing lm-eval."""
    spec = importlib.util.find_spec("lm_eval")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtra("lm_eval", "eval")
    return Path(next(iter(spec.submodule_search_locations))) / "tasks"


def lm_eval_version() -> str | None:
    from importlib import metadata

    try:
        return metadata.version("lm-eval")
    except metadata.PackageNotFoundError:
        return None


def mmlu_subjects() -> list[str]:
    """The 57 subjects of lm-eval's `mmlu` group (one `mmlu_<subject>.yaml` each)."""
    return sorted(p.stem.removeprefix("mmlu_") for p in (lm_eval_tasks_dir() / "mmlu" / "default").glob("mmlu_*.yaml"))


def offline_names() -> list[str]:
    """Every name an offline run can resolve: tasks, MMLU subjects and MMLU groups."""
    return sorted({*OFFLINE_TEMPLATES, *MMLU_GROUPS, *(f"mmlu_{s}" for s in mmlu_subjects())})


def offline_leaves(name: str) -> list[str]:
    """The offline leaf tasks behind a name (the 57 subjects for `mmlu`, a subset for a category)."""
    if name in OFFLINE_TEMPLATES:
        return [name]
    subjects = [f"mmlu_{s}" for s in mmlu_subjects()]
    if name == "mmlu":
        return subjects
    if name in MMLU_GROUPS:
        tag = f"{name}_tasks"
        tagged = []
        for task in subjects:
            text = (lm_eval_tasks_dir() / "mmlu" / "default" / f"{task}.yaml").read_text(encoding="utf-8")
            if re.search(rf'^"?tag"?:\s*"?{re.escape(tag)}"?\s*$', text, flags=re.MULTILINE):
                tagged.append(task)
        return tagged
    if name in subjects:
        return [name]
    raise KeyError(name)


def template_for(leaf: str) -> tuple[str, dict[str, str]]:
    if leaf in OFFLINE_TEMPLATES:
        return OFFLINE_TEMPLATES[leaf], {}
    return MMLU_TEMPLATE, {"subject": leaf.removeprefix("mmlu_")}


def data_files_for(leaf: str) -> list[str]:
    """Data-dir relative paths a leaf task reads (from the `@@data:...@@` markers of its template)."""
    name, _ = template_for(leaf)
    text = (ASSETS / name).read_text(encoding="utf-8")
    return sorted({m.group(2) for m in _PLACEHOLDER.finditer(text) if m.group(1) == "data"})


def resolve_data_files(names: Iterable[str]) -> dict[str, Path]:
    """relpath -> local path for every file the offline `names` read; a missing one is named."""
    from evalbench.data import data_dir, resolve

    rels = sorted({rel for name in names for leaf in offline_leaves(name) for rel in data_files_for(leaf)})
    if rels and data_dir() is None:
        raise InputError("offline OpenLLM tasks read local files; set EVALBENCH_DATA_DIR or --data-dir to the "
                         f"folder holding {rels[0]} (or use data=online)", field="data")
    out: dict[str, Path] = {}
    for rel in rels:
        try:
            out[rel] = resolve(rel)
        except InputError as exc:
            raise InputError(f"offline data for OpenLLM task(s) {', '.join(_tasks_reading(rel, names))} is missing: "
                             f"expected {exc.path}", path=exc.path, field="data") from None
    return out


def _tasks_reading(rel: str, names: Iterable[str]) -> list[str]:
    return sorted({name for name in names for leaf in offline_leaves(name) if rel in data_files_for(leaf)})


def render_template(text: str, *, lm_eval_dir: Path, files: dict[str, Path], subject: str | None = None) -> str:
    def sub(m: re.Match) -> str:
        kind, arg = m.group(1), m.group(2)
        if kind == "lm_eval_tasks":
            return str(lm_eval_dir)
        if kind == "data":
            return str(files[arg])
        if kind == "subject" and subject is not None:
            return subject
        raise ValueError(f"unknown placeholder {m.group(0)}")

    # Values sit inside double quotes in the templates: escape what YAML would read specially.
    return _PLACEHOLDER.sub(lambda m: sub(m).replace("\\", "\\\\").replace('"', '\\"'), text)


@dataclass(frozen=True)
class TaskDir:
    """Generated offline task definitions: pass `path` to lm-eval's include path."""

    path: Path
    leaves: tuple[str, ...]
    data_files: dict[str, str]  # data-dir relative path -> absolute path
    digest: str  # sha256 over templates, loader module, lm-eval version and data paths


def write_task_dir(names: Sequence[str], out_dir: str | Path) -> TaskDir:
    """Write the offline YAMLs (+ the loader module) for `names` into `out_dir`; idempotent."""
    out = Path(out_dir)
    leaves = sorted({leaf for name in names for leaf in offline_leaves(name)})
    files = resolve_data_files(names)
    lm_dir = lm_eval_tasks_dir()
    rendered: dict[str, str] = {}
    for leaf in leaves:
        template, params = template_for(leaf)
        rendered[f"{leaf}.yaml"] = render_template((ASSETS / template).read_text(encoding="utf-8"),
                                                   lm_eval_dir=lm_dir, files=files, subject=params.get("subject"))
    module = (ASSETS / DATA_MODULE).read_text(encoding="utf-8")
    digest = sha256_text(canonical_json({"yaml": rendered, "module": module, "lm_eval": lm_eval_version()}))
    stamp = out / "evalbench_tasks.json"
    if stamp.exists():
        try:
            if json.loads(stamp.read_text()).get("digest") == digest:
                return TaskDir(out, tuple(leaves), {k: str(v) for k, v in files.items()}, digest)
        except ValueError:
            pass
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for fname, text in rendered.items():
        (out / fname).write_text(text, encoding="utf-8")
    (out / DATA_MODULE).write_text(module, encoding="utf-8")
    write_json_atomic(stamp, {"digest": digest, "leaves": leaves, "data_files": {k: str(v) for k, v in files.items()},
                              "lm_eval": lm_eval_version()})
    return TaskDir(out, tuple(leaves), {k: str(v) for k, v in files.items()}, digest)


# ---------------------------------------------------------------------------------------------
# task names: validation before any model is loaded


def registry_names(home: Path | None = None) -> frozenset[str]:
    """Every task, group and tag name in lm-eval's registry (indexing takes ~20 s; cached on disk).

    The cache file is keyed by the lm-eval version and the mtime of its tasks directory.
    """
    tasks_dir = lm_eval_tasks_dir()
    key = f"{lm_eval_version()}-{tasks_dir.stat().st_mtime_ns}"
    from evalbench.paths import evalbench_home

    cache = (Path(home) if home is not None else evalbench_home()) / "openllm" / "lm_eval_task_names.json"
    try:
        data = json.loads(cache.read_text())
        if data.get("key") == key:
            return frozenset(data["names"])
    except (OSError, ValueError, KeyError):
        pass
    names = index_names([tasks_dir])
    try:
        write_json_atomic(cache, {"key": key, "names": sorted(names)}, indent=None)
    except OSError:  # a read-only home only costs the next run the same 20 s
        pass
    return frozenset(names)


def index_names(paths: Sequence[str | Path]) -> set[str]:
    """Task/group/tag names defined by the YAMLs under `paths`, read with lm-eval's own indexer."""
    try:
        from lm_eval.tasks._index import TaskIndex
    except ImportError:
        raise MissingExtra("lm_eval", "eval") from None
    for p in paths:
        if not Path(p).is_dir():
            raise InputError("task include path is not a directory", path=p, field="include_path")
    quiet = logging.getLogger("lm_eval")
    level = quiet.level
    quiet.setLevel(logging.ERROR)  # the index warns about every override
    try:
        return set(TaskIndex.build([Path(p) for p in paths]))
    finally:
        quiet.setLevel(level)


@dataclass(frozen=True)
class Resolved:
    """A requested name and where it comes from."""

    name: str
    source: Literal["offline", "online", "include"]


def hub_offline() -> bool:
    """The Hugging Face hub is switched off for this process (HF_HUB_OFFLINE / HF_DATASETS_OFFLINE)."""
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))


def resolve_names(names: Sequence[str], *, mode: DataMode, offline_available: bool,
                  known: Iterable[str], include_names: Iterable[str] = (), hub: bool = True) -> list[Resolved]:
    """Decide offline/online per requested name; unknown names and impossible requests raise.

    Args:
        names: task/group names as the user wrote them.
        mode: "offline" (local files only), "online" (lm-eval registry + hub), "auto" (offline
            where evalbench has a local definition and a data dir is set, online otherwise).
        offline_available: a data dir is configured.
        known: lm-eval registry names (for did-you-mean and online resolution).
        include_names: names defined by the user's own include paths (always allowed).
        hub: the hub can be reached; in "auto" mode a name that needs it fails early when not.
    """
    offline = set(offline_names())
    known = set(known)
    include_names = set(include_names)
    out: list[Resolved] = []
    for name in names:
        if name in include_names:
            out.append(Resolved(name, "include"))
            continue
        if name not in offline and name not in known:
            hint = did_you_mean(name, sorted(offline | known | include_names))
            raise InputError(f"unknown lm-eval task '{name}'{hint} (list them with `lm-eval ls tasks`)",
                             field="tasks")
        if mode == "online":
            out.append(Resolved(name, "online"))
        elif name in offline and (mode == "offline" or offline_available):
            if mode == "offline" and not offline_available:
                resolve_data_files([name])  # raises: names the missing data dir / file
            out.append(Resolved(name, "offline"))
        elif mode == "offline" or not hub:
            raise InputError(offline_missing_message(name) + ("" if hub else " (HF_HUB_OFFLINE is set)"),
                             field="tasks")
        else:
            out.append(Resolved(name, "online"))
    return out


def offline_missing_message(name: str) -> str:
    if name == V2_GROUP or name in V2_DATASETS:
        wanted = V2_DATASETS if name == V2_GROUP else {name: V2_DATASETS[name]}
        return (f"'{name}' has no offline data: its hub datasets ({'; '.join(f'{k}: {v}' for k, v in wanted.items())}) "
                "are not in the shared data; run it online (data=online, with network and hub access)")
    return (f"'{name}' has no offline definition in evalbench (offline tasks: "
            f"{', '.join(sorted({*OFFLINE_TEMPLATES, *MMLU_GROUPS}))}, mmlu_<subject>); "
            "run it online (data=online) or give your own task YAML with include_path")


def check_chat_template(model: str) -> None:
    """Raise before any model is loaded when `model` has no chat template to apply."""
    path = Path(model).expanduser()
    if not path.exists():
        try:
            from huggingface_hub import try_to_load_from_cache
        except ImportError:
            return
        found = False
        for fname in ("chat_template.jinja", "chat_template.json", "tokenizer_config.json"):
            cached = try_to_load_from_cache(model, fname)
            if isinstance(cached, str):
                if fname != "tokenizer_config.json" or _has_template_key(Path(cached)):
                    return
                found = True
        if found:
            raise InputError("the model's tokenizer has no chat template; drop apply_chat_template "
                             "(or give a model that has one)", path=model, field="apply_chat_template")
        log.info("cannot check %s for a chat template offline; lm-eval will if it loads", model)
        return
    if (path / "chat_template.jinja").is_file() or (path / "chat_template.json").is_file():
        return
    if _has_template_key(path / "tokenizer_config.json"):
        return
    raise InputError("model has no chat template (no chat_template.jinja / chat_template.json, no "
                     "'chat_template' in tokenizer_config.json); drop apply_chat_template or add a template",
                     path=path, field="apply_chat_template")


def _has_template_key(tokenizer_config: Path) -> bool:
    try:
        return bool(json.loads(tokenizer_config.read_text(encoding="utf-8")).get("chat_template"))
    except (OSError, ValueError, AttributeError):
        return False

