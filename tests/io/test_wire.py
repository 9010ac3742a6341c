"""The sandbox's transport: what a worker sends is rebuilt without unpickling anything."""

from __future__ import annotations

import json
import pickle
from multiprocessing import Pipe
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pytest

from reliability_helpers import answer_with, answer_with_a_pickle
from vidfer.data.dataset import Draw
from vidfer.errors import CorruptVideoError
from vidfer.io import wire
from vidfer.io.sandbox import Failure, Sandbox


def round_trip(value: object) -> object:
    sender, receiver = Pipe()
    wire.send(sender, value)
    return wire.receive(receiver)


class Pair(NamedTuple):
    """A named tuple outside vidfer: refused."""

    left: int
    right: str


def test_answers_come_back_equal_with_their_types():
    frames = np.arange(2 * 3 * 4 * 3, dtype=np.uint8).reshape(2, 3, 4, 3)
    value = {
        "frames": frames,
        "strided": frames[:, ::2, ::-1],  # not contiguous
        "scores": np.float32([0.5, np.nan]),
        "scalar": np.int64(7),
        "empty": np.zeros((0, 5), dtype=np.float64),
        1: (None, True, 2.5, "é", b"\x00raw", Path("a/b.mp4"), {3, 4}),
        "failure": Failure("timeout", "it ran longer than 1 s"),
        "draw": Draw(3, np.array([0, 8]), 5, False),
        "errors": [CorruptVideoError("v.mp4", "damaged"), ValueError("bad", 3)],
    }
    back = round_trip(value)
    assert isinstance(back, dict)
    np.testing.assert_array_equal(back["frames"], frames)
    np.testing.assert_array_equal(back["strided"], frames[:, ::2, ::-1])
    assert back["frames"].flags.writeable  # as pickle's arrays are
    np.testing.assert_array_equal(back["scores"], value["scores"])
    assert back["scalar"] == 7 and isinstance(back["scalar"], np.int64)
    assert back["empty"].shape == (0, 5)
    assert back[1] == value[1]
    assert back["failure"] == value["failure"]
    assert type(back["draw"]) is Draw and back["draw"].video == 3 and back["draw"].seed == 5
    corrupt, plain = back["errors"]
    assert type(corrupt) is CorruptVideoError and (corrupt.path, corrupt.reason) == (
        "v.mp4",
        "damaged",
    )
    assert type(plain) is ValueError and plain.args == ("bad", 3)


def test_a_pickle_or_a_forged_header_is_refused_and_nothing_runs(tmp_path):
    trap = tmp_path / "unpickled"
    sender, receiver = Pipe()
    sender.send_bytes(pickle.dumps(("ok", answer_with_a_pickle)))
    with pytest.raises(wire.WireError):
        wire.receive(receiver)
    wire.send(sender, Pair(1, "x"))  # a class of another package: refused
    with pytest.raises(wire.WireError, match="not one of vidfer's classes"):
        wire.receive(receiver)
    forged = [
        {"v": {"c": "os:system", "t": [f"touch {trap}"]}, "n": []},  # not vidfer's
        {"v": {"c": "builtins:eval", "t": ["1"]}, "n": []},  # not a class
        {"v": {"c": "builtins:object", "f": {}}, "n": []},  # not a dataclass
        {"v": {"c": "vidfer.io.sandbox:Failure", "f": {"__class__": 1}}, "n": []},  # no such field
        {"v": {"a": 0, "dtype": "|O", "shape": [1], "s": False}, "n": [8]},  # object array
        {"v": {"a": 0, "dtype": "<f4", "shape": [9], "s": False}, "n": [4]},  # wrong size
    ]
    for header in forged:
        sender.send_bytes(json.dumps(header).encode())
        for size in header["n"]:
            sender.send_bytes(b"\x00" * size)
        with pytest.raises(wire.WireError):
            wire.receive(receiver)
    # an exception of a foreign class arrives as a RuntimeError with its text
    foreign = {"v": {"e": "subprocess:CalledProcessError", "args": [1, "x"], "text": "t"}, "n": []}
    sender.send_bytes(json.dumps(foreign).encode())
    error = wire.receive(receiver)
    assert type(error) is RuntimeError and str(error) == "CalledProcessError: t"
    assert not trap.exists()


def test_a_worker_that_sends_a_pickle_is_quarantined_and_nothing_is_unpickled(tmp_path):
    trap = tmp_path / "unpickled"
    with Sandbox(answer_with_a_pickle, 1, timeout_s=30, memory_mb=512) as sandbox:
        outcomes = dict(sandbox.map([(str(trap),)]))
    assert isinstance(outcomes[0], Failure) and outcomes[0].status == "crashed"
    assert "not an answer" in outcomes[0].reason
    assert not trap.exists()


@pytest.mark.parametrize("what", ["object", "lambda"])
def test_a_value_the_transport_does_not_carry_is_raised_in_the_parent(what):
    with Sandbox(answer_with, 1, timeout_s=30, memory_mb=512) as sandbox:
        with pytest.raises(RuntimeError, match="cannot be sent from a sandboxed worker"):
            list(sandbox.map([(what,)]))
        assert dict(sandbox.map([("text",)])) == {0: "text"}  # the worker goes on
