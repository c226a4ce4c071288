"""Natural test images, offline: scikit-image's bundled images (no pooch downloads).

Every image is returned as grayscale float in [0, 1] with shape (1, 1, H, W).
RGB images are converted with ``skimage.color.rgb2gray`` (ITU-R 601 luma), uint8 images
are divided by 255.

Fixed split by name (documented, never random):

* :data:`TEST_IMAGES` = camera, astronaut, coins, moon, coffee
* :data:`TRAIN_IMAGES` = brick, cell, chelsea, clock, grass, gravel, hubble_deep_field,
  immunohistochemistry, microaneurysms, page, retina, rocket, text

Left out on purpose: synthetic or binary images (checkerboard, colorwheel, horse, logo),
``cat`` (the same photo as ``chelsea``), and the images that need a pooch download in
scikit-image 0.26 (eagle, lily, brain, kidney, skin, human_mitosis, ...).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from lda_opt.data._common import check_real_dtype, check_size

__all__ = [
    "TEST_IMAGES",
    "TRAIN_IMAGES",
    "list_images",
    "load_image",
    "load_image_file",
    "load_images",
    "test_images",
    "to_gray01",
    "train_images",
]

TEST_IMAGES: tuple[str, ...] = ("camera", "astronaut", "coins", "moon", "coffee")
TRAIN_IMAGES: tuple[str, ...] = (
    "brick",
    "cell",
    "chelsea",
    "clock",
    "grass",
    "gravel",
    "hubble_deep_field",
    "immunohistochemistry",
    "microaneurysms",
    "page",
    "retina",
    "rocket",
    "text",
)
_ALL = tuple(sorted(TRAIN_IMAGES + TEST_IMAGES))


def list_images() -> list[str]:
    """All registered image names (sorted)."""
    return list(_ALL)


def train_images() -> list[str]:
    """Names of the fixed training split."""
    return list(TRAIN_IMAGES)


def test_images() -> list[str]:
    """Names of the fixed test split."""
    return list(TEST_IMAGES)


test_images.__test__ = False  # not a pytest test when imported into a test module


def to_gray01(arr: np.ndarray) -> np.ndarray:
    """Grayscale float64 in [0, 1] from a 2-D, RGB or RGBA array.

    Integer arrays are divided by their dtype's maximum, bool maps to {0, 1}, float arrays
    are kept as they are (they must be finite). RGB(A) goes through ``rgb2gray``.
    """
    from skimage.color import rgb2gray, rgba2rgb

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[2] in (3, 4):
        if a.dtype.kind in "ui":
            a = a.astype(np.float64) / np.iinfo(a.dtype).max
        if a.shape[2] == 4:
            a = rgba2rgb(a)
        a = rgb2gray(a)
    elif a.ndim != 2:
        raise ValueError(f"image array must be (H, W), (H, W, 3) or (H, W, 4), got {a.shape}")
    if a.size == 0:
        raise ValueError(f"image array is empty (shape {a.shape})")
    if a.dtype == bool:
        a = a.astype(np.float64)
    elif a.dtype.kind in "ui":
        a = a.astype(np.float64) / np.iinfo(a.dtype).max
    elif a.dtype.kind == "f":
        a = a.astype(np.float64)
    else:
        raise ValueError(f"unsupported image array dtype {a.dtype}")
    if not np.isfinite(a).all():
        raise ValueError("image contains NaN or Inf")
    return a


def _resize(a: np.ndarray, size) -> np.ndarray:
    if size is None:
        return a
    from skimage.transform import resize

    hw = check_size(size)
    if hw == a.shape:
        return a
    out = resize(a, hw, order=1, mode="reflect", anti_aliasing=True, preserve_range=True)
    lo, hi = float(a.min()), float(a.max())
    return np.clip(out, lo, hi)  # interpolation never leaves the input's range


def _to_tensor(a: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(a)).to(dtype)[None, None]


def load_image_file(
    path: str | os.PathLike, size=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Load a PNG (any format ``skimage.io`` reads) or an NPY file as (1, 1, H, W).

    NPY files are read with ``allow_pickle=False``. Values are converted by
    :func:`to_gray01` (integers scaled to [0, 1], floats kept). ``size`` as in
    :func:`load_image`.
    """
    check_real_dtype(dtype)
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"image file not found: {p}")
    try:
        if p.suffix.lower() == ".npy":
            arr = np.load(p, allow_pickle=False)
        else:
            from skimage.io import imread

            arr = imread(p)
    except ValueError as exc:  # e.g. an object array (allow_pickle=False) or a bad header
        raise ValueError(f"{p} cannot be read: {exc}") from exc
    except Exception as exc:  # the decoders raise OSError, EOFError, struct.error,
        # SyntaxError, ... on a damaged file: all of them mean "cannot be read"
        raise ValueError(f"{p} cannot be read: {type(exc).__name__}: {exc}".splitlines()[0]) from exc
    return _to_tensor(_resize(to_gray01(arr), size), dtype)


def load_image(
    name: str | os.PathLike, size=None, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """A registered image (or a ``.png`` / ``.npy`` path) as a (1, 1, H, W) tensor in [0, 1].

    Args:
        name: one of :func:`list_images`, or a path to a PNG/NPY file.
        size: None (native size), an int n (n x n) or (H, W); resized with
            ``skimage.transform.resize(order=1, anti_aliasing=True)`` and clipped to the
            input's value range.
        dtype: torch.float32 or torch.float64.
    """
    check_real_dtype(dtype)
    if size is not None:
        check_size(size)
    if isinstance(name, os.PathLike) or (
        isinstance(name, str)
        and name not in _ALL
        and (name.lower().endswith((".png", ".npy", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")))
    ):
        return load_image_file(name, size=size, dtype=dtype)
    if not isinstance(name, str) or name not in _ALL:
        raise ValueError(
            f"unknown image {name!r}; valid names: {', '.join(_ALL)} (or a .png/.npy path)"
        )
    import skimage.data

    arr = getattr(skimage.data, name)()
    return _to_tensor(_resize(to_gray01(arr), size), dtype)


def load_images(names=None, size=128, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Several registered images resized to a common ``size``, stacked to (N, 1, H, W).

    ``names`` defaults to :func:`list_images`; it may also be ``"train"`` or ``"test"``.
    """
    if names is None:
        names = list_images()
    elif names == "train":
        names = train_images()
    elif names == "test":
        names = test_images()
    if isinstance(names, str) or len(names) == 0:
        raise ValueError(
            f"names must be a non-empty list of image names, 'train' or 'test', got {names!r}"
        )
    check_size(size)
    return torch.cat([load_image(n, size=size, dtype=dtype) for n in names], dim=0)
