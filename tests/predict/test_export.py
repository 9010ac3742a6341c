"""``vidfer export``: ONNX (run by onnxruntime) and TorchScript give the PyTorch scores to 1e-4,
with a dynamic time axis; ``vidfer predict --exported`` scores a video as PyTorch does."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from vidfer.errors import ConfigError
from vidfer.export import export_model, load_exported
from vidfer.io.run_folder import RunDir
from vidfer.io.writer import write_video
from vidfer.models.mini_xception import FER2013_CLASSES, load_mini_xception
from vidfer.models.trained import load_run_model
from vidfer.predict import predict_video

from helpers import moving_square, vidfer_forked

pytest.importorskip("onnxruntime")


@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_default_model_export_equals_pytorch(fmt, tmp_path):
    meta = json.loads(export_model(None, fmt, tmp_path / fmt).read_text())
    assert meta["classes"] == list(FER2013_CLASSES) and meta["input"]["layout"] == "N,1,64,64"
    runner, _ = load_exported(tmp_path / fmt)
    faces = torch.rand(5, 1, 64, 64) * 2 - 1
    with torch.no_grad():
        expected = torch.softmax(load_mini_xception()(faces), dim=1).numpy()
    assert np.abs(runner(faces.numpy()) - expected).max() < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["onnx", "torchscript"])
def test_clip_run_export_equals_pytorch_any_length(square_run, fmt, tmp_path):
    run, _ = square_run
    result = vidfer_forked("export", str(run), "--format", fmt, "--out", str(tmp_path / fmt))
    assert result.returncode == 0, result.stderr
    meta = json.loads((tmp_path / fmt / "model.json").read_text())
    assert meta["classes"] == RunDir(run).classes() and meta["input"]["dynamic"] == ["B", "T"]
    assert meta["geometry"]["dense"] and meta["preprocessing"]["mean"]
    runner, _ = load_exported(tmp_path / fmt)
    model, _ = load_run_model(RunDir(run))
    torch.manual_seed(0)
    for shape in [(1, 3, 20, 24, 24), (3, 3, 57, 24, 24)]:  # time differs from the trace's
        clip = torch.randn(shape)
        with torch.no_grad():
            expected = model(clip).numpy()
        got = runner(clip.numpy())
        assert got.shape == expected.shape and np.abs(got - expected).max() < 1e-4
    # The whole prediction through the exported model.
    video = tmp_path / "v.mp4"
    write_video(video, moving_square(1, frames=45, size=40), 10.0)
    torch_pred = predict_video(video, tmp_path / "torch", run)
    command = ["predict", str(video), "--run", str(run), "--engine", fmt]
    command += ["--exported", str(tmp_path / fmt), "--out", str(tmp_path / "x")]
    result = vidfer_forked(*command)
    assert result.returncode == 0, result.stderr
    exported = json.loads((tmp_path / "x" / "summary.json").read_text())
    assert exported["label"] == torch_pred.label
    assert exported["probabilities"] == pytest.approx(torch_pred.probabilities, abs=1e-4)
    if fmt == "onnx":  # one direction is enough: the check does not depend on the format
        command[command.index(fmt)] = "torchscript"  # the engine must be the export's format
        result = vidfer_forked(*command)
        assert result.returncode == 2 and "holds a onnx export, not torchscript" in result.stderr


def test_export_refuses_unknown_format_and_wrong_model(tmp_path):
    with pytest.raises(ConfigError, match="--format 'tflite' is unknown"):
        export_model(None, "tflite", tmp_path)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"no model\.json"):
        load_exported(tmp_path)
