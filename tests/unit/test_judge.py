"""The Judge abstraction: typed verdicts, formats, cache-key stability, FakeJudge, `--judge SPEC`."""

from __future__ import annotations

import argparse
import logging
import math

import pytest

from evalbench.cache import Cache
from evalbench.config import SamplingSpec, validate_spec
from evalbench.errors import InputError
from evalbench.generate.backend import CachedBackend, request_key
from evalbench.io import sha256_text
from evalbench.judge.base import JudgeId, ModelJudge, PairItem, RateItem, as_judge
from evalbench.cli.options import add_judge_options, judge_fields, judge_spec
from evalbench.judge.fake import FAILED, FakeJudge
from evalbench.judge.formats import VERDICT_FORMATS
from evalbench.judge.prompts import JudgePrompt
from evalbench.runspec import JudgeSpec, RunSpec, parse_judge_arg
from evalbench.types import Choice, Generation, GenRequest, TokenLogprob

MSG = ({"role": "user", "content": "judge this"},)


class ScriptBackend:
    """A minimal in-test backend: replies from `script(request)`, counts calls, names itself."""

    def __init__(self, script, model="judge-model"):
        self.script, self.calls, self.seen = script, 0, []
        self.who = {"engine": "script", "model": model}

    def generate_uncached(self, requests, *, on_result=None, desc=None):
        self.calls += len(requests)
        self.seen.extend(requests)
        return [self.script(r) for r in requests]


def _text(text):
    return Generation(choices=(Choice(text, "stop"),))


def _logprobs(top):
    return Generation(choices=(Choice(top[0][0], "length", (TokenLogprob(top[0][0], top[0][1], tuple(top)),)),))


# --------------------------------------------------------------------------------- ModelJudge

def test_rate_parses_ratings_and_reports_failures_as_data(tmp_path):
    replies = {"a": _text("Good. Rating: [[8]]"), "b": _text("no verdict"), "c": Generation(error="HTTP 500")}
    backend = ScriptBackend(lambda r: replies[r.messages[0]["content"]])
    judge = ModelJudge(CachedBackend(backend, Cache(tmp_path / "c.sqlite")), name="j")
    items = [RateItem(({"role": "user", "content": k},)) for k in "abc"]
    ok, unparsed, failed = judge.rate(items)
    assert (ok.score, ok.error, ok.raw) == (8.0, None, "Good. Rating: [[8]]")
    assert unparsed.score is None and "no [[rating]]" in unparsed.error and unparsed.raw == "no verdict"
    assert failed.score is None and failed.error == "judge call failed: HTTP 500"
    assert judge.misses == 3 and judge.hits == 0


def test_compare_maps_presented_order_to_the_candidate(tmp_path):
    # The judge always prefers the first-shown output ([[A]]).
    judge = ModelJudge(CachedBackend(ScriptBackend(lambda r: _text("[[A]]")), None))
    first, second = judge.compare([PairItem(MSG, candidate_first=True), PairItem(MSG, candidate_first=False)])
    assert (first.preference, first.presented, first.candidate_first) == (2.0, 1.0, True)
    assert (second.preference, second.presented) == (1.0, 1.0)
    tie = ModelJudge(CachedBackend(ScriptBackend(lambda r: _text("[[C]]")), None)).compare([PairItem(MSG, True)])
    assert tie[0].preference == 1.5


def test_logprob_compare_weights_the_verdict_token():
    top = [("m", math.log(0.8)), ("M", math.log(0.2))]
    judge = ModelJudge(CachedBackend(ScriptBackend(lambda r: _logprobs(top)), None))
    shown_second, shown_first = judge.compare([PairItem(MSG, False, "logprob"), PairItem(MSG, True, "logprob")])
    # P(m) = 0.8: the first-shown output wins with 0.8 -> presented 1.2.
    assert shown_second.preference == pytest.approx(1.2) and shown_first.preference == pytest.approx(1.8)
    bad = ModelJudge(CachedBackend(ScriptBackend(lambda r: _logprobs([("The", -0.1)])), None))
    (p,) = bad.compare([PairItem(MSG, True, "logprob")])
    assert p.preference is None and "neither 'm' nor 'M'" in p.error


