"""The AlpacaEval 2 suite on in-process fakes, and `evalbench alpaca judge` against local OpenAI-compatible
stubs (the HTTP stub where the HTTP layer is under test: CLI endpoints, retried faults).

The stub judge reads which of `m` / `M` holds the candidate from the prompt and answers with
scripted top log-probs, so the expected preferences are known by hand: a candidate written
"CAND-<d> ..." wins with probability d/10, whatever order it was shown in.
"""

from __future__ import annotations

import json
import logging
import math
import re
from types import SimpleNamespace

import numpy as np
import pytest

from evalbench.cache import Cache
from evalbench.errors import InputError, MissingExtra
from evalbench.generate.backend import CachedBackend
from evalbench.generate.client import OpenAICompatibleBackend
from evalbench.generate.fake import FakeBackend
from evalbench.io import read_json, stable_hash
from evalbench.serve.stub import Fault, StubServer, StubState
from evalbench.store import ResultsStore
from evalbench.suites.alpaca import judge as J
from evalbench.suites.alpaca.data import load_eval_set, read_annotations
from evalbench.suites.alpaca.suite import AlpacaEval2, AlpacaOptions, summarize_samples
from evalbench.suites.base import SUITES, Checkpoint, SuiteContext
from evalbench.types import Choice, Generation, TokenLogprob

N = 12  # instructions per suite test: enough for the LC fit, small enough to stay fast


def selected_rows(n: int):
    """The eval-set rows a run with `--limit n` scores (a stratified subset, in eval-set order)."""
    eval_set = load_eval_set()
    return [eval_set[r.index] for r in AlpacaEval2().rows(n)]


def selected_indices(n: int) -> list[int]:
    return [r.index for r in AlpacaEval2().rows(n)]


# ------------------------------------------------------------------------------------ stubs

def strength(instruction: str) -> int:
    """The scripted quality (1..9) of the policy's answer to `instruction`."""
    return 1 + stable_hash("strength", instruction) % 9


def policy_responder(body):
    instruction = body["messages"][-1]["content"]
    # Lengths vary with the instruction so the LC length feature is not constant.
    return f"  CAND-{strength(instruction)} answer: {instruction[: 20 + len(instruction) % 40]}  "


def _user_text(body) -> str:
    return next(m["content"] for m in body["messages"] if m["role"] == "user")


def candidate_label(body) -> str:
    """Which label the judge prompt gave the candidate (its output contains 'CAND-')."""
    text = _user_text(body)
    m_pos = text.index('"model_identifier": "m"')
    big_pos = text.index('"model_identifier": "M"')
    cand = text.index("CAND-")
    return "m" if m_pos < cand < big_pos else "M"


def judge_logprobs(body):
    text = _user_text(body)
    p = int(re.search(r"CAND-(\d)", text).group(1)) / 10
    cand = candidate_label(body)
    other = "M" if cand == "m" else "m"
    return [(cand, math.log(p)), (other, math.log(1 - p)), ("The", -9.0)]


class Fake:
    """An in-process model with the stub server's test-facing surface (`state.requests`, `request_count`).

    Each `backend()` counts its own calls (like one HTTP client) while `state.requests` sees them all.
    """

    def __init__(self, model: str, responder, top_logprobs=None):
        self.model, self.responder, self.top_logprobs = model, responder, top_logprobs
        self.backends: list[FakeBackend] = []

    def backend(self) -> FakeBackend:
        self.backends.append(FakeBackend(self.model, responder=self.responder, top_logprobs=self.top_logprobs))
        return self.backends[-1]

    @property
    def state(self):
        return SimpleNamespace(requests=[r for b in self.backends for r in b.requests])

    @property
    def request_count(self) -> int:
        return sum(b.calls for b in self.backends)


def _backend(endpoint, model: str):
    if isinstance(endpoint, Fake):
        return endpoint.backend()
    return OpenAICompatibleBackend(endpoint, model, api_key="x")


@pytest.fixture()
def fakes():
    yield Fake("policy", policy_responder), Fake("judge", lambda body: "m", judge_logprobs)


