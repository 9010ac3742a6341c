"""Evaluation protocols on toy manifests: which rows train, validate and test each fold."""

from __future__ import annotations

from collections import Counter

import pytest

from vidfer.config import ProtocolConfig, parse_config
from vidfer.config.protocol import choose_protocol
from vidfer.data.manifest import parse_manifest
from vidfer.errors import ConfigError
from vidfer.evaluation.protocols import carve_validation, make_folds


def toy(tmp_path, subjects=6, per_class=2, classes=("a", "b"), split=None, name="m.csv"):
    """A manifest: every subject has ``per_class`` videos of every class."""
    lines = ["path,label,subject" + (",split" if split else "")]
    for s in range(subjects):
        for label in classes:
            for k in range(per_class):
                row = f"v/s{s}_{label}{k}.mp4,{label},s{s}"
                lines.append(row + (f",{split(s)}" if split else ""))
    return parse_manifest(
        "\n".join(lines) + "\n", source=tmp_path / name, root=tmp_path, classes=classes
    )


def subjects(rows):
    return {row.subject for row in rows}


def check_partition(fold, manifest):
    ids = [row.video_id for part in (fold.train, fold.val, fold.test) for row in part]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {row.video_id for row in manifest.rows}


def test_loso_makes_one_fold_per_subject(tmp_path):
    manifest = toy(tmp_path, subjects=5)
    folds = make_folds([manifest], ProtocolConfig(name="loso"))
    assert len(folds) == 5
    assert sorted(fold.test_subjects[0] for fold in folds) == ["s0", "s1", "s2", "s3", "s4"]
    for fold in folds:
        assert len(fold.test_subjects) == 1 and len(fold.test) == 4
        # Validation: whole subjects carved from the other four (one of them: 1/0.2 = 5 > 4).
        assert len(subjects(fold.val)) == 1
        assert not subjects(fold.train) & subjects(fold.val)
        assert not (subjects(fold.train) | subjects(fold.val)) & set(fold.test_subjects)
        assert len(fold.train) + len(fold.val) + len(fold.test) == 20
        check_partition(fold, manifest)
    assert [fold.name for fold in folds] == [f"fold{k}" for k in range(5)]


def test_subject_kfold_is_subject_disjoint_and_covers_everyone(tmp_path):
    manifest = toy(tmp_path, subjects=10)
    folds = make_folds([manifest], ProtocolConfig(name="subject_kfold", folds=5))
    assert len(folds) == 5
    tested = Counter(row.video_id for fold in folds for row in fold.test)
    assert set(tested.values()) == {1} and len(tested) == 40
    for fold in folds:
        assert len(fold.test_subjects) == 2
        assert not subjects(fold.train) & set(fold.test_subjects)
        assert not subjects(fold.val) & set(fold.test_subjects)
        assert not subjects(fold.train) & subjects(fold.val)
        assert Counter(row.label for row in fold.test) == {"a": 4, "b": 4}  # stratified
    with pytest.raises(ConfigError, match="10 subjects cannot fill 12 folds"):
        make_folds([manifest], ProtocolConfig(name="subject_kfold", folds=12))


def test_subject_protocols_need_subjects(tmp_path):
    text = "path,label,subject\nx.mp4,a,s1\ny.mp4,b,\n"
    manifest = parse_manifest(text, source=tmp_path / "m.csv", root=tmp_path)
    for name in ("loso", "subject_kfold"):
        with pytest.raises(ConfigError, match=rf"m.csv:3: the {name} protocol needs a subject"):
            make_folds([manifest], ProtocolConfig(name=name))


def test_kfold_stratifies_and_repeats_reshuffle(tmp_path):
    manifest = toy(tmp_path, subjects=4, per_class=5)  # 20 videos per class
    spec = ProtocolConfig(name="kfold", folds=4, repeats=2, seed=3)
    folds = make_folds([manifest], spec)
    assert [fold.name for fold in folds] == [f"r{r}_fold{k}" for r in (0, 1) for k in range(4)]
    for fold in folds:
        assert Counter(row.label for row in fold.test) == {"a": 5, "b": 5}
        check_partition(fold, manifest)
        # Validation: subject-disjoint from train, carved from the training part (4/5 of it
        # is 30 rows; 4 subjects cannot make 5 folds, so 1 subject in 4 goes to validation).
        assert not subjects(fold.train) & subjects(fold.val)
    first, second = folds[0], folds[4]
    assert {r.video_id for r in first.test} != {r.video_id for r in second.test}
    again = make_folds([manifest], spec)
    assert [[r.video_id for r in f.test] for f in again] == [
        [r.video_id for r in f.test] for f in folds
    ]


