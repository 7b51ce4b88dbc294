"""The job's `config.json`: the platform's training.json fields, validated into a `TrainConfig`.

Values arrive in the forms the platform stores (`"70 : 30"`, `"mobilenet v2"`, `false` for a
disabled scheduler). Every problem is collected so one `error` event names them all.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from trainer.errors import ConfigError

IMAGE_TASK = "imageclassification"
TEXT_TASK = "textclassification"
MODELS_BY_TASK = {
    IMAGE_TASK: ("resnet18", "resnet34", "mobilenet v2"),
    TEXT_TASK: ("lstm", "gru"),
}
ALL_MODELS = MODELS_BY_TASK[IMAGE_TASK] + MODELS_BY_TASK[TEXT_TASK]
OPTIMIZERS = ("sgd", "adam")
PRETRAIN_DATASETS = ("imagenet", "scratch")
DEFAULT_IMAGE_SIZE = 224
MIN_IMAGE_SIZE = 32  # the CNNs downsample by 32
DEFAULT_SEED = 0

_SPLIT = re.compile(r"^\s*(\d+)\s*:\s*(\d+)\s*$")
_REQUIRED = object()


@dataclass(frozen=True)
class PlateauSchedule:
    factor: float
    patience: int
    min_lr: float


@dataclass(frozen=True)
class StepSchedule:
    step_size: int
    gamma: float


@dataclass(frozen=True)
class TrainConfig:
    task_type: str
    num_classes: int
    model: str
    optimizer: str
    learning_rate: float
    batch_size: int
    epochs: int
    train_percent: int
    """From `data_split` "70 : 30": the share of each class used for training."""
    reduce_lr_on_plateau: PlateauSchedule | None
    step_lr: StepSchedule | None
    pretrain_dataset: str
    """Always "scratch" for text models."""
    image_size: int
    seed: int

    @property
    def is_image(self) -> bool:
        return self.task_type == IMAGE_TASK

    def resolved(self) -> dict[str, Any]:
        """The effective config in the platform's value forms, defaults filled in."""
        resolved: dict[str, Any] = {
            "task_type": self.task_type,
            "num_classes": self.num_classes,
            "model": self.model,
            "optimizer": self.optimizer,
            "learning_rate": self.learning_rate,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "data_split": f"{self.train_percent} : {100 - self.train_percent}",
            "reduce_lr_on_plateau": _schedule_json(self.reduce_lr_on_plateau),
            "step_lr": _schedule_json(self.step_lr),
            "seed": self.seed,
        }
        if self.is_image:
            resolved["pretrain_dataset"] = self.pretrain_dataset
            resolved["image_size"] = self.image_size
        return resolved


