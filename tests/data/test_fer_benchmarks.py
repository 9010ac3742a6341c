"""Adapters of today's facial-expression benchmarks (DFEW, FERV39k, MAFW, CK+, Oulu-CASIA,
RAVDESS, CREMA-D) on small trees in each dataset's exact published layout: folder and file
names, split files and label codes; real png frames and real videos where rows name them."""

from __future__ import annotations

import shutil

import pytest

from fer_trees import (
    ckplus_tree,
    cremad_tree,
    dfew_tree,
    ferv39k_tree,
    mafw_tree,
    oulu_tree,
    ravdess_tree,
    video,
    write,
)
from vidfer.cli import main
from vidfer.data.adapters import layout_rows, write_manifest
from vidfer.data.manifest import read_manifest
from vidfer.errors import ConfigError, ManifestError


def table(rows: list[dict[str, str]], *columns: str) -> list[tuple[str, ...]]:
    return [tuple(row.get(column, "") for column in columns) for row in rows]


# ----------------------------------------------------------------------------------------- DFEW


def test_dfew_folds_from_the_official_split_files(tmp_path):
    root = dfew_tree(tmp_path)
    manifest = read_manifest(write_manifest(root, "dfew", split_number=1))
    assert [(r.rel_path, r.label, r.split) for r in manifest.rows] == [
        ("Clip/clip_224x224/00001", "happy", "train"),
        ("Clip/clip_224x224/00002", "fear", "train"),
        ("Clip/clip_224x224/00003", "angry", "test"),
        ("Clip/clip_224x224/00012", "neutral", "test"),
    ]
    second = layout_rows(root, "dfew", split_number=2)
    assert table(second, "path", "split")[0] == ("Clip/clip_224x224/00003", "train")
    with pytest.raises(ConfigError, match="has splits 1, 2, 3, 4, 5"):
        layout_rows(root, "dfew", split_number=6)


def test_dfew_original_videos_variant(tmp_path):
    root = dfew_tree(tmp_path)
    for clip in (1, 2, 3, 12):
        video(root / "Clip" / "original" / f"{clip:05d}.mp4", seed=clip)
    rows = layout_rows(root, "dfew", variant="original")
    assert table(rows, "path", "label") == [
        ("Clip/original/00001.mp4", "happy"),
        ("Clip/original/00002.mp4", "fear"),
        ("Clip/original/00003.mp4", "angry"),
        ("Clip/original/00012.mp4", "neutral"),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("3,8", r"set_1.csv:3: unknown label code '8'; known: 1=happy, 2=sad"),
        ("x3,4", r"set_1.csv:3: video_name 'x3' is not a number"),
        ("4,2", r"set_1.csv:3: clip folder .*Clip/clip_224x224/00004 not found"),
    ],
)
def test_dfew_bad_split_lines_name_file_and_line(tmp_path, line, message):
    root = dfew_tree(tmp_path)
    write(
        root / "EmoLabel_DataSplit/test(single-labeled)/set_1.csv",
        f"video_name,label\n1,1\n{line}\n",
    )
    with pytest.raises(ManifestError, match=message):
        layout_rows(root, "dfew")


def test_dfew_missing_split_file_or_header(tmp_path):
    root = dfew_tree(tmp_path)
    write(root / "EmoLabel_DataSplit/train(single-labeled)/set_1.csv", "name,emotion\n1,1\n")
    with pytest.raises(ManifestError, match=r"set_1.csv:1: expected the header 'video_name,label'"):
        layout_rows(root, "dfew")
    with pytest.raises(ManifestError, match=r"set_3.csv: file not found"):
        layout_rows(root, "dfew", split_number=3)


# -------------------------------------------------------------------------------------- FERV39k


