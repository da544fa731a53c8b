"""Reward-model analyses of several checkpoints' responses (as in seed studies of DPO with a reward model).

Input: JSONL rows `{checkpoint, prompt, response, reward}` (as written by `evalbench reward score`).
Output (`analyze_rewards`, a plain JSON-serialisable dict):

* `checkpoints`: per checkpoint n, reward mean / std (ddof=1) / median, word count mean / std,
  Flesch-Kincaid grade mean / std (responses without a word are left out of the grade).
* `welch`: every pair of checkpoints, Welch's t-test on their reward distributions (difference
  `a - b`, its interval, t, df, p), Hedges' g, and Holm / Benjamini-Hochberg adjusted p over all pairs.
* `length_bias`: when two checkpoints answer the same prompt, the higher-reward response is
  "preferred" and the lower one "dispreferred" (ties in reward are skipped). Reported per pair of
  checkpoints and pooled: mean word counts of preferred and dispreferred responses, how often the
  preferred one is longer / shorter / equally long, and a two-sided sign test of "longer as often as
  shorter" (scipy binomtest). Plus the correlation of reward with word count (Pearson and
  Spearman), over all responses and per checkpoint. A reward model that rewards length shows a
  preferred-longer rate well above 0.5 and a positive correlation (Singhal et al. 2023, "A Long
  Way to Go"). When a checkpoint answered a prompt several times, its reward and word count on that
  prompt are the means over those responses.
* `keywords`: top TF-IDF terms per checkpoint (scikit-learn `TfidfVectorizer`, English stop words,
  each checkpoint's responses joined into one document, so the IDF singles out what one
  checkpoint says and the others do not). Ties are broken alphabetically.

Words are whitespace-separated tokens (`str.split`), the usual "word count" of length-bias studies.

Readability is the Flesch-Kincaid grade level (Kincaid et al. 1975):
`0.39 * words/sentences + 11.8 * syllables/words - 15.59`. The `textstat` package computes it from the
CMU pronouncing dictionary, which it downloads through NLTK at first use, so it cannot run offline;
syllables are therefore counted with a documented heuristic (`count_syllables`), which makes the
grade reproducible everywhere but approximate for words the rules get wrong (e.g. "idea" has 2
vowel groups but 3 syllables).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import Any

import numpy as np

from evalbench.errors import InputError, require
from evalbench.io import iter_jsonl

REQUIRED_FIELDS: tuple[str, ...] = ("checkpoint", "prompt", "response", "reward")


@dataclass(frozen=True)
class RewardRow:
    checkpoint: str
    prompt: str
    response: str
    reward: float


def load_reward_scores(path: str | Path) -> list[RewardRow]:
    """Read and validate a reward-scores JSONL file; errors name the file, line and field."""
    rows = []
    for lineno, obj in iter_jsonl(path):
        for key in ("checkpoint", "prompt", "response"):
            if key not in obj:
                raise InputError("missing field", path=path, line=lineno, field=key)
            if not isinstance(obj[key], str):
                raise InputError(f"expected a string, got {type(obj[key]).__name__}", path=path, line=lineno,
                                 field=key)
        if not obj["checkpoint"]:
            raise InputError("empty checkpoint name", path=path, line=lineno, field="checkpoint")
        if "reward" not in obj:
            raise InputError("missing field", path=path, line=lineno, field="reward")
        r = obj["reward"]
        if r is None:
            raise InputError("reward is null (a failed score); drop the row or rescore it", path=path, line=lineno,
                             field="reward")
        if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(float(r)):
            raise InputError(f"reward must be a finite number, got {r!r}", path=path, line=lineno, field="reward")
        rows.append(RewardRow(obj["checkpoint"], obj["prompt"], obj["response"], float(r)))
    if not rows:
        raise InputError("no rows", path=path)
    return rows


# ---------------------------------------------------------------------------------------------
# text measures


def word_count(text: str) -> int:
    """Whitespace-separated tokens."""
    return len(text.split())


_WORD = re.compile(r"[A-Za-z]+(?:['’][A-Za-z]+)*|\d+(?:[.,]\d+)*")
_SENTENCE_END = re.compile(r"[.!?]+(?=\s|$)|\n\s*\n")
_SILENT_END = re.compile(r"(?<=[^laeiouy])(?:es|ed|e)$")
_VOWEL_GROUP = re.compile(r"[aeiouy]+")


def count_syllables(word: str) -> int:
    """Heuristic English syllable count of one word.

    Rules (the common vowel-group heuristic): lower-case and keep letters; words of at most 3
    letters have 1 syllable; drop a final silent "e", "es" or "ed" after a consonant other than "l"
    ("make" -> "mak", "table" keeps its "le"); drop a leading "y" (a consonant there); count groups of
    consecutive vowels (a e i o u y); at least 1. Numbers count 1 per digit group. Exact for most
    common words; errs on vowel sequences that span syllables ("idea": 2, "create": 1).
    """
    w = re.sub(r"[^a-z]", "", word.lower())
    if not w:
        return 1 if any(c.isdigit() for c in word) else 0
    if len(w) <= 3:
        return 1
    w = _SILENT_END.sub("", w)
    w = w.removeprefix("y")
    return max(1, len(_VOWEL_GROUP.findall(w)))


def flesch_kincaid_grade(text: str) -> float | None:
    """Flesch-Kincaid grade level, `0.39 * W/S + 11.8 * Y/W - 15.59`; None for a text without words.

    W = words (letter or digit runs), S = sentences (runs of . ! ? followed by whitespace or the end,
    and blank lines; at least 1), Y = syllables by `count_syllables`.
    """
    words = _WORD.findall(text)
    if not words:
        return None
    sentences = max(1, len([p for p in _SENTENCE_END.split(text) if _WORD.search(p)]))
    syllables = sum(count_syllables(w) for w in words)
    return 0.39 * len(words) / sentences + 11.8 * syllables / len(words) - 15.59


# ---------------------------------------------------------------------------------------------
# analyses


def _stats():
    return require("scipy.stats", "eval")


def _describe(x: Sequence[float]) -> dict[str, float | None]:
    a = np.asarray(x, dtype=float)
    if a.size == 0:
        return {"mean": None, "std": None, "median": None}
    return {"mean": float(a.mean()), "std": float(a.std(ddof=1)) if a.size > 1 else None,
            "median": float(np.median(a))}


def _correlation(x: Sequence[float], y: Sequence[float]) -> dict[str, Any]:
    """Pearson and Spearman correlation; None (with a note) for < 3 points or a constant side."""
    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    out: dict[str, Any] = {"n": int(x.size), "pearson_r": None, "pearson_p": None, "spearman_rho": None,
                           "spearman_p": None, "note": None}
    if x.size < 3:
        out["note"] = "fewer than 3 responses"
        return out
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        out["note"] = "constant word count or reward: correlation undefined"
        return out
    st = _stats()
    pr = st.pearsonr(x, y)
    sr = st.spearmanr(x, y)
    out.update(pearson_r=float(pr.statistic), pearson_p=float(pr.pvalue), spearman_rho=float(sr.statistic),
               spearman_p=float(sr.pvalue))
    return out


def _per_prompt(rows: Iterable[RewardRow]) -> dict[str, dict[str, tuple[float, float]]]:
    """checkpoint -> prompt -> (mean reward, mean word count) over that checkpoint's responses."""
    acc: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for r in rows:
        acc.setdefault(r.checkpoint, {}).setdefault(r.prompt, []).append((r.reward, word_count(r.response)))
    return {c: {p: (float(np.mean([v[0] for v in vals])), float(np.mean([v[1] for v in vals])))
                for p, vals in prompts.items()} for c, prompts in acc.items()}