@pytest.fixture()
def stubs():
    policy_state = StubState(responder=policy_responder)
    judge_state = StubState(responder=lambda body: "m", top_logprobs=judge_logprobs)
    with StubServer(models=("policy",), state=policy_state) as policy, \
            StubServer(models=("judge",), state=judge_state) as judge:
        yield policy, judge


def _ctx(tmp_path, judge, *, limit=N, constrained=False, cache=None, run_id="r1"):
    """A suite context judged by `judge`: a Fake, or the URL of a stub server."""
    cache = cache or Cache(tmp_path / "cache.sqlite")
    run = ResultsStore(tmp_path / "results").start({"test": "alpaca"}, "h", run_id=run_id)
    judge_backend = _backend(judge, "judge")
    return SuiteContext(judge=CachedBackend(judge_backend, cache), judge_name="judge", constrained_judge=constrained,
                        limit=limit, artifacts_dir=run.artifacts), judge_backend, cache


def _checkpoint(policy, cache, name="policy"):
    backend = _backend(policy, "policy")
    return Checkpoint(name=name, backend=CachedBackend(backend, cache), base_model="stub"), backend


def _run(suite, ctx, ckpt, seed=0):
    gens = suite.generate(ctx, ckpt, seed)
    samples = suite.score(ctx, ckpt, seed, gens)
    return gens, samples, suite.summarize(samples)


# ---------------------------------------------------------------------------- prompt handling

def test_suite_is_registered():
    assert SUITES.get("alpaca") is AlpacaEval2
    assert AlpacaEval2.needs_judge and AlpacaEval2.name == "alpaca"


def test_prompt_comes_from_installed_alpaca_eval_and_matches_its_chat_conversion():
    prompt = J.load_annotator_prompt()
    assert prompt.name == "weighted_alpaca_eval_gpt4_turbo"
    assert "alpaca_eval_clf_gpt4_turbo/alpaca_eval_clf.txt" in prompt.source
    row = {"instruction": 'Say "hi" {twice}', "output_1": "hi\nhi", "output_2": "Hello {there}"}
    ours = J.chatml_to_messages(J.fill_template(prompt.template, row))

    # Independent check with alpaca_eval's own helpers (its import raises the root logger level).
    root_level = logging.getLogger().level
    try:
        import pandas as pd
        from alpaca_eval import utils as ae_utils
    finally:
        logging.getLogger().setLevel(root_level)
    prompts, _ = ae_utils.make_prompts(pd.DataFrame([row]), template=prompt.template)
    assert list(ours) == ae_utils.prompt_to_chatml(prompts[0].strip())
    assert [m["role"] for m in ours] == ["system", "user"]


def test_chatml_system_name_and_single_pass_fill():
    text = ("<|im_start|>system\nBe fair.\n<|im_end|>\n<|im_start|>system name=example_user\nKnock.\n<|im_end|>\n"
            "<|im_start|>user\n{instruction} | {output_1} | {output_2}\n<|im_end|>")
    filled = J.fill_template(text, {"instruction": "quote {output_2} literally", "output_1": "A", "output_2": "B"})
    messages = J.chatml_to_messages(filled)
    assert messages[1] == {"role": "system", "name": "example_user", "content": "Knock."}
    # The placeholder inside the instruction is not substituted (one pass over the template).
    assert messages[2]["content"] == "quote {output_2} literally | A | B"


def test_custom_prompt_is_validated(tmp_path):
    bad = tmp_path / "p.txt"
    bad.write_text("<|im_start|>user\n{instruction} {output_1}\n<|im_end|>")
    with pytest.raises(InputError, match=r"p\.txt.*output_2.*exactly once"):
        J.load_prompt_file(bad)
    bad.write_text("{instruction} {output_1} {output_2}")
    with pytest.raises(InputError, match="ChatML"):
        J.load_prompt_file(bad)
    good = tmp_path / "good.txt"
    good.write_text("<|im_start|>user\nI: {instruction}\nm: {output_1}\nM: {output_2}\n<|im_end|>\n")
    prompt = J.load_prompt_file(good)
    assert prompt.name == "custom:good" and len(prompt.sha256) == 64


