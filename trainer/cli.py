"""`python3 -m trainer run JOB_DIR`: argument parsing, the progress stream and exit codes."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TextIO

import torch

from trainer.errors import Cancelled, OutOfMemory, TrainerError, UsageError
from trainer.job import JobOptions, run_job
from trainer.progress import Emit, JsonLinesEmitter

log = logging.getLogger("trainer")


class _Parser(argparse.ArgumentParser):
    """Reports bad arguments as an `error` event like any other failure."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="python3 -m trainer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    run = commands.add_parser("run", help="train the job in JOB_DIR and write its artifacts there")
    run.add_argument("job_dir", metavar="JOB_DIR", type=Path, help="folder with config.json and the dataset")
    run.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                     help="auto picks CUDA when available (default: %(default)s)")
    run.add_argument("--weights-dir", type=Path, metavar="DIR",
                     default=Path(torch.hub.get_dir()) / "checkpoints",
                     help="folder of torchvision ImageNet weight files, never downloaded "
                     "(default: %(default)s)")
    run.add_argument("--seed", type=_non_negative_int, metavar="N",
                     help="overrides config.json's seed (default: the config's seed, else 0)")
    run.add_argument("--batch-progress-seconds", type=_non_negative_float, metavar="S", default=1.0,
                     help="least time between batch events (an epoch's last batch is always "
                     "reported); 0 reports every batch "
                     "(default: %(default)s)")
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(
        stream=sys.stderr, level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    emit = JsonLinesEmitter(_claim_stdout())
    signal.signal(signal.SIGTERM, _cancel)
    try:
        args = build_parser().parse_args(argv)
        options = JobOptions(
            job_dir=args.job_dir,
            device=args.device,
            weights_dir=args.weights_dir,
            seed=args.seed,
            batch_progress_seconds=args.batch_progress_seconds,
        )
        run_job(options, emit)
        return 0
    except TrainerError as error:
        return _fail(emit, error)
    except Terminated:
        return _fail(emit, Cancelled("cancelled by SIGTERM"))
    except KeyboardInterrupt:
        return _fail(emit, Cancelled("cancelled by an interrupt"))
    except torch.cuda.OutOfMemoryError:
        return _fail(emit, OutOfMemory("CUDA out of memory: lower batch_size or image_size"))
    except MemoryError:
        return _fail(emit, OutOfMemory("out of host memory"))
    except Exception as error:  # every failure must end in one error event
        log.exception("internal error")
        return _fail(emit, TrainerError(f"internal error: {type(error).__name__}: {error}"))


def _fail(emit: Emit, error: TrainerError) -> int:
    log.error("%s error: %s", error.kind, error)
    emit("error", message=str(error), kind=error.kind)
    return error.exit_code


class Terminated(BaseException):
    """SIGTERM arrived. A BaseException, like KeyboardInterrupt, so that no `except Exception`
    on the way can swallow it: logging's handlers do exactly that with errors raised while they
    write, and a SIGTERM landing during a log call used to leave the job running."""


def _cancel(signum: int, frame: FrameType | None) -> None:
    """SIGTERM (the server cancelling the job) unwinds training from wherever it is."""
    raise Terminated()


def _claim_stdout() -> TextIO:
    """Reserve the real stdout for progress events and send everything else to stderr.

    The server parses stdout as JSON lines, but libraries print there too: some torch.onnx
    versions print a diagnostics banner, and C++ code writes to file descriptor 1 directly.
    So events get a private duplicate of fd 1, and fd 1 and `sys.stdout` now lead to stderr.
    """
    sys.stdout.flush()
    events = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return events


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value


def _non_negative_float(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text}")
    return value
