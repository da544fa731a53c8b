"""The reward suite and its reward sources, on the in-package FakeBackend (no HTTP, no model server).

VADER is checked against its closed form (compound = x / sqrt(x^2 + 15) over the lexicon valences);
the Hugging Face classifier source against a tiny randomly initialised classifier built here whose
head is set so that every text gets P(positive) = 3/4 exactly; the suite's per-prompt numbers are
recomputed by hand from the scripted samples.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from evalbench.aggregate.summarize import aggregate_results
from evalbench.api import drive, summarize_records
from evalbench.cache import Cache
from evalbench.errors import InputError
from evalbench.generate.backend import CachedBackend
from evalbench.generate.fake import FakeBackend
from evalbench.score import diversity as dv
from evalbench.score.rewards import (
    REWARD_SOURCES,
    RewardItem,
    RewardSpec,
    build_scorer,
    register_text_scorer,
    resolve_label,
)
from evalbench.store import ResultsStore
from evalbench.suites.base import SUITES, Checkpoint, SuiteContext
from evalbench.suites.diversity import request_seed
from evalbench.suites.reward import RewardOptions, RewardSuite, load_reward_prompts

pytest.importorskip("vaderSentiment")


def _vader_closed_form(valence_sum: float) -> float:
    """VADER's normalisation (alpha = 15), rounded to 4 places as polarity_scores does."""
    return round(valence_sum / math.sqrt(valence_sum ** 2 + 15), 4)


def _item(text: str) -> RewardItem:
    return RewardItem(prompt=({"role": "user", "content": "p"},), response=text, text=text)


# --------------------------------------------------------------------------- VADER


def test_vader_compound_matches_the_closed_form_on_known_sentences():
    scorer = build_scorer("vader")
    assert scorer.metric == "vader_compound" and scorer.bounds == (-1.0, 1.0)
    texts = {
        "The movie was great": 3.1,                 # lexicon: great 3.1
        "The movie was great!": 3.1 + 0.292,        # one '!' adds 0.292
        "The movie was terrible.": -2.1,            # terrible -2.1
        "The movie was great and fun": 3.1 + 2.3,   # fun 2.3
    }
    got = scorer.score([_item(t) for t in texts]).values
    assert got == [_vader_closed_form(x) for x in texts.values()]
    # no sentiment word, and empty text: exactly 0
    assert scorer.score([_item("I watched it on Tuesday"), _item("")]).values == [0.0, 0.0]
    assert scorer.identity()["version"] == "3.3.2"


def test_reward_source_registry_suggests_the_closest_name_and_takes_shorthands():
    with pytest.raises(InputError, match="unknown reward source 'vadr'; did you mean 'vader'"):
        build_scorer("vadr")
    assert RewardSpec.model_validate("classifier:/m/sst2") == RewardSpec(source="classifier", model="/m/sst2")
    assert RewardSpec.model_validate("rm:runs/rm-s0").model == "runs/rm-s0"
    with pytest.raises(InputError, match="takes no model"):
        build_scorer("vader:/some/model")
    with pytest.raises(InputError, match="needs a model"):
        build_scorer("classifier")
    assert {"vader", "classifier", "rm"} <= set(REWARD_SOURCES.names())


def test_a_registered_programmatic_scorer_fails_per_item_not_per_batch():
    def words(text: str) -> float:
        if "boom" in text:
            raise ValueError("no")
        return float(len(text.split()))

    register_text_scorer("test_words", words, metric="n_words_reward", bounds=(0.0, None))
    scorer = build_scorer("test_words")
    out = scorer.score([_item("a b c"), _item("boom"), _item("x")])
    assert out.values == [3.0, None, 1.0]
    assert out.errors == {1: "test_words: ValueError: no"}
    with pytest.raises(ValueError, match="duplicate"):
        register_text_scorer("test_words", words, metric="n_words_reward")


# --------------------------------------------------------------------------- a tiny HF classifier


