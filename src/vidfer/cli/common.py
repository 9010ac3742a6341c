"""What every command module shares: the consoles and the ``add`` signature."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Protocol

from rich.console import Console

console = Console()
err_console = Console(stderr=True)

Handler = Callable[[argparse.Namespace], int]


class Add(Protocol):
    """Adds a subcommand with its handler and help text; returns its argument parser."""

    def __call__(self, name: str, handler: Handler, text: str) -> argparse.ArgumentParser: ...
