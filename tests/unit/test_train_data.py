"""Preference data for the trainer: formats, chat template + prompt masking, truncation, bad rows."""

from __future__ import annotations

import functools
import gzip
import json
from pathlib import Path

import pytest

from evalbench.errors import InputError
from evalbench.train import data as D
from evalbench.train import tokens as T
from evalbench.train.spec import DataSpec

pytest.importorskip("tokenizers")
pytest.importorskip("transformers")


@functools.cache
def make_tokenizer():
    """A small byte-level BPE with the tiny model's ChatML template (trained in < 1 s, offline)."""
    from evalbench.models.corpus import build_corpus
    from evalbench.models.tiny import train_tokenizer

    return train_tokenizer(build_corpus().documents[:300], vocab_size=400)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def spec(path: Path | str, **kw) -> DataSpec:
    return DataSpec(path=str(path), **kw)


HH = {"chosen": "\n\nHuman: hi there\n\nAssistant: hello!\n\nHuman: what is 2+2?\n\nAssistant: It is 4.",
      "rejected": "\n\nHuman: hi there\n\nAssistant: hello!\n\nHuman: what is 2+2?\n\nAssistant: No idea."}


# --------------------------------------------------------------------------- formats


def test_trl_string_rows(tmp_path):
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}])
    pairs, report = D.load_examples(spec(f), paired=True)
    assert pairs[0].prompt == ({"role": "user", "content": "Say hi"},)
    assert pairs[0].chosen == ({"role": "assistant", "content": "Hi!"},)
    assert pairs[0].rejected == ({"role": "assistant", "content": "No."},)
    assert pairs[0].ref.row == 1 and report.formats == {"trl": 1}


def test_trl_message_rows_and_ultrafeedback_prefix_is_removed(tmp_path):
    user = {"role": "user", "content": "Name a colour"}
    rows = [
        {"prompt": [user], "chosen": [{"role": "assistant", "content": "Blue"}],
         "rejected": [{"role": "assistant", "content": "Seven"}]},
        # UltraFeedback-binarized: prompt string, chosen/rejected repeat the user turn
        {"prompt": "Name a colour", "chosen": [user, {"role": "assistant", "content": "Blue"}],
         "rejected": [user, {"role": "assistant", "content": "Seven"}], "score_chosen": 8.0},
        # TRL implicit prompt: shared first turns, no prompt field
        {"chosen": [user, {"role": "assistant", "content": "Blue"}],
         "rejected": [user, {"role": "assistant", "content": "Seven"}]},
    ]
    pairs, report = D.load_examples(spec(write_jsonl(tmp_path / "d.jsonl", rows)), paired=True)
    assert len(pairs) == 3
    for p in pairs:
        assert p.prompt == (user,)
        assert p.chosen == ({"role": "assistant", "content": "Blue"},)
        assert p.rejected == ({"role": "assistant", "content": "Seven"},)
    assert report.formats == {"trl": 1, "ultrafeedback": 1, "trl-implicit": 1}


def test_hh_dialogue_is_split_into_turns(tmp_path):
    pairs, report = D.load_examples(spec(write_jsonl(tmp_path / "hh.jsonl", [HH])), paired=True)
    p = pairs[0]
    assert [m["role"] for m in p.prompt] == ["user", "assistant", "user"]
    assert p.prompt[2]["content"] == "what is 2+2?"
    assert p.chosen[0]["content"] == "It is 4." and p.rejected[0]["content"] == "No idea."
    assert report.formats == {"hh": 1}


def test_real_hh_file_parses(data_dir):
    pairs, report = D.load_examples(spec("prefs/hh_rlhf_harmless_base_test.jsonl", limit=50), paired=True)
    assert len(pairs) == 50 and report.formats == {"hh": 50} and report.bad_rows == 0
    assert all(p.prompt[-1]["role"] == "user" for p in pairs)


def test_unpaired_rows_and_pairs_derived_for_kto(tmp_path):
    rows = [{"prompt": "a?", "completion": "yes", "label": True}, {"prompt": "b?", "completion": "no", "label": 0}]
    ex, _ = D.load_examples(spec(write_jsonl(tmp_path / "u.jsonl", rows)), paired=False)
    assert [e.label for e in ex] == [True, False]
    ex, _ = D.load_examples(spec(write_jsonl(tmp_path / "p.jsonl", [HH])), paired=False)
    assert [(e.completion[0]["content"], e.label) for e in ex] == [("It is 4.", True), ("No idea.", False)]
    with pytest.raises(InputError, match=r"u.jsonl:1 \[chosen\].*unpaired"):
        D.load_examples(spec(tmp_path / "u.jsonl"), paired=True)


def test_json_parquet_and_gz_files(tmp_path):
    rows = [{"prompt": "Say hi", "chosen": "Hi!", "rejected": "No."}] * 3
    (tmp_path / "d.json").write_text(json.dumps(rows))
    with gzip.open(tmp_path / "d.jsonl.gz", "wt") as fh:
        fh.write("".join(json.dumps(r) + "\n" for r in rows))
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    for name in ("d.json", "d.jsonl.gz", "d.parquet"):
        pairs, report = D.load_examples(spec(tmp_path / name), paired=True)
        assert len(pairs) == 3 and report.sha256


