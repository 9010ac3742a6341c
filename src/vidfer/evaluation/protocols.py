"""Evaluation protocols: which videos train, validate and test each fold.

Every protocol yields folds of three disjoint row sets. The test rows come from the protocol;
the validation rows (early stopping, model selection) are carved from the fold's training part
unless the protocol names them: a stratified ``val_fraction`` (Ayral's thesis §2.2.2: 80/20 for
each class), by whole subjects when every row has one, so that no person is in two sets.

==============  ================================================================================
protocol        test rows
==============  ================================================================================
holdout         one stratified ``test_fraction`` (whole subjects when known)
kfold           each of k stratified folds (scikit-learn ``StratifiedKFold``)
subject_kfold   each of k folds of whole subjects (``StratifiedGroupKFold``; e.g. BioVid: 8)
loso            each subject in turn (``LeaveOneGroupOut``; KTH, UNBC-McMaster)
official        the manifest's ``test`` rows, or its ``val`` rows when it has no test rows
                (AFEW: train on Train, test on Val); one fold per manifest (HMDB-51, UCF-101:
                one manifest per official split)
swap            EmotiW-style (Kahou et al. §6.3): fold 0 trains on ``train`` and stops on
                ``val``, fold 1 the other way round; each tests on ``test`` rows, or without
                them on its stopping partition (the validation accuracies Kahou et al. report)
==============  ================================================================================

``repeats`` runs the whole protocol again with seeds ``seed``, ``seed + 1``, ...: new k-fold
shuffles and new validation shares each time (fold names ``r<r>_fold<k>``).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import (
    LeaveOneGroupOut,
    StratifiedGroupKFold,
    StratifiedKFold,
    train_test_split,
)

from vidfer.config.protocol import DEFAULT_FOLDS, ProtocolConfig
from vidfer.data.manifest import Manifest, ManifestRow
from vidfer.errors import ConfigError

Rows = tuple[ManifestRow, ...]


@dataclass(frozen=True)
class Fold:
    """One fold of a protocol.

    Attributes:
        name: ``fold<k>``, or ``r<r>_fold<k>`` when the protocol is repeated.
        repeat: Which repeat (0-based); its seed is the protocol's seed plus ``repeat``.
        train: Rows the model is fitted on.
        val: Rows for early stopping and model selection (may be empty).
        test: Rows the fold is scored on.
    """

    name: str
    repeat: int
    train: Rows
    val: Rows
    test: Rows

    @property
    def tests_on_val(self) -> bool:
        """The test rows are the validation rows (``swap`` without a test partition)."""
        return self.test == self.val

    @property
    def test_subjects(self) -> list[str] | None:
        """The subjects of the test rows, sorted; None when a test row has no subject."""
        if not all(row.subject for row in self.test):
            return None
        return sorted({row.subject for row in self.test})


def _labels(rows: Sequence[ManifestRow]) -> np.ndarray:
    return np.array([row.label_index for row in rows], dtype=np.int64)


def _subjects(rows: Sequence[ManifestRow]) -> np.ndarray | None:
    """Every row's subject, or None if some row has none."""
    if not rows or not all(row.subject for row in rows):
        return None
    return np.array([row.subject for row in rows])


def _require_subjects(rows: Sequence[ManifestRow], protocol: str, source: str) -> np.ndarray:
    subjects = _subjects(rows)
    if subjects is None:
        missing = next(row for row in rows if not row.subject)
        raise ConfigError(
            f"{source}:{missing.line}: the {protocol} protocol needs a subject for every video; "
            "fill the manifest's subject column"
        )
    return subjects


def _pick(rows: Sequence[ManifestRow], indices: np.ndarray) -> Rows:
    return tuple(rows[int(i)] for i in indices)


def _can_stratify(labels: np.ndarray, held_out: int) -> bool:
    """A stratified split with ``held_out`` rows aside can keep every class on both sides."""
    counts = np.bincount(labels)
    present = int(np.count_nonzero(counts))
    return (
        int(counts[counts > 0].min()) >= 2
        and held_out >= present
        and len(labels) - held_out >= present
    )


def carve_validation(rows: Rows, fraction: float, seed: int) -> tuple[Rows, Rows]:
    """Split a fold's training part into (train, val).

    With a subject on every row and at least two subjects, whole subjects go to validation: the
    first fold of a shuffled ``StratifiedGroupKFold`` with ``round(1 / fraction)`` folds (fewer
    when there are fewer subjects: at least one subject is held out). Otherwise a stratified
    ``fraction`` of the rows (plain random when a class is too small to stratify).

    Args:
        rows: The training part.
        fraction: Share held out for validation.
        seed: Seed of the shuffle.
    """
    if len(rows) < 2:
        return rows, ()
    labels = _labels(rows)
    subjects = _subjects(rows)
    if subjects is not None and len(set(subjects)) >= 2:
        splits = min(max(2, round(1 / fraction)), len(set(subjects)))
        splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            # With few subjects a class may not reach every fold; one held-out share is fine.
            warnings.filterwarnings("ignore", "The least populated class", UserWarning)
            train_idx, val_idx = next(splitter.split(np.zeros(len(rows)), labels, subjects))
        return _pick(rows, train_idx), _pick(rows, val_idx)
    held_out = max(1, math.ceil(fraction * len(rows)))
    train_idx, val_idx = train_test_split(
        np.arange(len(rows)),
        test_size=held_out,
        random_state=seed,
        stratify=labels if _can_stratify(labels, held_out) else None,
    )
    return _pick(rows, np.sort(train_idx)), _pick(rows, np.sort(val_idx))


