"""Shared test settings: small, deterministic, CPU only."""

import pytest
import torch

# Tiny models: one thread is faster than two here (thread start-up dominates), and CI's two
# cores are then free for the subprocesses that several tests start.
torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
