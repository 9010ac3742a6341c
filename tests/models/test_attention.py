"""Attention modules between features and classifier (thesis chapter 4), on every model."""

from __future__ import annotations

import functools
from typing import Any

import pytest
import torch

from vidfer.config import ModelConfig
from vidfer.errors import ConfigError
from vidfer.models import AttentiveModel, VideoModel, build_attention, model_from_config
from vidfer.models.attention import sinusoidal
from vidfer.registry import MODELS

K = 3
MODULES: dict[str, tuple[str, dict[str, Any]]] = {
    "mask_t": ("mask", {"dims": "temporal", "hidden": 8}),
    "mask_s": ("mask", {"dims": "spatial", "hidden": 8}),
    "mask_st": ("mask", {"dims": "spatiotemporal", "hidden": 8}),
    "context_concat": ("context_mask", {"combine": "concat", "hidden": 8}),
    "context_add": ("context_mask", {"combine": "add", "hidden": 8}),
    "context_mul": ("context_mask", {"combine": "mul", "hidden": 8}),
    "stn_s": ("stn", {"dims": "spatial", "hidden": 8, "pooled": 2}),
    "stn_t": ("stn", {"dims": "temporal", "hidden": 8, "pooled": 2}),
    "stn_st": ("stn", {"dims": "spatiotemporal", "hidden": 8, "pooled": 2}),
    "sa_t": ("self_attention", {"dims": "temporal", "heads": 2, "d_att": 8}),
    "sa_s": ("self_attention", {"dims": "spatial", "heads": 2, "d_att": 8, "positional": True}),
    "sa_st": ("self_attention", {"dims": "spatiotemporal", "heads": 2, "d_att": 8}),
    "sa_t_pos": ("self_attention", {"dims": "temporal", "d_att": 8, "positional": True}),
    "query_t": ("self_attention", {"dims": "temporal", "d_att": 8, "single_query": True}),
    "query_s": ("self_attention", {"dims": "spatial", "d_att": 8, "single_query": True}),
    "query_st": ("self_attention", {"dims": "spatiotemporal", "d_att": 8, "single_query": True}),
}


def tiny(name: str, attention: dict[str, Any] | None = None) -> ModelConfig:
    width = 0.25 if name == "i3d_mini_xception" else 0.125
    params: dict[str, Any] = {"width": width}
    if name in ("c3d", "fstcn"):
        params["in_size"] = 32
    return ModelConfig.model_validate({"name": name, "params": params, "attention": attention})


@functools.cache
def plain(name: str) -> VideoModel:
    """The tiny ``name`` without attention, built once: each test loads into it the weights it
    compares with."""
    return model_from_config(tiny(name), K)


@pytest.mark.slow
@pytest.mark.parametrize("module", MODULES, ids=list(MODULES))
def test_every_module_on_every_model(module: str) -> None:
    name, params = MODULES[module]
    # torchvision's S3D, MViT-V2-S and Swin3D-T, Hugging Face's VideoMAE and TimeSformer have no
    # width (and no tiny variant).
    fixed = ("mvit_v2_s", "s3d", "swin3d_t", "timesformer", "videomae")
    for model_name in [n for n in MODELS.names() if n not in fixed]:
        torch.manual_seed(0)
        model = model_from_config(tiny(model_name, {"name": name, "params": params}), K)
        assert isinstance(model, AttentiveModel)
        base = plain(model_name)
        base.load_state_dict(model.base.state_dict())
        model.eval()
        base.eval()
        # Any length for the dense models; C3D two windows, FstCN one clip pair.
        frames = {"c3d": 32, "fstcn": 10}.get(model_name, 11)
        size = 32 if model_name == "c3d" else 64  # 2x2 feature positions or more
        clip = torch.randn(2, 3, frames, size, size, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            out = model(clip)
            # Identity at initialisation: the model's output is unchanged.
            torch.testing.assert_close(out, base(clip), atol=2e-5, rtol=1e-4)
        assert out.shape[:2] == (2, K) and torch.isfinite(out).all()
        # Gradients reach every parameter once the zero-initialised output layers moved. The
        # backbone is frozen: the module's gradients do not go through it, and backpropagating
        # into it would only cost time (most of this test's).
        model.train()
        for parameter in model.backbone_parameters():
            parameter.requires_grad_(False)
        optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.01)
        for _ in range(2):
            optimizer.zero_grad()
            model(clip).logsumexp(dim=1).sum().backward()
            optimizer.step()
        # C3D's fc7 features have one position per window: spatial attention over a single
        # entity has constant weights, so its queries and keys cannot learn there.
        degenerate = model_name == "c3d" and params.get("dims") == "spatial"
        for parameter_name, parameter in model.attention.named_parameters():
            assert parameter.grad is not None, (model_name, parameter_name)
            if degenerate and parameter_name.split(".")[0] in ("query", "key"):
                continue
            assert parameter.grad.abs().sum() > 0, (model_name, parameter_name)
        assert model.geometry.global_time == model.attention.global_time
        if model.attention.global_time:
            assert not model.geometry.exact_windows


