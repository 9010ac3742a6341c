"""Record Keras's own outputs of fer's mini-Xception as the fixture that proves vidfer's port.

Keras is not a vidfer dependency, so this runs in a throw-away virtual environment with Keras 3 on
its PyTorch backend (torch 2.14.1 installs from the local wheel cache), from the repository root:

    python3 -m venv /tmp/kerasvenv
    /tmp/kerasvenv/bin/pip install keras torch==2.14.1 torchvision==0.29.1 h5py numpy \
        "av<17" "opencv-python-headless<5"
    .venv/bin/python -c "from vidfer.assets import fetch_assets; fetch_assets()"
    KERAS_BACKEND=torch PYTHONPATH=src /tmp/kerasvenv/bin/python \
        scripts/record_mini_xception_fixture.py

Inputs: 4 seeded random 64x64 gray images and 2 aligned 64x64 gray face crops of the carphone
video (frames 0 and 60, made by vidfer's MTCNN face pipeline), all uint8. Outputs, per input: the
Keras model's softmax probabilities and its logits (the global-average-pooled class scores before
the softmax). Written to tests/fixtures/mini_xception_keras.npz with the Keras version.
"""

from __future__ import annotations

import os
from pathlib import Path

import av
import numpy as np

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "mini_xception_keras.npz"
CARPHONE_FRAMES = (0, 60)


def carphone_crops() -> np.ndarray:
    """``(2, 64, 64)`` uint8 aligned gray face crops of the carphone video."""
    from vidfer.assets import asset_path
    from vidfer.faces import FaceConfig, process_faces

    with av.open(str(asset_path("carphone"))) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    picked = frames[list(CARPHONE_FRAMES)]  # (2, H, W, 3)
    result = process_faces(picked, FaceConfig(size=64, grayscale=True, min_face_fraction=1.0))
    if result.status != "ok":
        raise SystemExit("no face found in the carphone frames; cannot record the fixture")
    return result.crops[:, :, :, 0]  # (2, 64, 64, 1) -> (2, 64, 64)


def main() -> None:
    """Record the fixture."""
    if os.environ.get("KERAS_BACKEND") != "torch":
        raise SystemExit("set KERAS_BACKEND=torch (see this script's docstring)")
    import keras

    from vidfer.assets import asset_path

    rng = np.random.default_rng(20240611)
    random_images = rng.integers(0, 256, size=(4, 64, 64), dtype=np.uint8)
    images = np.concatenate([random_images, carphone_crops()])  # (6, 64, 64) uint8

    model = keras.models.load_model(str(asset_path("fer_mini_xception")), compile=False)
    # fer's preprocessing: x / 255, then (x - 0.5) * 2; NHWC with one channel.
    x = ((images.astype(np.float32) / 255.0 - 0.5) * 2.0)[..., None]  # (6, 64, 64, 1)
    probs = np.asarray(model.predict(x, verbose=0), dtype=np.float32)
    pooled = model.get_layer("global_average_pooling2d_1").output
    logits_model = keras.Model(model.inputs, pooled)
    logits = np.asarray(logits_model.predict(x, verbose=0), dtype=np.float32)

    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        FIXTURE,
        images=images,
        probs=probs,
        logits=logits,
        keras_version=np.array(keras.__version__),
    )
    print(f"wrote {FIXTURE}: images {images.shape}, probs {probs.shape}, keras {keras.__version__}")


if __name__ == "__main__":
    main()
