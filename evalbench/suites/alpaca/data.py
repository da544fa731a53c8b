"""AlpacaEval 2 files: the eval set, model_outputs.json, annotation files and the LC-GLM inputs.

Everything is read through `evalbench.data.resolve`, i.e. from the data dir (`--data-dir` /
`EVALBENCH_DATA_DIR`, laid out like ../shared/data) or else from the `tatsu-lab/alpaca_eval`
dataset on the Hugging Face hub. Bad input raises InputError naming the file, the row and the field.

Formats (alpaca_eval's own):
- model_outputs.json: a JSON list of `{instruction, output, generator, dataset}`.
- annotations.json[.gz]: a JSON list of `{instruction, output_1 (reference), generator_1, output_2
  (the model), generator_2, preference, ...}`, preference in [1, 2] (2 = output_2 wins), 0 = draw,
  null/NaN = no verdict.
"""

from __future__ import annotations

import csv
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.data import HubFile, resolve
from evalbench.errors import InputError
from evalbench.io import open_text, read_json, write_json_atomic
from evalbench.score.winrate import GamedRows

__all__ = [
    "EVAL_SET", "INSTRUCTION_DIFFICULTY", "GAMED_ROWS", "REFERENCE_GENERATOR",
    "ModelOutput", "Annotations",
    "read_model_outputs", "write_model_outputs", "load_eval_set",
    "read_annotations", "read_instruction_difficulty", "load_instruction_difficulty",
    "read_gamed_rows", "load_gamed_rows", "match_instructions",
]

log = logging.getLogger(__name__)

HUB_REPO = "tatsu-lab/alpaca_eval"
# The AlpacaEval 2 eval set: 805 instructions with the gpt-4-1106-preview reference outputs.
# On the hub it is the `alpaca_eval_gpt4_baseline` config of the dataset.
EVAL_SET = ("alpaca_eval/gpt4_1106_preview/model_outputs.json",
            HubFile(HUB_REPO, "alpaca_eval_gpt4_baseline.json"))
# Inputs of the length-controlled GLM; the local files stand in for the hub's (see the data README).
INSTRUCTION_DIFFICULTY = ("alpaca_eval/lc/instruction_difficulty.csv",
                          HubFile(HUB_REPO, "instruction_difficulty.csv"))
GAMED_ROWS = ("alpaca_eval/lc/df_gamed_surrogate.csv", HubFile(HUB_REPO, "df_gamed.csv"))
REFERENCE_GENERATOR = "gpt4_1106_preview"


@dataclass(frozen=True)
class ModelOutput:
    """One row of a model_outputs.json file."""

    instruction: str
    output: str
    generator: str
    dataset: str | None = None


def _require_str(row: Mapping[str, Any], key: str, path: Path, i: int, *,
                 optional: bool = False) -> str | None:
    value = row.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, str):
        what = "missing" if key not in row else f"not a string ({type(value).__name__})"
        raise InputError(f"'{key}' is {what}", path=path, field=f"row {i}.{key}")
    return value


def _read_list(path: str | Path) -> tuple[Path, list]:
    path = Path(path)
    rows = read_json(path)
    if not isinstance(rows, list):
        raise InputError(f"expected a JSON list of objects, got {type(rows).__name__}", path=path)
    if not rows:
        raise InputError("the file holds no rows", path=path)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise InputError(f"expected a JSON object, got {type(row).__name__}", path=path, field=f"row {i}")
    return path, rows


def read_model_outputs(path: str | Path) -> list[ModelOutput]:
    """Read an alpaca_eval model_outputs.json (.gz allowed); `instruction`, `output`, `generator`
    are required strings, `dataset` is optional."""
    path, rows = _read_list(path)
    return [ModelOutput(instruction=_require_str(r, "instruction", path, i),
                        output=_require_str(r, "output", path, i),
                        generator=_require_str(r, "generator", path, i),
                        dataset=_require_str(r, "dataset", path, i, optional=True))
            for i, r in enumerate(rows)]


def write_model_outputs(path: str | Path, rows: Iterable[ModelOutput | Mapping[str, Any]]) -> None:
    """Write rows as an alpaca_eval model_outputs.json (atomically; a missing dataset is omitted)."""
    out = []
    for row in rows:
        item = asdict(row) if isinstance(row, ModelOutput) else dict(row)
        for key in ("instruction", "output", "generator"):
            if not isinstance(item.get(key), str):
                raise ValueError(f"model output rows need a string '{key}', got {item.get(key)!r}")
        if item.get("dataset") is None:
            item.pop("dataset", None)
        out.append(item)
    write_json_atomic(path, out)


