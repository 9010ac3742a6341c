"""Corrupt and hostile inputs: bad videos, crashing decoders, bad manifests and configs.

The videos are real files (written by PyAV, then damaged the way real files are); the decoder
crash, hang and memory exhaustion are real signals, sleeps and allocations in real worker
processes, placed by ``VIDFER_FAULTS``.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
from collections import deque
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from address_space import mapped_after_a_big_free, reserve
from reliability_helpers import ForkedVidfer, misbehave, work_in_steps, write_run_config
from slow_start import misbehave_after_a_slow_start
from vidfer.cli import main
from vidfer.config import DataConfig, LimitsConfig, parse_config
from vidfer.data.adapters.folder import write_folder_manifest
from vidfer.data.manifest import parse_manifest, read_manifest
from vidfer.data.prepared import load_dataset
from vidfer.errors import ConfigError, ManifestError
from vidfer.faults import ENV as FAULTS_ENV
from vidfer.io.sandbox import Failure, Sandbox
from vidfer.io.writer import write_video

from helpers import moving_square, write_audio_only


def encode(path: Path, frames: np.ndarray, pts: list[int] | None = None, rate: int = 10) -> Path:
    """A real H.264 mp4 of ``frames``, optionally with explicit timestamps (in 1/rate s)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=rate)
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(image, format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = pts[i], Fraction(1, rate)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def damaged(path: Path, good: Path, how: str) -> Path:
    """``good`` with its video data cut in the middle (``cut``) or overwritten (``garbage``)."""
    data = bytearray(good.read_bytes())
    payload = data.find(b"mdat") + 4  # the writer puts the index first (faststart)
    if how == "cut":
        data = data[: (payload + len(data)) // 2]
    else:
        data[payload:] = np.random.default_rng(3).bytes(len(data) - payload)
    path.write_bytes(bytes(data))
    return path


def write_bad_videos(root: Path) -> dict[str, str]:
    """Every kind of bad video beside a good dataset; returns file name -> expected status."""
    good = root / "videos" / "left" / "0.mp4"
    square = moving_square(1, frames=20)
    write_video(root / "long_enough.mp4", square, 10.0)
    damaged(root / "truncated.mp4", root / "long_enough.mp4", "cut")
    damaged(root / "garbage.mp4", root / "long_enough.mp4", "garbage")
    (root / "random.mp4").write_bytes(np.random.default_rng(0).bytes(5000))
    (root / "empty.mp4").write_bytes(b"")
    write_audio_only(root / "audio.mp4")
    write_video(root / "one_frame.mp4", square[:1], 10.0)
    write_video(root / "short.mp4", square[:3], 10.0)  # shorter than a 4-frame clip
    encode(root / "wide.mp4", np.zeros((2, 16, 9000, 3), np.uint8))
    encode(root / "long.mp4", np.ascontiguousarray(square[:2, :16, :16]), pts=[0, 180_000])
    for name in ("crash.mp4", "hang.mp4", "hog.mp4"):
        shutil.copy(good, root / name)
    shutil.copy(good, root / os.fsdecode(b"caf\xe9.mp4"))
    (root / "long_enough.mp4").unlink()
    return {
        "truncated.mp4": "truncated",
        "garbage.mp4": "undecodable",
        "random.mp4": "corrupt",
        "empty.mp4": "empty",
        "audio.mp4": "no_video_stream",
        "one_frame.mp4": "single_frame",
        "short.mp4": "too_short",
        "wide.mp4": "too_large",
        "long.mp4": "too_large",
        "missing.mp4": "missing",
        "crash.mp4": "crashed",
        "hang.mp4": "timeout",
        "hog.mp4": "out_of_memory",
        os.fsdecode(b"caf\xe9.mp4"): "bad_name",
    }


REASONS = {
    "truncated": r"ends inside the video data after \d+ frame\(s\): it was cut short",
    "undecodable": r"decoding failed after 0 frames .*the video data is damaged",
    "corrupt": r"not a readable media file",
    "empty": r"the file is empty \(0 bytes\)",
    "no_video_stream": r"no video stream \(audio streams only\)",
    "single_frame": r"one frame: a still image",
    "too_short": r"3 frame\(s\), fewer than data.prepare.min_frames=4",
    "missing": r"file not found",
    "crashed": r"quarantined: .*its worker died \(killed by SIGSEGV\)",
    "timeout": r"quarantined: .*ran longer than 3 s; raise data.limits.decode_timeout_s=3",
    "out_of_memory": r"quarantined: .*more than the 256 MB .*raise data.limits.decode_memory_mb",
    "bad_name": r"the file name b'caf\\xe9.mp4' is not UTF-8",
}


@pytest.mark.slow
def test_bad_videos_are_rejected_each_with_its_status_and_training_goes_on(
    square_dataset, tmp_path
):
    root = square_dataset.parent
    expected = write_bad_videos(root)
    lines = square_dataset.read_bytes().splitlines()
    lines += [os.fsencode(name) + b",right,train,sx" for name in expected]
    square_dataset.write_bytes(b"\n".join(lines) + b"\n")
    config = write_run_config(
        tmp_path,
        square_dataset,
        data={
            "prepare": {"size": 16, "min_frames": 4},
            "limits": {"decode_timeout_s": 3, "decode_memory_mb": 256},
            "workers": 2,
            "max_reject_fraction": 0.7,
        },
        train={"epochs": 1, "checkpoint_every_steps": None},
    )
    faults = {"decode": {"crash.mp4": "segv", "hang.mp4": "hang", "hog.mp4": "hog"}}
    run = tmp_path / "run"
    # A forked child of this process: its preparation's workers are the real, spawned ones.
    process = ForkedVidfer(
        "train",
        str(config),
        "--out",
        str(run),
        stderr=tmp_path / "log",
        env={FAULTS_ENV: json.dumps(faults)},
    )
    stderr = process.communicate(timeout=300)[1]
    assert process.returncode == 0, stderr

    rejects = [json.loads(line) for line in (run / "rejects.jsonl").read_text().splitlines()]
    assert {item["path"]: item["status"] for item in rejects} == expected
    for item in rejects:
        pattern = REASONS.get(item["status"])
        if item["path"] == "wide.mp4":
            pattern = r"width 9000 exceeds limits.max_width=8192"
        elif item["path"] == "long.mp4":
            pattern = r"duration \(s\) 1800\d\.\d+ exceeds limits.max_duration_s=14400"
        assert re.search(pattern, item["reason"]), item
    # The quarantined files are named as they happen; training went on with the good videos.
    log = " ".join(stderr.split())
    for name in ("crash.mp4", "hang.mp4", "hog.mp4"):
        assert f"{name}: quarantined" in log, log
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["epoch"] for line in metrics] == [1]
    assert (run / "checkpoints" / "last.pt").exists()


def test_quarantine_is_remembered_and_decided_again_under_other_limits(
    square_dataset, monkeypatch, caplog
):
    root = square_dataset.parent
    shutil.copy(root / "videos" / "left" / "0.mp4", root / "hang.mp4")
    square_dataset.write_text(square_dataset.read_text() + "hang.mp4,left,train,sx\n")
    config = DataConfig.model_validate(
        {"manifest": square_dataset, "prepare": {"size": 16}, "limits": {"decode_timeout_s": 2}}
    )
    monkeypatch.setenv(FAULTS_ENV, json.dumps({"decode": {"hang.mp4": "hang"}}))
    first = load_dataset(config)
    assert first.result.decoded == 9 and len(first.items) == 8
    assert [item["status"] for item in first.rejects()] == ["timeout"]
    assert "hang.mp4: quarantined: preparing it failed, it ran longer than 2 s" in caplog.text
    # A second run does not try the quarantined file again...
    again = load_dataset(config)
    assert again.result.decoded == 0 and [r["status"] for r in again.rejects()] == ["timeout"]
    # ... until the limit it broke changes (here the fault is gone: it prepares fine).
    monkeypatch.delenv(FAULTS_ENV)
    relaxed = config.model_copy(update={"limits": LimitsConfig(decode_timeout_s=60)})
    third = load_dataset(relaxed)
    assert third.result.decoded == 1 and len(third.items) == 9 and not third.rejects()


def test_a_replacement_worker_is_given_its_start_up_time(monkeypatch):
    # After a crash the fresh worker must import the task's module again; on a loaded machine
    # that can take longer than the task's limit, which runs only from its "ready".
    monkeypatch.setenv("VIDFER_TEST_START_S", "1.5")
    with Sandbox(misbehave_after_a_slow_start, 1, timeout_s=1, memory_mb=None) as sandbox:
        outcomes = dict(sandbox.map([("segv",), ("a",)]))
    assert isinstance(outcomes[0], Failure) and outcomes[0].status == "crashed"
    assert outcomes[1] == "A"


def test_a_task_that_beats_is_limited_per_step_not_as_a_whole():
    # Four steps of 0.7 s under a 1.5 s limit: a video prepared piece by piece goes on as long
    # as each piece comes in time; the same task silent for 2.8 s is a timeout.
    with Sandbox(work_in_steps, 1, timeout_s=1.5, memory_mb=None) as sandbox:
        outcomes = dict(sandbox.map([(4, 0.7, True), (4, 0.7, False)]))
    assert outcomes[0] == 4
    assert isinstance(outcomes[1], Failure) and outcomes[1].status == "timeout"


def test_the_sandbox_accounts_for_every_task_whatever_its_worker_does():
    tasks = ["a", "segv", "b", "hang", "c", "hog", "d", "segv", "e"]
    with Sandbox(misbehave, 2, timeout_s=2, memory_mb=256) as sandbox:
        outcomes = dict(sandbox.map([(task,) for task in tasks]))
        assert sorted(outcomes) == list(range(len(tasks)))  # none lost behind a failed one
        for index, task in enumerate(tasks):
            expected = {"segv": "crashed", "hang": "timeout", "hog": "out_of_memory"}.get(task)
            if expected is None:
                assert outcomes[index] == task.upper()
            else:
                assert isinstance(outcomes[index], Failure) and outcomes[index].status == expected
        assert "killed by SIGSEGV" in outcomes[1].reason
        # An exception is the function's, not the input's: raised here, with the worker's
        # traceback; the workers stay usable.
        with pytest.raises(ValueError, match="cannot handle 'raise'") as raised:
            list(sandbox.map([("raise",)]))
        assert "misbehave" in str(raised.value.__cause__)
        assert dict(sandbox.map([("f",)])) == {0: "F"}


def test_an_answer_sent_just_before_its_worker_died_is_not_lost():
    # The worker answers "a", then dies of the task queued behind it, both after the parent
    # last waited on it: the parent sees a dead worker whose pipe still holds an answer (on a
    # loaded machine, "a" was reported crashed). Driven step by step: the race, made certain.
    with Sandbox(misbehave, 1, timeout_s=60, memory_mb=None) as sandbox:
        worker = sandbox._start()
        sandbox._workers.append(worker)
        sandbox._send(worker, 0, ("a",))
        sandbox._send(worker, 1, ("segv",))
        worker.process.join()
        outcomes = []
        while worker.tasks:
            outcome = sandbox._outcome(worker, set(), deque())
            if outcome is not None:  # not its "ready"
                outcomes.append(outcome)
    crashed = Failure("crashed", "its worker died (killed by SIGSEGV)")
    assert outcomes == [(0, "A"), (1, crashed)]


def test_a_workers_setup_runs_before_its_memory_limit():
    # A face detector on a GPU: its CUDA context reserves far more address space than a
    # task's limit. Made by the setup, before the limit, it does not count against it.
    setup = functools.partial(reserve, 1024)
    with Sandbox(reserve, 1, timeout_s=60, memory_mb=256, setup=setup) as sandbox:
        assert dict(sandbox.map([(16,)])) == {0: 1024 + 16}
    limited = Sandbox(reserve, 1, timeout_s=60, memory_mb=256)
    with limited, pytest.raises(OSError, match="Cannot allocate memory"):
        list(limited.map([(1024,)]))
    # A setup that fails leaves the error to the tasks that need what it made.
    failing = functools.partial(reserve, -1)
    with Sandbox(reserve, 1, timeout_s=60, memory_mb=None, setup=failing) as sandbox:
        assert dict(sandbox.map([(1,)])) == {0: 1}


def test_a_worker_unmaps_the_big_blocks_it_frees():
    # glibc's default keeps a freed 8 MiB block's size as its threshold: a later 5 MiB buffer
    # comes from the heap (here, in pytest's process). A worker fixes the threshold at 4 MiB so
    # that such blocks are unmapped when freed and do not fragment its heap.
    assert mapped_after_a_big_free() == 0
    with Sandbox(mapped_after_a_big_free, 1, timeout_s=60, memory_mb=None) as sandbox:
        assert dict(sandbox.map([()])) == {0: 1}


# ---------------------------------------------------------------- manifests and configs


def root_beside_a_fifo(tmp_path: Path) -> Path:
    """A dataset root with a symlink to a FIFO outside it: opening the FIFO would block forever."""
    root = tmp_path / "root"
    root.mkdir()
    trap = tmp_path / "trap.mp4"
    os.mkfifo(trap)
    os.symlink(trap, root / "link.mp4")
    return root


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ("path,label\nx.mp4,happy\n", r"m.csv:2: unknown label 'happy'; classes are \['a', 'b'\]"),
        ("file,label\nx.mp4,a\n", r"m.csv:1: missing column\(s\) path"),
        ("path,label\nx.mp4,a\nx.mp4,b\n", r"m.csv:3: duplicate path 'x.mp4' \(line 2\)"),
        ("path,label\n/etc/passwd,a\n", r"m.csv:2: absolute path '/etc/passwd'"),
        ("path,label\n../trap.mp4,a\n", r"m.csv:2: path '../trap.mp4' escapes the dataset root"),
        ("path,label\nlink.mp4,a\n", r"m.csv:2: path 'link.mp4' escapes the dataset root"),
        ("\ufeffpath,label\r\nx.mp4,a\r\ny.mp4,q\r\n", r"m.csv:3: unknown label 'q'"),
    ],
    ids=["label", "column", "duplicate", "absolute", "dotdot", "symlink", "bom-crlf"],
)
def test_bad_manifests_fail_with_one_line_naming_the_line(tmp_path, capsys, manifest, message):
    root = root_beside_a_fifo(tmp_path)
    (root / "m.csv").write_bytes(manifest.encode("utf-8"))
    config = tmp_path / "run.yaml"
    data = {"manifest": str(root / "m.csv"), "classes": ["a", "b"]}
    config.write_text(yaml.safe_dump({"data": data}))
    # The escaping paths point at a FIFO: opening it would hang this test.
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err
    assert re.search(message, error), error
    assert len(error.strip().splitlines()) == 1 and "Traceback" not in error
    assert not (root / ".vidfer_store").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.epoch=3", r"option 'train.epoch': Extra inputs are not permitted"),
        ("train.epochs=many", r"option 'train.epochs': Input should be a valid integer"),
        ("data.limits.decode_timeout_s=-1", r"option 'data.limits.decode_timeout_s'"),
        ("train.on_nan=ignore", r"option 'train.on_nan': Input should be 'stop' or 'skip'"),
        ("model.params=[1, 2]", r"option 'model.params': Input should be a valid dictionary"),
    ],
)
def test_bad_config_options_fail_with_one_line_naming_the_key(
    square_dataset, tmp_path, capsys, override, message
):
    config = write_run_config(tmp_path, square_dataset)
    assert main(["train", str(config), "--out", str(tmp_path / "run"), "--set", override]) == 2
    error = capsys.readouterr().err
    assert re.search(message, " ".join(error.split())), error
    assert "Traceback" not in error


