"""Manifest validation: the whole file is checked before any work, errors name the line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vidfer.data.adapters import folder_manifest_rows, write_folder_manifest
from vidfer.data.manifest import parse_manifest, read_manifest
from vidfer.errors import ManifestError


def parse(text: str, root: Path, classes=None):
    return parse_manifest(text, source=root / "m.csv", root=root, classes=classes)


def test_valid_manifest_with_every_column(tmp_path):
    text = (
        "path,label,split,subject,video_id,start,end\n"
        "a/x.mp4,happy,train,s1,vx,0.5,2\n"
        "b/y.mp4,sad,test,s2,,,\n"
    )
    manifest = parse(text, tmp_path)
    assert manifest.classes == ("happy", "sad")
    first, second = manifest.rows
    assert first.path == (tmp_path / "a/x.mp4").resolve()
    assert (first.line, first.label_index, first.split, first.subject) == (2, 0, "train", "s1")
    assert (first.video_id, first.start, first.end) == ("vx", 0.5, 2.0)
    assert second.video_id == "b/y" and second.start is None
    assert [row.rel_path for row in manifest.split("test")] == ["b/y.mp4"]


def test_bom_crlf_and_blank_lines_are_accepted(tmp_path):
    manifest = parse("\ufeffpath,label\r\nx.mp4,a\r\n\r\ny.mp4,b\r\n", tmp_path)
    assert [row.line for row in manifest.rows] == [2, 4]
    assert not manifest.has_splits() and len(manifest.split("train")) == 2


def test_explicit_class_list_orders_indices(tmp_path):
    manifest = parse("path,label\nx.mp4,b\n", tmp_path, classes=["b", "a"])
    assert manifest.rows[0].label_index == 0 and manifest.classes == ("b", "a")


@pytest.mark.parametrize(
    ("text", "classes", "pattern"),
    [
        ("", None, r"m\.csv:1: empty manifest"),
        ("file,label\nx.mp4,a\n", None, r"m\.csv:1: missing column\(s\) path"),
        ("path,label,colour\nx.mp4,a,red\n", None, r"m\.csv:1: unknown column\(s\) colour"),
        ("path,label\n", None, r"m\.csv:2: the manifest lists no video"),
        ("path,label\nx.mp4,a\ny.mp4,zzz\n", ["a"], r"m\.csv:3: unknown label 'zzz'"),
        ("path,label\nx.mp4,a\nx.mp4,a\n", None, r"m\.csv:3: duplicate path 'x\.mp4' \(line 2\)"),
        ("path,label\n../x.mp4,a\n", None, r"m\.csv:2: path '\.\./x\.mp4' escapes"),
        ("path,label\nsub/../../x.mp4,a\n", None, r"m\.csv:2: .* escapes"),
        ("path,label\n/etc/passwd,a\n", None, r"m\.csv:2: absolute path"),
        ("path,label\nx.mp4,a,extra\n", None, r"m\.csv:2: expected 2 fields, got 3"),
        ("path,label\nx.mp4,\n", None, r"m\.csv:2: empty label"),
        ("path,label,split\nx.mp4,a,training\n", None, r"m\.csv:2: split 'training'"),
        ("path,label,start\nx.mp4,a,soon\n", None, r"m\.csv:2: column 'start' must be seconds"),
        ("path,label,start,end\nx.mp4,a,3,1\n", None, r"m\.csv:2: end \(1\.0\) must be after"),
        ("path,label,video_id\nx.mp4,a,v\ny.mp4,a,v\n", None, r"m\.csv:3: duplicate video_id"),
    ],
)
def test_invalid_manifests_name_the_line(tmp_path, text, classes, pattern):
    with pytest.raises(ManifestError, match=pattern):
        parse(text, tmp_path, classes)


def test_symlink_escaping_the_root_is_refused_without_opening(tmp_path):
    root = tmp_path / "root"
    root.mkdir()
    outside = tmp_path / "secret.mp4"
    outside.write_bytes(b"")
    os.symlink(outside, root / "link.mp4")
    with pytest.raises(ManifestError, match=r"link\.mp4' escapes"):
        parse("path,label\nlink.mp4,a\n", root)


def test_read_manifest_errors(tmp_path):
    with pytest.raises(ManifestError, match="manifest not found"):
        read_manifest(tmp_path / "nope.csv")
    bad = tmp_path / "latin.csv"
    bad.write_bytes("path,label\nv.mp4,caf\xe9\n".encode("latin-1"))
    with pytest.raises(ManifestError, match=r"latin\.csv:2: column 'label' is not UTF-8"):
        read_manifest(bad)


def test_folder_per_class_adapter(tmp_path):
    for label in ("jump", "walk"):
        (tmp_path / label).mkdir()
        (tmp_path / label / "v1.mp4").write_bytes(b"x")
        (tmp_path / label / "notes.txt").write_text("not a video")
    path = write_folder_manifest(tmp_path)
    manifest = read_manifest(path)
    assert [(row.rel_path, row.label) for row in manifest.rows] == [
        ("jump/v1.mp4", "jump"),
        ("walk/v1.mp4", "walk"),
    ]


def test_folder_adapter_with_split_folders(tmp_path):
    for split in ("Train", "Val"):
        (tmp_path / split / "Happy").mkdir(parents=True)
        (tmp_path / split / "Happy" / "c.avi").write_bytes(b"x")
    rows = folder_manifest_rows(tmp_path)
    assert [row["split"] for row in rows] == ["train", "val"]
    with pytest.raises(ManifestError, match="no video found"):
        folder_manifest_rows(tmp_path / "Train" / "Happy")


@settings(max_examples=150, deadline=None)
@given(st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=300))
def test_random_text_is_accepted_or_refused_with_a_manifest_error(text):
    root = Path("/tmp/vidfer-hypothesis-root")
    try:
        manifest = parse(text, root)
    except ManifestError as error:
        assert str(error).startswith(str(root / "m.csv"))
    else:
        assert all(row.path.is_relative_to(root) for row in manifest.rows)
        assert all(row.label in manifest.classes for row in manifest.rows)
