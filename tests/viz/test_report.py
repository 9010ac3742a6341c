"""``vidfer report``: the self-contained HTML report, checked in a real headless Chromium.

One tiny run is trained once (stochastic softmax sampler and an attention module, so that it has
sampling and attention maps); the prediction, fusion and experiment folders are built from it
with the real commands (the experiment's folds are copies of the run, with an ``experiment.json``
in the format ``vidfer experiment`` writes).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import sem

from vidfer.cli import main
from vidfer.config import parse_config
from vidfer.data.synth import make_actions
from vidfer.errors import CheckpointError, ConfigError
from vidfer.fusion.fuse import FusionSpec, fuse_runs
from vidfer.pipelines import train
from vidfer.predict import predict_video
from vidfer.viz.report import folder_kind, write_report

from helpers import vidfer_forked

CHROMIUM = Path("/usr/bin/chromium")
# The flags of the environment notes; Playwright adds --headless and its own user-data-dir flag.
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
METRICS = ["accuracy", "mean_class_accuracy", "macro_f1", "roc_auc", "eer_accuracy"]


@dataclass(frozen=True)
class Folders:
    run: Path
    prediction: Path
    fusion: Path
    experiment: Path


def _experiment(root: Path, run: Path) -> Path:
    """An experiment folder whose two folds are copies of ``run``, and its experiment.json."""
    folds = []
    for name in ("fold0", "fold1"):
        fold = root / "folds" / name
        shutil.copytree(run, fold, ignore=shutil.ignore_patterns("checkpoints", "report.html"))
        metrics = json.loads((fold / "eval_test" / "metrics.json").read_text())
        folds.append(
            {
                "name": name,
                "run": f"folds/{name}",
                "train": 4,
                "val": 4,
                "test": metrics["count"],
                "test_subjects": ["a03"],
                "metrics": {key: metrics.get(key) for key in METRICS},
            }
        )
    summary = {}
    for key in METRICS:
        values = [f["metrics"][key] for f in folds if f["metrics"][key] is not None]
        if values:
            summary[key] = {"mean": float(np.mean(values)), "sem": float(sem(values)), "n": 2}
    record = {
        "config": str(run / "config.yaml"),
        "protocol": {"name": "subject_kfold", "folds": 2, "repeats": 1, "seed": 0},
        "metric_names": METRICS,
        "folds": folds,
        "summary": summary,
    }
    (root / "experiment.json").write_text(json.dumps(record))
    return root


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> Folders:
    root = tmp_path_factory.mktemp("report")
    manifest = make_actions(root / "data", videos_per_class=3, size=32)
    config = parse_config(
        {
            "seed": 0,
            "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
            "sampler": {
                "name": "stochastic_softmax",
                "clip_len": 8,
                "params": {"warmup": 1, "explore": 1},
            },
            "transforms": {"size": 28},
            "model": {
                "name": "resnet3d_18",
                "params": {"width": 0.125},
                "attention": {"name": "mask", "params": {"dims": "spatiotemporal"}},
            },
            "train": {"epochs": 3, "batch_size": 4},
        }
    )
    run = root / "run"
    train(config, run)
    prediction = root / "prediction"
    predict_video(root / "data/videos/jump/a03_jump.mp4", prediction, run)
    fusion = root / "fusion"
    fuse_runs(FusionSpec(runs=[run, run], method="mean"), fusion)
    return Folders(run, prediction, fusion, _experiment(root / "experiment", run))


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Debian's Chromium, headless, with a new empty profile, driven by Playwright."""
    from playwright.sync_api import sync_playwright

    assert CHROMIUM.exists(), "chromium is not installed: run 'make browser'"
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS
        )
        yield context
        context.close()


# Per folder kind: headings that must be shown, and how many images at least.
EXPECTED = {
    "run": (
        [
            "Configuration",
            "Learning curves",
            "Evaluation: val",
            "Evaluation: test",
            "Confusion matrix",
            "Per-class accuracy",
            "ROC curves",
            "Sampling maps",
            "Attention maps",
        ],
        1 + 2 * 2 + 2,  # curves, per split confusion + ROC, sampling and attention maps
    ),
    "experiment": (
        ["Protocol", "Folds", "Fold fold0", "Fold fold1", "Learning curves", "ROC curves"],
        2 * 7,
    ),
    "prediction": (["Prediction", "Per-frame timeline"], 1),
    "fusion": (
        ["Fusion", "Comparison: single runs vs fused", "Split: val", "Split: test"],
        2 * 2,
    ),
}


