"""A trained run (or the default FER model) applied to new videos.

- :mod:`vidfer.predict.video`: one video: timeline, summary and plot (``vidfer predict VIDEO``);
- :mod:`vidfer.predict.predictor`: :class:`~vidfer.predict.predictor.Predictor`, a model loaded
  once for many videos: the default FER model's (:mod:`vidfer.predict.fer`) or a trained run's
  (:mod:`vidfer.predict.run_predictor`, imported only for a run);
- :mod:`vidfer.predict.outputs`: the timeline, summary and plot written for one video;
- :mod:`vidfer.predict.inputs`: files, folders, globs and manifests -> the videos;
- :mod:`vidfer.predict.batch`: many videos in one process, with an index and resume;
- :mod:`vidfer.predict.live`: a camera, stream, file in real time or pipe (``vidfer live``).
"""

from vidfer.predict.batch import BatchResult, IndexRow, predict_many
from vidfer.predict.fer import FER_PIECE_FRAMES, FER_PREPARE, FER_SMOOTHING
from vidfer.predict.outputs import Prediction
from vidfer.predict.predictor import Predictor
from vidfer.predict.video import make_predictor, predict_video

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
