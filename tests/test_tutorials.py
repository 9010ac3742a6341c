"""The paper tutorials run: every ``$ vidfer ...`` line of the ```console blocks of
docs/tutorials/<paper>.md is run, in the page's order, through the real ``vidfer`` entry point
(:func:`vidfer.cli.main`), each in its own process, in a fresh folder laid out like the
repository (``configs/`` and ``docs/tutorials/configs/`` copied into it), so that a tutorial
that no longer runs fails here.

The pages keep their commands tiny (3 videos per class, 32-48 pixel frames, narrow networks,
a few epochs), so that starting Python with torch would cost more than most commands: this
process imports torch and the libraries the commands use once, and each command runs in a fork
of it (:func:`helpers.vidfer_forked`: its own process and state, as a ``vidfer`` typed by a
user).
"""

from __future__ import annotations

import importlib
import os
import resource
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from helpers import vidfer_forked

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


# What the pages' commands import, imported once here: each command's fork then has it.
_IMPORTED = ["av", "matplotlib.pyplot", "sklearn.svm", "vidfer.pipelines", "vidfer.predict"]


def _children_cpu() -> float:
    """CPU seconds of this process's ended (waited for) children."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.fixture(scope="module")
def tutorial_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, dict[str, Any]]:
    """The selected pages' commands run in order, each in its own process (a fork of this one,
    :func:`helpers.vidfer_forked`), a page stopping at its first failing command: per paper, its
    folder, commands, return code, output (each command's line, stdout and stderr) and the CPU
    seconds of its commands."""
    selected = [
        str(item.callspec.params["paper"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.originalname == "test_tutorial_commands_run"
    ]
    for module in _IMPORTED:
        importlib.import_module(module)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "OMP_NUM_THREADS": "1",
    }
    pages: dict[str, dict[str, Any]] = {}
    for paper in dict.fromkeys(selected):
        folder = repository_copy(tmp_path_factory.mktemp(paper) / "checkout")
        commands = [shlex.split(command) for command in console_commands(TUTORIALS / f"{paper}.md")]
        cpu, output, returncode = _children_cpu(), [], 0
        for args in commands:
            done = vidfer_forked(*args[1:], env=env, cwd=folder, timeout=1800)
            output.append(f"$ {shlex.join(args)}\n{done.stdout}{done.stderr}")
            returncode = done.returncode
            if returncode:
                break
        pages[paper] = {
            "folder": folder,
            "commands": commands,
            "returncode": returncode,
            "output": "".join(output),
            "cpu": _children_cpu() - cpu,
        }
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