def test_missing_alpaca_eval_is_a_missing_extra(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "alpaca_eval" else real(name, *a))
    with pytest.raises(MissingExtra, match=r"evalbench\[eval\]"):
        J.load_annotator_prompt()


def test_order_is_seeded_by_instruction_and_balanced():
    instructions = [r.instruction for r in load_eval_set()]
    flags = [J.candidate_first(i) for i in instructions]
    assert flags == [J.candidate_first(i) for i in instructions]  # deterministic
    assert 0.45 < np.mean(flags) < 0.55  # 805 fair coin flips: mean within 0.05 with p > 0.99
    assert flags != [J.candidate_first(i, seed=1) for i in instructions]


def _gen(top, text="m"):
    return Generation(choices=(Choice(text, "length", (TokenLogprob(text, top[0][1] if top else -1.0, tuple(top)),)),))


def test_parse_judgment_maps_presented_order_to_candidate():
    top = [("m", math.log(0.8)), ("M", math.log(0.2))]
    # Candidate shown second (not switched): P(m)=0.8 means the reference wins -> 2 - 0.8 = 1.2.
    assert J.parse_judgment(_gen(top), is_switched_outputs=False).preference == pytest.approx(1.2)
    # Candidate shown first: the same reply means the candidate wins -> 3 - 1.2 = 1.8.
    assert J.parse_judgment(_gen(top), is_switched_outputs=True).preference == pytest.approx(1.8)
    failed = J.parse_judgment(_gen([("The", -0.1), ("A", -2.0)], "The"), is_switched_outputs=False)
    assert failed.preference is None and "neither 'm' nor 'M'" in failed.error
    no_lp = J.parse_judgment(Generation(choices=(Choice("m", "stop", None),)), is_switched_outputs=False)
    assert no_lp.preference is None and "no log-probs" in no_lp.error
    raw = J.parse_judgment(_gen(top), is_switched_outputs=False).raw_completion
    from evalbench.judge.logprob import parse_completion_logprobs

    assert parse_completion_logprobs(raw).preference == pytest.approx(1.2)  # re-parseable later


def test_judge_sampling_is_greedy_one_token_top5_and_optionally_constrained():
    s = J.judge_sampling()
    assert (s.temperature, s.max_tokens, s.logprobs, s.top_logprobs, s.choice) == (0.0, 1, True, 5, None)
    assert J.judge_sampling(constrained=True).structured_outputs() == {"choice": ["m", "M"]}


# ------------------------------------------------------------------------------ the suite

def test_options_select_instructions_positionally():
    # --limit draws a seeded subset stratified over the sub-datasets (not the first N rows, which
    # are all helpful_base), nested as the limit grows, in eval-set order.
    suite = AlpacaEval2(AlpacaOptions(limit=5))
    five = suite.rows()
    assert len(five) == 5 and [r.index for r in five] == sorted(r.index for r in five)
    assert len({r.dataset for r in five}) == 5
    assert {r.index for r in suite.rows(limit=3)} <= {r.index for r in five}
    assert [r.index for r in AlpacaEval2(AlpacaOptions(limit=5)).rows()] == [r.index for r in five]
    assert len(AlpacaEval2().rows()) == 805
    sub = AlpacaEval2(AlpacaOptions(instructions=(10, 3, 7), limit=2))
    picked = [r.index for r in sub.rows()]
    assert len(picked) == 2 and set(picked) <= {10, 3, 7}
    assert [r.index for r in AlpacaEval2(AlpacaOptions(instructions=(10, 3, 7))).rows()] == [10, 3, 7]
    with pytest.raises(ValueError, match="repeat"):
        AlpacaOptions(instructions=(1, 1))
    with pytest.raises(InputError, match="out of range"):
        AlpacaEval2(AlpacaOptions(instructions=(900,))).rows()
    greedy = AlpacaEval2(AlpacaOptions(temperature=0.0))
    assert greedy.sampling(0, "1") == greedy.sampling(1, "1") and greedy.sampling(0, "1").seed is None
    sampled = AlpacaEval2(AlpacaOptions(temperature=0.7, max_new_tokens=64))
    assert sampled.sampling(0, "1").seed != sampled.sampling(1, "1").seed
    assert sampled.sampling(0, "1").max_tokens == 64


