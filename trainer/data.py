"""The prepared dataset in the job folder: validation, the stratified split, and device batches.

The server has already decoded and resized the images (or tokenized the text), so the trainer
reads ready uint8 pixels or token ids once and never decodes anything per epoch.
"""

from __future__ import annotations

import json
import logging
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

import numpy as np
import torch
from torch import Tensor

from trainer.augment import center_crop, random_resized_crop_flip
from trainer.config import TrainConfig
from trainer.errors import DataError

DATASET_FILE = "dataset.json"
IMAGES_FILE = "images.u8"
VOCAB_FILE = "vocab.json"
PAD_ID = 0
UNK_ID = 1
GPU_DATA_SHARE = 0.5
"""The uint8 images live on the GPU when they take less than this share of its free memory."""

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageDataset:
    classes: list[str]
    labels: Tensor
    images: Tensor
    """uint8 [N, H, W, 3], RGB."""


@dataclass(frozen=True)
class TextDataset:
    classes: list[str]
    labels: Tensor
    tokens: Tensor
    """int64 [N, longest], right-padded with PAD_ID."""
    lengths: Tensor
    vocab: list[str]


Dataset = Union[ImageDataset, TextDataset]


def load_dataset(job_dir: Path, config: TrainConfig) -> Dataset:
    meta = _read_json(job_dir / DATASET_FILE, dict)
    kind = "image" if config.is_image else "text"
    _check(meta.get("kind") == kind, f'{DATASET_FILE} kind must be "{kind}" for {config.task_type}')
    classes = meta.get("classes")
    _check(
        isinstance(classes, list) and all(isinstance(name, str) for name in classes),
        f"{DATASET_FILE} classes must be a list of names",
    )
    _check(
        len(classes) == config.num_classes,
        f"{DATASET_FILE} lists {len(classes)} classes but num_classes is {config.num_classes}",
    )
    labels = meta.get("labels")
    _check(
        isinstance(labels, list)
        and all(type(label) is int and 0 <= label < config.num_classes for label in labels),
        f"{DATASET_FILE} labels must be class indices in [0, {config.num_classes})",
    )
    label_tensor = torch.tensor(labels, dtype=torch.int64)
    if config.is_image:
        return ImageDataset(classes, label_tensor, _load_images(job_dir, meta, len(labels), config))
    tokens, lengths, vocab = _load_text(job_dir, meta, len(labels))
    return TextDataset(classes, label_tensor, tokens, lengths, vocab)


def _load_images(job_dir: Path, meta: dict[str, Any], count: int, config: TrainConfig) -> Tensor:
    height, width = meta.get("height"), meta.get("width")
    _check(
        all(type(side) is int and side >= config.image_size for side in (height, width)),
        f"{DATASET_FILE} height and width must be integers >= image_size {config.image_size}",
    )
    path = job_dir / IMAGES_FILE
    _check(path.is_file(), f"{IMAGES_FILE} not found in the job folder")
    expected = count * height * width * 3
    actual = path.stat().st_size
    _check(
        actual == expected,
        f"{IMAGES_FILE} holds {actual} bytes but {count} labels of {height}x{width}x3 need {expected}",
    )
    return torch.from_numpy(np.fromfile(path, dtype=np.uint8)).view(count, height, width, 3)


