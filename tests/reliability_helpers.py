"""Shared by the reliability tests: real ``vidfer`` subprocesses and a tiny, fast run config."""

from __future__ import annotations

import json
import multiprocessing
import os
import pickle
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from vidfer.io.sandbox_worker import heartbeat

from helpers import vidfer_main_in_child


def vidfer_env(**extra: str) -> dict[str, str]:
    """The environment of a ``vidfer`` subprocess: one intra-op thread, like the test process,
    and wide output lines (rich wraps at ``COLUMNS``), so that messages are matched whole."""
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "VIDFER_PROGRESS": "0",
        "COLUMNS": "1000",
        **extra,
    }


def vidfer_argv(*args: str) -> list[str]:
    """The command line of ``vidfer ARGS`` run by this interpreter."""
    return [sys.executable, "-m", "vidfer", *args]


def run_vidfer(
    *args: str, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``vidfer ARGS`` to its end in a fresh ``vidfer`` process and return the completed
    process (output captured)."""
    return subprocess.run(
        vidfer_argv(*args),
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env or vidfer_env(),
    )


class ForkedVidfer:
    """``vidfer ARGS`` in a forked child of this (test) process, with what the kill tests use of
    ``subprocess.Popen`` (``pid``, ``poll``, ``returncode``, ``communicate``): a real process to
    SIGKILL, without the seconds a fresh interpreter spends importing torch and the pipelines.
    Its stderr goes to the file ``stderr`` when given (else to this process's), in the
    environment of :func:`vidfer_env` with ``env`` added."""

    def __init__(
        self, *args: str, stderr: Path | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.args, self.stderr = args, stderr
        self.process = multiprocessing.get_context("fork").Process(
            target=_vidfer_main, args=(args, stderr, env or {})
        )
        self.process.start()
        self.pid = self.process.pid

    def poll(self) -> int | None:
        """The exit status (``-N`` when killed by signal ``N``), or None while it runs."""
        return self.process.exitcode

    @property
    def returncode(self) -> int | None:
        """The exit status, as :meth:`poll`."""
        return self.process.exitcode

    def communicate(self, timeout: float) -> tuple[None, str]:
        """Wait for the end; (None, what it wrote to its ``stderr`` file, or "").

        Raises:
            subprocess.TimeoutExpired: the child killed, if it ran longer than ``timeout``
                (as ``subprocess.run`` does).
        """
        self.process.join(timeout)
        if self.process.exitcode is None:
            self.process.kill()
            self.process.join()
            raise subprocess.TimeoutExpired(["vidfer", *self.args], timeout)
        return None, "" if self.stderr is None else self.stderr.read_text()


def _vidfer_main(args: tuple[str, ...], stderr: Path | None, env: dict[str, str]) -> None:
    """A forked child's ``vidfer ARGS``, exiting with its status."""
    err = 2 if stderr is None else os.open(stderr, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
    vidfer_main_in_child(args, 1, err, vidfer_env(**env))


def write_run_config(folder: Path, manifest: Path, **sections: dict[str, Any]) -> Path:
    """A small run config (16-pixel frames, 4-frame clips, a narrow 3D ResNet) at ``folder``."""
    config: dict[str, Any] = {
        "seed": 5,
        "data": {"manifest": str(manifest), "prepare": {"size": 16}, "workers": 1},
        "sampler": {"name": "uniform", "clip_len": 4},
        "transforms": {"size": 16, "flip": 0.5, "rotation": 10},
        "model": {
            "name": "resnet3d_18",
            "params": {"width": 0.125, "dropout_input": 0.1, "dropout_features": 0.3},
        },
        "optim": {"schedule": "none"},
        "train": {"epochs": 2, "batch_size": 1, "checkpoint_every_steps": 1},
    }
    for key, value in sections.items():
        config[key] = {**config.get(key, {}), **value}
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def sidecar(run: Path) -> dict[str, Any] | None:
    """The JSON sidecar of ``RUN/checkpoints/last.pt`` (None while absent or being replaced)."""
    try:
        return dict(json.loads((run / "checkpoints" / "last.json").read_text()))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def wait_until(
    condition: Callable[[], bool], process: subprocess.Popen[Any], timeout: float
) -> bool:
    """Poll ``condition`` every 5 ms while ``process`` runs; True once it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        if condition():
            return True
        time.sleep(0.005)
    return False


def misbehave(what: str) -> str:
    """A task for the sandbox tests: answer, raise, or crash, hang or fill memory for real."""
    if what == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif what == "hang":
        time.sleep(3600)
    elif what == "hog":
        held = [bytearray(b"\x01" * (64 << 20)) for _ in range(32)]  # 2 GiB, touched
        del held
    elif what == "raise":
        raise ValueError(f"cannot handle {what!r}")
    return what.upper()


def store_records(folder: Path) -> list[Path]:
    """The entry records of a prepared-store folder (not its settings, not temporary files)."""
    return sorted(
        path
        for path in folder.glob("*.json")
        if not path.name.startswith(".") and path.name != "prepare.json"
    )


def work_in_steps(steps: int, seconds: float, beat: bool) -> int:
    """A sandbox task of ``steps`` steps of ``seconds`` each, calling ``heartbeat`` after each
    step when ``beat``."""
    for _ in range(steps):
        time.sleep(seconds)
        if beat:
            heartbeat()
    return steps


def misbehave_later(what: str, items: int) -> Iterator[str]:
    """A stream for the sandbox tests: ``items`` items, then what :func:`misbehave` does."""
    for index in range(items):
        yield f"{what}{index}"
    yield misbehave(what)


def count_into(log: str, items: int) -> Iterator[int]:
    """A stream for the sandbox tests that notes each item in ``log`` as it makes it."""
    for index in range(items):
        with open(log, "a", encoding="ascii") as handle:
            handle.write(f"{index}\n")
        yield index


class _Trap:
    """Unpickling it creates the file ``path``: proof that someone unpickled it."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def answer_with_a_pickle(trap: str) -> str:
    """A task for the sandbox tests: what an exploited decoder could do. It finds its worker's
    connection to the parent and sends a pickle that creates ``trap`` when unpickled."""
    import gc
    from multiprocessing.connection import Connection

    conn = next(obj for obj in gc.get_objects() if isinstance(obj, Connection))
    conn.send_bytes(pickle.dumps(("ok", _Trap(trap))))
    conn.send_bytes(pickle.dumps(_Trap(trap)))
    time.sleep(3600)  # the parent must not wait for anything else
    return "never"


def answer_with(what: str) -> object:
    """A task for the sandbox tests returning a value the transport does not carry (or
    ``what`` itself)."""
    return {"object": object(), "lambda": lambda: None}.get(what, what)


def assert_same_tensors(expected: Any, actual: Any, what: str) -> None:
    """Equal nested checkpoint states: tensors bit for bit, other values by ``==``."""
    import torch  # here: the sandbox tests' workers import this module for their tasks

    if isinstance(expected, torch.Tensor):
        assert torch.equal(expected, actual), what
    elif isinstance(expected, dict):
        assert expected.keys() == actual.keys(), what
        for key in expected:
            assert_same_tensors(expected[key], actual[key], f"{what}.{key}")
    elif isinstance(expected, list | tuple):
        assert len(expected) == len(actual), what
        for i, (one, two) in enumerate(zip(expected, actual, strict=True)):
            assert_same_tensors(one, two, f"{what}[{i}]")
    else:
        assert expected == actual, what
