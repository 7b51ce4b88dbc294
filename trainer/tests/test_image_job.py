"""An image job run end to end by the real trainer process on noisy colour squares."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch
from torchvision.models import mobilenet_v2

from trainer.tests.conftest import IMAGE_EPOCHS
from trainer.tests.jobs import Run, image_config, run_trainer, write_image_job

ARTIFACTS = {"model.pt", "model.onnx", "check.json", "metrics.json", "config.resolved.json"}


def test_image_job_succeeds_and_reports_every_written_artifact(image_job: tuple[Path, Run]) -> None:
    job_dir, run = image_job
    assert run.returncode == 0, run.stderr
    assert set(run.of("exported")[0]["files"]) == ARTIFACTS
    assert all((job_dir / name).is_file() for name in ARTIFACTS)


def test_progress_starts_with_started_ends_with_done_and_epochs_arrive_in_order(
    image_job: tuple[Path, Run],
) -> None:
    _, run = image_job
    names = [event["event"] for event in run.events]
    assert names[0] == "started" and names[-2:] == ["exported", "done"]
    assert run.events[0] == {
        "event": "started",
        "device": "cpu",
        "model": "resnet18",
        "task_type": "imageclassification",
        "train_size": 24,
        "val_size": 12,
        "num_classes": 3,
        "epochs": IMAGE_EPOCHS,
    }
    epochs = run.of("epoch")
    assert [event["epoch"] for event in epochs] == list(range(1, IMAGE_EPOCHS + 1))
    for event in epochs:
        assert 0 <= event["train_accuracy"] <= 1 and 0 <= event["val_accuracy"] <= 1
        assert event["epochs"] == IMAGE_EPOCHS and event["seconds"] > 0


def test_zero_batch_progress_seconds_reports_every_batch_of_every_epoch(image_job: tuple[Path, Run]) -> None:
    _, run = image_job
    batches = [(event["epoch"], event["batch"], event["batches"]) for event in run.of("batch")]
    # 24 training images in batches of 8.
    assert batches == [(epoch, batch, 3) for epoch in range(1, IMAGE_EPOCHS + 1) for batch in (1, 2, 3)]


def test_step_lr_halves_the_learning_rate_after_each_step_size_epochs(image_job: tuple[Path, Run]) -> None:
    _, run = image_job
    assert [event["lr"] for event in run.of("epoch")] == [0.001, 0.0005, 0.00025]


def test_validation_accuracy_on_colour_squares_is_well_above_chance(image_job: tuple[Path, Run]) -> None:
    job_dir, run = image_job
    done = run.of("done")[0]
    assert done["best_val_accuracy"] >= 0.8
    metrics = json.loads((job_dir / "metrics.json").read_text())
    assert metrics["best_val_accuracy"] == done["best_val_accuracy"]
    assert metrics["history"][metrics["best_epoch"] - 1]["val_accuracy"] == done["best_val_accuracy"]
    assert metrics["classes"] == ["red", "green", "blue"]
    assert len(metrics["history"]) == IMAGE_EPOCHS


def test_torchscript_model_reproduces_the_recorded_pytorch_logits(image_job: tuple[Path, Run]) -> None:
    job_dir, _ = image_job
    check = json.loads((job_dir / "check.json").read_text())
    inputs = torch.tensor(check["inputs"], dtype=torch.uint8)
    assert check["input_name"] == "input" and list(inputs.shape) == [4, 32, 32, 3]
    model = torch.jit.load(str(job_dir / "model.pt"))
    with torch.no_grad():
        logits = model(inputs)
    assert (logits - torch.tensor(check["logits"])).abs().max() <= 1e-4


def test_onnx_model_is_valid_and_takes_uint8_nhwc_with_a_dynamic_batch(image_job: tuple[Path, Run]) -> None:
    job_dir, _ = image_job
    model = onnx.load(str(job_dir / "model.onnx"))
    onnx.checker.check_model(model)
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert _dims(graph_input) == ["batch", 32, 32, 3]
    assert graph_output.name == "logits" and _dims(graph_output) == ["batch", 3]


def test_resolved_config_records_the_defaults_it_trained_with(image_job: tuple[Path, Run]) -> None:
    job_dir, _ = image_job
    resolved = json.loads((job_dir / "config.resolved.json").read_text())
    assert resolved["data_split"] == "70 : 30"
    assert resolved["seed"] == 0 and resolved["image_size"] == 32
    assert resolved["step_lr"] == {"step_size": 1, "gamma": 0.5}
    assert resolved["reduce_lr_on_plateau"] is False


def test_imagenet_pretraining_starts_from_the_weight_file_in_weights_dir(tmp_path: Path) -> None:
    weights_dir = tmp_path / "weights"
    weights_dir.mkdir()
    torch.save(mobilenet_v2(weights=None).state_dict(), weights_dir / "mobilenet_v2-7ebf99e0.pth")
    config = image_config(model="mobilenet v2", pretrain_dataset="imagenet", epochs=1)
    job_dir = write_image_job(tmp_path / "job", config, per_class=4)
    run = run_trainer(job_dir, "--weights-dir", str(weights_dir))
    assert run.returncode == 0, run.stderr
    assert "mobilenet_v2-7ebf99e0.pth" in run.stderr
    assert (job_dir / "model.onnx").is_file()


def _dims(value: onnx.ValueInfoProto) -> list[str | int]:
    return [dim.dim_param or dim.dim_value for dim in value.type.tensor_type.shape.dim]
