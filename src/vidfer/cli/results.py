"""Commands that use trained runs: evaluation, attention maps, fusion and prediction."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vidfer.cli.common import MODEL_DEVICE_HELP, Add, add_device_flag, console
from vidfer.errors import ConfigError


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


def _single_video(videos: list[str]) -> bool:
    """One video file or frame folder: ``vidfer predict VIDEO`` writes its outputs into one
    folder."""
    if len(videos) != 1:
        return False
    from vidfer.predict.inputs import is_frame_folder

    path = Path(videos[0])
    return (path.is_file() and path.suffix.lower() != ".csv") or is_frame_folder(path)


def _exported(args: argparse.Namespace) -> str | None:
    """The export folder ``--engine``/``--exported`` name (``RUN/export`` by default)."""
    if args.engine == "torch":
        if args.exported is not None:
            raise ConfigError("--exported needs --engine onnx or --engine torchscript")
        return None
    folder = args.exported or (str(Path(args.run) / "export") if args.run else None)
    if folder is None:
        raise ConfigError(f"--engine {args.engine} without --run needs --exported DIR")
    from vidfer.export import load_exported

    _, meta = load_exported(folder)
    if meta["format"] != args.engine:
        raise ConfigError(
            f"{folder}: holds a {meta['format']} export, not {args.engine}; run "
            f"'vidfer export --format {args.engine}' or pick --engine {meta['format']}"
        )
    return folder


def _cmd_predict(args: argparse.Namespace) -> int:
    exported = _exported(args)
    if _single_video(args.videos):
        from vidfer.predict import predict_video

        video = args.videos[0]
        path = Path(video)
        out = args.out or str(path if path.is_dir() else path.with_suffix("")) + "_vidfer"
        prediction = predict_video(
            video,
            out,
            args.run,
            chunk_frames=args.chunk_frames,
            annotate=args.annotate,
            exported=exported,
            frame_folder_fps=args.frame_folder_fps,
            device=args.device,
        )
        if prediction.label is None:
            console.print(f"{video}: {prediction.status}; written to {prediction.out_dir}")
        else:
            console.print(
                f"{video}: {prediction.label} "
                f"({prediction.probabilities[prediction.label]:.3f}); "
                f"timeline, summary and plot in {prediction.out_dir}"
            )
        return 0
    from vidfer.predict import predict_many

    result = predict_many(
        args.videos,
        args.out or "vidfer_predictions",
        args.run,
        chunk_frames=args.chunk_frames,
        retry_failed=args.retry_failed,
        annotate=args.annotate,
        exported=exported,
        frame_folder_fps=args.frame_folder_fps,
        device=args.device,
    )
    rate = result.frames / max(result.seconds, 1e-9)
    console.print(
        f"{result.predicted} video(s) predicted, {result.skipped} already done, "
        f"{result.failed} failed ({result.frames} frames, {rate:.1f} frames/s); "
        f"index: {result.index}"
    )
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from vidfer.export import export_model

    meta = export_model(args.run, args.format, args.out)
    console.print(f"exported as {args.format}: {meta.parent} ({meta.name} beside the model)")
    return 0


def _add_evaluate(add: Add) -> None:
    """``vidfer evaluate`` and ``vidfer attention-maps``."""
    evaluate = add("evaluate", _cmd_evaluate, "evaluate a trained run on whole videos")
    evaluate.add_argument("run", help="a trained run folder")
    evaluate.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="the split to score"
    )

    maps = add(
        "attention-maps",
        _cmd_attention_maps,
        "plot a trained attention module's maps over whole videos (attention_maps.png)",
    )
    maps.add_argument("run", help="a trained clip run with an attention module")
    maps.add_argument(
        "--split", default="test", choices=["train", "val", "test"], help="the videos' split"
    )
    maps.add_argument("--videos", nargs="*", default=[], help="video ids (default: first four)")


def _add_fuse(add: Add) -> None:
    """``vidfer fuse`` and its weight-search options."""
    fuse = add("fuse", _cmd_fuse, "decision-level fusion of trained runs, with a comparison report")
    fuse.add_argument("runs", nargs="+", help="two or more run folders (same dataset)")
    fuse.add_argument("--out", required=True, help="output folder")
    fuse.add_argument(
        "--method",
        choices=["search", "weights", "mean", "sci", "max", "network"],
        default="search",
        help="how the runs are combined",
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
    fuse.add_argument("--seed", type=int, default=0, help="seed of the random search")


def _add_predict(add: Add) -> None:
    """``vidfer predict``: inputs, output, engine and decoding options."""
    predict = add(
        "predict",
        _cmd_predict,
        "apply a trained model (or the pretrained FER2013 "
        "mini-Xception) to a video: per-frame timeline and video label",
    )
    predict.add_argument(
        "videos",
        nargs="+",
        metavar="VIDEO",
        help="video files, frame folders (folders of frame images), folders, glob patterns or "
        "manifest CSVs; one video writes its outputs into --out, more into --out/<video>/ "
        "with --out/index.csv",
    )
    predict.add_argument(
        "--run",
        default=None,
        help="a trained run folder, or a 'vidfer video-attention' output folder (default: "
        "FER2013 mini-Xception on faces)",
    )
    predict.add_argument(
        "--out",
        default=None,
        help="output folder (default VIDEO_vidfer/ for one video, vidfer_predictions/ for many)",
    )
    predict.add_argument(
        "--annotate",
        action="store_true",
        help="also write annotated.mp4: the video with the face box, top classes and a timeline "
        "strip drawn on it (H.264, the source's frames, timing and audio)",
    )
    predict.add_argument(
        "--engine",
        choices=["torch", "onnx", "torchscript"],
        default="torch",
        help="onnx / torchscript: score with the model 'vidfer export' wrote (RUN/export, or "
        "--exported DIR) on the CPU instead of the PyTorch one",
    )
    predict.add_argument(
        "--exported", default=None, metavar="DIR", help="the export folder for --engine"
    )
    predict.add_argument(
        "--retry-failed",
        action="store_true",
        help="many videos: score again those an earlier call into --out listed as failed",
    )
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
    add_device_flag(predict, MODEL_DEVICE_HELP)


def _add_export(add: Add) -> None:
    """``vidfer export``."""
    export = add(
        "export",
        _cmd_export,
        "export a clip run's model (temporally dense 3D models) or the default FER model as "
        "ONNX or TorchScript, with model.json (classes, input contract, preprocessing)",
    )
    export.add_argument("run", nargs="?", default=None, help="a trained clip run (default: FER)")
    export.add_argument(
        "--format",
        choices=["onnx", "torchscript"],
        required=True,
        help="the exported file's format",
    )
    export.add_argument("--out", default=None, help="output folder (default RUN/export)")


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    for add_command in (_add_evaluate, _add_fuse, _add_predict, _add_export):
        add_command(add)
