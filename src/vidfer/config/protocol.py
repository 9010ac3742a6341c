"""The ``protocol`` section: how ``vidfer experiment`` splits a dataset into folds."""

from __future__ import annotations

from pathlib import Path
from typing import Literal, get_args

from pydantic import Field, ValidationError, model_validator

from vidfer.config.base import Section
from vidfer.errors import ConfigError

ProtocolName = Literal["holdout", "kfold", "subject_kfold", "loso", "official", "swap"]
PROTOCOLS: tuple[str, ...] = get_args(ProtocolName)

DEFAULT_FOLDS = 5


class ProtocolConfig(Section):
    """An evaluation protocol (:mod:`vidfer.evaluation.protocols`).

    Attributes:
        name: ``holdout`` (one stratified test share), ``kfold`` (stratified k-fold),
            ``subject_kfold`` (stratified k-fold with whole subjects per fold), ``loso``
            (leave one subject out), ``official`` (the manifest's own split column, or one fold
            per manifest of ``manifests``), ``swap`` (EmotiW-style: train on train and stop on
            val, then the other way round).
        folds: Folds of ``kfold`` and ``subject_kfold`` (default 5); not used by the others.
        repeats: Runs of the whole protocol, each with its own seed for the splits, the
            validation share and the training (Ayral: 9 repeats, mean ± standard error).
        seed: Seed of the first repeat's splits (repeat r uses ``seed + r``).
        val_fraction: Share of each fold's training part held out for validation (early
            stopping), stratified by class and subject-disjoint when subjects are known.
        test_fraction: ``holdout``'s test share.
        manifests: ``official`` only: one manifest per fold (e.g. HMDB-51's three splits),
            relative to the config file; default: the config's ``data.manifest``.
    """

    name: ProtocolName
    folds: int | None = Field(None, ge=2)
    repeats: int = Field(1, ge=1)
    seed: int = 0
    val_fraction: float = Field(0.2, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    manifests: list[Path] | None = None

    @model_validator(mode="after")
    def _options_fit_the_protocol(self) -> ProtocolConfig:
        if self.folds is not None and self.name not in ("kfold", "subject_kfold"):
            raise ValueError(f"'folds' applies to kfold and subject_kfold, not {self.name}")
        if self.manifests is not None and self.name != "official":
            raise ValueError(f"'manifests' applies to the official protocol, not {self.name}")
        if self.manifests is not None and not self.manifests:
            raise ValueError("'manifests' is empty; list one manifest per fold or leave it out")
        return self

    @property
    def fold_count(self) -> int | None:
        """Folds per repeat when fixed by the options (k-fold protocols), else None."""
        if self.name in ("kfold", "subject_kfold"):
            return self.folds or DEFAULT_FOLDS
        return None


def choose_protocol(
    section: ProtocolConfig | None,
    name: str | None = None,
    folds: int | None = None,
    repeats: int | None = None,
) -> ProtocolConfig | None:
    """The config's protocol with command-line choices applied.

    A ``name`` other than the section's starts from that protocol's defaults (the section's
    options may not fit it); ``folds`` and ``repeats`` replace the section's.

    Raises:
        ConfigError: if no protocol is named, or the options do not fit it.
    """
    keep = section is not None and name in (None, section.name)
    options = section.model_dump(exclude_unset=True) if section is not None and keep else {}
    given = {"name": name, "folds": folds, "repeats": repeats}
    options.update({key: value for key, value in given.items() if value is not None})
    if not options:
        return None
    if "name" not in options:
        raise ConfigError("no protocol to apply --folds/--repeats to; pass --protocol NAME")
    try:
        return ProtocolConfig.model_validate(options)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "protocol"
        raise ConfigError(f"protocol option {where!r}: {first['msg']}") from None
