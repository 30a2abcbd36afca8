"""`dpgan --help` and `dpgan <command> --help` answer at once: no torch, numpy or PIL imported."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import dpgan
from dpgan.cli import build_parser

SRC = str(Path(dpgan.__file__).resolve().parents[1])  # the dpgan under test, also in the subprocess
HEAVY = ("torch", "numpy", "PIL", "scipy", "safetensors")

_PROBE = """
import contextlib, io, sys
from dpgan.cli import main
argv = sys.argv[1:]
with contextlib.redirect_stdout(io.StringIO()) as out:
    try:
        main(argv)
    except SystemExit:
        pass
assert out.getvalue().startswith("usage: dpgan"), out.getvalue()[:200]
print(" ".join(m for m in {heavy!r} if m in sys.modules))
"""


def _subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"]
    return list(sub.choices)


def _imported_by_help(argv: list[str]) -> list[str]:
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    done = subprocess.run([sys.executable, "-c", _PROBE.format(heavy=HEAVY), *argv], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def test_every_subcommand_is_probed():
    assert {"train", "synthesize", "evaluate", "compare", "demo", "export", "convert"} <= set(_subcommands())


@pytest.mark.parametrize("argv", [["--help"], []] + [[c, "--help"] for c in _subcommands()],
                         ids=lambda a: " ".join(a) or "no-arguments")
def test_help_imports_no_heavy_module(argv):
    assert _imported_by_help(argv) == []


def test_config_and_names_import_without_torch():
    env = {**os.environ, "PYTHONPATH": SRC}
    code = "import sys, dpgan.config, dpgan.names, dpgan.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "False", out.stderr
