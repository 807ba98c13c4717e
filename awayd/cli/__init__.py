"""The command line: the argparse tree (main) and one module per group of commands."""

from awayd.cli.main import main

__all__ = ["main"]
