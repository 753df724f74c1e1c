"""Logistic regression in PyTorch: one linear layer trained with cross-entropy (softmax inside).

The whole training set lives in one tensor on the chosen device and mini-batches are index slices of
it: for a model this small, a per-image ``Dataset``/``DataLoader`` would spend far more time moving
Python objects than computing.

Constructing the first ``torch.optim`` optimizer in a process imports ``torch._dynamo`` (2.5-3 s on two
CPU cores). ``stages/train_torch.py`` imports it before its clock starts, so the training time it
reports is training alone; code that only loads a model and predicts (evaluate, predict) never pays it.
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from digitflow.core.errors import TrainingDivergedError
from digitflow.core.io import atomic_path
from digitflow.core.params import TrainTorchParams
from digitflow.core.progress import EpochProgress
from digitflow.data.datasets import DIGIT_CLASSES


def scaling_statistics(features: np.ndarray, scaling: str) -> tuple[np.ndarray, np.ndarray]:
    """``(shift, scale)`` per pixel so that ``(x - shift) / scale`` is the chosen scaling.

    The same statistics as scikit-learn's ``StandardScaler`` (mean, population standard deviation) and
    ``MinMaxScaler`` (minimum, range), with constant pixels left unscaled (scale 1) as they do.
    Computed in float64 over the rows given: the training rows only.
    """
    n_features = features.shape[1]
    if scaling == "none":
        return np.zeros(n_features, np.float32), np.ones(n_features, np.float32)
    rows = np.asarray(features)
    # Accumulated in float64 without a float64 copy of the rows: the same numbers, a third of the time.
    if scaling == "standard":
        shift, scale = rows.mean(axis=0, dtype=np.float64), rows.std(axis=0, dtype=np.float64)
    else:
        low, high = rows.min(axis=0).astype(np.float64), rows.max(axis=0).astype(np.float64)
        shift, scale = low, high - low
    scale[scale < 10 * np.finfo(np.float64).eps] = 1.0
    return shift.astype(np.float32), scale.astype(np.float32)


class LogisticRegressionNet(nn.Module):
    """Raw pixels -> scaling (buffers saved with the weights) -> ``n_features -> n_classes`` logits.

    Softmax is applied by the loss during training and by ``ProbabilityModel`` for predictions.
    """

    def __init__(self, n_features: int, n_classes: int = len(DIGIT_CLASSES)) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(n_features))
        self.register_buffer("scale", torch.ones(n_features))
        self.linear = nn.Linear(n_features, n_classes)

    def set_scaling(self, shift: np.ndarray, scale: np.ndarray) -> None:
        self.shift.copy_(torch.as_tensor(shift))
        self.scale.copy_(torch.as_tensor(scale))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        return (pixels - self.shift).div_(self.scale)  # in place on the difference: one temporary, not two

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.linear(self.normalise(pixels))


class ProbabilityModel(nn.Module):
    """The served form of a trained net: raw pixels in, class probabilities out (rows sum to one)."""

    def __init__(self, net: LogisticRegressionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        # Softmax in float64, so each row sums to one within log_loss's tolerance.
        return torch.softmax(self.net(pixels).double(), dim=1)


def select_device() -> torch.device:
    """CUDA when a GPU is usable, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@dataclass
class TrainingResult:
    model: LogisticRegressionNet
    history: list[dict[str, float]] = field(default_factory=list)
    device: str = "cpu"


def _make_optimizer(model: nn.Module, params: TrainTorchParams) -> torch.optim.Optimizer:
    if params.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)


def _make_schedule(
    optimizer: torch.optim.Optimizer, params: TrainTorchParams, n_batches: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    if params.lr_schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=params.epochs * n_batches)
    return None


def balanced_weights(labels: np.ndarray, n_classes: int) -> np.ndarray:
    """scikit-learn's ``class_weight="balanced"``: ``n_images / (n_classes * count)`` per class."""
    counts = np.bincount(np.asarray(labels), minlength=n_classes).astype(np.float64)
    return (len(labels) / (n_classes * np.maximum(counts, 1))).astype(np.float32)


@torch.no_grad()
def _loss_and_accuracy(model: nn.Module, features: torch.Tensor, labels: torch.Tensor) -> tuple[float, float]:
    logits = model(features)
    loss = F.cross_entropy(logits, labels).item()
    accuracy = (logits.argmax(dim=1) == labels).float().mean().item()
    return loss, accuracy