def test_offset_and_limit_count_usable_rows(tmp_path):
    rows = [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(10)]
    rows[3] = {"prompt": "bad"}  # a bad row inside the window is skipped, not counted
    f = write_jsonl(tmp_path / "d.jsonl", rows)
    pairs, report = D.load_examples(spec(f, offset=2, limit=4, skip_bad_rows=True), paired=True)
    assert [p.prompt[0]["content"] for p in pairs] == ["q2", "q4", "q5", "q6"]
    assert report.bad_rows == 1


# --------------------------------------------------------------------------- bad rows


@pytest.mark.parametrize("row, field, message", [
    ({"prompt": "x", "chosen": "same", "rejected": "same"}, "rejected", "identical"),
    ({"prompt": "x", "chosen": "a"}, "rejected", "missing field"),
    ({"prompt": "", "chosen": "a", "rejected": "b"}, "prompt", "empty"),
    ({"prompt": "x", "chosen": "  ", "rejected": "b"}, "chosen", "empty"),
    ({"prompt": [{"role": "user", "content": 3}], "chosen": "a", "rejected": "b"}, "prompt[0].content", "string"),
    ({"prompt": [{"role": "robot", "content": "x"}], "chosen": "a", "rejected": "b"}, "prompt[0].role", "role"),
    ({"chosen": "plain text", "rejected": "other"}, "prompt", "neither"),
    ({"chosen": HH["chosen"], "rejected": "\n\nHuman: other\n\nAssistant: x"}, "rejected", "differ"),
    ({"prompt": "x", "completion": "y", "label": "yes"}, "label", "true/false"),
    ({"foo": 1}, "chosen", "expected"),
])
def test_bad_row_names_file_line_and_field(tmp_path, row, field, message):
    good = {"prompt": "ok", "chosen": "a", "rejected": "b"}
    f = write_jsonl(tmp_path / "bad.jsonl", [good, "", row])  # a blank line still counts as a line
    paired = "label" not in row
    with pytest.raises(InputError) as err:
        D.load_examples(spec(f), paired=paired)
    text = str(err.value)
    assert text.startswith(f"{f}:3 [{field}]"), text
    assert message in text and "--skip-bad-rows" in text


def test_invalid_json_line_and_skip_bad_rows(tmp_path):
    good = {"prompt": "ok", "chosen": "a", "rejected": "b"}
    f = write_jsonl(tmp_path / "d.jsonl", [good, "{not json", good, {"prompt": "x", "chosen": "s", "rejected": "s"}])
    with pytest.raises(InputError, match=r"d.jsonl:2: invalid JSON"):
        D.load_examples(spec(f), paired=True)
    pairs, report = D.load_examples(spec(f, skip_bad_rows=True), paired=True)
    assert len(pairs) == 2 and report.bad_rows == 2 and report.rows_read == 4
    assert "d.jsonl:4 [rejected]" in report.bad_reasons[1]


def test_empty_dataset_and_missing_file(tmp_path):
    (tmp_path / "empty.jsonl").write_text("\n")
    with pytest.raises(InputError, match="empty"):
        D.load_examples(spec(tmp_path / "empty.jsonl"), paired=True)
    f = write_jsonl(tmp_path / "allbad.jsonl", [{"prompt": "x", "chosen": "s", "rejected": "s"}])
    with pytest.raises(InputError, match=r"1 bad row\(s\) skipped"):
        D.load_examples(spec(f, skip_bad_rows=True), paired=True)
    with pytest.raises(InputError, match="not found"):
        D.load_examples(spec(tmp_path / "nope.jsonl"), paired=True)


# --------------------------------------------------------------------------- tokenization


def test_chat_template_and_prompt_mask_match_the_full_conversation(tmp_path):
    tok = make_tokenizer()
    pairs, _ = D.load_examples(spec(write_jsonl(tmp_path / "hh.jsonl", [HH])), paired=True)
    toks, report = T.tokenize_pairs(pairs, tok, spec(tmp_path / "hh.jsonl"))
    t = toks[0]
    full = tok.apply_chat_template(list(pairs[0].prompt) + list(pairs[0].chosen), tokenize=False)
    # prompt + completion ids decode to exactly the templated conversation; the completion part
    # is the assistant answer and its end-of-turn marker, nothing of the prompt
    assert tok.decode(list(t.prompt) + list(t.chosen)) == full
    assert tok.decode(list(t.chosen)) == "It is 4.<|im_end|>\n"
    assert tok.decode(list(t.prompt)).endswith("<|im_start|>assistant\n")
    assert report.examples == 1 and report.prompts_truncated == 0 and report.completions_truncated == 0


