"""Training commands: clip models, frame CNNs and video-level attention."""

from __future__ import annotations

import argparse

from vidfer.cli.common import Add, console
from vidfer.errors import ConfigError, VidferError


def _cmd_train(args: argparse.Namespace) -> int:
    from vidfer.config import load_config
    from vidfer.io.run_folder import RunDir
    from vidfer.pipelines import train
    from vidfer.training.distributed import check_processes, from_environment, launch

    if args.resume:
        run = RunDir(args.resume)
        config, out, again = run.config(), run.folder, ["--resume", args.resume]
    else:
        if args.config is None or args.out is None:
            raise VidferError("train needs CONFIG and --out RUN (or --resume RUN)")
        config, out = load_config(args.config, args.set), args.out
        again = [args.config, "--out", args.out, *[f"--set={item}" for item in args.set]]
    place = from_environment()
    if args.nproc is not None:
        if args.nproc < 1:
            raise ConfigError(f"--nproc {args.nproc}: give 1 or more processes")
        if place.active:
            raise ConfigError("--nproc: already running under torchrun; drop the option")
        if args.nproc > 1:
            check_processes(config, args.nproc)  # fail here, before starting the processes
            return launch(["train", *again], args.nproc)
    result = train(config, out, resume=bool(args.resume))
    if not place.is_main:
        return 0
    last = result.metrics[-1] if result.metrics else {}
    summary = ", ".join(
        f"{k}={v:.4g}"
        for k, v in last.items()
        if isinstance(v, int | float) and k not in ("epoch", "seconds")
    )
    console.print(
        f"trained {result.epochs} epoch(s){' (early stop)' if result.stopped_early else ''}"
        f"; {summary}; run in {result.run.folder}"
    )
    return 0


def _cmd_video_attention(args: argparse.Namespace) -> int:
    from vidfer.pipelines.video_attention import VideoAttentionSettings, train_video_attention

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


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    train = add("train", _cmd_train, "train a model; writes a run folder")
    train.add_argument("config", nargs="?", help="run config YAML")
    train.add_argument("--out", help="run folder to create")
    train.add_argument("--resume", metavar="RUN", help="continue an interrupted run")
    train.add_argument(
        "--nproc",
        type=int,
        default=None,
        metavar="N",
        help="train with N processes on this machine (torchrun, DistributedDataParallel); "
        "for several machines run torchrun yourself (README)",
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option, e.g. --set train.epochs=5",
    )

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
