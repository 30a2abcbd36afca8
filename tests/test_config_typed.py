"""Typed configuration: every value from --set, --config, a run's or a saved model's config.json is
checked against its field's type and range; anything else is one DPGANError, never a traceback."""

import json
import math

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dpgan.cli import main
from dpgan.config import INT_RANGES, Config, coerce, parse_set
from dpgan.presets import preset
from dpgan.errors import CheckpointError, DPGANError
from tiny_args import TINY_TRAIN

SECTIONS = {s: sorted(getattr(Config(), s).__dataclass_fields__) for s in ("data", "model", "loss", "train")}


# --- regressions: each of these was accepted (or a raw traceback) before -----------------------

def test_a_bool_written_false_is_false_not_the_truthy_string():
    assert parse_set(["loss.labelmix=False"]) == {"loss": {"labelmix": False}}
    assert parse_set(["loss.labelmix=TRUE"]) == {"loss": {"labelmix": True}}
    with pytest.raises(DPGANError, match="loss.labelmix='yes' is not allowed: .*true or false"):
        parse_set(["loss.labelmix=yes"])


@pytest.mark.parametrize("item, match", [
    ("model.g_width=true", r"model.g_width='true' is not allowed: model.g_width is an integer from 1 to 1024"),
    ("model.g_width=2.5", "an integer"),
    ("model.g_width=4096", "from 1 to 1024"),
    ("model.num_res_blocks=9", "from 1 to 8"),
    ("train.batch_size=0", "from 1 to 1024"),
    ("train.checkpoint_every=0", "from 1 to"),
    ("train.log_every=0", "from 1 to"),
    ("train.sample_every=-1", "from 1 to"),
    ("train.steps=-1", "from 0 to"),
    ("train.lr_g=0", r"finite number in \(0, inf\)"),
    ("train.lr_d=nan", "finite"),
    ("train.lr_d=inf", "finite"),
    ("train.beta1=1", r"\[0, 1\)"),
    ("train.beta2=-0.1", r"\[0, 1\)"),
    ("data.height=100000", "from 1 to 4096"),
    ("loss.lambda_patch=-1", "finite"),
    ("model.generator=null", "model.generator must be 'oa' or 'dp'"),
    ("nosuch.field=1", "unknown config section 'nosuch'"),
    ("train.nosuch=1", "unknown option train.nosuch"),
    ("no_dot=1", "expected SECTION.FIELD=VALUE"),
])
def test_set_refuses_wrong_types_and_ranges_naming_field_value_and_what_is_allowed(item, match):
    with pytest.raises(DPGANError, match=match):
        Config().override(**parse_set([item]))


def test_set_reads_numbers_strings_and_null_by_the_field_type():
    assert parse_set(["train.lr_g=1", "data.root=null", "data.dataset=folder", "model.patch_loss=none",
                      'data.root="x y"']) == {
        "train": {"lr_g": 1.0}, "data": {"root": "x y", "dataset": "folder"}, "model": {"patch_loss": "none"}}


def test_the_cli_prints_one_line_and_exits_2_for_a_bad_set(tmp_path, capsys):
    for item in ("model.g_width=true", "train.checkpoint_every=0", "foo.bar=1"):
        capsys.readouterr()
        assert main(["train", "--run-dir", str(tmp_path / "r"), *TINY_TRAIN, "--set", item]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("dpgan train: error: ")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("text, match", [
    ("null", "JSON object"), ("[]", "JSON object"), ("3", "JSON object"),
    ('{"model": [1]}', "section 'model' must be an object"),
    ('{"model": {"g_width": "8"}}', "model.g_width='8'"),
    ('{"model": {"g_width": 8.0}}', "an integer"),
    ('{"loss": {"labelmix": 0}}', "true or false"),
    ('{"train": {"steps": true}}', "an integer"),
    ('{"name": null}', "name"),
    ('{"data": {"root": 5}}', "a string"),
    ("[" * 100_000, "not valid JSON"),
    ("{not json", "not valid JSON"),
])
def test_config_json_with_wrong_shapes_is_refused(text, match):
    with pytest.raises(DPGANError, match=match):
        Config.from_json(text)


def test_config_file_values_are_typed_on_the_cli(tmp_path, capsys):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"train": {"checkpoint_every": 0}}))
    assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "train.checkpoint_every=0" in capsys.readouterr().err


def test_ints_become_floats_and_round_trip():
    cfg = Config.from_dict({"train": {"lr_g": 1, "beta1": 0}})
    assert type(cfg.train.lr_g) is float and cfg.train.lr_g == 1.0
    for name in ("synthetic-streets", "cityscapes", "ade20k", "coco-stuff"):
        assert Config.from_json(preset(name).to_json()) == preset(name)


