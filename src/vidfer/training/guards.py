"""Training faults turned into one clear error: a loss that is not finite, a lost loader worker.

Both errors name the step and the videos involved, so that the user knows where to look, and are
raised before anything is written: the last checkpoint is the one before the fault.
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
from collections.abc import Callable, Iterator, Sequence

import torch

from vidfer.data.inflight import LoaderBoard
from vidfer.errors import TrainingError
from vidfer.training.resume import EpochProgress

log = logging.getLogger(__name__)

# PyTorch's messages for a dead worker ("DataLoader worker (pid 12) is killed by signal: ...",
# "DataLoader worker (pid(s) 12) exited unexpectedly") and for a timeout.
_LOADER_FAILURE = re.compile(r"DataLoader (worker|timed out)")


def loss_is_finite(loss: torch.Tensor, policy: str, where: str, videos: Sequence[str]) -> bool:
    """Check a batch's loss before its backward pass.

    Args:
        loss: The batch's loss (a scalar).
        policy: ``stop`` (raise) or ``skip`` (log and return False: no gradient from the batch).
        where: The step, e.g. ``"epoch 2, batch 3 (step 7)"``.
        videos: The batch's videos (manifest paths).

    Returns:
        True when the loss is finite.

    Raises:
        TrainingError: on a loss that is NaN or infinite with ``policy="stop"``.
    """
    if bool(torch.isfinite(loss)):
        return True
    message = f"{where}: the loss is {float(loss.detach())} on video(s) {', '.join(videos)}"
    if policy == "skip":
        log.warning("%s; batch skipped (train.on_nan=skip)", message)
        return False
    raise TrainingError(
        f"{message}; training stopped before this step, no checkpoint was written after it; "
        "lower optim.lr, set train.clip_grad, or set train.on_nan=skip to skip such batches"
    )


def check_epoch(progress: EpochProgress, val_loss: float | None, epoch: int) -> None:
    """Stop before an epoch's checkpoint when the model diverged.

    Raises:
        TrainingError: every batch of the epoch was skipped (``train.on_nan: skip``), or the
            validation loss is not finite.
    """
    if progress.skipped and not progress.seen:
        raise TrainingError(
            f"epoch {epoch + 1}: the loss of every batch was NaN or infinite, the model diverged; "
            "no checkpoint was written for this epoch; lower optim.lr or set train.clip_grad"
        )
    if val_loss is not None and not math.isfinite(val_loss):
        raise TrainingError(
            f"epoch {epoch + 1}: the validation loss is {val_loss}, the model diverged; no "
            "checkpoint was written for this epoch; lower optim.lr or set train.clip_grad"
        )


@contextlib.contextmanager
def loader_failures(board: LoaderBoard | None, name: Callable[[int], str]) -> Iterator[None]:
    """Turn a dead or stalled data-loader worker into a :class:`TrainingError` naming the video.

    Args:
        board: The loader's :class:`LoaderBoard` (None without loader workers).
        name: The video of a dataset item, for the message.
    """
    try:
        yield
    except RuntimeError as error:
        if board is None or not _LOADER_FAILURE.search(str(error)):
            raise
        in_flight = board.in_flight()
        # The dead worker's item; on a timeout every worker is alive: name what they load.
        lost = [item for item, alive in in_flight if not alive] or [i for i, _ in in_flight]
        videos = ", ".join(name(item) for item in lost) or "no video (the worker was idle)"
        detail = str(error).strip().splitlines()[0]
        raise TrainingError(
            f"a data-loader worker failed while loading {videos} ({detail}); check that "
            "video's prepared frames (delete its store entry to prepare it again) and memory "
            "use, then continue with 'vidfer train --resume RUN'"
        ) from None