def test_end_to_end_with_a_fake_judge_and_rerun_makes_zero_calls(fakes, tmp_path):
    policy, judge = fakes
    ctx, judge_backend, cache = _ctx(tmp_path, judge)
    ckpt, policy_backend = _checkpoint(policy, cache)
    suite = AlpacaEval2(AlpacaOptions(max_new_tokens=32))
    gens, samples, metrics = _run(suite, ctx, ckpt)
    assert len(gens) == len(samples) == N
    assert policy_backend.calls == N and judge_backend.calls == N

    # Decoding parameters are sent and recorded.
    assert policy.state.requests[0]["max_tokens"] == 32 and policy.state.requests[0]["temperature"] == 0.7
    assert gens[0].sampling["max_tokens"] == 32 and "seed" in gens[0].sampling
    # The judge got one greedy token with top-5 log-probs.
    jreq = judge.state.requests[0]
    assert (jreq["max_tokens"], jreq["temperature"], jreq["logprobs"], jreq["top_logprobs"]) == (1, 0.0, True, 5)

    eval_rows = selected_rows(N)
    expected_pref = [1 + strength(r.instruction) / 10 for r in eval_rows]
    prefs = [s.scores["preference"] for s in samples]
    assert prefs == pytest.approx(expected_pref)  # whatever order each pair was shown in
    switched = [s.data["is_switched_outputs"] for s in samples]
    assert any(switched) and not all(switched)
    assert [s.sample_id for s in samples] == [str(i) for i in selected_indices(N)]
    assert metrics["win_rate"] == pytest.approx(np.mean([p - 1 for p in expected_pref]) * 100)
    assert np.mean([s.scores["win_rate"] for s in samples]) == pytest.approx(metrics["win_rate"])
    assert metrics["n_total"] == N and metrics["n_failed"] == 0

    # LC: the GLM's per-instruction predictions (in data, not scores: they are not independent
    # samples) average to the GLM's LC, refitted here independently.
    from evalbench.score.winrate import length_controlled_winrate
    from evalbench.suites.alpaca.data import load_gamed_rows, load_instruction_difficulty

    outs = [policy_responder({"messages": [{"content": r.instruction}]}).strip() for r in eval_rows]
    lc = length_controlled_winrate(prefs, [len(o) for o in outs], [len(r.output) for r in eval_rows],
                                   load_instruction_difficulty()[selected_indices(N)], load_gamed_rows())
    assert metrics["length_controlled_winrate"] == pytest.approx(lc.length_controlled_winrate)
    assert metrics["lc_standard_error"] == pytest.approx(lc.lc_standard_error)
    assert all("length_controlled_winrate" not in s.scores for s in samples)
    assert [s.data["lc_glm_preference"] for s in samples] == pytest.approx(list(lc.glm_preference))
    assert {s.data["lc_C"] for s in samples} == {lc.C}
    assert metrics["avg_length"] == int(np.mean([len(o) for o in outs]))

    # Artifacts in alpaca_eval's formats.
    art = ctx.artifacts / "alpaca" / "policy" / "seed0"
    mo = read_json(art / "model_outputs.json")
    assert mo[0] == {"instruction": eval_rows[0].instruction, "output": outs[0], "generator": "policy",
                     "dataset": eval_rows[0].dataset}  # stripped, like alpaca_eval's is_strip_output
    ann = read_annotations(art / "annotations.json")
    assert ann.model == "policy" and ann.reference == "gpt4_1106_preview"
    assert ann.preference == pytest.approx(expected_pref)
    rows = read_json(art / "annotations.json")
    assert rows[0]["annotator"] == "weighted_alpaca_eval_gpt4_turbo:judge"
    assert rows[0]["raw_completion"]["logprobs"]["content"][0]["top_logprobs"]
    assert {r["is_switched_outputs"] for r in rows} == {True, False}
    # The driver stores what the stages return (all from the cache now).
    from evalbench.api import drive

    run = ResultsStore(tmp_path / "results").open("r1")
    drive(run, [suite], [ckpt], [0], ctx)
    assert len(run.samples(suite="alpaca")) == N and len(run.generations(suite="alpaca")) == N

    # A rerun (new backends, same cache) makes zero model and judge calls and gives the same records.
    ctx2, judge_backend2, _ = _ctx(tmp_path, judge, cache=cache, run_id="r2")
    ckpt2, policy_backend2 = _checkpoint(policy, cache)
    _, samples2, metrics2 = _run(AlpacaEval2(AlpacaOptions(max_new_tokens=32)), ctx2, ckpt2)
    assert policy_backend2.calls == 0 and judge_backend2.calls == 0
    assert [s.scores for s in samples2] == [s.scores for s in samples] and metrics2 == metrics