def test_decoding_is_the_formats_and_cache_keys_are_unchanged(tmp_path):
    """The SamplingSpecs (part of every judge cache key) are exactly those sent before the Judge type."""
    backend = ScriptBackend(lambda r: _text("[[5]]"))
    cached = CachedBackend(backend, Cache(tmp_path / "c.sqlite"))
    judge = ModelJudge(cached, constrained=True)
    judge.rate([RateItem(MSG)], max_tokens=64)
    judge.compare([PairItem(MSG, True)], max_tokens=64)
    judge.compare([PairItem(MSG, True, "logprob")])
    before = [
        SamplingSpec(temperature=0.0, max_tokens=64, regex=r"[^\[\]]{0,58}\[\[(10|[1-9])\]\]"),
        SamplingSpec(temperature=0.0, max_tokens=64, regex=r"[^\[\]]{0,58}\[\[[ABC]\]\]"),
        SamplingSpec(temperature=0.0, max_tokens=1, logprobs=True, top_logprobs=5, choice=("m", "M")),
    ]
    assert [r.sampling for r in backend.seen] == before
    keys = [request_key(backend.who, GenRequest(messages=MSG, sampling=s)) for s in before]
    assert [cached.key(r) for r in backend.seen] == keys
    # Unconstrained: FastChat's plain decoding, no structured outputs.
    plain = VERDICT_FORMATS.get("bracket_rating").sampling(False, 2048)
    assert plain == SamplingSpec(temperature=0.0, max_tokens=2048)
    # The same judge again is answered from the cache; another judge model is not.
    rerun = ModelJudge(CachedBackend(backend, cached.cache), constrained=True)
    assert rerun.rate([RateItem(MSG)], max_tokens=64)[0].cached and backend.calls == 3
    other = ScriptBackend(lambda r: _text("[[5]]"), model="another-judge")
    assert not ModelJudge(CachedBackend(other, cached.cache), constrained=True).rate([RateItem(MSG)], max_tokens=64)[0].cached


def test_identity_is_computed_once_and_self_judging_warns(caplog):
    backend = CachedBackend(ScriptBackend(lambda r: _text("[[1]]"), model="tiny"), None)
    judge = ModelJudge(backend, name="tiny", kind="endpoint", constrained=False)
    assert judge.id == JudgeId("tiny", "endpoint", "tiny", {"engine": "script", "model": "tiny"}, False, False)
    assert judge.id.to_json()["self_judged"] is False
    with caplog.at_level(logging.WARNING, logger="evalbench.judge"):
        same = ModelJudge(backend, kind="same", self_judged=True)
    assert same.self_judged and "SELF-JUDGED" in caplog.text and "tiny" in caplog.text
    assert as_judge(judge) is judge and as_judge(None) is None
    wrapped = as_judge(backend, name="n", constrained=True)
    assert wrapped.name == "n" and wrapped.constrained


# --------------------------------------------------------------------------------- FakeJudge

def test_fake_judge_scripts_cycle_and_fail_on_none():
    judge = FakeJudge(ratings=[7, None], preferences=lambda item: 2.0 if item.candidate_first else 1.5)
    ratings = judge.rate([RateItem(MSG)] * 3)
    assert [r.score for r in ratings] == [7.0, None, 7.0] and ratings[1].error == FAILED
    prefs = judge.compare([PairItem(MSG, True), PairItem(MSG, False)])
    assert [p.preference for p in prefs] == [2.0, 1.5]
    assert prefs[0].raw == "[[A]]" and prefs[1].raw == "[[C]]"
    assert judge.misses == 5 and len(judge.rated) == 3 and judge.id.kind == "fake"
    with pytest.raises(ValueError, match=r"in \[1, 2\]"):
        FakeJudge(preferences=[3.0]).compare([PairItem(MSG, True)])


def test_fake_judge_default_is_stable_per_prompt():
    items = [RateItem(({"role": "user", "content": f"q{i}"},)) for i in range(20)]
    a, b = FakeJudge().rate(items), FakeJudge().rate(items)
    assert [r.score for r in a] == [r.score for r in b]
    assert all(1 <= r.score <= 10 for r in a) and len({r.score for r in a}) > 3
    pairs = [PairItem(i.messages, True) for i in items]
    assert all(1.0 <= p.preference <= 2.0 for p in FakeJudge().compare(pairs))


# ----------------------------------------------------------------------------------- prompts

def test_one_prompt_type_renders_both_styles():
    chatml = JudgePrompt("p", "<|im_start|>system\nS\n<|im_end|>\n<|im_start|>user\n{instruction}: {output_1}\n<|im_end|>")
    messages, user = chatml.render({"instruction": "I", "output_1": "{x}"})
    assert messages == ({"role": "system", "content": "S"}, {"role": "user", "content": "I: {x}"})
    assert user == "I: {x}" and chatml.sha256 == sha256_text(chatml.template)
    fastchat = JudgePrompt("single-v1", "Q: {question}", style="fastchat", system_prompt="Sys", type="single")
    assert fastchat.render({"question": "q"}) == (({"role": "system", "content": "Sys"},
                                                   {"role": "user", "content": "Q: q"}), "Q: q")
    assert fastchat.prompt_template == "Q: {question}" and len(fastchat.sha256) == 64
    with pytest.raises(InputError, match="not filled"):
        fastchat.render({})