# --- properties ------------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=True)
    | st.text(max_size=12) | st.sampled_from(["true", "False", "null", "none", "1", "0", "2.5", "dp", "enc"]),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
field_keys = st.sampled_from([(s, f) for s, fs in SECTIONS.items() for f in fs]) | st.tuples(
    st.text(max_size=6), st.text(max_size=6))


@settings(max_examples=150, deadline=None)
@given(key=field_keys, value=json_values)
def test_any_json_value_for_any_field_is_a_valid_config_or_one_dpganerror(key, value):
    section, name = key
    try:
        cfg = Config.from_dict({section: {name: value}})
    except DPGANError as exc:
        assert "\n" not in str(exc)
        return
    typed = getattr(getattr(cfg, section), name)
    assert coerce(section, name, typed) == typed  # stored in its field's type, within its range
    if isinstance(typed, (int, float)) and not isinstance(typed, bool):
        assert math.isfinite(typed)
        lo, hi = INT_RANGES.get(f"{section}.{name}", (0, 10**9))
        assert not isinstance(typed, int) or lo <= typed <= hi
    if isinstance(value, bool) or value is None:
        assert typed is value or type(typed) is bool  # never "False" as a (truthy) string


@settings(max_examples=150, deadline=None)
@given(key=field_keys, raw=st.text(max_size=12) | st.sampled_from(["true", "FALSE", "null", "-1", "0", "1e3",
                                                                     "nan", "8", "2.0", '"x"']))
def test_any_set_text_is_a_typed_override_or_one_dpganerror(key, raw):
    section, name = key
    try:
        changes = parse_set([f"{section}.{name}={raw}"])
        cfg = Config().override(**changes)
    except DPGANError:
        return
    value = getattr(getattr(cfg, section), name)
    assert coerce(section, name, value) == value  # what is stored is what its field allows


def _mutations():
    leaf = st.none() | st.booleans() | st.integers(-5, 5000) | st.floats() | st.text(max_size=4)
    nested = st.recursive(leaf, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
        st.text(max_size=4), inner, max_size=2), max_leaves=6)
    return nested


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    from dpgan.inference.api import DPGAN

    run = tmp_path_factory.mktemp("saved") / "run"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 0
    out = tmp_path_factory.mktemp("saved") / "model"
    DPGAN.from_checkpoint(run, device="cpu").save_pretrained(out)
    return out


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, (*prefix, k))


def _set(obj, path, value):
    if not path:
        return value
    obj = dict(obj)
    obj[path[0]] = _set(obj[path[0]], path[1:], value)
    return obj


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mutated_saved_model_config_loads_or_is_one_checkpoint_error(saved_model, tmp_path_factory, data):
    import shutil

    from dpgan.inference.pretrained import CONFIG_FILE, load_pretrained

    meta = json.loads((saved_model / CONFIG_FILE).read_text())
    path = data.draw(st.sampled_from(list(_paths(meta))))
    mutated = _set(meta, path, data.draw(_mutations()))
    folder = tmp_path_factory.mktemp("m")
    shutil.copy(saved_model / "model.safetensors", folder / "model.safetensors")
    (folder / CONFIG_FILE).write_text(json.dumps(mutated))
    try:
        load_pretrained(folder)
    except CheckpointError as exc:
        assert str(folder / CONFIG_FILE) in str(exc) or "model.safetensors" in str(exc)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_a_mutated_run_config_json_is_a_config_or_one_dpganerror(data):
    meta = json.loads(Config().to_json())
    path = data.draw(st.sampled_from(list(_paths(meta))))
    try:
        Config.from_json(json.dumps(_set(meta, path, data.draw(_mutations()))))
    except DPGANError as exc:
        assert "\n" not in str(exc)


def test_a_resume_with_a_corrupted_run_config_json_is_one_line(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    (run / "config.json").write_text(json.dumps({"model": {"g_width": [1, [2]]}}))
    assert main(["train", "--run-dir", str(run), "--resume", "--no-progress", "--device", "cpu"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "model.g_width" in err[0]


def test_a_binary_or_huge_config_file_is_one_line(tmp_path, capsys):
    binary = tmp_path / "b.json"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    huge = tmp_path / "h.json"
    huge.write_text('{"name": "' + "x" * (2 << 20) + '"}')
    for path, match in ((binary, "not a text file"), (huge, "too large")):
        capsys.readouterr()
        assert main(["train", "--config", str(path), "--run-dir", str(tmp_path / "r"), "--no-progress"]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and match in err[0] and str(path) in err[0]