def test_ferv39k_official_lists(tmp_path):
    root = ferv39k_tree(tmp_path)
    manifest = read_manifest(write_manifest(root, "ferv39k"))
    assert [(r.rel_path, r.label, r.split) for r in manifest.rows] == [
        ("2_ClipsforFaceCrop/Action/Happy/0015", "happy", "train"),
        ("2_ClipsforFaceCrop/Argue/Angry/0001", "angry", "train"),
        ("2_ClipsforFaceCrop/Action/Sad/0009", "sad", "test"),
        ("2_ClipsforFaceCrop/Argue/Fear/0000", "fear", "test"),
    ]


def test_ferv39k_nested_archive_folders(tmp_path):
    root = ferv39k_tree(tmp_path / "unpacked")
    nested = tmp_path / "nested"
    (nested / "2_ClipsforFaceCrop").mkdir(parents=True)
    (nested / "4_setups").mkdir()
    (root / "2_ClipsforFaceCrop").rename(nested / "2_ClipsforFaceCrop" / "2_ClipsforFaceCrop")
    (root / "4_setups").rename(nested / "4_setups" / "4_setups")
    paths = [row["path"] for row in layout_rows(nested, "ferv39k")]
    assert paths[0] == "2_ClipsforFaceCrop/2_ClipsforFaceCrop/Action/Happy/0015"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("Action/Sad/0009 Sadd", r"test_All.csv:1: unknown label code 'Sadd'"),
        ("Action/Sad/0009", r"test_All.csv:1: expected '<Scene>/<Emotion>/<clip> <Emotion>'"),
        ("Action/Sad/0010 Sad", r"test_All.csv:1: clip folder .*Action/Sad/0010 not found"),
    ],
)
def test_ferv39k_bad_lines(tmp_path, line, message):
    root = ferv39k_tree(tmp_path)
    write(root / "4_setups/All_scenes/test_All.csv", line + "\n")
    with pytest.raises(ManifestError, match=message):
        layout_rows(root, "ferv39k")


def test_ferv39k_missing_lists(tmp_path):
    (tmp_path / "2_ClipsforFaceCrop").mkdir()
    with pytest.raises(ManifestError, match=r"expected FERV39k's split lists .*4_setups"):
        layout_rows(tmp_path, "ferv39k")


# ----------------------------------------------------------------------------------------- MAFW


def test_mafw_clips_and_frames(tmp_path):
    root = mafw_tree(tmp_path)
    rows = layout_rows(root, "mafw", split_number=1)
    assert table(rows, "path", "label", "split") == [
        ("data/clips/00025.mp4", "anger", "train"),
        ("data/clips/00028.mp4", "helplessness", "train"),
        ("data/clips/00108.mp4", "disappointment", "test"),
        ("data/clips/00123.mp4", "neutral", "test"),
    ]
    rows = layout_rows(root, "mafw", variant="frames")
    assert [row["path"] for row in rows] == [
        "data/frames/00025",
        "data/frames/00028",
        "data/frames/00108",
        "data/frames/00123",
    ]
    with pytest.raises(ManifestError, match=r"set_2/train.txt: file not found"):
        layout_rows(root, "mafw", split_number=2)
    (root / "data" / "clips").rename(root / "clips")  # the README's preview: clips/ at the root
    assert layout_rows(root, "mafw")[0]["path"] == "clips/00025.mp4"
    shutil.rmtree(root / "clips")
    with pytest.raises(ManifestError, match=r"expected MAFW's clips .*data/clips"):
        layout_rows(root, "mafw")


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("00108.mp4 angry", r"set_1/test.txt:2: unknown label code 'angry'; known: anger=anger"),
        ("00108.mp4", r"set_1/test.txt:2: expected '<clip>.mp4 <label>'"),
        ("00999.mp4 fear", r"set_1/test.txt:2: clip .*data/clips/00999.mp4 not found"),
    ],
)
def test_mafw_bad_lines(tmp_path, line, message):
    root = mafw_tree(tmp_path)
    write(root / "Train & Test Set/single/no_caption/set_1/test.txt", f"00123.mp4 fear\n{line}\n")
    with pytest.raises(ManifestError, match=message):
        layout_rows(root, "mafw")


