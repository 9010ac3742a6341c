"""Metrics: hand-computed ROC-EER accuracy, AUC, macro-F1, and mean ± standard error."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score, roc_auc_score

from vidfer.evaluation.metrics import (
    classification_metrics,
    eer_point,
    mean_sem,
    summarise,
    summarise_per_class,
    with_aliases,
)


def test_eer_accuracy_matches_a_hand_computed_example():
    # Scores of 3 negatives and 3 positives. Thresholds (positive when score >= t), by hand:
    #   t=0.9: TP 1, FP 0 -> FPR 0,   FNR 2/3
    #   t=0.8: TP 2, FP 0 -> FPR 0,   FNR 1/3
    #   t=0.7: TP 2, FP 1 -> FPR 1/3, FNR 1/3   <- equal error rate 1/3
    #   t=0.3: TP 3, FP 1 -> FPR 1/3, FNR 0
    # At t=0.7: correct = 2 positives + 2 negatives = 4 of 6.
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.7, 0.3, 0.8, 0.9]
    point = eer_point(labels, scores)
    assert point == pytest.approx({"threshold": 0.7, "eer": 1 / 3, "accuracy": 4 / 6})

    # Imbalanced (4 negatives, 2 positives): at t=0.6 FPR 1/4 and FNR 1/2, at t=0.5 FPR 1/4 and
    # FNR 0; the closest are t=0.6 and t=0.5 (|difference| 1/4 both), the higher wins:
    # correct = 1 positive + 3 negatives = 4 of 6, where 0.5 would give 5 of 6.
    point = eer_point([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.5, 0.9])
    assert point == pytest.approx({"threshold": 0.6, "eer": 3 / 8, "accuracy": 4 / 6})

    with pytest.raises(ValueError, match="both classes"):
        eer_point([1, 1], [0.2, 0.3])


def test_binary_metrics_from_probabilities():
    labels = np.array([0, 0, 0, 1, 1, 1])
    positive = np.array([0.1, 0.2, 0.7, 0.3, 0.8, 0.9])
    probabilities = np.stack([1 - positive, positive], axis=1)
    metrics = classification_metrics(
        labels, probabilities.argmax(axis=1), ["no_pain", "pain"], probabilities
    )
    # argmax: positive above 0.5 -> [0, 0, 1, 0, 1, 1]: 4 of 6 right.
    assert metrics["accuracy"] == pytest.approx(4 / 6)
    assert metrics["confusion"] == [[2, 1], [1, 2]]
    # AUC by hand: of the 9 (positive, negative) pairs the positive scores higher in 8 (all but
    # 0.3 against 0.7).
    assert metrics["roc_auc"] == pytest.approx(8 / 9)
    assert metrics["eer_accuracy"] == pytest.approx(4 / 6)
    assert metrics["eer"] == pytest.approx(1 / 3)
    # F1 of each class is 2/3 (precision = recall = 2/3).
    assert metrics["macro_f1"] == pytest.approx(2 / 3)


def test_multiclass_auc_is_one_vs_rest_and_f1_is_macro():
    rng = np.random.default_rng(0)
    labels = np.array([0, 0, 1, 1, 2, 2, 2, 1])
    probabilities = rng.dirichlet(np.ones(3), size=len(labels))
    predicted = probabilities.argmax(axis=1)
    metrics = classification_metrics(labels, predicted, ["a", "b", "c"], probabilities)
    expected = roc_auc_score(labels, probabilities, multi_class="ovr", average="macro")
    assert metrics["roc_auc"] == pytest.approx(expected)
    assert metrics["eer_accuracy"] is None  # binary only
    per_class_f1 = []
    for k in range(3):
        tp = np.sum((predicted == k) & (labels == k))
        precision = tp / max(np.sum(predicted == k), 1)
        recall = tp / np.sum(labels == k)
        per_class_f1.append(0.0 if tp == 0 else 2 * precision * recall / (precision + recall))
    assert metrics["macro_f1"] == pytest.approx(np.mean(per_class_f1))

    # A fold missing class "c": AUC over the two classes present; no probabilities: None.
    some = classification_metrics(labels[:4], predicted[:4], ["a", "b", "c"], probabilities[:4])
    assert some["per_class_roc_auc"]["c"] is None
    assert some["roc_auc"] == pytest.approx(
        np.mean([roc_auc_score(labels[:4] == k, probabilities[:4, k]) for k in (0, 1)])
    )
    assert classification_metrics(labels, predicted, ["a", "b", "c"])["roc_auc"] is None
    one_class = classification_metrics([1, 1], [1, 0], ["a", "b"], np.full((2, 2), 0.5))
    assert one_class["roc_auc"] is None and one_class["eer_accuracy"] is None


def test_mean_and_standard_error():
    values = [0.5, 0.7, 0.6, 0.9]
    result = mean_sem(values)
    assert result["mean"] == pytest.approx(0.675)
    assert result["sem"] == pytest.approx(np.std(values, ddof=1) / math.sqrt(4))
    assert result["n"] == 4
    assert mean_sem([0.4]) == {"mean": 0.4, "sem": 0.0, "n": 1}
    folds = [
        {"accuracy": 0.5, "roc_auc": None},
        {"accuracy": 0.7, "roc_auc": 0.8},
    ]
    summary = summarise(folds, ["accuracy", "roc_auc", "eer_accuracy"])
    assert summary["accuracy"]["n"] == 2 and summary["roc_auc"] == mean_sem([0.8])
    assert "eer_accuracy" not in summary


@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_uar_and_war_are_balanced_accuracy_and_accuracy():
    # Imbalanced: 6 videos of class 0, 2 of class 1, 2 of class 2; class 3 has none.
    true = [0, 0, 0, 0, 0, 0, 1, 1, 2, 2]
    pred = [0, 0, 0, 0, 0, 1, 1, 0, 2, 3]
    metrics = classification_metrics(true, pred, ["a", "b", "c", "d"])
    assert metrics["war"] == metrics["accuracy"] == pytest.approx(accuracy_score(true, pred))
    assert metrics["uar"] == metrics["mean_class_accuracy"]
    assert metrics["uar"] == pytest.approx(balanced_accuracy_score(true, pred))
    assert metrics["uar"] == pytest.approx((5 / 6 + 1 / 2 + 1 / 2) / 3)
    recalls = recall_score(true, pred, labels=[0, 1, 2], average=None)
    assert metrics["per_class_recall"] == {
        "a": recalls[0],
        "b": recalls[1],
        "c": recalls[2],
        "d": None,
    }
    # Metrics written before the aliases existed read with them.
    old = {"accuracy": 0.7, "mean_class_accuracy": 0.6, "per_class_accuracy": {"a": 0.6}}
    assert with_aliases(old) == {**old, "war": 0.7, "uar": 0.6, "per_class_recall": {"a": 0.6}}


def test_per_class_recall_over_folds_leaves_out_folds_without_the_class():
    folds = [
        {"per_class_recall": {"a": 1.0, "b": 0.5, "c": None}},
        {"per_class_recall": {"a": 0.5, "b": None, "c": None}},
    ]
    summary = summarise_per_class(folds)
    assert summary["a"] == {"mean": 0.75, "sem": pytest.approx(0.25), "n": 2}
    assert summary["b"] == {"mean": 0.5, "sem": 0.0, "n": 1}
    assert "c" not in summary
