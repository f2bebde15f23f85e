"""`appconfig-sync emulator`: placeholder until the emulator lands."""

import argparse


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.set_defaults(func=lambda args: 1)