def test_head_parameters_include_the_module() -> None:
    model = model_from_config(tiny("resnet3d_18", {"name": "mask"}), K)
    head = {id(p) for p in model.head_parameters()}
    assert all(id(p) in head for p in model.attention.parameters())
    assert all(id(p) not in head for p in model.base.backbone_parameters())


def test_recorded_maps_have_the_documented_shapes() -> None:
    features = torch.randn(2, 16, 5, 3, 4)  # (B, C, T, H, W)
    for key, (name, params) in MODULES.items():
        module = build_attention(name, 16, **params)
        module.record = True
        module(features)
        if name == "stn":
            assert "theta" in module.maps, key
            continue
        assert module.maps["temporal"].shape == (2, 5), key
        assert module.maps["spatial"].shape == (2, 5, 3, 4), key
        if key in ("sa_t", "sa_t_pos"):
            matrix = module.maps["matrix"]
            assert matrix.shape == (2, 5, 5)
            torch.testing.assert_close(matrix.sum(dim=2), torch.ones(2, 5))


def test_temporal_self_attention_over_a_whole_video_is_length_agnostic() -> None:
    module = build_attention("self_attention", 16, dims="temporal", d_att=8)
    torch.nn.init.normal_(module.output.weight)
    short, long = torch.randn(1, 16, 4, 2, 2), torch.randn(1, 16, 200, 2, 2)
    assert module(short).shape == short.shape and module(long).shape == long.shape
    # Every frame's output depends on every frame: attention over the whole sequence.
    long.requires_grad_(True)
    module(long)[0, :, 0].sum().backward()
    assert (long.grad.abs().sum(dim=(0, 1, 3, 4)) > 0).all()


def test_temporal_stn_zooms_in_time() -> None:
    module = build_attention("stn", 1, dims="temporal", hidden=4, pooled=2)
    ramp = torch.arange(8.0).view(1, 1, 8, 1, 1).expand(1, 1, 8, 2, 2).contiguous()
    torch.testing.assert_close(module(ramp), ramp)  # identity at the start
    last = module.localise[-1]
    with torch.no_grad():
        last.bias.copy_(torch.tensor([torch.atanh(torch.tensor(-0.5)), 0.0]))  # zoom x0.5
    with torch.no_grad():
        out = module(ramp)[0, 0, :, 0, 0]
    assert out.max() - out.min() < 4.5  # half the temporal range, centred
    assert abs(float(out.mean()) - 3.5) < 0.6


def test_sinusoidal_encoding_and_option_errors() -> None:
    encoding = sinusoidal(torch.tensor([[0.0], [1.0], [2.0]]), 8)
    assert encoding.shape == (3, 8)
    torch.testing.assert_close(encoding[0, :4], torch.zeros(4))  # sin(0)
    torch.testing.assert_close(encoding[0, 4:], torch.ones(4))  # cos(0)
    for name, params in (
        ("mask", {"dims": "depth"}),
        ("context_mask", {"combine": "max"}),
        ("self_attention", {"heads": 0}),
        ("stn", {"pooled": 0}),
        ("mask", {"gamma": 1}),
        ("nope", {}),
    ):
        with pytest.raises(ConfigError):
            build_attention(name, 16, **params)
