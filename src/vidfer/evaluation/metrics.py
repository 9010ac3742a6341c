"""Classification metrics through scikit-learn, and mean ± standard error over folds.

Label-based metrics (accuracy, mean class accuracy, per-class accuracy, macro-F1, the confusion
matrix) need only the predicted classes; the facial-expression literature's names are aliases of
the same values (:data:`ALIASES`): ``war`` (weighted average recall) is the accuracy, ``uar``
(unweighted average recall, scikit-learn's balanced accuracy) the mean class accuracy, and
``per_class_recall`` the per-class accuracy; score-based ones (ROC-AUC, the accuracy at the ROC
equal-error rate) need the class probabilities. For two classes the second class (index 1, e.g.
``pain`` after ``no_pain``) is the positive one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import sem
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, roc_auc_score, roc_curve

ALIASES = {
    "uar": "mean_class_accuracy",
    "war": "accuracy",
    "per_class_recall": "per_class_accuracy",
}
"""Other names of metrics (alias -> the name it repeats): UAR and WAR as DFEW, FERV39k and MAFW
results are reported."""

HEADLINE_METRICS = ("uar", "war", "macro_f1", "roc_auc", "eer_accuracy")
"""The metrics the experiment's tables show, per fold and mean ± s.e. over the folds."""

SUMMARY_METRICS = (*HEADLINE_METRICS, "accuracy", "mean_class_accuracy")
"""The metrics of a fold aggregated over the folds of an experiment: the headline ones and,
under their first names, accuracy and mean class accuracy."""


