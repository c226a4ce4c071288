"""Block-CS training data: the crop filter, the extra scales and the symmetry augmentation."""

from __future__ import annotations

import pytest
import torch

from lda_opt.data import TRAIN_IMAGES, load_images, random_blocks
from lda_opt.learning import TrainConfig
from lda_opt.learning.datasets import AUGMENT_OFFSET, SCALE_SEED_STEP, dihedral, training_data

BLOCK = {
    "name": "bcs",
    "task": {"kind": "block-cs", "ratio": 0.25, "init_blocks": 300, "init_size": 66},
    "data": {"train": 24, "val": 4, "seed": 3, "size": 66, "val_images": ["rocket", "page"]},
}
FIT = [n for n in TRAIN_IMAGES if n not in ("rocket", "page")]


def _config(**data) -> TrainConfig:
    return TrainConfig.from_dict({**BLOCK, "data": {**BLOCK["data"], **data}})


def _truth(cfg: TrainConfig) -> torch.Tensor:
    return training_data(cfg).train.truth.to(torch.float64)


def test_dihedral_maps_are_the_eight_symmetries_of_the_square():
    x = torch.arange(2 * 9, dtype=torch.float64).reshape(2, 1, 3, 3)
    images = [dihedral(x[:1], torch.tensor([c]))[0, 0] for c in range(8)]
    assert torch.equal(images[0], x[0, 0])
    assert torch.equal(images[1], torch.rot90(x[0, 0], 1))
    assert torch.equal(images[4], x[0, 0].T)
    # eight distinct images of an asymmetric block, each a permutation of its pixels
    assert len({tuple(im.flatten().tolist()) for im in images}) == 8
    for im in images:
        assert torch.equal(im.flatten().sort().values, x[0, 0].flatten())
    # per-block codes
    both = dihedral(x, torch.tensor([0, 6]))
    assert torch.equal(both[0], x[0]) and torch.equal(both[1], torch.rot90(x[1].transpose(-1, -2), 2, dims=(-2, -1)))


@pytest.mark.parametrize("codes, shape", [(torch.tensor([8]), (1, 1, 3, 3)), (torch.tensor([0, 1]), (1, 1, 3, 3)),
                                          (torch.tensor([0]), (1, 1, 3, 4))])
def test_dihedral_rejects_bad_codes_and_shapes(codes, shape):
    with pytest.raises(ValueError, match="codes|blocks"):
        dihedral(torch.zeros(shape), codes)


def test_default_data_are_the_plain_crops_of_data_size():
    cfg = _config()
    want = random_blocks(load_images(FIT, size=66, dtype=torch.float64), 24, seed=3)
    assert torch.allclose(_truth(cfg), want.to(torch.float32).to(torch.float64), atol=0)


def test_min_std_keeps_only_crops_at_least_that_varied_in_draw_order():
    cfg = _config(min_std=0.05)
    got = _truth(cfg)
    cand = random_blocks(load_images(FIT, size=66, dtype=torch.float64), 8 * 24, seed=3)
    want = cand[cand.flatten(1).std(dim=1) >= 0.05][:24]
    assert got.shape[0] == 24
    assert torch.equal(got, want.to(torch.float32).to(torch.float64))
    with pytest.raises(ValueError, match="min_std"):
        training_data(_config(min_std=10.0))


def test_scales_split_the_crops_evenly_between_the_sizes():
    cfg = _config(train=25, scales=[99, 132])
    got = _truth(cfg)
    assert got.shape == (25, 1, 33, 33)
    counts = (9, 8, 8)
    start = 0
    for i, (size, n) in enumerate(zip((66, 99, 132), counts)):
        want = random_blocks(load_images(FIT, size=size, dtype=torch.float64), n, seed=3 + SCALE_SEED_STEP * i)
        assert torch.equal(got[start:start + n], want.to(torch.float32).to(torch.float64)), size
        start += n


def test_augment_maps_each_crop_by_its_seeded_symmetry():
    plain = _truth(_config(train=40))
    aug = _truth(_config(train=40, augment=True))
    codes = torch.randint(0, 8, (40,), generator=torch.Generator().manual_seed(3 + AUGMENT_OFFSET))
    assert torch.equal(aug, dihedral(plain, codes))
    assert len(set(codes.tolist())) > 1 and not torch.equal(aug, plain)
    assert torch.equal(aug, _truth(_config(train=40, augment=True)))  # deterministic


@pytest.mark.parametrize("data, match", [({"scales": [32]}, "data.scales"), ({"scales": [66]}, "data.scales"),
                                         ({"scales": [99, 99]}, "data.scales"), ({"scales": 99}, "data.scales"),
                                         ({"augment": 1}, "data.augment")])
def test_bad_scales_and_augment_raise_naming_the_field(data, match):
    with pytest.raises(ValueError, match=match):
        _config(**data)


def test_scales_and_augment_are_block_cs_only():
    with pytest.raises(ValueError, match="block-cs"):
        TrainConfig.from_dict({"name": "m", "task": {"kind": "mri", "shape": [16, 16]}, "data": {"augment": True}})
