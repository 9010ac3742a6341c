"""Commands that use trained runs: evaluation, attention maps, fusion and prediction."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidfer.cli.common import Add, console


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidfer.pipelines import evaluate_run

    metrics = evaluate_run(args.run, args.split)
    console.print(
        f"{args.split}: accuracy (WAR) {metrics['war']:.4f}, mean class accuracy (UAR) "
        f"{metrics['uar']:.4f} over {metrics['count']} video(s); "
        f"written to {Path(args.run) / f'eval_{args.split}'}"
    )
    return 0


def _cmd_attention_maps(args: argparse.Namespace) -> int:
    from vidfer.evaluation.attention_maps import attention_maps_of_run

    console.print(f"wrote {attention_maps_of_run(args.run, args.split, args.videos)}")
    return 0


def _cmd_fuse(args: argparse.Namespace) -> int:
    from vidfer.fusion.fuse import FusionSpec, fuse_runs
    from vidfer.fusion.random_search import SearchSettings

    spec = FusionSpec(
        runs=[Path(run) for run in args.runs],
        method=args.method,
        weights=args.weights,
        search_split=args.search_split,
        search_on_test=args.search_on_test,
        search_on_stopping=args.search_on_stopping_split,
        eval_splits=tuple(args.splits),
        search=SearchSettings(samples=args.samples, block=args.block, seed=args.seed),
    )
    comparison = fuse_runs(spec, args.out)
    record = json.loads((Path(args.out) / "fusion.json").read_text(encoding="utf-8"))
    for warning in record.get("warnings", []):  # first, as in the report
        console.print(warning)
    for split, rows in comparison.items():
        singles = [row["accuracy"] for name, row in rows.items() if not name.startswith("fusion")]
        fused = next(row["accuracy"] for name, row in rows.items() if name.startswith("fusion"))
        console.print(f"{split}: fused accuracy {fused:.4f} (best single run {max(singles):.4f})")
    console.print(f"written to {args.out} (comparison.md, fusion.json, eval_<split>/)")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from vidfer.predict import predict_video

    video = Path(args.video)
    out = args.out or str(video if video.is_dir() else video.with_suffix("")) + "_vidfer"
    prediction = predict_video(
        video,
        out,
        args.run,
        chunk_frames=args.chunk_frames,
        frame_folder_fps=args.frame_folder_fps,
    )
    if prediction.label is None:
        console.print(f"{args.video}: {prediction.status}; written to {prediction.out_dir}")
    else:
        console.print(
            f"{args.video}: {prediction.label} "
            f"({prediction.probabilities[prediction.label]:.3f}); "
            f"timeline, summary and plot in {prediction.out_dir}"
        )
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    evaluate = add("evaluate", _cmd_evaluate, "evaluate a trained run on whole videos")
    evaluate.add_argument("run")
    evaluate.add_argument("--split", default="test", choices=["train", "val", "test"])

    maps = add(
        "attention-maps",
        _cmd_attention_maps,
        "plot a trained attention module's maps over whole videos (attention_maps.png)",
    )
    maps.add_argument("run")
    maps.add_argument("--split", default="test", choices=["train", "val", "test"])
    maps.add_argument("--videos", nargs="*", default=[], help="video ids (default: first four)")

    fuse = add("fuse", _cmd_fuse, "decision-level fusion of trained runs, with a comparison report")
    fuse.add_argument("runs", nargs="+", help="two or more run folders (same dataset)")
    fuse.add_argument("--out", required=True, help="output folder")
    fuse.add_argument(
        "--method", choices=["search", "weights", "mean", "sci", "max", "network"], default="search"
    )
    fuse.add_argument(
        "--weights", type=float, nargs="+", default=None, help="per run (--method weights)"
    )
    fuse.add_argument("--search-split", default="val", help="split the weights are searched on")
    fuse.add_argument(
        "--search-on-test",
        action="store_true",
        help="allow --search-split test (the report's first line then says its test is optimistic)",
    )
    fuse.add_argument(
        "--search-on-stopping-split",
        action="store_true",
        help="allow runs that early-stopped (not trained) on the search split, as Kahou et al. "
        "(the report's first line then says so)",
    )
    fuse.add_argument(
        "--splits", nargs="+", default=["val", "test"], help="splits to fuse and report"
    )
    fuse.add_argument("--samples", type=int, default=100_000, help="uniform random-search draws")
    fuse.add_argument("--block", type=int, default=100_000, help="local draws per sigma (0: none)")
    fuse.add_argument("--seed", type=int, default=0)

    predict = add(
        "predict",
        _cmd_predict,
        "apply a trained model (or the pretrained FER2013 "
        "mini-Xception) to a video: per-frame timeline and video label",
    )
    predict.add_argument("video", help="a video file, or a folder of frame images")
    predict.add_argument(
        "--run", default=None, help="a trained run folder (default: FER2013 mini-Xception on faces)"
    )
    predict.add_argument("--out", default=None, help="output folder (default VIDEO_vidfer/)")
    predict.add_argument(
        "--chunk-frames",
        type=int,
        default=None,
        help="frames decoded and scored at a time (default: the run's eval.chunk_frames); "
        "the scores do not depend on it, the memory does",
    )
    predict.add_argument(
        "--frame-folder-fps",
        type=float,
        default=None,
        help="frame rate of a frame folder (default: the run's data.frame_folder_fps, else 25)",
    )