def _bias_counts(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """(preferred words, dispreferred words) pairs -> summary with a sign test."""
    n = len(pairs)
    out: dict[str, Any] = {"n_pairs": n, "preferred_words_mean": None, "dispreferred_words_mean": None,
                           "n_preferred_longer": 0, "n_preferred_shorter": 0, "n_equal_length": 0,
                           "preferred_longer_rate": None, "sign_test_p": None}
    if not n:
        return out
    pw = np.array([p[0] for p in pairs])
    dw = np.array([p[1] for p in pairs])
    longer, shorter = int((pw > dw).sum()), int((pw < dw).sum())
    out.update(preferred_words_mean=float(pw.mean()), dispreferred_words_mean=float(dw.mean()),
               n_preferred_longer=longer, n_preferred_shorter=shorter, n_equal_length=n - longer - shorter)
    if longer + shorter:
        out["preferred_longer_rate"] = longer / (longer + shorter)
        out["sign_test_p"] = float(_stats().binomtest(longer, longer + shorter, 0.5).pvalue)
    return out


def length_bias(rows: Sequence[RewardRow]) -> dict[str, Any]:
    """Preferred vs dispreferred word counts per checkpoint pair and pooled, and reward-length correlations."""
    per = _per_prompt(rows)
    ckpts = list(dict.fromkeys(r.checkpoint for r in rows))
    pooled: list[tuple[float, float]] = []
    by_pair = []
    for a, b in combinations(ckpts, 2):
        common = sorted(set(per[a]) & set(per[b]))
        pairs, ties = [], 0
        for p in common:
            (ra, wa), (rb, wb) = per[a][p], per[b][p]
            if ra == rb:
                ties += 1
                continue
            pairs.append((wa, wb) if ra > rb else (wb, wa))
        a_wins = sum(1 for p in common if per[a][p][0] > per[b][p][0])
        by_pair.append({"a": a, "b": b, "n_common_prompts": len(common), "n_reward_ties": ties,
                        "a_preferred_rate": a_wins / (len(common) - ties) if len(common) > ties else None,
                        **_bias_counts(pairs)})
        pooled.extend(pairs)
    words = [word_count(r.response) for r in rows]
    rewards = [r.reward for r in rows]
    per_ckpt = {}
    for c in ckpts:
        sel = [(word_count(r.response), r.reward) for r in rows if r.checkpoint == c]
        per_ckpt[c] = _correlation([s[0] for s in sel], [s[1] for s in sel])
    return {"pairs": by_pair, "pooled": _bias_counts(pooled),
            "correlation": _correlation(words, rewards), "correlation_by_checkpoint": per_ckpt}


def welch_pairs(rows: Sequence[RewardRow], *, conf: float = 0.95) -> list[dict[str, Any]]:
    """Welch's t-test of rewards for every pair of checkpoints, with Holm and BH adjusted p-values."""
    from evalbench.aggregate.stats import adjust, hedges_g, welch_t

    ckpts = list(dict.fromkeys(r.checkpoint for r in rows))
    by = {c: [r.reward for r in rows if r.checkpoint == c] for c in ckpts}
    out = []
    for a, b in combinations(ckpts, 2):
        row: dict[str, Any] = {"a": a, "b": b, "n_a": len(by[a]), "n_b": len(by[b]), "delta": None, "ci_low": None,
                               "ci_high": None, "t": None, "df": None, "p_value": None, "hedges_g": None,
                               "p_holm": None, "p_bh": None, "note": None}
        try:
            res = welch_t(by[a], by[b], conf=conf)
        except InputError as exc:
            row["note"] = str(exc)
        else:
            row.update(delta=res.delta, ci_low=res.ci_low, ci_high=res.ci_high, t=res.statistic, df=res.df,
                       p_value=res.p_value, hedges_g=hedges_g(by[a], by[b]))
        out.append(row)
    tested = [r for r in out if r["p_value"] is not None]
    if tested:
        pv = [r["p_value"] for r in tested]
        for r, h, q in zip(tested, adjust(pv, "holm"), adjust(pv, "bh")):
            r["p_holm"], r["p_bh"] = h, q
    return out


def tfidf_keywords(docs: Mapping[str, Sequence[str]], *, top_k: int = 10) -> dict[str, list[tuple[str, float]]]:
    """Top-k TF-IDF terms per checkpoint; each checkpoint's responses form one document.

    scikit-learn defaults (smooth idf, l2 norm) with English stop words and lower-casing; ties are
    broken alphabetically. A checkpoint without any non-stop-word term gets an empty list.
    """
    require("sklearn", "eval")
    from sklearn.feature_extraction.text import TfidfVectorizer

    names = list(docs)
    texts = ["\n".join(docs[n]) for n in names]
    vec = TfidfVectorizer(stop_words="english", lowercase=True)
    try:
        mat = vec.fit_transform(texts)
    except ValueError:  # empty vocabulary: only stop words or no text at all
        return {n: [] for n in names}
    terms = vec.get_feature_names_out()
    out = {}
    for i, n in enumerate(names):
        row = mat.getrow(i).toarray().ravel()
        idx = [j for j in np.flatnonzero(row > 0)]
        idx.sort(key=lambda j: (-row[j], terms[j]))
        out[n] = [(str(terms[j]), float(row[j])) for j in idx[:top_k]]
    return out


def analyze_rewards(rows: Sequence[RewardRow], *, top_k: int = 10, conf: float = 0.95) -> dict[str, Any]:
    """All analyses of the module doc, as one JSON-serialisable dict."""
    if not rows:
        raise InputError("no reward rows to analyse")
    ckpts = list(dict.fromkeys(r.checkpoint for r in rows))
    summary = []
    for c in ckpts:
        sel = [r for r in rows if r.checkpoint == c]
        rewards = [r.reward for r in sel]
        words = [word_count(r.response) for r in sel]
        grades = [g for r in sel if (g := flesch_kincaid_grade(r.response)) is not None]
        d, w, g = _describe(rewards), _describe(words), _describe(grades)
        summary.append({"checkpoint": c, "n": len(sel), "n_prompts": len({r.prompt for r in sel}),
                        "reward_mean": d["mean"], "reward_std": d["std"], "reward_median": d["median"],
                        "words_mean": w["mean"], "words_std": w["std"],
                        "fk_grade_mean": g["mean"], "fk_grade_std": g["std"], "n_graded": len(grades)})
    notes = []
    if len(ckpts) < 2:
        notes.append("one checkpoint: no between-checkpoint tests or length-bias pairs")
    return {"checkpoints": summary, "welch": welch_pairs(rows, conf=conf), "length_bias": length_bias(rows),
            "keywords": {c: [[t, s] for t, s in kws] for c, kws in
                         tfidf_keywords({c: [r.response for r in rows if r.checkpoint == c] for c in ckpts},
                                        top_k=top_k).items()},
            "readability": {"measure": "flesch_kincaid_grade", "syllables": "vowel-group heuristic "
                            "(evalbench.report.reward_analysis.count_syllables)"},
            "conf": conf, "notes": notes}


# ---------------------------------------------------------------------------------------------
# chosen vs rejected (rows of `evalbench reward score --pairs`)


def is_pairs_file(path: str | Path) -> bool:
    """Whether a scores file holds chosen/rejected pairs (`reward score --pairs` output)."""
    for _, obj in iter_jsonl(path):
        return "reward_chosen" in obj and "reward_rejected" in obj
    return False


def load_reward_pairs(path: str | Path) -> tuple[list[tuple[float, float]], int]:
    """((chosen reward, rejected reward) per scored pair, number of unscored pairs); errors name the
    file, line and field. Pairs the reward model could not score (null rewards) are counted, never
    analysed as if scored."""
    pairs, unscored = [], 0
    for lineno, obj in iter_jsonl(path):
        values = []
        for key in ("reward_chosen", "reward_rejected"):
            if key not in obj:
                raise InputError("missing field", path=path, line=lineno, field=key)
            v = obj[key]
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float))
                                  or not math.isfinite(float(v))):
                raise InputError(f"reward must be a finite number or null, got {v!r}", path=path, line=lineno,
                                 field=key)
            values.append(v)
        if None in values:
            unscored += 1
            continue
        pairs.append((float(values[0]), float(values[1])))
    if not pairs:
        raise InputError("no scored pairs", path=path)
    return pairs, unscored


