"""What fusion checks about the runs before learning anything from them.

Fusion weights (``search``) and the fusion network (``network``) are learned on the videos of one
split, so that split must be one none of the runs learned from (Kahou et al. 2015: "random search
would assign high weights to the over-fitters"). Every run folder records the videos it trained
and early-stopped on, with its manifest's sha256 and its classes, in ``RUN/videos.json``
(:class:`vidfer.io.run_folder.RunVideos`). In one line naming the run, :func:`same_classes`
refuses runs with other classes or another class order than the first run's;
:func:`check_unseen` runs that trained or early-stopped on any video of the search split, giving
their count (early-stopped only: accepted when the user says so, as in Kahou et al.'s protocol,
and the report then says so in its first line); :func:`same_manifest` runs of another manifest
(another sha256).

A run written before vidfer recorded ``videos.json`` is fused with one warning saying that its
overlap with the search split could not be checked (re-training it writes the record).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vidfer.errors import ConfigError
from vidfer.io.run_folder import RunDir, RunVideos

log = logging.getLogger(__name__)


def same_classes(folders: Sequence[Path]) -> list[RunVideos | None]:
    """Refuse runs whose classes or class order differ from the first run's.

    Returns:
        Each run's record (None: written before vidfer recorded it).

    Raises:
        ConfigError: naming the first run with other classes.
        CheckpointError: naming a folder that is not a run.
    """
    runs = [RunDir(folder) for folder in folders]
    first = runs[0]
    for run in runs[1:]:
        if run.classes() != first.classes():
            raise ConfigError(
                f"fuse: {run.folder} has the classes {run.classes()}, {first.folder} has "
                f"{first.classes()}; fuse runs trained with the same classes in the same order"
            )
    return [run.videos() for run in runs]


def same_manifest(folders: Sequence[Path], records: Sequence[RunVideos | None]) -> None:
    """Refuse runs trained on another manifest (another sha256) than the first recorded run's.

    Raises:
        ConfigError: naming the first run of another manifest.
    """
    known = [(folder, record) for folder, record in zip(folders, records, strict=True) if record]
    for folder, record in known[1:]:
        reference, expected = known[0]
        if record.manifest_sha256 != expected.manifest_sha256:
            raise ConfigError(
                f"fuse: {folder} was trained on the manifest {record.manifest} (sha256 "
                f"{record.manifest_sha256[:12]}), {reference} on {expected.manifest} "
                f"(sha256 {expected.manifest_sha256[:12]}); fuse runs of the same manifest"
            )


@dataclass(frozen=True)
class SearchCheck:
    """What :func:`check_unseen` found, for the fusion's record.

    Attributes:
        unchecked: Runs without ``videos.json``: their overlap could not be checked.
        stopped_on: Runs that early-stopped on search videos (allowed only when asked).
    """

    unchecked: list[str] = field(default_factory=list)
    stopped_on: list[str] = field(default_factory=list)


def check_unseen(
    folders: Sequence[Path],
    records: Sequence[RunVideos | None],
    search_split: str,
    search_ids: Collection[str],
    *,
    allow_stopping: bool = False,
) -> SearchCheck:
    """Refuse runs that trained or early-stopped on videos of the search split.

    Args:
        folders: The run folders.
        records: Their records (:func:`same_classes`).
        search_split: The split the fusion learns on.
        search_ids: The videos of that split.
        allow_stopping: Accept runs that only early-stopped on those videos (Kahou et al.'s
            protocol: train on train, stop and search on val); training on them is never accepted.

    Returns:
        The runs not checked (each logged as a warning) and those accepted as stopped on the split.

    Raises:
        ConfigError: naming the first run that learned from the split, with the videos' count.
    """
    searched = set(search_ids)
    found = SearchCheck()
    for folder, record in zip(folders, records, strict=True):
        if record is None:
            log.warning(
                "fuse: %s has no videos.json (trained before vidfer recorded it): could not "
                "check that it did not train or early-stop on the %r videos; re-train it to check",
                folder,
                search_split,
            )
            found.unchecked.append(str(folder))
            continue
        trained = searched.intersection(record.train)
        stopped = searched.intersection(record.stopping)
        if trained or (stopped and not allow_stopping):
            example = sorted(trained | stopped)[:3]
            raise ConfigError(
                f"fuse: {folder} trained on {len(trained)} and early-stopped on "
                f"{len(stopped)} of the {len(searched)} {search_split!r} videos the fusion "
                f"would be learned on (e.g. {example}); search on a split none of the runs "
                "learned from (--search-split), leave that run out"
                + ("" if trained else ", or pass --search-on-stopping-split if you mean it")
            )
        if stopped:
            found.stopped_on.append(str(folder))
    return found
