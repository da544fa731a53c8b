"""Reward sources: a number for each (prompt, response), from a model or a program.

    scorer = build_scorer(RewardSpec(source="vader"))
    scorer.score([RewardItem(prompt=({"role": "user", "content": "Hi"},), response="Great!", text="Great!")])

Three kinds, all in one registry (`REWARD_SOURCES`, did-you-mean on a typo):

* `rm`: a Bradley-Terry reward model trained by evalbench (`evalbench train --method rm`; scoring
  code in `evalbench.train.reward`, scorer `evalbench.suites.reward.BradleyTerryScorer`): the
  scalar head at the last token of the chat-rendered (prompt, response). Metric `reward`, unbounded.
* `classifier`: any Hugging Face `AutoModelForSequenceClassification` (e.g. a sentiment classifier,
  the IMDB reward of the DPO paper), read on `RewardItem.text`:
  `prob` = softmax probability of `label` (metric `reward_prob`, in [0, 1]),
  `logit_diff` = logit of `label` minus logit of `contrast_label` (metric `reward`),
  `logit` = the raw logit of `label` (metric `reward`; the only read-out of a one-label head).
* programmatic scorers: a function text -> float, registered with `register_text_scorer`. Shipped:
  `vader` = the VADER compound sentiment score (Hutto & Gilbert 2014; `vaderSentiment` 3.3.2, its
  lexicon is inside the package, so it works offline), metric `vader_compound`, in [-1, 1].

A scorer returns one float per item, or None for an item it could not score (with the reason in
`errors`); it never returns a sentinel. Heavy imports (torch, transformers, vaderSentiment) happen
when a scorer is built, never at import.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import Field, model_validator

from evalbench.config import Spec
from evalbench.errors import EvalbenchError, InputError, require
from evalbench.registry import Registry

log = logging.getLogger(__name__)

# Metric keys (snake_case constants; units in evalbench.units).
REWARD = "reward"
REWARD_PROB = "reward_prob"
VADER_COMPOUND = "vader_compound"


@dataclass(frozen=True)
class RewardItem:
    """What a scorer sees of one sample.

    Attributes:
        prompt: the prompt as chat messages (a completion prompt is one user message).
        response: the sampled continuation / answer.
        text: the text a text-only scorer (classifier, VADER) reads: the response, or the prompt
            followed by the response for completion-style prompts (chosen by the suite).
    """

    prompt: tuple[dict[str, str], ...]
    response: str
    text: str


@dataclass
class Scored:
    """Scores in item order (None = not scored) and, by item index, why an item was not scored."""

    values: list[float | None]
    errors: dict[int, str] = field(default_factory=dict)


class RewardSpec(Spec):
    """Which reward source scores the samples, and how.

    Attributes:
        source: a registered source: `vader` (or another programmatic scorer), `rm`, `classifier`.
        model: `rm`: an `evalbench train --method rm` output directory (or a one-label
            sequence-classification model); `classifier`: a local directory or hub id.
        label: `classifier`: the label scored, by name (case-insensitive, from `id2label`) or index;
            default: a label named positive / pos if the model has one, else the last label.
        read_out: `classifier`: `prob`, `logit_diff` or `logit` (see the module docstring).
        contrast_label: `logit_diff`: the label subtracted; default: the other label of a
            two-label model (required with more labels).
        metric: the metric key; default per source (`vader_compound`, `reward`, `reward_prob`).
        batch_size, max_length, device: model scorers only.
    """

    source: str = "vader"
    model: str | None = None
    label: str | int | None = None
    read_out: Literal["prob", "logit_diff", "logit"] = "prob"
    contrast_label: str | int | None = None
    metric: str | None = Field(None, pattern=r"^[a-z][a-z0-9_]*$")
    batch_size: int = Field(16, ge=1)
    max_length: int = Field(512, ge=8)
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        """`"vader"`, `"rm:PATH"`, `"classifier:PATH"`: a string is a source name and its model."""
        if isinstance(data, str):
            source, sep, model = data.partition(":")
            return {"source": source.strip(), **({"model": model.strip()} if sep else {})}
        return data


class RewardScorer:
    """Base class: `score` items in order; `identity` says who scored (for run.json and records)."""

    metric: str = REWARD
    # Natural bounds of one score (None: unbounded); also those of any mean of scores.
    bounds: tuple[float | None, float | None] = (None, None)

    def identity(self) -> dict[str, Any]:
        raise NotImplementedError

    def score(self, items: Sequence[RewardItem]) -> Scored:
        raise NotImplementedError


# --------------------------------------------------------------------------- programmatic scorers


class TextScorer(RewardScorer):
    """A programmatic scorer: `fn(text) -> float`, applied to `RewardItem.text` item by item.

    An exception or a non-finite value for one item makes that item None with the reason; the
    others are still scored.
    """

    def __init__(self, name: str, fn: Callable[[str], float], *, metric: str,
                 bounds: tuple[float | None, float | None] = (None, None), version: str | None = None):
        self.name = name
        self.fn = fn
        self.metric = metric
        self.bounds = bounds
        self.version = version

    def identity(self) -> dict[str, Any]:
        return {"source": self.name, "kind": "programmatic", "version": self.version, "metric": self.metric}

    def score(self, items: Sequence[RewardItem]) -> Scored:
        out = Scored([])
        for i, item in enumerate(items):
            try:
                value = float(self.fn(item.text))
            except Exception as exc:  # noqa: BLE001 - a third-party scorer failing on one text is data
                out.values.append(None)
                out.errors[i] = f"{self.name}: {type(exc).__name__}: {exc}"
                continue
            if not math.isfinite(value):
                out.values.append(None)
                out.errors[i] = f"{self.name}: non-finite score {value}"
                continue
            out.values.append(value)
        return out


def vader_scorer(spec: RewardSpec) -> TextScorer:
    """VADER compound score in [-1, 1]: the summed lexicon valences (with VADER's rules for
    negation, boosters, 'but', capitals and '!'), normalised by x / sqrt(x^2 + 15)."""
    _no_model("vader", spec)
    module = require("vaderSentiment.vaderSentiment", "eval")
    from importlib.metadata import PackageNotFoundError, version

    try:
        pkg_version = version("vaderSentiment")
    except PackageNotFoundError:  # pragma: no cover - vendored copies
        pkg_version = None
    analyzer = module.SentimentIntensityAnalyzer()
    return TextScorer("vader", lambda text: analyzer.polarity_scores(text)["compound"],
                      metric=spec.metric or VADER_COMPOUND, bounds=(-1.0, 1.0), version=pkg_version)


def _no_model(name: str, spec: RewardSpec) -> None:
    if spec.model is not None:
        raise InputError(f"reward source '{name}' is a program and takes no model (got {spec.model!r})",
                         field="scorer.model")


# --------------------------------------------------------------------------- model scorers


def _device(name: str):
    import torch

    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def resolve_label(id2label: Mapping[int, str], label: str | int | None, *, field_name: str = "scorer.label") -> int:
    """The index of `label` (a name, case-insensitive, or an index) among a classifier's labels.

    None picks a label named positive / pos (case-insensitive) when there is one, else the last
    label (binary sentiment heads such as SST-2's put positive last).
    """
    n = len(id2label)
    names = {int(i): str(v) for i, v in id2label.items()}
    if label is None:
        for i, v in names.items():
            if v.lower() in ("positive", "pos"):
                return i
        return n - 1
    if isinstance(label, int) or (isinstance(label, str) and label.isdigit()):
        idx = int(label)
        if not 0 <= idx < n:
            raise InputError(f"label index {idx} out of range: the model has {n} labels", field=field_name)
        return idx
    for i, v in names.items():
        if v.lower() == label.lower():
            return i
    from evalbench.registry import did_you_mean

    raise InputError(f"unknown label {label!r}{did_you_mean(label, list(names.values()))} "
                     f"(labels: {', '.join(names[i] for i in sorted(names))})", field=field_name)


def classifier_read_out(logits, label: int, read_out: str, contrast: int | None):
    """Scores (B,) from classifier logits (B, L): softmax probability, logit difference or logit."""
    import torch

    if read_out == "prob":
        return torch.softmax(logits.float(), dim=-1)[:, label]
    if read_out == "logit_diff":
        assert contrast is not None
        return logits[:, label].float() - logits[:, contrast].float()
    return logits[:, label].float()


class ClassifierScorer(RewardScorer):
    """Any Hugging Face sequence classifier, read on `RewardItem.text` (truncated to max_length)."""

    def __init__(self, spec: RewardSpec):
        require("torch", "train")
        transformers = require("transformers", "train")
        from evalbench.provenance import model_identity

        if not spec.model:
            raise InputError("reward source 'classifier' needs a model: scorer: classifier:PATH_OR_HUB_ID",
                             field="scorer.model")
        self.spec = spec
        self.device = _device(spec.device)
        try:
            self.tokenizer = transformers.AutoTokenizer.from_pretrained(spec.model)
            self.model = transformers.AutoModelForSequenceClassification.from_pretrained(spec.model)
        except (OSError, ValueError) as exc:
            raise InputError(f"cannot load a sequence classifier: {str(exc).splitlines()[0]}",
                             path=spec.model, field="scorer.model") from None
        self.model.to(self.device).eval()
        id2label = dict(self.model.config.id2label or {i: f"LABEL_{i}" for i in range(self.model.config.num_labels)})
        n_labels = len(id2label)
        self.label = resolve_label(id2label, spec.label)
        self.contrast: int | None = None
        if spec.read_out == "logit_diff":
            if spec.contrast_label is not None:
                self.contrast = resolve_label(id2label, spec.contrast_label, field_name="scorer.contrast_label")
            elif n_labels == 2:
                self.contrast = 1 - self.label
            else:
                raise InputError(f"logit_diff on a {n_labels}-label model needs contrast_label",
                                 field="scorer.contrast_label")
            if self.contrast == self.label:
                raise InputError("contrast_label is the scored label; the difference would be 0",
                                 field="scorer.contrast_label")
        if spec.read_out in ("prob", "logit_diff") and n_labels < 2:
            raise InputError(f"read_out '{spec.read_out}' needs at least 2 labels; a one-label head is read "
                             "with read_out: logit (or use source rm for an evalbench reward model)",
                             field="scorer.read_out")
        if self.tokenizer.pad_token is None:  # decoder classifiers (GPT-2 style) ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
            self.model.config.pad_token_id = self.tokenizer.pad_token_id
        self.metric = spec.metric or (REWARD_PROB if spec.read_out == "prob" else REWARD)
        self.bounds = (0.0, 1.0) if spec.read_out == "prob" else (None, None)
        self.labels = [str(id2label[i]) for i in sorted(id2label)]
        self.who = {"source": "classifier", "model": model_identity(spec.model), "label": self.labels[self.label],
                    "read_out": spec.read_out, "metric": self.metric,
                    "contrast_label": None if self.contrast is None else self.labels[self.contrast],
                    "max_length": spec.max_length}

    def identity(self) -> dict[str, Any]:
        return dict(self.who)

    def score(self, items: Sequence[RewardItem]) -> Scored:
        import torch

        out = Scored([None] * len(items))
        # A text that encodes to no token at all (an empty output, with a tokenizer that adds no
        # special tokens) has nothing to classify: None with the reason, never a made-up score.
        lengths = [len(ids) for ids in self.tokenizer([it.text for it in items], truncation=True,
                                                      max_length=self.spec.max_length)["input_ids"]]
        todo = [i for i, n in enumerate(lengths) if n > 0]
        for i, n in enumerate(lengths):
            if n == 0:
                out.errors[i] = "classifier: the text encodes to no token"
        with torch.no_grad():
            for start in range(0, len(todo), self.spec.batch_size):
                idx = todo[start:start + self.spec.batch_size]
                enc = self.tokenizer([items[i].text for i in idx], padding=True, truncation=True,
                                     max_length=self.spec.max_length, return_tensors="pt").to(self.device)
                logits = self.model(**enc).logits
                scores = classifier_read_out(logits, self.label, self.spec.read_out, self.contrast).cpu().tolist()
                for i, v in zip(idx, scores):
                    if math.isfinite(v):
                        out.values[i] = float(v)
                    else:
                        out.errors[i] = f"classifier: non-finite score {v}"
        return out


def classifier_scorer(spec: RewardSpec) -> ClassifierScorer:
    return ClassifierScorer(spec)


# --------------------------------------------------------------------------- registry

# name -> factory(spec) -> RewardScorer. Built-ins are lazy "module:function" targets, so naming one
# never imports another's dependencies.
REWARD_SOURCES: Registry[Callable[[RewardSpec], RewardScorer]] = Registry("reward source")
REWARD_SOURCES.add("vader", "evalbench.score.rewards:vader_scorer")
REWARD_SOURCES.add("classifier", "evalbench.score.rewards:classifier_scorer")
# The BT reward model's scorer uses the trainer's scoring code (evalbench.train.reward, the stages
# layer), so it lives with the reward suite; the lazy target is no import from this layer.
REWARD_SOURCES.add("rm", "evalbench.suites.reward:bradley_terry_scorer")

# Metric keys of every registered source (the frontier plot and `show` find reward metrics by them).
REWARD_METRICS: set[str] = {REWARD, REWARD_PROB, VADER_COMPOUND}


def register_text_scorer(name: str, fn: Callable[[str], float], *, metric: str,
                         bounds: tuple[float | None, float | None] = (None, None), version: str | None = None) -> None:
    """Add a programmatic reward source `name`: `fn(text) -> float`, reported under `metric`.

    Raises ValueError for a name already registered.
    """
    def factory(spec: RewardSpec) -> TextScorer:
        _no_model(name, spec)
        return TextScorer(name, fn, metric=spec.metric or metric, bounds=bounds, version=version)

    REWARD_SOURCES.add(name, factory)
    REWARD_METRICS.add(metric)


def build_scorer(spec: RewardSpec | str) -> RewardScorer:
    """The scorer of `spec` (a RewardSpec or its shorthand string); unknown sources suggest the closest."""
    from evalbench.registry import UnknownName

    if isinstance(spec, str):
        spec = RewardSpec.model_validate(spec)
    try:
        factory = REWARD_SOURCES.get(spec.source)
    except UnknownName as exc:
        raise InputError(str(exc), field="scorer.source") from None
    scorer = factory(spec)
    if not isinstance(scorer, RewardScorer):
        raise EvalbenchError(f"reward source '{spec.source}' built a {type(scorer).__name__}, not a RewardScorer")
    REWARD_METRICS.add(scorer.metric)
    return scorer


__all__ = [
    "REWARD",
    "REWARD_METRICS",
    "REWARD_PROB",
    "REWARD_SOURCES",
    "VADER_COMPOUND",
    "ClassifierScorer",
    "RewardItem",
    "RewardScorer",
    "RewardSpec",
    "Scored",
    "TextScorer",
    "build_scorer",
    "classifier_read_out",
    "register_text_scorer",
    "resolve_label",
]
