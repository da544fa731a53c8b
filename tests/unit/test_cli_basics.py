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
