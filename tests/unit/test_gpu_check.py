"""benchmarks/gpu_check.sh: valid bash, clear skip lines without CUDA, and its model building works on CPU (tiny size)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.sh"


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n", str(SCRIPT)], check=True)


def test_without_cuda_it_says_so_in_one_line_and_exits_0(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = subprocess.run(["bash", str(SCRIPT), str(tmp_path)], capture_output=True, text=True, timeout=300, check=False,
                         env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable})
    assert out.returncode == 0
    assert out.stdout.strip() == "gpu_check: gpu: skipped: torch sees no CUDA device (every check below needs one)"


@pytest.mark.slow
def test_tiny_build_gives_a_model_two_adapters_of_their_ranks_prompts_and_an_embedder(tmp_path):
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "build", "--out", str(tmp_path),
                          "--size", "tiny", "--device", "cpu"], capture_output=True, text=True, timeout=600,
                         check=False)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().startswith("gpu_check: build: ok (")
    from transformers import AutoConfig, AutoTokenizer

    assert AutoConfig.from_pretrained(tmp_path / "model").num_hidden_layers == 2
    tok = AutoTokenizer.from_pretrained(tmp_path / "model")
    assert "<|im_start|>" in tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                     add_generation_prompt=True)
    for rank in (16, 32):
        cfg = json.loads((tmp_path / "adapters" / f"r{rank}" / "adapter_config.json").read_text())
        assert cfg["r"] == rank and Path(cfg["base_model_name_or_path"]) == (tmp_path / "model").resolve()
    assert len((tmp_path / "prompts.txt").read_text().splitlines()) == 64
    if (tmp_path / "embedder").exists():
        from sentence_transformers import SentenceTransformer

        assert SentenceTransformer(str(tmp_path / "embedder"), device="cpu").encode(["a b", "c"]).shape[0] == 2
