"""Pre-flight: engine-free checks that fail in seconds with one line, before a run directory exists."""

from __future__ import annotations

import json
import time

import pytest

from evalbench.config import EndpointSpec
from evalbench.errors import InputError
from evalbench.preflight import check_base_model, check_endpoint, preflight_run
from evalbench.runspec import RunSpec
from evalbench.serve.stub import StubServer


def _model_dir(path, **cfg):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": 8, **cfg}))
    return path


def _adapter(path, base):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": 4}))
    return path


def test_local_model_must_be_a_model_directory(tmp_path):
    check_base_model(str(_model_dir(tmp_path / "m")))
    with pytest.raises(InputError, match="model directory not found"):
        check_base_model(str(tmp_path / "missing"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match=r"no config.json"):
        check_base_model(str(tmp_path / "empty"))


def test_uncached_hub_id_offline_says_how_to_fetch_it_in_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    start = time.monotonic()
    with pytest.raises(InputError) as err:
        check_base_model("no-such-org/no-such-model-xyz")
    message = str(err.value)
    assert "\n" not in message and "huggingface-cli download no-such-org/no-such-model-xyz" in message
    assert "offline" in message and time.monotonic() - start < 5


def test_adapter_trained_on_another_base_is_refused(tmp_path):
    base = _model_dir(tmp_path / "base")
    other = _model_dir(tmp_path / "other", hidden_size=16)
    spec = RunSpec.model_validate({"suites": ["diversity"], "model": {
        "base": str(base), "adapters": [{"name": "a", "path": str(_adapter(tmp_path / "a", other))}]}})
    with pytest.raises(InputError, match=r"adapter 'a' was trained on .*other"):
        preflight_run(spec)


def test_endpoint_must_answer_models(tmp_path):
    with StubServer(models=("m",)) as stub:
        check_endpoint(EndpointSpec(base_url=stub.base_url, model="m"), what="judge", field="--judge")
    dead = EndpointSpec(base_url="http://127.0.0.1:9/v1", model="m")
    start = time.monotonic()
    with pytest.raises(InputError, match=r"the judge endpoint http://127.0.0.1:9/v1/models does not answer"):
        check_endpoint(dead, what="judge", field="--judge")
    assert time.monotonic() - start < 10


def test_rejected_run_leaves_no_run_directory(tmp_path):
    # A run whose model cannot be found fails in pre-flight: no engine, no results folder.
    from evalbench import api

    spec = RunSpec.model_validate({"suites": ["diversity"], "model": {"base": str(tmp_path / "missing")},
                                   "results_dir": str(tmp_path / "results")})
    with pytest.raises(InputError, match="model directory not found"):
        api.run(spec)
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("run.json"))


def test_hub_answers_become_one_line(monkeypatch, tmp_path):
    # Online, not cached: the hub's own answer decides the message (typo, gated, unreachable).
    import huggingface_hub
    from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def answer(exc):
        def model_info(self, repo_id, timeout=None):
            raise exc
        monkeypatch.setattr(huggingface_hub.HfApi, "model_info", model_info)

    import httpx

    def response(code):
        return httpx.Response(code, request=httpx.Request("GET", "https://hub.invalid/api/models/org/model"))

    cases = [(RepositoryNotFoundError("404", response=response(404)), "a typo"),
             (GatedRepoError("403", response=response(403)), "gated repository"),
             (ConnectionError("no route"), "hub cannot be reached")]
    for exc, words in cases:
        answer(exc)
        with pytest.raises(InputError, match=words) as err:
            check_base_model("org/model")
        assert "\n" not in str(err.value)
