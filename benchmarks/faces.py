"""Face pipeline throughput against decoding and against a peer (facenet-pytorch), side by side.

For each sample video (carphone: one face, 176x144; bikes: 640x272, a cyclist's face in a few
frames) it times, in one run on this machine:

* PyAV decoding to RGB arrays;
* the peer: facenet-pytorch 2.6.0's batched MTCNN, detection only (boxes, probabilities and
  landmarks of every frame, 32 frames per call, the same weights and thresholds as vidfer);
* :func:`vidfer.faces.process_faces` (detect + track the main face + align + crop to 112x112) with
  MTCNN detecting every frame (``detect_every: 1``), with each ``--detect-every`` N (full
  detection every N frames, faces carried between by Lucas-Kanade + MTCNN's ``detect_near``
  around small faces, O-Net alone on large ones), and with the
  Haar cascade.

It prints frames per second, the ratio of each stage's time to decoding's, vidfer's speed-up over
the peer, and how each N agrees with detecting every frame: frames where the main face is found
by one and not the other, and the RMS distance of the main face's 5 landmarks (in frame pixels,
and in pixels of the aligned crop: both landmark sets mapped by the N run's alignment
matrices), next to the same measure between detecting every frame and detecting every frame of
the same frames moved one pixel to the right (the detector's own repeatability: the floor of any
agreement with it). Each stage runs once per round, ``--repeats`` rounds after a warm-up
call, and each of its runs is timed side by side with decoding: the video is decoded just before
and just after it. The seconds printed are a stage's best round; its ratio to decoding is the
median over the rounds of its run's time over the faster of the two decodings around it. On
these shared machines the same decoding loop took from 0.18 to 0.66 s on bikes in consecutive
calls, so a best decoding measured a minute before a stage says little about the stage's cost.
The machine's load average is printed first and last.

The peer is installed for the benchmark only, without its dependencies (they pin an old torch):
``pip install --no-deps facenet-pytorch==2.6.0``. Its package ``__init__`` imports modules that
need ``requests``; only its MTCNN module is loaded here, without that ``__init__``.

    .venv/bin/python benchmarks/faces.py [--videos carphone bikes] [--max-frames N] [--repeats 2]
        [--detect-every 8 16] [--threads N]
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import os
import sys
import time
import types
from collections.abc import Callable
from functools import partial
from typing import Any, TypeVar

import av
import numpy as np
import torch

from vidfer.assets import asset_path, fetch_assets
from vidfer.faces import FaceConfig, FaceResult, get_detector, process_faces
from vidfer.faces.align import alignment_matrices, transform_points

T = TypeVar("T")
PEER_BATCH = 32


def decode(name: str, max_frames: int | None) -> np.ndarray:
    """``(T, H, W, 3)`` uint8 RGB frames of a sample video."""
    frames = []
    with av.open(str(asset_path(name))) as container:
        for frame in container.decode(video=0):
            frames.append(frame.to_ndarray(format="rgb24"))
            if max_frames is not None and len(frames) == max_frames:
                break
    return np.stack(frames)


def timed(run: Callable[[], T]) -> tuple[float, T]:
    """Wall time of one call, in seconds, and its result."""
    start = time.perf_counter()
    result = run()
    return time.perf_counter() - start, result


def paired_times(
    run: Callable[[], T], decoding: Callable[[], object], repeats: int
) -> tuple[float, float, float, T]:
    """``run`` timed ``repeats`` times, each time between two decodings of the video.

    Returns:
        The best time, the best decoding time, the median of each run's time over the faster of
        the two decodings around it, and the last run's result.
    """
    times, decodes, ratios = [], [], []
    for _ in range(repeats):
        before, _ = timed(decoding)
        seconds, result = timed(run)
        after, _ = timed(decoding)
        times.append(seconds)
        decodes += [before, after]
        ratios.append(seconds / min(before, after))
    return min(times), min(decodes), float(np.median(ratios)), result


def peer_detector() -> Any:
    """facenet-pytorch's MTCNN with vidfer's defaults (min face 20, thresholds 0.6/0.7/0.7).

    Raises:
        SystemExit: if facenet-pytorch is not installed, with the command that installs it.
    """
    spec = importlib.util.find_spec("facenet_pytorch")
    if spec is None or spec.submodule_search_locations is None:
        sys.exit("the peer is missing: pip install --no-deps facenet-pytorch==2.6.0")
    # Its __init__ imports the face-recognition model, which needs `requests`: skip it.
    package = types.ModuleType("facenet_pytorch")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["facenet_pytorch"] = package
    mtcnn = importlib.import_module("facenet_pytorch.models.mtcnn")
    return mtcnn.MTCNN(
        keep_all=True, min_face_size=20, thresholds=[0.6, 0.7, 0.7], factor=0.709, device="cpu"
    )


def peer_detect(peer: Any, frames: np.ndarray) -> int:
    """Run the peer on every frame, ``PEER_BATCH`` frames per call; frames with a face."""
    found = 0
    for start in range(0, len(frames), PEER_BATCH):
        boxes, _, _ = peer.detect(frames[start : start + PEER_BATCH], landmarks=True)
        found += sum(b is not None and len(b) > 0 for b in boxes)
    return found


def landmark_rms(full: np.ndarray, ours: np.ndarray) -> tuple[float, float]:
    """RMS distance of two sets of landmarks ``(N, 5, 2)``: in frame pixels, and in pixels of the
    aligned crop (both mapped by the alignment matrices of ``ours``)."""
    frame_rms = np.sqrt(((full - ours) ** 2).sum(axis=2).mean())
    cfg = FaceConfig()
    matrices = alignment_matrices(ours, None, cfg.size, margin=cfg.margin)  # (N, 2, 3)
    shift = transform_points(full, matrices) - transform_points(ours, matrices)  # (N, 5, 2)
    return float(frame_rms), float(np.sqrt((shift**2).sum(axis=2).mean()))


def _landmarks(result: FaceResult, frames: np.ndarray) -> np.ndarray:
    """The main face's landmarks ``(N, 5, 2)`` in ``frames``."""
    return np.array([result.frames[i]["landmarks"] for i in frames], np.float64)


