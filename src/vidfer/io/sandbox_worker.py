"""The worker side of :mod:`vidfer.io.sandbox`: the loop a worker process runs, and
:func:`heartbeat`, which a long task calls to say it is making progress.

A worker answers each request with one message over :mod:`vidfer.io.wire`: ``("ok", value)``,
``("error", (exception, traceback))`` (raised again in the parent), ``("memory", None)`` (it
hit its memory limit, and exits), and besides them ``("ready", None)`` once started and
``("alive", None)`` from :func:`heartbeat`.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import itertools
import logging
import os
import resource
import signal
import sys
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from vidfer.io import wire

log = logging.getLogger(__name__)

NEXT = "next"  # the parent asks a streaming worker for its next item
_PARENT: Connection | None = None  # in a worker process: its connection to the parent


@dataclass(frozen=True)
class Stream:
    """The request that starts a stream: ``fn(*args)``'s items, one per :data:`NEXT`."""

    args: tuple[Any, ...]


def heartbeat() -> None:
    """Tell the parent that the running task made progress: its time limit starts again.

    Outside a sandbox worker (e.g. the same code run in the calling process) it does nothing.
    """
    if _PARENT is not None:
        wire.send(_PARENT, ("alive", None))


_M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter
MMAP_THRESHOLD = 4 << 20  # bytes: a worker's blocks from this size are mapped on their own


def _unmap_big_blocks() -> None:
    """Have glibc's malloc map every block of :data:`MMAP_THRESHOLD` or more on its own, and
    unmap it when freed.

    By default glibc raises that threshold, up to 32 MiB, each time such a block is freed; after
    that, blocks of a few to 32 MiB come from the heap. A worker allocating them in changing
    sizes (decoded HD pieces, MTCNN's activations on HD frames) fragments its heap, which then
    keeps growing with the video's length: the worker preparing a 10-minute 720p video with
    faces peaked at 2.0x the 1-minute one's (``benchmarks/prepare_memory.py``). A fixed
    threshold holds it, for page faults on those blocks. Without glibc (macOS, musl) nothing
    changes.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)


def _limit_memory(extra_bytes: int) -> None:
    """Cap this process's address space at its current size plus ``extra_bytes``."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            line = next(line for line in status if line.startswith("VmSize:"))
        current = int(line.split()[1]) * 1024  # "VmSize:   123456 kB"
        resource.setrlimit(resource.RLIMIT_AS, (current + extra_bytes, current + extra_bytes))
    except (OSError, ValueError, StopIteration) as error:
        # No /proc or no RLIMIT_AS (macOS): the time limit still applies.
        log.debug("no memory limit for the sandbox worker: %s", error)


def _die_with_parent(parent: int) -> None:
    """Ask Linux to kill this worker when its parent dies (a SIGKILLed run leaves no worker
    behind to write into a store that the next run has taken over)."""
    if sys.platform != "linux":
        return
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # it died before the request
        os._exit(1)


def serve(
    conn: Connection,
    fn: Callable[..., Any],
    memory_bytes: int | None,
    parent: int,
    setup: Callable[[], object] | None = None,
) -> None:
    """A worker's loop: run ``fn`` on the arguments the parent sends (a tuple: one call; a
    :class:`Stream`: a stream) until it sends None or goes away. ``fn``'s module was imported
    when the process started, and ``setup`` ran: neither is counted in the memory limit nor in
    the first task's time. An error of ``setup`` is left to the tasks (they meet it again,
    and it reaches the parent as their error)."""
    global _PARENT
    _PARENT = conn
    _die_with_parent(parent)
    _unmap_big_blocks()
    if setup is not None:
        try:
            setup()
        except Exception as error:  # the first task that needs what failed raises it
            log.debug("the sandbox worker's setup failed: %s", error)
    if memory_bytes is not None:
        _limit_memory(memory_bytes)
    wire.send(conn, ("ready", None))
    while True:
        request = _receive(conn)
        if request is None:
            return
        if isinstance(request, Stream):
            going = _stream(conn, fn, request.args)
        else:
            going = _reply(conn, _attempt(functools.partial(fn, *request)))
        if not going:
            return


def _stream(conn: Connection, fn: Callable[..., Iterable[Any]], args: tuple[Any, ...]) -> bool:
    """Send ``fn(*args)``'s items, each as ``("ok", (item,))`` once asked for (the first at
    once), then ``("ok", ())``; returns whether the worker may serve on."""
    items = _lazy(fn, args)
    while True:
        outcome = _attempt(lambda: tuple(itertools.islice(items, 1)))
        if not _reply(conn, outcome):
            return False
        if outcome[0] == "error" or outcome[1] == ():
            return True
        if _receive(conn) != NEXT:
            return False  # the parent is gone


def _lazy(fn: Callable[..., Iterable[Any]], args: tuple[Any, ...]) -> Iterator[Any]:
    """``fn(*args)``'s items; ``fn`` is called at the first ``next()`` (its errors come from
    there, as its items' do)."""
    yield from fn(*args)


def _attempt(step: Callable[[], Any]) -> tuple[str, Any]:
    """``("ok", step())``, else ``("memory", None)`` or ``("error", (error, traceback))``."""
    try:
        return "ok", step()
    except MemoryError:
        return "memory", None
    except Exception as error:  # re-raised in the parent
        return "error", (_portable(error), traceback.format_exc())


def _receive(conn: Connection) -> Any:
    """The parent's next request; None when it asks to stop or is gone."""
    try:
        return conn.recv()
    except (EOFError, OSError):
        return None


def _reply(conn: Connection, outcome: tuple[str, Any]) -> bool:
    """Send ``outcome`` (:mod:`vidfer.io.wire`); returns whether the worker may serve on."""
    try:
        wire.send(conn, outcome)
    except MemoryError:  # encoding a large answer went over the limit all the same
        with contextlib.suppress(OSError, ValueError, MemoryError):
            wire.send(conn, ("memory", None))
        return False
    except TypeError as error:  # a value the transport does not carry: a bug, raised in the parent
        return _reply(conn, ("error", (RuntimeError(str(error)), traceback.format_exc())))
    except (OSError, ValueError):
        return False
    # After a MemoryError native libraries may be left in a bad state: start afresh.
    return outcome[0] != "memory"


def _portable(error: Exception) -> Exception:
    """``error`` if :mod:`vidfer.io.wire` carries it, else a RuntimeError with its text."""
    return error if wire.carries(error) else RuntimeError(f"{type(error).__name__}: {error}")
