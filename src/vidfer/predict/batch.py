"""``vidfer predict`` on many videos in one process.

The model is loaded once. A reader thread opens the videos in order and reads their pieces
through one long-lived sandboxed decoding worker (:func:`vidfer.data.stream.decoding_sandbox`),
a bounded queue ahead of the scoring: the next video is decoded (and its faces detected) while
the current one is scored, and memory holds a few pieces whatever the videos' lengths.

Each video gets its own folder under the output folder (the single-video outputs:
``timeline.csv``, ``timeline.png``, ``summary.json``, written last); ``index.csv`` lists every
video with its status, label, class probabilities, output folder and reason, rewritten
atomically after each video. A video that cannot be read (missing, corrupt, crashed its decoder,
too short) is listed with its status and the others go on.

A rerun into the same folder skips the videos already done: those whose folder holds a
``summary.json`` and those the index lists as failed (unless ``retry_failed``), so that a run
killed half-way resumes where it stopped.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import queue
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vidfer.data.stream import VideoStream, decoding_sandbox
from vidfer.errors import ConfigError, VidferError
from vidfer.io.atomic import atomic_write_text
from vidfer.predict.annotate import ANNOTATED
from vidfer.predict.inputs import resolve_inputs
from vidfer.predict.outputs import Prediction
from vidfer.predict.predictor import Predictor
from vidfer.predict.video import make_predictor
from vidfer.progress import RateBar

INDEX = "index.csv"
_BASE_COLUMNS = ("video", "status", "label")
_TAIL_COLUMNS = ("output", "reason")
_QUEUE_PIECES = 2  # pieces read ahead of the scoring


@dataclass(frozen=True)
class IndexRow:
    """One video of ``index.csv``.

    Attributes:
        video: The video's absolute path.
        status: ``ok``, the prediction's other status (``no_face``, ...) or why it failed
            (``missing``, ``corrupt``, ``crashed``, ``timeout``, ``too_short``, ``error``, ...).
        label: Predicted class, ``""`` without a prediction.
        probabilities: Class -> video probability (empty without a prediction).
        output: The video's output folder, relative to the index's folder.
        reason: Why there is no prediction, for a human.
    """

    video: str
    status: str
    label: str
    probabilities: dict[str, float]
    output: str
    reason: str

    @property
    def failed(self) -> bool:
        """True when the video could not be scored (nothing in its folder)."""
        return self.status not in _PREDICTION_STATUSES


_PREDICTION_STATUSES = frozenset({"ok", "no_face", "no_audio", "no_motion"})


@dataclass(frozen=True)
class BatchResult:
    """What :func:`predict_many` did.

    Attributes:
        index: The ``index.csv`` file.
        rows: Every video of this call, in the order given.
        predicted: Videos scored by this call.
        skipped: Videos already done by an earlier call.
        failed: Videos of this call that could not be scored.
        frames: Frames scored by this call.
        seconds: Wall time of this call.
    """

    index: Path
    rows: list[IndexRow]
    predicted: int
    skipped: int
    failed: int
    frames: int
    seconds: float


def _read_index(path: Path, classes: Sequence[str]) -> dict[str, IndexRow]:
    """The rows of an existing index, by video."""
    if not path.is_file():
        return {}
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        expected = [*_BASE_COLUMNS, *[f"p_{name}" for name in classes], *_TAIL_COLUMNS]
        if reader.fieldnames != expected:
            raise ConfigError(
                f"{path}: written for other classes or by another version "
                f"(columns {reader.fieldnames}); predict into another --out folder"
            )
        return {
            row["video"]: IndexRow(
                video=row["video"],
                status=row["status"],
                label=row["label"],
                probabilities={n: float(row[f"p_{n}"]) for n in classes if row[f"p_{n}"]},
                output=row["output"],
                reason=row["reason"],
            )
            for row in reader
        }


def _index_csv(rows: Sequence[IndexRow], classes: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow([*_BASE_COLUMNS, *[f"p_{name}" for name in classes], *_TAIL_COLUMNS])
    for row in rows:
        probs = [
            f"{row.probabilities[name]:.6f}" if name in row.probabilities else ""
            for name in classes
        ]
        writer.writerow([row.video, row.status, row.label, *probs, row.output, row.reason])
    return buffer.getvalue()


def _folder_names(videos: Sequence[Path]) -> list[str]:
    """One folder name per video: its file name without the extension, with a hash of its path
    when another video of the list has the same name."""
    stems = Counter(video.stem for video in videos)
    return [
        video.stem
        if stems[video.stem] == 1
        else f"{video.stem}-{hashlib.sha1(str(video).encode()).hexdigest()[:8]}"
        for video in videos
    ]


def _done_row(video: str, folder: Path, output: str, also: str | None) -> IndexRow | None:
    """The row of a video whose folder holds a complete prediction (and the file ``also``),
    else None."""
    path = folder / "summary.json"
    if not path.is_file() or (also is not None and not (folder / also).is_file()):
        return None
    summary = json.loads(path.read_text(encoding="utf-8"))
    return IndexRow(
        video=video,
        status=summary["status"],
        label=summary["label"] or "",
        probabilities=summary["probabilities"],
        output=output,
        reason=summary.get("reason") or "",
    )


class _Reader:
    """Opens the videos and reads their pieces in a thread, a bounded queue ahead.

    The queue holds ``(video number, kind, value)``: ``open`` (the :class:`VideoStream`), then
    ``piece`` (an array) per piece, then ``end``; or ``error`` (the exception) in their place.
    """

    def __init__(self, predictor: Predictor, videos: Sequence[Path]) -> None:
        self.predictor = predictor
        self.videos = videos
        self._queue: queue.Queue[tuple[int, str, Any]] = queue.Queue(maxsize=_QUEUE_PIECES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="vidfer-reader", daemon=True)
        self._current = 0

    def __enter__(self) -> _Reader:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _put(self, item: tuple[int, str, Any]) -> bool:
        """Queue ``item``; False when the reader was told to stop."""
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        with decoding_sandbox(self.predictor.limits) as sandbox:
            for number, path in enumerate(self.videos):
                try:
                    stream = self.predictor.open(path, sandbox)
                    if not self._put((number, "open", stream)):
                        return
                    for _, piece in stream.pieces():
                        if not self._put((number, "piece", piece)):
                            return
                    item: tuple[int, str, Any] = (number, "end", None)
                except Exception as error:  # handed over: raised where the video is scored
                    item = (number, "error", error)
                if not self._put(item):
                    return

    def _get(self, number: int) -> tuple[str, Any]:
        """The next item of video ``number``, those of earlier (abandoned) videos dropped."""
        while True:
            try:
                got, kind, value = self._queue.get(timeout=1.0)
            except queue.Empty:
                if not self._thread.is_alive():  # it ended without handing the video over
                    raise RuntimeError(
                        "the video reader thread stopped; see the error above"
                    ) from None
                continue
            if got == number:
                if kind == "error":
                    raise value
                return kind, value

    def open(self, number: int) -> VideoStream:
        """Video ``number``'s stream.

        Raises:
            VidferError: what opening it raised.
        """
        kind, value = self._get(number)
        assert kind == "open", kind
        return value

    def pieces(self, number: int, counted: list[int]) -> Iterator[np.ndarray]:
        """Video ``number``'s pieces; their frames are added to ``counted[0]``."""
        while True:
            kind, value = self._get(number)
            if kind == "end":
                return
            counted[0] += len(value)
            yield value


