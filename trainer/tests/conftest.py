"""Finished trainer runs shared by the end-to-end tests: each trains once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.tests.jobs import Run, image_config, run_trainer, text_config, write_image_job, write_text_job

IMAGE_EPOCHS = 3


@pytest.fixture(scope="session")
def image_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    config = image_config(epochs=IMAGE_EPOCHS, step_lr={"step_size": 1, "gamma": 0.5})
    job_dir = write_image_job(tmp_path_factory.mktemp("image-job"), config)
    return job_dir, run_trainer(job_dir, "--batch-progress-seconds", "0")


@pytest.fixture(scope="session")
def text_job(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Run]:
    job_dir = write_text_job(tmp_path_factory.mktemp("text-job"), text_config(model="gru"))
    return job_dir, run_trainer(job_dir)
