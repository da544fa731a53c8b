"""Child processes get an explicit environment without unrelated secrets."""

from __future__ import annotations

import os

from evalbench.serve.procs import child_env, is_secret_name, scrub_environ

SECRETS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "WANDB_API_KEY", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
           "GITHUB_TOKEN", "DB_PASSWORD", "MY_SERVICE_SECRET", "GOOGLE_APPLICATION_CREDENTIALS", "SLACK_BOT_TOKEN")
HARMLESS = ("PATH", "HOME", "TOKENIZERS_PARALLELISM", "VLLM_CPU_KVCACHE_SPACE", "CUDA_VISIBLE_DEVICES", "HF_HOME",
            "EVALBENCH_DATA_DIR", "OMP_NUM_THREADS")


def test_secret_names():
    assert all(is_secret_name(n) for n in SECRETS)
    assert not any(is_secret_name(n) for n in HARMLESS)


def test_child_env_drops_secrets_and_keeps_what_the_child_needs():
    base = {**{n: "s" for n in SECRETS}, **{n: "v" for n in HARMLESS}, "HF_TOKEN": "hf"}
    env = child_env(base=base, set_={"TOKENIZERS_PARALLELISM": "false"})
    assert set(env) == {*HARMLESS, "HF_TOKEN"} and env["TOKENIZERS_PARALLELISM"] == "false"
    assert "OPENAI_API_KEY" in child_env(base=base, keep=("OPENAI_API_KEY",))


def test_vllm_server_and_spawned_workers_get_no_secrets(monkeypatch, tmp_path):
    from evalbench.config import ServerSpec
    from evalbench.serve.vllm_server import VLLMServer

    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("HF_TOKEN", "hf-needed")
    env = VLLMServer(ServerSpec(model=str(tmp_path)), log_dir=tmp_path).environment()
    assert "OPENAI_API_KEY" not in env and env["HF_TOKEN"] == "hf-needed" and "PATH" in env
    monkeypatch.setattr(os, "environ", dict(os.environ))  # scrub a copy, not the test session's environment
    scrub_environ()
    assert "OPENAI_API_KEY" not in os.environ and os.environ["HF_TOKEN"] == "hf-needed"