def test_judge_without_logprobs_gives_counted_failures(tmp_path, caplog):
    judge_state = StubState(responder=lambda body: "m", top_logprobs=None)  # no logprobs in replies
    with StubServer(models=("policy",), state=StubState(responder=policy_responder)) as policy, \
            StubServer(models=("judge",), state=judge_state) as judge:
        ctx, _, cache = _ctx(tmp_path, judge.base_url, limit=4)
        ckpt, _ = _checkpoint(policy.base_url, cache)
        with caplog.at_level(logging.ERROR, logger="evalbench"):
            _, samples, metrics = _run(AlpacaEval2(), ctx, ckpt)
    # Missing log-probs are a transient fault (retried), then a counted failure naming the cause.
    assert all(s.error and "answer has none" in s.error for s in samples)
    assert all(s.scores["win_rate"] is None and s.scores["length"] is not None for s in samples)
    assert metrics["n_failed"] == 4 and metrics["n_total"] == 0 and metrics["win_rate"] is None
    assert "4 of 4 samples failed" in caplog.text
    rows = read_json(ctx.artifacts / "alpaca" / "policy" / "seed0" / "annotations.json")
    assert len(rows) == 4 and all(r["preference"] is None and "answer has none" in r["error"] for r in rows)


def test_unlabelled_verdicts_are_failures_not_averaged(tmp_path):
    def top(body):
        if "CAND-1" in _user_text(body) or "CAND-2" in _user_text(body) or "CAND-3" in _user_text(body):
            return [("The", -0.1), ("Based", -2.0)]  # no label among the top log-probs
        return judge_logprobs(body)

    policy, judge = Fake("policy", policy_responder), Fake("judge", lambda b: "The", top)
    ctx, _, cache = _ctx(tmp_path, judge)
    ckpt, _ = _checkpoint(policy, cache)
    _, samples, metrics = _run(AlpacaEval2(), ctx, ckpt)
    rows = selected_rows(N)
    bad = [strength(r.instruction) <= 3 for r in rows]
    assert 0 < sum(bad) < N
    assert [s.error is not None for s in samples] == bad
    assert all("neither 'm' nor 'M'" in s.error for s, b in zip(samples, bad) if b)
    good = [1 + strength(r.instruction) / 10 for r, b in zip(rows, bad) if not b]
    assert metrics["n_total"] == len(good) and metrics["n_failed"] == sum(bad)
    assert metrics["win_rate"] == pytest.approx(np.mean([g - 1 for g in good]) * 100)


def test_constrained_judge_sends_the_choice(fakes, tmp_path):
    policy, judge = fakes
    ctx, _, cache = _ctx(tmp_path, judge, limit=2, constrained=True)
    ckpt, _ = _checkpoint(policy, cache)
    _run(AlpacaEval2(), ctx, ckpt)
    assert judge.state.requests[0]["structured_outputs"] == {"choice": ["m", "M"]}


