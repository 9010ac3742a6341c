"""``vidfer live SOURCE``: predictions on a camera, a stream, a file in real time or a pipe."""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import IO, Any

from vidfer.cli.common import MODEL_DEVICE_HELP, Add, add_device_flag, err_console
from vidfer.io.atomic import atomic_write_json


def _line(out: IO[str], record: dict[str, Any]) -> None:
    out.write(json.dumps(record) + "\n")
    out.flush()


def _cmd_live(args: argparse.Namespace) -> int:
    from vidfer.predict.live import LiveOptions, run_live

    options = LiveOptions(
        realtime=args.realtime,
        pipe_format=args.pipe_format,
        preview=False if args.no_preview else None,
        threads=args.threads,
        device=args.device,
    )
    session = run_live(args.source, args.run, options)
    previous = signal.signal(signal.SIGINT, lambda *_: session.stop())  # Ctrl-C: a clean stop
    try:
        with contextlib.ExitStack() as stack:
            out = (
                sys.stdout
                if args.out is None
                else stack.enter_context(Path(args.out).open("w", encoding="utf-8"))
            )  # lines as they come: not an atomic write
            for result in session:
                _line(out, result.to_json())
            _line(out, session.summary.to_json())
    finally:
        signal.signal(signal.SIGINT, previous)
    if args.summary is not None:
        atomic_write_json(Path(args.summary), session.summary.to_json())
    summary = session.summary
    if summary.status != "ok":
        err_console.print(f"vidfer: error: {summary.reason}", markup=False, soft_wrap=True)
        return 2
    return 0


def register(add: Add) -> None:
    """Add ``live``."""
    live = add(
        "live",
        _cmd_live,
        "predict on a live source (camera, stream URL, a file in real time, raw frames on a "
        "pipe) over its most recent frames: one JSON line per prediction, a summary last",
    )
    live.add_argument(
        "source",
        metavar="SOURCE",
        help="camera index (0) or device (/dev/video0), stream URL, video file, or - for raw "
        "rgb24 frames on standard input (with --pipe-format)",
    )
    live.add_argument(
        "--run", default=None, help="a trained clip run (default: FER2013 mini-Xception on faces)"
    )
    live.add_argument(
        "--realtime", action="store_true", help="play a video file at its own frame rate"
    )
    live.add_argument(
        "--pipe-format", default=None, metavar="WxH", help="frame size of the rgb24 frames on -"
    )
    live.add_argument("--out", default=None, help="write the JSON lines here (default: stdout)")
    live.add_argument(
        "--summary", default=None, metavar="FILE", help="also write the summary as this JSON file"
    )
    live.add_argument(
        "--threads", type=int, default=1, help="torch threads for scoring (default 1)"
    )
    add_device_flag(live, MODEL_DEVICE_HELP)
    live.add_argument(
        "--no-preview",
        action="store_true",
        help="never show the preview window (shown by default only when a display exists)",
    )