def load_eval_set() -> list[ModelOutput]:
    """The AlpacaEval 2 eval set (805 instructions, gpt4_1106_preview outputs as references)."""
    relpath, hub = EVAL_SET
    return read_model_outputs(resolve(relpath, hub=hub))


@dataclass(frozen=True, eq=False)
class Annotations:
    """One model's annotation file: rows in file order; `preference` NaN where there is no verdict."""

    path: str
    model: str                     # generator_2
    reference: str                 # generator_1
    instruction: tuple[str, ...]
    output_1: tuple[str, ...]      # the reference's outputs
    output_2: tuple[str, ...]      # the model's outputs
    preference: np.ndarray         # float, in [1, 2] or NaN (0 already mapped to 1.5)

    def __len__(self) -> int:
        return len(self.instruction)

    @property
    def n_failed(self) -> int:
        return int(np.isnan(self.preference).sum())


def _preference(row: Mapping[str, Any], path: Path, i: int) -> float:
    if "preference" not in row:
        raise InputError("'preference' is missing", path=path, field=f"row {i}.preference")
    value = row["preference"]
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"preference must be a number or null, got {value!r}", path=path,
                         field=f"row {i}.preference")
    value = float(value)
    if math.isnan(value):
        return math.nan
    if value == 0:
        return 1.5  # alpaca_eval's legacy draw code
    if not 1 <= value <= 2:
        raise InputError(f"preference {value!r} is outside [1, 2] (and not 0 = draw or null)",
                         path=path, field=f"row {i}.preference")
    return value


def read_annotations(path: str | Path) -> Annotations:
    """Read and validate an alpaca_eval annotations file (.json or .json.gz) holding one model.

    Raises:
        InputError: not a list of objects, a missing/ill-typed field, a preference outside
            [1, 2] ∪ {0, null}, or more than one `generator_2` in the file (name file, row, field).
    """
    path, rows = _read_list(path)
    instruction, out1, out2, prefs = [], [], [], []
    gen1: dict[str, int] = {}
    gen2: dict[str, int] = {}
    for i, row in enumerate(rows):
        instruction.append(_require_str(row, "instruction", path, i))
        out1.append(_require_str(row, "output_1", path, i))
        out2.append(_require_str(row, "output_2", path, i))
        gen1.setdefault(_require_str(row, "generator_1", path, i), i)
        gen2.setdefault(_require_str(row, "generator_2", path, i), i)
        prefs.append(_preference(row, path, i))
    if len(gen2) > 1:
        names = sorted(gen2, key=gen2.get)
        raise InputError(f"expected one model per file, found generator_2 values {names[:5]} "
                         f"(row {gen2[names[1]]} starts '{names[1]}')", path=path, field="generator_2")
    if len(gen1) > 1:
        names = sorted(gen1, key=gen1.get)
        raise InputError(f"expected one reference per file, found generator_1 values {names[:5]}",
                         path=path, field="generator_1")
    return Annotations(path=str(path), model=next(iter(gen2)), reference=next(iter(gen1)),
                       instruction=tuple(instruction), output_1=tuple(out1), output_2=tuple(out2),
                       preference=np.asarray(prefs, dtype=float))


