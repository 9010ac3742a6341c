"""The documentation site: ``mkdocs build --strict`` passes (a broken link, anchor or API reference
fails it), and the generated references cover every command, config section and public name."""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

import vidfer

ROOT = Path(__file__).resolve().parents[1]


def _hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "docs/hooks/reference.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The site built once with ``mkdocs build --strict``."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(ROOT / "mkdocs.yml"),
         "-d", str(out)],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    return out


def _ids(page: Path) -> set[str]:
    return set(re.findall(r'id="([^"]+)"', page.read_text(encoding="utf-8")))


@pytest.mark.slow
def test_every_command_and_option_has_an_entry(site: Path) -> None:
    hooks = _hooks()
    page = site / "reference/cli/index.html"
    ids, text = _ids(page), page.read_text(encoding="utf-8")
    commands = hooks.cli_commands()
    assert {"vidfer train", "vidfer predict", "vidfer report", "vidfer live"} <= set(commands)
    for name, parser in commands.items():
        assert hooks.cli_anchor(name) in ids, name
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                continue
            for flag in action.option_strings:
                assert flag in text, (name, flag)
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


@pytest.mark.slow
def test_every_config_section_and_option_has_an_entry(site: Path) -> None:
    hooks = _hooks()
    ids = _ids(site / "reference/configuration/index.html")
    sections = dict(hooks.config_sections())
    assert {"data", "data.prepare.faces", "train", "eval.views", "frames.extractors[]"} <= set(
        sections
    )
    for path, model in sections.items():
        assert hooks._anchor(path or "top-level") in ids, path
        docs = hooks.attribute_docs(model)
        for name, field in model.model_fields.items():
            described = field.description or docs.get(name) or hooks._sections_in(field.annotation)
            assert described, f"{model.__name__}.{name} has no description (its Attributes:)"


@pytest.mark.slow
def test_every_public_name_is_in_the_api_reference(site: Path) -> None:
    ids = _ids(site / "api/index.html")
    homes = _hooks().public_homes()
    assert set(homes) == set(vidfer.__all__)
    for name, target in homes.items():
        assert f"vidfer.{name}" in ids, name
        assert target in ids, f"{target} (vidfer.{name}) was not rendered"


@pytest.mark.slow
def test_every_layer_of_the_architecture_has_an_api_page(site: Path) -> None:
    architecture = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    layers = architecture.split("## Layers", 1)[1].split("```")[1]
    modules = set()
    for line in layers.splitlines():
        listed = re.match(r"vidfer\.[\w.]+(?:\s*\|\s*[\w.]+)*", line)  # "vidfer.io | vidfer.device"
        names = [part.strip() for part in listed.group(0).split("|")] if listed else []
        modules |= {name if name.startswith("vidfer.") else f"vidfer.{name}" for name in names}
    rendered = set().union(*(_ids(page) for page in (site / "api").glob("*/index.html")))
    assert len(modules) > 15
    for module in sorted(modules):
        assert module in rendered, f"{module}: no API page (docs/api/*.md)"


@pytest.mark.slow
def test_readme_is_a_landing_page_and_the_home(site: Path) -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 150
    home = (site / "index.html").read_text(encoding="utf-8")
    assert "A five-minute tour" in home and "assets/timeline.png" in home
    assert (site / "benchmarks/index.html").exists()
