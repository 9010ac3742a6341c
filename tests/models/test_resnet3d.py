"""The 3D ResNet families keep their state-dict layout, geometry and outputs.

``tests/fixtures/resnet3d_families.json`` was recorded (``scripts/record_resnet_fixture.py``) from
the code before ``resnet3d_18``, ``r2plus1d_18`` and ``resnext3d_101`` shared one skeleton: every
saved checkpoint and torchvision's weights rely on those parameter names and shapes.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
import torch

from vidfer.models import build_model

from helpers import FIXTURES

FIXTURE = FIXTURES / "resnet3d_families.json"
RECORD: dict[str, Any] = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _id(entry: dict[str, Any]) -> str:
    options = ",".join(f"{key}={value}" for key, value in entry["options"].items())
    width = f"@{entry['width']}" if "width" in entry else ""
    return f"{entry['model']}[{options}]{width}"


@pytest.mark.parametrize("entry", RECORD["layouts"], ids=_id)
def test_state_dict_keys_and_shapes_are_unchanged(entry: dict[str, Any]) -> None:
    with torch.device("meta"):  # shapes only, no memory
        model = build_model(
            entry["model"], RECORD["classes"], width=entry["width"], **entry["options"]
        )
    layout = {key: ",".join(map(str, value.shape)) for key, value in model.state_dict().items()}
    assert list(layout) == list(entry["keys"])  # same names in the same order
    assert layout == entry["keys"]


@pytest.mark.parametrize("entry", RECORD["outputs"], ids=_id)
def test_seeded_scores_and_geometry_are_unchanged(entry: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = build_model(
        entry["model"], RECORD["classes"], width=RECORD["output_width"], **entry["options"]
    ).eval()
    geometry = model.geometry
    assert [geometry.receptive_field, geometry.stride, geometry.padding] == entry["geometry"]
    torch.manual_seed(1)
    clip = torch.randn(RECORD["clip"])[:, : entry["options"].get("in_channels", 3)]
    with torch.no_grad():
        scores = model(clip)  # (1, K, T')
    assert scores.shape[:2] == (1, RECORD["classes"])
    assert scores.shape[2] == geometry.output_length(clip.shape[2])
    expected = torch.tensor(entry["scores"]).reshape(scores.shape)
    torch.testing.assert_close(scores, expected, rtol=1e-4, atol=1e-6)