def test_failed_empty_and_identical_outputs(tmp_path):
    eval_rows = selected_rows(5)

    def responder(body):
        instruction = body["messages"][-1]["content"]
        if instruction == eval_rows[1].instruction:
            return "   "  # empty after stripping: judged, counted
        if instruction == eval_rows[2].instruction:
            return eval_rows[2].output  # identical to the reference: a draw, no judge call
        return policy_responder(body)

    def top(body):
        text = _user_text(body)
        if "CAND-" not in text:  # the empty answer, shown as """""": the reference wins with P = 0.9
            empty = "m" if text.index('""""""') < text.index('"model_identifier": "M"') else "M"
            return [(empty, math.log(0.1)), ("M" if empty == "m" else "m", math.log(0.9))]
        return judge_logprobs(body)

    # The policy's 4th request fails with HTTP 400 (not retried): a failed generation.
    policy_state = StubState(responder=responder, faults=[Fault(at=4, status=400)])
    with StubServer(models=("policy",), state=policy_state) as policy, \
            StubServer(models=("judge",), state=StubState(responder=lambda b: "m", top_logprobs=top)) as judge:
        ctx, judge_backend, cache = _ctx(tmp_path, judge.base_url, limit=5)
        backend = OpenAICompatibleBackend(policy.base_url, "policy", api_key="x", max_concurrency=1)
        ckpt = Checkpoint(name="policy", backend=CachedBackend(backend, cache), base_model="stub")
        _, samples, metrics = _run(AlpacaEval2(), ctx, ckpt)
    failed_gen = [s for s in samples if s.error and s.error.startswith("no output")]
    assert len(failed_gen) == 1 and "HTTP 400" in failed_gen[0].error
    assert failed_gen[0].scores["length"] is None
    empty = samples[1]
    assert empty.data["empty_output"] and empty.scores["preference"] == pytest.approx(1.1)
    same = samples[2]
    assert same.scores["preference"] == 1.5 and same.data["judged"] is False
    assert judge_backend.calls == 3  # 5 rows - 1 failed generation - 1 identical pair
    assert metrics["n_failed"] == 1 and metrics["n_total"] == 4 and metrics["n_empty_outputs"] == 1
    mo = read_json(ctx.artifacts / "alpaca" / "policy" / "seed0" / "model_outputs.json")
    assert len(mo) == 4  # the failed generation has no output row


def test_generations_that_asked_another_instruction_are_an_error(fakes, tmp_path):
    policy, judge = fakes
    ctx, _, cache = _ctx(tmp_path, judge, limit=3)
    ckpt, _ = _checkpoint(policy, cache)
    suite = AlpacaEval2()
    gens = suite.generate(ctx, ckpt, 0)
    tampered = [gens[0], gens[1].model_copy(update={"request": {"messages": [{"role": "user", "content": "Hi?"}]}}),
                gens[2]]
    with pytest.raises(InputError, match=r"1 generation\(s\) do not match.*sample \d+: asked 'Hi\?'"):
        suite.score(ctx, ckpt, 0, tampered)


def test_summarize_is_pure_and_handles_no_valid_judgment():
    from evalbench.store import SampleRecord

    recs = [SampleRecord(suite="alpaca", checkpoint="c", seed=0, sample_id=str(i),
                         scores={"win_rate": None, "preference": None, "length": 10.0}, error="judge: x")
            for i in range(3)]
    out = summarize_samples(recs)
    assert out["n_failed"] == 3 and out["n_total"] == 0 and out["win_rate"] is None
    one = [recs[0].model_copy(update={"scores": {"preference": 2.0, "win_rate": 100.0, "length": 5.0},
                                      "data": {"lc_glm_preference": 0.7}, "error": None})]
    out = summarize_samples(one)
    assert out["win_rate"] == 100.0 and out["standard_error"] is None and out["lc_standard_error"] is None
    assert out["length_controlled_winrate"] == pytest.approx(70.0)
    # Records written before the prediction moved to `data` carried it as a per-sample score.
    legacy = [one[0].model_copy(update={"scores": {**one[0].scores, "length_controlled_winrate": 70.0},
                                        "data": {}})]
    assert summarize_samples(legacy)["length_controlled_winrate"] == pytest.approx(70.0)


