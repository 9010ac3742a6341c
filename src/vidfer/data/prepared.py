"""A dataset ready to use: its manifest validated and every video in the prepared store."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vidfer.config import DataConfig
from vidfer.data.dataset import VideoItem
from vidfer.data.manifest import Manifest, read_manifest
from vidfer.data.prepare import PrepareResult, prepare_rows, write_rejects
from vidfer.data.store import PreparedStore
from vidfer.errors import VidferError


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

    @property
    def items(self) -> list[VideoItem]:
        """Every usable video."""
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
                    )
                )
        return out

    def split(self, name: str) -> list[VideoItem]:
        """Usable videos of one split (all of them when the manifest has no split column)."""
        if not self.manifest.has_splits():
            return self.items
        return [item for item in self.items if item.row.split == name]

    def rejects(self) -> list[dict[str, Any]]:
        """The rejected rows with status and reason."""
        return self.result.rejects(self.manifest.rows)


def load_dataset(config: DataConfig, *, rejects_path: Path | None = None) -> PreparedDataset:
    """Validate the manifest, prepare what is missing, and check the rejected share.

    Args:
        config: The data section.
        rejects_path: Where to write ``rejects.jsonl`` (None: beside the store folder).

    Raises:
        ManifestError: on an invalid manifest (before any decoding).
        VidferError: if more than ``data.max_reject_fraction`` of the videos were rejected.
    """
    manifest = read_manifest(config.manifest, root=config.dataset_root, classes=config.classes)
    result = prepare_rows(
        manifest.rows,
        store_root=config.store_root,
        prep=config.prepare,
        limits=config.limits,
        workers=config.workers,
    )
    dataset = PreparedDataset(manifest=manifest, result=result)
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