@pytest.fixture(scope="module")
def tiny_classifier(tmp_path_factory) -> Path:
    """A randomly initialised 1-layer BERT sentiment head with a word-level tokenizer; the
    classifier's weights are zeroed and its bias set to (0, log 3), so every text gets logits
    (0, log 3): P(POSITIVE) = 3/4 and logit difference log 3, whatever the encoder computes."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from tokenizers import Tokenizer, models, pre_tokenizers, processors

    out = tmp_path_factory.mktemp("clf") / "tiny-sentiment"
    vocab = {w: i for i, w in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "the", "movie", "was", "great", "bad"])}
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(single="[CLS] $A [SEP]", special_tokens=[("[CLS]", 2), ("[SEP]", 3)])
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="[UNK]", pad_token="[PAD]",
                                                cls_token="[CLS]", sep_token="[SEP]")
    cfg = transformers.BertConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=64, num_labels=2,
                                  id2label={0: "NEGATIVE", 1: "POSITIVE"}, label2id={"NEGATIVE": 0, "POSITIVE": 1})
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(cfg)
    with torch.no_grad():
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor([0.0, math.log(3.0)]))
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def test_classifier_source_reads_the_chosen_label(tiny_classifier):
    items = [_item("the movie was great"), _item("bad bad"), _item("")]
    prob = build_scorer(RewardSpec(source="classifier", model=str(tiny_classifier), batch_size=2))
    assert prob.metric == "reward_prob" and prob.bounds == (0.0, 1.0)
    assert prob.identity()["label"] == "POSITIVE"  # default: the label named positive
    assert prob.score(items).values == pytest.approx([0.75] * 3)
    neg = build_scorer(RewardSpec(source="classifier", model=str(tiny_classifier), label="negative"))
    assert neg.score(items).values == pytest.approx([0.25] * 3)
    diff = build_scorer(RewardSpec(source="classifier", model=str(tiny_classifier), read_out="logit_diff"))
    assert diff.metric == "reward" and diff.score(items).values == pytest.approx([math.log(3.0)] * 3)
    by_index = build_scorer(RewardSpec(source="classifier", model=str(tiny_classifier), label=0, read_out="logit"))
    assert by_index.score(items).values == pytest.approx([0.0] * 3)
    with pytest.raises(InputError, match="unknown label 'POSITVE'; did you mean 'POSITIVE'"):
        build_scorer(RewardSpec(source="classifier", model=str(tiny_classifier), label="POSITVE"))
    with pytest.raises(InputError, match="cannot load a sequence classifier"):
        build_scorer(RewardSpec(source="classifier", model=str(tiny_classifier.parent / "missing")))


def test_resolve_label_defaults():
    assert resolve_label({0: "LABEL_0", 1: "LABEL_1"}, None) == 1  # positive last (SST-2 style)
    assert resolve_label({0: "pos", 1: "neg"}, None) == 0
    assert resolve_label({0: "a", 1: "b", 2: "c"}, "2") == 2
    with pytest.raises(InputError, match="out of range"):
        resolve_label({0: "a", 1: "b"}, 5)


# --------------------------------------------------------------------------- the suite on FakeBackend

SAMPLES = [" great fun", " terrible and boring", " it was", "  "]  # K = 4, the last one empty


def _checkpoints(*names, responder=lambda body: SAMPLES, cache=None):
    return [Checkpoint(n, CachedBackend(FakeBackend(n, responder=responder), cache), base_model="fake")
            for n in names]


def _drive(tmp_path, suite, checkpoints, seeds=(0,), run_id="r"):
    run = ResultsStore(tmp_path / "results").start({"test": "reward", "id": run_id}, "h" * 64, run_id=run_id)
    final = drive(run, [suite], checkpoints, list(seeds), SuiteContext())
    return run, final


def test_reward_suite_is_registered_and_its_options_validate():
    assert SUITES.get("reward") is RewardSuite
    assert RewardOptions.model_validate({"scorer": "classifier:/x"}).scorer.model == "/x"
    with pytest.raises(InputError, match="unknown prompt set 'imbd'; did you mean 'imdb'"):
        load_reward_prompts("imbd")


def test_completion_prompts_rewards_and_diversity_of_the_same_samples(tmp_path):
    suite = RewardSuite(RewardOptions(prompts="imdb", n_prompts=5, k=4))
    checkpoints = _checkpoints("pol")
    run, final = _drive(tmp_path, suite, checkpoints)
    prompts, style = load_reward_prompts("imdb")
    assert style == "completion" and len(prompts.prompts) == 64
    chosen = suite.prompts()
    # one completion request per prompt, n = K, seeded as the diversity suite seeds
    reqs = checkpoints[0].backend.inner.requests
    assert [r["prompt"] for r in reqs] == [p.text for p in chosen]
    assert {r["n"] for r in reqs} == {4} and [r["seed"] for r in reqs] == [request_seed(0, p.id) for p in chosen]
    assert "messages" not in reqs[0] and reqs[0]["logprobs"] == 1

    vader = build_scorer("vader")
    records = final[("reward", "pol", 0)]
    assert [r.sample_id for r in records] == [p.id for p in chosen]
    for p, rec in zip(chosen, records):
        # completion prompts: the review read by VADER is the opening plus its continuation
        expected = vader.score([_item(p.text + s) for s in SAMPLES]).values
        assert rec.data["rewards"] == expected
        assert rec.scores["vader_compound"] == pytest.approx(np.mean(expected))  # the empty sample counts
        # diversity drops the empty sample: 3 texts; FakeBackend gives -0.5 per whitespace token
        kept = SAMPLES[:3]
        assert rec.scores["distinct_1"] == pytest.approx(dv.distinct_n(kept, 1).value)
        assert rec.scores["distinct_2"] == pytest.approx(dv.distinct_n(kept, 2).value)
        nll = [0.5 * len(s.split()) for s in kept]
        assert rec.scores["entropy"] == pytest.approx(np.mean(nll))
        assert rec.scores["entropy_per_token"] == pytest.approx(sum(nll) / sum(len(s.split()) for s in kept))
        assert rec.data["n_empty_outputs"] == 1 and rec.error is None
    summary = suite.summarize(records)
    assert summary["vader_compound"] == pytest.approx(np.mean([r.scores["vader_compound"] for r in records]))
    assert (summary["n_prompts"], summary["n_outputs"], summary["n_empty_outputs"], summary["n_unscored"]) == (5, 20, 5, 0)
    assert len(run.generations()) == 5 and len(run.samples()) == 5


def test_chat_prompts_score_the_response_only_and_a_rerun_is_served_by_the_cache(tmp_path):
    cache = Cache(tmp_path / "cache.sqlite")
    suite = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=3, k=4, self_bleu=True))
    first = _checkpoints("pol", cache=cache)
    _, final = _drive(tmp_path, suite, first)
    body = first[0].backend.inner.requests[0]
    assert body["messages"][-1]["content"].startswith("Tell me what you think about the ")
    vader = build_scorer("vader")
    rec = final[("reward", "pol", 0)][0]
    assert rec.data["rewards"] == vader.score([_item(s) for s in SAMPLES]).values
    assert rec.scores["self_bleu"] == pytest.approx(dv.self_bleu(SAMPLES[:3]))
    again = _checkpoints("pol", cache=cache)
    _, final2 = _drive(tmp_path, RewardSuite(suite.options), again, run_id="r2")
    assert again[0].backend.inner.calls == 0
    assert [r.scores for r in final2[("reward", "pol", 0)]] == [r.scores for r in final[("reward", "pol", 0)]]


def test_failed_generations_and_unscorable_samples_are_counted(tmp_path):
    register_text_scorer("test_fails_on_fun", lambda t: 1 / 0 if "fun" in t else 1.0, metric="test_r")
    suite = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=3, k=4,
                                      scorer=RewardSpec(source="test_fails_on_fun")))
    second = suite.prompts()[1].text
    fake = FakeBackend("pol", responder=lambda body: SAMPLES,
                       fail=lambda body: "HTTP 500" if body["messages"][-1]["content"] == second else None)
    _, final = _drive(tmp_path, suite, [Checkpoint("pol", CachedBackend(fake, None), base_model="fake")])
    records = final[("reward", "pol", 0)]
    failed = [r for r in records if r.error]
    assert len(failed) == 1 and failed[0].error.startswith("generation failed: HTTP 500")
    assert all(v is None for v in failed[0].scores.values())
    ok = records[0]
    assert ok.data["rewards"] == [None, 1.0, 1.0, 1.0] and ok.scores["test_r"] == 1.0
    assert ok.data["reward_errors"] == ["sample 0: test_fails_on_fun: ZeroDivisionError: division by zero"]
    summary = suite.summarize(records)
    assert (summary["test_r"], summary["n_failed"], summary["n_unscored"]) == (1.0, 1, 2)


def test_prompt_file_errors_name_the_file_line_and_field(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text(json.dumps({"prompt": "ok"}) + "\n" + json.dumps({"text": "no prompt"}) + "\n")
    with pytest.raises(InputError) as err:
        RewardSuite(RewardOptions(prompts=str(path))).prompts()
    assert str(err.value).startswith(f"{path}:2 [prompt]: no prompt")
    path.write_text(json.dumps({"prompt": "The film"}) + "\n" + json.dumps({"prompt": "A book"}) + "\n")
    suite = RewardSuite(RewardOptions(prompts=str(path), prompt_style="completion"))
    assert suite.style == "completion" and [p.text for p in suite.prompts()] == ["The film", "A book"]
    assert RewardSuite(RewardOptions(prompts=str(path))).style == "chat"


def test_reward_is_a_first_class_metric_aggregated_and_compared(tmp_path):
    """Two checkpoints x two seeds: the summary aggregates the reward over seeds and `compare` runs
    its per-prompt test on the per-sample scores."""
    from evalbench.aggregate.compare import compare_runs
    from evalbench.aggregate.summarize import load_runs

    happy = lambda body: [" great fun", " wonderful", " good"]
    sad = lambda body: [" terrible", " awful and bad", " boring"]
    suite = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=12, k=3))
    cks = _checkpoints("base", responder=sad) + _checkpoints("dpo", responder=happy)
    run, final = _drive(tmp_path, suite, cks, seeds=(0, 1))
    rows = summarize_records([suite], cks, [0, 1], final, None)
    run.write_results(rows, aggregate=aggregate_results(rows))
    agg = {(a["group"], a["metric"]): a for a in run.summary()["aggregate"]}
    assert agg[("dpo", "vader_compound")]["mean"] > 0 > agg[("base", "vader_compound")]["mean"]
    comp = compare_runs(load_runs([run.path], with_samples=True), baseline="base")
    outcome = comp.outcomes[("dpo", "reward", "vader_compound")]
    assert outcome.delta > 0 and outcome.p_value is not None


def test_reward_drop_fails_the_gate_and_is_exported(tmp_path, capsys):
    """`evalbench gate` (default rules) fails a candidate whose reward drops; `export` lists the reward."""
    from evalbench.cli import main

    def run_of(run_id, responder):
        suite = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=12, k=3))
        cks = _checkpoints("pol", responder=responder)
        run, final = _drive(tmp_path, suite, cks, seeds=(0, 1), run_id=run_id)
        rows = summarize_records([suite], cks, [0, 1], final, None)
        run.write_results(rows, aggregate=aggregate_results(rows))
        run.finish("success")
        return run

    # same token counts and distinct-n on both sides: only the reward differs
    good = run_of("good", lambda body: [" great fun", " wonderful day", " good film"])
    bad = run_of("bad", lambda body: [" terrible film", " awful day", " boring thing"])
    assert main(["gate", "--baseline", str(good.path), "--candidate", str(bad.path), "-q"]) == 1
    assert "vader_compound" in capsys.readouterr().out
    assert main(["gate", "--baseline", str(bad.path), "--candidate", str(good.path), "-q"]) == 0
    out = tmp_path / "leaderboard.csv"
    assert main(["export", str(good.path), str(bad.path), "--out", str(out), "-q"]) == 0
    assert "vader_compound" in out.read_text()


# --------------------------------------------------------------------------- an evalbench reward model


@pytest.fixture(scope="module")
def tiny_reward_model(tmp_path_factory) -> Path:
    """A one-label sequence-classification head on the untrained tiny model (random head, seed 0)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from evalbench.models import tiny

    base = tiny.ensure_tiny_model(seed=0, pretrain_steps=0, home=tmp_path_factory.mktemp("home"))
    out = tmp_path_factory.mktemp("rm") / "tiny-rm"
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_pretrained(base, num_labels=1)
    tok = transformers.AutoTokenizer.from_pretrained(base)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def test_rm_source_scores_the_chat_rendered_pair_at_its_last_token(tiny_reward_model, tmp_path):
    import torch

    scorer = build_scorer(f"rm:{tiny_reward_model}")
    assert scorer.metric == "reward" and scorer.identity()["source"] == "rm"
    items = [_item("great fun"), _item("a much longer answer about the film"), _item("")]
    got = scorer.score(items).values
    # Independently: Hugging Face's own head reads the last non-padding token of an unpadded row.
    rm = scorer.rm
    for item, value in zip(items, got):
        head, tail = rm.renderer.render(list(item.prompt), ({"role": "assistant", "content": item.response},))
        ids = rm.tokenizer(head, add_special_tokens=False)["input_ids"] + \
            rm.tokenizer(tail, add_special_tokens=False)["input_ids"]
        with torch.no_grad():
            want = rm.model(input_ids=torch.tensor([ids])).logits[0, 0].item()
        assert value == pytest.approx(want, abs=1e-4)
    with pytest.raises(InputError, match="apply to source 'classifier'"):
        build_scorer(RewardSpec(source="rm", model=str(tiny_reward_model), label="positive"))

    suite = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=2, k=2, scorer=f"rm:{tiny_reward_model}"))
    _, final = _drive(tmp_path, suite, _checkpoints("pol"))
    assert all(r.scores["reward"] is not None for r in final[("reward", "pol", 0)])
    assert suite.summarize(final[("reward", "pol", 0)])["reward"] is not None


