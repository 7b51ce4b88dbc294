"""The split, the batches and the on-device augmentation."""

from __future__ import annotations

import torch

from trainer.augment import center_crop, random_resized_crop_flip
from trainer.data import TextSamples, stratified_split


def test_split_is_stratified_and_gives_every_class_of_two_or_more_a_validation_sample() -> None:
    labels = torch.tensor([0] * 10 + [1] * 2 + [2] * 1 + [3] * 5)
    train, validation = stratified_split(labels, train_percent=70, seed=0)
    assert torch.bincount(labels[validation], minlength=4).tolist() == [3, 1, 0, 2]
    assert sorted(train.tolist() + validation.tolist()) == list(range(len(labels)))


def test_split_is_the_same_for_the_same_seed_and_differs_for_another() -> None:
    labels = torch.arange(40) % 2
    first, second = stratified_split(labels, 80, seed=1), stratified_split(labels, 80, seed=1)
    assert torch.equal(first[1], second[1])
    assert not torch.equal(first[1], stratified_split(labels, 80, seed=2)[1])


def test_a_last_training_batch_of_one_sample_is_left_out_but_never_in_validation() -> None:
    samples = TextSamples(
        torch.ones(9, 3, dtype=torch.int64), torch.full((9,), 3), torch.zeros(9, dtype=torch.int64),
        torch.device("cpu"),
    )
    assert [len(labels) for _, labels in samples.batches(4, train=True)] == [4, 4]
    assert [len(labels) for _, labels in samples.batches(4, train=False)] == [4, 4, 1]
    assert samples.num_batches(4, train=True) == 2


def test_text_batches_are_cut_to_their_longest_sequence() -> None:
    tokens = torch.tensor([[5, 0, 0, 0], [5, 6, 0, 0], [5, 6, 7, 8]])
    samples = TextSamples(tokens, torch.tensor([1, 2, 4]), torch.tensor([0, 1, 0]), torch.device("cpu"))
    assert [ids.shape[1] for ids, _ in samples.batches(2, train=False)] == [2, 4]


def test_center_crop_takes_the_middle_square_at_the_floor_offset() -> None:
    rows = torch.arange(9).view(1, 9, 1, 1).expand(1, 9, 9, 3).to(torch.uint8)
    crop = center_crop(rows.contiguous(), 4)
    assert crop.shape == (1, 4, 4, 3)
    assert crop[0, :, 0, 0].tolist() == [2, 3, 4, 5]


def test_random_resized_crops_are_uint8_nhwc_and_about_half_are_mirrored() -> None:
    torch.manual_seed(0)
    columns = torch.arange(0, 250, 5).view(1, 1, 50, 1).expand(400, 50, 50, 3).to(torch.uint8)
    crops = random_resized_crop_flip(columns.contiguous(), 32)
    assert crops.dtype == torch.uint8 and crops.shape == (400, 32, 32, 3)
    left, right = crops[:, 16, 0, 0].float(), crops[:, 16, -1, 0].float()
    mirrored = (left > right).float().mean().item()
    assert 0.35 < mirrored < 0.65
    assert (crops.float().std(dim=(1, 2, 3)) > 0).all(), "every crop should span several columns"
