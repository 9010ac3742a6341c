"""Run folders: what ``vidfer train`` writes and what evaluate/predict read back.

Layout::

    RUN/config.yaml            the resolved config (absolute paths)
    RUN/classes.json           class names in score order
    RUN/videos.json            the videos it trained and early-stopped on, the manifest
                               (path and sha256) and the classes (:class:`RunVideos`)
    RUN/metrics.jsonl          one line per epoch
    RUN/rejects.jsonl          videos that could not be used, with the reason
    RUN/checkpoints/last.pt    state at the end of the last finished epoch (+ last.json)
    RUN/checkpoints/best.pt    model with the best validation loss (+ best.json)
    RUN/curves.png             learning curves
    RUN/eval_<split>/          predictions.csv, metrics.json, confusion.csv, confusion.png
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import yaml

from vidfer.config import RunConfig, config_to_dict, parse_config, read_yaml_mapping
from vidfer.errors import CheckpointError
from vidfer.io.atomic import atomic_write_json, atomic_write_text


@dataclass(frozen=True)
class RunVideos:
    """What a run learned from, as ``RUN/videos.json`` records it (fusion checks it).

    Attributes:
        train: Ids of the videos it trained on.
        stopping: Ids of the videos it early-stopped or selected its model on.
        manifest: The manifest's path.
        manifest_sha256: Digest of the manifest file.
        classes: Class names in score order.
    """

    train: list[str]
    stopping: list[str]
    manifest: str
    manifest_sha256: str
    classes: list[str]


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class RunDir:
    """A run folder.

    Args:
        folder: The run folder (created by :meth:`initialise`).
    """

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self._config: RunConfig | None = None
        self._classes: list[str] | None = None

    @property
    def config_path(self) -> Path:
        """The resolved config."""
        return self.folder / "config.yaml"

    @property
    def metrics_path(self) -> Path:
        """One JSON line per finished epoch."""
        return self.folder / "metrics.jsonl"

    def checkpoint(self, which: str) -> Path:
        """A checkpoint path: ``last``, ``best``, or a staged kind's stage (``autoencoder``...)."""
        return self.folder / "checkpoints" / f"{which}.pt"

    @property
    def videos_path(self) -> Path:
        """The videos the run trained and early-stopped on (:class:`RunVideos`)."""
        return self.folder / "videos.json"

    def initialise(
        self,
        config: RunConfig,
        classes: list[str],
        *,
        train: Sequence[str],
        stopping: Sequence[str],
    ) -> None:
        """Write the resolved config, the class list and the videos the run learns from.

        Args:
            config: The resolved config.
            classes: Class names in score order.
            train: Ids of the videos it trains on.
            stopping: Ids of the videos it early-stops or selects its model on.
        """
        self.folder.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.config_path, yaml.safe_dump(config_to_dict(config), sort_keys=False))
        atomic_write_json(self.folder / "classes.json", classes)
        manifest = config.data.manifest
        record = RunVideos(
            list(train), list(stopping), str(manifest), file_sha256(manifest), list(classes)
        )
        atomic_write_json(self.videos_path, asdict(record))
        self._config, self._classes = None, None  # read back from the files when asked

    def videos(self) -> RunVideos | None:
        """What the run trained and early-stopped on; None for a run written before vidfer
        recorded it (no ``videos.json``).

        Raises:
            CheckpointError: if ``videos.json`` is malformed.
        """
        if not self.videos_path.exists():
            return None
        try:
            return RunVideos(**json.loads(self.videos_path.read_text(encoding="utf-8")))
        except (ValueError, TypeError) as error:
            raise CheckpointError(
                f"{self.videos_path}: not a videos record ({error}); re-train the run"
            ) from None

    def config(self) -> RunConfig:
        """The run's config (parsed once, then kept).

        Raises:
            CheckpointError: if the folder is not a run folder.
        """
        if not self.config_path.exists():
            raise CheckpointError(
                f"{self.folder}: not a vidfer run folder (no config.yaml); "
                "pass the --out folder of a 'vidfer train' run"
            )
        if self._config is None:
            # Its paths are absolute; earlier versions wrote, for a config given by a relative
            # path, paths relative to the working directory: that is where they resolve.
            raw = read_yaml_mapping(self.config_path)
            self._config = parse_config(raw, source=str(self.config_path), base=Path.cwd())
        return self._config

    def classes(self) -> list[str]:
        """Class names in score order (read once, then kept)."""
        if self._classes is None:
            path = self.folder / "classes.json"
            if not path.exists():
                raise CheckpointError(
                    f"{self.folder}: not a vidfer run folder (no classes.json); "
                    "pass the --out folder of a 'vidfer train' run"
                )
            text = path.read_text(encoding="utf-8")
            self._classes = list(json.loads(text))
        return list(self._classes)

    def best_or_last(self) -> Path:
        """The best checkpoint if there is one, else the last."""
        best = self.checkpoint("best")
        if best.exists():
            return best
        last = self.checkpoint("last")
        if last.exists():
            return last
        raise CheckpointError(f"{self.folder}: no checkpoint yet; train it with 'vidfer train'")
