"""Similarity alignment of faces to a canonical 5-point template, and mean-shape templates.

A similarity transform (rotation, uniform scale, translation) is fitted by least squares from a
face's landmarks to the template (``cv2.estimateAffinePartial2D``), from all 5 points or from the
two eyes only (Xu et al.'s two-eye alignment), and the frame is warped with ``cv2.warpAffine``.
Kahou et al. instead align every face of a dataset to the dataset's mean shape: see
:func:`mean_shape` and :func:`mean_shape_template`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

# The widely used 5-point reference of 112x112 face crops (ArcFace/InsightFace), divided by 112:
# left eye, right eye, nose tip, left and right mouth corners (left = image left).
_REFERENCE = (
    np.array(
        [
            [38.2946, 51.6963],
            [73.5318, 51.5014],
            [56.0252, 71.7366],
            [41.5493, 92.3655],
            [70.7299, 92.2041],
        ],
        dtype=np.float64,
    )
    / 112.0
)

# RANSAC with an unbounded inlier threshold keeps every point; OpenCV's final refinement over the
# inliers then gives the least-squares similarity (its exact minimiser: the problem is linear).
_ALL_INLIERS = 1e9


@dataclass(frozen=True)
class AlignedFaces:
    """Aligned face crops.

    Attributes:
        crops: ``(T, S, S, C)`` uint8, ``C`` = 3 (RGB) or 1 (grayscale).
        matrices: ``(T, 2, 3)`` float32 maps from frame pixels to crop pixels.
    """

    crops: np.ndarray
    matrices: np.ndarray


def template_points(size: int = 112, margin: float = 0.0) -> np.ndarray:
    """Where the 5 landmarks land in a ``size x size`` aligned crop.

    Args:
        size: Crop side in pixels.
        margin: Fraction of ``size`` added as border on each side around the reference layout
            (0 gives the ArcFace layout; larger values show more of the head and background).

    Returns:
        ``(5, 2)`` float32 ``(x, y)``: left eye, right eye, nose, left and right mouth corners.
    """
    if not 0 <= margin < 0.5:
        raise ValueError(f"margin must be in [0, 0.5), got {margin}")
    return (size * (margin + (1 - 2 * margin) * _REFERENCE)).astype(np.float32)


def similarity_matrix(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform mapping ``src`` points onto ``dst`` points.

    Args:
        src: ``(k, 2)`` points, ``k >= 2``.
        dst: ``(k, 2)`` target points.

    Returns:
        ``(2, 3)`` float64 matrix ``[[s cos, -s sin, tx], [s sin, s cos, ty]]``.
    """
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(src, np.float32).reshape(-1, 1, 2),
        np.asarray(dst, np.float32).reshape(-1, 1, 2),
        method=cv2.RANSAC,
        ransacReprojThreshold=_ALL_INLIERS,
    )
    if matrix is None:
        raise ValueError("no similarity transform fits these points (are they all equal?)")
    return matrix