def analyze_pairs(pairs: Sequence[tuple[float, float]], *, conf: float = 0.95,
                  n_unscored: int = 0) -> dict[str, Any]:
    """Pairwise accuracy and a paired chosen-vs-rejected test for a reward model on preference pairs.

    Pairwise accuracy = share of pairs with reward(chosen) > reward(rejected) (ties counted apart).
    The test is paired (both rewards score the same prompt): the paired t-test on the margins, its
    CI, and the Wilcoxon signed-rank test, which does not assume normal margins. A Welch test of the
    two reward distributions would ignore the pairing and understate the evidence.
    """
    st = _stats()
    chosen = np.array([c for c, _ in pairs])
    rejected = np.array([r for _, r in pairs])
    margins = chosen - rejected
    n = int(margins.size)
    out: dict[str, Any] = {"n_pairs": n, "n_unscored": int(n_unscored),
                           "pairwise_accuracy": float(np.mean(margins > 0)), "ties": int(np.sum(margins == 0)),
                           "margin": _describe(margins.tolist()), "chosen": _describe(chosen.tolist()),
                           "rejected": _describe(rejected.tolist()), "conf": conf}
    if n >= 2 and float(margins.std()) > 0:
        t = st.ttest_rel(chosen, rejected)
        ci = t.confidence_interval(confidence_level=conf)
        out["paired_t"] = {"t": float(t.statistic), "df": float(t.df), "p_value": float(t.pvalue),
                           "margin_ci_low": float(ci.low), "margin_ci_high": float(ci.high)}
        w = st.wilcoxon(chosen, rejected)
        out["wilcoxon"] = {"statistic": float(w.statistic), "p_value": float(w.pvalue)}
    else:
        out["note"] = "fewer than 2 pairs or constant margins: no paired test"
    return out


