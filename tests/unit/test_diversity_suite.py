"""The diversity suite: prompt selection and files, generation requests, per-prompt records, summaries.

Model calls go to `evalbench.serve.stub.StubServer` through the real `openai` client with scripted
samples; embeddings come from a tiny lookup embedder whose cosines are computed by hand below (one
test uses the real bundled all-MiniLM-L6-v2, offline). The metric functions themselves are tested in
test_diversity.py.
"""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError

from evalbench.api import RecordSink
from evalbench.aggregate.stats import paired_bootstrap
from evalbench.cache import Cache
from evalbench.config import load_spec, validate_spec
from evalbench.errors import EvalbenchError, InputError
from evalbench.generate.backend import CachedBackend
from evalbench.generate.client import OpenAICompatibleBackend
from evalbench.io import sha256_dir, stable_hash
from evalbench.serve.stub import Fault, StubServer, StubState
from evalbench.store import GenerationRecord, ResultsStore, SampleRecord
from evalbench.suites.base import SUITES, Checkpoint, SuiteContext
from evalbench.suites.diversity import (
    Diversity,
    DiversityOptions,
    aid_diversity_resampler,
    aid_similarity_resampler,
    decode_embedding,
    read_prompt_file,
    request_seed,
    select_prompts,
    summarize_samples,
)

REPO = Path(__file__).resolve().parents[2]
# Summary metrics that are plain means of per-prompt scores (the keys of SampleRecord.scores); AID, a
# U-statistic over prompt pairs, keeps its per-prompt pieces in `data` (see AID_METRICS).
METRICS = ["pid_similarity", "pid_diversity", "distinct_1", "distinct_2",
           "self_bleu", "entropy", "entropy_per_token"]


class LookupEmbedder:
    """Scripted embeddings: exact vectors for known texts, so cosines are hand-computable."""

    VECTORS = {"x y": [1.0, 0.0], "z w": [0.0, 1.0], "x y z": [1.0, 1.0], "w": [1.0, 1.0]}

    def __init__(self):
        self.calls: list[list[str]] = []

    def encode(self, texts):
        self.calls.append(list(texts))
        return np.asarray([self.VECTORS[t] for t in texts], dtype=np.float32)

    def provenance(self):
        return {"name": "lookup", "content_hash": "0" * 64, "path": "<memory>"}


def _write_jsonl(path: Path, rows) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


# Prompt -> the K=3 scripted samples the stub returns for it (one per choice).
SCRIPT = {
    "alpha": ["x y", "x y", "x y"],   # identical samples
    "beta": ["z w", "x y", "  "],     # one empty output
    "gamma": ["", " ", ""],           # all empty
    "delta": ["x y z", "x y z", "x y z"],
    "eps": ["x y", "x y", "x y"],     # answered with a client error (fault), see _run_stub
}
LOGPROB = -2.0  # the stub's single token log-prob per choice


def _prompt_file(tmp_path: Path) -> Path:
    return _write_jsonl(tmp_path / "prompts.jsonl", [{"id": k, "prompt": k} for k in SCRIPT])


def _checkpoint(stub: StubServer, cache: Cache, name: str = "m") -> Checkpoint:
    backend = OpenAICompatibleBackend(stub.base_url, name, api_key="x", max_concurrency=1, max_retries=0)
    return Checkpoint(name=name, backend=CachedBackend(backend, cache), base_model=name)


def _state(fault_at: int | None = None) -> StubState:
    return StubState(responder=lambda body: SCRIPT[body["messages"][-1]["content"]],
                     top_logprobs=lambda body: [("t", LOGPROB)],
                     faults=[Fault(at=fault_at, status=400)] if fault_at else [])


def _run(tmp_path):
    return ResultsStore(tmp_path / "results").start({"test": "diversity"}, "h" * 64, run_id="r1")


# --------------------------------------------------------------------------- options and yaml


def test_k_below_two_is_refused_with_a_clear_message():
    with pytest.raises(ValidationError, match="k must be at least 2"):
        DiversityOptions(k=1)
    with pytest.raises(InputError) as err:
        validate_spec(DiversityOptions, {"k": 1}, source="benchmarks/diversity.yaml")
    assert str(err.value).startswith("benchmarks/diversity.yaml: k: ")
    assert "one sample has no pair" in str(err.value)
    with pytest.raises(InputError, match="unknown key; did you mean 'k'"):
        validate_spec(DiversityOptions, {"kk": 3})
    with pytest.raises(InputError, match="ngram_orders"):
        validate_spec(DiversityOptions, {"ngram_orders": [0, 2]})