def test_yaml_that_would_run_code_is_refused(tmp_path, capsys):
    target = tmp_path / "pwned"
    config = tmp_path / "evil.yaml"
    config.write_text(f"data: !!python/object/apply:os.system ['touch {target}']\n")
    assert main(["train", str(config), "--out", str(tmp_path / "run")]) == 2
    assert "invalid YAML" in capsys.readouterr().err
    assert not target.exists()


def test_a_latin1_file_name_goes_through_manifests_to_be_rejected_by_preparation(tmp_path):
    name = os.fsdecode(b"caf\xe9.mp4")
    (tmp_path / "happy").mkdir()
    (tmp_path / "happy" / name).write_bytes(b"")
    (tmp_path / "happy" / "ok.mp4").write_bytes(b"")
    # The folder adapter writes the name's own bytes; reading them back keeps the row.
    manifest = read_manifest(write_folder_manifest(tmp_path))
    assert b"happy/caf\xe9.mp4,happy" in (tmp_path / "manifest.csv").read_bytes()
    assert [row.path.name for row in manifest.rows] == [name, "ok.mp4"]
    # Anywhere but in a path, bytes that are not UTF-8 are refused, naming the line.
    (tmp_path / "m.csv").write_bytes(b"path,label\nok.mp4,caf\xe9\n")
    with pytest.raises(ManifestError, match=r"m.csv:2: column 'label' is not UTF-8"):
        read_manifest(tmp_path / "m.csv")


