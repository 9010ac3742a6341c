"""The audio modality: openSMILE's INTERSPEECH 2010 paralinguistic features of a video's sound.

Kahou et al. (§3) and Xu et al. classify each video's audio by the 1582 features of the IS10
paralinguistic challenge set (openSMILE, ``IS10_paraling_compat.conf``, shipped in the
``opensmile`` package), reduced by PCA, with an RBF SVM. Here PyAV decodes the first audio stream
of the video file itself (no separate wav), mixes it down to mono and resamples it to 16 kHz, and
openSMILE's functionals over the whole signal give one vector per video.

openSMILE is the optional ``audio`` extra (``pip install 'vidfer[audio]'``), imported only when
features are computed; without it, :func:`require_audio` (called before any work) raises
:class:`vidfer.errors.MissingExtraError` saying so.

A video without an audio stream, or whose audio is too short for the functionals, has no vector:
:class:`AudioFeatures` says why (``no_audio``, ``too_short``), and the pipelines and the fusion
treat it as a missing modality instead of failing.

The sound of untrusted files is decoded in sandboxed worker processes
(:func:`map_sandboxed_audio_features`, :func:`sandboxed_audio_features`; :mod:`vidfer.io.sandbox`,
under ``data.limits.decode_timeout_s`` and ``decode_memory_mb``, as ``vidfer prepare`` decodes the
frames): a sound that cannot be decoded (``corrupt_audio``), or whose worker crashed, overran its
time or its memory (``crashed``, ``timeout``, ``out_of_memory``), is one more reason for a missing
modality, and the calling process goes on.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidfer import faults
from vidfer.config import LimitsConfig
from vidfer.data.preprocess import quarantine_error
from vidfer.errors import CorruptVideoError, MissingExtraError
from vidfer.io.sandbox import Failure, Sandbox

RATE = 16_000
"""Sampling rate of the signal given to openSMILE (Hz)."""
IS10_SIZE = 1582
"""Features of the IS10 paralinguistic set."""
AUDIO_EXTRA = "pip install 'vidfer[audio]'"


@dataclass(frozen=True)
class AudioFeatures:
    """One video's audio features, or why it has none.

    Attributes:
        status: ``ok``, ``no_audio`` (no audio stream) or ``too_short``; from the sandboxed
            functions also ``corrupt_audio`` (the sound cannot be decoded), ``crashed``,
            ``timeout`` or ``out_of_memory`` (its worker did not return).
        features: ``(1582,)`` float32 when ``ok``, else None.
        seconds: Duration of the decoded audio (0 when it could not be decoded).
        reason: Why the sound cannot be used and what to do, for the sandboxed functions'
            failures; else empty.
    """

    status: str
    features: np.ndarray | None
    seconds: float
    reason: str = ""


def audio_signal(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The first audio stream, mono, 16 kHz, float32 in [-1, 1]; None without one (a frame
    folder has none).

    Raises:
        CorruptVideoError: if the container or the audio stream cannot be decoded.
    """
    if Path(path).is_dir():
        return None
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                return None
            stream = container.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            chunks: list[np.ndarray] = []
            for frame in container.decode(stream):
                chunks.extend(out.to_ndarray() for out in resampler.resample(frame))
            chunks.extend(out.to_ndarray() for out in resampler.resample(None))  # flush
    except (av.error.FFmpegError, ValueError) as error:
        raise CorruptVideoError(path, f"audio cannot be decoded ({error})") from None
    if not chunks:
        return np.zeros(0, dtype=np.float32)
    # Packed s16 mono frames: (1, n) each -> (samples,)
    return np.concatenate(chunks, axis=1)[0].astype(np.float32) / 32768.0


def require_audio() -> None:
    """Check that openSMILE (the ``audio`` extra) is installed, without importing it.

    Raises:
        MissingExtraError: if it is not.
    """
    if importlib.util.find_spec("opensmile") is None:
        raise MissingExtraError(
            f"openSMILE audio features (frames.extractors: {{audio: is10}}) need the audio "
            f"extra: {AUDIO_EXTRA}"
        )


