"""Video probing, decoding and writing on real mp4 files written with PyAV."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import av
import numpy as np
import pytest

import vidfer.io.video as video_module
from vidfer.errors import (
    ConfigError,
    CorruptVideoError,
    EmptyVideoError,
    MissingVideoError,
    NoVideoStreamError,
    VideoError,
    VideoTooLargeError,
)
from vidfer.io.video import decode, iter_frames
from vidfer.io.video_probe import VideoLimits, probe
from vidfer.io.writer import write_video

FPS = 25.0
LENGTH = 40
HEIGHT, WIDTH = 48, 64
STEP = 6  # grey level added per frame, so a decoded frame tells its original index


def ramp(length: int = LENGTH, height: int = HEIGHT, width: int = WIDTH) -> np.ndarray:
    """Flat frames whose grey level is ``STEP * index``: uint8 (T, H, W, 3)."""
    levels = (np.arange(length) * STEP).astype(np.uint8)
    # (T,) -> (T, 1, 1, 1) -> (T, H, W, 3)
    return np.broadcast_to(levels[:, None, None, None], (length, height, width, 3)).copy()


def level_index(frames: np.ndarray) -> np.ndarray:
    """The original index encoded in each decoded frame's grey level."""
    return np.round(frames.reshape(len(frames), -1).mean(axis=1) / STEP).astype(int)


def textured(length: int = LENGTH) -> np.ndarray:
    """Noise scrolling sideways: big frames, so cutting the file in half lands mid-stream."""
    base = np.random.default_rng(0).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8)
    return np.stack([np.roll(base, 2 * t, axis=1) for t in range(length)])


