"""Frame folders read as videos: natural order, the same pixels as a lossless video, in pieces,
header checks against the limits, a damaged image named."""

from __future__ import annotations

import numpy as np
import pytest

from vidfer.errors import EmptyVideoError, UndecodableVideoError, VideoTooLargeError
from vidfer.io.frame_folder import list_images, natural_key, probe_folder
from vidfer.io.video import decode, decode_chunks
from vidfer.io.video_probe import VideoLimits
from vidfer.io.writer import write_video

from helpers import moving_square, write_frame_folder


def test_natural_order_leaves_out_what_is_not_a_frame(tmp_path):
    frames = np.stack([np.full((8, 10, 3), 10 * i, np.uint8) for i in range(12)])
    folder = write_frame_folder(tmp_path / "clip", frames)  # frame1 ... frame12
    (folder / ".frame0.png").write_bytes((folder / "frame1.png").read_bytes())  # hidden
    (folder / "notes.txt").write_text("not a frame")
    (folder / "sub.png").mkdir()  # a folder, even named like an image
    assert [p.name for p in list_images(folder)][:3] == ["frame1.png", "frame2.png", "frame3.png"]
    assert [p.name for p in list_images(folder)][-3:] == [
        "frame10.png",
        "frame11.png",
        "frame12.png",
    ]
    assert sorted(["f10", "f9", "f01", "f1", "a"], key=natural_key) == [
        "a",
        "f01",
        "f1",
        "f9",
        "f10",
    ]
    video = decode(folder, frame_folder_fps=30.0)
    assert np.array_equal(video.frames, frames)
    assert video.fps == video.info.fps == 30.0 and video.info.num_frames == 12


@pytest.mark.parametrize("codec", ["libx264rgb", "ffv1"])
def test_frames_equal_those_of_the_lossless_video(tmp_path, codec):
    frames = moving_square(1, frames=23, size=40)[:, :, 4:]  # (23, 40, 36, 3): not square
    folder = write_frame_folder(tmp_path / "clip", frames)
    video = tmp_path / "clip.mkv"
    write_video(
        video, frames, 10.0, codec=codec, crf=0, pix_fmt="rgb24" if codec != "ffv1" else "bgr0"
    )
    for options in ({}, {"fps": 4.0, "short_side": 24}, {"max_frames": 5}):
        from_folder = decode(folder, frame_folder_fps=10.0, **options)
        from_video = decode(video, **options)
        assert np.array_equal(from_folder.frames, from_video.frames), options
        assert np.array_equal(from_folder.frame_indices, from_video.frame_indices)
        assert from_folder.fps == pytest.approx(from_video.fps)
    assert np.array_equal(decode(folder).frames, frames)


def test_a_frame_folder_decodes_in_pieces(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", moving_square(-1, frames=23), suffix=".jpg")
    whole = decode(folder, fps=7.0, short_side=24, frame_folder_fps=10.0)
    pieces = list(decode_chunks(folder, 5, fps=7.0, short_side=24, frame_folder_fps=10.0))
    assert [len(piece.frames) for piece in pieces] == [5, 5, 5, 1]  # 16 of 23 frames kept
    assert np.array_equal(np.concatenate([piece.frames for piece in pieces]), whole.frames)
    assert (
        np.concatenate([p.frame_indices for p in pieces]).tolist() == whole.frame_indices.tolist()
    )


def test_limits_are_checked_before_decoding(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", moving_square(1, frames=6, size=32))
    with pytest.raises(VideoTooLargeError, match=r"frame count 6 exceeds limits.max_frames=5"):
        probe_folder(folder, 25.0, VideoLimits(max_frames=5))
    with pytest.raises(VideoTooLargeError, match=r"width 32 exceeds limits.max_width=16"):
        probe_folder(folder, 25.0, VideoLimits(max_width=16))
    with pytest.raises(VideoTooLargeError, match=r"duration \(s\) 3.0 exceeds"):
        probe_folder(folder, 2.0, VideoLimits(max_duration_s=2.5))
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptyVideoError, match="holds no image"):
        decode(tmp_path / "empty")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda data: data[: len(data) // 2], r"frame3.png is not a readable image"),
        (lambda data: b"GIF89a" + data[6:], r"frame3.png is not a readable image \(not a PNG"),
        (lambda data: data[:20], r"frame3.png is not a readable image \(its header"),
    ],
    ids=["cut_short", "not_an_image", "header_cut"],
)
def test_a_damaged_image_is_named(tmp_path, damage, message):
    folder = write_frame_folder(tmp_path / "clip", moving_square(1, frames=5))
    image = folder / "frame3.png"
    image.write_bytes(damage(image.read_bytes()))
    with pytest.raises(UndecodableVideoError, match=message):
        decode(folder)


def test_a_damaged_jpeg_or_a_frame_of_another_size_is_named(tmp_path):
    folder = write_frame_folder(tmp_path / "clip", moving_square(1, frames=5), suffix=".jpg")
    image = folder / "frame2.jpg"
    data = image.read_bytes()
    image.write_bytes(data[: len(data) // 2])  # FFmpeg would conceal it: vidfer refuses it
    with pytest.raises(UndecodableVideoError, match=r"frame2.jpg is not a readable image"):
        decode(folder)
    write_frame_folder(folder, moving_square(1, frames=1, size=40), names=["frame2.jpg"])
    with pytest.raises(UndecodableVideoError, match=r"frame2.jpg is 40x40, the first image 32x32"):
        decode(folder)
