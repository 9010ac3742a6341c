"""Reliability of the audio modality: a damaged soundtrack, or a real crash, hang or memory
blow-up of the audio decoder (placed by ``VIDFER_FAULTS``), leaves that video without its sound
and the others as they were; the calling process goes on."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from vidfer.config import DataConfig, LimitsConfig, parse_config
from vidfer.data.prepared import PreparedDataset, load_dataset
from vidfer.faults import ENV
from vidfer.features.audio import audio_features, sandboxed_audio_features
from vidfer.features.extract import extract_audio_features
from vidfer.pipelines import train
from vidfer.predict import predict_video

from helpers import moving_square, write_video_with_tone

# openSMILE needs between 256 and 512 MB of address space beyond the worker's start (under 256
# it segfaults); the injected memory blow-up takes 2 GiB.
LIMITS = LimitsConfig(decode_timeout_s=4, decode_memory_mb=512)


def damage_sound(path: Path) -> Path:
    """Overwrite every audio packet of ``path`` with random bytes (its video stays intact)."""
    with av.open(str(path)) as container:
        packets = container.demux(container.streams.audio[0])
        spans = [(p.pos, p.size) for p in packets if p.size and p.pos is not None]
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(0)
    for start, size in spans:
        data[start : start + size] = rng.bytes(size)
    path.write_bytes(bytes(data))
    return path


def write_tone_videos(root: Path, rows: list[tuple[str, str, str, float]]) -> Path:
    """``(name, label, split, tone Hz)`` rows as 1-second videos with sound, and their manifest;
    a name starting with ``bad`` gets a damaged soundtrack."""
    lines = ["path,label,split"]
    for number, (name, label, split, hz) in enumerate(rows):
        path = root / "videos" / f"{name}.mp4"
        write_video_with_tone(path, moving_square(1, 25, seed=number), 25.0, hz, number)
        if name.startswith("bad"):
            damage_sound(path)
        lines.append(f"videos/{name}.mp4,{label},{split}")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    return root / "manifest.csv"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> PreparedDataset:
    """Two videos with sound and one whose soundtrack is damaged, prepared."""
    root = tmp_path_factory.mktemp("sound")
    rows = [("good1", "a", "train", 300.0), ("good2", "a", "train", 900.0)]
    manifest = write_tone_videos(root, [*rows, ("bad", "a", "train", 600.0)])
    return load_dataset(DataConfig.model_validate({"manifest": manifest, "workers": 1}))


@pytest.fixture
def data(prepared: PreparedDataset) -> PreparedDataset:
    """The prepared dataset without any audio features yet."""
    shutil.rmtree(prepared.store.folder / "features", ignore_errors=True)
    return prepared


def in_process(data: PreparedDataset, name: str) -> np.ndarray:
    found = audio_features(data.manifest.root / "videos" / f"{name}.mp4")
    assert found.features is not None
    return found.features[None]


def audio_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


def test_a_damaged_soundtrack_is_corrupt_audio_and_the_others_go_on(
    data: PreparedDataset, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    features, reasons = extract_audio_features(data, LIMITS, workers=2)
    assert reasons == {"videos/bad": "corrupt_audio"}
    assert features["videos/bad"].shape == (0, 1582)
    for name in ("good1", "good2"):  # exactly the in-process features
        assert np.array_equal(features[f"videos/{name}"], in_process(data, name))
    [line] = audio_warnings(caplog)
    assert line.startswith("videos/bad.mp4: corrupt_audio: audio cannot be decoded (")
    assert line.endswith(
        "re-encode the sound (ffmpeg -i VIDEO -c:v copy -c:a aac FIXED.mp4) to use it"
    )
    # A rerun decodes nothing: a decoder crash on every file would show.
    every = {f"{name}.mp4": "segv" for name in ("good1", "good2", "bad")}
    monkeypatch.setenv(ENV, json.dumps({"audio": every}))
    caplog.clear()
    again, reasons_again = extract_audio_features(data, LIMITS)
    assert reasons_again == reasons and not audio_warnings(caplog)
    assert all(np.array_equal(again[video], features[video]) for video in features)


FAULTS = {
    "segv": ("crashed", "crashed: decoding its sound failed, its worker died (killed by SIGSEGV)"),
    "hang": (
        "timeout",
        "timeout: decoding its sound failed, it ran longer than 4 s; "
        "raise data.limits.decode_timeout_s=4 to retry",
    ),
    "hog": (
        "out_of_memory",
        "out_of_memory: decoding its sound failed, it needed more than the 512 MB allowed; "
        "raise data.limits.decode_memory_mb=512 to retry",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_an_audio_decoder_crash_hang_or_blowup_leaves_one_video_without_sound(
    data: PreparedDataset,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    fault: str,
) -> None:
    status, reason = FAULTS[fault]
    monkeypatch.setenv(ENV, json.dumps({"audio": {"good2.mp4": fault}}))
    features, reasons = extract_audio_features(data, LIMITS)
    assert reasons == {"videos/good2": status, "videos/bad": "corrupt_audio"}
    assert np.array_equal(features["videos/good1"], in_process(data, "good1"))
    [line] = [line for line in audio_warnings(caplog) if line.startswith("videos/good2.mp4")]
    assert line.startswith(f"videos/good2.mp4: {reason}; the video goes on without its sound; ")
    # Remembered under the same limits, decided again under others.
    monkeypatch.delenv(ENV)
    assert extract_audio_features(data, LIMITS)[1] == reasons
    raised = LIMITS.model_copy(update={"decode_timeout_s": 5.0})
    features, reasons = extract_audio_features(data, raised)
    assert reasons == {"videos/bad": "corrupt_audio"}
    assert np.array_equal(features["videos/good2"], in_process(data, "good2"))


def test_predict_s_sandboxed_audio_features_are_the_in_process_ones(
    prepared: PreparedDataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    videos = prepared.manifest.root / "videos"
    found = sandboxed_audio_features(videos / "good1.mp4", LIMITS)
    assert found.status == "ok" and found.features is not None
    assert np.array_equal(found.features[None], in_process(prepared, "good1"))
    assert sandboxed_audio_features(videos / "bad.mp4", LIMITS).status == "corrupt_audio"
    silent = write_video_with_tone(tmp_path / "silent.mp4", moving_square(1, 25), 25.0, None)
    assert sandboxed_audio_features(silent, LIMITS).status == "no_audio"
    monkeypatch.setenv(ENV, json.dumps({"audio": {"good1.mp4": "segv"}}))
    crashed = sandboxed_audio_features(videos / "good1.mp4", LIMITS)
    assert (crashed.status, crashed.features) == ("crashed", None)


def audio_run_config(manifest: Path) -> dict[str, Any]:
    return {
        "data": {"manifest": str(manifest), "prepare": {"size": 16}, "workers": 1},
        "frames": {"extractors": [{"audio": "is10"}], "pca": 2, "classifier": {"name": "rbf_svm"}},
    }


@pytest.mark.slow
def test_training_goes_on_and_a_corrupt_soundtrack_gets_no_score(tmp_path: Path) -> None:
    rows = [
        (f"{label}{number}", label, split, hz * (1 + 0.05 * number))
        for label, hz in (("low", 300.0), ("high", 1200.0))
        for number, split in enumerate(("train", "train", "train", "val", "test"))
    ]
    manifest = write_tone_videos(tmp_path, [*rows, ("bad", "high", "test", 1200.0)])
    run = tmp_path / "run"
    train(parse_config(audio_run_config(manifest)), run)
    missing = (run / "eval_test" / "missing.csv").read_text().splitlines()
    assert missing == ["video_id,reason", "videos/bad,corrupt_audio"]
    predictions = (run / "eval_test" / "predictions.csv").read_text()
    assert "videos/bad" not in predictions
    metrics = json.loads((run / "eval_test" / "metrics.json").read_text())
    assert metrics["count"] == 2
    # vidfer predict decodes the new video's soundtrack in the same sandbox: a status, no label.
    bad = predict_video(manifest.parent / "videos" / "bad.mp4", tmp_path / "p", run)
    assert (bad.status, bad.label) == ("corrupt_audio", None)
