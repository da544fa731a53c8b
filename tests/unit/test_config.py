import pytest

from evalbench.config import ServerSpec, SamplingSpec, apply_overrides, load_spec, parse_adapter_arg, validate_spec
from evalbench.errors import InputError


def test_unknown_key_names_path_and_suggests(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("model: m\nadapters:\n  - name: a\n    pth: /x\n")
    with pytest.raises(InputError) as err:
        load_spec(ServerSpec, f)
    msg = str(err.value)
    assert str(f) in msg and "adapters.0.pth" in msg and "did you mean 'path'" in msg


def test_bad_value_and_override():
    with pytest.raises(InputError, match="temperature"):
        validate_spec(SamplingSpec, {"temperature": -1})
    spec = load_spec(SamplingSpec, overrides=["temperature=0.7", "stop=[a, b]"])
    assert spec.temperature == 0.7 and spec.stop == ("a", "b")
    with pytest.raises(InputError, match="temprature.*did you mean 'temperature'"):
        load_spec(SamplingSpec, overrides=["temprature=1"])


def test_nested_override_creates_mappings():
    assert apply_overrides({}, ["a.b.c=1"]) == {"a": {"b": {"c": 1}}}


def test_specs_are_frozen_and_hash_stable():
    s = SamplingSpec(temperature=0.5)
    with pytest.raises(Exception):
        s.temperature = 1.0  # type: ignore[misc]
    assert s.spec_hash() == SamplingSpec(temperature=0.5).spec_hash() != SamplingSpec().spec_hash()


def test_structured_outputs_exclusive():
    assert SamplingSpec(regex="a+").structured_outputs() == {"regex": "a+"}
    assert SamplingSpec(choice=("m", "M")).structured_outputs() == {"choice": ["m", "M"]}
    with pytest.raises(InputError):
        SamplingSpec(regex="a", choice=("b",)).structured_outputs()


def test_adapter_arg():
    assert parse_adapter_arg("dpo=/tmp/x").name == "dpo"
    with pytest.raises(InputError, match="NAME=PATH"):
        parse_adapter_arg("/tmp/x")
