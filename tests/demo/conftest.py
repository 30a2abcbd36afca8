"""A demo server on a free port (over the tiny run of tests/conftest.py), shared by the demo tests."""

import threading

import pytest

from dpgan.inference.demo import DemoBackend, make_server


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
