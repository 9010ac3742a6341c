"""Fine-tuning controls: frozen stages, layer-wise learning-rate decay, frozen BatchNorm."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from vidfer.config import ModelConfig, OptimConfig, load_config
from vidfer.config.model import AttentionConfig
from vidfer.errors import ConfigError
from vidfer.io.checkpoint import load_checkpoint
from vidfer.io.run_folder import RunDir
from vidfer.models import VideoModel, build_model, model_from_config
from vidfer.training.finetune import model_stages, prepare_finetune
from vidfer.training.optim import build_optimizer, set_epoch_lr
from vidfer.training.trainer import train_clip_model

RESNET_STAGES = ["stem", "layer1", "layer2", "layer3", "layer4"]


def _tiny_resnet() -> VideoModel:
    return build_model("resnet3d_18", num_classes=3, width=0.125)


def test_defaults_give_exactly_todays_param_groups():
    for config in (OptimConfig(), OptimConfig(name="sgd", head_lr=0.1, head_weight_decay=0.2)):
        model = _tiny_resnet()
        extra = nn.Parameter(torch.zeros(3))
        head_lr = config.head_lr or config.lr
        head_wd = config.head_weight_decay or config.weight_decay
        before = [  # the groups built before the fine-tuning options
            {
                "params": model.backbone_parameters(),
                "lr": config.lr,
                "weight_decay": config.weight_decay,
                "base_lr": config.lr,
            },
            {
                "params": [*model.head_parameters(), extra],
                "lr": head_lr,
                "weight_decay": head_wd,
                "base_lr": head_lr,
            },
        ]
        kind = torch.optim.SGD if config.name == "sgd" else torch.optim.AdamW
        options = {"momentum": config.momentum} if config.name == "sgd" else {}
        expected = kind(before, lr=config.lr, **options)
        built = build_optimizer(model, config, extra_head=[extra])
        assert type(built) is kind
        assert built.defaults == expected.defaults
        assert len(built.param_groups) == len(expected.param_groups) == 2
        for ours, theirs in zip(built.param_groups, expected.param_groups, strict=True):
            assert list(ours) == list(theirs)  # the same keys in the same order
            assert [id(p) for p in ours["params"]] == [id(p) for p in theirs["params"]]
            assert {k: v for k, v in ours.items() if k != "params"} == {
                k: v for k, v in theirs.items() if k != "params"
            }
        mode = prepare_finetune(model, config)
        assert all(p.requires_grad for p in model.parameters())
        model.eval()
        mode(model)
        assert all(module.training for module in model.modules())


def test_stage_names_of_the_families():
    assert [name for name, _ in model_stages(_tiny_resnet())] == RESNET_STAGES
    c3d = build_model("c3d", num_classes=3, width=0.125)
    assert [name for name, _ in model_stages(c3d)] == ["features", "fc6", "fc7"]
    xception = build_model("i3d_mini_xception", num_classes=3)
    assert [name for name, _ in model_stages(xception)] == ["backbone"]
    # An attention model has its base model's stages; the attention module trains like the head.
    attentive = model_from_config(
        ModelConfig(
            name="resnet3d_18", params={"width": 0.125}, attention=AttentionConfig(name="mask")
        ),
        num_classes=3,
    )
    assert [name for name, _ in model_stages(attentive)] == RESNET_STAGES
    for model in (c3d, xception, attentive):  # the stages hold the whole backbone
        held = [id(p) for _, stage in model_stages(model) for p in stage.parameters()]
        assert held == [id(p) for p in model.backbone_parameters()]


def test_layer_decay_gives_each_stage_its_documented_rate():
    model = _tiny_resnet()
    config = OptimConfig(lr=0.1, head_lr=0.5, layer_decay=0.5, freeze=["stem"])
    optimizer = build_optimizer(model, config)
    groups = optimizer.param_groups
    # stem frozen; layer1 .. layer4 at lr * d**4 .. lr * d; the head at head_lr.
    assert [group["lr"] for group in groups] == [0.1 * 0.5**k for k in (4, 3, 2, 1)] + [0.5]
    assert [group["base_lr"] for group in groups] == [group["lr"] for group in groups]
    stages = dict(model_stages(model))
    for group, name in zip(groups, RESNET_STAGES[1:], strict=False):
        assert [id(p) for p in group["params"]] == [id(p) for p in stages[name].parameters()]
    assert [id(p) for p in groups[-1]["params"]] == [id(p) for p in model.head_parameters()]
    set_epoch_lr(optimizer, 0.5)
    assert groups[-2]["lr"] == pytest.approx(0.1 * 0.5 * 0.5)
    # Without freezing, the stem comes first at lr * d**5; the head without head_lr at lr.
    plain = build_optimizer(_tiny_resnet(), OptimConfig(lr=0.1, layer_decay=0.5))
    assert [g["lr"] for g in plain.param_groups] == [0.1 * 0.5**k for k in (5, 4, 3, 2, 1, 0)]


def test_an_unknown_stage_is_a_one_line_error_listing_the_stages():
    model = _tiny_resnet()
    config = OptimConfig(freeze=["stem", "layer5", "head"])
    with pytest.raises(ConfigError) as error:
        prepare_finetune(model, config)
    message = str(error.value)
    assert "\n" not in message
    assert "'layer5', 'head'" in message
    assert message.endswith("its stages are stem, layer1, layer2, layer3, layer4")
    assert all(p.requires_grad for p in model.parameters())  # nothing frozen on an error
    with pytest.raises(ConfigError, match="'layer5'"):
        build_optimizer(model, config)
    for bad in (0, 1.5):
        with pytest.raises(ValueError, match="layer_decay"):
            OptimConfig(layer_decay=bad)


def test_train_mode_keeps_frozen_stages_and_batchnorm_in_eval_mode():
    model = _tiny_resnet()
    mode = prepare_finetune(model, OptimConfig(freeze=["stem"], freeze_bn=True))
    stages = dict(model_stages(model))
    assert not any(p.requires_grad for p in stages["stem"].parameters())
    assert all(p.requires_grad for p in stages["layer1"].parameters())
    for _ in range(2):  # every switch to training mode, e.g. after an evaluation
        model.eval()
        mode(model)
        assert model.training and model.head.training
        assert not any(module.training for module in stages["stem"].modules())
        for module in stages["layer2"].modules():
            assert module.training != isinstance(module, nn.BatchNorm3d)


def _config(folder: Path, manifest: Path, weights: Path, epochs: int) -> Path:
    config = {
        "seed": 5,
        "data": {"manifest": str(manifest), "prepare": {"size": 32}, "workers": 1},
        "sampler": {  # a learning sampler: clean scores in eval mode at every step
            "name": "stochastic_softmax",
            "clip_len": 8,
            "params": {"gamma": 1.0, "warmup": 0, "explore": 1},
        },
        "transforms": {"size": 28},
        "model": {"name": "resnet3d_18", "params": {"width": 0.125}, "weights": str(weights)},
        "optim": {
            "lr": 0.01,
            "schedule": "none",
            "freeze": ["stem", "layer1"],
            "layer_decay": 0.5,
            "freeze_bn": True,
        },
        "train": {"epochs": epochs, "batch_size": 2},
    }
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_training_keeps_frozen_weights_and_statistics_and_resumes_exactly(square_dataset, tmp_path):
    start = _tiny_resnet()
    with torch.no_grad():  # statistics that training in train mode would move
        for module in start.modules():
            if isinstance(module, nn.BatchNorm3d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.9, 1.1)
    weights = tmp_path / "start.pth"
    torch.save(start.state_dict(), weights)
    initial = start.state_dict()

    straight = tmp_path / "straight"
    straight.mkdir()
    config = load_config(_config(straight, square_dataset, weights, 2))
    train_clip_model(config, RunDir(straight / "run"))
    trained = load_checkpoint(straight / "run" / "checkpoints" / "last.pt")["model"]
    for name, tensor in trained.items():
        frozen = name.startswith(("stem.", "layer1."))
        statistic = name.endswith(("running_mean", "running_var", "num_batches_tracked"))
        if frozen or statistic:
            assert torch.equal(tensor, initial[name]), name
        elif name.endswith("weight"):
            assert not torch.equal(tensor, initial[name]), name

    # One epoch, then resumed to two: bit for bit the straight run.
    split = tmp_path / "split"
    split.mkdir()
    train_clip_model(load_config(_config(split, square_dataset, weights, 1)), RunDir(split / "run"))
    resumed = _config(split, square_dataset, weights, 2)
    (split / "run" / "config.yaml").write_text(resumed.read_text())
    train_clip_model(load_config(resumed), RunDir(split / "run"), resume=True)
    again = load_checkpoint(split / "run" / "checkpoints" / "last.pt")["model"]
    assert again.keys() == trained.keys()
    for name, tensor in trained.items():
        assert torch.equal(tensor, again[name]), name
