"""Image quality metrics, per sample: inputs (B, C, H, W) real or complex, outputs (B,).

* :func:`psnr` -- meta-LDA eq. (21), ``20 log10(max|ref| / sqrt(MSE))`` by default;
* :func:`ssim` -- Gaussian-window SSIM (meta-LDA eq. (22), Wang et al. 2004), on
  magnitudes for complex input, differentiable (U-LDA eq. (3.2a) uses it as a loss);
* :func:`nmse` -- ``||x - ref||^2 / ||ref||^2``;
* :func:`relative_error` -- RelErr / RLNE ``||x - ref|| / ||ref||``.

``ref`` is the ground truth. All are computed in the input's real precision and are
differentiable in ``x`` (and ``ref``) wherever the formulas are.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["mse", "nmse", "psnr", "relative_error", "ssim"]


def _check_pair(x: torch.Tensor, ref: torch.Tensor) -> None:
    for name, t in (("x", x), ("ref", ref)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(f"{name} must have shape (B, C, H, W), got {tuple(t.shape)}")
        if not (t.is_floating_point() or t.is_complex()):
            raise TypeError(f"{name} must be a floating or complex tensor, got {t.dtype}")
    if x.shape != ref.shape:
        raise ValueError(
            f"x and ref must have the same shape, got {tuple(x.shape)} and {tuple(ref.shape)}"
        )
    if x.device != ref.device:
        raise ValueError(f"x and ref must be on the same device, got {x.device} and {ref.device}")


def _sqnorm(t: torch.Tensor) -> torch.Tensor:
    """Per-sample squared Euclidean norm (real and imaginary parts for complex)."""
    a = t.abs() if t.is_complex() else t
    return a.square().flatten(1).sum(1)


def _data_range(ref: torch.Tensor, data_range) -> torch.Tensor:
    b = ref.shape[0]
    rdt = ref.real.dtype if ref.is_complex() else ref.dtype
    if data_range is None:
        peak = ref.detach().abs().flatten(1).amax(1).to(rdt)
        if not bool((peak > 0).all()):
            raise ValueError("ref is identically zero in a sample: pass data_range explicitly")
        return peak
    if isinstance(data_range, torch.Tensor):
        dr = data_range.to(device=ref.device, dtype=rdt).reshape(-1)
        if dr.numel() not in (1, b):
            raise ValueError(
                f"data_range must be a scalar or have B = {b} entries, got {dr.numel()}"
            )
        dr = dr.expand(b)
    else:
        if isinstance(data_range, bool) or not isinstance(data_range, (int, float)):
            raise TypeError(
                f"data_range must be a positive number, a tensor or None, got {data_range!r}"
            )
        dr = torch.full((b,), float(data_range), dtype=rdt, device=ref.device)
    if not (torch.isfinite(dr).all() and (dr > 0).all()):
        raise ValueError(f"data_range must be positive and finite, got {data_range!r}")
    return dr


def mse(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Mean squared error ``(1/N) ||x - ref||^2`` per sample, N = C*H*W. Shape (B,)."""
    _check_pair(x, ref)
    return _sqnorm(x - ref) / x[0].numel()


def psnr(x: torch.Tensor, ref: torch.Tensor, data_range=None) -> torch.Tensor:
    r"""Peak signal-to-noise ratio in dB, meta-LDA eq. (21):

    .. math:: \mathrm{PSNR} = 20 \log_{10}\frac{P}{\sqrt{\mathrm{MSE}(x, ref)}},
              \qquad \mathrm{MSE} = \tfrac{1}{N}\|x - ref\|^2,

    with peak ``P = max|ref|`` per sample (default) or ``P = data_range`` (e.g. 1.0 for
    images in [0, 1], as in LDA Table 1). Identical images give ``+inf``.
    """
    _check_pair(x, ref)
    peak = _data_range(ref, data_range)
    err = mse(x, ref)
    return 20.0 * torch.log10(peak) - 10.0 * torch.log10(err)


