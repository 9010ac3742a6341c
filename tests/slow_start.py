"""A sandbox task whose module takes ``VIDFER_TEST_START_S`` seconds to import, so that its
workers start slowly, as they do on a loaded machine."""

from __future__ import annotations

import os
import time

from reliability_helpers import misbehave

time.sleep(float(os.environ.get("VIDFER_TEST_START_S", "0")))


def misbehave_after_a_slow_start(what: str) -> str:
    """:func:`misbehave`, in a worker that took a while to start."""
    return misbehave(what)
