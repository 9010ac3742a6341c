"""Progress bars for long work (rich), quiet when not attached to a terminal."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import Progress

T = TypeVar("T")


def progress_enabled() -> bool:
    """True when stderr is a terminal, or ``VIDFER_PROGRESS=1`` forces bars on (``0`` off)."""
    forced = os.environ.get("VIDFER_PROGRESS")
    if forced is not None:
        return forced not in ("", "0")
    return sys.stderr.isatty()


def track(items: Iterable[T], *, total: int | None, description: str) -> Iterator[T]:
    """Yield ``items`` while showing a progress bar on stderr when enabled."""
    if not progress_enabled():
        yield from items
        return
    with Progress(console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
