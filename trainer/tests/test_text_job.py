"""A text job run end to end by the real trainer process on separable tokenized sentences."""

from __future__ import annotations

import json
from pathlib import Path

import onnx
import torch

from trainer.tests.jobs import Run

ARTIFACTS = {"model.pt", "model.onnx", "check.json", "metadata.json", "metrics.json", "config.resolved.json"}


def test_text_job_succeeds_and_reports_every_written_artifact(text_job: tuple[Path, Run]) -> None:
    job_dir, run = text_job
    assert run.returncode == 0, run.stderr
    assert [event["event"] for event in run.events if event["event"] != "batch"] == [
        "started", "epoch", "epoch", "epoch", "exported", "done",
    ]
    assert set(run.of("exported")[0]["files"]) == ARTIFACTS
    assert all((job_dir / name).is_file() for name in ARTIFACTS)


def test_the_last_batch_of_every_epoch_is_reported_whatever_the_throttle(text_job: tuple[Path, Run]) -> None:
    # The job runs with the default throttle of one second, longer than its epochs take.
    _, run = text_job
    last = [(event["epoch"], event["batch"]) for event in run.of("batch") if event["batch"] == event["batches"]]
    assert [epoch for epoch, _ in last] == [1, 2, 3]


def test_validation_accuracy_on_separable_sentences_is_well_above_chance(text_job: tuple[Path, Run]) -> None:
    _, run = text_job
    assert run.of("done")[0]["best_val_accuracy"] >= 0.8


def test_metadata_holds_the_vocabulary_and_class_names_as_json(text_job: tuple[Path, Run]) -> None:
    job_dir, _ = text_job
    metadata = json.loads((job_dir / "metadata.json").read_text())
    assert metadata["vocab"] == json.loads((job_dir / "vocab.json").read_text())
    assert metadata["classes"] == ["positive", "negative"]
    assert (metadata["pad_id"], metadata["unk_id"], metadata["model"]) == (0, 1, "gru")


def test_torchscript_text_model_reproduces_the_recorded_logits_of_a_padded_batch(
    text_job: tuple[Path, Run],
) -> None:
    job_dir, _ = text_job
    check = json.loads((job_dir / "check.json").read_text())
    input_ids = torch.tensor(check["inputs"], dtype=torch.int64)
    assert check["input_name"] == "input_ids" and check["dtype"] == "int64"
    assert (input_ids == 0).any(), "the check batch should contain padding"
    model = torch.jit.load(str(job_dir / "model.pt"))
    with torch.no_grad():
        logits = model(input_ids)
    assert (logits - torch.tensor(check["logits"])).abs().max() <= 1e-4


def test_onnx_text_model_has_dynamic_batch_and_sequence_axes(text_job: tuple[Path, Run]) -> None:
    job_dir, _ = text_job
    model = onnx.load(str(job_dir / "model.onnx"))
    onnx.checker.check_model(model)
    (graph_input,) = model.graph.input
    assert graph_input.name == "input_ids"
    assert graph_input.type.tensor_type.elem_type == onnx.TensorProto.INT64
    assert [dim.dim_param for dim in graph_input.type.tensor_type.shape.dim] == ["batch", "sequence"]
    assert model.graph.output[0].name == "logits"
