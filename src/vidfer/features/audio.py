"""The audio modality: openSMILE's INTERSPEECH 2010 paralinguistic features of a video's sound.

Kahou et al. (§3) and Xu et al. classify each video's audio by the 1582 features of the IS10
paralinguistic challenge set (openSMILE, ``IS10_paraling_compat.conf``, shipped in the
``opensmile`` package), reduced by PCA, with an RBF SVM. Here PyAV decodes the first audio stream
of the video file itself (no separate wav), mixes it down to mono and resamples it to 16 kHz, and
openSMILE's functionals over the whole signal give one vector per video.

A video without an audio stream, or whose audio is too short for the functionals, has no vector:
:class:`AudioFeatures` says why (``no_audio``, ``too_short``), and the pipelines and the fusion
treat it as a missing modality instead of failing.
"""

from __future__ import annotations

import functools
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av
import numpy as np

from vidfer.errors import CorruptVideoError

RATE = 16_000
"""Sampling rate of the signal given to openSMILE (Hz)."""
IS10_SIZE = 1582
"""Features of the IS10 paralinguistic set."""


@dataclass(frozen=True)
class AudioFeatures:
    """One video's audio features, or why it has none.

    Attributes:
        status: ``ok``, ``no_audio`` (no audio stream) or ``too_short``.
        features: ``(1582,)`` float32 when ``ok``, else None.
        seconds: Duration of the decoded audio.
    """

    status: str
    features: np.ndarray | None
    seconds: float


def audio_signal(path: str | os.PathLike[str]) -> np.ndarray | None:
    """The first audio stream, mono, 16 kHz, float32 in [-1, 1]; None without one.

    Raises:
        CorruptVideoError: if the container or the audio stream cannot be decoded.
    """
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


def _is10_config() -> str:
    import opensmile

    root = Path(opensmile.__file__).parent / "core" / "config" / "is09-13"
    return str(root / "IS10_paraling_compat.conf")


@functools.cache
def _smile() -> Any:
    """One openSMILE extractor for the process (building it parses the configuration)."""
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
