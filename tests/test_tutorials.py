"""The paper tutorials run: every ``$ vidfer ...`` line of the ```console blocks of
docs/tutorials/<paper>.md is run, in the page's order, through the real ``vidfer`` entry point
in one subprocess per page (:func:`helpers.run_vidfer_session`) in a fresh folder laid out like
the repository (``configs/`` and ``docs/tutorials/configs/`` copied into it), so that a
tutorial that no longer runs fails here.

The pages keep their commands tiny (3 videos per class, 32-48 pixel frames, narrow networks,
a few epochs); one Python per page, as starting Python with torch would cost more than most
commands.
"""

from __future__ import annotations

import os
import resource
import shlex
import shutil
import sys
from pathlib import Path

import pytest

from helpers import run_vidfer_session

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


@pytest.mark.slow
@pytest.mark.parametrize("paper", PAPERS)
def test_tutorial_commands_run(paper: str, tmp_path: Path) -> None:
    folder = repository_copy(tmp_path / "checkout")
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    commands = [shlex.split(command) for command in console_commands(TUTORIALS / f"{paper}.md")]
    result = run_vidfer_session([args[1:] for args in commands], folder, env)
    assert result.returncode == 0, f"{result.stdout[-2000:]}{result.stderr[-4000:]}"
    for args in commands:
        if "--out" in args:
            assert (folder / args[args.index("--out") + 1]).exists(), args
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    print(f"{paper}: {cpu:.1f} s CPU in its commands")