def agreement(every: FaceResult, default: FaceResult) -> str:
    """Frames found by one and not the other, and the landmark RMS on frames both found."""
    ok_every = np.array([r["status"] == "ok" for r in every.frames])
    ok_default = np.array([r["status"] == "ok" for r in default.frames])
    both = np.flatnonzero(ok_every & ok_default)
    differ = int((ok_every != ok_default).sum())
    if not len(both):
        return f"frames differing: {differ}"
    frame_rms, crop_rms = landmark_rms(_landmarks(every, both), _landmarks(default, both))
    size = FaceConfig().size
    return (
        f"frames differing: {differ}; landmark RMS: frame {frame_rms:.2f} px, "
        f"{size}x{size} crop {crop_rms:.2f} px"
    )


def shifted_agreement(frames: np.ndarray, every: FaceResult) -> str:
    """Full detection against itself on the same frames moved one pixel right: in each frame
    with the main face, the face detected nearest to it (its landmarks moved back), against it.
    How far the detector's own landmarks move when the face moves by a pixel: the floor of any
    agreement with it."""
    found = np.flatnonzero([r["status"] == "ok" for r in every.frames])
    if not len(found):
        return "no main face"
    moved = np.zeros_like(frames[found])  # (N, H, W, 3), column 0 black
    moved[:, :, 1:] = frames[found][:, :, :-1]
    cfg = FaceConfig()
    detector = get_detector("mtcnn", cfg.min_face_size, cfg.batch_size, cfg.device)
    main = np.array([every.frames[i]["box"] for i in found])  # (N, 4)
    centres = (main[:, :2] + main[:, 2:]) / 2 + np.array([1.0, 0.0])  # (N, 2) once moved
    pairs = []
    for j, faces in enumerate(detector.detect(moved)):
        if len(faces) and faces.landmarks is not None:
            nearest = np.argmin(
                np.abs((faces.boxes[:, :2] + faces.boxes[:, 2:]) / 2 - centres[j]).sum(1)
            )
            pairs.append((j, faces.landmarks[nearest] - np.array([1.0, 0.0])))
    if not pairs:
        return "no face in the moved frames"
    rows = np.array([j for j, _ in pairs])
    frame_rms, crop_rms = landmark_rms(
        _landmarks(every, found[rows]), np.array([p for _, p in pairs])
    )
    return (
        f"{len(pairs)} of {len(found)} frames; landmark RMS: frame {frame_rms:.2f} px, "
        f"{cfg.size}x{cfg.size} crop {crop_rms:.2f} px"
    )