def load_config(path: Path, seed_override: int | None = None) -> TrainConfig:
    """Read and validate `config.json`; `seed_override` (the --seed flag) wins over its `seed`."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path.name} not found in the job folder {path.parent}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ConfigError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path.name} must hold a JSON object")
    return parse_config(raw, seed_override)


def parse_config(raw: dict[str, Any], seed_override: int | None = None) -> TrainConfig:
    fields = _Fields(raw)
    task_type = fields.choice("task_type", tuple(MODELS_BY_TASK))
    model = fields.choice("model", ALL_MODELS)
    if task_type and model and model not in MODELS_BY_TASK[task_type]:
        fields.problems.append(
            f"model {model!r} does not fit task_type {task_type!r} "
            f"(expected one of {', '.join(MODELS_BY_TASK[task_type])})"
        )
    is_image = task_type == IMAGE_TASK
    config = dict(
        task_type=task_type,
        model=model,
        num_classes=fields.integer("num_classes", minimum=2),
        optimizer=fields.choice("optimizer", OPTIMIZERS),
        learning_rate=fields.number("learning_rate", lambda v: v > 0, "a number > 0"),
        batch_size=fields.integer("batch_size", minimum=1),
        epochs=fields.integer("epochs", minimum=1),
        train_percent=fields.split("data_split"),
        reduce_lr_on_plateau=fields.schedule("reduce_lr_on_plateau", _plateau),
        step_lr=fields.schedule("step_lr", _step),
        pretrain_dataset=fields.choice(
            "pretrain_dataset", PRETRAIN_DATASETS if is_image else ("scratch",), default="scratch"
        ),
        image_size=fields.integer("image_size", minimum=MIN_IMAGE_SIZE, default=DEFAULT_IMAGE_SIZE),
        seed=(
            seed_override
            if seed_override is not None
            else fields.integer("seed", minimum=0, default=DEFAULT_SEED)
        ),
    )
    if fields.problems:
        raise ConfigError("invalid config.json: " + "; ".join(fields.problems))
    return TrainConfig(**config)


def _plateau(fields: _Fields) -> PlateauSchedule:
    return PlateauSchedule(
        factor=fields.number("factor", lambda v: 0 < v < 1, "a number between 0 and 1"),
        patience=fields.integer("patience", minimum=0),
        min_lr=fields.number("min_lr", lambda v: v >= 0, "a number >= 0"),
    )


def _step(fields: _Fields) -> StepSchedule:
    return StepSchedule(
        step_size=fields.integer("step_size", minimum=1),
        gamma=fields.number("gamma", lambda v: 0 < v <= 1, "a number in (0, 1]"),
    )


def _schedule_json(schedule: PlateauSchedule | StepSchedule | None) -> dict[str, Any] | bool:
    return False if schedule is None else dict(schedule.__dict__)


class _Fields:
    """Reads typed fields from a JSON object, collecting problems instead of stopping at one."""

    def __init__(self, raw: dict[str, Any], prefix: str = "", problems: list[str] | None = None):
        self.raw = raw
        self.prefix = prefix
        self.problems = [] if problems is None else problems

    def _get(self, key: str, default: Any) -> Any:
        if key in self.raw and self.raw[key] is not None:
            return self.raw[key]
        if default is _REQUIRED:
            self.problems.append(f"{self.prefix}{key} is required")
        return default if default is not _REQUIRED else None

    def _bad(self, key: str, value: Any, expected: str) -> None:
        self.problems.append(f"{self.prefix}{key} must be {expected}, got {json.dumps(value)}")

    def choice(self, key: str, options: tuple[str, ...], default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        normalized = " ".join(value.lower().split()) if isinstance(value, str) else value
        if normalized not in options:
            self._bad(key, value, "one of " + ", ".join(json.dumps(o) for o in options))
            return None
        return normalized

    def integer(self, key: str, minimum: int, default: Any = _REQUIRED) -> Any:
        value = self._get(key, default)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self._bad(key, value, f"an integer >= {minimum}")
            return None
        return value

    def number(self, key: str, valid: Callable[[float], bool], expected: str) -> Any:
        value = self._get(key, _REQUIRED)
        if value is None:
            return None
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
            or not valid(value)
        ):
            self._bad(key, value, expected)
            return None
        return float(value)

    def split(self, key: str) -> Any:
        value = self._get(key, _REQUIRED)
        if value is None:
            return None
        match = _SPLIT.match(value) if isinstance(value, str) else None
        train, validation = (int(match[1]), int(match[2])) if match else (0, 0)
        if min(train, validation) < 1 or train + validation != 100:
            self._bad(key, value, 'a "train : validation" split of positive percentages summing to 100')
            return None
        return train

    def schedule(self, key: str, parse: Callable[[_Fields], Any]) -> Any:
        value = self.raw.get(key, False)
        if value is False or value is None:
            return None
        if not isinstance(value, dict):
            self._bad(key, value, "an object or false")
            return None
        before = len(self.problems)
        schedule = parse(_Fields(value, f"{key}.", self.problems))
        return schedule if len(self.problems) == before else None
