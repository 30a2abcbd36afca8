"""Local weight files: clear errors, hash check, unwrapping, strict key/shape matching."""

from __future__ import annotations

import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

from dpgan.errors import CheckpointError, DPGANError
from dpgan.evaluate.weights import load_into, load_state_dict_file, sha256_of_file

NAMES = {"network": "Test net", "option": "--test-weights", "expected_name": "released.pth"}


class Note:
    """A non-tensor object: unpickling it needs weights_only=False."""

    def __init__(self, text: str) -> None:
        self.text = text


def tiny_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 4, 3, bias=False), nn.BatchNorm2d(4), nn.Conv2d(4, 2, 1))


def test_missing_file_names_path_option_and_expected_file(tmp_path):
    with pytest.raises(DPGANError) as info:
        load_state_dict_file(tmp_path / "absent.pth", **NAMES)
    message = str(info.value)
    assert "absent.pth" in message and "--test-weights" in message and "released.pth" in message
    with pytest.raises(DPGANError, match="was not given.*--test-weights"):
        load_state_dict_file(None, **NAMES)


def test_hash_prefix_mismatch_only_warns(tmp_path):
    path = tmp_path / "w.pth"
    torch.save(tiny_net().state_dict(), path)
    sha = sha256_of_file(path)
    with pytest.warns(UserWarning, match="not 00000000"):
        state_dict, got_sha = load_state_dict_file(path, sha256_prefix="00000000", **NAMES)
    assert got_sha == sha and len(state_dict) == len(tiny_net().state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the right prefix is silent
        load_state_dict_file(path, sha256_prefix=sha[:8], **NAMES)


def test_unwraps_training_checkpoints_and_data_parallel_prefix(tmp_path):
    reference = tiny_net().state_dict()
    wrapped = {"epoch": 3, "state_dict": OrderedDict((f"module.{k}", v) for k, v in reference.items())}
    path = tmp_path / "ckpt.pth"
    torch.save(wrapped, path)
    state_dict, _ = load_state_dict_file(path, **NAMES)
    assert list(state_dict) == list(reference)
    assert all(torch.equal(state_dict[k], v) for k, v in reference.items())


def test_weights_only_by_default(tmp_path):
    path = tmp_path / "pickle.pth"
    torch.save({"state_dict": tiny_net().state_dict(), "note": Note("trusted")}, path)
    with pytest.raises(CheckpointError, match="pickle.pth"):
        load_state_dict_file(path, **NAMES)
    state_dict, _ = load_state_dict_file(path, weights_only=False, **NAMES)
    assert "0.weight" in state_dict


def test_corrupt_or_foreign_files(tmp_path):
    corrupt = tmp_path / "corrupt.pth"
    corrupt.write_bytes(b"\x00not a torch file")
    with pytest.raises(CheckpointError, match="corrupt.pth"):
        load_state_dict_file(corrupt, **NAMES)
    foreign = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], foreign)
    with pytest.raises(CheckpointError, match="named tensors"):
        load_state_dict_file(foreign, **NAMES)


def test_load_into_is_strict_except_num_batches_tracked():
    source = tiny_net()
    state_dict = {k: v for k, v in source.state_dict().items() if "num_batches_tracked" not in k}
    target = tiny_net()
    load_into(target, state_dict, source="old.pth")  # old files lack num_batches_tracked
    assert torch.equal(target[0].weight, source[0].weight)

    missing = dict(state_dict)
    del missing["1.running_var"]
    with pytest.raises(CheckpointError, match=r"old.pth.*1 missing keys \(e.g. 1.running_var\)"):
        load_into(tiny_net(), missing, source="old.pth")

    extra = {**state_dict, "head.weight": torch.zeros(1)}
    with pytest.raises(CheckpointError, match="unexpected keys"):
        load_into(tiny_net(), extra, source="old.pth")

    wrong = {**state_dict, "2.weight": torch.zeros(3, 4, 1, 1)}
    with pytest.raises(CheckpointError, match=r"2.weight \[3, 4, 1, 1\] \(model \[2, 4, 1, 1\]\)"):
        load_into(tiny_net(), wrong, source="old.pth")