def _is10_config() -> str:
    require_audio()
    import opensmile

    root = Path(opensmile.__file__).parent / "core" / "config" / "is09-13"
    return str(root / "IS10_paraling_compat.conf")


@functools.cache
def _smile() -> Any:
    """One openSMILE extractor for the process (building it parses the configuration)."""
    require_audio()
    import opensmile

    return opensmile.Smile(feature_set=_is10_config(), feature_level="func")


def is10_features(signal: np.ndarray) -> np.ndarray | None:
    """The 1582 IS10 functionals of a 16 kHz mono signal (None if it is too short for them)."""
    smile = _smile()
    with warnings.catch_warnings():
        # openSMILE warns and fills NaN for segments too short for its windows.
        warnings.simplefilter("ignore", UserWarning)
        values = smile.process_signal(signal, RATE).to_numpy(dtype=np.float32)[0]
    return values if np.isfinite(values).all() else None


def audio_features(path: str | os.PathLike[str]) -> AudioFeatures:
    """IS10 features of a video file's sound, or the reason there are none.

    Raises:
        CorruptVideoError: if the file cannot be decoded.
    """
    signal = audio_signal(path)
    if signal is None:
        return AudioFeatures("no_audio", None, 0.0)
    seconds = len(signal) / RATE
    values = is10_features(signal) if len(signal) else None
    if values is None:
        return AudioFeatures("too_short", None, seconds)
    return AudioFeatures("ok", values, seconds)


_WITHOUT = (
    "the video goes on without its sound; re-encode the sound "
    "(ffmpeg -i VIDEO -c:v copy -c:a aac FIXED.mp4) to use it"
)


def _audio_task(path: str) -> AudioFeatures:
    """Sandboxed worker entry point: :func:`audio_features`, ``corrupt_audio`` when the sound
    cannot be decoded."""
    faults.inject("audio", Path(path).name)
    try:
        return audio_features(path)
    except CorruptVideoError as error:
        reason = f"corrupt_audio: {error.reason}; {_WITHOUT}"
        return AudioFeatures("corrupt_audio", None, 0.0, reason)


def map_sandboxed_audio_features(
    paths: Sequence[str | os.PathLike[str]], limits: LimitsConfig, workers: int
) -> Iterator[tuple[int, AudioFeatures]]:
    """:func:`audio_features` of every file, each decoded in a sandboxed worker.

    Args:
        paths: The video files.
        limits: Their limits (``decode_timeout_s`` per file, ``decode_memory_mb`` per worker).
        workers: How many files are decoded at once.

    Yields:
        ``(index in paths, features)`` in the order the files finish; a file whose sound cannot
        be decoded, or whose worker crashed or overran its time or memory, has no features and
        a status and reason saying so.

    Raises:
        MissingExtraError: without the audio extra (before any worker starts).
    """
    require_audio()
    tasks = [(str(path),) for path in paths]
    with Sandbox(
        _audio_task, workers, timeout_s=limits.decode_timeout_s, memory_mb=limits.decode_memory_mb
    ) as sandbox:
        for index, found in sandbox.map(tasks):
            if isinstance(found, Failure):
                what = f"{found.status}: decoding its sound failed"
                error = quarantine_error(paths[index], found, limits, what)
                reason = f"{error.reason}; {_WITHOUT}"
                found = AudioFeatures(found.status, None, 0.0, reason)
            yield index, found


def sandboxed_audio_features(path: str | os.PathLike[str], limits: LimitsConfig) -> AudioFeatures:
    """:func:`audio_features` of one file, decoded in a sandboxed worker (``vidfer predict``).

    Returns:
        Its features, or none and the status and reason (as :func:`map_sandboxed_audio_features`).
    """
    [(_, found)] = map_sandboxed_audio_features([path], limits, 1)
    return found
