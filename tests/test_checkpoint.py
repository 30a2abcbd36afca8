import os
import pickle
import random

import numpy as np
import pytest
import torch

from dpgan.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from dpgan.errors import CheckpointError


def test_round_trip_keeps_latest_k_and_ignores_temporary_files(tmp_path):
    for step in (10, 20, 30):
        save_checkpoint(tmp_path, step, {"w": torch.full((2,), float(step))}, keep=2)
    (tmp_path / "checkpoints" / ".step_00000040.pt.abc.tmp").write_bytes(b"half a file")
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step_00000020.pt", "step_00000030.pt"]
    ck = load_checkpoint(tmp_path)
    assert ck["step"] == 30 and ck["w"].tolist() == [30.0, 30.0]


def test_rng_states_round_trip():
    state = rng_state()
    a = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    b = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]


def test_missing_foreign_corrupt_and_malicious_files_are_refused(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pt")
    with pytest.raises(CheckpointError, match="no checkpoint found"):
        load_checkpoint(tmp_path)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {}}, foreign)
    with pytest.raises(CheckpointError, match="not a dpgan checkpoint"):
        load_checkpoint(foreign)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="not a loadable"):
        load_checkpoint(corrupt)

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"format": "dpgan-checkpoint", "version": 1, "x": Evil()}, f)
    with pytest.raises(CheckpointError):
        load_checkpoint(evil)
    assert not marker.exists()


def test_checkpoint_path_is_zero_padded(tmp_path):
    assert checkpoint_path(tmp_path, 7).name == "step_00000007.pt"