# ------------------------------------------------------------------------------- --judge SPEC

def test_judge_spec_syntax():
    assert parse_judge_arg("same") == {"kind": "same"} and parse_judge_arg("fake") == {"kind": "fake"}
    assert parse_judge_arg("vllm:org/m") == {"kind": "vllm", "model": "org/m"}
    local = parse_judge_arg("url=http://h:8000/v1,model=j")
    assert local["endpoint"]["api_key_env"] is None  # no key is sent to another host unless asked
    assert parse_judge_arg("url=https://api.openai.com/v1,model=g")["endpoint"]["api_key_env"] == "OPENAI_API_KEY"
    assert parse_judge_arg("url=http://h/v1,model=j,key_env=K")["endpoint"]["api_key_env"] == "K"
    for bad in ("gpt4", "vllm:", "url=http://h"):
        with pytest.raises(InputError, match="judge"):
            parse_judge_arg(bad)


def test_constrained_default_is_one_rule():
    assert JudgeSpec(kind="same").is_constrained() and JudgeSpec(kind="vllm", model="m").is_constrained()
    endpoint = validate_spec(JudgeSpec, parse_judge_arg("url=http://h/v1,model=j"))
    assert not endpoint.is_constrained()
    assert validate_spec(JudgeSpec, {**parse_judge_arg("url=http://h/v1,model=j"), "constrained": True}).is_constrained()


def test_judged_suites_need_an_explicit_judge():
    with pytest.raises(InputError, match=r"\[--judge\]: alpaca, mtbench need a judge and none was given"):
        validate_spec(RunSpec, {"suites": ["alpaca", "mtbench"], "model": {"base": "m"}})
    with pytest.raises(InputError, match="mtbench needs a judge"):
        validate_spec(RunSpec, {"suites": ["mtbench"], "model": {"base": "m"}, "judge": {"constrained": True}})
    assert validate_spec(RunSpec, {"suites": ["diversity"], "model": {"base": "m"}}).judge.kind == "same"
    same = validate_spec(RunSpec, {"suites": ["alpaca"], "model": {"base": "m"}, "judge": {"kind": "same"}})
    assert same.judge.self_judged and same.judge.given
    # A spec read back from run.json stays valid and hashes alike.
    again = RunSpec.model_validate(same.model_dump(mode="json"))
    assert again.judge.given and again.spec_hash() == same.spec_hash()


def _parser(required=False):
    p = argparse.ArgumentParser()
    add_judge_options(p, required=required)
    return p


def test_cli_options_one_syntax_and_deprecated_spellings(caplog):
    p = _parser()
    assert judge_fields(p.parse_args([])) == {}
    assert judge_fields(p.parse_args(["--judge", "vllm:m", "--no-constrained-judge"])) == {
        "kind": "vllm", "model": "m", "constrained": False}
    with caplog.at_level(logging.WARNING):
        old = judge_fields(p.parse_args(["--judge-url", "http://h/v1", "--judge-model", "j", "--constrained"]))
    assert old == {**parse_judge_arg("url=http://h/v1,model=j"), "constrained": True}
    assert "deprecated" in caplog.text
    assert judge_fields(p.parse_args(["--judge", "same", "--unconstrained-judge"]))["constrained"] is False
    with pytest.raises(InputError, match="not both"):
        judge_fields(p.parse_args(["--judge", "fake", "--judge-url", "http://h/v1", "--judge-model", "j"]))
    with pytest.raises(InputError, match="alpaca judge needs a judge"):
        judge_spec(p.parse_args([]), command="alpaca judge")
    assert judge_spec(p.parse_args(["--judge", "fake"]), command="x").kind == "fake"


def test_every_judge_option_states_its_default():
    text = " ".join(_parser().format_help().split())  # argparse wraps lines
    assert "No default" in text and "default: on for same and vllm judges, off for endpoints" in text
    assert "--judge-url" not in text  # deprecated spellings are hidden


def test_same_needs_a_served_policy():
    for model in ({"base": "m", "endpoint": {"base_url": "http://h/v1", "model": "m"}},
                  {"base": "m", "backend": "replay", "replay": {"m": "outputs.json"}}):
        with pytest.raises(InputError, match="judge 'same' needs a policy model that evalbench serves"):
            validate_spec(RunSpec, {"suites": ["alpaca"], "model": model, "judge": {"kind": "same"}})
    assert validate_spec(RunSpec, {"suites": ["alpaca"], "model": {"base": "m", "backend": "fake"},
                                   "judge": {"kind": "same"}}).judge.self_judged
