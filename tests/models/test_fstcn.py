"""FstCN: the factorized convolution of eq. 2-3, the T-P operator, clip pairs and multi-view
testing with SCI fusion."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from vidfer.config import load_config
from vidfer.data.sampler_zoo import build_sampler
from vidfer.errors import ConfigError
from vidfer.evaluation.views import crop_views
from vidfer.io.run_folder import RunDir
from vidfer.models import build_model
from vidfer.models.frame_runs import load_frame_run
from vidfer.models.fstcn import TPOperator, factorized_conv3d
from vidfer.models.trained import load_run_model
from vidfer.pipelines import train
from vidfer.predict import predict_video
from vidfer.training.frames import FrameTrainSettings, train_frames


def test_factorized_path_equals_the_kronecker_3d_convolution() -> None:
    torch.manual_seed(0)
    # float64: the comparison tests the algebra, not float32 rounding of sums near 30.
    video = torch.randn(2, 1, 9, 11, 13, dtype=torch.float64)
    spatial, temporal = torch.randn(3, 5, dtype=torch.float64), torch.randn(3, dtype=torch.float64)
    kernel = temporal[:, None, None] * spatial[None]  # k_t (x) K_xy: (3, 3, 5)
    full = F.conv3d(video, kernel[None, None], padding=(1, 1, 2))
    torch.testing.assert_close(factorized_conv3d(video, spatial, temporal), full, atol=1e-5, rtol=0)


def test_tp_operator_vectorises_rearranges_and_mixes_channels() -> None:
    operator = TPOperator(6, 4)
    features = torch.randn(2, 5, 6, 3, 3)  # (B, T, f, x, y)
    out = operator(features)
    assert out.shape == (2, 9, 5, 4)  # (B, x*y, T, f')
    expected = torch.einsum("btfp,fg->bptg", features.flatten(3), operator.permutation)
    torch.testing.assert_close(out, expected)


@pytest.mark.parametrize("paths", ["both", "scl", "tcl"])
def test_paths_score_a_clip_pair(paths: str) -> None:
    torch.manual_seed(0)
    model = build_model("fstcn", 4, width=0.0625, clip_len=3, in_size=48, paths=paths)
    pair = torch.randn(2, 3, 6, 48, 48)
    scores = model(pair)
    assert scores.shape == (2, 4, 1) and torch.isfinite(scores).all()
    scores.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert hasattr(model, "tp") == (paths != "scl") and hasattr(model, "scl") == (paths != "tcl")
    with pytest.raises(ConfigError, match="clip pairs of 2 x 3 frames"):
        model(torch.randn(1, 3, 5, 48, 48))
    # The difference clip is |V(t) - V(t + d)|: a pair of identical clips has no motion input.
    model.eval()
    still = torch.randn(1, 3, 3, 48, 48).repeat(1, 1, 2, 1, 1)
    features = model.forward_features(still)
    assert torch.equal(features[:, :, 0], features[:, :, 1])  # all-zero difference frames


def test_options() -> None:
    with pytest.raises(ConfigError, match="paths"):
        build_model("fstcn", 5, paths="motion")


def test_clip_pairs_sampler() -> None:
    sampler = build_sampler("clip_pairs", clip_len=3, stride=5, num_clips=2, offset=9)
    assert sampler.span == 2 * 5 + 1 + 9
    frames = sampler.frames(np.array([4]), 100)[0]
    assert frames.tolist() == [4, 9, 14, 13, 18, 23]  # the clip, then each frame + 9
    draws = sampler.starts(0, 100, np.random.default_rng(0))
    assert draws.shape == (2,) and draws.max() <= 100 - sampler.span
    assert sampler.test_starts(100, 3).tolist() == [0, 40, 80]
    short = sampler.frames(sampler.test_starts(10, 1), 10)[0]
    assert short.min() == 0 and short.max() == 9  # padded by edge frames
    with pytest.raises(ConfigError, match="offset"):
        build_sampler("clip_pairs", offset=0)


def test_nine_crops_and_flips() -> None:
    video = torch.arange(2 * 1 * 6 * 8, dtype=torch.float32).view(2, 1, 6, 8)  # (T, C, H, W)
    views = crop_views(video, 4, crops=9, flip=True)
    assert views.shape == (18, 2, 1, 4, 4)
    torch.testing.assert_close(views[0], video[..., :4, :4])  # top-left
    torch.testing.assert_close(views[4], video[..., 1:5, 2:6])  # centre
    torch.testing.assert_close(views[8], video[..., 2:, 4:])  # bottom-right
    torch.testing.assert_close(views[9], views[0].flip(-1))
    assert crop_views(video, 4, crops=1, flip=False).shape == (1, 2, 1, 4, 4)


@pytest.mark.slow
def test_train_and_test_with_views_and_sci(square_dataset, tmp_path) -> None:
    config = {
        "seed": 0,
        "data": {"manifest": str(square_dataset), "prepare": {"size": 32}, "workers": 1},
        "sampler": {
            "name": "clip_pairs",
            "clip_len": 3,
            "stride": 2,
            "num_clips": 2,
            "params": {"offset": 2},
        },
        "transforms": {"size": 28, "crop_scale": [0.7, 1.0]},
        "model": {"name": "fstcn", "params": {"width": 0.0625, "clip_len": 3, "in_size": 32}},
        "optim": {"name": "sgd", "lr": 0.01, "weight_decay": 0.0005, "momentum": 0.9},
        "train": {"epochs": 2, "batch_size": 4},
        "eval": {"mode": "views", "views": {"clips": 3, "crops": 9, "flip": True}},
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    # §2.3: the lower SCLs pre-trained with the auxiliary classifier on the videos' frames.
    scl = tmp_path / "scl"
    settings = FrameTrainSettings(
        model="fstcn_scl", params={"width": 0.0625, "input_size": 28}, epochs=1, every=4
    )
    train_frames(path, scl, settings)
    pretrained, _ = load_frame_run(scl)
    model = build_model("fstcn", 2, width=0.0625, clip_len=3, in_size=32, scl_init=str(scl))
    for ours, theirs in zip(model.lower.parameters(), pretrained.lower.parameters(), strict=True):
        assert torch.equal(ours, theirs)
    with pytest.raises(ConfigError, match="another width"):
        build_model("fstcn", 2, width=0.125, clip_len=3, in_size=32, scl_init=str(scl))
    config["model"]["params"]["scl_init"] = str(scl)
    path.write_text(yaml.safe_dump(config))
    train(load_config(path), tmp_path / "run")
    shutil.rmtree(scl)  # the run's checkpoint holds every weight
    load_run_model(RunDir(tmp_path / "run"))
    metrics = json.loads((tmp_path / "run" / "eval_test" / "metrics.json").read_text())
    assert metrics["count"] == 2
    predictions = (tmp_path / "run" / "eval_test" / "predictions.csv").read_text().splitlines()
    probabilities = [float(v) for v in predictions[1].split(",")[3:]]
    assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
    # vidfer predict scores a new video as evaluation does: clip pairs x crops, SCI-fused.
    row = predictions[1].split(",")
    video = next(square_dataset.parent.rglob(f"{row[0]}.mp4"))
    prediction = predict_video(video, tmp_path / "pred", tmp_path / "run", chunk_frames=5)
    assert (prediction.status, prediction.label) == ("ok", row[2])
    got = list(prediction.probabilities.values())
    np.testing.assert_allclose(got, probabilities, atol=1e-5)
    summary = json.loads((tmp_path / "pred" / "summary.json").read_text())
    assert summary["model"] == "fstcn" and summary["frames_scored"] == 0  # no per-frame score


def test_views_crop_from_the_stored_frames() -> None:
    from vidfer.config import parse_config
    from vidfer.evaluation.views import views_video

    frames = np.random.default_rng(0).integers(0, 255, (4, 32, 40, 3), dtype=np.uint8)

    def video(**views: object) -> torch.Tensor:
        raw = {"data": {"manifest": "m.csv"}, "transforms": {"size": 28}, "eval": {"views": views}}
        config = parse_config(raw)
        return views_video(frames, config)

    assert video().shape == (4, 3, 32, 40)  # as stored: 9 distinct 28x28 crops
    assert video(resize=36).shape == (4, 3, 36, 45)
    small = np.zeros((2, 20, 20, 3), dtype=np.uint8)
    config = parse_config({"data": {"manifest": "m.csv"}, "transforms": {"size": 28}})
    assert views_video(small, config).shape == (2, 3, 28, 28)  # upsized to the crop
    crops = crop_views(video(), 28, crops=9, flip=False)
    assert not torch.equal(crops[0], crops[8])
