"""Drawing a prediction on a video's frames: the face box, the top classes, a timeline strip.

Everything draws in place on ``uint8 (H, W, 3)`` RGB frames with OpenCV. The timeline strip is
drawn once per video (:func:`timeline_strip`: each column is the frame at that point of the
video, coloured by its top class, brighter the more probable) and revealed up to the current
frame with a cursor (:func:`draw_strip`), so that it runs as the video plays.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

BOX_RGB = (0, 255, 0)
"""The face box's colour (pure green, 2 pixels wide)."""
BOX_THICKNESS = 2
_NO_SCORE_RGB = np.array([90, 90, 90], np.float32)
_PALETTE = np.array(  # one colour per class (tab10), RGB
    [
        [31, 119, 180],
        [255, 127, 14],
        [44, 160, 44],
        [214, 39, 40],
        [148, 103, 189],
        [140, 86, 75],
        [227, 119, 194],
        [127, 127, 127],
        [188, 189, 34],
        [23, 190, 207],
    ],
    np.float32,
)
_FONT = cv2.FONT_HERSHEY_SIMPLEX


def class_colour(index: int) -> np.ndarray:
    """The RGB colour ``(3,)`` of class ``index`` (the palette repeats after 10)."""
    return _PALETTE[index % len(_PALETTE)]


def strip_height(frame_height: int) -> int:
    """Height in pixels of the timeline strip on a frame ``frame_height`` pixels high."""
    return max(6, frame_height // 12)


def draw_box(frame: np.ndarray, box: Sequence[float]) -> None:
    """Draw the face box ``(x1, y1, x2, y2)`` (pixels) on ``frame``."""
    x1, y1, x2, y2 = (round(value) for value in box)
    cv2.rectangle(frame, (x1, y1), (x2, y2), BOX_RGB, BOX_THICKNESS)


def draw_classes(frame: np.ndarray, classes: Sequence[str], probs: np.ndarray, top: int) -> None:
    """Write the ``top`` most probable classes with their probabilities at the top left, on a
    darkened panel; nothing when ``probs`` ``(K,)`` holds NaN (the frame was not scored)."""
    if np.isnan(probs).any():
        return
    height = frame.shape[0]
    scale = max(0.3, height / 480 * 0.6)
    line = max(10, round(26 * scale))
    order = np.argsort(-probs)[:top]
    lines = [(f"{classes[i]} {probs[i]:.2f}", int(i)) for i in order]
    width = max(cv2.getTextSize(text, _FONT, scale, 1)[0][0] for text, _ in lines) + 8
    panel = frame[: line * len(lines) + 4, :width]
    panel[:] = (panel.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40%
    for row, (text, index) in enumerate(lines):
        colour = tuple(int(c) for c in class_colour(index))
        cv2.putText(frame, text, (4, line * (row + 1) - 2), _FONT, scale, colour, 1, cv2.LINE_AA)


def timeline_strip(probs: np.ndarray, width: int, height: int) -> np.ndarray:
    """The strip ``uint8 (height, width, 3)`` of a video whose frames have the class
    probabilities ``probs`` ``(N, K)`` (NaN rows: not scored): column ``x`` shows frame
    ``floor(x * N / width)``, in its top class's colour scaled by that class's probability."""
    frames = len(probs)
    columns = np.minimum((np.arange(width) * frames) // max(width, 1), frames - 1)  # (W,)
    chosen = probs[columns]  # (W, K)
    scored = ~np.isnan(chosen).any(axis=1)
    colours = np.tile(_NO_SCORE_RGB, (width, 1))  # (W, 3)
    if scored.any():
        top = np.nanargmax(np.where(scored[:, None], chosen, 0.0), axis=1)
        strength = chosen[np.arange(width), top]
        shade = 0.35 + 0.65 * strength[:, None]
        colours[scored] = (_PALETTE[top % len(_PALETTE)] * shade)[scored]
    return np.repeat(colours.astype(np.uint8)[None], height, axis=0)


def draw_strip(frame: np.ndarray, strip: np.ndarray, position: float) -> None:
    """Draw ``strip`` at the bottom of ``frame``, revealed up to ``position`` (0-1 of the
    video) where a white cursor stands; the part still to come is dark."""
    height, width = strip.shape[:2]
    cursor = min(width - 1, round(position * (width - 1)))
    band = frame[-height:]
    band[:, : cursor + 1] = strip[:, : cursor + 1]
    band[:, cursor + 1 :] = (band[:, cursor + 1 :].astype(np.uint16) // 4).astype(np.uint8)
    band[:, cursor] = 255
