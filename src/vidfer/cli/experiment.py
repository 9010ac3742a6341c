"""Experiment command: every fold of an evaluation protocol, and mean ± standard error."""

from __future__ import annotations

import argparse

from rich.table import Table

from vidfer.cli.common import Add, console


def _cmd_experiment(args: argparse.Namespace) -> int:
    from vidfer.config import load_config
    from vidfer.config.protocol import choose_protocol
    from vidfer.experiment import run_experiment

    protocol = None
    if args.protocol is not None or args.folds is not None or args.repeats is not None:
        section = load_config(args.config, args.set).protocol
        protocol = choose_protocol(section, args.protocol, args.folds, args.repeats)
    result = run_experiment(args.config, args.out, protocol=protocol, overrides=args.set)
    table = Table("fold", "train", "val", "test", *result.record["metric_names"])
    for fold in result.record["folds"]:
        values = [fold["metrics"][name] for name in result.record["metric_names"]]
        table.add_row(
            fold["name"],
            str(fold["train"]),
            str(fold["val"]),
            str(fold["test"]),
            *["-" if v is None else f"{v:.4f}" for v in values],
        )
    console.print(table)
    names = result.record["metric_names"]
    summary, pooled = result.record["summary"], result.record["pooled"]
    for name, value in ((name, summary[name]) for name in names if name in summary):
        console.print(f"{name}: {value['mean']:.4f} ± {value['sem']:.4f} (n={value['n']} folds)")
    for label, value in result.record["per_class_recall"].items():
        console.print(
            f"recall of {label}: {value['mean']:.4f} ± {value['sem']:.4f} (n={value['n']} folds)"
        )
    for name, value in ((name, pooled[name]) for name in names if name in pooled):
        console.print(
            f"pooled {name} (all test videos of a repeat together): {value['mean']:.4f}"
            + (f" ± {value['sem']:.4f} (n={value['n']} repeats)" if value["n"] > 1 else "")
        )
    console.print(
        f"{len(result.trained)} fold(s) trained, {len(result.reused)} already finished; "
        f"wrote {result.folder / 'experiment.json'}"
    )
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    experiment = add(
        "experiment",
        _cmd_experiment,
        "train and test every fold of an evaluation protocol (resumable), mean ± s.e.",
    )
    experiment.add_argument("config", help="run config (.yaml)")
    experiment.add_argument("--out", required=True, help="experiment folder")
    experiment.add_argument(
        "--protocol",
        default=None,
        help="holdout, kfold, subject_kfold, loso, official or swap "
        "(default: the config's protocol section)",
    )
    experiment.add_argument("--folds", type=int, default=None, help="kfold, subject_kfold: k")
    experiment.add_argument("--repeats", type=int, default=None, help="runs over seeds")
    experiment.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config option",
    )
