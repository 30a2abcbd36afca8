"""Command-line front ends; each module exposes `register(subparsers)`."""

import argparse

DEVICE_HELP = "where to run: auto (CUDA if available, else CPU), cpu, or cuda[:N]"


def add_device_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--device", default="auto", help=DEVICE_HELP)
