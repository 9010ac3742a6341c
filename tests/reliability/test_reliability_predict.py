"""``vidfer predict`` on a hostile video: its decoder runs in a sandboxed worker, as in prepare.

The decoder crash, hang and memory blow-up are real signals, sleeps and allocations in the real
decoding worker of a real ``vidfer predict``, placed by ``VIDFER_FAULTS``.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import numpy as np
import pytest
from test_reliability_inputs import damaged

from reliability_helpers import count_into, misbehave_later, write_run_config
from vidfer.cli import main
from vidfer.config import LimitsConfig, PrepareConfig
from vidfer.data.preprocess import finish_frames, video_limits
from vidfer.data.stream import stream_video
from vidfer.errors import VideoError
from vidfer.faults import ENV as FAULTS_ENV
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.io.video import decode_chunks
from vidfer.io.writer import write_video

from helpers import moving_square, write_square_dataset


def test_a_stream_accounts_for_its_worker_whatever_it_does():
    with Sandbox(misbehave_later, 1, timeout_s=5, memory_mb=256) as sandbox:
        for what, status in (("segv", "crashed"), ("hang", "timeout"), ("hog", "out_of_memory")):
            items = list(sandbox.stream((what, 2)))
            assert items[:2] == [f"{what}0", f"{what}1"] and len(items) == 3
            assert isinstance(items[2], Failure) and items[2].status == status, items[2]
        # The function's own exception is raised here, after its items; the worker stays usable.
        items = []
        with pytest.raises(ValueError, match="cannot handle 'raise'") as raised:
            items.extend(sandbox.stream(("raise", 1)))
        assert items == ["raise0"] and "misbehave" in str(raised.value.__cause__)
        assert list(sandbox.stream(("fine", 2))) == ["fine0", "fine1", "FINE"]
        # A reader that stops early stops the worker (here in the middle of a hang).
        stream = sandbox.stream(("hang", 1))
        assert next(stream) == "hang0"
        stream.close()
        assert list(sandbox.stream(("ok", 0))) == ["OK"]


def test_a_stream_s_worker_is_never_more_than_one_item_ahead(tmp_path):
    log = tmp_path / "made.txt"
    log.touch()
    with Sandbox(count_into, 1, timeout_s=10, memory_mb=None) as sandbox:
        for item in sandbox.stream((str(log), 5)):
            time.sleep(0.3)  # time enough for a worker that would run ahead
            made = [int(line) for line in log.read_text().split()]
            assert max(made) <= item + 1, (item, made)
    assert log.read_text().split() == ["0", "1", "2", "3", "4"]


def test_sandboxed_pieces_are_the_in_process_pieces(tmp_path):
    video = tmp_path / "video.mp4"
    write_video(video, moving_square(1, frames=50, size=40), 10.0)
    prep = PrepareConfig(size=16, fps=5.0)
    stream = stream_video(video, prep, LimitsConfig(), 8)
    pieces = list(stream.pieces())
    direct = list(
        decode_chunks(video, 8, fps=5.0, short_side=16, limits=video_limits(LimitsConfig()))
    )
    assert len(pieces) == len(direct) == 4
    for (indices, frames), piece in zip(pieces, direct, strict=True):
        assert np.array_equal(indices, piece.frame_indices)
        assert np.array_equal(frames, finish_frames(piece.frames, prep))
    record = stream.record()
    assert record.ok and record.fps == 5.0 and record.source_fps == 10.0


def test_ordinary_decode_errors_are_raised_as_in_process(tmp_path):
    good = tmp_path / "good.mp4"
    write_video(good, moving_square(1, frames=20), 10.0)
    (tmp_path / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (tmp_path / "empty.mp4").write_bytes(b"")
    bad = [
        damaged(tmp_path / "garbage.mp4", good, "garbage"),
        tmp_path / "random.mp4",
        tmp_path / "empty.mp4",
    ]
    for video in bad:
        with pytest.raises(VideoError) as direct:
            list(decode_chunks(video, 8, short_side=16))
        with pytest.raises(type(direct.value)) as sandboxed:
            list(stream_video(video, PrepareConfig(size=16), LimitsConfig(), 8).pieces())
        assert type(sandboxed.value) is type(direct.value)
        assert str(sandboxed.value) == str(direct.value)
        assert sandboxed.value.status == direct.value.status


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A run trained under small decoding limits (3 s, 256 MB), and one of its videos."""
    root = tmp_path_factory.mktemp("predict")
    manifest = write_square_dataset(root / "squares")
    config = write_run_config(
        root,
        manifest,
        data={"limits": {"decode_timeout_s": 3, "decode_memory_mb": 256}},
        train={"epochs": 1, "checkpoint_every_steps": None},
    )
    assert main(["train", str(config), "--out", str(root / "run")]) == 0
    return root / "run", manifest.parent / "videos" / "left" / "0.mp4"


FAULTS = {
    "segv": ("crashed", "its worker died (killed by SIGSEGV)"),
    "hang": ("timeout", "it ran longer than 3 s; raise data.limits.decode_timeout_s=3 to retry"),
    "hog": (
        "out_of_memory",
        "it needed more than the 256 MB allowed; raise data.limits.decode_memory_mb=256 to retry",
    ),
}


@pytest.mark.parametrize("fault", sorted(FAULTS))
def test_a_decoder_crash_hang_or_blowup_stops_predict_with_one_line_and_no_output(
    trained, tmp_path, monkeypatch, capsys, fault
):
    run, good = trained
    video = tmp_path / "hostile.mp4"
    shutil.copy(good, video)
    out = tmp_path / "prediction"
    monkeypatch.setenv(FAULTS_ENV, json.dumps({"decode": {video.name: fault}}))
    assert main(["predict", str(video), "--run", str(run), "--out", str(out)]) == 2
    status, detail = FAULTS[fault]
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [f"vidfer: error: {video}: {status}: decoding it failed, {detail}"]
    assert not out.exists()
    # The same run predicts the same file once the fault is gone.
    monkeypatch.delenv(FAULTS_ENV)
    assert main(["predict", str(video), "--run", str(run), "--out", str(out)]) == 0
    # Rich wraps at the terminal's width (80 columns in an xdist worker), inside a long path too
    # (a worker's tmp_path): the line is compared without its whitespace.
    printed = "".join(capsys.readouterr().out.split())
    assert re.match(rf"{re.escape(str(video))}:(left|right)\(", printed), printed
    assert sorted(path.name for path in out.iterdir()) == [
        "summary.json",
        "timeline.csv",
        "timeline.png",
    ]
