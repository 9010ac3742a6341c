"""Faces in videos: detection (MTCNN, Haar), main-face tracks, similarity alignment, crops.

The entry point is :func:`process_faces` with a :class:`FaceConfig`; the parts are usable alone.
Detectors are imported lazily by :func:`get_detector`, so importing this package loads no weights.
"""

from vidfer.faces.align import (
    AlignedFaces,
    align_faces,
    mean_shape,
    mean_shape_template,
    template_points,
)
from vidfer.faces.pipeline import FaceConfig, FaceDetector, FaceResult, get_detector, process_faces
from vidfer.faces.tracks import FaceTrack, track_main_face
from vidfer.faces.types import FrameFaces

__all__ = [
    "AlignedFaces",
    "FaceConfig",
    "FaceDetector",
    "FaceResult",
    "FaceTrack",
    "FrameFaces",
    "align_faces",
    "get_detector",
    "mean_shape",
    "mean_shape_template",
    "process_faces",
    "template_points",
    "track_main_face",
]
