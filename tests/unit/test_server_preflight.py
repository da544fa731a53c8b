"""Bad input to the serving layer fails before any process starts, with one actionable line."""

import json
import socket

import pytest

from evalbench.config import AdapterSpec, ServerSpec
from evalbench.errors import InputError, MissingExtra, ServerError
from evalbench.serve import vllm_server
from evalbench.serve.vllm_server import VLLMServer


def _model_dir(path, hidden=128):
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps({"model_type": "llama", "hidden_size": hidden,
                                                  "num_hidden_layers": 2, "vocab_size": 100}))
    return path


def _adapter(path, base):
    path.mkdir(parents=True)
    (path / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base), "r": 8}))
    return path


def test_missing_model_dir(tmp_path):
    with pytest.raises(InputError, match="model directory not found"):
        VLLMServer(ServerSpec(model=str(tmp_path / "missing")), log_dir=tmp_path).preflight()


def test_adapter_trained_on_another_base(tmp_path):
    base = _model_dir(tmp_path / "base")
    other = _model_dir(tmp_path / "other", hidden=256)
    adapter = _adapter(tmp_path / "ad", other)
    spec = ServerSpec(model=str(base), adapters=(AdapterSpec(name="a", path=str(adapter)),))
    with pytest.raises(InputError, match=r"adapter 'a' was trained on .*other, not on .*base"):
        VLLMServer(spec, log_dir=tmp_path).preflight()


def test_adapter_on_a_copy_of_the_same_base_is_accepted(tmp_path):
    base = _model_dir(tmp_path / "base")
    copy = _model_dir(tmp_path / "copy")
    adapter = _adapter(tmp_path / "ad", copy)
    VLLMServer(ServerSpec(model=str(base), adapters=(AdapterSpec(name="a", path=str(adapter)),)),
               log_dir=tmp_path).preflight()


def test_port_in_use(tmp_path):
    base = _model_dir(tmp_path / "base")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        with pytest.raises(ServerError, match=f"port {port} is in use"):
            VLLMServer(ServerSpec(model=str(base)), log_dir=tmp_path, port=port).preflight()


def test_vllm_not_installed(tmp_path, monkeypatch):
    monkeypatch.setattr(vllm_server, "vllm_distribution", lambda: None)
    # The hint is two whole, copy-pasteable commands, not one mangled bracket.
    with pytest.raises(MissingExtra, match=r"pip install 'evalbench\[cpu\]' \(or 'evalbench\[gpu\]' on a CUDA machine\)$"):
        VLLMServer(ServerSpec(model=str(tmp_path)), log_dir=tmp_path).preflight()


def test_command_uses_python_m_and_lora_modules(tmp_path):
    base = _model_dir(tmp_path / "base")
    adapter = _adapter(tmp_path / "ad", base)
    server = VLLMServer(ServerSpec(model=str(base), adapters=(AdapterSpec(name="a", path=str(adapter)),)),
                        log_dir=tmp_path)
    server.port = 1234
    cmd = server.command()
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert "--enable-lora" in cmd and f"a={adapter.resolve()}" in cmd
    assert cmd[cmd.index("--host") + 1] == "127.0.0.1"
