"""Run functions on untrusted input in worker processes that may crash, hang or run out of memory.

A :class:`Sandbox` keeps a few long-lived worker processes, started with ``spawn`` (nothing is
inherited from the parent's threads) and reused from task to task. Each task runs in one worker
under a time limit, enforced by the parent (which kills the worker), and a memory limit, the
worker's address space (``RLIMIT_AS``). A worker that dies — a segmentation fault in a native
decoder, the out-of-memory killer — or overruns its time is replaced; its task's outcome is a
:class:`Failure` instead of a result, and the other tasks go on.

The parent never runs the function itself, so nothing a file does to a decoder can take the
calling process down, and it never unpickles a worker's answer: answers travel as JSON and raw
array bytes (:mod:`vidfer.io.wire`); one that is not is the worker's failure (``crashed``). An
exception raised by the function is not a failure of the input: it is raised again in the parent
(with the worker's traceback attached).

:meth:`Sandbox.map` runs the function once per input; :meth:`Sandbox.stream` runs a function that
yields (a video's decoded pieces) and hands its items over one at a time, so that the parent never
holds more than about two of them (``vidfer predict`` on long videos).

A task's time limit runs from its start; a long task made of bounded steps (a video prepared
piece by piece) calls :func:`heartbeat` after each step, which starts the limit again: it then
bounds a step, so that a long valid input is not stopped for its length while a hung one is.

A worker does not import the caller's script again (``spawn`` would, to find functions defined
in it): :func:`_script_hidden` hides the parent's ``__main__`` while a worker starts, unless the
function itself lives there. A user's script that calls ``vidfer.train`` or prepares videos
therefore works without an ``if __name__ == "__main__":`` guard, and workers start without the
script's imports.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from types import TracebackType
from typing import Any, Generic, TypeVar

from vidfer.io import wire
from vidfer.io.sandbox_worker import NEXT, Stream, serve

R = TypeVar("R")
T = TypeVar("T")
_MIB = 1 << 20
_QUEUED = 2  # tasks handed to a worker at once: the next one waits in its pipe, never the worker
_START_S = 120.0  # longest a worker may take to start (import the function's module)
_MAIN_LOCK = threading.Lock()  # one worker start at a time hides and restores ``__main__``


@dataclass(frozen=True)
class Failure:
    """A task whose worker did not return.

    Attributes:
        status: ``crashed`` (the worker died, e.g. on a segmentation fault), ``timeout`` (it
            overran the time limit and was killed) or ``out_of_memory`` (it hit the memory
            limit).
        reason: What happened, for a human.
    """

    status: str
    reason: str


class RemoteTraceback(Exception):
    """The traceback of an exception raised in a worker (the ``__cause__`` of its re-raise)."""


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    tasks: deque[int] = field(default_factory=deque)  # sent, unanswered; the first one runs
    deadline: float = 0.0  # of the running task
    ready: bool = False  # started: the time limit of its first task runs from then


class Sandbox(Generic[R]):
    """Worker processes that run one function on many untrusted inputs.

    Use it as a context manager; the workers start on the first :meth:`map` or :meth:`stream`
    and stop on exit. One call runs at a time.

    Args:
        fn: The function; a module-level function, so that workers can import it.
        workers: How many tasks run at once.
        timeout_s: A task running longer is stopped (its worker killed).
        memory_mb: Address space a task may add to its worker's (after the function's module
            is imported and ``setup`` ran); None: no limit.
        setup: Run once in each worker as it starts, before its memory limit is set (a
            module-level function, or a ``functools.partial`` of one): e.g. a model built on a
            GPU, whose CUDA context reserves far more address space than the limit allows.
    """

    def __init__(
        self,
        fn: Callable[..., R],
        workers: int,
        *,
        timeout_s: float,
        memory_mb: int | None,
        setup: Callable[[], object] | None = None,
    ) -> None:
        self.fn = fn
        self.setup = setup
        self.size = max(1, workers)
        self.timeout_s = timeout_s
        self.memory_mb = memory_mb
        self._context = get_context("spawn")
        self._workers: list[_Worker] = []

    def __enter__(self) -> Sandbox[R]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop every worker (those running a task are killed)."""
        for worker in self._workers:
            if worker.tasks:
                worker.process.kill()
            else:
                with contextlib.suppress(OSError):
                    worker.conn.send(None)
        for worker in self._workers:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._workers = []

    def map(self, tasks: Sequence[tuple[Any, ...]]) -> Iterator[tuple[int, R | Failure]]:
        """Run ``fn(*task)`` for every task.

        Yields:
            ``(task index, result or Failure)`` in the order the tasks finish.

        Raises:
            Exception: the exception a task raised (the worker's traceback as its cause).
        """
        pending = deque(range(len(tasks)))
        while len(self._workers) < min(self.size, len(tasks)):
            self._workers.append(self._start())
        while pending or any(worker.tasks for worker in self._workers):
            for worker in self._workers:
                while pending and len(worker.tasks) < _QUEUED:
                    index = pending.popleft()
                    self._send(worker, index, tasks[index])
            busy = [worker for worker in self._workers if worker.tasks]
            timeout = max(0.0, min(worker.deadline for worker in busy) - time.monotonic())
            ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout))
            for worker in busy:
                outcome = self._outcome(worker, ready, pending)
                if outcome is not None:
                    yield outcome

    def stream(self: Sandbox[Iterator[T]], task: tuple[Any, ...]) -> Iterator[T | Failure]:
        """Run ``fn(*task)``, a function that yields, and yield its items one at a time.

        The worker makes the next item while the caller uses the current one, then waits to be
        asked for more: it is never more than one item ahead. Each item has the time limit of a
        task, counted from when it is asked for (the first: from the worker's start); the memory
        limit is the worker's, as for :meth:`map`. A caller that stops reading before the end
        stops the worker (killed: it may be in the middle of an item).

        Yields:
            The items in order; a :class:`Failure`, last, if the worker crashed or overran its
            time or memory limit.

        Raises:
            Exception: the exception ``fn`` raised (the worker's traceback as its cause), after
                the items made before it.
        """
        if not self._workers:
            self._workers.append(self._start())
        worker = self._workers[0]
        self._send(worker, 0, Stream(task))
        try:
            while True:
                outcome = self._await(worker)
                if isinstance(outcome, Failure):
                    yield outcome
                    return
                if not outcome:  # the worker's "no more items"
                    return
                self._send(worker, 0, NEXT)  # made while the caller uses this one
                yield outcome[0]
        finally:
            if worker.tasks:  # stopped early: the worker is making an item nobody will read
                self._discard(worker)

    def _send(self, worker: _Worker, index: int, message: Any) -> None:
        """Hand task ``index`` to ``worker``; its time limit runs from now if the worker was idle
        (from its start, plus the time it may take to start, if it has not started yet)."""
        if not worker.tasks:
            start = 0.0 if worker.ready else _START_S
            worker.deadline = time.monotonic() + start + self.timeout_s
        worker.tasks.append(index)
        # A worker that died meanwhile is seen through its sentinel when awaited.
        with contextlib.suppress(OSError):
            worker.conn.send(message)

    def _await(self, worker: _Worker) -> Any:
        """The answer to ``worker``'s one task: its value or a :class:`Failure`."""
        while True:
            timeout = max(0.0, worker.deadline - time.monotonic())
            ready = set(wait([worker.conn, worker.process.sentinel], timeout))
            outcome = self._outcome(worker, ready, deque())
            if outcome is not None:
                return outcome[1]

    def _outcome(
        self, worker: _Worker, ready: set[Any], pending: deque[int]
    ) -> tuple[int, R | Failure] | None:
        """The task ``worker`` finished, if any. A worker that had to stop is replaced and the
        tasks queued behind the failed one go back to ``pending``."""
        task = worker.tasks[0]
        # Polled again: a worker may answer and then die (of the next task) after ``ready`` was
        # taken; its answer, still in the pipe, is read before its death is seen.
        if worker.conn in ready or worker.conn.poll():
            try:
                kind, value = wire.receive(worker.conn)
            except (EOFError, OSError):
                pass  # it died while answering: a crash, seen through its exit code below
            except (wire.WireError, ValueError):  # not an answer: whatever runs there is not ours
                worker.process.kill()
                worker.tasks.popleft()
                self._replace(worker, pending)
                return task, Failure("crashed", "its worker sent something that is not an answer")
            else:
                if kind in ("ready", "alive"):  # started, or its task made progress
                    worker.ready = True
                    worker.deadline = time.monotonic() + self.timeout_s
                    return None
                worker.tasks.popleft()
                worker.deadline = time.monotonic() + self.timeout_s  # the next task starts
                if kind == "ok":
                    return task, value
                if kind == "memory":
                    self._replace(worker, pending)  # it exits after a MemoryError
                    return task, Failure(
                        "out_of_memory", f"it needed more than the {self.memory_mb} MB allowed"
                    )
                error, remote = value
                raise error from RemoteTraceback(remote)
        if worker.process.sentinel in ready or not worker.process.is_alive():
            worker.process.join()
            code = worker.process.exitcode
            if code is not None and code >= 0:
                # Python itself stopped (an error at start-up, a bug): not the input's doing.
                raise RuntimeError(
                    f"a sandbox worker exited with status {code} without answering; "
                    "see its error output above"
                )
            worker.tasks.popleft()
            self._replace(worker, pending)
            return task, Failure("crashed", f"its worker died ({_describe_exit(code)})")
        if time.monotonic() >= worker.deadline:
            worker.process.kill()
            worker.tasks.popleft()
            self._replace(worker, pending)
            return task, Failure("timeout", f"it ran longer than {self.timeout_s:g} s")
        return None

    def _start(self) -> _Worker:
        parent, child = self._context.Pipe()
        memory = None if self.memory_mb is None else self.memory_mb * _MIB
        process = self._context.Process(
            target=serve, args=(child, self.fn, memory, os.getpid(), self.setup), daemon=True
        )
        with _script_hidden(self.fn):
            process.start()
        child.close()  # the worker's end: closing ours lets recv() see the worker's death
        return _Worker(process, parent)

    def _discard(self, worker: _Worker) -> None:
        """Kill ``worker`` and forget it (a fresh one starts when needed)."""
        worker.process.kill()
        worker.process.join()
        worker.conn.close()
        if worker in self._workers:  # not when the sandbox was closed first
            self._workers.remove(worker)

    def _replace(self, worker: _Worker, pending: deque[int]) -> None:
        """Swap a stopped worker for a fresh one (in place, so iteration order holds); the
        tasks still queued in it go back to the front of ``pending``."""
        worker.process.join()
        worker.conn.close()
        pending.extendleft(reversed(worker.tasks))
        fresh = self._start()
        worker.process, worker.conn, worker.tasks = fresh.process, fresh.conn, deque()
        worker.ready = False  # its next task's time limit allows for the fresh one's start


@contextlib.contextmanager
def _script_hidden(fn: Callable[..., Any]) -> Iterator[None]:
    """While a worker starts: the parent's ``__main__`` without ``__spec__`` and ``__file__``, so
    that ``spawn`` does not run the caller's script again in the worker (a script without an
    ``if __name__ == "__main__":`` guard would start workers from there, and fail). Kept as it is
    when ``fn`` is defined in ``__main__``: the worker needs the script to find it."""
    main = sys.modules.get("__main__")
    if main is None or getattr(fn, "__module__", None) == "__main__":
        yield
        return
    names = ("__spec__", "__file__")
    with _MAIN_LOCK:
        saved = {name: vars(main)[name] for name in names if name in vars(main)}
        vars(main).pop("__file__", None)
        vars(main)["__spec__"] = None
        try:
            yield
        finally:
            for name in names:
                vars(main).pop(name, None)
            vars(main).update(saved)


def _describe_exit(code: int | None) -> str:
    """``killed by SIGSEGV`` for a worker stopped by a signal (a negative exit code)."""
    if code is None:
        return "stopped, cause unknown"
    name = signal.Signals(-code).name
    hint = ", perhaps the out-of-memory killer" if name == "SIGKILL" else ""
    return f"killed by {name}{hint}"
