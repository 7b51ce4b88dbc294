"""Benchmark: the trainer's loop against a plain PyTorch loop, and a Flash-sized job end to end.

    python3 -m trainer.bench            # on a GPU: 224 px, batch 128, 20 epochs
    python3 -m trainer.bench --quick    # tiny sizes, to check the benchmark itself runs (CPU)

For each CNN it prints, as a markdown table:
  - our loop: images/s through `train.train_epoch` on an on-device uint8 dataset (gather, random
    resized crop + flip, the model's uint8 -> normalised input path, loss/accuracy sums);
  - reference: images/s of a plain loop on synthetic normalised tensors already on the device
    (bf16 autocast and channels_last on CUDA, like ours), same model, optimizer and batch size;
  - job wall time: `python3 -m trainer run` on a synthetic Flash-sized job (10 classes x 100
    images prepared at 256 px, 70 : 30 split) for all its epochs, process start and export
    included; and the part of it inside the trainer (its `done` event's seconds).
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from trainer.config import parse_config
from trainer.data import ImageSamples
from trainer.job import resolve_device
from trainer.models import IMAGE_ARCHITECTURES, build_model
from trainer.progress import BatchThrottle
from trainer.train import make_optimizer, place_model, train_epoch

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Sizes:
    classes: int
    per_class: int
    prepared: int
    image_size: int
    batch_size: int
    epochs: int
    steps: int
    """Batches per throughput measurement (after as many warm-up batches)."""


FULL = Sizes(classes=10, per_class=100, prepared=256, image_size=224, batch_size=128, epochs=20, steps=50)
QUICK = Sizes(classes=3, per_class=8, prepared=72, image_size=64, batch_size=8, epochs=2, steps=3)


def job_config(model: str, sizes: Sizes) -> dict:
    """The Flash sample's training.json, from scratch (no weight files on a bench machine)."""
    return {
        "task_type": "imageclassification",
        "num_classes": sizes.classes,
        "model": model,
        "optimizer": "sgd",
        "learning_rate": 0.01,
        "batch_size": sizes.batch_size,
        "epochs": sizes.epochs,
        "data_split": "70 : 30",
        "pretrain_dataset": "scratch",
        "reduce_lr_on_plateau": {"factor": 0.1, "patience": 5, "min_lr": 1e-5},
        "step_lr": {"step_size": 4, "gamma": 0.1},
        "image_size": sizes.image_size,
    }


def our_loop(model_name: str, sizes: Sizes, device: torch.device) -> float:
    config = parse_config(job_config(model_name, sizes))
    count = sizes.batch_size * sizes.steps
    shape = (count, sizes.prepared, sizes.prepared, 3)
    images = torch.randint(0, 256, shape, dtype=torch.uint8, device=device)
    labels = torch.randint(0, sizes.classes, (count,), device=device)
    samples = ImageSamples(images, labels, sizes.image_size, device)
    model = build_model(config, weights_dir=Path())
    precision = place_model(model, config, device)
    optimizer = make_optimizer(model, config)

    def epoch() -> None:
        train_epoch(model, samples, optimizer, precision, sizes.batch_size, _ignore, BatchThrottle(math.inf))

    epoch()  # warm-up: cuDNN autotuning, allocator growth
    started = time.perf_counter()
    epoch()  # ends by reading the loss sum, so the GPU has finished
    return count / (time.perf_counter() - started)


def reference_loop(model_name: str, sizes: Sizes, device: torch.device) -> float:
    cuda = device.type == "cuda"
    torch.backends.cudnn.benchmark = True
    model = IMAGE_ARCHITECTURES[model_name].build(weights=None, num_classes=sizes.classes).to(device)
    batch = torch.randn(sizes.batch_size, 3, sizes.image_size, sizes.image_size, device=device)
    labels = torch.randint(0, sizes.classes, (sizes.batch_size,), device=device)
    if cuda:
        model = model.to(memory_format=torch.channels_last)
        batch = batch.contiguous(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()

    def run(steps: int) -> None:
        for _ in range(steps):
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                loss = F.cross_entropy(model(batch), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if cuda:
            torch.cuda.synchronize(device)

    run(sizes.steps)
    started = time.perf_counter()
    run(sizes.steps)
    return sizes.batch_size * sizes.steps / (time.perf_counter() - started)


def write_flash_job(job_dir: Path, sizes: Sizes) -> None:
    rng = np.random.default_rng(0)
    count = sizes.classes * sizes.per_class
    shape = (count, sizes.prepared, sizes.prepared, 3)
    rng.integers(0, 256, size=shape, dtype=np.uint8).tofile(job_dir / "images.u8")
    dataset = {
        "kind": "image",
        "classes": [f"class{index}" for index in range(sizes.classes)],
        "labels": [index % sizes.classes for index in range(count)],
        "height": sizes.prepared,
        "width": sizes.prepared,
    }
    (job_dir / "dataset.json").write_text(json.dumps(dataset))


def run_job(model_name: str, sizes: Sizes, device: torch.device, job_dir: Path) -> tuple[float, float]:
    """(wall seconds of the whole process, seconds the trainer reports in its `done` event)."""
    (job_dir / "config.json").write_text(json.dumps(job_config(model_name, sizes)))
    command = [sys.executable, "-m", "trainer", "run", str(job_dir), "--device", device.type]
    started = time.perf_counter()
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - started
    last = json.loads(result.stdout.splitlines()[-1])
    if last["event"] != "done":
        raise SystemExit(f"trainer run failed for {model_name}: {last}")
    return wall, last["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny sizes, to check that it runs")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                        help="(default: %(default)s)")
    args = parser.parse_args()
    sizes = QUICK if args.quick else FULL
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {sizes.image_size} px, batch {sizes.batch_size}, "
          f"job: {sizes.classes} classes x {sizes.per_class} images at {sizes.prepared} px, "
          f"{sizes.epochs} epochs\n")
    print("| model | our loop img/s | reference img/s | ours / reference | job wall s | job in-process s |")
    print("|---|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        job_dir = Path(folder)
        write_flash_job(job_dir, sizes)
        for model_name in IMAGE_ARCHITECTURES:
            ours = our_loop(model_name, sizes, device)
            reference = reference_loop(model_name, sizes, device)
            wall, in_process = run_job(model_name, sizes, device, job_dir)
            print(f"| {model_name} | {ours:,.0f} | {reference:,.0f} | {ours / reference:.0%} "
                  f"| {wall:.1f} | {in_process:.1f} |", flush=True)


def _ignore(**fields: object) -> None:
    """Batch events are not wanted while timing."""


if __name__ == "__main__":
    main()
