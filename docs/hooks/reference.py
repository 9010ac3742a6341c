"""MkDocs hook: the pages generated at build time from the code and the repository.

- ``reference/configuration.md``: every section and option of the run config (the pydantic models
  of :mod:`vidfer.config`): type, default, and the description from the section's docstring
  (its ``Attributes:``) or the field's own ``description``;
- ``reference/cli.md``: every command and option of the ``vidfer`` argparse parser, with its help;
- in ``api/index.md``, at its marker: every name of ``vidfer.__all__``, documented from its home
  module;
- ``index.md``: README.md, the landing page, its links made relative to the site;
- ``benchmarks.md``: benchmarks/README.md as it is, its links made to point into the repository.

Registered under ``hooks:`` in mkdocs.yml. The checkout's own ``src/`` comes first on the import
path, so the pages describe the code beside them, not an installed copy.
"""

from __future__ import annotations

import argparse
import html
import re
import sys
import types
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mkdocs.config.defaults import MkDocsConfig
from mkdocs.exceptions import PluginError
from mkdocs.structure.files import File, Files
from mkdocs.structure.pages import Page

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

from griffe import Docstring, DocstringSectionKind  # noqa: E402
from pydantic import BaseModel  # noqa: E402
from pydantic.fields import FieldInfo  # noqa: E402
from pydantic_core import PydanticUndefined  # noqa: E402

HOME_PAGE = "index.md"
API_PAGE = "api/index.md"
API_MARKER = "<!-- vidfer.__all__"
CONFIG_PAGE = "reference/configuration.md"
CLI_PAGE = "reference/cli.md"
BENCHMARKS_PAGE = "benchmarks.md"

# Options typed as a free mapping that one section validates (``data.prepare.faces``).
MAPPED_SECTIONS = {("PrepareConfig", "faces"): "vidfer.config.faces.FaceConfig"}


def on_files(files: Files, config: MkDocsConfig) -> Files:
    """Add the generated pages to the site."""
    for path, text in (
        (CONFIG_PAGE, config_reference()),
        (CLI_PAGE, cli_reference()),
        (BENCHMARKS_PAGE, benchmarks_page()),
        (HOME_PAGE, home_page()),
    ):
        files.append(File.generated(config, path, content=text))
    return files


# ---------------------------------------------------------------- public API


def public_homes() -> dict[str, str]:
    """Each name of ``vidfer.__all__`` and the object that documents it (``module.name``)."""
    import vidfer

    return {name: f"{vidfer._HOMES.get(name, 'vidfer.registry')}.{name}" for name in vidfer.__all__}


def _literal_block(doc: str) -> list[str]:
    """The indented example after the first ``::`` of a docstring, dedented."""
    block: list[str] = []
    for line in doc.split("::", 1)[1].splitlines()[1:]:
        if line.strip() and not line.startswith("    "):
            break
        block.append(line[4:])
    return [line for line in "\n".join(block).strip("\n").splitlines()]


def api_index() -> str:
    """The generated part of the public API page: vidfer's example and every stable name."""
    import vidfer

    lines = ["```python", *_literal_block(vidfer.__doc__ or ""), "```", ""]
    for name, target in public_homes().items():
        lines += [
            f"## `vidfer.{name}` {{#vidfer.{name}}}",
            "",
            f"::: {target}",
            "    options:",
            "      show_root_heading: false",
            "      show_submodules: false",
            "      heading_level: 3",
            "",
        ]
    return "\n".join(lines)


def on_page_markdown(markdown: str, page: Page, config: MkDocsConfig, files: Files) -> str:
    """Fill the public API page's marker with :func:`api_index`."""
    if page.file.src_uri != API_PAGE:
        return markdown
    marker = re.search(re.escape(API_MARKER) + r".*?-->", markdown, flags=re.S)
    if marker is None:
        raise PluginError(f"docs/{API_PAGE}: the marker {API_MARKER!r}...--> is missing")
    return markdown[: marker.start()] + api_index() + markdown[marker.end() :]


# ---------------------------------------------------------------- configuration reference


