"""Random-search fusion time: vectorised chunks vs one weight set at a time (Kahou et al. §5.2).

Times 100,000 uniform draws of per-model, per-class weights for 4 models x 7 classes on N
validation videos (AFEW 5.0 validation: 383), scored by :func:`vidfer.fusion.random_search`
(chunks of 4,096 sets, one matrix product per class), side by side with the plain loop that
scores one set per iteration (timed on a fraction of the draws and scaled), and the time of the
paper's whole schedule (100,000 uniform + local blocks of 100,000 until sigma < 1e-4) estimated
from the measured rate. Scores are random Dirichlet probabilities with a label-correlated bump.

Run: .venv/bin/python benchmarks/fusion.py [--videos 383] [--samples 100000] [--loop 2000]
"""

from __future__ import annotations

import argparse
import math
import time

import numpy as np

from vidfer.fusion.random_search import SearchSettings, fuse, random_search


def scores_and_labels(videos: int, models: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    labels = rng.integers(0, classes, videos)
    scores = rng.dirichlet(np.ones(classes), (models, videos))  # (M, N, K)
    scores[:, np.arange(videos), labels] += rng.uniform(0, 0.5, (models, videos))
    return scores / scores.sum(axis=2, keepdims=True), labels


def loop(scores: np.ndarray, labels: np.ndarray, draws: int) -> float:
    """Best accuracy of ``draws`` uniform sets scored one at a time."""
    rng = np.random.default_rng(1)
    best = 0.0
    for _ in range(draws):
        weights = rng.uniform(0, 1, scores.shape[::2])  # (M, K)
        weights /= weights.sum(axis=0, keepdims=True)
        best = max(best, float(np.mean(fuse(weights, scores).argmax(axis=1) == labels)))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--videos", type=int, default=383)
    parser.add_argument("--samples", type=int, default=100_000)
    parser.add_argument("--loop", type=int, default=2000, help="draws timed in the plain loop")
    args = parser.parse_args()
    scores, labels = scores_and_labels(args.videos, 4, 7)
    started = time.perf_counter()
    result = random_search(scores, labels, SearchSettings(samples=args.samples, block=0))
    vectorised = time.perf_counter() - started
    started = time.perf_counter()
    loop(scores, labels, args.loop)
    looped = (time.perf_counter() - started) * args.samples / args.loop
    blocks = math.ceil(math.log(1e-4 / 0.5) / math.log(0.9))
    print(f"{args.samples} uniform draws, 4 models x 7 classes, {args.videos} videos")
    print(f"vectorised chunks      {vectorised:8.2f} s   (best accuracy {result.accuracy:.3f})")
    print(f"one set per iteration  {looped:8.2f} s   (timed on {args.loop} draws, scaled)")
    print(f"speed-up               {looped / vectorised:8.1f} x")
    whole = vectorised * (1 + blocks * 100_000 / args.samples)
    print(f"paper's whole schedule (+{blocks} local blocks of 100,000): about {whole:.0f} s")


if __name__ == "__main__":
    main()
