"""Training, validation and held-out test data for LDA-Net, all offline and seeded.

Block CS (natural images, :data:`lda_opt.data.TRAIN_IMAGES` / :data:`~lda_opt.data.TEST_IMAGES`):

* train: ``data.train`` random 33 x 33 crops (seed ``data.seed``) of the training-split
  images but ``data.val_images``, resized to ``data.size`` (with ``data.min_std`` > 0: only
  crops of at least that pixel standard deviation); with ``data.scales`` the crops are split
  evenly between the images at ``data.size`` and at each further size (the crops at the
  ``i``-th size drawn with seed ``data.seed + SCALE_SEED_STEP i``); with ``data.augment``
  each crop is then mapped by one of the 8 symmetries of the square, drawn with seed
  ``data.seed + AUGMENT_OFFSET`` (:func:`dihedral`);
* val: ``data.val`` crops (seed ``data.seed + 1``) of the ``data.val_images`` only;
* test: the five test-split images, resized to ``size`` (default 198 = 6 x 33), whole; the
  training never sees them.

MRI (complex images of ``task.shape``):

* train: ``data.train`` random-ellipse phantoms (seed ``data.seed``) plus ``data.natural``
  random crops of the training-split natural images (cross-modality, U-LDA Sec. 5.2.3);
* val: ``data.val`` phantoms with seed ``data.seed + VAL_OFFSET``;
* test: ``n`` phantoms with seed :data:`MRI_TEST_SEED` and the Shepp-Logan phantom.

Images carry a smooth random phase of amplitude ``data.max_phase`` (0: real-valued).
"""

from __future__ import annotations

import torch

from ..data import (
    TEST_IMAGES,
    TRAIN_IMAGES,
    load_images,
    random_blocks,
    random_ellipses,
    shepp_logan,
)
from ..data.mri import apply_phase
from ..tasks import Measurement
from .config import TrainConfig

__all__ = ["AUGMENT_OFFSET", "BLOCK_TEST_SIZE", "MRI_TEST_SEED", "SCALE_SEED_STEP", "VAL_OFFSET", "TrainData", "dihedral",
           "test_images", "training_data"]

#: seed of the held-out MRI test phantoms (never used for training data)
MRI_TEST_SEED = 2021_0915
#: validation phantoms use ``data.seed + VAL_OFFSET``
VAL_OFFSET = 7919
#: seed step between the training crops of the sizes ``(data.size, *data.scales)``
SCALE_SEED_STEP = 101
#: the symmetries of ``data.augment`` are drawn with seed ``data.seed + AUGMENT_OFFSET``
AUGMENT_OFFSET = 5
#: default side of the block-CS test images (6 x 6 blocks of 33 x 33)
BLOCK_TEST_SIZE = 198


class TrainData:
    """The measured training and validation sets of a config (``train``, ``val``:
    :class:`~lda_opt.tasks.Measurement`)."""

    def __init__(self, train: Measurement, val: Measurement) -> None:
        self.train = train
        self.val = val


def _dtype(config: TrainConfig, complex_: bool) -> torch.dtype:
    if config.train.dtype == "float64":
        return torch.complex128 if complex_ else torch.float64
    return torch.complex64 if complex_ else torch.float32


def _crops(images: torch.Tensor, n: int, seed: int, block: int, min_std: float) -> torch.Tensor:
    """``n`` random crops; with ``min_std > 0`` drawn from 8 n candidates, keeping (in draw
    order) those with pixel standard deviation >= ``min_std``."""
    if min_std <= 0:
        return random_blocks(images, n, seed=seed, block=block)
    cand = random_blocks(images, 8 * n, seed=seed, block=block)
    keep = cand.flatten(1).std(dim=1) >= min_std
    if int(keep.sum()) < n:
        raise ValueError(f"data.min_std = {min_std} leaves only {int(keep.sum())} of {8 * n} candidate crops; "
                         f"need {n}: lower it")
    return cand[keep][:n]