def train_logistic_regression(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    val_features: np.ndarray,
    val_labels: np.ndarray,
    params: TrainTorchParams,
    device: torch.device | None = None,
    progress: bool = True,
    on_epoch: Callable[[int, LogisticRegressionNet], None] | None = None,
    n_classes: int | None = None,
) -> TrainingResult:
    """Train with mini-batches; record train and validation loss and accuracy after each epoch.

    The learning rate follows ``params.lr_schedule``, stepped after every batch: a cosine from ``lr`` to
    zero lets a few large-batch epochs settle where a constant rate keeps Adam noisy (MNIST: 6 epochs
    instead of 25 for the same test accuracy).

    ``on_epoch(epoch, model)``, if given, is called after each epoch (the benchmark uses it to time the
    way to a test accuracy). ``n_classes`` defaults to the largest training label plus one. With
    ``params.class_weight`` balanced, each class's training loss is weighted inversely to its count (the
    losses and accuracies recorded per epoch stay unweighted). Raises ``TrainingDivergedError`` as soon
    as a batch loss is NaN or infinite.
    """
    device = device or select_device()
    torch.manual_seed(params.seed)
    shuffle = torch.Generator().manual_seed(params.seed)
    x_train = torch.as_tensor(np.asarray(train_features), dtype=torch.float32, device=device)
    y_train = torch.as_tensor(np.asarray(train_labels), dtype=torch.long, device=device)
    x_val = torch.as_tensor(np.asarray(val_features), dtype=torch.float32, device=device)
    y_val = torch.as_tensor(np.asarray(val_labels), dtype=torch.long, device=device)

    n_classes = n_classes or int(np.max(train_labels)) + 1
    model = LogisticRegressionNet(x_train.shape[1], n_classes)
    model.set_scaling(*scaling_statistics(np.asarray(train_features), params.scaling))
    weight = None
    if params.class_weight == "balanced":
        weight = torch.as_tensor(balanced_weights(train_labels, n_classes), device=device)
    model = model.to(device)
    # Scaled once, not per batch and per evaluation: element-wise, so every batch gets the same bits as
    # ``model(pixels)`` would compute, and the training loop only runs the linear layer.
    with torch.no_grad():
        x_train, x_val = model.normalise(x_train), model.normalise(x_val)
    optimizer = _make_optimizer(model, params)
    n_batches = math.ceil(len(x_train) / params.batch_size)
    schedule = _make_schedule(optimizer, params, n_batches)
    result = TrainingResult(model=model, device=str(device))
    bar = EpochProgress(params.epochs, enabled=progress)
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle).to(device)
        for batch in range(n_batches):
            rows = order[batch * params.batch_size : (batch + 1) * params.batch_size]
            # index_select copies the batch about 40% faster than fancy indexing.
            logits = model.linear(x_train.index_select(0, rows))
            loss = F.cross_entropy(logits, y_train.index_select(0, rows), weight=weight)
            if not torch.isfinite(loss):
                bar.close()
                raise TrainingDivergedError(
                    f"training loss became {loss.item()} at epoch {epoch}, batch {batch + 1}: the "
                    f"learning rate is too high for these features. Lower train_torch.lr (now "
                    f"{params.lr}) in params.yaml, e.g. to {params.lr / 10:g}."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
        model.eval()
        train_loss, train_accuracy = _loss_and_accuracy(model.linear, x_train, y_train)
        val_loss, val_accuracy = _loss_and_accuracy(model.linear, x_val, y_val)
        bar.update(epoch, train_loss=train_loss, val_loss=val_loss, train_acc=train_accuracy, val_acc=val_accuracy)
        if not math.isfinite(train_loss):
            bar.close()
            raise TrainingDivergedError(
                f"training loss became {train_loss} after epoch {epoch}; lower train_torch.lr "
                f"(now {params.lr}) in params.yaml."
            )
        result.history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "train_accuracy": train_accuracy,
                "val_loss": val_loss,
                "val_accuracy": val_accuracy,
            }
        )
        if on_epoch is not None:
            on_epoch(epoch, model)
    bar.close()
    return result


@torch.no_grad()
def predict_proba(model: LogisticRegressionNet, features: np.ndarray) -> np.ndarray:
    """Class probabilities of raw-pixel rows: the same computation as the logged ``ProbabilityModel``."""
    device = next(model.parameters()).device
    pixels = torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device)
    return ProbabilityModel(model)(pixels).cpu().numpy()


def coefficients(model: LogisticRegressionNet) -> tuple[np.ndarray, np.ndarray]:
    return (
        model.linear.weight.detach().cpu().numpy().astype(np.float32),
        model.linear.bias.detach().cpu().numpy().astype(np.float32),
    )


def model_bytes(model: LogisticRegressionNet) -> bytes:
    """The state dict (weights and scaling buffers) as ``torch.save`` bytes.

    Saved through a buffer: given a path, ``torch.save`` names the zip's top folder after the file,
    so a temporary file name would make every save differ.
    """
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    return buffer.getvalue()


def save_model(model: LogisticRegressionNet, path: Path) -> None:
    data = model_bytes(model)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def load_model(path: str | Path, n_features: int, n_classes: int = len(DIGIT_CLASSES)) -> LogisticRegressionNet:
    model = LogisticRegressionNet(n_features, n_classes)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
