"""Tiny job folders in the server's format, and a runner for the real trainer process."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[2]
COLOURS = ((220, 40, 40), (40, 200, 60), (50, 70, 230))
WORDS = (
    ("great", "lovely", "superb", "happy", "wonderful", "enjoyed"),
    ("awful", "boring", "terrible", "sad", "dreadful", "hated"),
)
FILLER = ("the", "film", "was", "really", "a", "plot")


def image_config(**overrides: Any) -> dict[str, Any]:
    return {
        "task_type": "imageclassification",
        "num_classes": 3,
        "model": "resnet18",
        "optimizer": "adam",
        "learning_rate": 0.001,
        "batch_size": 8,
        "epochs": 3,
        "data_split": "70 : 30",
        "pretrain_dataset": "scratch",
        "reduce_lr_on_plateau": False,
        "step_lr": False,
        "image_size": 32,
        **overrides,
    }


def text_config(**overrides: Any) -> dict[str, Any]:
    return {
        "task_type": "textclassification",
        "num_classes": 2,
        "model": "lstm",
        "optimizer": "adam",
        "learning_rate": 0.01,
        "batch_size": 8,
        "epochs": 3,
        "data_split": "80 : 20",
        "reduce_lr_on_plateau": False,
        "step_lr": False,
        **overrides,
    }


def write_image_job(job_dir: Path, config: dict[str, Any], per_class: int = 12, size: int = 40) -> Path:
    """Noisy solid-colour squares, one colour per class, prepared at `size` px."""
    rng = np.random.default_rng(0)
    classes = len(COLOURS)
    labels = [label for label in range(classes) for _ in range(per_class)]
    colours = np.array([COLOURS[label] for label in labels], dtype=np.float32)[:, None, None, :]
    noise = rng.normal(0, 20, size=(len(labels), size, size, 3))
    images = np.clip(colours + noise, 0, 255).astype(np.uint8)
    job_dir.mkdir(parents=True, exist_ok=True)
    images.tofile(job_dir / "images.u8")
    dataset = {
        "kind": "image",
        "classes": ["red", "green", "blue"],
        "labels": labels,
        "height": size,
        "width": size,
    }
    _write(job_dir, dataset, config)
    return job_dir


def write_text_job(job_dir: Path, config: dict[str, Any], per_class: int = 30) -> Path:
    """Short sentences whose content words name their class, already tokenized."""
    rng = np.random.default_rng(0)
    vocab = ["<pad>", "<unk>", *FILLER, *WORDS[0], *WORDS[1]]
    ids = {word: index for index, word in enumerate(vocab)}
    labels, sequences = [], []
    for label, words in enumerate(WORDS):
        for _ in range(per_class):
            sentence = list(rng.choice(FILLER, size=rng.integers(1, 4)))
            sentence += list(rng.choice(words, size=rng.integers(1, 5)))
            sequences.append([ids[word] for word in sentence])
            labels.append(label)
    job_dir.mkdir(parents=True, exist_ok=True)
    (job_dir / "vocab.json").write_text(json.dumps(vocab))
    dataset = {
        "kind": "text",
        "classes": ["positive", "negative"],
        "labels": labels,
        "sequences": sequences,
        "vocab_size": len(vocab),
        "pad_id": 0,
    }
    _write(job_dir, dataset, config)
    return job_dir


def _write(job_dir: Path, dataset: dict[str, Any], config: dict[str, Any]) -> None:
    (job_dir / "dataset.json").write_text(json.dumps(dataset))
    (job_dir / "config.json").write_text(json.dumps(config))


@dataclass(frozen=True)
class Run:
    returncode: int
    events: list[dict[str, Any]]
    stderr: str

    def of(self, event: str) -> list[dict[str, Any]]:
        return [line for line in self.events if line["event"] == event]


def run_trainer(job_dir: Path, *args: str, timeout: float = 120) -> Run:
    """`python3 -m trainer run JOB_DIR ...` as the server starts it; every stdout line must parse."""
    completed = subprocess.run(
        [sys.executable, "-m", "trainer", "run", str(job_dir), "--device", "cpu", *args],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    events = [json.loads(line) for line in completed.stdout.splitlines()]
    return Run(completed.returncode, events, completed.stderr)
