"""The audio modality on real sample videos: IS10 features, and a clear status without audio."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from vidfer.assets import asset_path
from vidfer.errors import CorruptVideoError
from vidfer.features.audio import IS10_SIZE, RATE, audio_features, audio_signal


def test_a_video_with_sound_gives_1582_finite_features() -> None:
    path = asset_path("bigbuckbunny")
    signal = audio_signal(path)
    assert signal is not None and signal.dtype == np.float32
    assert 5.0 < len(signal) / RATE < 6.0  # 132 frames at 25 fps: 5.3 s
    assert 0 < np.abs(signal).max() <= 1.0
    found = audio_features(path)
    assert found.status == "ok" and found.features is not None
    assert found.features.shape == (IS10_SIZE,) and np.isfinite(found.features).all()
    assert found.features.std() > 0


def test_a_video_without_sound_is_a_missing_modality(tmp_path: Path) -> None:
    found = audio_features(asset_path("carphone"))
    assert (found.status, found.features) == ("no_audio", None)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    with pytest.raises(CorruptVideoError, match=r"broken\.mp4"):
        audio_features(broken)
