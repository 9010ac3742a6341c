"""What a sandboxed worker sends its parent: JSON for the structure, raw bytes for the arrays.

A worker decodes untrusted files, so a decoder exploited by a crafted file could make it send
anything. The parent therefore never unpickles a worker's answer: an answer is one JSON header
(the value's structure, with every array and byte string replaced by a reference) followed by
the arrays' and byte strings' raw buffers, each its own message. Reading it back can only make:

- JSON's values (None, bools, numbers, strings, lists);
- tuples, dicts (any JSON-able keys), sets, paths, bytes;
- NumPy arrays and scalars of plain dtypes (no object arrays), rebuilt from their bytes;
- dataclasses and named tuples *defined in vidfer and already imported* (by field, as pickle
  would: no ``__init__`` is run for a dataclass);
- exceptions of builtin or vidfer classes, rebuilt from their ``__reduce__`` arguments as pickle
  would; any other exception arrives as a RuntimeError with its class name and text.

Nothing is imported and no other class is instantiated, whatever the header says. Encoding a
value of another type is a programming error (TypeError) in the worker, which reports it.
"""

from __future__ import annotations

import builtins
import dataclasses
import json
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path, PurePath
from typing import Any, cast

import numpy as np

HEADER_LIMIT = 64 << 20
"""Largest JSON header read (bytes): the structure of an answer, never its arrays."""


class WireError(Exception):
    """An answer that is not in this format (a worker that went wrong, or worse)."""


def send(conn: Connection, value: Any) -> None:
    """Send ``value`` over ``conn``: its header, then one message per buffer.

    Raises:
        TypeError: if ``value`` holds a type this format does not carry.
    """
    buffers: list[memoryview] = []
    header = json.dumps({"v": _encode(value, buffers), "n": [b.nbytes for b in buffers]})
    conn.send_bytes(header.encode("utf-8"))
    for buffer in buffers:
        conn.send_bytes(buffer)


def carries(value: Any) -> bool:
    """Whether :func:`send` can send ``value``."""
    try:
        _encode(value, [])
    except TypeError:
        return False
    return True


def receive(conn: Connection) -> Any:
    """Read one value sent by :func:`send`.

    Raises:
        WireError: if what arrives is not a value in this format.
        EOFError, OSError: if the sender is gone.
    """
    try:
        header = json.loads(conn.recv_bytes(HEADER_LIMIT))
        sizes = [int(size) for size in header["n"]]
    except (ValueError, TypeError, KeyError) as error:
        raise WireError(f"not an answer: {error}") from None
    buffers = []
    for size in sizes:
        buffer = bytearray(size)  # writable, as pickle's arrays are
        if conn.recv_bytes_into(buffer) != size:
            raise WireError("a buffer's length differs from its header's")
        buffers.append(buffer)
    try:
        return _decode(header["v"], buffers)
    except (ValueError, TypeError, KeyError, IndexError, AttributeError) as error:
        raise WireError(f"not an answer: {type(error).__name__}: {error}") from None


