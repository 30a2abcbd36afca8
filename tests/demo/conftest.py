"""A tiny trained run and a demo server on a free port, shared by the demo tests."""

import threading

import pytest

from dpgan.cli import main
from dpgan.demo import DemoBackend, make_server

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
    run = tmp_path_factory.mktemp("demo") / "run"
    assert main(["train", "--run-dir", str(run), *TINY_TRAIN]) == 0
    return run


@pytest.fixture(scope="module")
def demo_server(tiny_run):
    """A serving DemoServer on 127.0.0.1 and a port the OS picked; stopped after the module."""
    server = make_server(DemoBackend.from_checkpoint(tiny_run, "cpu"), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=server.serve_forever, name="demo-server", daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=10)


def pytest_configure(config):
    # registered here so `-m e2e` works before pyproject.toml lists the marker
    config.addinivalue_line("markers", "e2e: end-to-end test that drives the demo page in headless Chromium")