def write_audio_only(path: Path) -> None:
    """A file with 300 ms of a 440 Hz sine in AAC and no video stream."""
    rate = 16_000
    samples = 0.3 * np.sin(2 * np.pi * 440 * np.arange(rate * 3 // 10) / rate)
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        # (N,) -> (1, N): one plane of float samples, mono.
        frame = av.AudioFrame.from_ndarray(
            samples.astype(np.float32)[None, :], format="fltp", layout="mono"
        )
        frame.sample_rate = rate
        container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("video") / "ramp.mp4"
    write_video(path, ramp(), FPS)
    return path


def test_probe_reads_the_header(clip: Path) -> None:
    info = probe(clip)
    assert (info.width, info.height, info.num_frames) == (WIDTH, HEIGHT, LENGTH)
    assert info.fps == FPS
    assert info.duration_s == pytest.approx(LENGTH / FPS)
    assert info.codec == "h264"
    assert not info.has_audio
    assert info.size_bytes == clip.stat().st_size
    assert info.path == str(clip)


def test_decode_returns_every_frame_in_order(clip: Path) -> None:
    video = decode(clip)
    assert video.frames.shape == (LENGTH, HEIGHT, WIDTH, 3)
    assert video.frames.dtype == np.uint8
    assert video.frame_indices.dtype == np.int64
    np.testing.assert_array_equal(video.frame_indices, np.arange(LENGTH))
    np.testing.assert_array_equal(level_index(video.frames), np.arange(LENGTH))
    assert video.fps == FPS
    assert not video.truncated
    assert video.info == probe(clip)


def test_iter_frames_streams_what_decode_returns(clip: Path) -> None:
    video = decode(clip, fps=10.0, short_side=24)
    streamed = list(iter_frames(clip, fps=10.0, short_side=24))
    np.testing.assert_array_equal([index for index, _ in streamed], video.frame_indices)
    np.testing.assert_array_equal(np.stack([frame for _, frame in streamed]), video.frames)


@pytest.mark.parametrize(
    ("fps", "expected"),
    [
        # 25 -> 10 fps: target k at k/10 s is source position 2.5k; ties round up.
        (10.0, [math.floor(2.5 * k + 0.5) for k in range(16)]),
        (12.5, list(range(0, LENGTH, 2))),
        (5.0, list(range(0, LENGTH, 5))),
        (25.0, list(range(LENGTH))),
        (60.0, list(range(LENGTH))),  # never upsample
    ],
)
def test_fps_keeps_the_nearest_source_frames(clip: Path, fps: float, expected: list[int]) -> None:
    video = decode(clip, fps=fps)
    np.testing.assert_array_equal(video.frame_indices, expected)
    np.testing.assert_array_equal(level_index(video.frames), expected)
    assert video.fps == min(fps, FPS)


@pytest.mark.parametrize(
    ("short_side", "shape"),
    [(24, (24, 32)), (96, (96, 128)), (48, (48, 64)), (7, (7, 9))],
)
def test_short_side_resizes_keeping_the_aspect_ratio(
    clip: Path, short_side: int, shape: tuple[int, int]
) -> None:
    video = decode(clip, short_side=short_side, max_frames=3)
    assert video.frames.shape == (3, *shape, 3)
    np.testing.assert_array_equal(level_index(video.frames), [0, 1, 2])


def test_short_side_on_a_portrait_video(tmp_path: Path) -> None:
    path = tmp_path / "portrait.mp4"
    write_video(path, ramp(4, height=64, width=48), FPS)
    assert decode(path, short_side=24).frames.shape == (4, 32, 24, 3)


def test_max_frames_counts_kept_frames(clip: Path) -> None:
    video = decode(clip, fps=5.0, max_frames=3)
    np.testing.assert_array_equal(video.frame_indices, [0, 5, 10])


@pytest.mark.parametrize("options", [{"fps": 0.0}, {"short_side": 0}, {"max_frames": 0}])
def test_invalid_options_are_config_errors(clip: Path, options: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        decode(clip, **options)  # type: ignore[arg-type]


def test_odd_sizes_are_padded_to_even(tmp_path: Path) -> None:
    path = tmp_path / "odd.mp4"
    rows, cols = np.mgrid[0:35, 0:33]
    # Smooth colour gradients: (35, 33) x 3 -> (35, 33, 3), repeated for 5 frames.
    picture = np.stack([rows * 7, cols * 7, 255 - rows * 3 - cols * 3], axis=-1)
    frames = np.repeat(picture[None].astype(np.uint8), 5, axis=0)
    write_video(path, frames, FPS, crf=0)
    info = probe(path)
    assert (info.width, info.height, info.num_frames) == (34, 36, 5)
    decoded = decode(path).frames.astype(int)
    # yuv420p halves the colour resolution, so even lossless H.264 is not exact in RGB.
    assert np.abs(decoded[:, :35, :33] - frames).max() <= 12
    # The padding repeats the last column and row.
    assert np.abs(decoded[:, :, 33] - decoded[:, :, 32]).max() <= 12
    assert np.abs(decoded[:, 35] - decoded[:, 34]).max() <= 12


def test_write_video_is_atomic_and_leaves_no_temp_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "out.mp4"
    write_video(path, ramp(3), FPS)
    assert sorted(p.name for p in path.parent.iterdir()) == ["out.mp4"]
    for codec in ("aac", "no-such-codec"):
        with pytest.raises(ValueError, match="not a video encoder"):
            write_video(tmp_path / "bad.mp4", ramp(3), FPS, codec=codec)
    with pytest.raises(ValueError, match="uint8"):
        write_video(tmp_path / "bad.mp4", ramp(3).astype(np.float32), FPS)  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sub"]


def test_write_video_keeps_fractional_frame_rates(tmp_path: Path) -> None:
    path = tmp_path / "ntsc.mp4"
    write_video(path, ramp(3), 30000 / 1001)
    assert probe(path).fps == pytest.approx(30000 / 1001)


def test_file_cut_in_half_keeps_the_frames_before_the_cut(tmp_path: Path) -> None:
    """The writer puts the index first (faststart), so a cut-short file still opens.

    PyAV then fails on the first incomplete packet with InvalidDataError; decode keeps the
    frames before it, including those the decoder held back for B-frame reordering.
    """
    full = tmp_path / "full.mp4"
    write_video(full, textured(), FPS)
    cut = tmp_path / "cut.mp4"
    data = full.read_bytes()
    cut.write_bytes(data[: len(data) // 2])

    video = decode(cut)
    assert video.truncated
    assert video.info.num_frames == LENGTH  # the header still describes the whole video
    assert 0 < len(video.frames) < LENGTH
    np.testing.assert_array_equal(video.frame_indices, np.arange(len(video.frames)))
    np.testing.assert_array_equal(video.frames, decode(full).frames[: len(video.frames)])

    streamed = iter_frames(cut)
    with pytest.raises(CorruptVideoError, match="cut short"):
        for _ in streamed:
            pass


def test_file_cut_inside_the_first_frame_is_corrupt(tmp_path: Path) -> None:
    full = tmp_path / "full.mp4"
    write_video(full, textured(), FPS)
    cut_at = 2_000  # the index takes ~1 kB, the first (key) frame ~4 kB
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[:cut_at])
    with pytest.raises(CorruptVideoError, match="after 0 frames") as raised:
        decode(cut)
    assert str(cut) in str(raised.value)


def test_header_cut_short_is_corrupt(tmp_path: Path, clip: Path) -> None:
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(clip.read_bytes()[:100])
    with pytest.raises(CorruptVideoError):
        probe(cut)


@pytest.mark.parametrize(
    ("make", "error", "status"),
    [
        (lambda p: p.write_bytes(b""), EmptyVideoError, "empty"),
        (
            lambda p: p.write_bytes(np.random.default_rng(0).bytes(4096)),
            CorruptVideoError,
            "corrupt",
        ),
        (lambda p: p.write_text("not a video\n" * 50), CorruptVideoError, "corrupt"),
        (write_audio_only, NoVideoStreamError, "no_video_stream"),
        (lambda p: None, MissingVideoError, "missing"),
    ],
    ids=["zero-length", "random-bytes", "text", "audio-only", "missing"],
)
def test_unusable_files_raise_video_errors_naming_the_file(
    tmp_path: Path, make: Callable[[Path], object], error: type[VideoError], status: str
) -> None:
    path = tmp_path / "bad.m4a" if error is NoVideoStreamError else tmp_path / "bad.mp4"
    make(path)
    for call in (probe, decode, iter_frames):
        with pytest.raises(error) as raised:
            call(path)
        assert str(path) in str(raised.value)
        assert raised.value.status == status


def test_a_folder_is_not_a_video(tmp_path: Path) -> None:
    with pytest.raises(VideoError, match="not a regular file"):
        probe(tmp_path)


@pytest.mark.parametrize(
    ("limits", "option"),
    [
        (VideoLimits(max_width=16), "max_width"),
        (VideoLimits(max_height=16), "max_height"),
        (VideoLimits(max_duration_s=1.0), "max_duration_s"),
        (VideoLimits(max_frames=10), "max_frames"),
        (VideoLimits(max_file_bytes=100), "max_file_bytes"),
    ],
)
def test_limits_reject_before_decoding(
    clip: Path, monkeypatch: pytest.MonkeyPatch, limits: VideoLimits, option: str
) -> None:
    def no_decoding(*args: object, **kwargs: object) -> None:
        raise AssertionError("decoded a file that the header check should have rejected")

    monkeypatch.setattr(video_module, "_decoded_frames", no_decoding)
    for call in (probe, decode, iter_frames):
        with pytest.raises(VideoTooLargeError, match=f"limits.{option}") as raised:
            call(clip, limits=limits)
        assert str(clip) in str(raised.value)
