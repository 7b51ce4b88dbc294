"""The training loop: epochs, validation, learning-rate schedules and the best checkpoint.

On CUDA the CNNs train under bf16 autocast with channels_last weights; everything else (CPU,
the text RNNs) runs in fp32. Loss and accuracy are summed on the device and read once per
epoch, so the loop only waits for the GPU when a throttled `batch` event needs a loss value.
"""

from __future__ import annotations

import logging
import math
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from trainer.config import TrainConfig
from trainer.data import Samples
from trainer.errors import Diverged
from trainer.progress import BatchThrottle, Emit, finite

Precision = Callable[[], AbstractContextManager]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FitResult:
    history: list[dict[str, Any]]
    best_epoch: int
    best_val_accuracy: float
    best_state: dict[str, Tensor]


def place_model(model: nn.Module, config: TrainConfig, device: torch.device) -> Precision:
    """Move `model` to `device` and return the autocast context its forward passes run in."""
    model.to(device)
    mixed = device.type == "cuda" and config.is_image
    if mixed:
        torch.backends.cudnn.benchmark = True
        model.to(memory_format=torch.channels_last)
    return partial(torch.autocast, device.type, dtype=torch.bfloat16, enabled=mixed)


def make_optimizer(model: nn.Module, config: TrainConfig) -> torch.optim.Optimizer:
    if config.optimizer == "sgd":
        return torch.optim.SGD(model.parameters(), lr=config.learning_rate, momentum=0.9)
    return torch.optim.Adam(model.parameters(), lr=config.learning_rate)


class LrSchedule:
    """`step_lr` and `reduce_lr_on_plateau` (on validation accuracy), each when configured.

    Both multiply the optimizer's current rate, so together they compose; both step once per
    epoch, after validation.
    """

    def __init__(self, optimizer: torch.optim.Optimizer, config: TrainConfig):
        step, plateau = config.step_lr, config.reduce_lr_on_plateau
        self._step = (
            torch.optim.lr_scheduler.StepLR(optimizer, step.step_size, step.gamma) if step else None
        )
        self._plateau = (
            torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer,
                mode="max",
                factor=plateau.factor,
                patience=plateau.patience,
                min_lr=plateau.min_lr,
            )
            if plateau
            else None
        )

    def step(self, val_accuracy: float) -> None:
        if self._step:
            self._step.step()
        if self._plateau:
            self._plateau.step(val_accuracy)


def fit(
    model: nn.Module,
    train: Samples,
    validation: Samples,
    config: TrainConfig,
    emit: Emit,
    batch_progress_seconds: float,
) -> FitResult:
    precision = place_model(model, config, train.device)
    optimizer = make_optimizer(model, config)
    schedule = LrSchedule(optimizer, config)
    throttle = BatchThrottle(batch_progress_seconds)
    history: list[dict[str, Any]] = []
    best = (-1.0, float("inf"))
    best_epoch, best_state = 0, {}
    for epoch in range(1, config.epochs + 1):
        started = time.monotonic()
        lr = optimizer.param_groups[0]["lr"]
        on_batch = partial(emit, "batch", epoch=epoch)
        train_loss, train_accuracy = train_epoch(
            model, train, optimizer, precision, config.batch_size, on_batch, throttle
        )
        val_loss, val_accuracy = evaluate(model, validation, precision, config.batch_size)
        record = {
            "epoch": epoch,
            "epochs": config.epochs,
            "train_loss": finite(train_loss),
            "train_accuracy": train_accuracy,
            "val_loss": finite(val_loss),
            "val_accuracy": val_accuracy,
            "lr": lr,
            "seconds": round(time.monotonic() - started, 3),
        }
        history.append(record)
        emit("epoch", **record)
        log.info(
            "epoch %d/%d: train loss %.4f acc %.3f, val loss %.4f acc %.3f, lr %.3g",
            epoch, config.epochs, train_loss, train_accuracy, val_loss, val_accuracy, lr,
        )
        # Higher accuracy wins; on a tie the lower validation loss does. A model whose
        # validation loss is not finite produces inf/NaN logits and is never kept.
        better = val_accuracy > best[0] or (val_accuracy == best[0] and val_loss < best[1])
        if better and math.isfinite(val_loss):
            best, best_epoch = (val_accuracy, val_loss), epoch
            best_state = {name: value.detach().clone() for name, value in model.state_dict().items()}
        schedule.step(val_accuracy)
        if not math.isfinite(train_loss):
            log.warning("training loss is %s in epoch %d: the weights are lost, stopping", train_loss, epoch)
            break
    if not best_state:
        raise Diverged("training diverged (the loss became NaN or infinite): lower learning_rate")
    return FitResult(history, best_epoch, best[0], best_state)


def train_epoch(
    model: nn.Module,
    samples: Samples,
    optimizer: torch.optim.Optimizer,
    precision: Precision,
    batch_size: int,
    on_batch: Callable[..., None],
    throttle: BatchThrottle,
) -> tuple[float, float]:
    """One pass over `samples`; returns (mean loss, accuracy)."""
    model.train()
    batches = samples.num_batches(batch_size, train=True)
    loss_sum = torch.zeros((), device=samples.device)
    correct = torch.zeros((), dtype=torch.int64, device=samples.device)
    seen = 0
    for number, (inputs, labels) in enumerate(samples.batches(batch_size, train=True), start=1):
        with precision():
            logits = model(inputs)
            loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(dim=1) == labels).sum()
        seen += len(labels)
        # The last batch always goes out: it tells the client that validation starts.
        if throttle.due() or number == batches:
            on_batch(batch=number, batches=batches, loss=finite(loss.item()))
    return loss_sum.item() / seen, correct.item() / seen


@torch.no_grad()
def evaluate(
    model: nn.Module, samples: Samples, precision: Precision, batch_size: int
) -> tuple[float, float]:
    """(mean loss, accuracy) on `samples` in eval mode, through the inference view."""
    model.eval()
    loss_sum = torch.zeros((), device=samples.device)
    correct = torch.zeros((), dtype=torch.int64, device=samples.device)
    for inputs, labels in samples.batches(batch_size, train=False):
        with precision():
            logits = model(inputs)
        loss_sum += F.cross_entropy(logits.float(), labels, reduction="sum")
        correct += (logits.argmax(dim=1) == labels).sum()
    return loss_sum.item() / len(samples), correct.item() / len(samples)