def config_sections() -> list[tuple[str, type[BaseModel]]]:
    """Every section a run config or a step's settings file can hold, as (YAML path, model)."""
    from vidfer.config import RunConfig
    from vidfer.config.steps import FrameTrainSettings, VideoAttentionSettings

    found: list[tuple[str, type[BaseModel]]] = []
    roots = (
        ("", RunConfig),
        ("train-frames --config", FrameTrainSettings),
        ("video-attention --config", VideoAttentionSettings),
    )
    for name, model in roots:
        found.extend(_walk(name, model))
    return found


def _walk(path: str, model: type[BaseModel]) -> Iterator[tuple[str, type[BaseModel]]]:
    yield path, model
    for name, field in model.model_fields.items():
        child = f"{path}.{name}" if path else name
        mapped = MAPPED_SECTIONS.get((model.__name__, name))
        if mapped is not None:
            module, _, cls = mapped.rpartition(".")
            yield from _walk(child, getattr(__import__(module, fromlist=[cls]), cls))
        for section in _sections_in(field.annotation):
            suffix = "[]" if typing.get_origin(field.annotation) is list else ""
            yield from _walk(child + suffix, section)


def _sections_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    return [s for arg in typing.get_args(annotation) for s in _sections_in(arg)]


def attribute_docs(model: type[BaseModel]) -> dict[str, str]:
    """The ``Attributes:`` of a model's docstring and its parents', by option name."""
    docs: dict[str, str] = {}
    for cls in reversed(model.__mro__):
        if not (isinstance(cls, type) and issubclass(cls, BaseModel)) or not cls.__doc__:
            continue
        parsed = Docstring(_dedent_doc(cls.__doc__)).parse("google")
        for section in parsed:
            if section.kind is DocstringSectionKind.attributes:
                for item in section.value:
                    docs[item.name] = " ".join(item.description.split())
    return docs


def _dedent_doc(doc: str) -> str:
    import inspect

    return inspect.cleandoc(doc)


def _type_name(annotation: Any) -> str:
    if annotation is type(None):
        return "None"
    if annotation is Ellipsis:
        return "..."
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return " | ".join(_type_name(a) for a in typing.get_args(annotation))
    origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(annotation))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{getattr(origin, '__name__', str(origin))}[{args}]"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "section"
    return getattr(annotation, "__name__", str(annotation).replace("typing.", ""))


def _default(field: FieldInfo) -> str:
    if field.is_required():
        return "required"
    factory = field.default_factory
    value = field.default if factory is None else factory()  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel):
        return "its defaults"
    return f"`{value!r}`" if not isinstance(value, Path) else f"`{value}`"


def _cell(text: str) -> str:
    """Text for a Markdown table cell: a code span holding ``|`` becomes HTML (a table would
    split it, and ``\\|`` is not unescaped inside a code span), other pipes are escaped."""

    def code(match: re.Match[str]) -> str:
        inner = html.escape(match.group(1), quote=False).replace("|", "&#124;")
        return f"<code>{inner}</code>"

    text = re.sub(r"`([^`]*\|[^`]*)`", code, text.replace("\n", " "))
    return text.replace("|", "\\|")


def markdown(text: str) -> str:
    """A docstring's reStructuredText roles and literals as Markdown code."""
    text = re.sub(r":[a-z]+:`~?([^`]+)`", r"`\1`", text).replace("``", "`")
    parts = text.split("`")  # the odd parts are code, which Markdown escapes itself
    return "`".join(
        part if index % 2 else part.replace("<", "&lt;").replace(">", "&gt;")
        for index, part in enumerate(parts)
    )


