"""The paper tutorials run: every ``$ vidfer ...`` line of the ```console blocks of
docs/tutorials/<paper>.md is run, in the page's order, through the real ``vidfer`` entry point
(:func:`vidfer.cli.main`) in its own process per page, in a fresh folder laid out like the
repository (``configs/`` and ``docs/tutorials/configs/`` copied into it), so that a tutorial
that no longer runs fails here.

The pages keep their commands tiny (3 videos per class, 32-48 pixel frames, narrow networks,
a few epochs), so that starting Python with torch would cost more than most commands: one
Python imports torch, the other third-party libraries and ``vidfer.cli`` once, then runs each
page in a fork of itself (its own process and state; vidfer's other modules imported by the
page's commands, as ``vidfer`` does).
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
TUTORIALS = ROOT / "docs" / "tutorials"
PAPERS = ["ayral", "sun", "baccouche", "kahou", "xu"]


def console_commands(page: Path) -> list[str]:
    """The commands of a page's ```console blocks: each line starting with ``$ ``, joined with
    the lines that follow it while it ends with a backslash; other lines are output."""
    commands: list[str] = []
    in_block = continued = False
    for line in page.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not in_block:
            in_block = stripped == "```console"
            continue
        if stripped == "```":
            in_block = continued = False
        elif continued:
            commands[-1] = commands[-1][:-1].rstrip() + " " + stripped
        elif stripped.startswith("$ "):
            commands.append(stripped[2:])
        else:
            continue
        continued = in_block and commands[-1].endswith("\\")
    return commands


def repository_copy(folder: Path) -> Path:
    """A working folder holding what the tutorials read from a checkout: the configs."""
    shutil.copytree(ROOT / "configs", folder / "configs")
    shutil.copytree(TUTORIALS / "configs", folder / "docs" / "tutorials" / "configs")
    return folder


@pytest.mark.parametrize("paper", PAPERS)
def test_tutorial_has_vidfer_commands(paper: str) -> None:
    commands = console_commands(TUTORIALS / f"{paper}.md")
    assert len(commands) >= 3, commands
    for command in commands:
        assert shlex.split(command)[0] == "vidfer", command
    # Every file a command names in the tutorial configs exists.
    for command in commands:
        for word in shlex.split(command):
            if word.startswith("docs/tutorials/configs/"):
                assert (ROOT / word).is_file(), word


def test_console_blocks_are_parsed_with_continuations(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "```bash\n$ not run\n```\n"
        "```console\n$ vidfer a \\\n    --set x=1 \\\n    --set y=2\noutput line\n"
        "$ vidfer b\n```\n",
        encoding="utf-8",
    )
    assert console_commands(page) == ["vidfer a --set x=1 --set y=2", "vidfer b"]


# Runs pages (a JSON list of {"folder", "log", "commands"}): imports once, then forks a child per
# page, which runs the page's commands in its folder (output into the page's log) and exits with
# the first non-zero status; prints per page {"returncode", "cpu"} (the child's CPU seconds).
_PAGES = """
import json, os, sys, traceback
import av, matplotlib.pyplot, scipy.stats, sklearn.metrics, sklearn.svm, torch, torchvision
from vidfer.cli import main

results = []
for page in json.loads(sys.argv[1]):
    sys.stdout.flush()
    sys.stderr.flush()
    pid = os.fork()
    if pid == 0:
        status = 1
        try:  # the child never leaves this block but through os._exit
            log = os.open(page["log"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(log, 1)
            os.dup2(log, 2)
            os.chdir(page["folder"])
            for args in page["commands"]:
                print("$ vidfer " + " ".join(args), file=sys.stderr, flush=True)
                status = 1  # unless main returns: an exception (SystemExit too) fails the page
                status = main(args)
                if status:
                    break
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(status)
    _, wait_status, usage = os.wait4(pid, 0)
    cpu = usage.ru_utime + usage.ru_stime
    results.append({"returncode": os.waitstatus_to_exitcode(wait_status), "cpu": cpu})
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def tutorial_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The selected pages' commands run (one Python, a fork per page): per paper, its folder,
    commands, return code and output."""
    selected = [
        str(item.callspec.params["paper"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_tutorial_commands_run"
    ]
    pages: dict[str, dict[str, Any]] = {}
    for paper in dict.fromkeys(selected):
        folder = repository_copy(tmp_path_factory.mktemp(paper) / "checkout")
        commands = [shlex.split(command) for command in console_commands(TUTORIALS / f"{paper}.md")]
        log = folder.parent / "output.log"
        pages[paper] = {"folder": folder, "log": log, "commands": commands}
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    runs = [
        {"folder": str(page["folder"]), "log": str(page["log"]),
         "commands": [args[1:] for args in page["commands"]]}
        for page in pages.values()
    ]  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-c", _PAGES, json.dumps(runs)],
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    outcomes = json.loads(result.stdout.splitlines()[-1])
    for page, outcome in zip(pages.values(), outcomes, strict=True):
        page.update(outcome, output=page["log"].read_text(encoding="utf-8", errors="replace"))
    return pages


@pytest.mark.slow
@pytest.mark.parametrize("paper", PAPERS)
def test_tutorial_commands_run(paper: str, tutorial_runs: dict[str, dict[str, Any]]) -> None:
    page = tutorial_runs[paper]
    assert page["returncode"] == 0, page["output"][-6000:]
    for args in page["commands"]:
        if "--out" in args:
            assert (page["folder"] / args[args.index("--out") + 1]).exists(), args
    print(f"{paper}: {page['cpu']:.1f} s CPU in its commands")
