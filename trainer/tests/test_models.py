"""The wrapped networks, ImageNet weight files, export and learning-rate schedules."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import pytest
import torch
from torchvision.models import resnet18

from trainer.config import parse_config
from trainer.errors import WeightsError
from trainer.export import export_model
from trainer.models import IMAGE_ARCHITECTURES, TextClassifier, build_model, find_weights
from trainer.tests.jobs import image_config, text_config
from trainer.train import LrSchedule


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_padding_never_changes_a_text_prediction(cell: str) -> None:
    torch.manual_seed(0)
    model = TextClassifier(cell, vocab_size=50, num_classes=3).eval()
    sequences = [[4, 9, 2], [7], [3, 3, 8, 11, 5, 6, 2]]
    batch = torch.zeros(len(sequences), 10, dtype=torch.int64)
    for row, sequence in enumerate(sequences):
        batch[row, : len(sequence)] = torch.tensor(sequence)
    with torch.no_grad():
        padded = model(batch)
        alone = torch.cat([model(torch.tensor([sequence])) for sequence in sequences])
    assert (padded - alone).abs().max() <= 1e-5


def test_imagenet_weights_are_loaded_from_the_file_and_the_head_is_replaced(tmp_path: Path) -> None:
    state = resnet18(weights=None).state_dict()
    torch.save(state, tmp_path / "resnet18-f37072fd.pth")
    config = parse_config(image_config(pretrain_dataset="imagenet", num_classes=5))
    model = build_model(config, tmp_path)
    assert torch.equal(model.network.conv1.weight, state["conv1.weight"])
    assert model.network.fc.out_features == 5


def test_any_arch_prefixed_weight_file_is_accepted_when_no_known_name_is_there(tmp_path: Path) -> None:
    (tmp_path / "resnet34-0123abcd.pth").touch()
    assert find_weights(IMAGE_ARCHITECTURES["resnet34"], tmp_path).name == "resnet34-0123abcd.pth"


def test_a_weight_file_for_another_architecture_is_a_weights_error(tmp_path: Path) -> None:
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "resnet34-b627a593.pth")
    config = parse_config(image_config(pretrain_dataset="imagenet", model="resnet34"))
    with pytest.raises(WeightsError, match="resnet34-b627a593.pth"):
        build_model(config, tmp_path)


@pytest.mark.parametrize("model_name", ["mobilenet v2", "resnet34", "lstm"])
def test_every_architecture_exports_matching_torchscript_and_a_checked_onnx_file(
    model_name: str, tmp_path: Path
) -> None:
    torch.manual_seed(0)
    if model_name == "lstm":
        config = parse_config(text_config(model=model_name))
        inputs = torch.tensor([[5, 6, 7], [8, 0, 0]])
    else:
        config = parse_config(image_config(model=model_name))
        inputs = torch.randint(0, 256, (2, 32, 32, 3), dtype=torch.uint8)
    model = build_model(config, tmp_path, vocab_size=10)
    export_model(model, model.state_dict(), inputs, config.is_image, tmp_path)
    onnx.checker.check_model(onnx.load(str(tmp_path / "model.onnx")))
    recorded = torch.tensor(json.loads((tmp_path / "check.json").read_text())["logits"])
    with torch.no_grad():
        assert (torch.jit.load(str(tmp_path / "model.pt"))(inputs) - recorded).abs().max() <= 1e-4


def _lrs(config_overrides: dict, accuracies: list[float]) -> list[float]:
    """The learning rate of each epoch, given each epoch's validation accuracy."""
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    schedule = LrSchedule(optimizer, parse_config(image_config(**config_overrides)))
    rates = []
    for accuracy in accuracies:
        rates.append(round(optimizer.param_groups[0]["lr"], 10))
        optimizer.step()
        schedule.step(accuracy)
    return rates


def test_plateau_schedule_reduces_the_rate_once_accuracy_stalls_for_patience_epochs() -> None:
    plateau = {"factor": 0.5, "patience": 1, "min_lr": 0.03}
    rates = _lrs({"reduce_lr_on_plateau": plateau}, [0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.6])
    assert rates == [0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.03]


def test_step_and_plateau_schedules_compose_when_both_are_given() -> None:
    both = {
        "step_lr": {"step_size": 2, "gamma": 0.1},
        "reduce_lr_on_plateau": {"factor": 0.5, "patience": 0, "min_lr": 0},
    }
    # After epoch 2 the step (x0.1) and the stalled accuracy (x0.5) both apply.
    assert _lrs(both, [0.5, 0.4, 0.9]) == [0.1, 0.1, 0.005]
