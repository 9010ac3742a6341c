"""Fault injection for the reliability tests: real crashes at chosen points.

Off unless the environment variable ``VIDFER_FAULTS`` holds a JSON object mapping an injection
point to ``{name: fault}``, e.g.::

    VIDFER_FAULTS='{"decode": {"bad.mp4": "segv"}, "load": {"videos/left/1": "kill"}}'

Points: ``decode`` (in a decoding worker, before decoding the file of that name), ``audio`` (in
an audio worker, before decoding the sound of the file of that name) and ``load`` (in a
data-loader worker, before loading the video of that ``video_id``). Faults: ``segv``
(the process receives SIGSEGV, as when a native decoder crashes), ``kill`` (SIGKILL, as from the
out-of-memory killer), ``hang`` (the process sleeps forever, as on a stalled read) and ``hog``
(the process fills memory, 64 MiB at a time up to 2 GiB, as a decoder on a hostile file may).
The faults are real signals, sleeps and allocations in real processes; only their timing is
chosen.
"""

from __future__ import annotations

import json
import os
import signal
import time

ENV = "VIDFER_FAULTS"
_SIGNALS = {"segv": signal.SIGSEGV, "kill": signal.SIGKILL}
_HOG_STEP, _HOG_TOTAL = 64 << 20, 2 << 30


def inject(point: str, name: str) -> None:
    """Trigger the fault configured for ``name`` at ``point``, if any (else return at once)."""
    spec = os.environ.get(ENV)
    if not spec:
        return
    fault = json.loads(spec).get(point, {}).get(name)
    if fault in _SIGNALS:
        os.kill(os.getpid(), _SIGNALS[fault])
    elif fault == "hang":
        while True:
            time.sleep(3600)
    elif fault == "hog":
        # Touched pages, so that the memory is really used; freed when the function returns.
        held = [bytearray(b"\x01" * _HOG_STEP) for _ in range(_HOG_TOTAL // _HOG_STEP)]
        del held
