"""config.json in the platform's value forms."""

from __future__ import annotations

import pytest

from trainer.config import PlateauSchedule, StepSchedule, parse_config
from trainer.errors import ConfigError
from trainer.tests.jobs import image_config, text_config

FLASH_SAMPLE = {
    "token": "imageClassification-cla-shan-test-ow5o0",
    "task_type": "imageclassification",
    "num_classes": 10,
    "optimizer": "sgd",
    "learning_rate": 0.01,
    "batch_size": 128,
    "epochs": 20,
    "data_split": "70 : 30",
    "model": "mobilenet v2",
    "pretrain_dataset": "imagenet",
    "reduce_lr_on_plateau": {"factor": 0.1, "patience": 5, "min_lr": 1e-5},
    "step_lr": {"step_size": 4, "gamma": 0.1},
}


def test_the_flash_sample_config_parses_with_its_schedules_and_default_extras() -> None:
    config = parse_config(FLASH_SAMPLE)
    assert config.model == "mobilenet v2" and config.train_percent == 70
    assert config.reduce_lr_on_plateau == PlateauSchedule(factor=0.1, patience=5, min_lr=1e-5)
    assert config.step_lr == StepSchedule(step_size=4, gamma=0.1)
    assert (config.image_size, config.seed, config.pretrain_dataset) == (224, 0, "imagenet")


@pytest.mark.parametrize("split, train_percent", [("70 : 30", 70), ("70:30", 70), ("80 : 20", 80)])
def test_data_split_accepts_spaced_and_unspaced_forms(split: str, train_percent: int) -> None:
    assert parse_config(image_config(data_split=split)).train_percent == train_percent


@pytest.mark.parametrize("split", ["70/30", "70 : 40", "100 : 0", "seventy", 70])
def test_data_split_rejects_anything_but_two_percentages_summing_to_100(split: object) -> None:
    with pytest.raises(ConfigError, match="data_split"):
        parse_config(image_config(data_split=split))


def test_false_disables_a_scheduler_and_resolves_back_to_false() -> None:
    config = parse_config(image_config(reduce_lr_on_plateau=False, step_lr=False))
    assert config.reduce_lr_on_plateau is None and config.step_lr is None
    resolved = config.resolved()
    assert resolved["reduce_lr_on_plateau"] is False and resolved["step_lr"] is False


def test_text_jobs_may_omit_pretrain_dataset_and_resolve_without_image_fields() -> None:
    resolved = parse_config(text_config()).resolved()
    assert "pretrain_dataset" not in resolved and "image_size" not in resolved


def test_text_jobs_cannot_ask_for_imagenet_weights() -> None:
    with pytest.raises(ConfigError, match="pretrain_dataset"):
        parse_config(text_config(pretrain_dataset="imagenet"))


def test_the_seed_flag_overrides_the_config_seed() -> None:
    assert parse_config(image_config(seed=3), seed_override=7).seed == 7


def test_unknown_keys_are_ignored() -> None:
    assert parse_config({**image_config(), "dataset": {"red": []}, "token": "x"}).num_classes == 3


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"num_classes": 1}, "num_classes"),
        ({"batch_size": 0}, "batch_size"),
        ({"batch_size": 8.5}, "batch_size"),
        ({"epochs": True}, "epochs"),
        ({"learning_rate": 0}, "learning_rate"),
        ({"learning_rate": "0.01"}, "learning_rate"),
        ({"image_size": 16}, "image_size"),
        ({"step_lr": True}, "step_lr"),
        ({"reduce_lr_on_plateau": {"factor": 2, "patience": 1, "min_lr": 0}}, "reduce_lr_on_plateau.factor"),
        ({"task_type": None}, "task_type is required"),
    ],
)
def test_out_of_range_or_mistyped_values_are_config_errors(overrides: dict, field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        parse_config(image_config(**overrides))
