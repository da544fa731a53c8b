import subprocess
import sys

import pytest

from evalbench.cli import main, verbosity


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


def test_run_is_listed_first_in_help(capsys):
    from evalbench.cli import build_parser

    help_text = build_parser().format_help()
    listed = [line.split()[0] for line in help_text.split("COMMAND\n", 2)[-1].splitlines()
              if line.startswith("    ") and not line.startswith("     ")]
    assert listed[0] == "run" and {"train", "compare", "gate", "export", "alpaca", "mtbench"} <= set(listed)


@pytest.mark.parametrize("argv", [
    ["-q", "-v", "--log-json", "--data-dir", "{d}", "compare", "r1"],
    ["compare", "r1", "-q", "-v", "--log-json", "--data-dir", "{d}"],
    ["-q", "compare", "r1", "--log-json", "-v", "--data-dir", "{d}"],
])
def test_global_options_before_or_after_the_command(argv, tmp_path):
    from evalbench.cli import build_parser

    args = build_parser().parse_args([a.format(d=tmp_path) for a in argv])
    assert (args.command, args.quiet, verbosity(args), args.log_json, args.data_dir) == (
        "compare", True, 1, True, str(tmp_path))


def test_global_options_after_a_nested_command_and_their_defaults():
    from evalbench.cli import build_parser

    parser = build_parser()
    args = parser.parse_args(["model", "build-tiny", "-q"])
    assert (args.quiet, verbosity(args), args.log_json, args.data_dir) == (True, 0, False, None)
    args = parser.parse_args(["cache", "path"])
    assert (args.quiet, verbosity(args), args.log_json, args.data_dir) == (False, 0, False, None)
    assert verbosity(parser.parse_args(["-v", "cache", "path", "-v"])) == 2


def test_quiet_after_the_command_reaches_main(tmp_path, capsys):
    code = main(["serve", "--model", str(tmp_path / "nope"), "-q"])
    assert code == 2 and "model directory not found" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["compare", "r1"], ["report", "r1", "--out", "o"], ["export"]])
def test_shared_stats_and_results_options_mean_the_same_everywhere(command):
    from pathlib import Path

    from evalbench.cli import build_parser
    from evalbench.cli.options import split_list

    args = build_parser().parse_args([*command, "--metrics", "a,b", "c", "--alpha", "0.01"])
    assert split_list(args.metrics) == ["a", "b", "c"] and args.alpha == 0.01
    assert (args.correction, args.iters, args.seed, args.results) == ("holm", 10_000, 0, Path("results"))


def test_results_default_is_the_paths_default():
    from evalbench.cli import build_parser
    from evalbench.paths import DEFAULT_RESULTS_DIR

    parser = build_parser()
    for argv in (["compare", "r"], ["gate", "--baseline", "a", "--candidate", "b"], ["runs", "ls"], ["show", "r"]):
        assert parser.parse_args(argv).results == DEFAULT_RESULTS_DIR


def test_python_dash_m_evalbench_cli_still_runs():
    """The CLI is a package now: `python -m evalbench.cli` goes through its __main__ module."""
    for module in ("evalbench", "evalbench.cli"):
        proc = subprocess.run([sys.executable, "-m", module, "--version"], capture_output=True, text=True, check=False)
        assert proc.returncode == 0 and proc.stdout.startswith("evalbench "), (module, proc.stderr[-500:])


def test_export_writes_under_the_given_results_root_by_default(tmp_path, capsys):
    from tests.unit.synth_runs import Unit, make_run

    make_run(tmp_path / "res", "r1", [Unit("policy", [1.0, 0.0, 1.0])])
    assert main(["export", "--results", str(tmp_path / "res")]) == 0
    assert (tmp_path / "res" / "leaderboard.csv").exists()
