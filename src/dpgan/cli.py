"""The `dpgan` command. Each subcommand lives beside the code it drives and registers itself."""

from __future__ import annotations

import argparse
import importlib
import sys

from dpgan.errors import DPGANError

# Modules that expose `register(subparsers)`, in the order `dpgan --help` lists them.
COMMAND_MODULES = (
    "dpgan.commands.train",
    "dpgan.commands.synthesize",
    "dpgan.commands.presets",
    "dpgan.data.synthetic",
    "dpgan.data.check",
    "dpgan.evaluate.commands",
    "dpgan.evaluate.run_commands",
    "dpgan.commands.demo",
    "dpgan.commands.export",
    "dpgan.commands.study",
    "dpgan.commands.convert",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpgan",
        description="Dual Pyramid GAN for semantic image synthesis: train, generate and evaluate.",
    )
    from dpgan import __version__

    parser.add_argument("--version", action="version", version=f"dpgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DPGANError as exc:
        print(f"dpgan {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dpgan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
