"""Classification metrics through scikit-learn."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix


def classification_metrics(
    y_true: Sequence[int] | np.ndarray, y_pred: Sequence[int] | np.ndarray, classes: Sequence[str]
) -> dict[str, Any]:
    """Accuracy, mean class accuracy, per-class accuracy and the confusion matrix.

    Args:
        y_true: True class indices.
        y_pred: Predicted class indices.
        classes: Class names (defines the confusion matrix order).

    Returns:
        ``accuracy``, ``mean_class_accuracy`` (over classes present in ``y_true``),
        ``per_class_accuracy`` (name -> accuracy, None for a class without videos),
        ``confusion`` (rows: true class, columns: predicted) and ``count``.
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
    return {
        "count": len(true),
        "accuracy": float(accuracy_score(true, pred)) if len(true) else 0.0,
        "mean_class_accuracy": float(np.mean(present)) if present else 0.0,
        "per_class_accuracy": per_class,
        "confusion": confusion.tolist(),
    }