def test_system_prompt_and_plain_text_mode(tmp_path):
    tok = make_tokenizer()
    pairs, _ = D.load_examples(spec(write_jsonl(tmp_path / "d.jsonl", [{"prompt": "Q", "chosen": "A",
                                                                          "rejected": "B"}])), paired=True)
    with_sys, _ = T.tokenize_pairs(pairs, tok, spec(tmp_path / "d.jsonl", system_prompt="Be brief."))
    assert tok.decode(list(with_sys[0].prompt)).startswith("<|im_start|>system\nBe brief.<|im_end|>")
    plain, _ = T.tokenize_pairs(pairs, tok, spec(tmp_path / "d.jsonl", chat_template=False))
    assert tok.decode(list(plain[0].prompt)) == "Q\n\n"
    assert tok.decode(list(plain[0].chosen)) == "A" + tok.eos_token  # EOS ends a plain completion


def _long_rows(tmp_path):
    rows = [{"prompt": "word " * 200, "chosen": "yes " * 100, "rejected": "no " * 5},
            {"prompt": "short?", "chosen": "fine", "rejected": "bad"}]
    return write_jsonl(tmp_path / "long.jsonl", rows)


def test_truncation_keeps_prompt_end_and_counts(tmp_path):
    tok = make_tokenizer()
    f = _long_rows(tmp_path)
    pairs, _ = D.load_examples(spec(f), paired=True)
    s = spec(f, max_length=64, max_prompt_length=32)
    toks, report = T.tokenize_pairs(pairs, tok, s)
    assert len(toks) == 2
    assert len(toks[0].prompt) == 32 and tok.decode(list(toks[0].prompt)).endswith("<|im_start|>assistant\n")
    assert len(toks[0].prompt) + len(toks[0].chosen) == 64  # chosen was cut to fit
    assert report.prompts_truncated == 1 and report.completions_truncated == 1
    assert report.longest_tokens == 64


def test_overlong_skip_and_error(tmp_path):
    tok = make_tokenizer()
    f = _long_rows(tmp_path)
    pairs, _ = D.load_examples(spec(f), paired=True)
    toks, report = T.tokenize_pairs(pairs, tok, spec(f, max_length=64, max_prompt_length=32, overlong="skip"))
    assert len(toks) == 1 and report.skipped_overlong == 1
    with pytest.raises(InputError, match=r"long.jsonl:1 \[chosen\].*exceed max_length=64"):
        T.tokenize_pairs(pairs, tok, spec(f, max_length=64, max_prompt_length=32, overlong="error"))


def test_identical_after_truncation_is_an_error(tmp_path):
    tok = make_tokenizer()
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "same start " * 20 + "A",
                                            "rejected": "same start " * 20 + "B"}])
    pairs, _ = D.load_examples(spec(f), paired=True)
    with pytest.raises(InputError, match="identical after truncation"):
        T.tokenize_pairs(pairs, tok, spec(f, max_length=24, max_prompt_length=12))


def test_max_prompt_length_must_leave_room():
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match="no room"):
        DataSpec(path="x.jsonl", max_length=64, max_prompt_length=64)


def test_kl_partners_pick_a_different_prompt(tmp_path):
    tok = make_tokenizer()
    rows = [{"prompt": f"question {i}", "chosen": "a", "rejected": "b"} for i in range(3)]
    ex, _ = D.load_examples(spec(write_jsonl(tmp_path / "d.jsonl", rows)), paired=False)
    toks, _ = T.tokenize_unpaired(ex, tok, spec(tmp_path / "d.jsonl"))
    partners = T.kl_partners(toks)
    # examples 0,1 come from pair 0 (same prompt): the partner must come from another pair
    assert partners == [2, 2, 4, 4, 0, 0]
    assert all(toks[i].prompt != toks[j].prompt for i, j in enumerate(partners))
    same = [{"prompt": "q", "completion": c, "label": c == "a"} for c in "ab"]
    ex, _ = D.load_examples(spec(write_jsonl(tmp_path / "s.jsonl", same)), paired=False)
    assert T.kl_partners(T.tokenize_unpaired(ex, tok, spec(tmp_path / "s.jsonl"))[0]) is None


def test_tokenized_hash_changes_with_content(tmp_path):
    tok = make_tokenizer()
    f = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "q", "chosen": "a", "rejected": "b"}])
    pairs, _ = D.load_examples(spec(f), paired=True)
    h1 = T.tokenized_hash(T.tokenize_pairs(pairs, tok, spec(f))[0])
    h2 = T.tokenized_hash(T.tokenize_pairs(pairs, tok, spec(f, system_prompt="x"))[0])
    assert h1 == T.tokenized_hash(T.tokenize_pairs(pairs, tok, spec(f))[0]) and h1 != h2


def test_hub_dataset_id_offline_is_one_actionable_error():
    pytest.importorskip("datasets")
    from evalbench.errors import EvalbenchError

    with pytest.raises(EvalbenchError, match=r"could not load hub dataset 'nobody/no-such-prefs'.*local"):
        D.load_examples(spec("nobody/no-such-prefs"), paired=True)
    with pytest.raises(InputError, match="data file not found"):
        D.load_examples(spec("some/dir/file.jsonl"), paired=True)  # a path, not a hub id