def test_validation_is_a_stratified_fifth_without_subjects(tmp_path):
    text = "path,label\n" + "".join(f"v{i}.mp4,{'ab'[i % 2]}\n" for i in range(20))
    rows = parse_manifest(text, source=tmp_path / "m.csv", root=tmp_path).rows
    train, val = carve_validation(rows, 0.2, seed=0)
    assert len(val) == 4 and Counter(row.label for row in val) == {"a": 2, "b": 2}
    assert len(train) == 16 and not {r.video_id for r in train} & {r.video_id for r in val}
    assert carve_validation(rows[:1], 0.2, seed=0) == (rows[:1], ())


def test_holdout_keeps_subjects_apart(tmp_path):
    manifest = toy(tmp_path, subjects=10)
    (fold,) = make_folds([manifest], ProtocolConfig(name="holdout", test_fraction=0.2))
    assert len(fold.test_subjects) == 2 and len(fold.test) == 8
    assert not subjects(fold.train) & set(fold.test_subjects)


def test_official_splits(tmp_path):
    # train/val/test given: used as they are.
    given = toy(tmp_path, subjects=5, split=lambda s: ("train", "train", "train", "val", "test")[s])
    (fold,) = make_folds([given], ProtocolConfig(name="official"))
    assert (subjects(fold.val), fold.test_subjects) == ({"s3"}, ["s4"])
    # AFEW: train and val only -> test on val, validation carved from train (80/20 by subject).
    afew = toy(tmp_path, subjects=6, split=lambda s: "val" if s == 5 else "train")
    (fold,) = make_folds([afew], ProtocolConfig(name="official", val_fraction=0.2))
    assert fold.test_subjects == ["s5"]
    assert len(subjects(fold.val)) == 1 and len(subjects(fold.train)) == 4
    # One fold per manifest (HMDB-51's three splits), repeated with new validation shares.
    splits = [
        toy(tmp_path, subjects=6, split=lambda s, k=k: "test" if s == k else "train")
        for k in range(3)
    ]
    folds = make_folds(splits, ProtocolConfig(name="official", repeats=2))
    assert [f.test_subjects for f in folds] == [["s0"], ["s1"], ["s2"]] * 2
    assert [f.name for f in folds][:4] == ["r0_fold0", "r0_fold1", "r0_fold2", "r1_fold0"]
    with pytest.raises(ConfigError, match="needs a split column with train rows"):
        make_folds([toy(tmp_path)], ProtocolConfig(name="official"))
    with pytest.raises(ConfigError, match="several manifests are for 'official' only"):
        make_folds(splits, ProtocolConfig(name="loso"))


def test_swap_trains_on_each_partition(tmp_path):
    manifest = toy(tmp_path, subjects=4, split=lambda s: "train" if s < 2 else "val")
    first, second = make_folds([manifest], ProtocolConfig(name="swap"))
    assert subjects(first.train) == {"s0", "s1"} and subjects(first.val) == {"s2", "s3"}
    assert subjects(second.train) == {"s2", "s3"} and subjects(second.val) == {"s0", "s1"}
    assert first.test == first.val and second.test == second.val  # no test partition
    with pytest.raises(ConfigError, match="swap protocol needs a split column with train and val"):
        make_folds([toy(tmp_path)], ProtocolConfig(name="swap"))


def test_protocol_section_and_command_line_choices(tmp_path):
    raw = {"data": {"manifest": "m.csv"}, "protocol": {"name": "loso", "folds": 3}}
    with pytest.raises(ConfigError, match=r"option 'protocol': .*'folds' applies to kfold"):
        parse_config(raw)
    raw["protocol"] = {"name": "subject_kfold", "folds": 8, "seed": 4}
    section = parse_config(raw).protocol
    assert section is not None and section.fold_count == 8
    assert choose_protocol(section, repeats=3) == ProtocolConfig(
        name="subject_kfold", folds=8, seed=4, repeats=3
    )
    assert choose_protocol(section, "loso") == ProtocolConfig(name="loso")
    assert choose_protocol(None, "kfold").fold_count == 5
    assert choose_protocol(None) is None
    with pytest.raises(ConfigError, match="pass --protocol NAME"):
        choose_protocol(None, folds=3)
    with pytest.raises(ConfigError, match="protocol option 'name'"):
        choose_protocol(None, "leave_one_out")