# ------------------------------------------------------------------------------------------ CK+


def test_ckplus_labelled_sequences(tmp_path):
    root = ckplus_tree(tmp_path)
    manifest = read_manifest(write_manifest(root, "ckplus"))
    assert [(r.rel_path, r.label, r.subject) for r in manifest.rows] == [
        ("cohn-kanade-images/S005/001", "disgust", "S005"),
        ("cohn-kanade-images/S010/002", "surprise", "S010"),
        ("cohn-kanade-images/S011/004", "anger", "S011"),
    ]


def test_ckplus_last_frames_variant_copies_the_apex_once(tmp_path):
    root = ckplus_tree(tmp_path)
    rows = layout_rows(root, "ckplus", variant="last3")
    assert rows[0]["path"] == "vidfer/ckplus_last3/S005/001"
    apex = sorted(p.name for p in (root / rows[0]["path"]).iterdir())
    assert apex == [f"S005_001_0000000{k}.png" for k in (3, 4, 5)]
    stamp = (root / rows[0]["path"] / apex[0]).stat().st_mtime_ns
    assert layout_rows(root, "ckplus", variant="last3") == rows
    assert (root / rows[0]["path"] / apex[0]).stat().st_mtime_ns == stamp


def test_ckplus_bad_code_or_missing_sequence(tmp_path):
    root = ckplus_tree(tmp_path)
    bad = write(root / "Emotion/S005/001/S005_001_00000005_emotion.txt", "9.0000000e+00\n")
    with pytest.raises(
        ManifestError, match=r"_emotion.txt:1: unknown label code '9'; known: 0=neutral"
    ):
        layout_rows(root, "ckplus")
    bad.write_text("3.5\n")
    with pytest.raises(
        ManifestError, match=r"_emotion.txt:1: emotion code 3.5 is not a whole number"
    ):
        layout_rows(root, "ckplus")
    bad.write_text("3\n")
    write(root / "Emotion/S099/001/S099_001_00000003_emotion.txt", "1\n")
    with pytest.raises(ManifestError, match=r"S099_001_00000003_emotion.txt: its sequence folder"):
        layout_rows(root, "ckplus")
    shutil.rmtree(root / "Emotion")
    with pytest.raises(ManifestError, match=r"Emotion: folder not found"):
        layout_rows(root, "ckplus")


# ------------------------------------------------------------------------------------ Oulu-CASIA


def test_oulu_strong_visible_light_sequences(tmp_path):
    root = oulu_tree(tmp_path)
    rows = layout_rows(root, "oulu")
    assert table(rows, "path", "label", "subject") == [
        ("VL/Strong/P001/Anger", "anger", "P001"),
        ("VL/Strong/P001/Happiness", "happiness", "P001"),
        ("VL/Strong/P001/Surprise", "surprise", "P001"),
        ("VL/Strong/P002/Anger", "anger", "P002"),
        ("VL/Strong/P002/Happiness", "happiness", "P002"),
        ("VL/Strong/P002/Surprise", "surprise", "P002"),
    ]


def test_oulu_bad_folders(tmp_path):
    root = oulu_tree(tmp_path)
    (root / "VL/Strong/P002/Joy").mkdir()
    with pytest.raises(ManifestError, match=r"P002/Joy: not an Oulu-CASIA emotion"):
        layout_rows(root, "oulu")
    (root / "VL/Strong/P002/Joy").rmdir()
    (root / "VL/Strong/P002/Fear").mkdir()
    with pytest.raises(ManifestError, match=r"P002/Fear: no frame images"):
        layout_rows(root, "oulu")
    with pytest.raises(ManifestError, match=r"Strong: folder not found"):
        layout_rows(root / "VL", "oulu")