def _row(video: str, prediction: Prediction, output: str) -> IndexRow:
    return IndexRow(
        video=video,
        status=prediction.status,
        label=prediction.label or "",
        probabilities=prediction.probabilities,
        output=output,
        reason="",
    )


@dataclass(frozen=True)
class _Todo:
    """A video to score: its path, its key in the index, its output folder's name."""

    video: Path
    key: str
    output: str


@dataclass
class _Index:
    """``index.csv``: its rows by video key (those of an earlier call first), rewritten whole."""

    path: Path
    classes: list[str]
    rows: dict[str, IndexRow] = field(init=False)

    def __post_init__(self) -> None:
        self.rows = _read_index(self.path, self.classes)

    def write(self) -> None:
        """Write every row atomically."""
        atomic_write_text(self.path, _index_csv(list(self.rows.values()), self.classes))


def _todo(
    videos: Sequence[Path],
    keys: Sequence[str],
    out: Path,
    rows: dict[str, IndexRow],
    *,
    annotate: bool,
    retry_failed: bool,
) -> list[_Todo]:
    """The videos still to score, in order; those already done get their row in ``rows``."""
    todo = []
    for video, key, name in zip(videos, keys, _folder_names(videos), strict=True):
        known = rows.get(key)
        output = known.output if known is not None else name
        done = _done_row(key, out / output, output, ANNOTATED if annotate else None)
        if done is not None:
            rows[key] = done
        elif known is None or not known.failed or retry_failed:
            todo.append(_Todo(video, key, output))
    return todo