# Manifests built from fields that are each valid or hostile: paths that escape the root,
# duplicates, empty fields, odd quoting, unknown splits and labels, numbers that are not times.
PATHS = st.sampled_from(
    ["a.mp4", "b/c.mp4", "a.mp4", "../x.mp4", "/abs.mp4", "b/../../y.mp4", "", "link.mp4",
     "sp ace.mp4", 'q"uote.mp4', "c:\\win.mp4", "b/./c.mp4", "é.mp4"]
)  # fmt: skip
FIELDS = {
    "label": st.sampled_from(["a", "b", "a", "b", "a", "b", "", "zzz", "x,y"]),
    "split": st.sampled_from(["", "train", "val", "test", "train", "training"]),
    "subject": st.sampled_from(["", "s1", "s2", "x,y", '"']),
    "video_id": st.sampled_from(["", "", "", "v1", "v2"]),
    "start": st.sampled_from(["", "", "0.5", "1.5", "-2", "soon"]),
    "end": st.sampled_from(["", "", "1", "2.5", "nan"]),
    "extra": st.just("x"),
}
OPTIONAL = ["split", "subject", "video_id", "start", "end"]


@st.composite
def manifests(draw: st.DrawFn) -> str:
    """Mostly well-formed manifests, with a hostile field or line here and there."""
    header = ["path", "label", *draw(st.lists(st.sampled_from(OPTIONAL), unique=True, max_size=3))]
    if draw(st.integers(0, 9)) == 5:  # now and then a broken header
        header = draw(st.sampled_from([header[1:], header[:1], [*header, "extra"], header * 2]))
    header = draw(st.permutations(header))
    rows = []
    for _ in range(draw(st.integers(1, 6))):
        values = [draw(PATHS if name == "path" else FIELDS[name]) for name in header]
        if draw(st.integers(0, 9)) == 5:  # now and then a short line
            values = values[: draw(st.integers(0, len(values)))]
        rows.append(",".join(values))
    newline = draw(st.sampled_from(["\n", "\r\n"]))
    bom = draw(st.sampled_from(["", "\ufeff"]))
    return bom + newline.join([",".join(header), *rows]) + newline


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=manifests(), classes=st.sampled_from([None, ["a", "b"], ["a"]]))
def test_random_manifests_are_valid_or_refused_naming_a_line(tmp_path_factory, text, classes):
    root = tmp_path_factory.getbasetemp() / "hypothesis-manifests"
    if not root.exists():
        root.mkdir()
        (root / "b").mkdir()
        os.symlink("/etc/hostname", root / "link.mp4")
    try:
        manifest = parse_manifest(text, source=root / "m.csv", root=root, classes=classes)
    except ManifestError as error:
        assert re.match(rf"{re.escape(str(root / 'm.csv'))}(:\d+)?: ", str(error)), error
        line = re.match(r".*?m\.csv:(\d+):", str(error))
        assert line is None or 1 <= int(line.group(1)) <= text.count("\n") + 1
    else:
        paths = [row.path for row in manifest.rows]
        assert all(path.is_relative_to(root.resolve()) for path in paths)
        assert len({(row.path, row.start, row.end) for row in manifest.rows}) == len(paths)
        assert all(row.label in manifest.classes for row in manifest.rows)


