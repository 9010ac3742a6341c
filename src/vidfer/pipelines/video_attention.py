"""Two-step video-level temporal attention (Ayral's thesis, §4.5.5): ``vidfer video-attention``.

Step 1: the trained 3D model of a run, frozen, turns every prepared video into a sequence of
per-step features (one dense pass per video, averaged over space) in ``RUN/features/`` (cached:
an interrupted extraction resumes, a second experiment re-extracts nothing). Step 2: a
:class:`~vidfer.models.video_attention.VideoAttentionClassifier` learns on those sequences, each
epoch seeing a random window of up to ``range_frames`` steps of every training video (the whole
video when it is shorter), and is evaluated on whole videos.

Output folder::

    OUT/settings.json               the settings and the run it builds on
    OUT/metrics.jsonl               one line per epoch
    OUT/checkpoints/best.pt         the classifier with the best validation loss (+ best.json)
    OUT/checkpoints/last.pt         after every epoch: what ``--resume`` continues (+ last.json)
    OUT/eval_<split>/               predictions.csv, metrics.json, confusion.csv, confusion.png
    OUT/attention_profiles.json     per test video: step centres, attention profile, frame labels
    OUT/attention_profiles.png      attention matrix and profile of the first test videos

``vidfer predict VIDEO --run OUT`` scores a new video as the evaluation scored the test videos
(:class:`VideoAttentionRun`): the run's frozen model turns the whole video into its feature
sequence (:func:`run_feature_sequence`, as :func:`extract_run_features` stores it), which the
classifier scores in one pass (:func:`vidfer.training.sequences.sequence_logits`, as
:func:`~vidfer.training.sequences.score_sequences` does); the attention profile gives each
step's weight.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vidfer.config import EvalConfig, RunConfig
from vidfer.config.steps import VideoAttentionSettings
from vidfer.data.dataset import VideoItem
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.data.transforms import build_clip_transform
from vidfer.device import resolve_device, seed_everything
from vidfer.errors import CheckpointError, ConfigError
from vidfer.evaluation.evaluate import EvalOutcome, write_evaluation
from vidfer.evaluation.scoring import ScoreMap, feature_sequence
from vidfer.features.store import FeatureStore, file_identity
from vidfer.io.atomic import atomic_write_json
from vidfer.io.checkpoint import load_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models.base import VideoModel
from vidfer.models.trained import load_run_model
from vidfer.models.video_attention import VideoAttentionClassifier, attention_profile
from vidfer.pipelines.base import Scored, Scorer
from vidfer.progress import track
from vidfer.training.distributed import refuse_under_torchrun
from vidfer.training.resume import record_settings
from vidfer.training.sequences import (
    LabelledSequence,
    SequenceTraining,
    fit_sequences,
    random_window,
    score_sequences,
    sequence_logits,
)
from vidfer.viz.attention import plot_attention_profiles

log = logging.getLogger(__name__)

SETTINGS = "settings.json"
"""The file of a video-attention output folder that names its settings and base run."""


@dataclass(frozen=True)
class FeatureSequence:
    """One video's stored features."""

    item: VideoItem
    features: np.ndarray  # (T', C)
    centres: np.ndarray  # (T',) frame at the centre of each step


@torch.no_grad()
def run_feature_sequence(
    model: VideoModel, config: RunConfig, frames: np.ndarray, device: torch.device
) -> ScoreMap:
    """A trained run's backbone features of prepared frames ``(T, H, W, 3)``: a map ``(F, T')``."""
    clip = build_clip_transform(config.transforms, train=False)(frames).to(device)  # (C,T,S,S)
    return feature_sequence(model, clip, config.eval)


def stored_features(sequence: ScoreMap) -> np.ndarray:
    """A feature map ``(F, T')`` as the feature store keeps it: float32 ``(T', F)``."""
    return np.ascontiguousarray(sequence.scores.float().cpu().numpy().T, dtype=np.float32)


def extract_run_features(
    run: RunDir, data: PreparedDataset, device: torch.device
) -> dict[str, FeatureSequence]:
    """Step 1: the run's frozen model over every usable video, cached in ``RUN/features/``.

    Returns:
        The sequences by video id.
    """
    config = run.config()
    checkpoint = run.best_or_last()
    identity = {"checkpoint": file_identity(checkpoint), "eval": config.eval.model_dump()}
    store = FeatureStore(run.folder / "features", identity)
    missing = [item for item in data.items if not store.has(item.key)]
    if missing:
        model, _ = load_run_model(run, device)
        for item in track(missing, total=len(missing), description="extracting features"):
            sequence = run_feature_sequence(model, config, data.store.frames(item.key), device)
            store.save(
                item.key,
                stored_features(sequence),
                {"video_id": item.row.video_id, "centres": sequence.centres.tolist()},
            )
    sequences = {}
    for item in data.items:
        features, record = store.load(item.key)
        sequences[item.row.video_id] = FeatureSequence(
            item, features, np.asarray(record["centres"])
        )
    return sequences


