"""``vidfer report``: the self-contained HTML report of a run, experiment, fusion or prediction."""

from __future__ import annotations

import argparse

from vidfer.cli.common import Add, console


def _cmd_report(args: argparse.Namespace) -> int:
    from vidfer.viz.report import write_report

    console.print(f"wrote {write_report(args.folder, args.out)}")
    return 0


def register(add: Add) -> None:
    """Add this module's subcommands to the parser."""
    report = add(
        "report",
        _cmd_report,
        "write a self-contained report.html (plots embedded) of a run, experiment, fusion or "
        "prediction folder",
    )
    report.add_argument("folder", help="the --out folder of train, experiment, fuse or predict")
    report.add_argument("--out", default=None, help="HTML file (default FOLDER/report.html)")
