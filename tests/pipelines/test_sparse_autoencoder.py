"""Baccouche et al.'s sparse auto-encoder + BLSTM: the equations, the patches, and the run."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from vidfer.cli import main
from vidfer.config import load_config, parse_config
from vidfer.data.synth import make_actions
from vidfer.errors import ConfigError
from vidfer.features.spacetime_patches import (
    MotionCrop,
    grid_patches,
    sample_neighbourhoods,
    video_blocks,
)
from vidfer.models.framewise_blstm import FramewiseBLSTM
from vidfer.models.sparse_autoencoder import (
    SparseAutoEncoder,
    SparsifyingLogistic,
    shift_offsets,
    shifted_patches,
)


def test_sparsifying_logistic_matches_eq1_by_hand():
    # eta 0.5, beta 1, xi_0 = 1. Step 1: z = 0: xi_1 = 0.5 + 0.5 = 1, zbar = 0.5 / 1.
    # Step 2: z = ln 3: xi_2 = 0.5 * 3 + 0.5 * 1 = 2, zbar = 1.5 / 2. Step 3: z = -ln 2:
    # xi_3 = 0.25 + 1 = 1.25, zbar = 0.25 / 1.25.
    logistic = SparsifyingLogistic(1, eta=0.5, beta=1.0)
    z = torch.tensor([[0.0], [math.log(3)], [-math.log(2)]], dtype=torch.float64)
    logistic.log_xi = logistic.log_xi.double()
    sparse = logistic(z)
    assert sparse[:, 0].tolist() == pytest.approx([0.5, 0.75, 0.2])
    assert float(logistic.log_xi.exp()) == pytest.approx(1.25)


def test_sparsifying_logistic_matches_eq1_literally():
    eta, beta = 0.02, 1.5
    z = np.random.default_rng(0).normal(0, 2, size=(50, 4))
    logistic = SparsifyingLogistic(4, eta, beta)
    logistic.log_xi = logistic.log_xi.double()
    ours = logistic(torch.from_numpy(z)).numpy()
    xi, expected = np.ones(4), []
    for row in z:
        xi = eta * np.exp(beta * row) + (1 - eta) * xi
        expected.append(eta * np.exp(beta * row) / xi)
    np.testing.assert_allclose(ours, np.array(expected), rtol=1e-10)


def _model(channels: int = 1, codes: int = 12) -> SparseAutoEncoder:
    return SparseAutoEncoder(8, 3, codes, eta=0.02, beta=1.5, channels=channels, seed=3).double()


def test_finite_difference_gradient_agrees_with_autograd():
    model = _model(channels=3)
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(3 * 3 * 8 * 8, generator=generator, dtype=torch.float64)
    log_xi = torch.randn(12, generator=generator, dtype=torch.float64)
    z = (model.encode(x) + torch.randn(12, generator=generator, dtype=torch.float64)).detach()
    z.requires_grad_(True)
    model.energy(x, z, log_xi).backward()
    assert z.grad is not None
    finite = model.code_gradient(x, z.detach(), log_xi, dz=1e-3)
    torch.testing.assert_close(finite, z.grad, atol=1e-3, rtol=0)
    # Steepest descent along it lowers the energy.
    with torch.no_grad():
        start = z.detach()
        better = model.optimise_code(x, start, log_xi, steps=5, lr=0.01, dz=1e-3)
        assert float(model.energy(x, better, log_xi)) < float(model.energy(x, start, log_xi))


@pytest.mark.parametrize("shift", [(0, 0, 0), (1, -2, 1), (-1, 2, -2), (0, 1, 2)])
def test_shift_search_returns_the_true_shift(shift):
    # One code unit whose basis element is a random pattern P: the patch cut where P lies is
    # reconstructed (almost) exactly, every other shift of the neighbourhood is not.
    pattern = torch.randn(1, 3, 8, 8, generator=torch.Generator().manual_seed(7))
    flat = pattern.flatten()
    model = SparseAutoEncoder(8, 3, 1, eta=0.5, beta=1.5)
    with torch.no_grad():
        model.encoder_weight.copy_(10 * flat[None] / flat.square().sum())  # Enc(P) = 10
        model.decoder_weight.copy_(flat[:, None])
    neighbourhood = torch.zeros(1, 5, 12, 12)  # (C, T + 2, M + 4, M + 4)
    dt, dy, dx = shift
    neighbourhood[:, 1 + dt : 4 + dt, 2 + dy : 10 + dy, 2 + dx : 10 + dx] = pattern
    candidates = shifted_patches(neighbourhood, 8, 3)
    with torch.no_grad():
        chosen = model.search_shift(candidates, torch.zeros(1))
    assert shift_offsets(8, 3)[chosen].tolist() == list(shift)
    assert torch.equal(candidates[chosen], flat)


def test_shift_grid_is_the_papers():
    offsets = shift_offsets(8, 3)  # [-M/4, M/4]^2 x [-T/2, T/2]
    assert len(offsets) == 3 * 5 * 5
    assert offsets[len(offsets) // 2].tolist() == [0, 0, 0]
    assert offsets.min(dim=0).values.tolist() == [-1, -2, -2]


def test_motion_selection_keeps_only_moving_patches():
    video = np.full((10, 32, 32, 1), 0.5, dtype=np.float32)
    for t in range(10):  # a bright 6x6 square moving right 2 px per frame in the top rows
        video[t, 4:10, 2 + 2 * t : 8 + 2 * t] = 1.0
    found = sample_neighbourhoods(video, 8, 3, 0.1, 0.2, 100, np.random.default_rng(0))
    assert 0 < len(found) <= 100 and found.shape[1:] == (1, 5, 12, 12)
    centres = found[:, 0, 1:4, 2:10, 2:10]  # (n, T, M, M)
    moving = (np.abs(centres[:, 0] - centres[:, -1]) > 0.1).mean(axis=(1, 2))
    assert (moving > 0.2).all()
    static = np.full((10, 32, 32, 1), 0.5, dtype=np.float32)
    assert len(sample_neighbourhoods(static, 8, 3, 0.1, 0.2, 100, np.random.default_rng(0))) == 0


def test_grid_patches_tile_each_block():
    video = np.random.default_rng(0).random((7, 20, 17, 2)).astype(np.float32)
    grid = grid_patches(video_blocks(video, 3, stride=2), 8)  # blocks at 0, 2, 4; 2 x 2 cells
    assert grid.shape == (3, 4, 2 * 3 * 8 * 8)
    expected = video[2:5, 8:16, 0:8].transpose(3, 0, 1, 2).ravel()  # block 1, row 1, col 0
    np.testing.assert_array_equal(grid[1, 2], expected)


def test_tracked_crop_follows_the_moving_figure():
    video = np.full((12, 40, 64, 1), 0.5, dtype=np.float32)
    for t in range(9):  # a bright 6x7 square moving right 3 px per frame, then standing still
        video[t, 20:26, 5 + 3 * t : 12 + 3 * t] = 1.0
    video[9:] = video[8]
    blocks = video_blocks(video, 3, stride=3)  # (4, 3, 40, 64, 1)
    corners = MotionCrop((16, 16), pixel=0.1).corners(blocks)
    # Blocks at frames 0, 3, 6, 9: the crop moves right with the square (9 px per block)...
    assert corners.shape == (4, 2)
    np.testing.assert_array_equal(np.diff(corners[:3, 1]), [9, 9])
    assert (corners[:, 0] == corners[0, 0]).all()
    # ...and keeps its place in the last block, where nothing moves.
    np.testing.assert_array_equal(corners[3], corners[2])
    grid = grid_patches(MotionCrop((16, 16), pixel=0.1).crop(blocks), 8)
    assert grid.shape == (4, 4, 3 * 8 * 8)  # 2 x 2 patches of each 16 x 16 crop
    # The square keeps its place in the crop: the first frame of blocks 0-2 is the same crop.
    first = grid[:3].reshape(3, 4, 3, 64)[:, :, 0]  # (blocks, positions, M*M)
    np.testing.assert_array_equal(first[1], first[0])
    np.testing.assert_array_equal(first[2], first[0])
    static = np.full((6, 40, 64, 1), 0.5, dtype=np.float32)  # no motion: the centre crop
    np.testing.assert_array_equal(
        MotionCrop((16, 16), pixel=0.1).corners(video_blocks(static, 3, stride=3)),
        [[12, 24], [12, 24]],
    )


def test_framewise_blstm_ignores_padding():
    model = FramewiseBLSTM(6, 3, hidden=5).eval()
    x = torch.randn(2, 7, 6)
    mask = torch.ones(2, 7, dtype=torch.bool)
    mask[1, 4:] = False
    both = model(x, mask)
    alone = model(x[1:, :4], mask[1:, :4])
    torch.testing.assert_close(both[1:], alone)
    # Mean per-step log-probabilities: a geometric mean of distributions sums to at most 1.
    assert (both.exp().sum(dim=1) <= 1 + 1e-6).all()


def test_bad_value_is_one_config_error_line():
    with pytest.raises(ConfigError) as error:
        parse_config({"data": {"manifest": "m.csv"}, "sparse_ae": {"eta": 1.5}})
    assert "sparse_ae.eta" in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="frame_size"):
        parse_config({"data": {"manifest": "m.csv"}, "sparse_ae": {"frame_size": [4, 30]}})
    with pytest.raises(ConfigError, match="track: true needs"):
        parse_config({"data": {"manifest": "m.csv"}, "sparse_ae": {"track": True}})


@pytest.mark.slow
def test_train_and_evaluate_end_to_end(tmp_path: Path):
    manifest = make_actions(tmp_path / "actions", videos_per_class=3, size=32)
    config = {
        "seed": 0,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sparse_ae": {
            "codes": 8,
            "patches_per_video": 20,
            "epochs": 2,
            "motion_share": 0.05,
            "grayscale": False,
        },
        "optim": {"name": "sgd", "lr": 0.01, "momentum": 0.9},
        "train": {"epochs": 3, "batch_size": 1},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    assert main(["train", str(path), "--out", str(run)]) == 0
    for name in (
        "config.yaml",
        "classes.json",
        "metrics.jsonl",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
        "curves.png",
        "basis.png",
        "sparsity.json",
        "eval_val/metrics.json",
        "eval_test/predictions.csv",
    ):
        assert (run / name).exists(), name
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["stage"] for line in lines[:2]] == ["autoencoder", "autoencoder"]
    assert "active_units" in lines[0] and lines[-1]["stage"] == "blstm"
    sparsity = json.loads((run / "sparsity.json").read_text())
    assert sparsity["codes"] == 8 and 0 <= sparsity["video_patches"]["mean_active"] <= 8

    written = (run / "eval_test" / "predictions.csv").read_text()
    (run / "eval_test" / "predictions.csv").unlink()
    assert main(["evaluate", str(run), "--split", "test"]) == 0
    assert (run / "eval_test" / "predictions.csv").read_text() == written
    # A new video through 'vidfer predict': the evaluation's video probabilities, and every
    # frame scored by the BLSTM output of its block.
    row = written.splitlines()[1].split(",")
    video = next(manifest.parent.rglob(f"{row[0]}.mp4"))
    assert main(["predict", str(video), "--run", str(run), "--out", str(tmp_path / "p")]) == 0
    summary = json.loads((tmp_path / "p" / "summary.json").read_text())
    assert summary["label"] == row[2] and summary["frames_scored"] == summary["frames_decoded"]
    got = list(summary["probabilities"].values())
    np.testing.assert_allclose(got, [float(p) for p in row[3:]], atol=1e-5)
    timeline = (tmp_path / "p" / "timeline.csv").read_text().splitlines()
    assert len(timeline) == 1 + summary["frames_decoded"]

    with pytest.raises(ConfigError, match=r"sparse_ae\.codes") as error:
        load_config(path, ["sparse_ae.codes=0"])
    assert "\n" not in str(error.value)