def _score_all(
    predictor: Predictor, todo: Sequence[_Todo], out: Path, index: _Index, *, annotate: bool
) -> tuple[int, int]:
    """Score the videos, read a queue ahead, the index rewritten after each; returns the frames
    scored and the videos that failed."""
    frames, failed = [0], 0
    with (
        RateBar(len(todo), "predict", "frames") as bar,
        _Reader(predictor, [item.video for item in todo]) as reader,
    ):
        for number, item in enumerate(todo):
            before = frames[0]
            try:
                stream = reader.open(number)
                prediction = predictor.predict(
                    item.video, stream, reader.pieces(number, frames), out / item.output
                )
                if annotate:
                    predictor.annotate(item.video, prediction.out_dir)
                index.rows[item.key] = _row(item.key, prediction, item.output)
            except VidferError as error:
                failed += 1
                status = str(getattr(error, "status", "error"))
                index.rows[item.key] = IndexRow(item.key, status, "", {}, item.output, str(error))
            index.write()
            bar.advance(1, frames[0] - before)
    return frames[0], failed


def predict_many(
    inputs: Sequence[str | Path],
    out_dir: str | Path,
    run_folder: str | Path | None = None,
    *,
    chunk_frames: int | None = None,
    retry_failed: bool = False,
    annotate: bool = False,
    exported: str | Path | None = None,
    frame_folder_fps: float | None = None,
    predictor: Predictor | None = None,
    device: str | None = None,
) -> BatchResult:
    """Score many videos with one model in one process; see the module's text.

    Args:
        inputs: Video files, folders, glob patterns and manifests
            (:func:`vidfer.predict.inputs.resolve_inputs`).
        out_dir: Output folder: ``index.csv`` and one folder per video.
        run_folder: A trained run or a ``vidfer video-attention`` output; None uses the
            pretrained FER2013 mini-Xception on faces.
        chunk_frames: Frames per piece, as in :func:`vidfer.predict.predict_video`.
        retry_failed: Score again the videos an earlier call listed as failed.
        annotate: Also write each video's ``annotated.mp4`` (a video is done only with it).
        exported: A ``vidfer export`` folder to score with (:func:`make_predictor`).
        frame_folder_fps: The frame rate of frame folders, as in
            :func:`vidfer.predict.predict_video`.
        predictor: A ready predictor (then ``run_folder``, ``chunk_frames``, ``exported``,
            ``frame_folder_fps`` and ``device`` are not read).
        device: Where the face detector and the model run, as in
            :func:`vidfer.predict.predict_video`.

    Raises:
        ConfigError: if an input names nothing, or ``out_dir``'s index was written for other
            classes.
        ManifestError: if a manifest is invalid.
        CheckpointError: if ``run_folder`` is not a trained run.
    """
    started = time.monotonic()
    videos = resolve_inputs(inputs)
    out = Path(out_dir)
    if predictor is None:
        predictor = make_predictor(
            run_folder,
            chunk_frames=chunk_frames,
            exported=exported,
            frame_folder_fps=frame_folder_fps,
            device=device,
        )
    index = _Index(out / INDEX, predictor.classes)
    keys = [str(video.absolute()) for video in videos]
    todo = _todo(videos, keys, out, index.rows, annotate=annotate, retry_failed=retry_failed)
    out.mkdir(parents=True, exist_ok=True)
    frames, failed = _score_all(predictor, todo, out, index, annotate=annotate)
    index.write()
    return BatchResult(
        index=index.path,
        rows=[index.rows[key] for key in keys if key in index.rows],
        predicted=len(todo) - failed,
        skipped=len(videos) - len(todo),
        failed=failed,
        frames=frames,
        seconds=time.monotonic() - started,
    )
