"""Writes the best checkpoint as TorchScript and ONNX, plus `check.json` for cross-runtime tests.

Everything is exported from an fp32 CPU copy in eval mode, whatever device trained it, so the
files load on the server's CPU and match the logits recorded in `check.json`.
"""

from __future__ import annotations

import copy
import inspect
import json
import logging
from pathlib import Path

import torch
from torch import Tensor, nn

MODEL_FILE = "model.pt"
ONNX_FILE = "model.onnx"
CHECK_FILE = "check.json"
ONNX_OPSET = 14
TOLERANCE = 1e-4
"""Max abs logit difference allowed between eager PyTorch and any exported runtime."""

log = logging.getLogger(__name__)


def export_model(
    model: nn.Module, state: dict[str, Tensor], check_inputs: Tensor, is_image: bool, job_dir: Path
) -> list[str]:
    """Export `model` with `state` loaded; returns the names of the files written."""
    exported = copy.deepcopy(model).to("cpu", memory_format=torch.contiguous_format)
    exported.load_state_dict(state)
    exported.float().eval()
    check_inputs = check_inputs.cpu()
    with torch.no_grad():
        expected = exported(check_inputs)

    torch.jit.script(exported).save(str(job_dir / MODEL_FILE))
    scripted = torch.jit.load(str(job_dir / MODEL_FILE))
    with torch.no_grad():
        difference = (scripted(check_inputs) - expected).abs().max().item()
    if not difference <= TOLERANCE:  # also catches NaN
        raise RuntimeError(f"TorchScript logits differ from PyTorch by {difference:.3g}")

    input_name = "input" if is_image else "input_ids"
    input_axes = {0: "batch"} if is_image else {0: "batch", 1: "sequence"}
    torch.onnx.export(
        exported,
        (check_inputs,),
        str(job_dir / ONNX_FILE),
        input_names=[input_name],
        output_names=["logits"],
        dynamic_axes={input_name: input_axes, "logits": {0: "batch"}},
        opset_version=ONNX_OPSET,
        **_torchscript_exporter(),
    )
    check = {
        "input_name": input_name,
        "dtype": str(check_inputs.dtype).removeprefix("torch."),
        "shape": list(check_inputs.shape),
        "inputs": check_inputs.tolist(),
        "output_name": "logits",
        "logits": expected.tolist(),
        "tolerance": TOLERANCE,
    }
    (job_dir / CHECK_FILE).write_text(json.dumps(check, allow_nan=False), encoding="utf-8")
    log.info("exported %s and %s (TorchScript matches to %.2g)", MODEL_FILE, ONNX_FILE, difference)
    return [MODEL_FILE, ONNX_FILE, CHECK_FILE]


def _torchscript_exporter() -> dict[str, bool]:
    """PyTorch 2.9 made the dynamo exporter (which needs onnxscript) the default; the
    TorchScript exporter used here is the one that works from 1.13 on."""
    return {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
