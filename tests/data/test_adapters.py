"""Dataset adapters on tiny trees in each dataset's real layout (empty files where nothing is
decoded; real images and videos where the adapter or the test reads them)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from vidfer.cli import main
from vidfer.config import DataConfig
from vidfer.data.adapters import layout_rows, write_manifest
from vidfer.data.manifest import read_frame_labels, read_manifest
from vidfer.data.prepared import load_dataset
from vidfer.errors import ConfigError, ManifestError
from vidfer.io.video import decode
from vidfer.io.writer import write_video


def touch(root, *paths):
    for rel in paths:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


def by_path(rows):
    return {row["path"]: row for row in rows}


def test_afew_partitions_and_emotions(tmp_path):
    touch(
        tmp_path,
        "Train_AFEW/Angry/000046280.avi",
        "Train_AFEW/Happy/000150160.avi",
        "Val_AFEW/Angry/000201280.avi",
        "Val_AFEW/Surprise/000300000.avi",
        "Train_AFEW/AlignedFaces_LBPTOP_Points/readme.txt",  # no video: not a class, skipped
    )
    manifest = write_manifest(tmp_path, "afew")
    rows = read_manifest(manifest).rows
    assert [(r.rel_path, r.label, r.split) for r in rows] == [
        ("Train_AFEW/Angry/000046280.avi", "angry", "train"),
        ("Train_AFEW/Happy/000150160.avi", "happy", "train"),
        ("Val_AFEW/Angry/000201280.avi", "angry", "val"),
        ("Val_AFEW/Surprise/000300000.avi", "surprise", "val"),
    ]

    touch(tmp_path, "Train_AFEW/Angryy/x.avi")
    with pytest.raises(ManifestError, match=r"Angryy: not a AFEW emotion"):
        layout_rows(tmp_path, "afew")
    with pytest.raises(ManifestError, match="no training partition folder"):
        layout_rows(tmp_path / "Val_AFEW", "afew")


def test_gemep_actors_become_subjects(tmp_path):
    touch(tmp_path, "train/anger/a1.avi", "train/joy/a2.avi", "test/relief/b1.avi")
    assert "subject" not in layout_rows(tmp_path, "gemep")[0]
    (tmp_path / "actors.csv").write_text("video,actor\na1.avi,3\na2.avi,3\nb1.avi,7\n")
    rows = by_path(layout_rows(tmp_path, "gemep"))
    assert rows["test/relief/b1.avi"] == {
        "path": "test/relief/b1.avi",
        "label": "relief",
        "split": "test",
        "subject": "7",
    }
    (tmp_path / "actors.csv").write_text("video,actor\na1.avi,3\nb1.avi,7\n")
    with pytest.raises(ManifestError, match=r"actors.csv: no actor for video 'train/joy/a2.avi'"):
        layout_rows(tmp_path, "gemep")


def test_hmdb51_official_split_files(tmp_path):
    touch(
        tmp_path,
        "hmdb51/brush_hair/v1.avi",
        "hmdb51/brush_hair/v2.avi",
        "hmdb51/brush_hair/v3.avi",
        "hmdb51/cartwheel/w1.avi",
        "hmdb51/cartwheel/w2.avi",
    )
    splits = tmp_path / "testTrainMulti_7030_splits"
    splits.mkdir()
    (splits / "brush_hair_test_split1.txt").write_text("v1.avi 1 \nv2.avi 2 \nv3.avi 0 \n")
    (splits / "cartwheel_test_split1.txt").write_text("w1.avi 2 \nw2.avi 1 \n")
    (splits / "brush_hair_test_split2.txt").write_text("v1.avi 2 \nv2.avi 0 \nv3.avi 1 \n")
    (splits / "cartwheel_test_split2.txt").write_text("w1.avi 1 \nw2.avi 2 \n")
    rows = layout_rows(tmp_path, "hmdb51")
    assert sorted((r["path"], r["label"], r["split"]) for r in rows) == [
        ("hmdb51/brush_hair/v1.avi", "brush_hair", "train"),
        ("hmdb51/brush_hair/v2.avi", "brush_hair", "test"),
        ("hmdb51/cartwheel/w1.avi", "cartwheel", "test"),
        ("hmdb51/cartwheel/w2.avi", "cartwheel", "train"),
    ]
    second = by_path(layout_rows(tmp_path, "hmdb51", split_number=2))
    assert "hmdb51/brush_hair/v2.avi" not in second  # 0: not used in split 2
    assert second["hmdb51/brush_hair/v3.avi"]["split"] == "train"

    with pytest.raises(ConfigError, match="layout 'hmdb51' has splits 1, 2, 3"):
        layout_rows(tmp_path, "hmdb51", split_number=4)
    with pytest.raises(ConfigError, match="layout 'afew' has splits none"):
        layout_rows(tmp_path, "afew", split_number=1)
    (splits / "cartwheel_test_split1.txt").write_text("w1.avi 2\nw9.avi 1\n")
    with pytest.raises(ManifestError, match=r"cartwheel_test_split1.txt:2: video cartwheel/w9.avi"):
        layout_rows(tmp_path, "hmdb51")
    (splits / "cartwheel_test_split1.txt").write_text("w1.avi train\n")
    with pytest.raises(ManifestError, match=r"cartwheel_test_split1.txt:1: expected"):
        layout_rows(tmp_path, "hmdb51")
    with pytest.raises(ManifestError, match=r"no HMDB-51 split file '<class>_test_split3.txt'"):
        layout_rows(tmp_path, "hmdb51", split_number=3)


def test_ucf101_lists_and_groups(tmp_path):
    touch(
        tmp_path,
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi",
        "UCF-101/ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi",
        "UCF-101/HandstandPushups/v_HandStandPushups_g09_c01.avi",
        "UCF-101/HandstandPushups/v_HandStandPushups_g02_c03.avi",
    )
    lists = tmp_path / "ucfTrainTestlist"
    lists.mkdir()
    (lists / "classInd.txt").write_text("1 ApplyEyeMakeup\n2 HandstandPushups\n")
    (lists / "trainlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\n"
        "HandstandPushups/v_HandStandPushups_g09_c01.avi 2\n"
    )
    (lists / "testlist01.txt").write_text(
        "ApplyEyeMakeup/v_ApplyEyeMakeup_g01_c02.avi\n"
        "HandstandPushups/v_HandStandPushups_g02_c03.avi\n"
    )
    rows = by_path(layout_rows(tmp_path, "ucf101"))
    assert rows["UCF-101/HandstandPushups/v_HandStandPushups_g02_c03.avi"] == {
        "path": "UCF-101/HandstandPushups/v_HandStandPushups_g02_c03.avi",
        "label": "HandstandPushups",
        "split": "test",
        "subject": "g02",
    }
    assert sorted(r["split"] for r in rows.values()) == ["test", "test", "train", "train"]
    with pytest.raises(ManifestError, match=r"trainlist02.txt: file not found"):
        layout_rows(tmp_path, "ucf101", split_number=2)
    (lists / "testlist01.txt").write_text("Unknown/v_Unknown_g01_c01.avi\n")
    with pytest.raises(ManifestError, match=r"testlist01.txt:1: expected '<class>/<video>'"):
        layout_rows(tmp_path, "ucf101")


# The distribution's format: a prose header with the persons of each split, then one line per
# recording (name, tabs, sometimes spaces before them, "frames", a tab, the ranges); the one
# recording absent from the distribution has "*missing*" in place of its ranges.
KTH_SEQUENCES = """\