# -------------------------------------------------------------------------------- the CLI

def _write_outputs(path, rows):
    path.write_text(json.dumps(rows))
    return path


def test_cli_judges_a_model_outputs_file_and_reruns_from_cache(stubs, tmp_path, capsys, monkeypatch):
    from evalbench.cli import main
    from evalbench.suites.alpaca.rescore import rescore_annotations

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    _, judge = stubs
    eval_rows = load_eval_set()[:10]
    rows = [{"instruction": r.instruction, "output": policy_responder({"messages": [{"content": r.instruction}]}),
             "generator": "mymodel", "dataset": r.dataset} for r in eval_rows]
    path = _write_outputs(tmp_path / "model_outputs.json", rows)
    argv = ["alpaca", "judge", "--outputs", str(path), "--judge", f"url={judge.base_url},model=judge,key_env=NO_SUCH_KEY_VAR",
            "--out", str(tmp_path / "out"), "--json"]
    assert main(argv) == 0
    metrics = json.loads(capsys.readouterr().out)
    expected = np.mean([strength(r.instruction) / 10 for r in eval_rows]) * 100
    assert metrics["model"] == "mymodel" and metrics["win_rate"] == pytest.approx(expected)
    assert metrics["n_total"] == 10 and metrics["length_controlled_winrate"] is not None
    # The annotations re-score to the same numbers with the offline rescorer.
    again = rescore_annotations([tmp_path / "out" / "annotations.json"])[0]
    assert again["win_rate"] == pytest.approx(metrics["win_rate"])
    assert again["length_controlled_winrate"] == pytest.approx(metrics["length_controlled_winrate"], abs=1e-6)
    calls = judge.request_count
    assert main(argv) == 0
    assert judge.request_count == calls  # cached
    saved = read_json(tmp_path / "out" / "metrics.json")
    assert saved["judge_calls"] == 0 and saved["cache_hits"] == 10


def test_cli_lists_mismatched_instructions_and_bad_rows(stubs, tmp_path, capsys, monkeypatch):
    from evalbench.cli import main

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    _, judge = stubs
    eval_rows = load_eval_set()[:6]
    rows = [{"instruction": r.instruction, "output": "x", "generator": "g"} for r in eval_rows]
    rows[2]["instruction"] = "Write a limerick about caches."
    path = _write_outputs(tmp_path / "model_outputs.json", rows)
    base = ["alpaca", "judge", "--judge", f"url={judge.base_url},model=judge"]
    assert main(base + ["--outputs", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "1 of 6 instruction(s) are not in the AlpacaEval 2 eval set" in err
    assert "row 2: 'Write a limerick about caches.'" in err
    path.write_text(json.dumps(rows[:2]).replace('"output": "x"', '"output": NaN', 1))
    assert main(base + ["--outputs", str(path)]) == 2
    assert "row 0.output" in capsys.readouterr().err
    assert judge.request_count == 0


def test_cli_fewer_rows_warns_and_reports_n_total(stubs, tmp_path, capsys, monkeypatch, caplog):
    from evalbench.cli import main

    monkeypatch.setenv("EVALBENCH_HOME", str(tmp_path / "home"))
    _, judge = stubs
    eval_rows = load_eval_set()[:3]
    rows = [{"instruction": r.instruction, "output": policy_responder({"messages": [{"content": r.instruction}]}),
             "generator": "g"} for r in eval_rows]
    path = _write_outputs(tmp_path / "model_outputs.json", rows)
    assert main(["alpaca", "judge", "--outputs", str(path), "--judge", f"url={judge.base_url},model=judge",
                 "--json", "--no-cache"]) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["n_total"] == 3
    assert "3 of 805" in captured.err
