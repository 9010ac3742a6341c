"""Spatio-temporal attention between a video model's features and its classifier (Ayral, ch. 4).

Every module maps backbone features ``(B, C, T, H, W)`` to features of the same shape, so that it
fits between :meth:`VideoModel.forward_features` and :meth:`VideoModel.forward_head` of any model
(:class:`AttentiveModel`), at any clip length and in one-pass whole-video scoring. Every module
starts as the identity (its last layer is zero-initialised), so adding one to a trained model does
not change its output before training. The families:

- ``mask`` (§4.2, eq. 4.10): a gate ``1 + tanh(W2 (W1 f + b1) + b2)`` from two 1x1x1
  convolutions, one weight per frame (``temporal``), per position shared over time (``spatial``)
  or per position and frame (``spatiotemporal``).
- ``context_mask`` (§4.2.2, §4.5.1): the gate of each position also depends on a context vector of
  the whole clip (1x1x1 conv, ReLU, average pooling), combined by ``concat``, ``add`` or ``mul``
  (dot product over channels).
- ``stn`` (§4.3): spatial transformer per frame (2x3 affine), temporal transformer (2 free
  parameters: temporal zoom and shift) or spatio-temporal (3x4 affine on the volume); parameters
  ``identity + tanh(raw)`` from a localisation network on an adaptively pooled input.
- ``self_attention`` (§4.4): multi-head dot-product self-attention over frames, positions of each
  frame or all positions, with ``heads`` heads of ``d_att`` channels, residual connection, optional
  sinusoidal positional encoding; ``single_query`` uses one global-context query (Fig. 4.5, right).

With ``record = True`` a module keeps its last attention maps in ``maps``: ``temporal`` ``(B, T)``,
``spatial`` ``(B, T, H, W)``, ``matrix`` ``(B, T, T)`` (temporal self-attention) or ``theta``
(transformers), for :mod:`vidfer.viz.attention`.
"""

from __future__ import annotations

import abc
import math
from dataclasses import replace

import torch
import torch.nn.functional as F
from torch import nn

from vidfer.errors import ConfigError
from vidfer.models.base import VideoModel
from vidfer.models.contract import InputContract
from vidfer.models.options import MAX_SIZE
from vidfer.registry import ATTENTIONS

DIMS = ("temporal", "spatial", "spatiotemporal")


def _check_dims(name: str, dims: str) -> None:
    if dims not in DIMS:
        raise ConfigError(f"attention {name}: dims {dims!r} must be one of {', '.join(DIMS)}")


def _check_positive(name: str, **values: int) -> None:
    for key, value in values.items():
        if not 1 <= value <= MAX_SIZE:
            raise ConfigError(f"attention {name}: {key}={value} must be in [1, {MAX_SIZE}]")


def _zero(layer: nn.Conv3d | nn.Linear) -> None:
    """Zero a layer so that the module it ends starts as the identity."""
    nn.init.zeros_(layer.weight)
    if layer.bias is not None:
        nn.init.zeros_(layer.bias)


class AttentionModule(nn.Module, abc.ABC):
    """Base class: features ``(B, C, T, H, W)`` in, same shape out.

    Attributes:
        global_time: True if an output frame depends on every input frame (the module mixes
            time across the whole input), so one-pass scores no longer equal window scores.
        record: Keep the maps of the next forward passes in :attr:`maps`.
    """

    global_time = False

    def __init__(self) -> None:
        super().__init__()
        self.record = False
        self.maps: dict[str, torch.Tensor] = {}

    def keep(self, **maps: torch.Tensor) -> None:
        """Store detached maps when recording."""
        if self.record:
            self.maps = {key: value.detach() for key, value in maps.items()}


def _gate_maps(gate: torch.Tensor, shape: torch.Size) -> dict[str, torch.Tensor]:
    """``temporal (B, T)`` and ``spatial (B, T, H, W)`` views of a gate ``(B, 1, t, h, w)``."""
    batch, _, frames, height, width = shape
    full = gate[:, 0].expand(batch, frames, height, width)  # (B, t, h, w) -> (B, T, H, W)
    return {"temporal": full.mean(dim=(2, 3)), "spatial": full}


