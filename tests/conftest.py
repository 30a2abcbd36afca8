"""Shared test settings: small, deterministic, CPU only."""

import pytest
import torch

from dpgan.cli import main
from tiny_args import TINY_TRAIN

# Tiny models: one thread is faster than two here (thread start-up dominates), and CI's two
# cores are then free for the subprocesses that several tests start.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("tiny") / "run"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 0
    return run
