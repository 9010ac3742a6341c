"""The configs shipped inside the package: ``vidfer configs list|show|copy``."""

from __future__ import annotations

from pathlib import Path

import pytest

from vidfer.cli import main
from vidfer.config import load_config
from vidfer.config.shipped import SHIPPED_DIR, shipped_config, shipped_configs
from vidfer.errors import ConfigError

from helpers import CONFIGS


def test_the_package_holds_every_config_of_the_repository() -> None:
    assert [path.name for path in shipped_configs()] == sorted(
        p.name for p in CONFIGS.glob("*.yaml")
    )
    assert SHIPPED_DIR.resolve() == CONFIGS.resolve()  # the source tree's link
    assert shipped_config("dfew_resnet3d18") == shipped_config("dfew_resnet3d18.yaml")


def test_list_show_and_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["configs", "list"]) == 0
    assert "dfew_resnet3d18.yaml" in capsys.readouterr().out.split()
    assert main(["configs", "show", "dfew_resnet3d18"]) == 0
    assert capsys.readouterr().out == (CONFIGS / "dfew_resnet3d18.yaml").read_text()
    assert main(["configs", "copy", "dfew_resnet3d18.yaml"]) == 0
    copied = tmp_path / "configs" / "dfew_resnet3d18.yaml"
    # Copied into configs/, its ../data paths name ./data, as in the repository.
    manifest = load_config(copied).data.manifest
    assert manifest.resolve() == (tmp_path / "data" / "dfew" / "manifest_set1.csv").resolve()
    assert main(["configs", "copy", "dfew_resnet3d18.yaml"]) == 2
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["configs", "copy", "dfew_resnet3d18.yaml", "--force"]) == 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["configs", "show", "nope"], "nope: no shipped config by that name"),
        (["configs", "show", "../configs/dfew_resnet3d18.yaml"], "no shipped config by that name"),
        (["configs", "copy"], "give a config name"),
    ],
)
def test_bad_names_fail_in_one_line(argv: list[str], message: str, capsys) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_a_bare_shipped_name_says_to_copy_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"shipped config: `vidfer configs copy dfew_resnet3d18"):
        load_config("dfew_resnet3d18.yaml")
    with pytest.raises(ConfigError, match=r"^other\.yaml: config file not found$"):
        load_config("other.yaml")
