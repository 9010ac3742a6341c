"""``vidfer export``: a trained clip model, or the default FER model, as ONNX or TorchScript.

A clip run's model is exported from its input clip ``(B, 3, T, H, W)`` float32 (normalised as
the run's ``transforms`` say) to its temporal score map ``(B, K, T')`` (class logits per step),
with the batch and time axes dynamic; only temporally dense models (``TemporalGeometry.dense``)
are exported, since only they take clips of any length. The run's temporal pooling stays in
PyTorch. The default model (the FER2013 mini-Xception) is exported from gray faces
``(N, 1, 64, 64)`` in [-1, 1] to class probabilities ``(N, 7)``, the batch axis dynamic.

Beside the model (``model.onnx`` or ``model.pt``), ``model.json`` records the classes, the input
and output contract, the preprocessing and the temporal geometry. :func:`load_exported` reads
them back; :class:`ExportedVideoModel` puts an exported clip model where the PyTorch one was
(``vidfer predict --engine onnx``), so that the run's whole-video scoring runs unchanged.
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn

from vidfer.errors import ConfigError
from vidfer.io.atomic import atomic_path, atomic_write_json
from vidfer.io.run_folder import RunDir
from vidfer.models.base import TemporalGeometry, VideoModel
from vidfer.models.mini_xception import FER2013_CLASSES, load_mini_xception
from vidfer.models.trained import load_run_model

ExportFormat = Literal["onnx", "torchscript"]
FORMATS: tuple[ExportFormat, ...] = ("onnx", "torchscript")
METADATA = "model.json"
_FILES = {"onnx": "model.onnx", "torchscript": "model.pt"}
_OPSET = 17
Runner = Callable[[np.ndarray], np.ndarray]
"""An exported model as a function: input array -> output array (float32)."""


class _Probabilities(nn.Module):
    """The mini-Xception with its softmax: faces ``(N, 1, 64, 64)`` -> ``(N, 7)``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.model(faces), dim=1)


class _MeanHW(nn.Module):
    """``AdaptiveAvgPool3d((None, 1, 1))`` as a mean over height and width: the same numbers,
    and an operator ONNX exports with a dynamic time axis."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.mean(dim=(3, 4), keepdim=True)  # (B, F, T, H, W) -> (B, F, T, 1, 1)


def exportable(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with its spatial-only adaptive poolings as plain means."""
    model = copy.deepcopy(model)
    for module in list(model.modules()):
        for name, child in module.named_children():
            if isinstance(child, nn.AdaptiveAvgPool3d) and child.output_size == (None, 1, 1):
                setattr(module, name, _MeanHW())
    return model


def write_model(
    module: nn.Module, example: torch.Tensor, fmt: ExportFormat, path: Path, dynamic: dict[int, str]
) -> None:
    """Write ``module`` traced on ``example`` to ``path`` as ``fmt``, the input axes ``dynamic``
    (index -> name) left free; the input is named ``input``, the output ``output``."""
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer and exporter notes, not the user's business
        if fmt == "torchscript":
            torch.jit.save(torch.jit.trace(module, example), str(tmp))
            return
        output_axes = {0: dynamic[0]} | ({2: "steps"} if 2 in dynamic else {})
        torch.onnx.export(
            module,
            (example,),
            str(tmp),
            input_names=["input"],
            output_names=["output"],
            dynamic_axes={"input": dynamic, "output": output_axes},
            opset_version=_OPSET,
            dynamo=False,
        )


