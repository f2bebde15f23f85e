"""Command line: `appconfig-sync run | render | emulator`."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="appconfig-sync", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    from appconfig_sync import dryrun, run
    from appconfig_sync.emulator.main import add_arguments as add_emulator_arguments

    run.add_arguments(sub.add_parser("run", help="run the operator"))
    dryrun.add_arguments(sub.add_parser("render", help="print the ConfigMap an AppConfigSync would produce (dry run)"))
    add_emulator_arguments(sub.add_parser("emulator", help="run a local Azure App Configuration emulator"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
