import subprocess
import sys

from evalbench.cli import main


def test_import_is_light():
    code = ("import sys, evalbench, evalbench.cli; evalbench.cli.build_parser(); "
            "heavy = [m for m in ('torch', 'vllm', 'lm_eval', 'transformers', 'pandas') if m in sys.modules]; "
            "print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_missing_model_dir_is_one_line_error(tmp_path, capsys):
    code = main(["serve", "--model", str(tmp_path / "nope")])
    err = capsys.readouterr().err
    assert code == 2 and "model directory not found" in err and err.count("\n") == 1


def test_bad_adapter_argument(tmp_path, capsys):
    assert main(["serve", "--model", str(tmp_path), "--adapter", "oops"]) == 2
    assert "NAME=PATH" in capsys.readouterr().err


def test_run_config_unknown_key_names_file_and_key(tmp_path, capsys):
    cfg = tmp_path / "recipe.yaml"
    cfg.write_text("suites: [alpaca]\nmodel:\n  base: m\n  adapterz: []\n")
    assert main(["run", "--config", str(cfg)]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and "model.adapterz: unknown key; did you mean 'adapters'" in err


def test_run_bad_judge_and_seeds(capsys):
    assert main(["run", "--suite", "alpaca", "--model", "m", "--judge", "gpt4"]) == 2
    assert "unknown judge 'gpt4'" in capsys.readouterr().err
    assert main(["run", "--suite", "alpaca", "--model", "m", "--seeds", "1,x"]) == 2
    assert "--seeds" in capsys.readouterr().err