def with_aliases(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """``metrics`` with each alias of :data:`ALIASES` added where its metric is (metrics written
    before the aliases existed read as new ones)."""
    out = dict(metrics)
    for alias, name in ALIASES.items():
        if name in out and alias not in out:
            out[alias] = out[name]
    return out


def eer_point(
    y_true: Sequence[int] | np.ndarray, scores: Sequence[float] | np.ndarray
) -> dict[str, float]:
    """The ROC point where the false positive and false negative rates are closest to equal.

    Every distinct score is tried as a threshold (a video is positive when its score is at least
    the threshold; scikit-learn's ``roc_curve`` without dropping points); the one minimising
    ``|FPR - FNR|`` is kept, the highest such threshold on a tie.

    Args:
        y_true: Binary labels (1: positive).
        scores: The positive class's score of every example.

    Returns:
        ``threshold``, ``eer`` (the mean of FPR and FNR there) and ``accuracy`` (share of correct
        decisions at that threshold: the "accuracy at the ROC equal-error rate" of pain detection,
        Ayral's thesis §3.3.1.1).

    Raises:
        ValueError: if ``y_true`` does not hold both classes.
    """
    true = np.asarray(y_true, dtype=np.int64)
    values = np.asarray(scores, dtype=np.float64)
    if len(np.unique(true)) != 2:
        raise ValueError("the equal-error rate needs examples of both classes")
    fpr, tpr, thresholds = roc_curve(true, values, drop_intermediate=False)
    best = int(np.argmin(np.abs(fpr - (1.0 - tpr))))  # first minimum: the highest threshold
    predicted = values >= thresholds[best]
    return {
        "threshold": float(thresholds[best]),
        "eer": float((fpr[best] + 1.0 - tpr[best]) / 2),
        "accuracy": float(np.mean(predicted == (true == 1))),
    }


def _roc_metrics(
    true: np.ndarray, probabilities: np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """ROC-AUC (binary, or one-vs-rest macro over the classes present) and the EER accuracy."""
    present = [k for k in range(len(classes)) if np.any(true == k)]
    if len(present) < 2:
        return {"roc_auc": None, "per_class_roc_auc": None, "eer_accuracy": None}
    if len(classes) == 2:
        point = eer_point(true, probabilities[:, 1])
        return {
            "roc_auc": float(roc_auc_score(true, probabilities[:, 1])),
            "per_class_roc_auc": None,
            "eer_accuracy": point["accuracy"],
            "eer": point["eer"],
            "eer_threshold": point["threshold"],
        }
    # One-vs-rest: each present class against the rest, averaged (scikit-learn's "ovr" macro
    # average, which refuses test sets missing a class; a fold of a small set may miss one).
    per_class: dict[str, float | None] = {name: None for name in classes}
    for k in present:
        per_class[classes[k]] = float(roc_auc_score(true == k, probabilities[:, k]))
    values = [value for value in per_class.values() if value is not None]
    return {
        "roc_auc": float(np.mean(values)),
        "per_class_roc_auc": per_class,
        "eer_accuracy": None,
    }


def classification_metrics(
    y_true: Sequence[int] | np.ndarray,
    y_pred: Sequence[int] | np.ndarray,
    classes: Sequence[str],
    probabilities: np.ndarray | None = None,
) -> dict[str, Any]:
    """Accuracy, mean class accuracy, per-class accuracy, macro-F1, the confusion matrix and,
    given probabilities, ROC-AUC and the accuracy at the ROC equal-error rate.

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices.
        classes: Class names (defines the confusion matrix order).
        probabilities: ``(N, K)`` class probabilities, for the score-based metrics.

    Returns:
        ``count``, ``accuracy``, ``mean_class_accuracy`` (over classes present in ``y_true``),
        ``per_class_accuracy`` (name -> accuracy, None for a class without videos; each is the
        class's recall), the same three as ``war``, ``uar`` and ``per_class_recall``,
        ``macro_f1``
        (over the classes present in ``y_true``), ``confusion`` (rows: true class, columns:
        predicted); with ``probabilities`` also ``roc_auc`` (binary: of class 1; more classes:
        the mean one-vs-rest AUC of the classes present, each in ``per_class_roc_auc``) and, for
        two classes, ``eer_accuracy``, ``eer`` and ``eer_threshold`` (:func:`eer_point`). A
        score-based metric that is undefined (fewer than two classes present, or no
        probabilities) is None.
    """
    true = np.asarray(y_true, dtype=np.int64)
    pred = np.asarray(y_pred, dtype=np.int64)
    labels = list(range(len(classes)))
    confusion = confusion_matrix(true, pred, labels=labels)
    support = confusion.sum(axis=1)
    per_class = {
        name: (float(confusion[i, i] / support[i]) if support[i] else None)
        for i, name in enumerate(classes)
    }
    present = [value for value in per_class.values() if value is not None]
    present_labels = [i for i in labels if support[i]]
    metrics: dict[str, Any] = {
        "count": len(true),
        "accuracy": float(accuracy_score(true, pred)) if len(true) else 0.0,
        "mean_class_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class_accuracy": per_class,
        "macro_f1": (
            float(f1_score(true, pred, labels=present_labels, average="macro", zero_division=0))
            if present_labels
            else 0.0
        ),
        "confusion": confusion.tolist(),
        "roc_auc": None,
        "eer_accuracy": None,
    }
    if probabilities is not None:
        metrics.update(_roc_metrics(true, np.asarray(probabilities, dtype=np.float64), classes))
    return with_aliases(metrics)


def mean_sem(values: Iterable[float]) -> dict[str, float | int]:
    """``mean``, ``sem`` (standard error of the mean: sample std / sqrt(n); 0 for one value) and
    ``n`` of some values."""
    array = np.asarray(list(values), dtype=np.float64)
    if not len(array):
        raise ValueError("no values to aggregate")
    error = float(sem(array)) if len(array) > 1 else 0.0
    return {"mean": float(array.mean()), "sem": error, "n": len(array)}


def summarise(
    fold_metrics: Sequence[Mapping[str, float | None]], names: Sequence[str] = SUMMARY_METRICS
) -> dict[str, dict[str, float | int]]:
    """Mean ± standard error of each metric over folds, leaving out folds where it is None.

    A metric that is None in every fold is not in the result.
    """
    summary: dict[str, dict[str, float | int]] = {}
    for name in names:
        values = [m[name] for m in fold_metrics if m.get(name) is not None]
        if values:
            summary[name] = mean_sem(float(v) for v in values if v is not None)
    return summary


def summarise_per_class(
    fold_metrics: Sequence[Mapping[str, Any]], name: str = "per_class_recall"
) -> dict[str, dict[str, float | int]]:
    """Mean ± standard error over folds of each class's value of a per-class metric (class name
    -> value, None where the fold tested no video of the class), leaving out such folds.

    A class without a value in every fold is not in the result.
    """
    per_class: dict[str, list[float]] = {}
    for metrics in fold_metrics:
        for label, value in (metrics.get(name) or {}).items():
            values = per_class.setdefault(label, [])
            if value is not None:
                values.append(float(value))
    return {label: mean_sem(values) for label, values in per_class.items() if values}