def main() -> None:
    """Run the benchmark and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", nargs="+", default=["carphone", "bikes"])
    parser.add_argument("--max-frames", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--detect-every", type=int, nargs="+", default=[FaceConfig().detect_every])
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's)"
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    fetch_assets(["mtcnn_pnet", "mtcnn_rnet", "mtcnn_onet", *args.videos])
    peer = peer_detector()

    configs = {"mtcnn, every frame": FaceConfig(detect_every=1)}
    for every in args.detect_every:
        configs[f"mtcnn, every {every}"] = FaceConfig(detect_every=every)
    configs["haar"] = FaceConfig(detector="haar")
    print(f"torch threads: {torch.get_num_threads()}; load average {os.getloadavg()}")
    header = f"{'video':<9} {'frames':>6} {'size':>8} {'stage':<26} {'seconds':>8} {'fps':>7}"
    print(header + f" {'x decode':>8} {'x peer':>7}")
    for name in args.videos:
        frames = decode(name, args.max_frames)
        size = f"{frames.shape[2]}x{frames.shape[1]}"
        prefix = f"{name:<9} {len(frames):>6} {size:>8}"
        decoding = partial(decode, name, args.max_frames)
        peer_detect(peer, frames[:2])  # warm-up
        peer_s, peer_decode_s, peer_x, found = paired_times(
            partial(peer_detect, peer, frames), decoding, args.repeats
        )
        timings: dict[str, tuple[float, float]] = {}  # best seconds, ratio to decoding
        decodes = [peer_decode_s]
        results: dict[str, FaceResult] = {}
        for label, cfg in configs.items():
            process_faces(frames[:2], cfg)  # warm-up: builds the cached detector, sets up kernels
            seconds, decode_s, ratio, results[label] = paired_times(
                partial(process_faces, frames, cfg), decoding, args.repeats
            )
            timings[label] = (seconds, ratio)
            decodes.append(decode_s)
        decode_s = min(decodes)
        print(f"{prefix} {'decode (PyAV)':<26} {decode_s:>8.2f} {len(frames) / decode_s:>7.1f}")
        print(
            f"{prefix} {'peer: facenet-pytorch':<26} {peer_s:>8.2f} {len(frames) / peer_s:>7.1f} "
            f"{peer_x:>8.1f} {1.0:>7.2f}   a face in {found / len(frames):.0%} of frames"
        )
        for label, (seconds, ratio) in timings.items():
            print(
                f"{prefix} {label:<26} {seconds:>8.2f} {len(frames) / seconds:>7.1f} "
                f"{ratio:>8.1f} {peer_s / seconds:>7.2f}   main face in "
                f"{results[label].face_fraction:.0%} of frames: {results[label].status}"
            )
        for every in args.detect_every:
            agree = agreement(results["mtcnn, every frame"], results[f"mtcnn, every {every}"])
            print(f"{name}: every {every} vs every frame: {agree}")
        shifted = shifted_agreement(frames, results["mtcnn, every frame"])
        print(f"{name}: every frame vs every frame on the frames moved 1 px: {shifted}")
    print(f"load average {os.getloadavg()}")


if __name__ == "__main__":
    main()
