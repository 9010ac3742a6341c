"""Data commands: synthetic datasets, manifests and the prepared store."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vidfer.cli.common import Add, add_device_flag, console
from vidfer.errors import ConfigError


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
    from vidfer.data.adapters import write_manifest

    written = write_manifest(
        args.root,
        args.layout,
        out=args.out,
        split_number=args.split_number,
        variant=args.variant,
    )
    console.print(f"wrote {written}")
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
                "frame_folder_fps": args.frame_folder_fps,
            }
        )
    else:
        data = load_config(source, args.set).data
    if args.device is not None:  # for torchrun's ranks too
        if data.prepare.faces is None:
            raise ConfigError(
                "--device moves the face detector, and this preparation detects no faces: "
                "add --faces (manifest mode) or data.prepare.faces (config), or drop --device"
            )
        data = data.model_copy(update={"prepare": data.prepare.with_face_device(args.device)})
    if "WORLD_SIZE" in os.environ:  # launched by torchrun: each process prepares its share
        from vidfer.training.distributed import prepare_under_torchrun

        if not prepare_under_torchrun(data):
            return 0  # rank 0 reports
    dataset = load_dataset(data)
    rejects = dataset.rejects()
    console.print(
        f"{len(dataset.items)} video(s) ready in {dataset.store.folder} "
        f"({dataset.result.decoded} decoded now, {len(rejects)} rejected"
        + (f": see {dataset.store.folder / 'rejects.jsonl'})" if rejects else ")")
    )
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    synth = add("synth", _cmd_synth, "write a synthetic dataset (mp4 files + manifest.csv)")
    synth.add_argument("name", choices=["expressions", "actions"], help="which dataset")
    synth.add_argument("out", help="output folder")
    synth.add_argument(
        "--videos-per-class", type=int, default=None, help="(actions 20, expressions 12)"
    )
    synth.add_argument("--seed", type=int, default=0, help="seed of the generated videos")
    synth.add_argument(
        "--scenes",
        action="store_true",
        help="actions only: classes walk/jump x town/park, needing appearance and motion",
    )

    manifest = add(
        "manifest",
        _cmd_manifest,
        "write manifest.csv for a dataset in its own layout (default: ROOT/<label>/<video>)",
    )
    manifest.add_argument("root", help="the dataset's folder, as distributed")
    manifest.add_argument(
        "--layout",
        default="folder",
        help="folder (default), afew, gemep, hmdb51, ucf101, kth, unbc, biovid, dfew, ferv39k, "
        "mafw, ckplus, oulu, ravdess or cremad (vidfer.data.adapters.LAYOUTS; docs/datasets.md)",
    )
    manifest.add_argument(
        "--split-number",
        type=int,
        default=None,
        help="official split or fold (hmdb51, ucf101: 1-3; dfew, mafw: 1-5)",
    )
    manifest.add_argument(
        "--variant",
        default=None,
        help="kth: kth1 | kth2 (sub-sequences); biovid: bl1_pa4 | bl1_pa34; "
        "dfew: frames | frames_16f | original; mafw: clips | frames; ckplus: sequence | last3; "
        "ravdess: speech | song | speech_song",
    )
    manifest.add_argument("--out", default=None, help="CSV path (default ROOT/manifest.csv)")

    prepare = add("prepare", _cmd_prepare, "decode a dataset once into the prepared store")
    prepare.add_argument("source", help="a run config (.yaml) or a manifest (.csv)")
    prepare.add_argument("--store", default=None, help="store folder (manifest mode)")
    prepare.add_argument("--size", type=int, default=112, help="short side (manifest mode)")
    prepare.add_argument("--no-crop", action="store_true", help="keep the aspect ratio")
    prepare.add_argument("--fps", type=float, default=None, help="target frame rate")
    prepare.add_argument("--grayscale", action="store_true", help="store gray frames")
    prepare.add_argument(
        "--faces",
        action="store_true",
        help="store aligned crops of the main face (MTCNN), SIZE x SIZE",
    )
    prepare.add_argument("--workers", type=int, default=2, help="sandboxed decoding workers")
    add_device_flag(
        prepare,
        "where MTCNN detects the faces (sets data.prepare.faces.device; auto: the GPU when there "
        "is one); the store is the same on any device",
    )
    prepare.add_argument(
        "--frame-folder-fps",
        type=float,
        default=25.0,
        help="frame rate of the manifest's frame folders (manifest mode; default 25)",
    )
    prepare.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option (config mode)",
    )