@ATTENTIONS.register("mask")
class MaskAttention(AttentionModule):
    """Gating mask of eq. (4.10): ``y = f * (1 + tanh(W2 (W1 f + b1) + b2))``.

    Args:
        channels: Feature channels ``C``.
        dims: ``temporal`` (features averaged over space, one weight per frame), ``spatial``
            (averaged over time, one weight per position) or ``spatiotemporal``.
        hidden: Channels of the first 1x1x1 convolution.
    """

    def __init__(self, channels: int, *, dims: str = "spatiotemporal", hidden: int = 64) -> None:
        super().__init__()
        _check_dims("mask", dims)
        _check_positive("mask", hidden=hidden)
        self.dims = dims
        self.conv1 = nn.Conv3d(channels, hidden, 1)
        self.conv2 = nn.Conv3d(hidden, 1, 1)
        _zero(self.conv2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        source = features
        if self.dims == "temporal":
            source = features.mean(dim=(3, 4), keepdim=True)  # (B, C, T, 1, 1)
        elif self.dims == "spatial":
            source = features.mean(dim=2, keepdim=True)  # (B, C, 1, H, W)
        gate = 1 + torch.tanh(self.conv2(self.conv1(source)))  # (B, 1, T|1, H|1, W|1)
        self.keep(**_gate_maps(gate, features.shape))
        return features * gate


@ATTENTIONS.register("context_mask")
class ContextMaskAttention(AttentionModule):
    """Spatio-temporal mask whose gates also see a context vector of the whole clip (§4.2.2).

    Position embedding ``e = W1 f``, context ``c = mean(ReLU(Wc f))`` over all positions; the
    gate is ``1 + tanh(z)`` with ``z = W2 [e, c]`` (``concat``), ``W2 (e + c)`` (``add``) or
    ``s * <e, c> / sqrt(D) + b`` (``mul``, the thesis's best), ``s`` starting at 0.

    Args:
        channels: Feature channels ``C``.
        combine: ``concat``, ``add`` or ``mul``.
        hidden: Channels ``D`` of the embedding and the context vector.
    """

    global_time = True

    def __init__(self, channels: int, *, combine: str = "mul", hidden: int = 64) -> None:
        super().__init__()
        if combine not in ("concat", "add", "mul"):
            raise ConfigError(f"attention context_mask: combine {combine!r} is not concat|add|mul")
        _check_positive("context_mask", hidden=hidden)
        self.combine = combine
        self.embed = nn.Conv3d(channels, hidden, 1)
        self.context = nn.Conv3d(channels, hidden, 1)
        self.out: nn.Conv3d | None = None
        self.scale: nn.Parameter | None = None
        self.bias: nn.Parameter | None = None
        if combine == "mul":
            self.scale = nn.Parameter(torch.zeros(()))  # ``s``, 0: the identity at the start
            self.bias = nn.Parameter(torch.zeros(()))
        else:
            self.out = nn.Conv3d(2 * hidden if combine == "concat" else hidden, 1, 1)
            _zero(self.out)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        embedded = self.embed(features)  # (B, D, T, H, W)
        context = F.relu(self.context(features)).mean(dim=(2, 3, 4), keepdim=True)  # (B, D, 1..)
        if self.out is None:
            assert self.scale is not None and self.bias is not None
            dot = (embedded * context).sum(dim=1, keepdim=True)  # (B, 1, T, H, W)
            z = self.scale * dot / math.sqrt(embedded.shape[1]) + self.bias
        elif self.combine == "concat":
            z = self.out(torch.cat([embedded, context.expand_as(embedded)], dim=1))
        else:
            z = self.out(embedded + context)
        gate = 1 + torch.tanh(z)  # (B, 1, T, H, W)
        self.keep(**_gate_maps(gate, features.shape))
        return features * gate


@ATTENTIONS.register("stn")
class TransformerNetwork(AttentionModule):
    """Spatial, temporal or spatio-temporal transformer network on the features (§4.3).

    The localisation network (adaptive average pooling, linear, ReLU, linear) reads the features
    pooled to a fixed size, so any clip length works; its output ``r`` gives the affine parameters
    ``theta = identity + tanh(r)`` (``r`` starts at 0: the identity). ``spatial``: a 2x3 affine
    per frame; ``temporal``: ``t' = (1 + tanh r0) t + tanh r1`` on the whole clip (a temporal zoom
    and shift, the two free parameters of the thesis); ``spatiotemporal``: a 3x4 affine on the
    volume. Sampling is (tri)linear with ``grid_sample``.

    Args:
        channels: Feature channels ``C``.
        dims: ``spatial``, ``temporal`` or ``spatiotemporal``.
        hidden: Units of the localisation network's hidden layer.
        pooled: Size each pooled axis takes in the localisation network.
    """

    def __init__(
        self, channels: int, *, dims: str = "spatiotemporal", hidden: int = 32, pooled: int = 4
    ) -> None:
        super().__init__()
        _check_dims("stn", dims)
        _check_positive("stn", hidden=hidden, pooled=pooled)
        self.dims = dims
        self.global_time = dims != "spatial"
        if dims == "spatial":
            self.pool: nn.Module = nn.AdaptiveAvgPool2d(pooled)
            inputs, outputs = channels * pooled**2, 6
        else:
            self.pool = nn.AdaptiveAvgPool3d(pooled)
            inputs, outputs = channels * pooled**3, 2 if dims == "temporal" else 12
        last = nn.Linear(hidden, outputs)
        _zero(last)
        self.localise = nn.Sequential(nn.Flatten(), nn.Linear(inputs, hidden), nn.ReLU(), last)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = features.shape
        if self.dims == "spatial":
            flat = features.transpose(1, 2).flatten(0, 1)  # (B, C, T, H, W) -> (B*T, C, H, W)
            raw = self.localise(self.pool(flat)).view(-1, 2, 3)  # (B*T, 2, 3)
            theta = torch.eye(2, 3, device=raw.device) + torch.tanh(raw)
            grid = F.affine_grid(theta, list(flat.shape), align_corners=False)
            out = F.grid_sample(flat, grid, align_corners=False)  # (B*T, C, H, W)
            self.keep(theta=theta.view(batch, frames, 2, 3))
            return out.view(batch, frames, channels, height, width).transpose(1, 2)
        raw = torch.tanh(self.localise(self.pool(features)))  # (B, 2) or (B, 12)
        theta = torch.eye(3, 4, device=raw.device).repeat(batch, 1, 1)  # (B, 3, 4)
        if self.dims == "temporal":
            # grid coordinates are (x, y, t): only the t row changes.
            theta = theta.clone()
            theta[:, 2, 2] = theta[:, 2, 2] + raw[:, 0]
            theta[:, 2, 3] = raw[:, 1]
        else:
            theta = theta + raw.view(batch, 3, 4)
        grid = F.affine_grid(theta, list(features.shape), align_corners=False)  # (B, T, H, W, 3)
        self.keep(theta=theta)
        return F.grid_sample(features, grid, align_corners=False)


def sinusoidal(coordinates: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal encoding ``(N, dim)`` of ``N`` entities with ``k`` coordinates ``(N, k)``.

    Each coordinate gets ``dim // k`` channels (sin and cos at geometric frequencies); leftover
    channels are 0.
    """
    count, axes = coordinates.shape
    per_axis = (dim // axes) // 2 * 2
    encoding = coordinates.new_zeros(count, dim)
    if per_axis == 0:
        return encoding
    frequencies = torch.exp(
        -math.log(10_000.0) * torch.arange(0, per_axis, 2, device=coordinates.device) / per_axis
    )  # (per_axis / 2,)
    for axis in range(axes):
        angles = coordinates[:, axis : axis + 1] * frequencies  # (N, per_axis / 2)
        block = slice(axis * per_axis, (axis + 1) * per_axis)
        encoding[:, block] = torch.cat([angles.sin(), angles.cos()], dim=1)
    return encoding


@ATTENTIONS.register("self_attention")
class SelfAttention(AttentionModule):
    """Multi-head dot-product self-attention with a residual connection (§4.4).

    Entities are the frames (``temporal``: features averaged over space), the positions of each
    frame (``spatial``) or all positions of the clip (``spatiotemporal``). Queries and keys have
    ``heads x d_att`` channels, values ``heads x d_att`` too; the output projection back to ``C``
    starts at 0, so the module starts as the identity. ``single_query``: one query per clip (or
    frame, for ``spatial``) from the mean of its entities, whose attended value is added to every
    position (a global-context weighted pooling, Fig. 4.5 right).

    Args:
        channels: Feature channels ``C``.
        dims: ``temporal``, ``spatial`` or ``spatiotemporal``.
        heads: Attention heads ``h`` (thesis: 4).
        d_att: Channels per head for queries and keys (thesis: 64 is a good compromise).
        positional: Add a sinusoidal encoding of each entity's (t, y, x) position to the inputs
            of the queries and keys.
        single_query: One global-context query instead of one per entity.
    """

    def __init__(
        self,
        channels: int,
        *,
        dims: str = "temporal",
        heads: int = 4,
        d_att: int = 64,
        positional: bool = False,
        single_query: bool = False,
    ) -> None:
        super().__init__()
        _check_dims("self_attention", dims)
        _check_positive("self_attention", heads=heads, d_att=d_att)
        self.dims = dims
        self.global_time = dims != "spatial"
        self.heads = heads
        self.d_att = d_att
        self.positional = positional
        self.single_query = single_query
        self.query = nn.Linear(channels, heads * d_att)
        self.key = nn.Linear(channels, heads * d_att)
        self.value = nn.Linear(channels, heads * d_att)
        self.output = nn.Linear(heads * d_att, channels)
        _zero(self.output)

    def _tokens(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Entities ``(B', N, C)`` and their coordinates ``(N, k)``."""
        batch, channels, frames, height, width = features.shape
        device = features.device
        t = torch.arange(frames, device=device, dtype=features.dtype)
        ys, xs = torch.meshgrid(
            torch.arange(height, device=device, dtype=features.dtype),
            torch.arange(width, device=device, dtype=features.dtype),
            indexing="ij",
        )
        if self.dims == "temporal":
            tokens = features.mean(dim=(3, 4)).transpose(1, 2)  # (B, C, T) -> (B, T, C)
            return tokens, t[:, None]
        if self.dims == "spatial":
            # (B, C, T, H, W) -> (B, T, H, W, C) -> (B*T, H*W, C)
            tokens = features.permute(0, 2, 3, 4, 1).reshape(batch * frames, height * width, -1)
            return tokens, torch.stack([ys.flatten(), xs.flatten()], dim=1)
        tokens = features.permute(0, 2, 3, 4, 1).reshape(batch, -1, channels)  # (B, T*H*W, C)
        coordinates = torch.stack(
            [
                t[:, None, None].expand(frames, height, width).flatten(),
                ys.expand(frames, height, width).flatten(),
                xs.expand(frames, height, width).flatten(),
            ],
            dim=1,
        )
        return tokens, coordinates

    def _split(self, x: torch.Tensor) -> torch.Tensor:
        """``(B', N, h * d)`` -> ``(B', h, N, d)``."""
        return x.unflatten(2, (self.heads, self.d_att)).transpose(1, 2)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        batch, channels, frames, height, width = features.shape
        tokens, coordinates = self._tokens(features)  # (B', N, C), (N, k)
        keyed = tokens
        if self.positional:
            keyed = tokens + sinusoidal(coordinates, channels).to(tokens.dtype)
        queries_from = keyed.mean(dim=1, keepdim=True) if self.single_query else keyed
        q = self._split(self.query(queries_from))  # (B', h, Nq, d)
        k = self._split(self.key(keyed))  # (B', h, N, d)
        v = self._split(self.value(tokens))  # (B', h, N, d)
        attended = F.scaled_dot_product_attention(q, k, v)  # (B', h, Nq, d)
        if self.record:
            weights = torch.softmax(q @ k.transpose(2, 3) / math.sqrt(self.d_att), dim=-1)
            self._keep_weights(weights.mean(dim=1), features.shape)  # (B', Nq, N)
        update = self.output(attended.transpose(1, 2).flatten(2))  # (B', Nq, C)
        if self.dims == "temporal":
            # (B, Nq, C) -> (B, C, Nq, 1, 1): Nq is T, or 1 for a single query.
            return features + update.transpose(1, 2)[..., None, None]
        if self.dims == "spatial":
            # (B*T, Nq, C) -> (B, T, H|1, W|1, C) -> (B, C, T, H|1, W|1)
            side = (height, width) if not self.single_query else (1, 1)
            update = update.view(batch, frames, *side, channels)
            return features + update.permute(0, 4, 1, 2, 3)
        if self.single_query:
            return features + update.view(batch, channels, 1, 1, 1)  # (B, 1, C) -> (B, C, 1..)
        update = update.view(batch, frames, height, width, channels)  # (B, T*H*W, C) -> ...
        return features + update.permute(0, 4, 1, 2, 3)

    def _keep_weights(self, weights: torch.Tensor, shape: torch.Size) -> None:
        """Maps from the head-averaged weights ``(B', Nq, N)``."""
        batch, _, frames, height, width = shape
        profile = weights.mean(dim=1)  # mean over queries: (B', N)
        if self.dims == "temporal":
            spatial = profile[:, :, None, None].expand(batch, frames, height, width)
            maps = {"temporal": profile, "spatial": spatial}
            if not self.single_query:
                maps["matrix"] = weights  # (B, T, T)
            self.keep(**maps)
        elif self.dims == "spatial":
            spatial = profile.view(batch, frames, height, width)
            self.keep(temporal=spatial.mean(dim=(2, 3)), spatial=spatial)
        else:
            spatial = profile.view(batch, frames, height, width)
            self.keep(temporal=spatial.sum(dim=(2, 3)), spatial=spatial)


class AttentiveModel(VideoModel):
    """A video model with an attention module between its features and its classifier.

    The module's parameters train with the head's learning rate (they are new layers on a
    possibly pretrained backbone). State dict keys are ``base.*`` and ``attention.*``.

    Args:
        base: The video model.
        attention: The attention module (built for ``base.feature_channels``).
    """

    def __init__(self, base: VideoModel, attention: AttentionModule) -> None:
        super().__init__()
        self.base = base
        self.attention = attention
        self.num_classes = base.num_classes
        self.feature_channels = base.feature_channels
        self.geometry = replace(base.geometry, global_time=attention.global_time)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """The base model's features ``(B, F, T', H', W')``."""
        return self.base.forward_features(x)

    def forward_head(self, features: torch.Tensor) -> torch.Tensor:
        """Score map ``(B, K, T')`` of the attended features."""
        return self.base.forward_head(self.attention(features))

    def input_contract(self) -> InputContract:
        """The wrapped model's."""
        return self.base.input_contract()

    def head_parameters(self) -> list[nn.Parameter]:
        """The base model's head and the attention module."""
        return [*self.base.head_parameters(), *self.attention.parameters()]


def build_attention(name: str, channels: int, **params: object) -> AttentionModule:
    """Build the attention module registered under ``name`` for ``channels`` feature channels.

    Raises:
        ConfigError: on an unknown name or an invalid option.
    """
    module = ATTENTIONS.build(name, channels=channels, **params)
    if not isinstance(module, AttentionModule):
        raise TypeError(f"attention builder {name!r} returned {type(module).__name__}")
    return module
