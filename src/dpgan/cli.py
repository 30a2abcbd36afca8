"""The `dpgan` command. Every subcommand's arguments live in dpgan/commands/, one module each."""

from __future__ import annotations

import argparse
import sys

from dpgan.errors import DPGANError, describe_os_error

from dpgan.commands import (
    check_data,
    check_run,
    convert,
    demo,
    evaluate,
    export,
    fid,
    make_synthetic,
    presets,
    study,
    synthesize,
    train,
)

# Modules that expose `register(subparsers)`, in the order `dpgan --help` lists them.
COMMAND_MODULES = (train, synthesize, presets, make_synthetic, check_data, check_run, fid, evaluate, demo, export,
                   study, convert)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpgan",
        description="Dual Pyramid GAN for semantic image synthesis: train, generate and evaluate.",
    )
    from dpgan import __version__

    parser.add_argument("--version", action="version", version=f"dpgan {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(sub)
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
    except OSError as exc:  # a full disk, a permission, a path: one sentence, not a traceback
        print(f"dpgan {args.command}: error: {describe_os_error(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dpgan {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