def test_benchmark_yaml_documents_exactly_the_defaults():
    from evalbench.config import load_spec

    repo = Path(__file__).resolve().parents[2]
    assert load_spec(RewardOptions, repo / "benchmarks" / "reward.yaml") == RewardOptions()


def test_run_refuses_an_unknown_reward_source_before_a_run_directory_exists(tmp_path, capsys):
    from evalbench.cli import main

    code = main(["run", "--suite", "reward", "--model", "fake", "--set", "model.backend=fake",
                 "--set", "suite_options.reward.scorer=vadr", "--results", str(tmp_path / "results"), "-q"])
    assert code == 2 and "unknown reward source 'vadr'; did you mean 'vader'?" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


def test_run_cli_end_to_end_with_the_fake_backend(tmp_path, capsys):
    """`evalbench run --suite reward` on the fake policy backend: summary, comparison and leaderboard."""
    from evalbench.cli import main

    results = tmp_path / "results"
    code = main(["run", "--suite", "reward", "--model", "fake", "--set", "model.backend=fake",
                 "--set", "suite_options.reward.n_prompts=4", "--seeds", "0,1", "--results", str(results), "-q"])
    assert code == 0
    (run_dir,) = (results / "runs").iterdir()
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {a["metric"] for a in summary["aggregate"] if a["suite"] == "reward"} >= {
        "vader_compound", "distinct_1", "distinct_2", "entropy", "entropy_per_token"}
    header = json.loads((run_dir / "run.json").read_text())
    assert header["reward"]["scorer"]["source"] == "vader" and header["reward"]["prompt_style"] == "completion"


def test_pid_from_an_embedder_on_the_same_samples(tmp_path):
    vectors = {" great fun": [1.0, 0.0], " terrible and boring": [0.0, 1.0], " it was": [1.0, 1.0]}

    class Embedder:  # hand-made vectors: cosines computed below
        def encode(self, texts):
            return np.asarray([vectors[t] for t in texts])

        def provenance(self):
            return {"name": "lookup", "content_hash": "0" * 64}

    suite = RewardSuite(RewardOptions(prompts="movie_chat", n_prompts=2, k=4, embedder="lookup"), embedder=Embedder())
    _, final = _drive(tmp_path, suite, _checkpoints("pol"))
    rec = final[("reward", "pol", 0)][0]
    # three non-empty samples: cos pairs 0, 1/sqrt2, 1/sqrt2 -> mean sqrt2/3
    assert rec.scores["pid_similarity"] == pytest.approx(math.sqrt(2) / 3)
    assert rec.scores["pid_diversity"] == pytest.approx(1 - math.sqrt(2) / 3)
    assert suite.summarize(final[("reward", "pol", 0)])["pid_diversity"] == pytest.approx(1 - math.sqrt(2) / 3)
