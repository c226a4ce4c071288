r"""Training losses of the unrolled networks.

* :func:`mse_loss` -- LDA eq. (1): ``(1/N) sum_s 1/2 ||x^{(s)} - \hat x^{(s)}||^2``
  (real and imaginary parts for complex images);
* :func:`reconstruction_loss` -- the same plus the optional SSIM term of U-LDA eq. (3.2a),
  ``- a S(x, \hat x)`` averaged over the batch (implemented as ``a (1 - S)``, which has the
  same gradient and stays non-negative);
* :func:`ulda_loss` -- the upper-level loss of U-LDA eqs. (3.2a) / (3.3a) exactly,
  ``(1/N) sum_s ||x^{(s)} - \hat x^{(s)}||^2 - alpha S(x^{(s)}, \hat x^{(s)})`` (no 1/2),
  returned plus the constant ``alpha`` (so ``>= 0``; same gradient and minimizer).
"""

from __future__ import annotations

import math

import torch

from ..metrics import ssim

__all__ = ["mse_loss", "reconstruction_loss", "ulda_loss"]


def _check(x: torch.Tensor, truth: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or not isinstance(truth, torch.Tensor):
        raise TypeError("x and truth must be torch tensors")
    if x.shape != truth.shape:
        raise ValueError(f"x and truth must have the same shape; got {tuple(x.shape)} and {tuple(truth.shape)}")
    if x.dim() < 2:
        raise ValueError(f"x must have a batch dimension (B, ...); got {tuple(x.shape)}")


def mse_loss(x: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """``mean_s 1/2 ||x_s - truth_s||^2`` (a 0-dim tensor)."""
    _check(x, truth)
    d = x - truth
    d = torch.view_as_real(d) if d.is_complex() else d
    return 0.5 * d.reshape(d.shape[0], -1).square().sum(dim=1).mean()


def reconstruction_loss(x: torch.Tensor, truth: torch.Tensor, ssim_weight: float = 0.0,
                        data_range: float | None = 1.0) -> torch.Tensor:
    """:func:`mse_loss` ``+ ssim_weight * mean_s (1 - SSIM(x_s, truth_s))`` (U-LDA eq. 3.2a).

    ``data_range`` is the SSIM dynamic range (1 for images in [0, 1]; None: ``max|truth|``
    per sample).  SSIM needs images of at least 11 x 11 pixels.
    """
    if isinstance(ssim_weight, bool) or not isinstance(ssim_weight, (int, float)) or \
            not math.isfinite(ssim_weight) or ssim_weight < 0:
        raise ValueError(f"ssim_weight must be a finite number >= 0; got {ssim_weight!r}")
    loss = mse_loss(x, truth)
    if ssim_weight > 0:
        loss = loss + ssim_weight * (1.0 - ssim(x, truth, data_range=data_range)).mean()
    return loss


def ulda_loss(x: torch.Tensor, truth: torch.Tensor, alpha: float = 0.01,
              data_range: float | None = None) -> torch.Tensor:
    r"""The upper-level loss of U-LDA eqs. (3.2a) and (3.3a) on a batch, plus ``alpha``:

    .. math:: \frac{1}{B}\sum_{s=1}^{B}\Big(\|x_s - \hat x_s\|^2 - \alpha S(x_s, \hat x_s)\Big)
              + \alpha
              = \frac{1}{B}\sum_{s}\Big(\|x_s - \hat x_s\|^2 + \alpha (1 - S(x_s, \hat x_s))\Big),

    ``S`` the SSIM of :func:`lda_opt.metrics.ssim` (on magnitudes for complex images, data
    range ``max|truth|`` per sample by default).  The paper's squared norm has no 1/2, so this
    is exactly ``2 reconstruction_loss(x, truth, alpha / 2)``; the added constant keeps it
    non-negative and changes neither the gradient nor the minimizer.  Paper: ``alpha = 0.01``
    (the best of {0.1, 0.01, 0.001}, U-LDA Table 5).
    """
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0; got {alpha!r}")
    return 2.0 * reconstruction_loss(x, truth, alpha / 2.0, data_range)