def dihedral(blocks: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """Map block ``i`` of ``blocks`` (N, C, H, H) by symmetry ``codes[i]`` in 0..7 of the
    square: a transpose of the last two axes when ``code >= 4``, then ``code % 4`` quarter
    turns (``torch.rot90``).  Code 0 is the identity."""
    if blocks.ndim != 4 or blocks.shape[-1] != blocks.shape[-2]:
        raise ValueError(f"blocks must have shape (N, C, H, H); got {tuple(blocks.shape)}")
    if codes.shape != (blocks.shape[0],) or bool(((codes < 0) | (codes > 7)).any()):
        raise ValueError(f"codes must hold one integer in 0..7 per block; got shape {tuple(codes.shape)}")
    out = blocks.clone()
    for c in range(1, 8):
        sel = codes == c
        if bool(sel.any()):
            b = blocks[sel].transpose(-1, -2) if c >= 4 else blocks[sel]
            out[sel] = torch.rot90(b, c % 4, dims=(-2, -1))
    return out


def _block_training_crops(config: TrainConfig, names: list[str]) -> torch.Tensor:
    d = config.data
    sizes = (d.size, *d.scales)
    counts = [d.train // len(sizes) + (i < d.train % len(sizes)) for i in range(len(sizes))]
    parts = []
    for i, (size, n) in enumerate(zip(sizes, counts)):
        if n > 0:
            imgs = load_images(names, size=size, dtype=torch.float64)
            parts.append(_crops(imgs, n, d.seed + SCALE_SEED_STEP * i, 33, d.min_std))
    crops = torch.cat(parts)
    if d.augment:
        gen = torch.Generator().manual_seed(d.seed + AUGMENT_OFFSET)
        crops = dihedral(crops, torch.randint(0, 8, (crops.shape[0],), generator=gen))
    return crops


def training_data(config: TrainConfig) -> TrainData:
    """Build (deterministically) the training and validation measurements of ``config``."""
    task = config.task.build()
    d = config.data
    if task.kind == "block-cs":
        dt = _dtype(config, False)
        fit_names = [n for n in TRAIN_IMAGES if n not in d.val_images]
        vimgs = load_images(list(d.val_images), size=d.size, dtype=torch.float64)
        train = _block_training_crops(config, fit_names).to(dt)
        val = random_blocks(vimgs, d.val, seed=d.seed + 1).to(dt)
        return TrainData(task.measure_blocks(train), task.measure_blocks(val))
    dt = _dtype(config, True)
    train = random_ellipses(d.train, size=task.shape, seed=d.seed, dtype=dt, max_phase=d.max_phase)
    if d.natural > 0:
        h, w = task.shape
        if h != w:
            raise ValueError("data.natural > 0 needs a square task.shape")
        fit_names = [n for n in TRAIN_IMAGES if n not in d.val_images]
        imgs = load_images(fit_names, size=max(d.size, h), dtype=torch.float64)
        crops = _crops(imgs, d.natural, d.seed + 2, h, d.min_std)
        train = torch.cat([train, apply_phase(crops, d.seed + 3, d.max_phase, dt)])
    val = random_ellipses(d.val, size=task.shape, seed=d.seed + VAL_OFFSET, dtype=dt, max_phase=d.max_phase)
    return TrainData(task.measure(train), task.measure(val))


def test_images(task, n: int = 8, size: int = BLOCK_TEST_SIZE, max_phase: float = 0.0,
                dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, list[str]]:
    """The held-out test ground truths of ``task`` and their names.

    Block CS: the test-split images at ``size`` x ``size`` (``n`` ignored).  MRI: ``n``
    phantoms (seed :data:`MRI_TEST_SEED`) and Shepp-Logan, complex.
    """
    if task.kind == "block-cs":
        return load_images(list(TEST_IMAGES), size=size, dtype=dtype), list(TEST_IMAGES)
    cdt = torch.complex128 if dtype in (torch.float64, torch.complex128) else torch.complex64
    ph = random_ellipses(n, size=task.shape, seed=MRI_TEST_SEED, dtype=cdt, max_phase=max_phase)
    sl = shepp_logan(task.shape, dtype=cdt, max_phase=max_phase, seed=MRI_TEST_SEED)
    return torch.cat([ph, sl]), [f"phantom{i}" for i in range(n)] + ["shepp_logan"]


test_images.__test__ = False  # not a pytest test when imported into a test module
