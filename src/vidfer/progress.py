"""Progress bars for long work (rich), quiet when not attached to a terminal."""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
)

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


class RateBar:
    """A bar over items (e.g. videos) that also shows a rate of smaller units (frames/s) and the
    time left; quiet when progress is off. Use it as a context manager.

    Args:
        total: Items to do.
        description: The bar's label.
        unit: The name of the smaller unit (``frames``).
    """

    def __init__(self, total: int, description: str, unit: str) -> None:
        self.total, self.description, self.unit = total, description, unit
        self._units = 0
        self._start = time.monotonic()
        self._bar: Progress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> RateBar:
        if progress_enabled():
            self._bar = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total, rate="")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()

    def advance(self, items: int, units: int) -> None:
        """Count ``items`` done, ``units`` of them (frames) processed since the last call."""
        self._units += units
        if self._bar is None or self._task is None:
            return
        rate = self._units / max(time.monotonic() - self._start, 1e-9)
        self._bar.update(self._task, advance=items, rate=f"{rate:.1f} {self.unit}/s")
