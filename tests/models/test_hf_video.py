"""Hugging Face's VideoMAE and TimeSformer in the zoo (the optional extra ``vidfer[hf]``).

Each test writes a tiny randomly initialised model with ``save_pretrained`` in the layout of the
published checkpoints (VideoMAE-B's pre-training model with its decoder, TimeSformer's
video-classification model with its classifier) and the ``preprocessor_config.json`` their
processors published, then loads it through ``model.weights: <folder>``.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from vidfer.config import ModelConfig, parse_config
from vidfer.errors import CheckpointError, ConfigError
from vidfer.io.run_folder import RunDir
from vidfer.models import HFVideo, build_model, model_from_config
from vidfer.models.trained import load_run_model
from vidfer.pipelines import evaluate_run, resolve_config, train
from vidfer.pipelines.clip import check_clip_lengths
from vidfer.training.finetune import model_stages

transformers = pytest.importorskip("transformers")

K = 3
DATA = {"manifest": "/data/manifest.csv"}
TINY = {
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
    "image_size": 32,
    "patch_size": 16,
}
# name: (the published checkpoint's class, its extra architecture fields, its processor's file).
CASES: dict[str, tuple[str, str, dict[str, Any], dict[str, Any]]] = {
    "videomae": (
        "VideoMAEConfig",
        "VideoMAEForPreTraining",  # MCG-NJU/videomae-base: the MAE encoder and its decoder
        {
            "num_frames": 4,
            "tubelet_size": 2,
            "decoder_hidden_size": 16,
            "decoder_num_hidden_layers": 1,
            "decoder_num_attention_heads": 2,
            "decoder_intermediate_size": 32,
        },
        {  # as MCG-NJU/videomae-base publishes it (VideoMAEFeatureExtractor)
            "crop_size": 32,
            "do_center_crop": True,
            "do_normalize": True,
            "do_resize": True,
            "feature_extractor_type": "VideoMAEFeatureExtractor",
            "image_mean": [0.485, 0.456, 0.406],
            "image_std": [0.229, 0.224, 0.225],
            "resample": 2,
            "size": 32,
        },
    ),
    "timesformer": (
        "TimesformerConfig",
        "TimesformerForVideoClassification",  # facebook/timesformer-base-finetuned-k400
        {"num_frames": 8, "num_labels": 5},
        {  # as facebook/timesformer-base-finetuned-k400 publishes it (VideoMAEImageProcessor)
            "crop_size": {"height": 32, "width": 32},
            "do_center_crop": True,
            "do_normalize": True,
            "do_rescale": True,
            "do_resize": True,
            "image_mean": [0.45, 0.45, 0.45],
            "image_processor_type": "VideoMAEImageProcessor",
            "image_std": [0.225, 0.225, 0.225],
            "resample": 2,
            "rescale_factor": 1 / 255,
            "size": {"shortest_edge": 32},
        },
    ),
}


def _save(folder: Path, name: str) -> torch.nn.Module:
    """The published layout of a tiny, seeded, perturbed model (and its processor's settings)."""
    config_class, model_class, extra, processor = CASES[name]
    config = getattr(transformers, config_class)(**TINY, **extra)
    torch.manual_seed(5)
    model = getattr(transformers, model_class)(config)
    with torch.no_grad():
        for parameter in model.parameters():  # no zero bias or unit norm is left as initialised
            parameter.add_(0.05 * torch.randn_like(parameter))
    model.save_pretrained(folder)
    (folder / "preprocessor_config.json").write_text(json.dumps(processor, indent=2))
    return model.eval()


def _base(model: torch.nn.Module) -> torch.nn.Module:
    """The encoder (base model) of a published model."""
    return getattr(model, model.base_model_prefix)


@pytest.mark.parametrize("name", sorted(CASES))
def test_a_saved_folder_loads_bit_for_bit_and_gives_the_encoders_features(
    name: str, tmp_path: Path
) -> None:
    published = _save(tmp_path / name, name)
    model = model_from_config(ModelConfig(name=name, weights=str(tmp_path / name)), K).eval()
    assert isinstance(model, HFVideo)
    ours = model.state_dict()
    encoder = _base(published).state_dict()
    names = {key: re.sub(r"^encoder\.layer\.(\d+)\.", r"layer\1.", key) for key in encoder}
    assert {k for k in ours if not k.startswith("head.")} == set(names.values())
    for key, value in encoder.items():
        assert torch.equal(ours[names[key]], value), key
    assert ours["head.classifier.weight"].shape[0] == K  # a new classifier for K classes
    torch.manual_seed(6)
    clip = torch.randn(2, 3, model.clip_len, 32, 32)
    with torch.no_grad():
        theirs = _base(published)(pixel_values=clip.transpose(1, 2)).last_hidden_state
        tokens = model.tokens(clip)  # (2, L, D)
        features = model.forward_features(clip)  # (2, D, 1, H', W')
    difference = (tokens - theirs).abs().max().item()
    # What each model's classifier reads: VideoMAE the mean token, TimeSformer the class token.
    pooled = theirs.mean(dim=1) if name == "videomae" else theirs[:, 0]
    pooled_difference = (features.mean(dim=(2, 3, 4)) - pooled).abs().max().item()
    print(f"{name}: max |tokens - transformers| = {difference:.3g}, pooled {pooled_difference:.3g}")
    assert difference <= 1e-5 and pooled_difference <= 1e-5


def test_timesformer_with_its_classifier_scores_like_transformers(tmp_path: Path) -> None:
    published = _save(tmp_path / "t", "timesformer")
    model = model_from_config(ModelConfig(name="timesformer", weights=str(tmp_path / "t")), 5)
    model.eval()
    with torch.no_grad():  # the published classifier (linear) as vidfer's 1x1x1 conv
        weight, bias = model.head_parameters()
        weight.copy_(published.classifier.weight.reshape(weight.shape))
        bias.copy_(published.classifier.bias)
        torch.manual_seed(7)
        clip = torch.randn(2, 3, 8, 32, 32)
        expected = published(pixel_values=clip.transpose(1, 2)).logits  # (2, 5)
        scores = model(clip)  # (2, 5, 1): one clip
    assert (scores[:, :, 0] - expected).abs().max().item() <= 1e-5


def test_the_weights_fix_the_architecture_clip_and_normalisation(tmp_path: Path) -> None:
    _save(tmp_path / "v", "videomae")
    _save(tmp_path / "t", "timesformer")
    raw = {"data": DATA, "model": {"name": "videomae", "weights": str(tmp_path / "v")}}
    config = resolve_config(parse_config(raw))
    assert config.transforms.mean == (0.485, 0.456, 0.406)
    assert config.transforms.std == (0.229, 0.224, 0.225)
    assert config.transforms.size == 32
    assert config.sampler.clip_len == config.eval.clip_len == 4
    architecture = config.model.params["architecture"]
    assert architecture["hidden_size"] == 32 and architecture["num_frames"] == 4
    check_clip_lengths(config)
    timesformer = resolve_config(
        parse_config(
            {"data": DATA, "model": {"name": "timesformer", "weights": str(tmp_path / "t")}}
        )
    )
    assert timesformer.transforms.mean == pytest.approx((0.45,) * 3)  # 0-255 rescaled by 1/255
    assert timesformer.sampler.clip_len == 8
    # transformers 5's video processor writes video_preprocessor_config.json: read too.
    (tmp_path / "t" / "preprocessor_config.json").unlink()
    transformers.VideoMAEVideoProcessor(image_mean=[0.4] * 3, image_std=[0.2] * 3).save_pretrained(
        tmp_path / "t"
    )
    processed = resolve_config(
        parse_config(
            {"data": DATA, "model": {"name": "timesformer", "weights": str(tmp_path / "t")}}
        )
    )
    assert processed.transforms.mean == pytest.approx((0.4,) * 3)
    assert processed.transforms.std == pytest.approx((0.2,) * 3)
    untrained = {"name": "videomae", "params": {"architecture": {**TINY, "num_frames": 2}}}
    random_init = resolve_config(parse_config({"data": DATA, "model": untrained}))
    assert random_init.sampler.clip_len == 2 and random_init.transforms.size == 32
    assert random_init.transforms.mean == parse_config({"data": DATA}).transforms.mean
    # The run folder records it all: rebuilt without the weights, it has their architecture.
    rebuilt = model_from_config(config.model.model_copy(update={"weights": None}), K)
    assert rebuilt.clip_len == 4 and rebuilt.feature_channels == 32

    with pytest.raises(
        ConfigError, match=r"transforms.size=112: model 'videomae' takes frames of 32"
    ):
        resolve_config(parse_config({**raw, "transforms": {"size": 112}}))
    with pytest.raises(
        ConfigError, match="takes clips of 4 frames, but sampler 'uniform' with clip_len 16"
    ):
        check_clip_lengths(resolve_config(parse_config({**raw, "sampler": {"clip_len": 16}})))
    written = {**raw["model"], "params": {"architecture": {**architecture, "num_frames": 8}}}
    with pytest.raises(ConfigError, match=r"model\.params\.architecture: num_frames differ"):
        resolve_config(parse_config({**raw, "model": written}))


def test_unusable_weights_are_named_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VIDFER_OFFLINE", "1")  # nothing is downloaded
    hub = ModelConfig(name="videomae", weights="MCG-NJU/videomae-base")
    with pytest.raises(CheckpointError) as error:
        resolve_config(parse_config({"data": DATA, "model": hub.model_dump()}))
    message = str(error.value)
    assert "'MCG-NJU/videomae-base'" in message and "pass a local folder" in message
    assert "\n" not in message
    with pytest.raises(CheckpointError, match="pass a local folder"):
        model_from_config(hub, K)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match=r"no config\.json"):
        model_from_config(ModelConfig(name="videomae", weights=str(tmp_path / "empty")), K)
    with pytest.raises(CheckpointError, match="no such folder"):
        model_from_config(ModelConfig(name="videomae", weights=str(tmp_path / "gone")), K)
    _save(tmp_path / "v", "videomae")
    config_file = tmp_path / "v" / "config.json"
    saved = json.loads(config_file.read_text())
    config_file.write_text(json.dumps({**saved, "num_hidden_layers": 3}))
    with pytest.raises(CheckpointError, match=r"missing: encoder\.layer\.2\."):
        model_from_config(ModelConfig(name="videomae", weights=str(tmp_path / "v")), K)
    config_file.write_text(json.dumps({**saved, "intermediate_size": 48}))
    shape = r"shape: encoder\.layer\.0\.intermediate\.dense\.bias \(64,\) \(file\) vs \(48,\)"
    with pytest.raises(CheckpointError, match=shape):
        model_from_config(ModelConfig(name="videomae", weights=str(tmp_path / "v")), K)
    _save(tmp_path / "t", "timesformer")
    with pytest.raises(ConfigError, match="a 'timesformer' model, not 'videomae'"):
        model_from_config(ModelConfig(name="videomae", weights=str(tmp_path / "t")), K)