@pytest.mark.slow
@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_in_headless_chromium(folders, browser, kind, tmp_path):
    folder = getattr(folders, kind)
    report = write_report(folder, tmp_path / "report.html")
    headings, images = EXPECTED[kind]
    page = browser.new_page()
    messages, requests = [], []
    page.on("console", lambda m: messages.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: messages.append(f"pageerror: {e}"))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report.as_uri(), wait_until="load")

    shown = page.locator("h1, h2, h3, h4").all_inner_texts()
    assert shown[0] == f"vidfer {kind} report: {folder.name}"
    for heading in headings:
        assert heading in shown, (heading, shown)
    decoded = page.evaluate(
        "Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)"
    )
    assert len(decoded) >= images and all(decoded), decoded
    # Self-contained: the page asked for nothing but itself; no error or warning was logged.
    assert requests == [report.as_uri()], requests
    assert messages == [], messages
    # Every entry of the contents leads to a section of the page.
    targets = page.locator("nav a").evaluate_all("links => links.map(a => a.hash.slice(1))")
    assert targets and all(page.locator(f"[id='{t}']").count() == 1 for t in targets)
    if kind == "run":  # everything a run can show is there: nothing skipped
        assert page.locator("section.skipped").count() == 0
    if kind == "experiment":
        record = json.loads((folder / "experiment.json").read_text())
        rows = [row.split("\t") for row in page.locator("#folds tbody tr").all_inner_texts()]
        assert [row[0] for row in rows] == ["fold0", "fold1"]
        accuracy = record["folds"][0]["metrics"]["accuracy"]
        assert rows[0][5] == f"{accuracy:.4f}"  # after train, val, test, test subjects
        mean = record["summary"]["accuracy"]
        footer = page.locator("#folds tfoot tr").inner_text().split("\t")
        assert footer[0] == "mean ± s.e."
        assert footer[5] == f"{mean['mean']:.4f} ± {mean['sem']:.4f} (n=2)"
        page.locator("#folds a", has_text="fold1").click()
        assert page.evaluate("location.hash") == "#fold-fold1"
    if kind == "prediction":
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["label"] in page.locator("#prediction").inner_text()
    screenshot = tmp_path / f"{kind}.png"
    page.screenshot(path=str(screenshot), full_page=True)
    page.close()
    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and screenshot.stat().st_size > 5000


def test_folder_kinds(folders):
    assert [folder_kind(getattr(folders, k)) for k in EXPECTED] == list(EXPECTED)


