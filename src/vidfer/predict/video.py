"""``vidfer predict VIDEO``: a model applied to a new video.

With ``--run RUN`` the trained run's model scores the video with the run's own preprocessing (face
pipeline included when the run used one: :mod:`vidfer.predict.run_predictor`). Without a run, the
pretrained FER2013 mini-Xception scores the aligned face of every frame
(:mod:`vidfer.predict.fer`). The outputs (timeline, summary, plot) are those of
:mod:`vidfer.predict.outputs`.
"""

from __future__ import annotations

from pathlib import Path

from vidfer.data.stream import decoding_sandbox
from vidfer.errors import ConfigError
from vidfer.io.frame_folder import FRAME_FOLDER_FPS
from vidfer.io.run_folder import RunDir
from vidfer.predict.fer import FER_PIECE_FRAMES, FerPredictor
from vidfer.predict.outputs import Prediction
from vidfer.predict.predictor import Predictor


def make_predictor(
    run_folder: str | Path | None = None,
    *,
    chunk_frames: int | None = None,
    exported: str | Path | None = None,
    frame_folder_fps: float | None = None,
    device: str | None = None,
) -> Predictor:
    """The predictor of a trained run, or of the default FER model when ``run_folder`` is None.

    Args:
        run_folder: A trained run or a ``vidfer video-attention`` output, or None.
        chunk_frames: Frames per piece (see :func:`predict_video`).
        exported: A ``vidfer export`` folder whose model (ONNX Runtime or TorchScript) scores
            in place of the PyTorch one; None: PyTorch.
        frame_folder_fps: The frame rate of frame folders; None takes the run's
            ``data.frame_folder_fps`` (the default model: 25).
        device: Where the face detector and the model run (``auto``, ``cpu``, ``cuda``,
            ``cuda:N``; an ``exported`` model scores on the CPU); None: as the run's config
            says (``data.prepare.faces.device``, ``train.device``; the default model: the
            detector on ``auto``, the model on the CPU).

    Raises:
        CheckpointError: if ``run_folder`` is not a trained run.
        ConfigError: if ``exported`` holds no export, or one of another model, or
            ``frame_folder_fps`` is not positive, or ``device`` is not a device (or CUDA
            without a GPU).
    """
    if frame_folder_fps is not None and not frame_folder_fps > 0:
        raise ConfigError(f"--frame-folder-fps must be > 0, got {frame_folder_fps}")
    runner = None
    if exported is not None:
        from vidfer.export import load_exported  # the export runtimes only when asked for

        runner, meta = load_exported(exported)
        expected = "fer2013_mini_xception" if run_folder is None else "a clip run's model"
        if (run_folder is None) != (meta["model"] == "fer2013_mini_xception"):
            raise ConfigError(f"{exported}: exports {meta['model']}, not {expected}")
    if run_folder is None:
        rate = frame_folder_fps or FRAME_FOLDER_FPS
        return FerPredictor(chunk_frames or FER_PIECE_FRAMES, runner, rate, device)
    # A run's predictor imports the pipelines and trainers: the default model does without.
    from vidfer.predict.run_predictor import RunPredictor

    return RunPredictor(
        RunDir(run_folder),
        chunk_frames,
        None if exported is None else Path(exported),
        frame_folder_fps,
        device,
    )


def predict_video(
    video: str | Path,
    out_dir: str | Path,
    run_folder: str | Path | None = None,
    *,
    chunk_frames: int | None = None,
    annotate: bool = False,
    exported: str | Path | None = None,
    frame_folder_fps: float | None = None,
    device: str | None = None,
) -> Prediction:
    """Score ``video`` and write the timeline, summary and plot into ``out_dir``.

    The video is decoded, its faces detected and aligned (when the run uses them) and scored in
    chunks, so that memory does not grow with its length (frame-feature runs excepted: they read
    the whole video). A sparse auto-encoder run computes its block features chunk by chunk and
    holds only them, one vector per block, for its bidirectional LSTM; an activity run holds
    only the codes of its moving blocks.

    Args:
        video: The video file, or a frame folder (a folder of ``.png``/``.jpg``/``.bmp`` frames
            in natural order: :mod:`vidfer.io.frame_folder`).
        out_dir: Output folder.
        run_folder: A trained run or a ``vidfer video-attention`` output; None uses the
            pretrained FER2013 mini-Xception on faces.
        chunk_frames: Frames per chunk; None takes the run's ``eval.chunk_frames`` (the default
            model: ``FER_PIECE_FRAMES``). The scores do not depend on it.
        annotate: Also write ``annotated.mp4``, the video with the prediction drawn on it
            (:mod:`vidfer.predict.annotate`).
        exported: A ``vidfer export`` folder to score with (ONNX Runtime or TorchScript)
            instead of the PyTorch model (:func:`make_predictor`).
        frame_folder_fps: The frame rate of a frame folder (times in the timeline); None takes
            the run's ``data.frame_folder_fps`` (the default model: 25).
        device: Where the face detector and the model run (``auto``, ``cpu``, ``cuda``,
            ``cuda:N``; an ``exported`` model scores on the CPU); None: as the run's config
            says (``data.prepare.faces.device``, ``train.device``; the default model: the
            detector on ``auto``, the model on the CPU).

    Raises:
        VideoError: if the video cannot be decoded (the message names the file); a
            :class:`~vidfer.errors.QuarantinedVideoError` (status ``crashed``, ``timeout`` or
            ``out_of_memory``) if it crashed, stalled or exhausted its sandboxed decoding worker.
            Nothing is written then.
        CheckpointError: if ``run_folder`` is not a trained run.
        AssetError: if the default model's weights have not been fetched.
        ConfigError: if ``frame_folder_fps`` is not positive, or ``annotate`` is asked of a
            frame folder, or ``device`` is not a device (or CUDA without a GPU).
    """
    path = Path(video)
    if annotate and path.is_dir():
        raise ConfigError(f"{path}: a frame folder; --annotate draws on video files only")
    predictor = make_predictor(
        run_folder,
        chunk_frames=chunk_frames,
        exported=exported,
        frame_folder_fps=frame_folder_fps,
        device=device,
    )
    # One decoding worker for the detection pass and the scoring pass (a second worker's start
    # would cost about half a second).
    with decoding_sandbox(predictor.limits) as sandbox:
        stream = predictor.open(path, sandbox)
        prediction = predictor.predict(
            path, stream, (piece for _, piece in stream.pieces()), Path(out_dir)
        )
    if annotate:
        predictor.annotate(path, prediction.out_dir)
    return prediction