def pairs_to_markdown(result: Mapping[str, Any]) -> str:
    unscored = f" ({result['n_unscored']} unscored, left out)" if result.get("n_unscored") else ""
    margin, chosen, rejected = result["margin"], result["chosen"], result["rejected"]
    lines = ["# Reward model on preference pairs", "",
             f"- pairs scored: {result['n_pairs']}{unscored}",
             f"- pairwise accuracy (chosen > rejected): {100 * result['pairwise_accuracy']:.1f} % ({result['ties']} ties)",
             f"- margin (chosen − rejected): mean {_f(margin['mean'])}, std {_f(margin['std'])}",
             (f"- chosen reward: mean {_f(chosen['mean'])}, std {_f(chosen['std'])}; "
              f"rejected: mean {_f(rejected['mean'])}, std {_f(rejected['std'])}")]
    if "paired_t" in result:
        t, w = result["paired_t"], result["wilcoxon"]
        lines += [(f"- paired t-test: t = {t['t']:.3g}, df = {t['df']:.0f}, p = {t['p_value']:.3g}; "
                   f"{100 * result['conf']:.0f} % CI of the mean margin [{t['margin_ci_low']:.3g}, "
                   f"{t['margin_ci_high']:.3g}]"),
                  f"- Wilcoxon signed-rank: W = {w['statistic']:.3g}, p = {w['p_value']:.3g}"]
    elif result.get("note"):
        lines.append(f"- {result['note']}")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# rendering