def nmse(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    r"""Normalized MSE ``||x - ref||^2 / ||ref||^2`` per sample.

    Normalized by the ground truth ``ref`` (fastMRI convention). meta-LDA eq. (23) prints
    the reconstruction's norm in the denominator; we follow the standard definition of its
    cited reference, which is also symmetric with :func:`relative_error` (nmse = relerr^2).
    """
    _check_pair(x, ref)
    return _sqnorm(x - ref) / _sqnorm(ref)


def relative_error(x: torch.Tensor, ref: torch.Tensor) -> torch.Tensor:
    """Relative error / RLNE ``||x - ref|| / ||ref||`` per sample (LDA Table 3)."""
    _check_pair(x, ref)
    return torch.sqrt(_sqnorm(x - ref) / _sqnorm(ref))


def _gaussian_window(sigma: float, truncate: float, dtype, device) -> torch.Tensor:
    radius = int(truncate * sigma + 0.5)  # as scipy.ndimage.gaussian_filter
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    w = torch.exp(-0.5 * (t / sigma) ** 2)
    return (w / w.sum()).to(dtype=dtype, device=device)


def ssim(
    x: torch.Tensor,
    ref: torch.Tensor,
    data_range=None,
    *,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    truncate: float = 3.5,
) -> torch.Tensor:
    r"""Structural similarity, meta-LDA eq. (22) (Wang, Bovik, Sheikh, Simoncelli 2004):

    .. math::

        \mathrm{SSIM} = \frac{(2\mu_x\mu_r + C_1)(2\sigma_{xr} + C_2)}
                             {(\mu_x^2 + \mu_r^2 + C_1)(\sigma_x^2 + \sigma_r^2 + C_2)},
        \qquad C_1 = (k_1 L)^2,\ C_2 = (k_2 L)^2,

    with local statistics from a Gaussian window of standard deviation ``sigma`` = 1.5
    truncated at ``truncate * sigma`` (11 x 11), population (not sample) covariances,
    averaged over the pixels whose window lies inside the image ("valid" region), then over
    channels. ``L = data_range`` (default ``max|ref|`` per sample, "the largest pixel value"
    of eq. (22)). Complex input is compared on magnitudes ``|x|``, ``|ref|``. This matches
    ``skimage.metrics.structural_similarity(gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=L)``.

    Differentiable (all torch ops); ``1 - ssim`` serves as the training loss of
    U-LDA eq. (3.2a). Returns shape (B,).
    """
    _check_pair(x, ref)
    for name, v in (("sigma", sigma), ("k1", k1), ("k2", k2), ("truncate", truncate)):
        if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
            raise ValueError(f"{name} must be a positive finite float, got {v!r}")
    L = _data_range(ref, data_range)
    if x.is_complex():
        x = x.abs()
    if ref.is_complex():
        ref = ref.abs()
    dt = torch.promote_types(x.dtype, ref.dtype)
    x, ref = x.to(dt), ref.to(dt)
    w = _gaussian_window(float(sigma), float(truncate), dt, x.device)
    k = w.numel()
    b, c, h, wd = x.shape
    if h < k or wd < k:
        raise ValueError(f"images must be at least {k} x {k} for the SSIM window, got {h} x {wd}")

    def blur(t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(b * c, 1, h, wd)
        t = F.conv2d(t, w.view(1, 1, k, 1))
        t = F.conv2d(t, w.view(1, 1, 1, k))
        return t.reshape(b, c, h - k + 1, wd - k + 1)

    mu_x, mu_r = blur(x), blur(ref)
    sxx = blur(x * x) - mu_x * mu_x
    srr = blur(ref * ref) - mu_r * mu_r
    sxr = blur(x * ref) - mu_x * mu_r
    L = L.to(dt).view(b, 1, 1, 1)
    c1, c2 = (k1 * L) ** 2, (k2 * L) ** 2
    s = ((2 * mu_x * mu_r + c1) * (2 * sxr + c2)) / (
        (mu_x * mu_x + mu_r * mu_r + c1) * (sxx + srr + c2)
    )
    return s.mean(dim=(1, 2, 3))