def test_benchmark_yaml_documents_exactly_the_defaults():
    opts = load_spec(DiversityOptions, REPO / "benchmarks" / "diversity.yaml")
    assert opts == DiversityOptions()
    assert (opts.k, opts.temperature, opts.n_prompts, opts.prompts) == (5, 1.0, 160, "alpaca")
    assert SUITES.get("diversity") is Diversity and Diversity.name == "diversity"


# --------------------------------------------------------------------------- prompt sets


def test_default_prompts_are_160_alpaca_instructions_drawn_with_the_seed(data_dir):
    rows = json.loads((data_dir / "alpaca_eval/gpt4_1106_preview/model_outputs.json").read_text())
    suite = Diversity()
    chosen = suite.prompts()
    want = sorted(random.Random(42).sample(range(805), 160))
    assert [p.id for p in chosen] == [str(i) for i in want]
    assert [p.text for p in chosen] == [rows[i]["instruction"] for i in want]
    assert [p.id for p in Diversity(DiversityOptions(prompt_seed=7)).prompts()] != [p.id for p in chosen]
    assert len(Diversity(DiversityOptions(n_prompts=None)).prompts()) == 805
    assert [p.id for p in suite.prompts(limit=3)] == [str(i) for i in want[:3]]
    prov = suite.provenance()["prompts"]
    assert (prov["source"], prov["n_available"], prov["n_selected"], prov["prompt_seed"]) == \
           ("alpaca", 805, 160, 42)
    assert suite.data_files()[0].name == "model_outputs.json"


def test_mtbench_prompts_are_the_first_turns(data_dir):
    questions = [json.loads(line) for line in (data_dir / "mt_bench/question.jsonl").read_text().splitlines()
                 if line.strip()]
    suite = Diversity(DiversityOptions(prompts="mtbench", n_prompts=None))
    chosen = suite.prompts()
    assert [(p.id, p.text) for p in chosen] == [(str(q["question_id"]), q["turns"][0]) for q in questions]
    # n_prompts larger than the set keeps all 80 in file order
    assert [p.id for p in Diversity(DiversityOptions(prompts="mtbench")).prompts()] == [p.id for p in chosen]


def test_prompt_files_jsonl_json_and_text(tmp_path):
    jl = _write_jsonl(tmp_path / "p.jsonl", [{"prompt": "one"}, {"instruction": "two", "id": 7},
                                             {"prompt": "three", "instruction": "ignored"}])
    assert [(p.id, p.text) for p in read_prompt_file(jl).prompts] == \
           [("1", "one"), ("7", "two"), ("3", "three")]
    js = tmp_path / "p.json"
    js.write_text(json.dumps([{"instruction": "a", "output": "x", "generator": "g"}, {"instruction": "b"}]))
    assert [(p.id, p.text) for p in read_prompt_file(js).prompts] == [("0", "a"), ("1", "b")]
    txt = tmp_path / "p.txt"
    txt.write_text("first prompt\n\n   \nsecond prompt  \n", encoding="utf-8")
    assert [(p.id, p.text) for p in read_prompt_file(txt).prompts] == [("1", "first prompt"),
                                                                       ("4", "second prompt  ")]
    suite = Diversity(DiversityOptions(prompts=str(txt)))
    assert [p.id for p in suite.prompts()] == ["1", "4"] and suite.data_files()[0] == txt


@pytest.mark.parametrize("rows, line, field, message", [
    ([{"prompt": "ok"}, {"text": "no prompt"}], 2, "prompt", "expected a 'prompt' or 'instruction'"),
    ([{"prompt": 3}], 1, "prompt", "must be a string"),
    ([{"instruction": "  "}], 1, "instruction", "is empty"),
    ([{"prompt": "a", "id": "x"}, {"prompt": "b", "id": "x"}], 2, "id", "duplicate prompt id 'x'"),
    ([{"prompt": "a", "id": True}], 1, "id", "non-empty string or an integer"),
])
def test_bad_prompt_file_names_file_line_and_field(tmp_path, rows, line, field, message):
    path = _write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(InputError) as err:
        read_prompt_file(path)
    assert (err.value.path, err.value.line, err.value.field) == (str(path), line, field)
    assert message in str(err.value) and str(err.value).startswith(f"{path}:{line} [{field}]")