def box_matrix(box: np.ndarray, size: int, margin: float = 0.0) -> np.ndarray:
    """Scale-and-shift matrix that maps the square around a box's centre onto the crop.

    The fallback alignment for faces without landmarks: the square of side ``max(w, h)`` fills the
    crop inside the margin.

    Returns:
        ``(2, 3)`` float64 matrix.
    """
    x1, y1, x2, y2 = (float(v) for v in box)
    side = max(x2 - x1, y2 - y1, 1.0)
    scale = size * (1 - 2 * margin) / side
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    return np.array(
        [[scale, 0.0, size / 2 - scale * cx], [0.0, scale, size / 2 - scale * cy]], np.float64
    )


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Apply affine matrices to points.

    Args:
        points: ``(k, 2)`` points, or ``(N, k, 2)`` with one matrix per row.
        matrix: ``(2, 3)``, or ``(N, 2, 3)``.

    Returns:
        The mapped points, float64, shaped like ``points``.
    """
    pts = np.asarray(points, np.float64)
    m = np.asarray(matrix, np.float64)
    # (..., k, 2) @ (..., 2, 2) + (..., 1, 2)
    return pts @ np.swapaxes(m[..., :2], -1, -2) + m[..., None, :, 2]


def _finish(crop: np.ndarray, grayscale: bool, equalize: bool) -> np.ndarray:
    """Convert an RGB crop to the requested channels, ``(S, S, C)``."""
    if grayscale:
        gray = cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY)
        if equalize:
            gray = cv2.equalizeHist(gray)
        return gray[:, :, None]  # (S, S) -> (S, S, 1)
    if equalize:
        # Equalise brightness only, so that colours keep their hue.
        ycrcb = cv2.cvtColor(crop, cv2.COLOR_RGB2YCrCb)
        ycrcb[:, :, 0] = cv2.equalizeHist(ycrcb[:, :, 0])
        return cv2.cvtColor(ycrcb, cv2.COLOR_YCrCb2RGB)
    return crop


def warp_faces(
    frames: np.ndarray,
    matrices: np.ndarray,
    size: int,
    *,
    grayscale: bool = False,
    equalize: bool = False,
) -> np.ndarray:
    """Warp each frame with its matrix into a ``size x size`` crop.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB.
        matrices: ``(T, 2, 3)`` maps from frame pixels to crop pixels.
        size: Crop side.
        grayscale: Return one gray channel.
        equalize: Histogram-equalise (the gray channel, or the luma of an RGB crop).

    Returns:
        ``(T, size, size, C)`` uint8 with ``C`` = 1 if ``grayscale`` else 3.
    """
    channels = 1 if grayscale else 3
    out = np.empty((len(frames), size, size, channels), np.uint8)
    for i, (frame, matrix) in enumerate(zip(frames, matrices, strict=True)):
        crop = cv2.warpAffine(
            frame,
            np.asarray(matrix, np.float64),
            (size, size),
            flags=cv2.INTER_LINEAR,
            borderMode=cv2.BORDER_CONSTANT,
            borderValue=(0, 0, 0),
        )
        out[i] = _finish(crop, grayscale, equalize)
    return out


def alignment_matrices(
    landmarks: np.ndarray | None,
    boxes: np.ndarray | None,
    size: int,
    *,
    margin: float = 0.0,
    template: np.ndarray | None = None,
    eyes_only: bool = False,
) -> np.ndarray:
    """Per-face similarity matrices to the template, with a box fallback.

    Args:
        landmarks: ``(T, k, 2)`` with ``k`` = 5 (MTCNN) or 2 (eyes); a face whose points contain
            NaN, or all faces when None, fall back to its box.
        boxes: ``(T, 4)`` boxes for the fallback; may be None when every face has landmarks.
        size: Crop side.
        margin: Template margin (see :func:`template_points`).
        template: ``(5, 2)`` crop points to align to instead of :func:`template_points` (e.g. a
            :func:`mean_shape_template`).
        eyes_only: Fit from the two eyes only, even when 5 points are given.

    Returns:
        ``(T, 2, 3)`` float32.
    """
    dst = template_points(size, margin) if template is None else np.asarray(template, np.float32)
    count = len(landmarks) if landmarks is not None else len(boxes) if boxes is not None else 0
    matrices = np.empty((count, 2, 3), np.float32)
    for i in range(count):
        points = None if landmarks is None else landmarks[i]
        if points is not None and not np.isnan(points).any():
            k = 2 if eyes_only else min(len(points), len(dst))
            matrices[i] = similarity_matrix(points[:k], dst[:k])
        elif boxes is not None and not np.isnan(boxes[i]).any():
            matrices[i] = box_matrix(boxes[i], size, margin)
        else:
            raise ValueError(f"face {i} has neither landmarks nor a box to align from")
    return matrices


def align_faces(
    frames: np.ndarray,
    landmarks: np.ndarray | None,
    *,
    boxes: np.ndarray | None = None,
    size: int = 112,
    margin: float = 0.0,
    template: np.ndarray | None = None,
    eyes_only: bool = False,
    grayscale: bool = False,
    equalize: bool = False,
) -> AlignedFaces:
    """Align one face per frame to the template.

    Args:
        frames: ``(T, H, W, 3)`` uint8 RGB.
        landmarks: ``(T, k, 2)`` per-frame face landmarks (``k`` = 5 or 2), or None.
        boxes: ``(T, 4)`` per-frame boxes, used where landmarks are missing (NaN or None).
        size: Crop side in pixels.
        margin: Template margin (see :func:`template_points`).
        template: ``(5, 2)`` crop points to align to, e.g. from :func:`mean_shape_template`.
        eyes_only: Fit from the two eyes only (rotation and scale from the eye line).
        grayscale: Return one gray channel.
        equalize: Histogram-equalise the crops.

    Returns:
        Crops ``(T, size, size, C)`` and matrices ``(T, 2, 3)``.
    """
    matrices = alignment_matrices(
        landmarks, boxes, size, margin=margin, template=template, eyes_only=eyes_only
    )
    crops = warp_faces(frames, matrices, size, grayscale=grayscale, equalize=equalize)
    return AlignedFaces(crops, matrices)


def normalise_shape(shape: np.ndarray) -> np.ndarray:
    """Centre a ``(k, 2)`` shape on its centroid and scale it to unit RMS radius."""
    centred = np.asarray(shape, np.float64) - np.mean(shape, axis=0)
    radius = np.sqrt(np.mean(np.sum(centred**2, axis=1)))
    if radius == 0:
        raise ValueError("a landmark shape with all points equal cannot be normalised")
    return centred / radius


def mean_shape(landmarks_list: Sequence[np.ndarray] | np.ndarray) -> np.ndarray:
    """Mean landmark shape of a dataset, after normalising each shape's position and scale.

    Kahou et al. re-align datasets that used different face pipelines by mapping each dataset's
    mean shape onto a common one; this is that mean. Shapes containing NaN are skipped.

    Args:
        landmarks_list: ``(k, 2)`` shapes (or an ``(N, k, 2)`` array), e.g. all MTCNN landmarks of
            a training set.

    Returns:
        ``(k, 2)`` float32 mean of the normalised shapes (centred, unit RMS radius).
    """
    shapes = [normalise_shape(s) for s in landmarks_list if not np.isnan(s).any()]
    if not shapes:
        raise ValueError("mean_shape needs at least one landmark shape without NaN")
    return normalise_shape(np.mean(shapes, axis=0)).astype(np.float32)


def mean_shape_template(shape: np.ndarray, size: int = 112, margin: float = 0.0) -> np.ndarray:
    """Place a (normalised) mean shape in the crop, where the canonical template would be.

    The mean shape keeps its own proportions; one similarity fitted between it and
    :func:`template_points` fixes its position, scale and rotation, so faces aligned to the result
    share the dataset's typical geometry at the crop layout of every other vidfer pipeline.

    Returns:
        ``(k, 2)`` float32 crop points, usable as ``template`` of :func:`align_faces`.
    """
    dst = template_points(size, margin)[: len(shape)]
    return transform_points(shape, similarity_matrix(shape, dst)).astype(np.float32)
