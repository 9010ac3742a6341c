"""What every command module shares: the consoles and the ``add`` signature."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol

from rich.console import Console

from vidfer.config.faces import device_name

console = Console()
err_console = Console(stderr=True)

Handler = Callable[[argparse.Namespace], int]


class Add(Protocol):
    """Adds a subcommand with its handler and help text; returns its argument parser."""

    def __call__(self, name: str, handler: Handler, text: str) -> argparse.ArgumentParser: ...


MODEL_DEVICE_HELP = (
    "where the face detector and the model run (default: the run's data.prepare.faces.device "
    "and train.device; the default model: the detector on auto, the GPU when there is one, the "
    "model on the CPU); an --engine export scores on the CPU"
)
"""``--device`` of the commands that score (``predict``, ``live``)."""


def _device_name(value: str) -> str:
    """argparse type of ``--device``: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``."""
    try:
        return device_name(value)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_device_flag(parser: argparse.ArgumentParser, text: str) -> None:
    """Add ``--device {auto,cpu,cuda[:N]}`` (default None: as the config says) to a command."""
    parser.add_argument(
        "--device", type=_device_name, default=None, metavar="{auto,cpu,cuda[:N]}", help=text
    )
