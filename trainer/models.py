"""The networks, wrapped so their inputs are what the server's inference feeds them.

- `ImageClassifier`: uint8 [batch, size, size, 3] NHWC pixels -> logits. Scaling and ImageNet
  normalisation are inside the model, so the server only crops and never normalises.
- `TextClassifier`: int64 token ids [batch, seq], right-padded with 0 -> logits. The sequence
  length is counted inside the model, so padding never changes a prediction.
"""

from __future__ import annotations

import logging
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn
from torchvision import models as tv

from trainer.config import TrainConfig
from trainer.data import PAD_ID
from trainer.errors import WeightsError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
EMBEDDING_DIM = 64
HIDDEN_SIZE = 128
RNN_LAYERS = 2
DROPOUT = 0.2

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageArchitecture:
    build: Callable[..., nn.Module]
    file_prefix: str
    """torchvision weight files are named `<file_prefix>-<hash>.pth`."""
    known_files: tuple[str, ...]
    """Current torchvision file first, then older releases' names."""
    head: str
    """Dotted path of the final Linear layer, replaced for the job's classes."""


IMAGE_ARCHITECTURES = {
    "resnet18": ImageArchitecture(
        tv.resnet18, "resnet18", ("resnet18-f37072fd.pth", "resnet18-5c106cde.pth"), "fc"
    ),
    "resnet34": ImageArchitecture(
        tv.resnet34, "resnet34", ("resnet34-b627a593.pth", "resnet34-333f7ec4.pth"), "fc"
    ),
    "mobilenet v2": ImageArchitecture(
        tv.mobilenet_v2,
        "mobilenet_v2",
        ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"),
        "classifier.1",
    ),
}


class ImageClassifier(nn.Module):
    def __init__(self, network: nn.Module):
        super().__init__()
        self.network = network
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, pixels: Tensor) -> Tensor:
        # Permuting contiguous NHWC gives NCHW with channels_last strides: no copy, and the
        # layout cuDNN prefers once the network itself is channels_last.
        x = pixels.permute(0, 3, 1, 2).float().div(255)
        return self.network((x - self.mean) / self.std)


class TextClassifier(nn.Module):
    def __init__(self, cell: str, vocab_size: int, num_classes: int):
        super().__init__()
        recurrent = {"lstm": nn.LSTM, "gru": nn.GRU}[cell]
        self.pad_id = PAD_ID
        self.embedding = nn.Embedding(vocab_size, EMBEDDING_DIM, padding_idx=PAD_ID)
        self.rnn = recurrent(
            EMBEDDING_DIM, HIDDEN_SIZE, num_layers=RNN_LAYERS, dropout=DROPOUT, batch_first=True
        )
        self.dropout = nn.Dropout(DROPOUT)
        self.head = nn.Linear(HIDDEN_SIZE, num_classes)

    def forward(self, input_ids: Tensor) -> Tensor:
        # A unidirectional RNN's output at the last real token has seen no padding, so reading
        # it there (rather than packing sequences, which ONNX cannot express) makes a padded
        # batch predict exactly what each sequence predicts alone. Empty rows read position 0.
        lengths = (input_ids != self.pad_id).long().sum(dim=1).clamp(min=1)
        outputs, _ = self.rnn(self.embedding(input_ids))
        last = (lengths - 1).view(-1, 1, 1).expand(-1, 1, outputs.size(2))
        return self.head(self.dropout(outputs.gather(1, last).squeeze(1)))


def build_model(config: TrainConfig, weights_dir: Path, vocab_size: int = 0) -> nn.Module:
    """The wrapped network for `config`; `vocab_size` is needed for text models only."""
    if not config.is_image:
        return TextClassifier(config.model, vocab_size, config.num_classes)
    architecture = IMAGE_ARCHITECTURES[config.model]
    if config.pretrain_dataset == "scratch":
        return ImageClassifier(architecture.build(weights=None, num_classes=config.num_classes))
    network = architecture.build(weights=None)
    path = find_weights(architecture, weights_dir)
    log.info("loading ImageNet weights from %s", path)
    try:
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as error:
        raise WeightsError(f"cannot load {config.model} ImageNet weights from {path}: {error}") from None
    _replace_head(network, architecture.head, config.num_classes)
    return ImageClassifier(network)


def find_weights(architecture: ImageArchitecture, weights_dir: Path) -> Path:
    """A known torchvision file name, else any `<prefix>-*.pth`; never a download."""
    for name in architecture.known_files:
        if (weights_dir / name).is_file():
            return weights_dir / name
    others = sorted(weights_dir.glob(f"{architecture.file_prefix}-*.pth"))
    if others:
        return others[0]
    raise WeightsError(
        f"ImageNet weights not found: expected {weights_dir / architecture.known_files[0]} "
        f"(or another {architecture.file_prefix}-*.pth in {weights_dir}); "
        "put the torchvision weight file there or pass --weights-dir"
    )


def _replace_head(network: nn.Module, path: str, num_classes: int) -> None:
    parent_path, _, name = path.rpartition(".")
    parent = network.get_submodule(parent_path)
    old: nn.Linear = getattr(parent, name)
    setattr(parent, name, nn.Linear(old.in_features, num_classes))