@pytest.mark.slow
def test_transformers_is_imported_only_when_used_and_its_absence_is_named() -> None:
    # A blocked import is what Python does without the package.
    script = (
        "import sys; sys.modules['transformers'] = None\n"
        "import vidfer.models, vidfer.pipelines\n"
        "from vidfer.errors import ConfigError\n"
        "try:\n"
        "    vidfer.models.build_model('timesformer', 2)\n"
        "except ConfigError as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert "model 'timesformer' needs Hugging Face transformers" in done.stdout
    assert "pip install 'vidfer[hf]'" in done.stdout


def test_every_layer_is_a_stage_and_the_clip_is_fixed() -> None:
    torch.manual_seed(0)
    model = build_model("videomae", K, architecture={**TINY, "num_frames": 4})
    names = [name for name, _ in model_stages(model)]
    assert names == ["embeddings", "layer0", "layer1"]  # mean pooling: no final layernorm
    timesformer = build_model("timesformer", K, architecture={**TINY, "num_frames": 2})
    assert [name for name, _ in model_stages(timesformer)][-1] == "layernorm"
    assert not model.geometry.dense and model.geometry.receptive_field == 4
    video = torch.randn(1, 3, 9, 32, 32)
    with torch.no_grad():
        scores = model.eval()(video)  # two clips of 4 frames, the last frame ignored
        assert scores.shape == (1, K, 2)
        torch.testing.assert_close(scores[:, :, 1], model(video[:, :, 4:8])[:, :, 0])
    with pytest.raises(ConfigError, match="in_size=32"):
        model(torch.randn(1, 3, 4, 64, 64))
    with pytest.raises(ConfigError, match="takes 3 channels, got 1"):
        model(torch.randn(1, 1, 4, 32, 32))
    with pytest.raises(ConfigError, match=r"model\.params\.architecture: hidden_sise not a field"):
        build_model("videomae", K, architecture={"hidden_sise": 8})


@pytest.mark.slow
def test_a_run_starts_from_a_saved_folder_and_is_rebuilt_without_it(
    square_dataset: Path, tmp_path: Path
) -> None:
    folder = tmp_path / "videomae"
    published = _save(folder, "videomae")
    raw = {
        "data": {"manifest": str(square_dataset), "prepare": {"size": 32}, "workers": 1},
        "model": {"name": "videomae", "weights": str(folder)},
        "optim": {"freeze": ["embeddings"], "layer_decay": 0.75},
        "train": {"epochs": 1, "batch_size": 4},
    }
    torch.manual_seed(0)
    result = train(parse_config(raw), tmp_path / "run")
    assert result.epochs == 1
    run = RunDir(tmp_path / "run")
    recorded = run.config()
    assert recorded.sampler.clip_len == 4 and recorded.transforms.size == 32
    assert recorded.transforms.mean == (0.485, 0.456, 0.406)
    train(parse_config(raw), tmp_path / "run", resume=True)  # resolved alike: it resumes
    for file in folder.iterdir():
        file.unlink()
    folder.rmdir()  # the run holds everything it needs
    model, _ = load_run_model(run)
    assert isinstance(model, HFVideo) and model.clip_len == 4
    assert "accuracy" in evaluate_run(run.folder, "test")  # windows of 4 frames
    key = "embeddings.patch_embeddings.projection.weight"  # frozen: as loaded
    assert torch.equal(model.state_dict()[key], _base(published).state_dict()[key])
    last = "layer1.output.dense.weight"  # trained
    # Another task starts from the run (its architecture from the run's config.yaml).
    transferred = model_from_config(ModelConfig(name="videomae", weights=str(run.folder)), 2)
    assert torch.equal(transferred.state_dict()[last], model.state_dict()[last])
    assert not torch.equal(
        model.state_dict()[last],
        _base(published).state_dict()["encoder.layer.1.output.dense.weight"],
    )