def _encode(value: Any, buffers: list[memoryview]) -> Any:
    """The JSON tree of ``value``; arrays and bytes are appended to ``buffers``."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int | float) and type(value) in (int, float):
        return value
    if isinstance(value, np.ndarray | np.generic):
        array = np.asarray(value)  # a scalar: 0-d
        if not array.flags.c_contiguous:
            array = array.copy(order="C")
        if array.dtype.hasobject:
            raise TypeError("an object array cannot be sent")
        buffers.append(memoryview(array.reshape(-1).view(np.uint8)))  # type: ignore[arg-type]
        scalar = isinstance(value, np.generic)
        return {"a": len(buffers) - 1, "dtype": array.dtype.str, "shape": array.shape, "s": scalar}
    if isinstance(value, bytes | bytearray):
        buffers.append(memoryview(value))
        return {"b": len(buffers) - 1}
    if isinstance(value, PurePath):
        return {"p": str(value)}
    if isinstance(value, BaseException):
        reduced = cast(tuple[type, tuple[Any, ...]], value.__reduce__())  # (class, args[, ...])
        cls, args = reduced[0], reduced[1]  # what pickle would call to rebuild it
        return {
            "e": _name(cls),
            "args": [_encode(arg, buffers) for arg in args],
            "text": str(value),
        }
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {
            f.name: _encode(getattr(value, f.name), buffers) for f in dataclasses.fields(value)
        }
        return {"c": _name(type(value)), "f": fields}
    if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
        return {"c": _name(type(value)), "t": [_encode(item, buffers) for item in value]}
    if isinstance(value, tuple):
        return {"t": [_encode(item, buffers) for item in value]}
    if isinstance(value, list):
        return [_encode(item, buffers) for item in value]
    if isinstance(value, set | frozenset):
        return {"set": [_encode(item, buffers) for item in value]}
    if isinstance(value, dict):
        return {"d": [[_encode(k, buffers), _encode(v, buffers)] for k, v in value.items()]}
    raise TypeError(
        f"a value of type {type(value).__name__!r} cannot be sent from a sandboxed worker"
    )


def _decode(tree: Any, buffers: list[bytearray]) -> Any:
    """The value of a JSON tree made by :func:`_encode`."""
    if tree is None or isinstance(tree, bool | int | float | str):
        return tree
    if isinstance(tree, list):
        return [_decode(item, buffers) for item in tree]
    if not isinstance(tree, dict):
        raise TypeError(f"unexpected {type(tree).__name__}")

    def items(key: str) -> list[Any]:
        return [_decode(item, buffers) for item in tree[key]]

    if "a" in tree:
        dtype = np.dtype(tree["dtype"])
        if dtype.hasobject:
            raise TypeError("object arrays are not carried")
        array = np.frombuffer(buffers[tree["a"]], dtype=dtype).reshape(tree["shape"])
        return array[()] if tree["s"] else array
    if "b" in tree:
        return bytes(buffers[tree["b"]])
    if "p" in tree:
        return Path(str(tree["p"]))
    if "e" in tree:
        return _error(str(tree["e"]), items("args"), str(tree["text"]))
    if "c" in tree:
        cls = _known_class(str(tree["c"]))
        if "t" in tree and issubclass(cls, tuple) and hasattr(cls, "_fields"):
            return cls(*items("t"))
        if "f" in tree and dataclasses.is_dataclass(cls):
            instance = object.__new__(cls)
            names = {f.name for f in dataclasses.fields(cls)}
            for name, value in tree["f"].items():
                if name not in names:
                    raise KeyError(f"{cls.__name__} has no field {name!r}")
                object.__setattr__(instance, name, _decode(value, buffers))
            return instance
        raise TypeError(f"{tree['c']} is not a dataclass or named tuple")
    if "t" in tree:
        return tuple(items("t"))
    if "set" in tree:
        return set(items("set"))
    if "d" in tree:
        return {_decode(k, buffers): _decode(v, buffers) for k, v in tree["d"]}
    raise TypeError(f"unknown tag in {sorted(tree)}")


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _known_class(name: str) -> type:
    """A class of vidfer's already imported modules (or a builtin one) by ``module:qualname``.

    Raises:
        TypeError: for any other name: nothing is imported.
    """
    module_name, _, qualname = name.partition(":")
    if not (module_name == "builtins" or module_name.split(".")[0] == "vidfer"):
        raise TypeError(f"{name} is not one of vidfer's classes")
    found: Any = builtins if module_name == "builtins" else sys.modules.get(module_name)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    if not isinstance(found, type):
        raise TypeError(f"{name} is not a class of an imported module")
    return found


def _error(name: str, args: list[Any], text: str) -> BaseException:
    """The exception ``name(*args)``, or a RuntimeError with its text for another class."""
    try:
        cls = _known_class(name)
    except TypeError:
        cls = None
    if cls is None or not issubclass(cls, Exception):
        return RuntimeError(f"{name.rpartition(':')[2]}: {text}")
    make: Callable[..., BaseException] = cls
    try:
        return make(*args)
    except Exception:  # its constructor takes other arguments than its __reduce__ gives
        return RuntimeError(f"{cls.__name__}: {text}")
