"""Fine-tuning controls of a clip model: frozen stages, layer-wise learning-rate decay, frozen
BatchNorm (``optim.freeze``, ``optim.layer_decay`` and ``optim.freeze_bn``).

A model's *stages* are the top-level child modules of its backbone that hold parameters, in the
order the model registers them (the order of ``model.named_children()``), which is input to
output: ``stem``, ``layer1`` ... ``layer4`` for resnet3d_18 and r2plus1d_18; ``conv1``, ``bn1``,
``layer1`` ... ``layer4`` for resnext3d_101; ``features``, ``fc6``, ``fc7`` for c3d;
``features`` for i3d_vgg16; ``backbone`` for i3d_mini_xception; ``lower``, ``tcl_scl``, ``tp``,
``tcl3``, ``tcl5``, ``tcl_fc``, ``scl``, ``scl_fc``, ``joint`` for fstcn; ``embeddings``,
``layer0`` ... ``layer<n-1>`` (one per transformer layer) and, where the model has one,
``layernorm`` for videomae and timesformer. A model with an
attention module has its base model's stages. Modules of the head (``head_parameters``) are
never stages. An unknown name in ``optim.freeze`` is an error that lists the model's stages.

A frozen stage is left out of the optimiser (``requires_grad`` False) and kept in eval mode, so
that its weights and its BatchNorm statistics stay exactly as loaded. With ``freeze_bn`` every
BatchNorm layer of the backbone is kept in eval mode (its running statistics stay as loaded; its
affine parameters still train unless its stage is frozen). Modes are not saved in checkpoints:
:class:`TrainMode` sets them again wherever the training loop switches the model to training.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from vidfer.config import OptimConfig
from vidfer.errors import ConfigError
from vidfer.models.base import VideoModel


def model_stages(model: VideoModel) -> list[tuple[str, nn.Module]]:
    """The backbone stages of ``model`` with their names, input to output (see the module's
    docstring)."""
    head = {id(p) for p in model.head_parameters()}
    return _stages(model, head)


def _stages(module: nn.Module, head: set[int]) -> list[tuple[str, nn.Module]]:
    found: list[tuple[str, nn.Module]] = []
    for name, child in module.named_children():
        if isinstance(child, VideoModel):  # the base model of an attention model
            found += _stages(child, head)
        elif any(id(p) not in head for p in child.parameters()):
            found.append((name, child))
    return found


def frozen_stages(model: VideoModel, config: OptimConfig) -> list[nn.Module]:
    """The stages ``optim.freeze`` names.

    Raises:
        ConfigError: on a name that is not a stage of the model (the message lists them).
    """
    stages = dict(model_stages(model))
    unknown = [name for name in config.freeze if name not in stages]
    if unknown:
        raise ConfigError(
            f"optim.freeze: {', '.join(map(repr, unknown))} is not a stage of the model; "
            f"its stages are {', '.join(stages)}"
        )
    return [stages[name] for name in config.freeze]


def backbone_groups(
    model: VideoModel, config: OptimConfig
) -> list[tuple[list[nn.Parameter], float]]:
    """The backbone parameters the optimiser trains, in groups with their learning rates.

    Frozen stages are left out. Without layer decay (``optim.layer_decay`` 1) one group holds
    every other backbone parameter at ``optim.lr``; with decay ``d`` the last stage trains at
    ``lr * d``, the one before at ``lr * d**2``, and so on (one group per stage with parameters
    left to train, input side first).

    Raises:
        ConfigError: on an unknown stage name in ``optim.freeze``.
    """
    frozen = {id(p) for stage in frozen_stages(model, config) for p in stage.parameters()}
    trained = [p for p in model.backbone_parameters() if id(p) not in frozen]
    if config.layer_decay == 1:
        return [(trained, config.lr)]
    stages = model_stages(model)
    depth = {
        id(p): len(stages) - index
        for index, (_, stage) in enumerate(stages)
        for p in stage.parameters()
    }
    groups = []
    for level in range(len(stages), 0, -1):
        params = [p for p in trained if depth[id(p)] == level]
        if params:
            groups.append((params, config.lr * config.layer_decay**level))
    return groups


@dataclass(frozen=True)
class TrainMode:
    """Switches a module holding the model to training mode, keeping the frozen stages (and,
    with ``freeze_bn``, the backbone's BatchNorm layers) in eval mode.

    Stages are looked up at every call: a distributed run may replace BatchNorm layers
    (SyncBatchNorm) after this is made.

    Attributes:
        model: The model.
        config: The optimiser section (``freeze`` and ``freeze_bn``).
    """

    model: VideoModel
    config: OptimConfig

    def __call__(self, module: nn.Module) -> None:
        """``module.train()``, then the fine-tuning's eval-mode parts back in eval mode."""
        module.train()
        if not self.config.freeze and not self.config.freeze_bn:
            return
        for name, stage in model_stages(self.model):
            if name in self.config.freeze:
                stage.eval()
            elif self.config.freeze_bn:
                for layer in stage.modules():
                    if isinstance(layer, _BatchNorm):
                        layer.eval()


def prepare_finetune(model: VideoModel, config: OptimConfig) -> TrainMode:
    """Freeze the stages ``optim.freeze`` names (``requires_grad`` False); before the model is
    wrapped for distributed training.

    Returns:
        How the training loop switches the model to training mode.

    Raises:
        ConfigError: on an unknown stage name (the message lists the model's stages).
    """
    for stage in frozen_stages(model, config):
        stage.requires_grad_(False)
    return TrainMode(model, config)