def config_reference() -> str:
    """The configuration reference page."""
    lines = [
        "# Configuration reference",
        "",
        "Generated from the pydantic models of `vidfer.config` when the site is built. A run",
        "config is one YAML file of these sections; unknown keys and wrong types are refused,",
        "naming the option. `vidfer train ... --set section.option=value` overrides one option.",
        "The last two sections are the settings files of `vidfer train-frames --config` and",
        "`vidfer video-attention --config`, whose flags override them.",
        "",
    ]
    for path, model in config_sections():
        title = path or "run config (top level)"
        anchor = _anchor(path or "top-level")
        lines += [f"## `{title}` {{#{anchor}}}", ""]
        lines += [f"`{model.__module__}.{model.__name__}`", ""]
        summary = _dedent_doc(model.__doc__ or "").split("\n\n")[0]
        if summary:
            lines += [markdown(" ".join(summary.split())), ""]
        docs = attribute_docs(model)
        lines += ["| option | type | default | description |", "| --- | --- | --- | --- |"]
        for name, field in model.model_fields.items():
            text = markdown(field.description or docs.get(name, ""))
            nested = _sections_in(field.annotation) or MAPPED_SECTIONS.get((model.__name__, name))
            if nested:
                child = f"{path}.{name}" if path else name
                if typing.get_origin(field.annotation) is list:
                    child += "[]"
                text = (text + " " if text else "") + f"See [`{child}`](#{_anchor(child)})."
            kind = _cell(f"`{_type_name(field.annotation)}`")
            lines.append(f"| `{name}` | {kind} | {_cell(_default(field))} | {_cell(text)} |")
        lines.append("")
    return "\n".join(lines)


def _anchor(path: str) -> str:
    return "config-" + re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-")


# ---------------------------------------------------------------- CLI reference


def cli_commands() -> dict[str, argparse.ArgumentParser]:
    """Every command of the ``vidfer`` parser, by its full name (``vidfer``, ``vidfer train``)."""
    from vidfer.cli import _parser

    found: dict[str, argparse.ArgumentParser] = {}

    def visit(name: str, parser: argparse.ArgumentParser) -> None:
        found[name] = parser
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for sub, child in action.choices.items():
                    visit(f"{name} {sub}", child)

    visit("vidfer", _parser())
    return found


def _option_rows(parser: argparse.ArgumentParser) -> list[str]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        names = ", ".join(action.option_strings) or (action.metavar or action.dest)
        text = markdown((action.help or "") % {"default": action.default, "prog": parser.prog})
        if action.choices and not isinstance(action.choices, dict):
            text += f" (one of: {', '.join(str(c) for c in action.choices)})"
        shown = action.default not in (None, False, argparse.SUPPRESS) and action.option_strings
        default = f"`{action.default}`" if shown else ""
        rows.append(f"| `{_cell(str(names))}` | {_cell(text)} | {_cell(default)} |")
    return rows


def cli_reference() -> str:
    """The command-line reference page."""
    lines = [
        "# Command-line reference",
        "",
        "Generated from the `vidfer` argparse parser when the site is built. Every command prints",
        "one line and exits with status 2 on a user error; `vidfer COMMAND --help` prints the same",
        "options.",
        "",
    ]
    for name, parser in cli_commands().items():
        lines += [f"## `{name}` {{#{cli_anchor(name)}}}", ""]
        if parser.description:
            lines += [markdown(parser.description), ""]
        usage = parser.format_usage().strip().removeprefix("usage: ").splitlines()
        usage = usage[:1] + [line.removeprefix(" " * len("usage: ")) for line in usage[1:]]
        lines += ["```text", *usage, "```", ""]
        rows = _option_rows(parser)
        if rows:
            lines += ["| argument | help | default |", "| --- | --- | --- |", *rows, ""]
    return "\n".join(lines)


def cli_anchor(command: str) -> str:
    """The anchor of a command's entry on the CLI page."""
    return "cli-" + command.replace(" ", "-")


# ---------------------------------------------------------------- benchmarks


def benchmarks_page() -> str:
    """benchmarks/README.md as it is (it has no relative links; one added would fail --strict)."""
    return (ROOT / "benchmarks" / "README.md").read_text(encoding="utf-8")


# ---------------------------------------------------------------- home


def home_page() -> str:
    """README.md as the site's home page: its links into ``docs/`` made relative to the site,
    benchmarks/README.md as the benchmarks page (another link into the repository fails
    --strict)."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    text = text.replace("](docs/", "](")
    return text.replace("](benchmarks/README.md)", "](benchmarks.md)")
