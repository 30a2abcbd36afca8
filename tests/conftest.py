"""Shared test settings: small, deterministic, CPU only."""

import os

import pytest
import torch

# CI has two cores; keep each test process from oversubscribing them.
torch.set_num_threads(min(2, os.cpu_count() or 1))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
