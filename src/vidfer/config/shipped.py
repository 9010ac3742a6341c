"""The run configs shipped inside the package (``vidfer configs list|show|copy``).

The repository's ``configs/`` folder is the package's ``vidfer/configs/`` (a symbolic link in the
source tree, copied as files into the wheel), so an installed vidfer holds every config the
repository has. Their data paths (``../data/<dataset>/manifest.csv``) are relative to the config's
folder, as in the repository: copied into ``./configs/`` (:func:`shipped_config` gives the file to
copy), a config reads its data from ``./data/``.
"""

from __future__ import annotations

from pathlib import Path

from vidfer.errors import ConfigError

SHIPPED_DIR = Path(__file__).resolve().parent.parent / "configs"
"""The folder of the shipped configs (in the source tree, a link to the repository's configs/)."""


def shipped_configs() -> list[Path]:
    """Every shipped config file, sorted by name."""
    return sorted(SHIPPED_DIR.glob("*.yaml"))


def shipped_config(name: str) -> Path:
    """The shipped config called ``name`` (with or without ``.yaml``).

    Raises:
        ConfigError: if there is none by that name.
    """
    path = SHIPPED_DIR / (name if name.endswith(".yaml") else f"{name}.yaml")
    if Path(name).name != name or not path.is_file():
        raise ConfigError(
            f"{name}: no shipped config by that name; `vidfer configs list` names them"
        )
    return path


def is_shipped_name(path: Path) -> bool:
    """Whether ``path`` is a bare file name that a shipped config has."""
    return path.parent == Path(".") and (SHIPPED_DIR / path.name).is_file()
