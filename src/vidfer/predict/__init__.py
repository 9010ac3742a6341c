"""A trained run (or the default FER model) applied to new videos.

- :mod:`vidfer.predict.video`: one video: timeline, summary and plot (``vidfer predict VIDEO``);
  :class:`~vidfer.predict.video.Predictor`, a model loaded once for many videos;
- :mod:`vidfer.predict.inputs`: files, folders, globs and manifests -> the videos;
- :mod:`vidfer.predict.batch`: many videos in one process, with an index and resume;
- :mod:`vidfer.predict.live`: a camera, stream, file in real time or pipe (``vidfer live``).
"""

from vidfer.predict.batch import BatchResult, IndexRow, predict_many
from vidfer.predict.video import (
    FER_PIECE_FRAMES,
    FER_PREPARE,
    FER_SMOOTHING,
    Prediction,
    Predictor,
    make_predictor,
    predict_video,
)

__all__ = [
    "FER_PIECE_FRAMES",
    "FER_PREPARE",
    "FER_SMOOTHING",
    "BatchResult",
    "IndexRow",
    "Prediction",
    "Predictor",
    "make_predictor",
    "predict_many",
    "predict_video",
]