def _labelled(sequences: list[FeatureSequence]) -> list[LabelledSequence]:
    return [
        LabelledSequence(s.item.row.video_id, s.item.row.label_index, s.features) for s in sequences
    ]


def _evaluate(
    model: VideoAttentionClassifier, sequences: list[FeatureSequence], device: torch.device
) -> tuple[EvalOutcome, list[torch.Tensor]]:
    """Whole-video outcome and each video's attention matrix ``(T', T')``."""
    matrices: list[torch.Tensor] = []
    model.record = True
    try:
        outcome = score_sequences(
            model,
            _labelled(sequences),
            device,
            after_each=lambda: matrices.append(model.weights[0].cpu()),
        )
    finally:
        model.record = False
    return outcome, matrices


def _profiles(
    sequences: list[FeatureSequence], matrices: list[torch.Tensor], with_matrix: int = 4
) -> list[dict[str, Any]]:
    """Per video: step centres, attention profile, frame labels (and the matrix, for the first
    ``with_matrix`` videos)."""
    out = []
    for number, (sequence, matrix) in enumerate(zip(sequences, matrices, strict=True)):
        labels = sequence.item.frame_labels
        out.append(
            {
                "video_id": sequence.item.row.video_id,
                "label": sequence.item.row.label,
                "centres": sequence.centres.tolist(),
                "profile": attention_profile(matrix, len(sequence.features)).tolist(),
                "matrix": matrix.tolist() if number < with_matrix else None,
                "frame_labels": list(labels) if labels is not None else None,
            }
        )
    return out


Splits = dict[str, list[FeatureSequence]]
"""The feature sequences of the ``train``, ``val`` and ``test`` videos."""


def _split_features(run: RunDir, out: Path, device: torch.device) -> Splits:
    """Step 1 over the run's dataset (:func:`extract_run_features`), by split.

    Raises:
        ConfigError: on a dataset without train videos and val or test videos.
    """
    config = run.config()
    data = load_dataset(config.data, rejects_path=out / "rejects.jsonl")
    if not data.manifest.has_splits():
        raise ConfigError(f"{config.data.manifest}: video attention needs train/val/test splits")
    sequences = extract_run_features(run, data, device)
    split = {
        name: [sequences[item.row.video_id] for item in data.split(name)]
        for name in ("train", "val", "test")
    }
    if not split["train"] or not (split["val"] or split["test"]):
        raise ConfigError(f"{config.data.manifest}: needs train videos and val or test videos")
    return split


def _fit_classifier(
    settings: VideoAttentionSettings,
    split: Splits,
    classes: list[str],
    folder: Path,
    device: torch.device,
    *,
    resume: bool,
) -> VideoAttentionClassifier:
    """Step 2: the attention classifier trained on ``train``, stopped early on ``val`` (else
    ``test``), its checkpoints in ``folder``."""
    seed_everything(settings.seed, deterministic=True)
    channels = split["train"][0].features.shape[1]
    model = VideoAttentionClassifier(
        channels,
        len(classes),
        heads=settings.heads,
        d_att=settings.d_att,
        dropout=settings.dropout,
        positional=settings.positional,
    ).to(device)
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=settings.lr, weight_decay=settings.weight_decay
    )
    training = SequenceTraining(
        epochs=settings.epochs,
        patience=settings.patience,
        batch_size=settings.batch_size,
        clip_grad=None,
        seed=settings.seed,
        choose=random_window(settings.range_frames),
    )
    fit_sequences(
        model,
        optimizer,
        _labelled(split["train"]),
        _labelled(split["val"] or split["test"]),
        training,
        folder,
        {"classes": classes},
        device,
        resume=resume,
    )
    return model


def _write_results(
    model: VideoAttentionClassifier,
    split: Splits,
    classes: list[str],
    folder: Path,
    device: torch.device,
) -> dict[str, Any]:
    """``eval_<split>/`` of val and test, and the attention profiles of test (else val); the
    last split's metrics."""
    results: dict[str, Any] = {}
    for name in ("val", "test"):
        if split[name]:
            outcome, matrices = _evaluate(model, split[name], device)
            results = write_evaluation(folder / f"eval_{name}", outcome, classes)
            if name == "test" or not split["test"]:
                profiles = _profiles(split[name], matrices)
                atomic_write_json(folder / "attention_profiles.json", profiles)
                plot_attention_profiles(profiles[:4], folder / "attention_profiles.png")
    return results


