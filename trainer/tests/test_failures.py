"""Every failure ends the real trainer process with exactly one `error` event and a non-zero exit."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, Callable

import pytest

from trainer.tests.jobs import REPO_ROOT, image_config, run_trainer, text_config, write_image_job, write_text_job


def _drop(name: str) -> Callable[[Path], None]:
    return lambda job_dir: (job_dir / name).unlink()


def _edit_dataset(**changes: Any) -> Callable[[Path], None]:
    def edit(job_dir: Path) -> None:
        dataset = json.loads((job_dir / "dataset.json").read_text())
        (job_dir / "dataset.json").write_text(json.dumps({**dataset, **changes}))

    return edit


FAILURES = {
    "an unknown model": ("image", {"model": "vgg16"}, None, "config", "model"),
    "a model of the other task": ("text", {"model": "resnet18"}, None, "config", "does not fit"),
    "a malformed data split": ("image", {"data_split": "70/30"}, None, "config", "data_split"),
    "a negative learning rate": ("image", {"learning_rate": -0.1}, None, "config", "learning_rate"),
    "a missing config file": ("image", {}, _drop("config.json"), "config", "config.json"),
    "fewer images than labels": ("image", {}, _edit_dataset(labels=[0, 1] * 20), "data", "images.u8"),
    "fewer sequences than labels": ("text", {}, _edit_dataset(labels=[0, 1] * 40), "data", "sequence"),
    "a missing image file": ("image", {}, _drop("images.u8"), "data", "images.u8"),
    "a class count unlike the config's": ("image", {"num_classes": 4}, None, "data", "num_classes"),
    "missing ImageNet weights": ("image", {"pretrain_dataset": "imagenet"}, None, "weights", "resnet18-"),
}


@pytest.mark.parametrize("case", FAILURES, ids=lambda case: case.replace(" ", "-"))
def test_a_bad_job_ends_with_one_error_event_and_exit_code_2(case: str, tmp_path: Path) -> None:
    task, overrides, damage, kind, mentions = FAILURES[case]
    if task == "image":
        job_dir = write_image_job(tmp_path / "job", image_config(**overrides), per_class=4)
    else:
        job_dir = write_text_job(tmp_path / "job", text_config(**overrides), per_class=4)
    if damage:
        damage(job_dir)
    run = run_trainer(job_dir, "--weights-dir", str(tmp_path / "no-weights"))
    assert run.returncode == 2
    (error,) = run.events
    assert error["event"] == "error" and error["kind"] == kind
    assert mentions in error["message"]


def test_config_problems_are_all_named_in_the_one_error_message(tmp_path: Path) -> None:
    config = image_config(optimizer="rmsprop", epochs=0, step_lr={"step_size": 2})
    run = run_trainer(write_image_job(tmp_path / "job", config, per_class=4))
    (error,) = run.events
    assert run.returncode == 2
    for field in ("optimizer", "epochs", "step_lr.gamma"):
        assert field in error["message"]


def test_a_learning_rate_that_blows_up_the_loss_ends_with_a_diverged_error(tmp_path: Path) -> None:
    config = text_config(optimizer="sgd", learning_rate=1e30)
    run = run_trainer(write_text_job(tmp_path / "job", config, per_class=8))
    assert run.returncode == 1
    assert run.events[-1]["event"] == "error" and run.events[-1]["kind"] == "diverged"
    assert len(run.of("error")) == 1 and not run.of("exported")


def test_an_unknown_flag_is_reported_as_a_usage_error_event(tmp_path: Path) -> None:
    run = run_trainer(tmp_path, "--epochs", "3")
    assert run.returncode == 2
    assert [(event["event"], event["kind"]) for event in run.events] == [("error", "usage")]


def test_sigterm_cancels_a_running_job_promptly(tmp_path: Path) -> None:
    job_dir = write_text_job(tmp_path / "job", text_config(epochs=1000))
    process = subprocess.Popen(
        [sys.executable, "-m", "trainer", "run", str(job_dir), "--device", "cpu"],
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    assert json.loads(process.stdout.readline())["event"] == "started"
    process.send_signal(signal.SIGTERM)
    # Read while waiting: events keep coming until the signal is handled, and a full pipe would
    # block the trainer's last write (a shared, loaded machine can delay the handling a while).
    remaining, _ = process.communicate(timeout=20)
    assert process.returncode == 128 + signal.SIGTERM
    last = json.loads(remaining.splitlines()[-1])
    assert (last["event"], last["kind"]) == ("error", "cancelled")
    assert not (job_dir / "model.onnx").exists()
