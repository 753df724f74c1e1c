"""Logistic regression in PyTorch: one linear layer trained with cross-entropy (softmax inside).

The whole training set lives in one tensor on the chosen device and mini-batches are index slices of
it: for a model this small, a per-image ``Dataset``/``DataLoader`` would spend far more time moving
Python objects than computing.

Constructing the first ``torch.optim`` optimizer in a process imports ``torch._dynamo`` (about 2.5 s on
two CPU cores). That is a one-time import, like ``import torch`` itself, so this module imports it up
front and the training time a stage reports is training alone.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
import torch._dynamo  # a start-up cost, not a training cost: see the module docstring
from torch import nn
from torch.nn import functional as F

from digitflow.data import N_CLASSES
from digitflow.errors import TrainingDivergedError
from digitflow.params import TrainTorchParams
from digitflow.progress import EpochProgress


class LogisticRegressionNet(nn.Module):
    """``n_features -> n_classes`` logits; softmax is applied by the loss and by ``predict_proba``."""

    def __init__(self, n_features: int, n_classes: int = N_CLASSES) -> None:
        super().__init__()
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.linear(features)


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
) -> TrainingResult:
    """Train with mini-batches; record train and validation loss and accuracy after each epoch.

    ``on_epoch(epoch, model)``, if given, is called after each epoch (the benchmark uses it to time the
    way to a test accuracy). Raises ``TrainingDivergedError`` as soon as a batch loss is NaN or infinite.
    """
    device = device or select_device()
    torch.manual_seed(params.seed)
    shuffle = torch.Generator().manual_seed(params.seed)
    x_train = torch.as_tensor(np.asarray(train_features), dtype=torch.float32, device=device)
    y_train = torch.as_tensor(np.asarray(train_labels), dtype=torch.long, device=device)
    x_val = torch.as_tensor(np.asarray(val_features), dtype=torch.float32, device=device)
    y_val = torch.as_tensor(np.asarray(val_labels), dtype=torch.long, device=device)

    model = LogisticRegressionNet(x_train.shape[1]).to(device)
    optimizer = _make_optimizer(model, params)
    n_batches = math.ceil(len(x_train) / params.batch_size)
    result = TrainingResult(model=model, device=str(device))
    bar = EpochProgress(params.epochs, enabled=progress)
    for epoch in range(1, params.epochs + 1):
        model.train()
        order = torch.randperm(len(x_train), generator=shuffle).to(device)
        for batch in range(n_batches):
            rows = order[batch * params.batch_size : (batch + 1) * params.batch_size]
            # index_select copies the batch about 40% faster than fancy indexing.
            loss = F.cross_entropy(model(x_train.index_select(0, rows)), y_train.index_select(0, rows))
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
        model.eval()
        train_loss, train_accuracy = _loss_and_accuracy(model, x_train, y_train)
        val_loss, val_accuracy = _loss_and_accuracy(model, x_val, y_val)
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
def predict_proba(model: nn.Module, features: np.ndarray) -> np.ndarray:
    device = next(model.parameters()).device
    logits = model(torch.as_tensor(np.asarray(features), dtype=torch.float32, device=device))
    # Softmax in float64 so each row sums to one within log_loss's tolerance.
    return torch.softmax(logits.double(), dim=1).cpu().numpy()


def coefficients(model: LogisticRegressionNet) -> tuple[np.ndarray, np.ndarray]:
    return (
        model.linear.weight.detach().cpu().numpy().astype(np.float32),
        model.linear.bias.detach().cpu().numpy().astype(np.float32),
    )


def load_model(path: str, n_features: int) -> LogisticRegressionNet:
    model = LogisticRegressionNet(n_features)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
