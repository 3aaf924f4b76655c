"""The competition metric: multiclass Jaccard over all stacked predictions (macro average).

The number of classes is the caller's (Data.layout.NUM_CLASSES for this task): `common` knows
no data format.
"""
from __future__ import annotations

import torch
from torchmetrics.classification import MulticlassJaccardIndex


def jaccard_metric(num_classes: int, device: torch.device | str = "cpu") -> MulticlassJaccardIndex:
    """A stateful metric to `update` batch by batch; equals one call on all predictions stacked.

    Same as torchmetrics.JaccardIndex(task="multiclass", num_classes=49), the competition's call.
    """
    return MulticlassJaccardIndex(num_classes=num_classes, average="macro").to(device)


def jaccard_index(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> float:
    """Competition Jaccard of predicted ids `(N,H,W)` against true ids `(N,H,W)`."""
    metric = jaccard_metric(num_classes, preds.device)
    metric.update(preds.long(), target.long())
    return float(metric.compute())


def per_class_iou(preds: torch.Tensor, target: torch.Tensor, num_classes: int) -> dict[int, float]:
    """IoU of every class present in either tensor (absent classes have no defined IoU)."""
    preds, target = preds.long().flatten(), target.long().flatten()
    inter = torch.bincount(target[preds == target], minlength=num_classes).double()
    area_p = torch.bincount(preds, minlength=num_classes).double()
    area_t = torch.bincount(target, minlength=num_classes).double()
    union = area_p + area_t - inter
    return {c: float(inter[c] / union[c]) for c in range(num_classes) if union[c] > 0}
