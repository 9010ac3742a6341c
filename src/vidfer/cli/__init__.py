"""The ``vidfer`` command. Each subcommand is a thin wrapper over the Python API.

The subcommands live in one module per area (``data``, ``train``, ``experiment``, ``results``,
``report``, ``tools``); each module's ``register`` adds its own. User errors
(:class:`vidfer.errors.VidferError`) print one line and exit with status 2; no traceback is shown
for them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from rich.logging import RichHandler

from vidfer.cli import data, experiment, live, report, results, tools, train
from vidfer.cli.common import Handler, err_console
from vidfer.errors import VidferError

_MODULES = (data, train, experiment, results, live, report, tools)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidfer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Handler, text: str) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=text, description=text)
        command.set_defaults(handler=handler)
        return command

    for module in _MODULES:
        module.register(add)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vidfer`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
    )
    try:
        return int(args.handler(args))
    except VidferError as error:
        err_console.print(f"vidfer: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("vidfer: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