def test_cli_writes_the_default_path_and_refuses_other_folders(folders, tmp_path, capsys):
    result = vidfer_forked("report", str(folders.prediction))
    assert result.returncode == 0, result.stderr
    assert (folders.prediction / "report.html").stat().st_size > 10_000
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "notes.txt").write_text("x")
    assert main(["report", str(tmp_path / "data"), "--out", str(tmp_path / "r.html")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert (
        len(lines) == 1 and "not a vidfer run, experiment, fusion or prediction folder" in lines[0]
    )
    assert not (tmp_path / "r.html").exists()


def test_bad_folders_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no such folder"):
        write_report(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a vidfer run"):
        write_report(tmp_path / "empty")
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "experiment.json").write_text('{"folds": 3}')
    with pytest.raises(ConfigError, match=r"experiment\.json: expected an object with a 'folds'"):
        write_report(tmp_path / "exp")
    (tmp_path / "exp" / "experiment.json").write_text("{")
    with pytest.raises(ConfigError, match=r"experiment\.json: not valid JSON"):
        write_report(tmp_path / "exp")


def test_missing_pieces_are_skipped_with_a_note(folders, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(folders.run, run, ignore=shutil.ignore_patterns("checkpoints", "*.png"))
    for name in ("eval_test/confusion.csv", "eval_test/predictions.csv", "metrics.jsonl"):
        (run / name).unlink()
    html = write_report(run).read_text()
    for anchor in (
        "learning-curves",
        "eval-test-confusion",
        "eval-test-per-class",
        "eval-test-roc",
        "sampling-maps",
        "attention-maps",
    ):
        assert f'<section id="{anchor}" class="skipped">' in html, anchor
    assert "No confusion.csv in this split." in html
    assert '<section id="eval-val-roc">' in html  # the val split is complete
    # Only the val split's two plots are left: nothing was drawn for what is absent.
    assert html.count("<img ") == 2
    # An experiment whose fold folder is gone says so.
    record = json.loads((folders.experiment / "experiment.json").read_text())
    record["folds"][1]["run"] = "folds/gone"
    (tmp_path / "exp").mkdir()
    (tmp_path / "exp" / "experiment.json").write_text(json.dumps(record))
    html = write_report(tmp_path / "exp").read_text()
    assert '<section id="fold-fold1" class="skipped">' in html
    assert "Run folder folds/gone is missing." in html


def _eval_folder(root: Path, classes: list[str], labels: list[str], probs: list[list[float]]):
    """A split folder written by hand in the format of write_evaluation."""
    folder = root / "eval_test"
    folder.mkdir(parents=True)
    header = "video_id,label,prediction," + ",".join(f"p_{c}" for c in classes)
    lines = [
        f"v{i},{label},{classes[int(np.argmax(p))]}," + ",".join(map(str, p))
        for i, (label, p) in enumerate(zip(labels, probs, strict=True))
    ]
    (folder / "predictions.csv").write_text("\n".join([header, *lines]) + "\n")
    return folder


def test_roc_of_two_classes_matches_the_hand_computed_area(tmp_path):
    # Positives (b) score 0.35 and 0.8, negatives 0.1 and 0.4: 3 of the 4 pairs are ordered
    # right, so the area is 0.75.
    probs = [[0.9, 0.1], [0.6, 0.4], [0.65, 0.35], [0.2, 0.8]]
    _eval_folder(tmp_path, ["a", "b"], ["a", "a", "b", "b"], probs)
    html = write_report(tmp_path).read_text()
    assert "<td>b vs a</td><td>0.7500</td>" in html
    assert html.count("vs a") == 1  # one curve for two classes


def test_roc_one_vs_rest_skips_a_class_without_videos(tmp_path):
    probs = [[0.7, 0.2, 0.1], [0.2, 0.7, 0.1], [0.5, 0.4, 0.1], [0.3, 0.6, 0.1]]
    _eval_folder(tmp_path, ["a", "b", "c"], ["a", "b", "a", "b"], probs)
    html = write_report(tmp_path).read_text()
    assert "<td>a vs rest</td><td>1.0000</td>" in html
    assert "<td>b vs rest</td><td>1.0000</td>" in html
    assert "No ROC curve for c: the split lacks its positive or negative videos." in html


def test_text_from_the_folder_is_escaped(tmp_path):
    evil = "<script>alert(1)</script>&"
    folder = _eval_folder(tmp_path, [evil, "ok"], [evil, "ok"], [[0.8, 0.2], [0.3, 0.7]])
    (folder / "confusion.csv").write_text(f'"true\\predicted","{evil}",ok\n"{evil}",1,0\nok,0,1\n')
    (folder / "metrics.json").write_text(json.dumps({"accuracy": 1.0, evil: 0.5}))
    html = write_report(tmp_path).read_text()
    assert "<script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;&amp;" in html


def test_prediction_without_a_face_shows_no_made_up_scores(folders, tmp_path):
    folder = tmp_path / "prediction"
    shutil.copytree(folders.prediction, folder)
    summary = json.loads((folder / "summary.json").read_text())
    summary.update(status="no_face", label=None, probabilities={}, frames_scored=0)
    (folder / "summary.json").write_text(json.dumps(summary))
    lines = (folder / "timeline.csv").read_text().splitlines()
    width = lines[0].count("p_")
    blank = [",".join(line.split(",")[:-width] + [""] * width) for line in lines[1:]]
    (folder / "timeline.csv").write_text("\n".join([lines[0], *blank]) + "\n")
    html = write_report(folder).read_text()
    assert "No video-level probabilities (status no_face)." in html
    assert f"0 of {len(blank)} frame(s) scored" in html
    assert "video probability" not in html


def test_malformed_files_name_the_line(folders, tmp_path):
    folder = _eval_folder(tmp_path, ["a", "b"], ["a", "b"], [[0.9, 0.1], [0.2, 0.8]])
    text = (folder / "predictions.csv").read_text().replace("0.8", "lots")
    (folder / "predictions.csv").write_text(text)
    with pytest.raises(ConfigError, match=r"predictions\.csv:3: missing or not a number"):
        write_report(tmp_path)


def test_experiment_shows_uar_war_and_each_class_recall(tmp_path):
    folds = [
        {
            "name": name,
            "run": f"folds/{name}",
            "metrics": {"uar": uar, "war": war},
            "per_class_recall": recall,
        }
        for name, uar, war, recall in (
            ("fold0", 0.75, 0.8, {"happy": 1.0, "sad": 0.5}),
            ("fold1", 0.5, 0.6, {"happy": 0.5, "sad": None}),
        )
    ]
    record = {
        "config": "c.yaml",
        "protocol": {"name": "official"},
        "metric_names": ["uar", "war"],
        "folds": folds,
        "summary": {"uar": {"mean": 0.625, "sem": 0.125, "n": 2}},
        "per_class_recall": {
            "happy": {"mean": 0.75, "sem": 0.25, "n": 2},
            "sad": {"mean": 0.5, "sem": 0.0, "n": 1},
        },
    }
    (tmp_path / "experiment.json").write_text(json.dumps(record))
    html = write_report(tmp_path, tmp_path / "report.html").read_text()
    folds_table = html[html.index('id="folds"') :]
    assert ">uar<" in folds_table and ">war<" in folds_table
    assert "0.6250 ± 0.1250 (n=2)" in folds_table
    recall = html[html.index('id="per-class-recall"') :]
    assert "<td>happy</td>" in recall and "0.7500 ± 0.2500 (n=2)" in recall
    assert "0.5000 ± 0.0000 (n=1)" in recall
