"""Offline denoising data and the patch matrix Y of the dual ST-CNN paper.

The paper (dual-st-cnn-2024, Fig. 6) replaces the 2D convolution ``Y~ (x) U~_k`` of
eq. (20) by the matrix product ``Y u_k`` of eq. (21), where ``Y = [y_1, ..., y_I]^T`` is
the ``I x m^2`` patch matrix (im2col) of the input image, ``I = n h`` (one patch per output
pixel, so the convolution keeps the image size: zero padding of ``(m - 1) / 2``).  For a set
of images the rows of all images are stacked, so one ``Y`` and one label vector ``x`` hold a
whole training set, and the objective (21) is summed over every pixel of every image.

Data are scikit-learn's bundled 8 x 8 handwritten digits (``load_digits``, shipped inside
the scikit-learn wheel: nothing is downloaded), scaled to [0, 1], with i.i.d. Gaussian
noise ``N(0, sigma^2)`` added (paper Sec. IV-A uses MNIST the same way).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["DenoisingSet", "im2col", "load_digits_denoising"]


def im2col(images: np.ndarray, m: int) -> np.ndarray:
    """Patch matrix ``Y`` of eq. (21) (Fig. 6): one row ``y_i^T`` per output pixel.

    ``images`` has shape ``(N, H, W)``; the result has shape ``(N*H*W, m*m)`` and row
    ``i = (n, r, c)`` (C order) holds the ``m x m`` window centred at pixel ``(r, c)`` of
    image ``n``, zero padded, flattened in C order.  With this ordering ``(Y u)_i`` equals
    the 2D cross-correlation (PyTorch ``conv2d``, padding ``(m-1)/2``) of image ``n`` with
    the filter ``u.reshape(m, m)`` at pixel ``(r, c)``.
    """
    images = np.asarray(images, dtype=np.float64)
    if images.ndim != 3:
        raise ValueError(f"images must have shape (N, H, W); got {images.shape}")
    if not isinstance(m, (int, np.integer)) or m < 1 or m % 2 == 0:
        raise ValueError(f"filter_size m must be a positive odd integer; got {m!r}")
    t = torch.from_numpy(images)[:, None]  # (N, 1, H, W)
    cols = F.unfold(t, kernel_size=m, padding=(m - 1) // 2)  # (N, m*m, H*W)
    return cols.permute(0, 2, 1).reshape(-1, m * m).numpy().copy()


@dataclass(frozen=True, kw_only=True)
class DenoisingSet:
    """Clean and noisy images of one split.  Arrays have shape ``(N, H, W)``."""

    clean: np.ndarray
    noisy: np.ndarray

    def patches(self, m: int) -> np.ndarray:
        """Patch matrix ``Y`` (eq. 21) of the noisy images."""
        return im2col(self.noisy, m)

    def label(self) -> np.ndarray:
        """Label vector ``x`` (eq. 21): the clean pixels, in the row order of ``Y``."""
        return self.clean.reshape(-1).astype(np.float64)


def load_digits_denoising(
    *, n_train: int, n_test: int, noise: float, seed: int
) -> tuple[DenoisingSet, DenoisingSet]:
    """Disjoint train/test splits of scikit-learn's digits in [0, 1] with Gaussian noise.

    The image choice and the noise are drawn from ``numpy.random.default_rng(seed)``.
    """
    from sklearn.datasets import load_digits

    if n_train < 1:
        raise ValueError(f"n_train must be >= 1; got {n_train}")
    if n_test < 1:
        raise ValueError(f"n_test must be >= 1; got {n_test}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite number >= 0; got {noise}")
    images = load_digits().images / 16.0
    if n_train + n_test > images.shape[0]:
        raise ValueError(
            f"n_train + n_test must be <= {images.shape[0]}; got {n_train + n_test}"
        )
    rng = np.random.default_rng(seed)
    idx = rng.permutation(images.shape[0])[: n_train + n_test]
    clean = images[idx]
    noisy = clean + noise * rng.standard_normal(clean.shape)
    train = DenoisingSet(clean=clean[:n_train], noisy=noisy[:n_train])
    test = DenoisingSet(clean=clean[n_train:], noisy=noisy[n_train:])
    return train, test
