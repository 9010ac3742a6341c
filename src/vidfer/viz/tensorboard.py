"""TensorBoard event files of a clip run (``train.tensorboard: true``), in ``RUN/tensorboard/``.

Per epoch, every number of the ``metrics.jsonl`` line (losses, accuracies, the learning rate,
times) as a scalar at step = the epoch; after training, the confusion matrices of the held-out
splits (``confusion/<split>``) and the sampling maps of a learning sampler (``sampling_maps``),
as the images the run folder holds. Only the main process writes (one writer per run). Read
them with ``tensorboard --logdir RUN`` or TensorBoard's ``EventAccumulator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2

from vidfer.errors import ConfigError

FOLDER = "tensorboard"


class TensorBoard:
    """The event writer of one run folder.

    Raises:
        ConfigError: if the ``tensorboard`` package is missing.
    """

    def __init__(self, run_folder: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "train.tensorboard: true needs the tensorboard package: "
                "pip install 'vidfer[tensorboard]'"
            ) from None
        self.writer = SummaryWriter(log_dir=str(run_folder / FOLDER))

    def epoch(self, line: Mapping[str, Any]) -> None:
        """Write an epoch's numbers (``train_loss`` as ``train/loss``, ``lr`` as ``lr``)."""
        step = int(line["epoch"])
        for key, value in line.items():
            if key == "epoch" or isinstance(value, bool) or not isinstance(value, int | float):
                continue
            tag = key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key
            self.writer.add_scalar(tag, float(value), step)
        self.writer.flush()

    def image(self, tag: str, png: Path, step: int) -> None:
        """Write the PNG ``png`` as image ``tag``; nothing when the file does not exist."""
        if not png.is_file():
            return
        bgr = cv2.imread(str(png), cv2.IMREAD_COLOR)
        if bgr is None:
            raise ConfigError(f"{png}: not a readable PNG; delete it and train again")
        self.writer.add_image(tag, bgr[..., ::-1].copy(), step, dataformats="HWC")  # RGB
        self.writer.flush()

    def close(self) -> None:
        """Flush and close the event file."""
        self.writer.close()