Sequences of six actions by 25 persons (frame ranges, 1-based).

Training:   person11, 12, 13, 14, 15, 16, 17, 18
Validation: person19, 20, 21, 23, 24, 25, 01, 04
Test:       person22, 02, 03, 05, 06, 07, 08, 09, 10


person01_boxing_d1\t\tframes\t1-10, 11-20
person02_walking_d3    \t\tframes\t5-12

person13_handclapping_d2\tframes\t1-30, 31-60
person13_handclapping_d3\t*missing*
"""


def test_kth1_and_kth2(tmp_path):
    touch(tmp_path, "walking/person02_walking_d3_uncomp.avi", "boxing/00sequences.txt")
    # One real recording: 20 frames at 25 fps, frame i shows the value 10 * i.
    frames = np.repeat(np.arange(20, dtype=np.uint8)[:, None, None, None] * 10, 16, axis=1)
    write_video(
        tmp_path / "boxing/person01_boxing_d1_uncomp.avi",
        np.repeat(np.repeat(frames, 16, axis=2), 3, axis=3),
        25.0,
        crf=0,
    )
    kth1 = by_path(layout_rows(tmp_path, "kth"))
    assert kth1["boxing/person01_boxing_d1_uncomp.avi"] == {
        "path": "boxing/person01_boxing_d1_uncomp.avi",
        "label": "boxing",
        "split": "val",  # Schuldt et al.'s validation persons include person 1
        "subject": "person01",
        "video_id": "person01_boxing_d1",
    }
    assert kth1["walking/person02_walking_d3_uncomp.avi"]["split"] == "test"

    (tmp_path / "boxing/00sequences.txt").write_text(KTH_SEQUENCES)
    manifest = write_manifest(tmp_path, "kth", variant="kth2")
    rows = read_manifest(manifest).rows
    assert [(r.video_id, r.start, r.end) for r in rows] == [
        ("person01_boxing_d1_seq1", 0.0, 0.4),
        ("person01_boxing_d1_seq2", 0.4, 0.8),
        ("person02_walking_d3_seq1", 0.16, 0.48),
    ]
    # The two sub-sequences of one file are distinct store entries holding their own frames.
    lines = manifest.read_text().splitlines()
    manifest.write_text("\n".join(lines[:3]) + "\n")
    data = load_dataset(
        DataConfig.model_validate({"manifest": manifest, "prepare": {"size": 16}, "workers": 1})
    )
    first, second = data.items
    assert first.key != second.key
    assert data.store.load_record(first.key).frame_indices == list(range(10))
    assert data.store.load_record(second.key).frame_indices == list(range(10, 20))

    # A video present although the list marks it *missing* has no ranges: skipped.
    (tmp_path / "boxing/00sequences.txt").write_text(
        KTH_SEQUENCES.replace("person13_handclapping_d3", "person02_walking_d3").replace(
            "person02_walking_d3    \t\tframes\t5-12\n", ""
        )
    )
    kth2 = layout_rows(tmp_path, "kth", variant="kth2")
    assert [row["video_id"] for row in kth2] == [
        "person01_boxing_d1_seq1",
        "person01_boxing_d1_seq2",
    ]

    (tmp_path / "boxing/00sequences.txt").write_text("person01_boxing_d1 frames 1-10\n")
    with pytest.raises(ManifestError, match="no entry for the recording person02_walking_d3"):
        layout_rows(tmp_path, "kth", variant="kth2")
    (tmp_path / "boxing/00sequences.txt").write_text("person01_boxing_d1 frames 10-1\n")
    with pytest.raises(ManifestError, match=r"00sequences.txt:1: expected"):
        layout_rows(tmp_path, "kth", variant="kth2")
    with pytest.raises(ConfigError, match="has variants kth1, kth2"):
        layout_rows(tmp_path, "kth", variant="kth3")


def write_unbc_sequence(root, subject, sequence, opr, pspi, nested=False):
    """One sequence in UNBC-McMaster's layout (``nested``: each archive's folder inside a
    folder of the same name, e.g. ``Images/Images/``)."""
    images_dir, sequence_dir, frame_dir = (
        (f"{name}/{name}" if nested else name)
        for name in ("Images", "Sequence_Labels", "Frame_Labels")
    )
    ratings = root / sequence_dir / "OPR" / subject
    ratings.mkdir(parents=True, exist_ok=True)
    (ratings / f"{sequence}.txt").write_text(f"   {opr:.7e}\n")
    for other in ("AFF", "SEN", "VAS"):  # the other sequence ratings, not read
        (root / sequence_dir / other / subject).mkdir(parents=True, exist_ok=True)
        (root / sequence_dir / other / subject / f"{sequence}.txt").write_text("   5.0000000e+00\n")
    images = root / images_dir / subject / sequence
    labels = root / frame_dir / "PSPI" / subject / sequence
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for i, value in enumerate(pspi, start=1):
        image = np.full((24, 32, 3), 40 * i, dtype=np.uint8)
        cv2.imwrite(str(images / f"{sequence}{i:03d}.png"), image)
        (labels / f"{sequence}{i:03d}_facs.txt").write_text(f"   {value:.7e}\n")


def test_unbc_opr_labels_and_pspi_frame_labels(tmp_path):
    write_unbc_sequence(tmp_path, "042-ll042", "ll042t1aaaff", 0, [0, 0, 0])
    write_unbc_sequence(tmp_path, "042-ll042", "ll042t2aaaff", 4, [0, 3, 7, 2])
    write_unbc_sequence(tmp_path, "064-ak064", "ak064t1aaaff", 2, [1, 1])  # OPR 1-2: left out
    manifest = write_manifest(tmp_path, "unbc")
    rows = read_manifest(manifest).rows
    assert [(r.video_id, r.label, r.subject) for r in rows] == [
        ("ll042t1aaaff", "no_pain", "042-ll042"),
        ("ll042t2aaaff", "pain", "042-ll042"),
    ]
    pain = rows[1]
    assert pain.rel_path == "Images/042-ll042/ll042t2aaaff"  # the frame folder, not re-encoded
    assert read_frame_labels(pain, manifest).tolist() == [0, 3, 7, 2]
    video = decode(pain.path)
    assert video.frames.shape == (4, 24, 32, 3) and video.fps == 25.0
    assert video.frames[:, 0, 0, 0].tolist() == [40, 80, 120, 160]  # the images, exactly
    assert not (tmp_path / "vidfer" / "videos").exists()
    pspi = tmp_path / "vidfer/pspi/042-ll042/ll042t2aaaff.txt"
    stamp = pspi.stat().st_mtime_ns
    write_manifest(tmp_path, "unbc")
    assert pspi.stat().st_mtime_ns == stamp  # gathered once

    (tmp_path / "vidfer").rename(tmp_path / "old")
    (tmp_path / "Frame_Labels/PSPI/042-ll042/ll042t2aaaff/ll042t2aaaff003_facs.txt").unlink()
    with pytest.raises(ManifestError, match=r"ll042t2aaaff003_facs.txt: file not found"):
        layout_rows(tmp_path, "unbc")
    with pytest.raises(ManifestError, match=r"Sequence_Labels/OPR: folder not found"):
        layout_rows(tmp_path / "Images", "unbc")


def test_unbc_archives_unpacked_into_folders_of_their_own_name(tmp_path):
    write_unbc_sequence(tmp_path, "042-ll042", "ll042t1aaaff", 3, [0, 2], nested=True)
    rows = layout_rows(tmp_path, "unbc")
    assert [(r["video_id"], r["label"], r["subject"]) for r in rows] == [
        ("ll042t1aaaff", "pain", "042-ll042")
    ]


def test_biovid_variants(tmp_path):
    names = []
    for subject in ("071309_w_21", "081014_m_23"):
        for level in ("BL1", "PA1", "PA2", "PA3", "PA4"):
            names.append(f"video/{subject}/{subject}-{level}-001.mp4")
    touch(tmp_path, *names)
    pa4 = layout_rows(tmp_path, "biovid")
    assert sorted((r["subject"], r["label"]) for r in pa4) == [
        ("071309_w_21", "no_pain"),
        ("071309_w_21", "pain"),
        ("081014_m_23", "no_pain"),
        ("081014_m_23", "pain"),
    ]
    assert all("-PA4-" in r["path"] for r in pa4 if r["label"] == "pain")
    pa34 = layout_rows(tmp_path, "biovid", variant="bl1_pa34")
    assert sum(r["label"] == "pain" for r in pa34) == 4
    with pytest.raises(ManifestError, match="no video found"):
        layout_rows(tmp_path / "video" / "071309_w_21" / "none", "biovid")


def test_biovid_partA_as_unpacked(tmp_path):
    # PartA/starting_point/samples.csv (tab-separated, not read) beside the videos, which some
    # copies hold one folder deeper (PartA/video/video/<subject>/).
    touch(
        tmp_path,
        "video/video/071309_w_21/071309_w_21-BL1-081.mp4",
        "video/video/071309_w_21/071309_w_21-PA4-062.mp4",
        "video/video/071309_w_21/071309_w_21-PA2-035.mp4",
    )
    (tmp_path / "starting_point").mkdir()
    (tmp_path / "starting_point/samples.csv").write_text(
        "subject_id\tsubject_name\tclass_id\tclass_name\tsample_id\tsample_name\n"
    )
    rows = layout_rows(tmp_path, "biovid")
    assert sorted((r["path"], r["label"], r["subject"]) for r in rows) == [
        ("video/video/071309_w_21/071309_w_21-BL1-081.mp4", "no_pain", "071309_w_21"),
        ("video/video/071309_w_21/071309_w_21-PA4-062.mp4", "pain", "071309_w_21"),
    ]


def test_manifest_command(tmp_path, capsys):
    touch(tmp_path, "Train/Fear/a.avi", "Val/Sad/b.avi")
    assert main(["manifest", str(tmp_path), "--layout", "afew"]) == 0
    assert read_manifest(tmp_path / "manifest.csv").classes == ("fear", "sad")
    assert main(["manifest", str(tmp_path), "--layout", "afews"]) == 2
    assert "unknown layout 'afews'; known: folder, afew" in capsys.readouterr().err
    assert main(["manifest", str(tmp_path / "missing"), "--layout", "hmdb51"]) == 2
    assert "no HMDB-51 split file" in capsys.readouterr().err