def _load_text(job_dir: Path, meta: dict[str, Any], count: int) -> tuple[Tensor, Tensor, list[str]]:
    vocab = _read_json(job_dir / VOCAB_FILE, list)
    _check(all(isinstance(token, str) for token in vocab), f"{VOCAB_FILE} must list token strings")
    _check(meta.get("pad_id") == PAD_ID, f"{DATASET_FILE} pad_id must be {PAD_ID}")
    _check(
        meta.get("vocab_size") == len(vocab),
        f"{DATASET_FILE} vocab_size must equal the {len(vocab)} entries of {VOCAB_FILE}",
    )
    sequences = meta.get("sequences")
    _check(
        isinstance(sequences, list) and len(sequences) == count,
        f"{DATASET_FILE} needs one sequence per label ({count})",
    )
    tokens = torch.full((count, max([1, *map(len, sequences)])), PAD_ID, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        _check(
            isinstance(sequence, list)
            and all(type(token) is int and PAD_ID < token < len(vocab) for token in sequence),
            f"sequence {row} must hold token ids in [1, {len(vocab)}) (the pad id only pads)",
        )
        tokens[row, : len(sequence)] = torch.tensor(sequence, dtype=torch.int64)
    lengths = torch.tensor([len(sequence) for sequence in sequences], dtype=torch.int64)
    return tokens, lengths, vocab


def stratified_split(labels: Tensor, train_percent: int, seed: int) -> tuple[Tensor, Tensor]:
    """Seeded per-class split; every class with at least 2 samples gets 1+ in each part."""
    generator = torch.Generator().manual_seed(seed)
    train, validation = [], []
    for label in labels.unique(sorted=True):
        members = (labels == label).nonzero().flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        held_out = int(len(members) * (100 - train_percent) / 100 + 0.5)
        held_out = min(max(held_out, 1), len(members) - 1)
        validation.append(members[:held_out])
        train.append(members[held_out:])
    return torch.cat(train).sort().values, torch.cat(validation).sort().values


class Samples(ABC):
    """One part of the split, served as (model input, labels) batches on the training device."""

    def __init__(self, labels: Tensor, device: torch.device, index_device: torch.device):
        self.labels = labels
        self.device = device
        self._index_device = index_device

    def __len__(self) -> int:
        return len(self.labels)

    def num_batches(self, batch_size: int, train: bool) -> int:
        return len(_batch_bounds(len(self), batch_size, train))

    def batches(self, batch_size: int, train: bool) -> Iterator[tuple[Tensor, Tensor]]:
        """Shuffled and augmented when `train`, else in order with the inference view."""
        count = len(self)
        order = (
            torch.randperm(count, device=self._index_device)
            if train
            else torch.arange(count, device=self._index_device)
        )
        for start, end in _batch_bounds(count, batch_size, train):
            index = order[start:end]
            inputs = self._inputs(index, train)
            yield inputs, self.labels[index].to(self.device, non_blocking=True)

    @abstractmethod
    def _inputs(self, index: Tensor, train: bool) -> Tensor: ...


class ImageSamples(Samples):
    """uint8 images kept on the GPU when they fit, so a batch is a gather and an on-device crop."""

    def __init__(self, images: Tensor, labels: Tensor, image_size: int, device: torch.device):
        storage = _image_storage(images.numel(), device)
        super().__init__(labels.to(storage), device, index_device=storage)
        self.images = images.to(storage)
        self.image_size = image_size

    def _inputs(self, index: Tensor, train: bool) -> Tensor:
        images = self.images[index].to(self.device, non_blocking=True)
        if train:
            return random_resized_crop_flip(images, self.image_size)
        return center_crop(images, self.image_size)


class TextSamples(Samples):
    """Token ids stay on the CPU so each batch is cut to its own longest sequence before moving."""

    def __init__(self, tokens: Tensor, lengths: Tensor, labels: Tensor, device: torch.device):
        super().__init__(labels, device, index_device=torch.device("cpu"))
        self.tokens = tokens
        self.lengths = lengths

    def _inputs(self, index: Tensor, train: bool) -> Tensor:
        longest = max(1, int(self.lengths[index].max()))
        return self.tokens[index, :longest].to(self.device, non_blocking=True)


def split_samples(
    dataset: Dataset, config: TrainConfig, device: torch.device
) -> tuple[Samples, Samples]:
    train, validation = stratified_split(dataset.labels, config.train_percent, config.seed)
    _check(
        len(train) >= 2 and len(validation) >= 1,
        f"too few samples for a {config.train_percent} : {100 - config.train_percent} split: "
        f"{len(dataset.labels)} in all",
    )

    def part(index: Tensor) -> Samples:
        if isinstance(dataset, ImageDataset):
            return ImageSamples(dataset.images[index], dataset.labels[index], config.image_size, device)
        return TextSamples(dataset.tokens[index], dataset.lengths[index], dataset.labels[index], device)

    return part(train), part(validation)


def _batch_bounds(count: int, batch_size: int, train: bool) -> list[tuple[int, int]]:
    """Batch [start, end) pairs. A last training batch of one sample (left over from a larger
    batch_size) is left out, its sample shuffled into another batch next epoch: BatchNorm's
    statistics over one sample are noise, and on 1x1 feature maps an error."""
    bounds = [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]
    if train and batch_size > 1 and len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] == 1:
        bounds.pop()
    return bounds


def _image_storage(nbytes: int, device: torch.device) -> torch.device:
    if device.type != "cuda":
        return device
    free, _ = torch.cuda.mem_get_info(device)
    if nbytes < free * GPU_DATA_SHARE:
        return device
    log.warning("images (%.1f GB) stay in host memory: too large for the GPU", nbytes / 1e9)
    return torch.device("cpu")


def _read_json(path: Path, expected: type) -> Any:
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(f"{path.name} not found in the job folder") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path.name} is not valid JSON: {error}") from None
    _check(isinstance(value, expected), f"{path.name} must hold a JSON {expected.__name__}")
    return value


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise DataError(message)
