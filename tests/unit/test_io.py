"""File readers: decoding and compression errors are one line naming the file (and line)."""

from __future__ import annotations

import gzip

import pytest

from evalbench.errors import InputError
from evalbench.io import iter_jsonl, read_json, read_jsonl, read_jsonl_tolerant


def test_non_utf8_jsonl_names_file_and_line(tmp_path):
    path = tmp_path / "outputs.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(InputError, match=r"outputs.jsonl:2: not UTF-8 text .*0xe9"):
        read_jsonl(path)


def test_non_utf8_json_names_file_and_line(tmp_path):
    path = tmp_path / "outputs.json"
    path.write_bytes(b'[\n{"a": 1},\n{"a": "caf\xe9"}\n]\n')
    with pytest.raises(InputError, match=r"outputs.json:3: not UTF-8"):
        read_json(path)


def test_gz_that_is_not_gzip_and_truncated_gzip(tmp_path):
    fake = tmp_path / "outputs.json.gz"
    fake.write_text('[{"a": 1}]')
    with pytest.raises(InputError, match=r"outputs.json.gz: not a gzip file"):
        read_json(fake)
    cut = tmp_path / "rows.jsonl.gz"
    cut.write_bytes(gzip.compress(b'{"a": 1}\n' * 2000)[:60])
    with pytest.raises(InputError, match=r"rows.jsonl.gz(:\d+)?: the gzip stream ends early"):
        list(iter_jsonl(cut))
    good = tmp_path / "ok.jsonl.gz"
    good.write_bytes(gzip.compress(b'{"a": 1}\n{"a": 2}\n'))
    assert read_jsonl(good) == [{"a": 1}, {"a": 2}]


def test_tolerant_log_ignores_a_last_line_cut_inside_a_character(tmp_path):
    path = tmp_path / "samples.jsonl"
    path.write_bytes('{"a": "é"}\n{"a": "é'.encode()[:-1])
    assert read_jsonl_tolerant(path) == [{"a": "é"}]
    path.write_bytes(b'{"a": "\xe9"}\n{"a": 2}\n')
    with pytest.raises(InputError, match=r"samples.jsonl:1: invalid JSON or UTF-8 in the middle"):
        read_jsonl_tolerant(path)


def test_non_utf8_yaml_config_names_the_file(tmp_path):
    from evalbench.config import load_yaml

    path = tmp_path / "recipe.yaml"
    path.write_bytes(b"suites: [alpaca]\nnote: caf\xe9\n")
    with pytest.raises(InputError, match=r"recipe.yaml:2: not UTF-8"):
        load_yaml(path)