def test_missing_empty_and_too_small_prompt_sources(tmp_path):
    with pytest.raises(InputError, match="prompt file not found.*alpaca, mtbench"):
        Diversity(DiversityOptions(prompts=str(tmp_path / "nope.jsonl"))).prompts()
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(InputError, match="holds no prompts"):
        read_prompt_file(tmp_path / "empty.txt")
    (tmp_path / "one.txt").write_text("only one\n")
    with pytest.raises(InputError, match="at least 2 prompts"):
        Diversity(DiversityOptions(prompts=str(tmp_path / "one.txt"))).prompts()


def test_select_prompts_is_sorted_and_reproducible():
    items = list(range(50))
    a = select_prompts(items, 10, 3)
    assert a == select_prompts(items, 10, 3) == sorted(a) and len(set(a)) == 10
    assert select_prompts(items, None, 3) == items == select_prompts(items, 99, 3)


# --------------------------------------------------------------------------- generate


def test_generate_sends_one_request_per_prompt_with_n_k_logprobs_and_stable_seeds(tmp_path):
    suite = Diversity(DiversityOptions(prompts=str(_prompt_file(tmp_path)), k=3, max_tokens=16),
                      embedder=LookupEmbedder())
    run = _run(tmp_path)
    with StubServer(models=("m",), state=_state()) as stub:
        ckpt = _checkpoint(stub, Cache(tmp_path / "c.sqlite"))
        records = suite.generate(SuiteContext(), ckpt, seed=5)
        bodies = list(stub.state.requests)
    assert len(bodies) == len(SCRIPT)  # one request per prompt, not K
    by_prompt = {b["messages"][-1]["content"]: b for b in bodies}
    assert set(by_prompt) == set(SCRIPT)
    for pid, body in by_prompt.items():
        assert (body["n"], body["logprobs"], body["temperature"], body["top_p"], body["max_tokens"]) == \
               (3, True, 1.0, 1.0, 16)
        assert body["seed"] == stable_hash(5, pid) % 2**31 == request_seed(5, pid)
    assert len({b["seed"] for b in bodies}) == len(SCRIPT)
    assert request_seed(6, "alpha") != request_seed(5, "alpha")
    assert [r.sample_id for r in records] == list(SCRIPT)
    rec = records[0]
    assert rec.outputs == SCRIPT["alpha"]
    assert rec.logprob_sums == [LOGPROB] * 3 and rec.token_counts == [1, 1, 1]
    assert rec.sampling["n"] == 3 and rec.cache_key
    RecordSink(run).add_generations(records)  # what the driver does with the returned records
    assert [r.sample_id for r in run.generations()] == list(SCRIPT)


def test_one_request_per_sample_mode_uses_k_seeds(tmp_path):
    suite = Diversity(DiversityOptions(prompts=str(_prompt_file(tmp_path)), k=3, one_request_per_sample=True),
                      embedder=LookupEmbedder())
    state = _state()
    counter: dict[str, int] = {}

    def responder(body):  # the j-th request of a prompt answers with its j-th scripted sample
        prompt = body["messages"][-1]["content"]
        j = [request_seed(0, prompt, i) for i in range(3)].index(body["seed"])
        counter[prompt] = counter.get(prompt, 0) + 1
        return SCRIPT[prompt][j]

    state.responder = responder
    with StubServer(models=("m",), state=state) as stub:
        records = suite.generate(SuiteContext(), _checkpoint(stub, None), seed=0)
        bodies = list(stub.state.requests)
    assert len(bodies) == 3 * len(SCRIPT) and all(b["n"] == 1 for b in bodies)
    assert counter == {p: 3 for p in SCRIPT}
    assert [r.outputs for r in records] == list(SCRIPT.values())
    assert records[0].sampling["seeds"] == [request_seed(0, "alpha", j) for j in range(3)]


def test_rerun_makes_zero_model_calls(tmp_path):
    opts = DiversityOptions(prompts=str(_prompt_file(tmp_path)), k=3)
    cache = Cache(tmp_path / "c.sqlite")
    with StubServer(models=("m",), state=_state()) as stub:
        first = Diversity(opts, embedder=LookupEmbedder()).generate(SuiteContext(),
                                                                    _checkpoint(stub, cache), 1)
        n = stub.request_count
        ckpt = _checkpoint(stub, cache)
        again = Diversity(opts, embedder=LookupEmbedder()).generate(SuiteContext(), ckpt, 1)
        assert stub.request_count == n and ckpt.backend.inner.calls == 0 and ckpt.backend.hits == len(SCRIPT)
    assert [r.outputs for r in again] == [r.outputs for r in first]