def _test_parts(
    rows: Rows, spec: ProtocolConfig, seed: int, source: str
) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(train part, test) row indices of each fold of the protocols that pool every row."""
    labels = _labels(rows)
    index = np.zeros(len(rows))
    if spec.name == "kfold":
        splits = spec.folds or DEFAULT_FOLDS
        return StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed).split(
            index, labels
        )
    if spec.name == "loso":
        subjects = _require_subjects(rows, spec.name, source)
        if len(set(subjects)) < 2:
            raise ConfigError(f"{source}: leave-one-subject-out needs at least two subjects")
        return LeaveOneGroupOut().split(index, labels, subjects)
    # subject_kfold: whole subjects per fold; holdout: the first of 1 / test_fraction folds,
    # of whole subjects when every row has one.
    groups: np.ndarray | None
    if spec.name == "subject_kfold":
        groups, splits = _require_subjects(rows, spec.name, source), spec.folds or DEFAULT_FOLDS
    else:
        groups, splits = _subjects(rows), max(2, round(1 / spec.test_fraction))
    if groups is None:
        parts = StratifiedKFold(n_splits=splits, shuffle=True, random_state=seed).split(
            index, labels
        )
    else:
        if len(set(groups)) < splits:
            raise ConfigError(
                f"{source}: {len(set(groups))} subjects cannot fill {splits} folds; "
                "use fewer folds (protocol.folds) or the loso protocol"
            )
        splitter = StratifiedGroupKFold(n_splits=splits, shuffle=True, random_state=seed)
        parts = splitter.split(index, labels, groups)
    return iter([next(parts)]) if spec.name == "holdout" else parts


def _official(manifest: Manifest) -> tuple[Rows, Rows | None, Rows]:
    """(train, val or None to carve, test) from a manifest's split column."""
    train, val, test = (tuple(manifest.split(name)) for name in ("train", "val", "test"))
    if not manifest.has_splits() or not train or not (test or val):
        raise ConfigError(
            f"{manifest.source}: the official protocol needs a split column with train rows "
            "and test (or val) rows"
        )
    if test:
        return train, (val or None), test
    return train, None, val


def _swap(manifest: Manifest) -> list[tuple[Rows, Rows, Rows]]:
    train, val, test = (tuple(manifest.split(name)) for name in ("train", "val", "test"))
    if not manifest.has_splits() or not train or not val:
        raise ConfigError(
            f"{manifest.source}: the swap protocol needs a split column with train and val rows"
        )
    return [(train, val, test or val), (val, train, test or train)]


def _repeat_folds(
    manifests: Sequence[Manifest], spec: ProtocolConfig, seed: int
) -> list[tuple[Rows, Rows, Rows]]:
    """(train, val, test) of every fold of one repeat."""
    if spec.name == "swap":
        return _swap(manifests[0])
    folds: list[tuple[Rows, Rows, Rows]] = []
    if spec.name == "official":
        for manifest in manifests:
            train, val, test = _official(manifest)
            if val is None:
                train, val = carve_validation(train, spec.val_fraction, seed)
            folds.append((train, val, test))
        return folds
    rows = manifests[0].rows
    for part_idx, test_idx in _test_parts(rows, spec, seed, str(manifests[0].source)):
        train, val = carve_validation(_pick(rows, part_idx), spec.val_fraction, seed)
        folds.append((train, val, _pick(rows, test_idx)))
    return folds


def make_folds(manifests: Sequence[Manifest], spec: ProtocolConfig) -> list[Fold]:
    """Every fold of a protocol, over all its repeats.

    Args:
        manifests: The dataset's manifest; for ``official``, one per fold (several only there).
        spec: The protocol.

    Raises:
        ConfigError: if the manifest lacks what the protocol needs (subjects, a split column,
            enough subjects for the folds).
    """
    if not manifests:
        raise ValueError("no manifest")
    if len(manifests) > 1 and spec.name != "official":
        raise ConfigError(f"protocol {spec.name}: several manifests are for 'official' only")
    folds = []
    for repeat in range(spec.repeats):
        prefix = f"r{repeat}_" if spec.repeats > 1 else ""
        for k, (train, val, test) in enumerate(_repeat_folds(manifests, spec, spec.seed + repeat)):
            folds.append(Fold(f"{prefix}fold{k}", repeat, train, val, test))
    return folds
