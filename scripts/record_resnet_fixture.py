"""Record the 3D ResNet families' state-dict layouts, geometries and seeded outputs as a fixture.

The fixture pins what existing checkpoints and torchvision weights rely on: for ``resnet3d_18``,
``r2plus1d_18`` and ``resnext3d_101`` at several widths, every state-dict key with its shape; for
every option setting at a small width, the temporal geometry and the score map of a seeded model
on a seeded clip. ``tests/models/test_resnet3d.py`` checks the current code against it. It was
recorded from the code before the families shared one skeleton; re-record it (from the repository
root) only for a deliberate change of architecture:

    PYTHONPATH=src .venv/bin/python scripts/record_resnet_fixture.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from vidfer.models import build_model

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "resnet3d_families.json"
CLASSES = 3
# (model, options, widths) whose state-dict layout is recorded.
LAYOUTS: list[tuple[str, dict[str, Any], tuple[float, ...]]] = [
    ("resnet3d_18", {}, (1.0, 0.3, 0.125)),
    ("resnet3d_18", {"in_channels": 1}, (0.125,)),
    ("r2plus1d_18", {}, (1.0, 0.3, 0.125)),
    ("r2plus1d_18", {"in_channels": 1}, (0.125,)),
    ("resnext3d_101", {}, (1.0, 0.3, 0.125)),
]
# (model, options) whose geometry and seeded output are recorded at OUTPUT_WIDTH.
OUTPUTS: list[tuple[str, dict[str, Any]]] = [
    ("resnet3d_18", {}),
    ("resnet3d_18", {"temporal_stride": 2}),
    ("resnet3d_18", {"temporal_padding": False}),
    ("resnet3d_18", {"spatial_pool": "max", "in_channels": 1}),
    ("r2plus1d_18", {}),
    ("r2plus1d_18", {"temporal_stride": 2}),
    ("resnext3d_101", {}),
    ("resnext3d_101", {"temporal_stride": 2}),
]
OUTPUT_WIDTH = 0.125
CLIP = (1, 3, 36, 32, 32)  # (B, C, T, H, W); 36 frames: more than the unpadded field of 35


def layout(name: str, options: dict[str, Any], width: float) -> dict[str, str]:
    """Every state-dict key of a model, in order, with its shape as ``"64,3,3,7,7"``."""
    with torch.device("meta"):  # shapes only, no memory
        model = build_model(name, CLASSES, width=width, **options)
    return {key: ",".join(map(str, value.shape)) for key, value in model.state_dict().items()}


def seeded_scores(name: str, options: dict[str, Any]) -> tuple[list[int], list[float]]:
    """Geometry and flat eval-mode score map ``(1, K, T')`` of a seed-0 model on a seed-1 clip."""
    torch.manual_seed(0)
    model = build_model(name, CLASSES, width=OUTPUT_WIDTH, **options).eval()
    torch.manual_seed(1)
    clip = torch.randn(CLIP)
    channels = options.get("in_channels", 3)
    with torch.no_grad():
        scores = model(clip[:, :channels])
    geometry = model.geometry
    return [geometry.receptive_field, geometry.stride, geometry.padding], scores.flatten().tolist()


def main() -> None:
    """Write the fixture."""
    torch.set_num_threads(1)
    layouts = [
        {"model": name, "options": options, "width": width, "keys": layout(name, options, width)}
        for name, options, widths in LAYOUTS
        for width in widths
    ]
    outputs = []
    for name, options in OUTPUTS:
        geometry, scores = seeded_scores(name, options)
        outputs.append({"model": name, "options": options, "geometry": geometry, "scores": scores})
    record = {
        "classes": CLASSES,
        "output_width": OUTPUT_WIDTH,
        "clip": list(CLIP),
        "layouts": layouts,
        "outputs": outputs,
    }
    FIXTURE.write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