# --------------------------------------------------------------------------- score and summarize


def test_score_per_prompt_records_exclusions_and_summary_by_hand(tmp_path):
    embedder = LookupEmbedder()
    suite = Diversity(DiversityOptions(prompts=str(_prompt_file(tmp_path)), k=3), embedder=embedder)
    run = _run(tmp_path)
    ctx = SuiteContext()
    # Request 5 (with max_concurrency=1, the 5th prompt's) gets a client error: a failed generation.
    with StubServer(models=("m",), state=_state(fault_at=5)) as stub:
        ckpt = _checkpoint(stub, Cache(tmp_path / "c.sqlite"))
        gens = suite.generate(ctx, ckpt, seed=0)
        failed_prompt = stub.state.requests[4]["messages"][-1]["content"]
    assert failed_prompt == "eps" and "HTTP 400" in gens[4].error
    records = suite.score(ctx, ckpt, 0, gens)
    by = {r.sample_id: r for r in records}
    assert [r.sample_id for r in records] == list(SCRIPT)
    assert all(list(r.scores) == METRICS for r in records)  # keyed exactly like the plain-mean metrics

    # The embedder saw each non-empty output once, in one batch.
    assert embedder.calls == [["x y", "x y", "x y", "z w", "x y", "x y z", "x y z", "x y z"]]

    # alpha: 3 identical samples -> PID 1; distinct-1 = 2 unique / 6 unigrams; distinct-2 = 1 / 3 bigrams.
    a = by["alpha"].scores
    assert a["pid_similarity"] == pytest.approx(1.0) and a["pid_diversity"] == pytest.approx(0.0)
    assert a["distinct_1"] == pytest.approx(2 / 6) and a["distinct_2"] == pytest.approx(1 / 3)
    assert a["self_bleu"] == pytest.approx(100.0)
    # beta: the whitespace output is dropped; "z w" . "x y" = 0 -> PID 0; 4 unique of 4 unigrams.
    b = by["beta"].scores
    assert b["pid_similarity"] == pytest.approx(0.0) and b["distinct_1"] == pytest.approx(1.0)
    assert b["self_bleu"] == pytest.approx(0.0)
    assert by["beta"].error is None
    assert by["beta"].data["n_empty_outputs"] == 1 and by["beta"].data["n_outputs"] == 3
    # Entropy: each kept sample is one token of log-prob -2 -> 2 nats per sample and per token.
    for pid in ("alpha", "beta", "delta"):
        assert by[pid].scores["entropy"] == pytest.approx(2.0)
        assert by[pid].scores["entropy_per_token"] == pytest.approx(2.0)
    # AID over first non-empty samples: alpha [1,0], beta [0,1], delta [1,1]/sqrt2.
    # cos: alpha-beta 0, alpha-delta = beta-delta = 1/sqrt2.
    # Row means: alpha and beta 1/(2 sqrt2); delta 1/sqrt2.
    # They are in data, not scores (not independent across prompts), with each prompt's unit embedding.
    r = 1 / math.sqrt(2)
    aid = {pid: by[pid].data["aid_row_mean"] for pid in ("alpha", "beta", "delta")}
    assert aid == pytest.approx({"alpha": r / 2, "beta": r / 2, "delta": r})
    assert all("aid_similarity" not in x.scores and "aid_diversity" not in x.scores for x in records)
    assert decode_embedding(by["delta"].data["aid_embedding"]) == pytest.approx([r, r], abs=1e-7)
    assert decode_embedding(by["beta"].data["aid_embedding"]) == pytest.approx([0.0, 1.0])  # the first non-empty
    assert "aid_row_mean" not in by["gamma"].data and "aid_row_mean" not in by["eps"].data

    # gamma (all empty) and eps (failed) have no scores and say why.
    assert set(by["gamma"].scores.values()) == {None} and by["gamma"].error == "all 3 outputs are empty"
    assert set(by["eps"].scores.values()) == {None}
    assert by["eps"].error.startswith("generation failed: HTTP 400")
    assert by["alpha"].data["embedder"] == "lookup" and by["alpha"].data["embedder_sha256"] == "0" * 64

    summary = suite.summarize(records)
    # PID = mean(1, 0, 1); AID = mean of pair cosines (0 + r + r) / 3, which the row means average to.
    assert summary["pid_similarity"] == pytest.approx(2 / 3)
    assert summary["pid_diversity"] == pytest.approx(1 / 3)
    assert summary["aid_similarity"] == pytest.approx(2 * r / 3)
    assert summary["aid_diversity"] == pytest.approx(1 - 2 * r / 3)
    assert summary["entropy"] == pytest.approx(2.0)
    for m in METRICS:  # every summary metric is the mean of the per-prompt scores of that name
        vals = [x.scores[m] for x in records if x.scores[m] is not None]
        assert summary[m] == pytest.approx(np.mean(vals))
    counts = ("n_prompts", "n_failed", "n_outputs", "n_empty_outputs")
    assert [summary[c] for c in counts] == [5, 2, 12, 4]
    # AID recomputed under prompt weights from the records: ones give AID; dropping delta leaves the
    # alpha-beta pair (cosine 0); drawing alpha twice adds no alpha-alpha pair.
    ids = list(SCRIPT)
    w = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 1], [2, 0, 0, 1, 0], [1, 0, 0, 0, 0]], dtype=float)
    sim = aid_similarity_resampler(records, ids, w)
    assert sim[:3] == pytest.approx([2 * r / 3, 0.0, r], abs=1e-6) and np.isnan(sim[3])
    assert aid_diversity_resampler(records, ids, w[:1]) == pytest.approx([1 - 2 * r / 3])
    RecordSink(run).add_samples(records)  # what the driver does with the returned records
    assert [s.sample_id for s in run.samples()] == list(SCRIPT)


