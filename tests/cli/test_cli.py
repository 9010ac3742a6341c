"""The smaller CLI commands, each run in a process of its own (a fork of the test's)."""

from __future__ import annotations

import csv

from helpers import vidfer_forked as vidfer


def test_synth_then_manifest_then_prepare(tmp_path):
    out = tmp_path / "actions"
    result = vidfer("synth", "actions", str(out), "--videos-per-class", "3", "--seed", "4")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((out / "manifest.csv").open()))
    assert len(rows) == 12 and {row["split"] for row in rows} == {"train", "val", "test"}

    folder_manifest = tmp_path / "folder.csv"
    result = vidfer("manifest", str(out / "videos"), "--out", str(folder_manifest))
    assert result.returncode == 0, result.stderr
    assert len(list(csv.DictReader(folder_manifest.open()))) == 12

    result = vidfer("prepare", str(out / "manifest.csv"), "--size", "32", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert "12 video(s) ready" in result.stdout and "12 decoded now" in result.stdout
    again = vidfer("prepare", str(out / "manifest.csv"), "--size", "32")
    assert "0 decoded now" in again.stdout


def test_models_and_assets_listings():
    models = vidfer("models")
    assert models.returncode == 0, models.stderr
    assert "resnet3d_18  33.17M parameters (7 classes)" in models.stdout
    block = models.stdout.split("resnet3d_18")[1].split("resnext3d_101")[0]
    assert "GFLOPs per clip of 3x16x112x112" in block
    assert "weights KINETICS400_V1: mean [0.4322" in block  # names model.weights takes, input
    assert "mvit_v2_s" in models.stdout and "224 px only, 16 frames only" in models.stdout
    assets = vidfer("assets", "list")
    assert assets.returncode == 0, assets.stderr
    for name in ("mtcnn_onet", "fer_mini_xception", "carphone"):
        assert name in assets.stdout


def test_bad_arguments_fail_clearly(tmp_path):
    result = vidfer("synth", "actions", str(tmp_path / "x"), "--videos-per-class", "1")
    assert result.returncode == 2 and "videos_per_class" in result.stderr
    assert "Traceback" not in result.stderr
    result = vidfer("synth", "expressions", str(tmp_path / "e"), "--scenes")
    assert result.returncode == 2 and "--scenes" in result.stderr
    assert not (tmp_path / "e").exists()
    result = vidfer("manifest", str(tmp_path / "nowhere"))
    assert result.returncode == 2 and "not a folder" in result.stderr
