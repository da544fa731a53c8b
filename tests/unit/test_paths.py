"""evalbench.paths: one resolver per location; an empty environment value counts as unset."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalbench import paths
from evalbench.errors import InputError


@pytest.fixture(autouse=True)
def _no_explicit_data_dir():
    paths.set_data_dir(None)
    yield
    paths.set_data_dir(None)


def test_home_defaults_to_user_cache(monkeypatch, tmp_path):
    monkeypatch.delenv("EVALBENCH_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.evalbench_home() == tmp_path / ".cache" / "evalbench"


@pytest.mark.parametrize("value", ["", "   "])
def test_empty_home_is_unset_not_the_current_directory(monkeypatch, tmp_path, value):
    monkeypatch.setenv("EVALBENCH_HOME", value)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert paths.evalbench_home() == tmp_path / ".cache" / "evalbench"


def test_home_from_env_with_user_expansion(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("EVALBENCH_HOME", "~/eb")
    assert paths.evalbench_home() == tmp_path / "eb"
    assert paths.cache_path() == tmp_path / "eb" / "cache.sqlite"
    assert paths.models_dir() == tmp_path / "eb" / "models"


def test_results_dir_default_and_given():
    assert paths.results_dir() == Path("results")
    assert paths.results_dir("") == Path("results")
    assert paths.results_dir("/x/y") == Path("/x/y")


def test_data_dir_env_empty_is_unset(monkeypatch):
    monkeypatch.setenv("EVALBENCH_DATA_DIR", "")
    assert paths.data_dir() is None


def test_data_dir_env_missing_folder_is_one_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALBENCH_DATA_DIR", str(tmp_path / "nope"))
    with pytest.raises(InputError, match="EVALBENCH_DATA_DIR points to a missing directory"):
        paths.data_dir()


def test_explicit_data_dir_wins_over_env(monkeypatch, tmp_path):
    monkeypatch.setenv("EVALBENCH_DATA_DIR", str(tmp_path))
    explicit = tmp_path / "mine"
    explicit.mkdir()
    paths.set_data_dir(explicit)
    assert paths.data_dir() == explicit
    with pytest.raises(InputError, match="--data-dir"):
        paths.set_data_dir(tmp_path / "missing")


def _provenance_home() -> Path:
    from evalbench.provenance import _memo_path

    return _memo_path().parent


def _tiny_model_home() -> Path:
    from evalbench.models.tiny import default_tiny_model_dir

    return default_tiny_model_dir().parent.parent


@pytest.mark.parametrize("home_of", [paths.evalbench_home, lambda: paths.cache_path().parent,
                                     _provenance_home, _tiny_model_home])
def test_every_user_of_home_agrees_on_an_empty_value(monkeypatch, tmp_path, home_of):
    monkeypatch.setenv("EVALBENCH_HOME", "")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert home_of() == tmp_path / ".cache" / "evalbench"


def test_no_other_module_reads_the_path_settings():
    """The settings are read in paths.py only (the issue found five resolvers that disagreed)."""
    root = Path(paths.__file__).parent
    readers = [p.relative_to(root.parent).as_posix() for p in root.rglob("*.py")
               if p.name != "paths.py" and any(f'environ.get("{v}"' in p.read_text() or f"environ['{v}'" in p.read_text()
                                                  or f'environ["{v}"' in p.read_text()
                                                  for v in ("EVALBENCH_HOME", "EVALBENCH_DATA_DIR"))]
    assert readers == []
    assert not [p for p in root.rglob("*.py") if p.name != "paths.py" and '".cache" / "evalbench"' in p.read_text()]
