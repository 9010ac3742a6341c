"""Every command of the README runs: the five-minute tour's ``vidfer`` commands one after the
other (through the real entry point, in one Python), then its Python example, in a fresh
folder holding a copy of ``configs/``."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import run_vidfer_session

ROOT = Path(__file__).resolve().parents[1]

# The README's commands this test does not run, and why.
NOT_RUN = {
    "make demo": "vidfer demo trains 25 epochs (minutes); make demo is run by hand",
    "make test": "runs this test suite itself",
    "pip install": "installs packages; the packaging tests install the wheel",
}


def blocks(language: str) -> list[str]:
    """The README's fenced code blocks of one language."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def commands() -> list[list[str]]:
    """Each command line of the README's bash blocks, split, without comments."""
    found = []
    for block in blocks("bash"):
        for line in block.splitlines():
            words = shlex.split(line, comments=True)
            if words:
                found.append(words)
    return found


def test_every_readme_command_is_run_or_skipped_with_a_reason() -> None:
    for words in commands():
        line = " ".join(words)
        skipped = any(line.startswith(prefix) for prefix in NOT_RUN)
        assert skipped or words[0] == "vidfer", f"README command not run by the test: {line}"
    assert blocks("python"), "the README's Python example is gone"


@pytest.mark.slow
def test_readme_tour_and_python_example_run(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "configs", tmp_path / "configs")
    tour = [words[1:] for words in commands() if words[0] == "vidfer"]
    # One intra-op thread, as the test processes (tests/conftest.py): torch's default threads
    # on two shared cores spin against each other (training took three times the CPU).
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = run_vidfer_session(tour, tmp_path, env)  # one Python for the six commands
    assert result.returncode == 0, result.stderr[-3000:]
    assert (tmp_path / "runs/actions/report.html").exists()
    for index, code in enumerate(blocks("python")):
        script = tmp_path / f"readme_example_{index}.py"
        script.write_text(code, encoding="utf-8")
        result = subprocess.run(
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert result.returncode == 0, f"README Python example {index}\n{result.stderr[-3000:]}"
