"""PyTorch on this CPU: what one train step of the trainer's CNNs costs per image, by thread count and batch size.

    python3 bench/torch_threads.py [--rounds N] [--steps N]

Prints one JSON object: {"threads_default", "cores", "rows": [{"model", "threads", "batch",
"rounds": [ms per image, ...]}]}. Used by `npm run bench -- training`: PyTorch starts here with
`threads_default` intra-op threads, and its CPU convolutions only take the oneDNN (mkldnn) path
for small 1 x 1 convolutions when more than one thread runs or the batch holds 16 or more, so
the trainer's CPU speed depends on both.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import torch
import torch.nn.functional as F
import torchvision


def per_image_ms(model: torch.nn.Module, optimizer: torch.optim.Optimizer, batch: int, size: int, steps: int) -> float:
    x = torch.randn(batch, 3, size, size)
    y = torch.arange(batch) % 2
    times = []
    for _ in range(steps + 1):  # the first step warms up
        started = time.perf_counter()
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
        optimizer.step()
        times.append((time.perf_counter() - started) * 1000 / batch)
    times = sorted(times[1:])
    return times[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds, each timing every setting (default 3)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps per setting and round, after one warm-up (default 2)")
    parser.add_argument("--size", type=int, default=224, help="image side (default 224)")
    args = parser.parse_args()

    threads_default = torch.get_num_threads()
    cores = len(os.sched_getaffinity(0))
    torch.manual_seed(0)
    # (threads, batch): the trainer as it runs here, every core, and a batch of 16 on one thread.
    settings = [(threads_default, 4), (cores, 4), (threads_default, 16)]
    rows = []
    for name in ("mobilenet_v2", "resnet18"):
        model = getattr(torchvision.models, name)(num_classes=2)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
        results = {setting: [] for setting in settings}
        for round_ in range(args.rounds):
            shift = round_ % len(settings)
            for threads, batch in settings[shift:] + settings[:shift]:
                torch.set_num_threads(threads)
                results[(threads, batch)].append(per_image_ms(model, optimizer, batch, args.size, args.steps))
        rows += [{"model": name, "threads": t, "batch": b, "rounds": values} for (t, b), values in results.items()]
    torch.set_num_threads(threads_default)
    print(json.dumps({"threads_default": threads_default, "cores": cores, "rows": rows}))


if __name__ == "__main__":
    main()