VALID = {
    "seed": 1,
    "data": {"manifest": "m.csv", "prepare": {"size": 16}, "limits": {"decode_timeout_s": 5}},
    "sampler": {"name": "uniform", "clip_len": 4},
    "model": {"name": "resnet3d_18", "params": {"width": 0.25}},
    "optim": {"name": "sgd", "lr": 0.01},
    "train": {"epochs": 2, "on_nan": "skip", "checkpoint_every_steps": 3},
}
ODD_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=6),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=4), st.integers(), max_size=2),
)


@st.composite
def configs(draw: st.DrawFn) -> dict:
    """The valid config with a few random edits: keys replaced, renamed or removed."""
    config = json.loads(json.dumps(VALID))
    for _ in range(draw(st.integers(1, 4))):
        section = draw(st.sampled_from(sorted(config)))
        node = config if not isinstance(config[section], dict) else config[section]
        key = section if node is config else draw(st.sampled_from([*sorted(node), "typo"]))
        action = draw(st.sampled_from(["set", "rename", "delete"]))
        if action == "set":
            node[key] = draw(ODD_VALUES)
        elif action == "rename" and key in node:
            node[key + "x"] = node.pop(key)
        else:
            node.pop(key, None)
    return config


@settings(max_examples=300, deadline=None)
@given(raw=configs())
def test_random_configs_are_valid_or_refused_naming_the_option(raw):
    try:
        config = parse_config(raw, source="run.yaml")
    except ConfigError as error:
        assert re.match(r"run\.yaml: (option '.*'|expected)", str(error), re.S), error
    else:
        assert config.train.epochs >= 1 and config.data.limits.decode_timeout_s > 0
