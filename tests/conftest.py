"""Shared test settings: small, deterministic, CPU only."""

import pytest
import torch

from dpgan.cli import main

# Tiny models: one thread is faster than two here (thread start-up dominates), and CI's two
# cores are then free for the subprocesses that several tests start.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


# 2 training steps of a 4-channel model at 32x64: enough for a real checkpoint, not for pictures.
TINY_TRAIN = [
    "--steps", "2", "--batch-size", "2", "--num-workers", "0", "--checkpoint-every", "2",
    "--sample-every", "2", "--log-every", "1", "--no-progress", "--device", "cpu",
    "--set", "data.height=32", "--set", "data.width=64", "--set", "data.num_train=6",
    "--set", "data.num_val=2", "--set", "model.num_res_blocks=4", "--set", "model.g_width=4",
    "--set", "model.d_width=4", "--set", "model.z_dim=8", "--set", "model.pyramid_width=8",
    "--set", "train.ema_bn_batches=1",
]


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 0
    return run