def _record(pid, outputs, sums=None, counts=None, *, checkpoint="m", seed=0, error=None):
    return GenerationRecord(suite="diversity", checkpoint=checkpoint, seed=seed, sample_id=pid, request={},
                            sampling={}, outputs=outputs, logprob_sums=sums, token_counts=counts, error=error)


def _offline_suite(tmp_path, **opts):
    path = tmp_path / "p.txt"
    path.write_text("p one\np two\np three\n")
    return Diversity(DiversityOptions(prompts=str(path), k=2, **opts), embedder=LookupEmbedder())


def test_entropy_from_logprob_sums_and_missing_logprobs(tmp_path):
    suite = _offline_suite(tmp_path)
    ckpt = Checkpoint(name="m", backend=None, base_model="m")  # score makes no model call
    gens = [_record("1", ["x y", "z w"], [-4.0, -6.0], [2, 4]),
            _record("2", ["x y", "w"], None, None),              # the endpoint gave no log-probs
            _record("3", ["x y", ""], [-3.0, -1.0], [3, 1])]      # the empty output is not counted
    recs = {r.sample_id: r for r in suite.score(SuiteContext(), ckpt, 0, gens)}
    # prompt 1: nats = mean(4, 6) = 5; per token = (4 + 6) / (2 + 4)
    assert recs["1"].scores["entropy"] == pytest.approx(5.0)
    assert recs["1"].scores["entropy_per_token"] == pytest.approx(10 / 6)
    assert recs["2"].scores["entropy"] is None and "no token log-probs" in recs["2"].data["entropy_error"]
    assert recs["2"].scores["pid_similarity"] == pytest.approx(1 / math.sqrt(2))  # [1,0] . [1,1]/sqrt2
    assert recs["3"].scores["entropy"] == pytest.approx(3.0) and recs["3"].scores["entropy_per_token"] == 1.0
    # prompt 3 keeps one sample: no pairwise metric, recorded as excluded (not an error)
    assert recs["3"].scores["pid_similarity"] is None and recs["3"].error is None
    assert "pid_similarity" in recs["3"].data["excluded"]
    summary = suite.summarize(list(recs.values()))
    assert summary["entropy"] == pytest.approx(4.0)  # mean(5, 3): prompt 2 has none


def test_endpoint_ignoring_n_is_a_clear_error(tmp_path):
    suite = _offline_suite(tmp_path)
    gens = [_record(str(i), ["x y"]) for i in (1, 2, 3)]
    with pytest.raises(EvalbenchError, match="ignores `n`: set one_request_per_sample: true"):
        suite.score(SuiteContext(), Checkpoint("m", None, "m"), 0, gens)


