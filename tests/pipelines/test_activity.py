"""Kahou et al.'s activity modality: sparse codes, a bag of words, SVMs."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.cli import main
from vidfer.config import ActivityConfig, ClassifierConfig, parse_config
from vidfer.data.synth import make_actions
from vidfer.errors import ConfigError
from vidfer.features.bag_of_words import bag_of_words, fit_vocabulary
from vidfer.features.synchrony_codes import (
    build_activity_autoencoder,
    frames_of_blocks,
    stream_descriptors,
)
from vidfer.io.writer import write_video
from vidfer.models.frame_heads import fit_svm_head
from vidfer.models.synchrony_autoencoder import SynchronyAutoEncoder, train_synchrony_autoencoder
from vidfer.pipelines.activity import activity_timeline


def test_bag_of_words_counts_nearest_words():
    vocabulary = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    rows = np.array([[1.0, 1.0], [9.0, 1.0], [8.0, -2.0], [0.5, 0.0]], dtype=np.float32)
    np.testing.assert_allclose(bag_of_words(rows, vocabulary), [0.5, 0.5, 0.0])


def test_vocabulary_is_seeded_and_needs_enough_descriptors():
    rng = np.random.default_rng(0)
    # Three well-separated clouds: k-means finds their centres.
    clouds = [rng.normal(centre, 0.1, size=(40, 2)) for centre in ((0, 0), (5, 5), (-5, 5))]
    settings = ActivityConfig(words=3)
    first = fit_vocabulary(clouds, settings, seed=1)
    np.testing.assert_array_equal(first, fit_vocabulary(clouds, settings, seed=1))
    found = sorted(map(tuple, np.round(first).astype(int).tolist()))
    assert found == [(-5, 5), (0, 0), (5, 5)]
    with pytest.raises(ConfigError, match=r"activity\.words 500.*only 120"):
        fit_vocabulary(clouds, ActivityConfig(words=500), seed=0)


def _moving_bars(count: int, seed: int) -> np.ndarray:
    """Blocks ``(count, 6, 64)``: an 8x8 frame with a vertical bar moving left or right."""
    rng = np.random.default_rng(seed)
    blocks = np.zeros((count, 6, 8, 8), dtype=np.float32)
    for block in blocks:
        start, step = rng.integers(0, 8), rng.choice([-1, 1])
        for t in range(6):
            block[t, :, (start + step * t) % 8] = 1.0
    return blocks.reshape(count, 6, 64) + rng.normal(0, 0.05, (count, 6, 64)).astype(np.float32)


def test_whitening_gives_unit_covariance():
    blocks = _moving_bars(300, seed=0)
    model = SynchronyAutoEncoder(64, 6, hidden=4, components=10)
    model.fit_whitening(blocks.reshape(-1, 64))
    white = model.whiten(torch.from_numpy(blocks)).reshape(-1, 10).double()  # (N*T, 10)
    covariance = torch.cov(white.T)
    torch.testing.assert_close(covariance, torch.eye(10, dtype=torch.float64), atol=1e-3, rtol=0)


def test_synchrony_autoencoder_learns_and_is_seeded():
    blocks = _moving_bars(256, seed=1)

    def trained() -> tuple[list[float], torch.Tensor]:
        torch.manual_seed(0)  # the masking noise
        model = SynchronyAutoEncoder(64, 6, hidden=8, components=16, seed=3)
        losses = train_synchrony_autoencoder(
            model, blocks, epochs=15, batch_size=32, lr=0.01, seed=0
        )
        return losses, model.features(torch.from_numpy(blocks[:5]))

    losses, codes = trained()
    assert losses[-1] < 0.8 * losses[0]
    assert codes.shape == (5, 8) and (codes >= 0).all() and codes.std() > 0
    again_losses, again_codes = trained()
    assert again_losses == losses
    torch.testing.assert_close(again_codes, codes, rtol=0, atol=0)


def test_frames_of_blocks_puts_channels_inside_each_frame():
    # One patch, C=2 channels, T=3 frames, 2 pixels: values encode (c, t, pixel).
    patch = np.array([[100 * c + 10 * t + p for c in range(2) for t in range(3) for p in range(2)]])
    rows = frames_of_blocks(patch, channels=2, depth=3)  # (1, 3, 4)
    np.testing.assert_array_equal(rows[0, 1], [10, 11, 110, 111])


@pytest.mark.parametrize(("stride", "cuts"), [(None, [0, 25]), (2, [3, 9, 10, 25]), (7, [1, 2])])
def test_streamed_descriptors_do_not_depend_on_the_pieces(stride: int | None, cuts: list[int]):
    rng = np.random.default_rng(0)
    frames = np.zeros((25, 20, 20, 3), dtype=np.uint8)
    for t, frame in enumerate(frames):  # a bright square moving right, on noise
        frame[:] = rng.integers(0, 30, frame.shape)
        frame[6:12, t % 14 : t % 14 + 6] = 250
    settings = ActivityConfig(
        patch=8, depth=4, hidden=5, components=8, block_stride=stride, grayscale=False
    )
    model = build_activity_autoencoder(settings, seed=1)
    model.fit_whitening(rng.normal(size=(200, 192)).astype(np.float32))
    whole = stream_descriptors(model, [frames], settings)
    pieces = stream_descriptors(model, np.split(frames, cuts), settings)
    assert len(whole.codes) > 0 and whole.frames == pieces.frames == 25
    np.testing.assert_array_equal(pieces.starts, whole.starts)
    np.testing.assert_array_equal(pieces.blocks, whole.blocks)
    np.testing.assert_allclose(pieces.codes, whole.codes, rtol=1e-6, atol=1e-6)


def test_timeline_scores_the_blocks_around_each_frame():
    rng = np.random.default_rng(0)
    frames = np.full((60, 16, 16, 3), 40, dtype=np.uint8)
    for t in range(20):  # a square moves in the first 20 frames, then nothing moves
        frames[t, 4:10, t % 10 : t % 10 + 6] = 250
    settings = ActivityConfig(patch=8, depth=4, hidden=5, components=8, words=3)
    model = build_activity_autoencoder(settings, seed=1)
    model.fit_whitening(rng.normal(size=(200, 64)).astype(np.float32))
    found = stream_descriptors(model, [frames], settings)
    vocabulary = found.codes[:3]
    x = rng.dirichlet(np.ones(3), size=30).astype(np.float32)
    head, _ = fit_svm_head(ClassifierConfig(name="linear_svm"), x, np.arange(30) % 2, 2)
    scored = activity_timeline(model, vocabulary, head.eval(), settings, np.split(frames, [7, 30]))
    assert scored is not None
    per_frame, video = scored
    expected = head(torch.from_numpy(bag_of_words(found.codes, vocabulary))[None]).softmax(dim=1)
    np.testing.assert_allclose(video, expected[0].detach().numpy(), atol=1e-6)
    # Frame t sees the blocks overlapping frames [t - 8, t + 8); the last moving one is 16..19.
    assert per_frame.shape == (60, 2)
    assert not np.isnan(per_frame[:28]).any() and np.isnan(per_frame[28:]).all()
    np.testing.assert_allclose(per_frame[:28].sum(axis=1), 1.0, atol=1e-6)
    assert activity_timeline(model, vocabulary, head, settings, [frames[30:]]) is None


def test_config_takes_one_pipeline_and_an_svm():
    base = {"data": {"manifest": "m.csv"}}
    with pytest.raises(ConfigError, match="not several"):
        parse_config({**base, "activity": {}, "sparse_ae": {}})
    with pytest.raises(ConfigError, match="linear_svm or rbf_svm"):
        parse_config({**base, "activity": {"classifier": {"name": "irnn"}}})
    config = parse_config({**base, "activity": {}})
    assert config.activity is not None
    assert (config.activity.patch, config.activity.depth) == (16, 10)  # Kahou's blocks
    with pytest.raises(ConfigError, match="components 300"):
        parse_config({**base, "activity": {"patch": 16, "components": 300}})


@pytest.mark.slow
def test_train_evaluate_and_fuse_end_to_end(tmp_path: Path):
    manifest = make_actions(tmp_path / "actions", videos_per_class=3, size=32)
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "activity": {
            "patch": 8,
            "depth": 4,
            "hidden": 8,
            "components": 16,
            "patches_per_video": 10,
            "epochs": 3,
            "motion_share": 0.05,
            "grayscale": False,
            "words": 6,
        },
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run)]) == 0
    for name in ("checkpoints/best.pt", "eval_val/metrics.json", "eval_test/metrics.json"):
        assert (run / name).exists(), name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["stage"] for line in lines] == ["autoencoder"] * 3 + ["svm"]
    assert "C" in lines[-1] and "gamma" in lines[-1]  # RBF grid search on val

    # Evaluation from the checkpoint gives the training-time predictions again.
    written = (run / "eval_test" / "predictions.csv").read_text()
    (run / "eval_test" / "predictions.csv").unlink()
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    assert (run / "eval_test" / "predictions.csv").read_text() == written

    # Its predictions are in the common format: the fusion takes it like any run.
    other = tmp_path / "other"
    assert main(["train", str(path), "--out", str(other), "--set", "activity.words=4"]) == 0
    fused = tmp_path / "fused"
    assert main(["fuse", str(run), str(other), "--out", str(fused), "--method", "mean"]) == 0
    assert (fused / "comparison.md").exists()
    # Kahou et al. kept it out of the feature-level fusion; vidfer refuses it there, clearly.
    network = ["fuse", str(run), str(other), "--out", str(tmp_path / "net"), "--method", "network"]
    assert main(network) == 2
    assert not (tmp_path / "net" / "fusion.json").exists()

    # A new video through 'vidfer predict': the evaluation's video probabilities, and per frame
    # the SVMs' score of the blocks around it.
    row = written.splitlines()[1].split(",")
    video = next(manifest.parent.rglob(f"{row[0]}.mp4"))
    out = tmp_path / "p"
    assert (
        main(["predict", str(video), "--run", str(run), "--out", str(out), "--chunk-frames", "5"])
        == 0
    )
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["label"]) == ("ok", row[2])
    assert summary["model"] == "kahou2015_activity"
    got = list(summary["probabilities"].values())
    np.testing.assert_allclose(got, [float(p) for p in row[3:]], atol=1e-5)
    timeline = list(csv.DictReader((out / "timeline.csv").open()))
    assert len(timeline) == summary["frames_decoded"] > 0
    scored = [
        [float(r[f"p_{name}"]) for name in summary["probabilities"]]
        for r in timeline
        if r["p_" + row[2]]
    ]
    assert len(scored) == summary["frames_scored"] > 0
    np.testing.assert_allclose(np.sum(scored, axis=1), 1.0, atol=1e-5)

    # Nothing moves: no bag of words, no label, a status (as predict says no_audio), exit 0.
    still = tmp_path / "still.mp4"
    write_video(still, np.full((12, 32, 32, 3), 90, dtype=np.uint8), 10.0)
    out = tmp_path / "still"
    assert main(["predict", str(still), "--run", str(run), "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["status"], summary["label"], summary["probabilities"]) == (
        "no_motion",
        None,
        {},
    )
    assert summary["frames_decoded"] == 12 and summary["frames_scored"] == 0
