"""``faces.template: dataset_mean``: one template, the mean shape of the dataset's detected faces,
computed by a first pass, kept with the store, used by every crop, a resumed run and predict."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vidfer.assets import asset_path, fetch_assets
from vidfer.config import DataConfig, PrepareConfig
from vidfer.data.face_template import TEMPLATE_FILE, resolved_faces
from vidfer.data.prepare import open_store
from vidfer.data.prepared import load_dataset
from vidfer.data.preprocess import finish_frames
from vidfer.errors import ConfigError
from vidfer.faces import mean_shape, mean_shape_template, process_faces
from vidfer.faces.tracks import OK
from vidfer.io.video import decode
from vidfer.io.writer import write_video

FACES = {"size": 48, "margin": 0.1, "template": "dataset_mean", "batch_size": 12}


@pytest.fixture(scope="module")
def two_faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """carphone's first 24 frames and their mirror image: two videos, one face each."""
    fetch_assets(["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet"])
    root = tmp_path_factory.mktemp("faces")
    frames = decode(asset_path("carphone"), max_frames=24).frames  # (24, 144, 176, 3)
    write_video(root / "a.mp4", frames, 25.0, crf=0)
    write_video(root / "b.mp4", np.ascontiguousarray(frames[:, :, ::-1]), 25.0, crf=0)
    (root / "manifest.csv").write_text("path,label\na.mp4,x\nb.mp4,y\n")
    return root


@pytest.mark.slow
def test_every_crop_is_aligned_to_the_dataset_mean_shape(two_faces: Path, tmp_path: Path) -> None:
    config = DataConfig.model_validate(
        {
            "manifest": two_faces / "manifest.csv",
            "store": tmp_path / "store",
            "workers": 1,
            "prepare": {"faces": FACES},
        }
    )
    dataset = load_dataset(config)
    assert len(dataset.items) == 2
    saved = json.loads((dataset.store.folder / TEMPLATE_FILE).read_text())
    assert not list(dataset.store.folder.glob("*.track.npz"))  # the first pass's, used

    # The template: the mean of every detected face's shape over both videos, in the crop.
    options = config.prepare.face_config()
    assert options is not None
    plain = options.model_copy(update={"template": None})
    found = {
        name: (video, process_faces(video.frames, plain))
        for name in ("a", "b")
        for video in [decode(two_faces / f"{name}.mp4")]
    }
    shapes = []
    for _, result in found.values():
        ok = [i for i, item in enumerate(result.frames) if item["status"] == OK]
        shapes += [np.asarray(result.frames[i]["landmarks"]) for i in ok]
    expected = mean_shape_template(mean_shape(shapes), size=48, margin=0.1)
    np.testing.assert_allclose(saved["points"], expected, atol=0.02)  # records round to 0.01
    assert saved["faces"] == len(shapes)

    # Every crop aligned to it, as the whole-video pipeline aligns to the same points (up to
    # the detector's float sums: the tests run torch on 1 thread, the preparation worker not).
    aligned = resolved_faces(config.prepare, dataset.store)
    assert aligned is not None and np.allclose(aligned.template, saved["points"])
    for item in dataset.items:
        video, _ = found[item.row.rel_path[0]]
        crops = finish_frames(process_faces(video.frames, aligned).crops, config.prepare)
        difference = np.abs(dataset.store.frames(item.key).astype(np.int16) - crops)
        assert difference.mean() < 0.5, difference.mean()

    # A resumed preparation uses the kept template, not one of the videos still to prepare.
    first = dataset.items[0]
    stored = np.array(dataset.store.frames(first.key))
    dataset.store.record_path(first.key).unlink()
    again = load_dataset(config)
    assert again.result.decoded == 1
    assert json.loads((again.store.folder / TEMPLATE_FILE).read_text()) == saved
    np.testing.assert_array_equal(again.store.frames(first.key), stored)


def test_a_dataset_mean_needs_its_prepared_store(tmp_path: Path) -> None:
    prep = PrepareConfig(faces=FACES)
    with pytest.raises(ConfigError, match=r"template.json does not exist; run vidfer prepare"):
        resolved_faces(prep, open_store(tmp_path, prep))
    faces = prep.face_config()
    assert faces is not None
    with pytest.raises(ConfigError, match="dataset_mean is computed over a dataset"):
        process_faces(np.zeros((1, 64, 64, 3), np.uint8), faces)
    with pytest.raises(ValueError, match="5 \\(or 2\\)"):
        PrepareConfig(faces={"template": [[1, 2], [3, 4], [5, 6]]})