def export_model(
    run_folder: str | Path | None, fmt: ExportFormat, out_dir: str | Path | None = None
) -> Path:
    """Export a clip run's model, or the default FER model (``run_folder`` None).

    Args:
        run_folder: A trained clip run, or None for the FER2013 mini-Xception.
        fmt: ``onnx`` or ``torchscript``.
        out_dir: Output folder (default ``RUN/export`` or ``fer2013_mini_xception_export``).

    Returns:
        The metadata file.

    Raises:
        ConfigError: on an unknown format, or a model that is not temporally dense.
        CheckpointError: if the run is not a trained clip run.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"--format {fmt!r} is unknown: use one of {', '.join(FORMATS)}")
    meta: dict[str, Any] = {"format": fmt, "file": _FILES[fmt], "opset": _OPSET}
    meta["torch"] = torch.__version__
    if run_folder is None:
        out = Path(out_dir or "fer2013_mini_xception_export")
        module: nn.Module = _Probabilities(load_mini_xception().eval()).eval()
        example = torch.zeros(2, 1, 64, 64)
        dynamic = {0: "batch"}
        meta |= {
            "model": "fer2013_mini_xception",
            "classes": list(FER2013_CLASSES),
            "input": {"layout": "N,1,64,64", "dtype": "float32", "dynamic": ["N"]},
            "output": {"layout": "N,K", "meaning": "class probabilities"},
            "preprocessing": {
                "faces": "MTCNN, tracked, aligned, 64x64 gray (vidfer.predict.FER_PREPARE)",
                "scale": "(x / 255 - 0.5) * 2",
            },
        }
    else:
        run = RunDir(run_folder)
        config = run.config()
        model, _ = load_run_model(run, "cpu")
        geometry = model.geometry
        if not geometry.dense:
            raise ConfigError(
                f"{run.folder}: {config.model.name} scores fixed-length clips only (not "
                "temporally dense); export takes dense models, whose time axis is dynamic"
            )
        out = Path(out_dir or run.folder / "export")
        module = exportable(model)
        size = config.transforms.size
        frames = max(geometry.receptive_field + 2, 8)
        example = torch.zeros(1, 3, frames, size, size)
        dynamic = {0: "batch", 2: "time"}
        meta |= {
            "model": config.model.name,
            "run": str(run.folder),
            "classes": list(run.classes()),
            "input": {"layout": "B,3,T,H,W", "dtype": "float32", "size": size},
            "output": {"layout": "B,K,T'", "meaning": "class logits per time step"},
            "geometry": asdict(geometry),
            "pooling": config.pooling.name,
            "preprocessing": {
                "prepare": config.data.prepare.model_dump(mode="json"),
                "scale": "x / 255, then (x - mean) / std per channel",
                "mean": list(config.transforms.mean),
                "std": list(config.transforms.std),
            },
        }
        meta["input"]["dynamic"] = ["B", "T"]
    write_model(module, example, fmt, out / _FILES[fmt], dynamic)
    atomic_write_json(out / METADATA, meta)
    return out / METADATA


def load_exported(folder: str | Path) -> tuple[Runner, dict[str, Any]]:
    """An exported model as a function on arrays, and its metadata.

    Raises:
        ConfigError: if the folder holds no export, or ONNX Runtime is missing for an ONNX one.
    """
    folder = Path(folder)
    path = folder / METADATA
    if not path.is_file():
        raise ConfigError(f"{folder}: no {METADATA}; export the model with 'vidfer export'")
    meta = json.loads(path.read_text(encoding="utf-8"))
    model_file = str(folder / meta["file"])
    if meta["format"] == "torchscript":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
            scripted = torch.jit.load(model_file, map_location="cpu").eval()

        def run_script(x: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return scripted(torch.from_numpy(x)).numpy()

        return run_script, meta
    try:
        import onnxruntime
    except ImportError:
        raise ConfigError("ONNX models run with onnxruntime: pip install 'vidfer[onnx]'") from None
    session = onnxruntime.InferenceSession(model_file, providers=["CPUExecutionProvider"])

    def run_onnx(x: np.ndarray) -> np.ndarray:
        return session.run(None, {"input": np.ascontiguousarray(x, np.float32)})[0]

    return run_onnx, meta


class ExportedVideoModel(VideoModel):
    """An exported clip model standing in for the PyTorch one (its score map, on the CPU)."""

    def __init__(self, runner: Runner, geometry: TemporalGeometry, num_classes: int) -> None:
        super().__init__()
        self.runner = runner
        self.geometry = geometry
        self.num_classes = self.feature_channels = num_classes

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The exported model's score map ``(B, K, T')`` (there are no separate features)."""
        return torch.from_numpy(self.runner(x.detach().cpu().float().numpy()))

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """The score map as it is."""
        return features

    def head_parameters(self) -> list[nn.Parameter]:
        """None: an exported model is not trained."""
        return []


def exported_geometry(meta: dict[str, Any]) -> TemporalGeometry:
    """The temporal geometry an export's metadata records."""
    return TemporalGeometry(**meta["geometry"])
