"""MRI ground truths, offline and seeded: Shepp-Logan, random-ellipse phantoms and
natural images used as a (cross-modality) MRI source domain (U-LDA Sec. 5.2.3).

All functions return (N, 1, H, W) tensors with magnitudes in [0, 1]. ``dtype`` may be
real (float32/float64) or complex (complex64/complex128). With ``max_phase > 0`` (complex
dtypes only) each image is multiplied by ``exp(i phi)`` with a smooth random phase
``phi`` (:func:`smooth_random_phase`), as real MR images carry a slowly varying phase;
with ``max_phase = 0`` a complex image is real-valued. k-space data are then
``torch.fft.fft2(x, norm="ortho")`` (see ``lda_opt.operators.MRI`` and
``lda_opt.data.masks``).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lda_opt.data._common import (
    COMPLEX_DTYPES,
    check_any_dtype,
    check_seed,
    check_size,
)

__all__ = ["apply_phase", "natural_mri", "random_ellipses", "shepp_logan", "smooth_random_phase"]


def _check_phase(max_phase: float, dtype: torch.dtype) -> float:
    if isinstance(max_phase, bool) or not isinstance(max_phase, (int, float)):
        raise TypeError(f"max_phase must be a float in [0, pi], got {type(max_phase).__name__}")
    max_phase = float(max_phase)
    if not (0.0 <= max_phase <= math.pi):
        raise ValueError(f"max_phase must be in [0, pi], got {max_phase}")
    if max_phase > 0 and dtype not in COMPLEX_DTYPES:
        raise ValueError(f"max_phase > 0 needs a complex dtype (complex64/complex128), got {dtype}")
    return max_phase


def smooth_random_phase(
    size, seed: int = 0, max_phase: float = math.pi / 2, grid: int = 4
) -> torch.Tensor:
    """Smooth random phase map (H, W) in float64 with ``max |phi| = max_phase``.

    A ``grid`` x ``grid`` standard Gaussian array (``numpy.random.default_rng(seed)``) is
    upsampled bicubically (``align_corners=True``) to (H, W) and scaled so its largest
    magnitude is ``max_phase``; it varies on the scale of H / (grid - 1) pixels.
    """
    h, w = check_size(size)
    check_seed(seed)
    if isinstance(grid, bool) or not isinstance(grid, int) or grid < 2:
        raise ValueError(f"grid must be an int >= 2, got {grid!r}")
    if not (isinstance(max_phase, (int, float)) and 0 <= max_phase <= math.pi):
        raise ValueError(f"max_phase must be in [0, pi], got {max_phase!r}")
    coarse = torch.from_numpy(np.random.default_rng(seed).standard_normal((grid, grid)))
    phi = torch.nn.functional.interpolate(
        coarse[None, None], size=(h, w), mode="bicubic", align_corners=True
    )[0, 0]
    peak = phi.abs().max()
    return phi * (max_phase / peak) if peak > 0 else phi


def apply_phase(
    images: torch.Tensor,
    seed: int = 0,
    max_phase: float = 0.0,
    dtype: torch.dtype = torch.complex64,
) -> torch.Tensor:
    """Real images (N, C, H, W) -> ``dtype``; complex with phase ``exp(i phi_k)`` per image,
    ``phi_k = smooth_random_phase(.., seed + k, max_phase)``."""
    check_any_dtype(dtype)
    max_phase = _check_phase(max_phase, dtype)
    check_seed(seed)
    if dtype not in COMPLEX_DTYPES:
        return images.to(dtype)
    rdt = torch.float64 if dtype == torch.complex128 else torch.float32
    out = images.to(rdt).to(dtype)
    if max_phase == 0:
        return out
    h, w = images.shape[-2:]
    phases = torch.stack(
        [smooth_random_phase((h, w), seed + k, max_phase) for k in range(images.shape[0])]
    )[:, None]
    return out * torch.polar(torch.ones_like(phases), phases).to(dtype)


def shepp_logan(
    size=128, dtype: torch.dtype = torch.float32, max_phase: float = 0.0, seed: int = 0
) -> torch.Tensor:
    """The Shepp-Logan phantom (``skimage.data.shepp_logan_phantom``, 400 x 400) as
    (1, 1, H, W), resized anti-aliased to ``size`` and clipped to [0, 1]."""
    from skimage.data import shepp_logan_phantom
    from skimage.transform import resize

    h, w = check_size(size)
    check_any_dtype(dtype)
    _check_phase(max_phase, dtype)
    img = shepp_logan_phantom()
    if img.shape != (h, w):
        img = resize(img, (h, w), order=1, anti_aliasing=True, preserve_range=True)
    img = np.clip(img, 0.0, 1.0)
    x = torch.from_numpy(np.ascontiguousarray(img))[None, None]
    return apply_phase(x, seed, max_phase, dtype)


def _ellipse_phantom(h: int, w: int, rng: np.random.Generator, n_ellipses: int) -> np.ndarray:
    """One phantom: a 'head' ellipse of intensity 0.5-0.8 plus inner ellipses of random
    signed intensity, summed then clipped to [0, 1] (as Shepp-Logan adds intensities)."""
    yy, xx = np.meshgrid(np.linspace(-1.0, 1.0, h), np.linspace(-1.0, 1.0, w), indexing="ij")
    img = np.zeros((h, w))

    def add(cy, cx, ay, ax, angle, value):
        c, s = math.cos(angle), math.sin(angle)
        u = (xx - cx) * c + (yy - cy) * s
        v = -(xx - cx) * s + (yy - cy) * c
        img[(u / ax) ** 2 + (v / ay) ** 2 <= 1.0] += value

    head_a = rng.uniform(0.75, 0.92, 2)
    add(0.0, 0.0, head_a[0], head_a[1], rng.uniform(-0.3, 0.3), rng.uniform(0.5, 0.8))
    for _ in range(n_ellipses):
        r, t = 0.55 * math.sqrt(rng.uniform()), rng.uniform(0, 2 * math.pi)
        axes = rng.uniform(0.04, 0.3, 2)
        add(
            r * math.sin(t),
            r * math.cos(t),
            axes[0],
            axes[1],
            rng.uniform(0, math.pi),
            rng.uniform(-0.4, 0.4),
        )
    return np.clip(img, 0.0, 1.0)


def random_ellipses(
    n: int = 1,
    size=128,
    seed: int = 0,
    *,
    n_ellipses: int = 10,
    dtype: torch.dtype = torch.float32,
    max_phase: float = 0.0,
) -> torch.Tensor:
    """``n`` random-ellipse phantoms (n, 1, H, W), seeded by ``numpy.random.default_rng``.

    Each has an outer head ellipse (semi-axes in [0.75, 0.92] of the half-width,
    intensity in [0.5, 0.8]) and ``n_ellipses`` inner ellipses (centres within radius 0.55,
    semi-axes in [0.04, 0.3], any orientation, intensity in [-0.4, 0.4]); intensities add
    and the result is clipped to [0, 1]. The same seed gives the same phantoms.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be an int >= 1, got {n!r}")
    if isinstance(n_ellipses, bool) or not isinstance(n_ellipses, int) or n_ellipses < 0:
        raise ValueError(f"n_ellipses must be an int >= 0, got {n_ellipses!r}")
    h, w = check_size(size, minimum=2)
    check_seed(seed)
    check_any_dtype(dtype)
    _check_phase(max_phase, dtype)
    rng = np.random.default_rng(seed)
    imgs = np.stack([_ellipse_phantom(h, w, rng, n_ellipses) for _ in range(n)])
    x = torch.from_numpy(imgs)[:, None]
    return apply_phase(x, seed, max_phase, dtype)


def natural_mri(
    names=None,
    size=128,
    seed: int = 0,
    *,
    dtype: torch.dtype = torch.complex64,
    max_phase: float = 0.0,
) -> torch.Tensor:
    """Natural images as complex MRI-like ground truths (U-LDA Sec. 5.2.3 cross-modality).

    Grayscale intensities normalized to [0, 1] (as U-LDA does for ImageNet/CIFAR-10),
    resized to ``size``, optionally given a smooth random phase. ``names`` defaults to
    the training split (``lda_opt.data.train_images()``); also ``"train"``/``"test"``.
    Returns (N, 1, H, W) of ``dtype``.
    """
    from lda_opt.data.images import load_images

    check_any_dtype(dtype)
    _check_phase(max_phase, dtype)
    check_seed(seed)
    imgs = load_images("train" if names is None else names, size=size, dtype=torch.float64)
    return apply_phase(imgs, seed, max_phase, dtype)
