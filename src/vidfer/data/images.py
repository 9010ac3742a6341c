"""Labelled still images for training frame CNNs, from three kinds of source.

* a folder-per-class tree ``ROOT/<label>/<image>`` (or ``ROOT/<split>/<label>/<image>`` with
  ``split`` in train/val/test), images ``.png``, ``.jpg``, ``.jpeg`` or ``.bmp``;
* the FER2013 CSV (``emotion,pixels,Usage``: 48x48 gray faces, Usage ``Training`` -> train,
  ``PublicTest`` -> val, ``PrivateTest`` -> test);
* the frames of a prepared video dataset, named by a run config YAML: every kept frame (or every
  ``every``-th) is one image labelled with its video's label, in its video's split.

:func:`load_images` detects the kind from the path. When a source has no validation split, a
stratified share of the training images (of the training videos, for frames, so that frames of
one video never straddle train and val) is held out. :mod:`vidfer.data.image_dataset` serves
them to a model for training.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from vidfer.config import DataConfig
from vidfer.errors import ConfigError, ManifestError

SPLITS = ("train", "val", "test")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
FER2013_SIDE = 48
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


FER2013_CLASSES: tuple[str, ...] = (
    "angry",
    "disgust",
    "fear",
    "happy",
    "sad",
    "surprise",
    "neutral",
)
"""The FER2013 label codes 0-6, in order (also the pretrained mini-Xception's outputs)."""


@dataclass(frozen=True, eq=False)
class ImageSet:
    """Labelled images of one source.

    Attributes:
        source: The folder, CSV or run config they come from.
        kind: ``folder``, ``fer2013`` or ``frames``.
        classes: Class names; ``labels`` index them.
        labels: ``(N,)`` int64 class indices.
        splits: ``(N,)`` ``train``, ``val`` or ``test``.
        ids: One id per image (relative path, ``fer2013:<line>`` or ``<video_id>/<frame>``).
        reader: Returns image ``i`` as uint8 ``(H, W, 3)`` RGB.
    """

    source: Path
    kind: str
    classes: tuple[str, ...]
    labels: np.ndarray
    splits: np.ndarray
    ids: tuple[str, ...]
    reader: Callable[[int], np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def image(self, index: int) -> np.ndarray:
        """Image ``index``: uint8 ``(H, W, 3)`` RGB."""
        return self.reader(index)

    def indices(self, split: str) -> np.ndarray:
        """Indices of the images of one split."""
        return np.flatnonzero(self.splits == split)

    def counts(self) -> dict[str, int]:
        """Images per split."""
        return {split: int((self.splits == split).sum()) for split in SPLITS}


class _FileReader:
    """Reads image files with OpenCV."""

    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __call__(self, index: int) -> np.ndarray:
        path = self.paths[index]
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise ManifestError(f"{path}: cannot read the image; replace or remove the file")
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


class _GrayArrayReader:
    """Serves rows of a ``(N, H, W)`` gray array as RGB images."""

    def __init__(self, pixels: np.ndarray) -> None:
        self.pixels = pixels

    def __call__(self, index: int) -> np.ndarray:
        return np.repeat(self.pixels[index][:, :, None], 3, axis=2)  # (H, W) -> (H, W, 3)


class _StoreFrameReader:
    """Serves single frames of prepared videos, keeping each video's memory map open."""

    def __init__(self, frames_of: Callable[[str], np.ndarray], refs: list[tuple[str, int]]) -> None:
        self.frames_of = frames_of
        self.refs = refs
        self.open: dict[str, np.ndarray] = {}

    def __call__(self, index: int) -> np.ndarray:
        key, frame = self.refs[index]
        if key not in self.open:
            self.open[key] = self.frames_of(key)
        image = np.asarray(self.open[key][frame])  # (H, W, C)
        return np.repeat(image, 3, axis=2) if image.shape[2] == 1 else image


def _folder_images(root: Path) -> tuple[list[Path], list[str], list[str]]:
    """Image paths, their labels and their splits in a folder-per-class tree."""
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    names = {p.name for p in subdirs}
    by_split = "train" in names and names <= set(SPLITS)
    trees = [(p, p.name) for p in subdirs] if by_split else [(root, "train")]
    paths, labels, splits = [], [], []
    for tree, split in trees:
        for class_dir in sorted(p for p in tree.iterdir() if p.is_dir()):
            for path in sorted(class_dir.rglob("*")):
                if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
                    paths.append(path)
                    labels.append(class_dir.name)
                    splits.append(split)
    if not paths:
        raise ConfigError(
            f"{root}: no images ({', '.join(IMAGE_SUFFIXES)}) in class folders ROOT/<label>/ "
            "or ROOT/<split>/<label>/"
        )
    return paths, labels, splits


def folder_images(root: str | Path) -> ImageSet:
    """Images of a folder-per-class tree (splits from a train/val/test layout, else all train).

    Raises:
        ConfigError: if the tree holds no image.
    """
    root = Path(root)
    paths, names, splits = _folder_images(root)
    classes = tuple(sorted(set(names)))
    return ImageSet(
        source=root,
        kind="folder",
        classes=classes,
        labels=np.array([classes.index(name) for name in names], dtype=np.int64),
        splits=np.array(splits),
        ids=tuple(path.relative_to(root).as_posix() for path in paths),
        reader=_FileReader(paths),
    )


def _fer_header(path: Path, header: list[str] | None) -> tuple[int, int, int | None]:
    """Column indices of emotion, pixels and (optional) Usage."""
    columns = [column.strip() for column in header or []]
    if "emotion" not in columns or "pixels" not in columns:
        raise ConfigError(
            f"{path}: not a FER2013 CSV: the header must be emotion,pixels,Usage (got "
            f"{','.join(columns) or 'nothing'}); for videos give a run config YAML"
        )
    usage = columns.index("Usage") if "Usage" in columns else None
    return columns.index("emotion"), columns.index("pixels"), usage


def _fer_pixels(path: Path, line: int, text: str) -> np.ndarray:
    """One row's 48x48 gray image, parsed by numpy."""
    size = FER2013_SIDE * FER2013_SIDE
    fix = f"write {size} gray values 0-255 separated by spaces, or remove the row"
    try:
        values = np.fromstring(text.strip(), dtype=np.int64, sep=" ")
    except ValueError:
        raise ManifestError(
            f"{path}:{line}: pixels holds a value that is not an integer; {fix}"
        ) from None
    if values.size != size:
        raise ManifestError(f"{path}:{line}: pixels has {values.size} values, not {size}; {fix}")
    if values.min() < 0 or values.max() > 255:
        raise ManifestError(f"{path}:{line}: pixels holds a value outside 0-255; {fix}")
    return values.astype(np.uint8).reshape(FER2013_SIDE, FER2013_SIDE)  # (2304,) -> (48, 48)


def fer2013_images(path: str | Path) -> ImageSet:
    """Images of a FER2013 CSV (``emotion,pixels,Usage``), read row by row.

    Without a ``Usage`` column every image is a training image.

    Raises:
        ConfigError: if the header is not FER2013's.
        ManifestError: naming the line of a bad row (field count, emotion, pixels or Usage).
    """
    path = Path(path)
    images, labels, splits, ids = [], [], [], []
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        emotion_at, pixels_at, usage_at = _fer_header(path, next(reader, None))
        width = 2 if usage_at is None else 3
        for row in reader:
            line = reader.line_num
            if not row:
                continue
            if len(row) < width:
                raise ManifestError(
                    f"{path}:{line}: {len(row)} field(s), expected emotion,pixels,Usage; "
                    "fix or remove the row"
                )
            emotion = row[emotion_at].strip()
            if not emotion.isdigit() or int(emotion) >= len(FER2013_CLASSES):
                raise ManifestError(
                    f"{path}:{line}: emotion {emotion!r} is not a class index 0-6 "
                    f"({', '.join(FER2013_CLASSES)})"
                )
            split = "train"
            if usage_at is not None:
                usage = row[usage_at].strip()
                if usage not in FER2013_USAGE:
                    raise ManifestError(
                        f"{path}:{line}: Usage {usage!r} is not one of {', '.join(FER2013_USAGE)}"
                    )
                split = FER2013_USAGE[usage]
            images.append(_fer_pixels(path, line, row[pixels_at]))
            labels.append(int(emotion))
            splits.append(split)
            ids.append(f"fer2013:{line}")
    if not images:
        raise ConfigError(f"{path}: the FER2013 CSV has no rows")
    return ImageSet(
        source=path,
        kind="fer2013",
        classes=FER2013_CLASSES,
        labels=np.array(labels, dtype=np.int64),
        splits=np.array(splits),
        ids=tuple(ids),
        reader=_GrayArrayReader(np.stack(images)),  # (N, 48, 48)
    )


def video_frame_images(data: DataConfig, *, source: Path, every: int = 1) -> ImageSet:
    """Every ``every``-th kept frame of every usable prepared video, labelled like its video.

    Args:
        data: The data section of a run config (videos are prepared if they are not yet).
        source: The run config file, recorded as the source.
        every: Take one frame in ``every``.

    Raises:
        ConfigError: if ``every`` < 1 or no video is usable.
    """
    from vidfer.data.prepared import load_dataset

    if every < 1:
        raise ConfigError(f"every must be >= 1, got {every}")
    dataset = load_dataset(data)
    if not dataset.items:
        raise ConfigError(f"{data.manifest}: no usable video")
    with_splits = dataset.manifest.has_splits()
    refs, labels, splits, ids = [], [], [], []
    for item in dataset.items:
        for frame in range(0, item.num_frames, every):
            refs.append((item.key, frame))
            labels.append(item.row.label_index)
            splits.append(item.row.split if with_splits else "train")
            ids.append(f"{item.row.video_id}/{frame}")
    return ImageSet(
        source=source,
        kind="frames",
        classes=tuple(dataset.manifest.classes),
        labels=np.array(labels, dtype=np.int64),
        splits=np.array(splits),
        ids=tuple(ids),
        reader=_StoreFrameReader(dataset.store.frames, refs),
    )


def _hold_out_val(images: ImageSet, fraction: float, seed: int) -> ImageSet:
    """A stratified share of the training images (whole videos, for frames) moved to val."""
    train = images.indices("train")
    # Frames of one video form one group, so that no video is in both train and val.
    groups = np.array(
        [
            images.ids[i].rsplit("/", 1)[0] if images.kind == "frames" else images.ids[i]
            for i in train
        ]
    )
    from sklearn.model_selection import train_test_split  # only to hold out a val split

    units, first = np.unique(groups, return_index=True)
    unit_labels = images.labels[train][first]
    try:
        try:
            _, val_units = train_test_split(
                units, test_size=fraction, random_state=seed, stratify=unit_labels
            )
        except ValueError:  # a class with too few members to stratify
            _, val_units = train_test_split(units, test_size=fraction, random_state=seed)
    except ValueError:
        raise ConfigError(
            f"{images.source}: too few training {'videos' if images.kind == 'frames' else 'images'}"
            f" ({len(units)}) to hold out val_fraction={fraction}"
        ) from None
    splits = images.splits.copy()
    splits[train[np.isin(groups, val_units)]] = "val"
    return ImageSet(
        source=images.source,
        kind=images.kind,
        classes=images.classes,
        labels=images.labels,
        splits=splits,
        ids=images.ids,
        reader=images.reader,
    )


def load_images(
    source: str | Path, *, val_fraction: float = 0.1, seed: int = 0, every: int = 1
) -> ImageSet:
    """Images of a folder tree, a FER2013 CSV or a run config's prepared videos.

    Args:
        source: A folder, a ``.csv`` or a ``.yaml``/``.yml`` run config.
        val_fraction: Share of the training images (videos) held out for validation when the
            source has no val split.
        seed: Seed of that hold-out.
        every: For videos, take one frame in ``every``.

    Raises:
        ConfigError: on a missing or unrecognised source, a source without training images, or
            a bad ``val_fraction``.
        ManifestError: on a bad FER2013 row.
    """
    from vidfer.config import load_config

    path = Path(source)
    if not 0 <= val_fraction < 1:
        raise ConfigError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if path.is_dir():
        images = folder_images(path)
    elif not path.is_file():
        raise ConfigError(
            f"{source}: no such file or folder; give a folder of class folders, a FER2013 CSV "
            "or a run config YAML"
        )
    elif path.suffix.lower() == ".csv":
        images = fer2013_images(path)
    elif path.suffix.lower() in (".yaml", ".yml"):
        images = video_frame_images(load_config(path).data, source=path, every=every)
    else:
        raise ConfigError(
            f"{source}: unknown image source; give a folder, a FER2013 .csv or a run config .yaml"
        )
    if not images.indices("train").size:
        raise ConfigError(f"{source}: no training images")
    if not images.indices("val").size and val_fraction > 0:
        images = _hold_out_val(images, val_fraction, seed)
    return images
