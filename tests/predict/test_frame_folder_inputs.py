"""``vidfer predict``'s inputs with frame folders: a folder of images is one video."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfer.errors import ConfigError
from vidfer.predict.inputs import resolve_inputs


def test_frame_folders_are_videos_among_the_inputs(tmp_path: Path) -> None:
    for name in ("a/clip1/f1.png", "a/clip1/f2.png", "a/sub/clip2/0.jpg", "a/v.mp4", "a/x.txt"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_bytes(b"")
    root = tmp_path / "a"
    # A frame folder is one video; a folder above lists its videos and frame folders.
    assert resolve_inputs([root / "clip1"]) == [root / "clip1"]
    assert resolve_inputs([root]) == [root / "clip1", root / "sub" / "clip2", root / "v.mp4"]
    assert resolve_inputs([f"{root}/*"]) == [root / "clip1", root / "v.mp4", root / "x.txt"]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"no video file .* and no frame folder"):
        resolve_inputs([tmp_path / "empty"])
    with pytest.raises(ConfigError, match="no such file or frame folder"):
        resolve_inputs([tmp_path / "nothing"])
