"""Dataset-layout adapters: turn a dataset's own folder of videos into a manifest.

One module per dataset family reads the real on-disk layout (nothing is decoded):

========  ===========================================  ======================================
layout    dataset                                      options
========  ===========================================  ======================================
folder    ``ROOT/[<split>/]<label>/<video>``           -
afew      AFEW: Train/Val partitions of emotion folders -
gemep     GEMEP-FERA: train/test emotion folders       own ``actors.csv`` (not shipped)
hmdb51    HMDB-51 + official split files               ``split_number`` 1-3
ucf101    UCF-101 + ucfTrainTestlist                   ``split_number`` 1-3
kth       KTH file names (person, action, scenario)    ``variant`` kth1 | kth2
unbc      UNBC-McMaster: OPR 0 vs >= 3, PSPI per frame -
biovid    BioVid Part A                                ``variant`` bl1_pa4 | bl1_pa34
dfew      DFEW: clip frame folders + 5 fold split files ``split_number`` 1-5, ``variant``
ferv39k   FERV39k: train_All/test_All over clip folders -
mafw      MAFW: clips + 5 fold split files (11 classes) ``split_number`` 1-5, ``variant``
ckplus    CK+: labelled cohn-kanade-images sequences   ``variant`` sequence | last3
oulu      Oulu-CASIA: VL/Strong/<person>/<Emotion>     -
ravdess   RAVDESS: seven-field file names, takes paired ``variant`` speech | song | speech_song
cremad    CREMA-D: VideoFlash/<actor>_<sent>_<emo>_<lvl> -
========  ===========================================  ======================================

docs/datasets.md gives each layout's protocol, label order and the sources it was checked
against.

FER2013 is a CSV of still images, not videos: :func:`vidfer.data.images.fer2013_images` reads it
directly (``vidfer train-frames fer2013.csv``), no manifest needed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from vidfer.data.adapters import ckplus, cremad, dfew, ferv39k, mafw, oulu, ravdess
from vidfer.data.adapters.action_splits import SPLIT_NUMBERS, hmdb51_rows, ucf101_rows
from vidfer.data.adapters.common import Options, Row
from vidfer.data.adapters.emotions import afew_rows, gemep_rows
from vidfer.data.adapters.folder import folder_manifest_rows, folder_rows, write_folder_manifest
from vidfer.data.adapters.kth import VARIANTS as KTH_VARIANTS
from vidfer.data.adapters.kth import kth_rows
from vidfer.data.adapters.pain import BIOVID_VARIANTS, biovid_rows, unbc_rows
from vidfer.data.manifest import manifest_csv
from vidfer.errors import ConfigError
from vidfer.io.atomic import atomic_write_text

__all__ = [
    "LAYOUTS",
    "Layout",
    "folder_manifest_rows",
    "layout_rows",
    "write_folder_manifest",
    "write_manifest",
]


@dataclass(frozen=True)
class Layout:
    """A dataset layout the ``vidfer manifest`` command knows.

    Attributes:
        name: The ``--layout`` name.
        rows: Reads the tree under a root into manifest rows.
        description: One line for ``--help``.
        split_numbers: The official splits it can select (empty: none).
        variants: Its variants, the default first (empty: none).
    """

    name: str
    rows: Callable[[Path, Options], list[Row]]
    description: str
    split_numbers: tuple[int, ...] = ()
    variants: tuple[str, ...] = ()


LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout("folder", folder_rows, "ROOT/[<split>/]<label>/<video>"),
        Layout("afew", afew_rows, "AFEW: ROOT/Train|Val/<Emotion>/*.avi"),
        Layout("gemep", gemep_rows, "GEMEP-FERA: ROOT/train|test/<emotion>/*, own actors.csv"),
        Layout("hmdb51", hmdb51_rows, "HMDB-51 + <class>_test_split<k>.txt", SPLIT_NUMBERS),
        Layout("ucf101", ucf101_rows, "UCF-101 + ucfTrainTestlist", SPLIT_NUMBERS),
        Layout("kth", kth_rows, "KTH person<NN>_<action>_d<K>_uncomp.avi", (), KTH_VARIANTS),
        Layout("unbc", unbc_rows, "UNBC-McMaster Images + OPR/PSPI labels"),
        Layout("biovid", biovid_rows, "BioVid Part A video/<subject>/*", (), BIOVID_VARIANTS),
        Layout(
            "dfew",
            dfew.dfew_rows,
            "DFEW Clip/ + EmoLabel_DataSplit set_<k>",
            dfew.FOLDS,
            dfew.VARIANTS,
        ),
        Layout("ferv39k", ferv39k.ferv39k_rows, "FERV39k 2_ClipsforFaceCrop + 4_setups"),
        Layout(
            "mafw",
            mafw.mafw_rows,
            "MAFW data/ + Train & Test Set set_<k>",
            mafw.FOLDS,
            mafw.VARIANTS,
        ),
        Layout(
            "ckplus", ckplus.ckplus_rows, "CK+ cohn-kanade-images + Emotion", (), ckplus.VARIANTS
        ),
        Layout("oulu", oulu.oulu_rows, "Oulu-CASIA <image set>/VL/Strong/<P>/<Emotion>"),
        Layout(
            "ravdess", ravdess.ravdess_rows, "RAVDESS Actor_NN/<7 codes>.mp4", (), ravdess.VARIANTS
        ),
        Layout("cremad", cremad.cremad_rows, "CREMA-D VideoFlash/<actor>_<s>_<emo>_<lvl>.flv"),
    )
}


def _options(layout: Layout, split_number: int | None, variant: str | None) -> Options:
    if split_number is not None and split_number not in layout.split_numbers:
        allowed = ", ".join(map(str, layout.split_numbers)) or "none"
        raise ConfigError(
            f"--split-number {split_number}: layout {layout.name!r} has splits {allowed}"
        )
    if variant is not None and variant not in layout.variants:
        allowed = ", ".join(layout.variants) or "none"
        raise ConfigError(f"--variant {variant!r}: layout {layout.name!r} has variants {allowed}")
    return Options(
        split_number=split_number or (layout.split_numbers[0] if layout.split_numbers else 1),
        variant=variant or (layout.variants[0] if layout.variants else ""),
    )


def layout_rows(
    root: str | Path,
    layout: str = "folder",
    *,
    split_number: int | None = None,
    variant: str | None = None,
) -> list[Row]:
    """Manifest rows of the dataset at ``root`` in a known layout.

    Args:
        root: The dataset root (manifest paths are relative to it).
        layout: A name of :data:`LAYOUTS`.
        split_number: The official split or fold (HMDB-51, UCF-101: 1-3; DFEW, MAFW: 1-5;
            default 1).
        variant: The layout's variant (default its first).

    Raises:
        ConfigError: on an unknown layout, split number or variant.
        ManifestError: naming the missing folder or file, or the line that does not parse.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"unknown layout {layout!r}; known: {', '.join(LAYOUTS)}")
    chosen = LAYOUTS[layout]
    return chosen.rows(Path(root), _options(chosen, split_number, variant))


def write_manifest(
    root: str | Path,
    layout: str = "folder",
    *,
    out: str | Path | None = None,
    split_number: int | None = None,
    variant: str | None = None,
) -> Path:
    """Write the manifest of the dataset at ``root`` and return its path.

    Args:
        root: The dataset root.
        layout: A name of :data:`LAYOUTS`.
        out: Destination CSV (default ``root/manifest.csv``); its paths stay relative to
            ``root``, so keep it in ``root`` or give ``data.root`` when reading it elsewhere.
        split_number: The official split (HMDB-51, UCF-101).
        variant: The layout's variant.
    """
    rows = layout_rows(root, layout, split_number=split_number, variant=variant)
    destination = Path(out) if out is not None else Path(root) / "manifest.csv"
    atomic_write_text(destination, manifest_csv(rows))
    return destination