def test_score_rejects_foreign_or_unknown_records_and_counts_missing_prompts(tmp_path):
    suite = _offline_suite(tmp_path)
    ckpt = Checkpoint("m", None, "m")
    with pytest.raises(InputError, match="prompt id '9'.*not among the 3 selected"):
        suite.score(SuiteContext(), ckpt, 0, [_record("9", ["x y", "x y"])])
    with pytest.raises(InputError,
                       match=r"\(diversity, other, seed 0\) given to score \(diversity, m, seed 0\)"):
        suite.score(SuiteContext(), ckpt, 0, [_record("1", ["x y", "x y"], checkpoint="other")])
    recs = suite.score(SuiteContext(), ckpt, 0,
                       [_record("1", ["x y", "z w"]), _record("2", ["x y", "w"])])
    assert recs[2].error == "no generation for this prompt" and set(recs[2].scores.values()) == {None}
    assert suite.summarize(recs)["n_failed"] == 1


def test_summarize_is_pure_and_refuses_mixed_units():
    recs = [SampleRecord(suite="diversity", checkpoint="m", seed=0, sample_id=str(i),
                         scores={"pid_similarity": v, "self_bleu": None},
                         data={"n_outputs": 5, "n_empty_outputs": 0})
            for i, v in enumerate([0.2, 0.4, None])]
    out = summarize_samples(recs, ["pid_similarity", "self_bleu", "entropy"])
    assert out["pid_similarity"] == pytest.approx(0.3) and out["self_bleu"] is None and out["entropy"] is None
    assert (out["n_prompts"], out["n_outputs"], out["n_failed"]) == (3, 15, 0)
    other = recs[0].model_copy(update={"seed": 1})
    with pytest.raises(InputError, match="one suite x checkpoint x seed at a time"):
        summarize_samples(recs + [other])
    with pytest.raises(InputError, match="not diversity records"):
        summarize_samples([recs[0].model_copy(update={"suite": "alpaca"})])


def test_per_prompt_scores_support_paired_tests_between_checkpoints(tmp_path):
    suite = _offline_suite(tmp_path, logprobs=False, self_bleu=False)
    gens_a = [_record(str(i), ["x y", "x y"], checkpoint="a") for i in (1, 2, 3)]
    gens_b = [_record(str(i), o, checkpoint="b") for i, o in zip((1, 2, 3), (["x y", "z w"], ["x y", "w"],
                                                                            ["x y", "x y"]))]
    ra = suite.score(SuiteContext(), Checkpoint("a", None, "a"), 0, gens_a)
    rb = suite.score(SuiteContext(), Checkpoint("b", None, "b"), 0, gens_b)
    key = "pid_similarity"
    test = paired_bootstrap({r.sample_id: r.scores[key] for r in ra},
                            {r.sample_id: r.scores[key] for r in rb}, iters=2000)
    # The paired delta is exactly the difference of the two summaries (same prompts on both sides).
    assert test.delta == pytest.approx(suite.summarize(ra)[key] - suite.summarize(rb)[key])
    assert test.delta == pytest.approx(1 - (0 + 1 / math.sqrt(2) + 1) / 3)


# --------------------------------------------------------------------------- the real embedder


def test_default_embedder_loads_offline_and_is_recorded(tmp_path):
    import os

    assert os.environ.get("HF_HUB_OFFLINE") == "1"  # tests/conftest.py: any download would fail
    path = tmp_path / "p.txt"
    path.write_text("guitar\nmarket\n")
    suite = Diversity(DiversityOptions(prompts=str(path), k=3, logprobs=False, self_bleu=False))
    gens = [_record("1", ["A man is playing a guitar.", "Someone plays the guitar.",
                          "A person is strumming a guitar."]),
            _record("2", ["A man is playing a guitar.", "The stock market fell sharply today.",
                          "Bake the bread for forty minutes."])]
    recs = suite.score(SuiteContext(), Checkpoint("m", None, "m"), 0, gens)
    assert recs[0].scores["pid_similarity"] > recs[1].scores["pid_similarity"] + 0.3  # paraphrases are closer
    emb = suite.embedder
    assert suite.embedder is emb  # loaded once per suite instance
    assert recs[0].data["embedder"] == "all-MiniLM-L6-v2"
    assert recs[0].data["embedder_sha256"] == sha256_dir(emb.path)
    assert suite.provenance()["embedder"]["content_hash"] == sha256_dir(emb.path)
    assert any(p.name == "model.safetensors" for p in suite.data_files())


def test_importing_the_suite_is_light():
    code = ("import sys, evalbench.suites.diversity; "
            "print(sorted(m for m in ('torch', 'sentence_transformers', 'pandas', 'sklearn', 'vllm', "
            "'sacrebleu') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