# -------------------------------------------------------------------------------------- RAVDESS


def test_ravdess_takes_paired_and_actors(tmp_path):
    root = ravdess_tree(tmp_path)
    rows = layout_rows(root, "ravdess")
    assert len(rows) == 8  # 2 actors x 2 emotions x 2 statements, one row per take
    assert rows[0] == {
        "path": "Actor_01/01-01-03-01-01-01-01.mp4",
        "label": "happy",
        "subject": "01",
        "video_id": "01-03-01-01-01-01",
    }
    assert {row["label"] for row in rows} == {"happy", "sad"}
    assert all(row["path"].split("/")[1].startswith("01-") for row in rows)  # full-AV files
    (root / "Actor_02/01-01-04-01-02-01-02.mp4").unlink()  # only the video-only file is left
    paired = {row["video_id"]: row["path"] for row in layout_rows(root, "ravdess")}
    assert paired["01-04-01-02-01-02"] == "Actor_02/02-01-04-01-02-01-02.mp4"
    song = layout_rows(root, "ravdess", variant="song")
    assert table(song, "path", "label") == [
        ("Actor_01/01-02-05-02-01-02-01.mp4", "angry"),
        ("Actor_02/01-02-05-02-01-02-02.mp4", "angry"),
    ]
    assert len(layout_rows(root, "ravdess", variant="speech_song")) == 10


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("01-01-09-01-01-01-01.mp4", r"unknown emotion code '09'; known: 01, 02"),
        ("01-01-03-01-01-01-25.mp4", r"unknown actor code '25'"),
        ("04-01-03-01-01-01-01.mp4", r"unknown modality code '04'"),
        ("01-01-03-01-01-01.mp4", r"not a RAVDESS name; expected seven two-digit codes"),
    ],
)
def test_ravdess_bad_names(tmp_path, name, message):
    root = ravdess_tree(tmp_path)
    write(root / "Actor_01" / name, "")
    with pytest.raises(ManifestError, match=f"{name}: " + message):
        layout_rows(root, "ravdess")


# -------------------------------------------------------------------------------------- CREMA-D


def test_cremad_names_give_labels_and_actors(tmp_path):
    root = cremad_tree(tmp_path)
    manifest = read_manifest(write_manifest(root, "cremad"))
    assert [(r.rel_path, r.label, r.subject) for r in manifest.rows][:3] == [
        ("VideoFlash/1001_DFA_HAP_XX.flv", "happy", "1001"),
        ("VideoFlash/1001_DFA_SAD_XX.flv", "sad", "1001"),
        ("VideoFlash/1001_IEO_HAP_HI.flv", "happy", "1001"),
    ]
    assert len(manifest.rows) == 8 and manifest.classes == ("happy", "sad")


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("1001_DFA_JOY_XX.flv", r"unknown emotion code 'JOY'; known: ANG, DIS, FEA, HAP, NEU, SAD"),
        ("1001_ABC_HAP_XX.flv", r"unknown sentence code 'ABC'"),
        ("1001_DFA_HAP_ZZ.flv", r"unknown level code 'ZZ'"),
        ("0999_DFA_HAP_XX.flv", r"actor 0999 is not one of 1001-1091"),
        ("1001-DFA-HAP-XX.flv", r"not a CREMA-D name"),
    ],
)
def test_cremad_bad_names(tmp_path, name, message):
    root = cremad_tree(tmp_path)
    write(root / "VideoFlash" / name, "")
    with pytest.raises(ManifestError, match=f"{name}: " + message):
        layout_rows(root, "cremad")


def test_cremad_without_videoflash_is_one_line_error(tmp_path, capsys):
    assert main(["manifest", str(tmp_path), "--layout", "cremad"]) == 2
    err = capsys.readouterr().err.strip()
    assert "VideoFlash: folder not found; expected CREMA-D's VideoFlash/*.flv" in err
    assert len(err.splitlines()) == 1
