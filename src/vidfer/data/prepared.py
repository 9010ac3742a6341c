"""A dataset ready to use: its manifest validated and every video in the prepared store."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from vidfer.config import DataConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.manifest import Manifest, ManifestRow, read_frame_labels, read_manifest
from vidfer.data.prepare import PrepareResult, prepare_rows, write_rejects
from vidfer.data.store import PreparedStore
from vidfer.errors import ManifestError, VidferError


@dataclass(frozen=True)
class PreparedDataset:
    """The manifest, the store and the usable videos.

    Attributes:
        manifest: The validated manifest.
        result: What preparation produced (records of every row).
        items: The usable (``ok``) videos, in manifest order.
    """

    manifest: Manifest
    result: PrepareResult

    @property
    def store(self) -> PreparedStore:
        """The store folder holding the frames."""
        return self.result.store

    @cached_property
    def items(self) -> list[VideoItem]:
        """Every usable video.

        Raises:
            ManifestError: if a ``frame_labels`` file is unreadable or has fewer values than its
                video has frames.
        """
        out = []
        for row in self.manifest.rows:
            record = self.result.records[row.video_id]
            if record.ok:
                out.append(
                    VideoItem(
                        row=row,
                        key=record.source.key(),
                        num_frames=record.num_frames,
                        fps=record.fps,
                        frame_labels=self._frame_labels(row, record.frame_indices),
                    )
                )
        return out

    def _frame_labels(self, row: ManifestRow, kept: list[int]) -> tuple[float, ...] | None:
        """The values of the stored frames ``kept`` (source frame indices), or None."""
        if row.frame_labels is None:
            return None
        values = read_frame_labels(row, self.manifest.source)
        if max(kept) >= len(values):
            raise ManifestError(
                f"{self.manifest.source}:{row.line}: {row.frame_labels} has {len(values)} "
                f"values but the video has at least {max(kept) + 1} frames; "
                "write one value per frame"
            )
        return tuple(float(v) for v in values[kept])

    def split(self, name: str) -> list[VideoItem]:
        """Usable videos of one split (all of them when the manifest has no split column)."""
        if not self.manifest.has_splits():
            return self.items
        return [item for item in self.items if item.row.split == name]

    def rejects(self) -> list[dict[str, Any]]:
        """The rejected rows with status and reason."""
        return self.result.rejects(self.manifest.rows)


def load_dataset(
    config: DataConfig, *, rejects_path: Path | None = None, device: str | None = None
) -> PreparedDataset:
    """Validate the manifest, prepare what is missing, and check the rejected share.

    Args:
        config: The data section.
        rejects_path: Where to write ``rejects.jsonl`` (None: beside the store folder).
        device: Where MTCNN detects the faces (``auto``, ``cpu``, ``cuda``, ``cuda:N``), in
            place of ``data.prepare.faces.device``; None: as the config says. The store is the
            same on any device.

    Raises:
        ManifestError: on an invalid manifest (before any decoding).
        ConfigError: if the face detector's device is not a device, or CUDA without a GPU
            (before anything is written).
        VidferError: if more than ``data.max_reject_fraction`` of the videos were rejected.
    """
    prep = config.prepare.with_face_device(device)
    manifest = read_manifest(config.manifest, root=config.dataset_root, classes=config.classes)
    result = prepare_rows(
        manifest.rows,
        store_root=config.store_root,
        prep=prep,
        limits=config.limits,
        workers=config.workers,
        frame_folder_fps=config.frame_folder_fps,
    )
    dataset = PreparedDataset(manifest=manifest, result=result)
    dataset.items  # noqa: B018 -- reads the frame_labels files now, so a bad one fails early
    rejects = dataset.rejects()
    write_rejects(rejects_path or result.store.folder / "rejects.jsonl", rejects)
    share = len(rejects) / len(manifest.rows)
    if share > config.max_reject_fraction:
        raise VidferError(
            f"{config.manifest}: {len(rejects)} of {len(manifest.rows)} videos rejected "
            f"({share:.0%} > data.max_reject_fraction={config.max_reject_fraction}); "
            f"see {rejects_path or result.store.folder / 'rejects.jsonl'}"
        )
    return dataset
