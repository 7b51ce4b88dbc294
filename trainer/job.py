"""One training job, start to finish: config, data, model, training, artifacts."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from trainer.config import load_config
from trainer.data import PAD_ID, UNK_ID, TextDataset, load_dataset, split_samples
from trainer.errors import UsageError
from trainer.export import export_model
from trainer.models import build_model
from trainer.progress import Emit
from trainer.train import fit

CONFIG_FILE = "config.json"
RESOLVED_CONFIG_FILE = "config.resolved.json"
METRICS_FILE = "metrics.json"
METADATA_FILE = "metadata.json"
CHECK_IMAGES = 4
CHECK_TEXTS = 8

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobOptions:
    job_dir: Path
    device: str
    """"auto", "cpu" or "cuda"."""
    weights_dir: Path
    seed: int | None
    """Overrides the config's seed when given."""
    batch_progress_seconds: float


def run_job(options: JobOptions, emit: Emit) -> None:
    started = time.monotonic()
    job_dir = options.job_dir
    config = load_config(job_dir / CONFIG_FILE, options.seed)
    device = resolve_device(options.device)
    if device.type == "cpu":
        use_every_core()
    _write_json(job_dir / RESOLVED_CONFIG_FILE, config.resolved())
    dataset = load_dataset(job_dir, config)
    train, validation = split_samples(dataset, config, device)
    torch.manual_seed(config.seed)
    vocab_size = len(dataset.vocab) if isinstance(dataset, TextDataset) else 0
    model = build_model(config, options.weights_dir, vocab_size)
    emit(
        "started",
        device=str(device),
        model=config.model,
        task_type=config.task_type,
        train_size=len(train),
        val_size=len(validation),
        num_classes=config.num_classes,
        epochs=config.epochs,
    )
    log.info("training %s on %s: %d train, %d validation samples",
             config.model, _device_name(device), len(train), len(validation))

    result = fit(model, train, validation, config, emit, options.batch_progress_seconds)

    check_inputs, _ = next(validation.batches(CHECK_IMAGES if config.is_image else CHECK_TEXTS, False))
    files = export_model(model, result.best_state, check_inputs, config.is_image, job_dir)
    if isinstance(dataset, TextDataset):
        metadata = {
            "vocab": dataset.vocab,
            "classes": dataset.classes,
            "pad_id": PAD_ID,
            "unk_id": UNK_ID,
            "model": config.model,
        }
        _write_json(job_dir / METADATA_FILE, metadata)
        files.append(METADATA_FILE)
    metrics = {
        "task_type": config.task_type,
        "model": config.model,
        "classes": dataset.classes,
        "history": result.history,
        "best_epoch": result.best_epoch,
        "best_val_accuracy": result.best_val_accuracy,
        "train_size": len(train),
        "val_size": len(validation),
        "device": str(device),
        "seconds": round(time.monotonic() - started, 3),
    }
    _write_json(job_dir / METRICS_FILE, metrics)
    files += [METRICS_FILE, RESOLVED_CONFIG_FILE]
    emit("exported", files=files)
    emit(
        "done",
        best_val_accuracy=result.best_val_accuracy,
        best_epoch=result.best_epoch,
        seconds=round(time.monotonic() - started, 3),
    )


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise UsageError("--device cuda was given but no CUDA device is available")
    return torch.device(choice)


def use_every_core() -> None:
    """Train on every core this process may use.

    PyTorch may start with a single thread (it did on the 2-core benchmark machine), and
    PyTorch 1.13 sends 1x1 convolutions to its fast oneDNN path only with more than one
    thread: mobilenet v2 trained about 9x faster per image with 2 threads (BENCHMARKS.md).
    """
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(max(1, cores))


def _device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2, allow_nan=False) + "\n", encoding="utf-8")