def _f(x: Any, fmt: str = ".3g") -> str:
    return "—" if x is None else format(x, fmt)


def to_markdown(result: Mapping[str, Any]) -> str:
    lines = ["# Reward-model analysis", "", "## Checkpoints", "",
             "| checkpoint | n | reward mean (std) | median | words mean (std) | FK grade mean (std) |",
             "|---|---|---|---|---|---|"]
    for c in result["checkpoints"]:
        lines.append(f"| {c['checkpoint']} | {c['n']} | {_f(c['reward_mean'])} ({_f(c['reward_std'])}) | "
                     f"{_f(c['reward_median'])} | {_f(c['words_mean'])} ({_f(c['words_std'])}) | "
                     f"{_f(c['fk_grade_mean'])} ({_f(c['fk_grade_std'])}) |")
    if result["welch"]:
        lines += ["", "## Reward differences (Welch's t-test)", "",
                  "| a | b | Δ mean (a − b) | CI | t | df | p | p Holm | p BH | Hedges' g |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        for w in result["welch"]:
            lines.append(f"| {w['a']} | {w['b']} | {_f(w['delta'])} | [{_f(w['ci_low'])}, {_f(w['ci_high'])}] | "
                         f"{_f(w['t'])} | {_f(w['df'])} | {_f(w['p_value'])} | {_f(w['p_holm'])} | "
                         f"{_f(w['p_bh'])} | {_f(w['hedges_g'])} |")
    lb = result["length_bias"]
    lines += ["", "## Length bias", "",
              "Preferred = the higher-reward response when two checkpoints answer the same prompt.", "",
              "| pair | prompts | preferred words | dispreferred words | preferred longer | sign-test p |",
              "|---|---|---|---|---|---|"]
    for p in [*lb["pairs"], {"a": "all pairs", "b": None, "n_common_prompts": lb["pooled"]["n_pairs"],
                             **lb["pooled"]}]:
        name = p["a"] if p["b"] is None else f"{p['a']} vs {p['b']}"
        lines.append(f"| {name} | {p['n_common_prompts']} | {_f(p['preferred_words_mean'])} | "
                     f"{_f(p['dispreferred_words_mean'])} | {_f(p['preferred_longer_rate'], '.1%')} | "
                     f"{_f(p['sign_test_p'])} |")
    c = lb["correlation"]
    lines += ["", f"Reward vs word count over all responses: Pearson r = {_f(c['pearson_r'])} (p {_f(c['pearson_p'])}), "
              f"Spearman ρ = {_f(c['spearman_rho'])} (p {_f(c['spearman_p'])}), n = {c['n']}"
              + (f" ({c['note']})" if c.get("note") else "") + "."]
    lines += ["", "## Top TF-IDF keywords", ""]
    for ck, kws in result["keywords"].items():
        lines.append(f"- **{ck}**: " + (", ".join(f"{t} ({s:.2f})" for t, s in kws) or "—"))
    for n in result.get("notes", []):
        lines += ["", f"_{n}_"]
    return "\n".join(lines) + "\n"


def write_outputs(rows: Sequence[RewardRow], result: Mapping[str, Any], out_dir: str | Path) -> list[Path]:
    """`rewards_analysis.json`, `rewards_analysis.md` and two PNGs (reward KDE, reward vs words)."""
    import json

    from evalbench.io import write_text_atomic
    from evalbench.report import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    jp, mp = out / "rewards_analysis.json", out / "rewards_analysis.md"
    write_text_atomic(jp, json.dumps(result, indent=2) + "\n")
    paths.append(jp)
    ckpts = list(dict.fromkeys(r.checkpoint for r in rows))
    rewards = {c: [r.reward for r in rows if r.checkpoint == c] for c in ckpts}
    words = {c: [word_count(r.response) for r in rows if r.checkpoint == c] for c in ckpts}
    images = [plots.score_distributions(rewards, out / "reward_distributions.png", title="reward by checkpoint",
                                        xlabel="reward"),
              plots.scatter(words, rewards, out / "reward_vs_words.png", xlabel="words", ylabel="reward",
                            title="reward vs response length")]
    md = to_markdown(result) + "".join(f"\n![{p.stem}]({p.name})\n" for p in images if p)
    write_text_atomic(mp, md)
    paths.append(mp)
    paths += [p for p in images if p]
    return paths


def write_pair_outputs(pairs: Sequence[tuple[float, float]], result: Mapping[str, Any],
                       out_dir: str | Path) -> list[Path]:
    """`pairs_analysis.json`, `pairs_analysis.md` and the chosen-vs-rejected reward distributions."""
    import json

    from evalbench.io import write_text_atomic
    from evalbench.report import plots

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    jp, mp = out / "pairs_analysis.json", out / "pairs_analysis.md"
    write_text_atomic(jp, json.dumps(result, indent=2) + "\n")
    image = plots.score_distributions({"chosen": [c for c, _ in pairs], "rejected": [r for _, r in pairs]},
                                      out / "chosen_vs_rejected.png", title="reward of chosen vs rejected",
                                      xlabel="reward")
    write_text_atomic(mp, pairs_to_markdown(result) + (f"\n![{image.stem}]({image.name})\n" if image else ""))
    return [jp, mp] + ([image] if image else [])


__all__ = [
    "RewardRow",
    "analyze_pairs",
    "analyze_rewards",
    "count_syllables",
    "flesch_kincaid_grade",
    "is_pairs_file",
    "length_bias",
    "load_reward_pairs",
    "load_reward_scores",
    "pairs_to_markdown",
    "tfidf_keywords",
    "to_markdown",
    "welch_pairs",
    "word_count",
    "write_outputs",
    "write_pair_outputs",
]
