"""Training commands: clip models, frame CNNs and video-level attention."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from vidfer.cli.common import Add, console
from vidfer.config.base import Section
from vidfer.errors import ConfigError, VidferError

S = TypeVar("S", bound=Section)


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


def _settings(args: argparse.Namespace, section: type[S], command: str, extra: dict[str, Any]) -> S:
    """A command's settings: ``--config FILE`` if given, then the flags given on the line."""
    from vidfer.config import parse_section, read_yaml_mapping

    raw = read_yaml_mapping(args.config) if args.config else {}
    given = {name: getattr(args, name) for name in section.model_fields if name in vars(args)}
    raw.update({name: value for name, value in {**given, **extra}.items() if value is not None})
    source = f"{command} ({args.config} and flags)" if args.config else command
    return parse_section(section, raw, source=source)


def _cmd_video_attention(args: argparse.Namespace) -> int:
    from vidfer.config import VideoAttentionSettings
    from vidfer.pipelines.video_attention import train_video_attention

    settings = _settings(
        args, VideoAttentionSettings, "video-attention", {"range_frames": args.range}
    )
    metrics = train_video_attention(args.run, args.out, settings, resume=args.resume)
    console.print(
        f"video-level attention: accuracy {metrics['accuracy']:.4f} over {metrics['count']} "
        f"held-out video(s); written to {args.out}"
    )
    return 0


def _params(items: list[str]) -> dict[str, Any] | None:
    """``--param KEY=VALUE`` options as a mapping (values parsed as YAML); None without any."""
    import yaml

    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--param {item!r}: write KEY=VALUE, e.g. --param kernel=5")
        try:
            params[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError:
            raise ConfigError(f"--param {item!r}: the value is not valid YAML") from None
    return params or None


def _cmd_train_frames(args: argparse.Namespace) -> int:
    from vidfer.config import FrameTrainSettings
    from vidfer.training.frames import train_frames

    settings = _settings(args, FrameTrainSettings, "train-frames", {"params": _params(args.param)})
    if args.model is None and "model" not in settings.model_fields_set:
        raise ConfigError("train-frames: give the frame CNN with --model (or model: in --config)")
    result = train_frames(args.source, args.out, settings, resume=args.resume)
    scores = ", ".join(
        f"{split} accuracy {metrics['accuracy']:.4f}"
        for split, metrics in result.evaluations.items()
    )
    console.print(
        f"trained {result.epochs} epoch(s){' (early stop)' if result.stopped_early else ''}; "
        f"{scores}; run in {result.folder}"
    )
    return 0


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config",
        metavar="YAML",
        help="a file of the command's settings (the options below, by name); flags override it",
    )
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run in --out (give the same source and settings)",
    )


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
        "for several machines run torchrun yourself (docs/guide/distributed.md)",
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
    _config_option(video_attention)
    video_attention.add_argument("--range", type=int, help="frames per window (128)")
    video_attention.add_argument("--epochs", type=int, help="(40)")
    video_attention.add_argument("--patience", type=int, help="(10)")
    video_attention.add_argument("--batch-size", type=int, help="(8)")
    video_attention.add_argument("--lr", type=float, help="(0.001)")
    video_attention.add_argument("--heads", type=int, help="(4)")
    video_attention.add_argument("--d-att", type=int, help="(64)")
    video_attention.add_argument(
        "--positional", action="store_true", default=None, help="sinusoidal positional encoding"
    )
    video_attention.add_argument("--seed", type=int, help="(0)")

    frames = add(
        "train-frames",
        _cmd_train_frames,
        "train a frame CNN on still images: a folder per class, a FER2013 CSV, or the frames "
        "of a run config's prepared videos",
    )
    frames.add_argument("source", help="image folder, FER2013 .csv or run config .yaml")
    frames.add_argument(
        "--model", help="kahou_cnn, deep_cnn, mini_xception, vgg16, resnet18 or resnet10"
    )
    frames.add_argument("--out", required=True, help="run folder to create")
    _config_option(frames)
    frames.add_argument("--epochs", type=int, help="(30)")
    frames.add_argument("--batch-size", type=int, help="(64)")
    frames.add_argument("--lr", type=float, help="(0.001)")
    frames.add_argument("--optimizer", choices=["adamw", "sgd"], help="(adamw)")
    frames.add_argument("--weight-decay", type=float, help="(0.0001)")
    frames.add_argument("--patience", type=int, help="(10)")
    frames.add_argument(
        "--monitor", choices=["loss", "accuracy"], help="what picks the best epoch (loss)"
    )
    frames.add_argument("--seed", type=int, help="(0)")
    frames.add_argument("--val-fraction", type=float, help="when no val split (0.1)")
    frames.add_argument("--every", type=int, help="videos: one frame in N (1)")
    frames.add_argument("--rotation", type=float, help="max augmentation degrees (0)")
    frames.add_argument("--init", help="'pretrained' or a frame run to fine-tune")
    frames.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a model parameter (YAML value), e.g. --param kernel=5 --param maps=[64,64,128]",
    )
