"""Image augmentation on whole uint8 NHWC batches, on whatever device holds them.

Both functions return uint8 NHWC crops of `size`, exactly the form the exported model takes,
so training, validation and served predictions all enter the network through one forward.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

SCALE = (0.08, 1.0)
RATIO = (3 / 4, 4 / 3)


def center_crop(images: Tensor, size: int) -> Tensor:
    """The validation (and inference) view: a centred `size` square at offset floor((H - size) / 2)."""
    top = (images.shape[1] - size) // 2
    left = (images.shape[2] - size) // 2
    return images[:, top : top + size, left : left + size].contiguous()


def random_resized_crop_flip(images: Tensor, size: int) -> Tensor:
    """torchvision's RandomResizedCrop + RandomHorizontalFlip, one random box per image.

    Each box is drawn like torchvision's (area 8-100 %, aspect 3/4-4/3), but clamped to the image
    instead of retried, and all boxes are resampled in one bilinear `grid_sample` call: one
    affine map per image scales, shifts and mirrors the output grid onto its box.
    """
    count, height, width, _ = images.shape
    device = images.device
    area = torch.empty(count, device=device).uniform_(*SCALE) * (height * width)
    aspect = torch.empty(count, device=device).uniform_(*map(math.log, RATIO)).exp()
    box_width = (area * aspect).sqrt().clamp(max=width)
    box_height = (area / aspect).sqrt().clamp(max=height)
    center_x = box_width / 2 + torch.rand(count, device=device) * (width - box_width)
    center_y = box_height / 2 + torch.rand(count, device=device) * (height - box_height)
    mirror = torch.randint(0, 2, (count,), device=device) * 2 - 1

    # affine_grid works in [-1, 1] coordinates; a box of width w centred at cx (in pixels)
    # spans x_in = x_out * w / W + (2 * cx / W - 1); a negative scale mirrors the crop.
    theta = torch.zeros(count, 2, 3, device=device)
    theta[:, 0, 0] = box_width / width * mirror
    theta[:, 0, 2] = 2 * center_x / width - 1
    theta[:, 1, 1] = box_height / height
    theta[:, 1, 2] = 2 * center_y / height - 1
    grid = F.affine_grid(theta, [count, 3, size, size], align_corners=False)
    pixels = images.permute(0, 3, 1, 2).float()
    crops = F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return crops.round_().clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).contiguous()