def train_video_attention(
    run_folder: str | Path,
    out: str | Path,
    settings: VideoAttentionSettings,
    *,
    resume: bool = False,
) -> dict[str, Any]:
    """Two-step training on a trained run; writes ``out`` (see the module docstring).

    Args:
        run_folder: The trained run whose model gives the features.
        out: The output folder to create (or to continue, with ``resume``).
        settings: What to train.
        resume: Continue an interrupted training of ``out`` from its ``checkpoints/last.pt``
            (same run and settings); it ends as an uninterrupted one would.

    Returns:
        The test metrics (or the validation metrics when there is no test split).

    Raises:
        ConfigError: on invalid settings, a dataset without train and val/test splits, an
            ``out`` that holds a run (without ``resume``) or one made with other settings, or
            several processes (torchrun).
        CheckpointError: if the run has no checkpoint, or ``resume`` finds none in ``out``.
    """
    refuse_under_torchrun("video-attention")
    run = RunDir(run_folder)
    device = resolve_device(run.config().train.device)
    folder = Path(out)
    classes = run.classes()
    split = _split_features(run, folder, device)
    recorded = {"run": str(run.folder.resolve()), **settings.model_dump(mode="json")}
    resume = record_settings(folder, recorded, resume=resume)  # from an epoch checkpoint
    model = _fit_classifier(settings, split, classes, folder, device, resume=resume)
    return _write_results(model, split, classes, folder, device)


def is_video_attention_run(folder: str | Path) -> bool:
    """Whether ``folder`` is the output of ``vidfer video-attention``: its ``settings.json``
    names a base run and the attention settings (a frame run's names neither)."""
    path = Path(folder) / SETTINGS
    try:
        written = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(written, dict) and {"run", "range_frames"} <= written.keys()


class VideoAttentionRun:
    """A ``vidfer video-attention`` output folder, ready to score new videos (``vidfer
    predict``): its base run's frozen model, then its classifier (both read once, on first use).

    Args:
        folder: The output folder (``settings.json``, ``checkpoints/best.pt``).

    Raises:
        ConfigError: if ``settings.json`` is unreadable or its base run is not there.
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        path = self.folder / SETTINGS
        try:
            written = json.loads(path.read_text(encoding="utf-8"))
            base = Path(written.pop("run"))
            self.settings = VideoAttentionSettings(**written)
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise ConfigError(
                f"{path}: not the settings of a 'vidfer video-attention' output ({error}); "
                "pass the --out folder of 'vidfer video-attention'"
            ) from error
        if not RunDir(base).config_path.is_file():
            raise ConfigError(
                f"{path}: its base run {base} is not there (no config.yaml); put the run it was "
                "trained on back at that path"
            )
        self.base = RunDir(base)
        self._models: tuple[VideoModel, VideoAttentionClassifier] | None = None

    def models(self, device: torch.device) -> tuple[VideoModel, VideoAttentionClassifier]:
        """The base run's trained model and the classifier, in eval mode on ``device``.

        Raises:
            CheckpointError: if a checkpoint is missing or does not fit.
        """
        if self._models is None:
            model, _ = load_run_model(self.base, device)
            checkpoint = self.folder / "checkpoints" / "best.pt"
            state = load_checkpoint(checkpoint)["model"]
            classifier = VideoAttentionClassifier(
                int(state["norm.weight"].shape[0]),  # the features' channels C
                len(self.base.classes()),
                heads=self.settings.heads,
                d_att=self.settings.d_att,
                dropout=self.settings.dropout,
                positional=self.settings.positional,
            )
            try:
                classifier.load_state_dict(state)
            except RuntimeError as error:
                raise CheckpointError(
                    f"{checkpoint}: does not fit the settings in {SETTINGS} ({error})"
                ) from error
            self._models = model.eval(), classifier.to(device).eval()
        return self._models

    def scorer(self, settings: EvalConfig, device: torch.device) -> Scorer:
        """Scores a new video as evaluation scores a test video (see the module's text).

        The whole video is held, as the feature store's extraction reads it; the steps'
        weights are the attention profile (the attention each step receives).
        """
        model, classifier = self.models(device)
        config = self.base.config().model_copy(update={"eval": settings})

        def score(pieces: Iterable[np.ndarray]) -> Scored:
            frames = np.concatenate(list(pieces))  # (T, S, S, 3): the whole video
            sequence = run_feature_sequence(model, config, frames, device)
            features = stored_features(sequence)  # (T', C)
            classifier.record = True
            try:
                logits = sequence_logits(classifier, features, np.arange(len(features)), device)
            finally:
                classifier.record = False
            profile = attention_profile(classifier.weights[0].cpu(), len(features))  # (T',)
            steps = [(float(c), float(w)) for c, w in zip(sequence.centres, profile, strict=True)]
            return Scored(None, logits.softmax(dim=0).numpy(), step_weights=steps)

        return score

    def model_name(self) -> str:
        """``video_attention:`` and the base run's model."""
        return f"video_attention:{self.base.config().model.name}"