def _float(value: str, path: Path, line: int, field: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InputError(f"not a number: {value!r}", path=path, line=line, field=field) from None


def read_instruction_difficulty(path: str | Path) -> np.ndarray:
    """Read instruction_difficulty.csv (`index`, `instruction_difficulty`) into an array indexed by
    `index`, the instruction's position in the eval set. Indices must be exactly 0..n-1."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    values: dict[int, float] = {}
    with open_text(path) as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header or "instruction_difficulty" not in header:
            raise InputError("expected a CSV with an 'instruction_difficulty' column", path=path, line=1)
        col = header.index("instruction_difficulty")
        for line, rec in enumerate(reader, start=2):
            if not rec:
                continue
            # The first column is the index (named `index` here, unnamed in some exports).
            idx = _float(rec[0], path, line, header[0] or "index")
            if idx != int(idx) or idx < 0:
                raise InputError(f"index must be a non-negative integer, got {rec[0]!r}", path=path,
                                 line=line, field=header[0] or "index")
            if int(idx) in values:
                raise InputError(f"duplicate index {int(idx)}", path=path, line=line)
            value = _float(rec[col], path, line, "instruction_difficulty")
            if not math.isfinite(value):
                raise InputError("instruction_difficulty must be finite", path=path, line=line,
                                 field="instruction_difficulty")
            values[int(idx)] = value
    if sorted(values) != list(range(len(values))):
        missing = sorted(set(range(max(values, default=-1) + 1)) - set(values))[:5]
        raise InputError(f"indices must be 0..n-1; missing {missing}", path=path, field="index")
    return np.asarray([values[i] for i in range(len(values))], dtype=float)


def load_instruction_difficulty() -> np.ndarray:
    """The official per-instruction difficulty of the 805 eval instructions (data dir or hub)."""
    relpath, hub = INSTRUCTION_DIFFICULTY
    return read_instruction_difficulty(resolve(relpath, hub=hub))


def read_gamed_rows(path: str | Path) -> GamedRows:
    """Read the gamed baselines' GLM rows (`df_gamed.csv` layout: preference in [0, 1],
    std_delta_len, instruction_difficulty, not_gamed_baseline = False). An empty preference is
    kept as NaN (the GLM leaves such rows out, as the reference implementation does)."""
    path = Path(path)
    if not path.exists():
        raise InputError("file not found", path=path)
    need = ("preference", "std_delta_len", "instruction_difficulty")
    cols: dict[str, list[float]] = {k: [] for k in need}
    with open_text(path) as fh:
        reader = csv.DictReader(fh)
        missing = [k for k in need if k not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"missing column(s) {missing}", path=path, line=1)
        for line, row in enumerate(reader, start=2):
            flag = (row.get("not_gamed_baseline") or "False").strip()
            if flag not in ("False", "false", "0", "0.0"):
                raise InputError(f"gamed rows must have not_gamed_baseline False, got {flag!r}", path=path,
                                 line=line, field="not_gamed_baseline")
            for key in need:
                raw = (row[key] or "").strip()
                value = math.nan if key == "preference" and raw == "" else _float(raw, path, line, key)
                if key == "preference" and not math.isnan(value) and not 0 <= value <= 1:
                    raise InputError(f"preference {value!r} outside [0, 1]", path=path, line=line, field=key)
                if key != "preference" and not math.isfinite(value):
                    raise InputError("must be finite", path=path, line=line, field=key)
                cols[key].append(value)
    if not cols["preference"]:
        raise InputError("the file holds no rows", path=path)
    return GamedRows(*(np.asarray(cols[k], dtype=float) for k in need))


def load_gamed_rows() -> GamedRows:
    """The gamed baselines' rows used to regularise the LC GLM (data dir or hub)."""
    relpath, hub = GAMED_ROWS
    return read_gamed_rows(resolve(relpath, hub=hub))


_MAX_LISTED = 5


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def match_instructions(instructions: Iterable[str], eval_set: list[ModelOutput] | tuple[ModelOutput, ...], *,
                       path: str | Path | None = None, what: str = "row",
                       set_name: str = "the AlpacaEval 2 eval set") -> np.ndarray:
    """Position in `eval_set` of each instruction, matched by content (exact string equality).

    Raises:
        InputError (naming `path`) listing the first instructions that are not in the eval set, or
        that repeat an earlier one. Fewer instructions than the eval set is allowed (logged).
    """
    where: dict[str, int] = {}
    for i, row in enumerate(eval_set):
        where.setdefault(row.instruction, i)
    texts = list(instructions)
    positions = np.full(len(texts), -1, dtype=int)
    unknown: list[str] = []
    seen: dict[int, int] = {}
    repeated: list[str] = []
    for i, text in enumerate(texts):
        pos = where.get(text)
        if pos is None:
            unknown.append(f"{what} {i}: {_short(text)!r}")
            continue
        if pos in seen:
            repeated.append(f"{what} {i} repeats {what} {seen[pos]}")
        seen[pos] = i
        positions[i] = pos
    if unknown:
        raise InputError(
            f"{len(unknown)} of {len(texts)} instruction(s) are not in {set_name} "
            f"({len(eval_set)} instructions; compared by content); first: " + "; ".join(unknown[:_MAX_LISTED]),
            path=path, field="instruction")
    if repeated:
        raise InputError(f"{len(repeated)} instruction(s) appear twice; first: " + "; ".join(repeated[:_MAX_LISTED]),
                         path=path, field="instruction")
    if len(texts) < len(eval_set):
        log.warning("%s: %d of %d eval instructions are present; the metrics cover those rows only",
                    path or "outputs", len(texts), len(eval_set))
    return positions
