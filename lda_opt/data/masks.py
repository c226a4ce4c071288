"""k-space sampling masks with exact sampling ratios, seeded, offline.

All masks have signature ``mask(shape, ratio, seed=0, *, ..., dtype=torch.float32)`` and
return a 0/1 tensor of shape (H, W) (``dtype`` float32/float64 or bool) in the
**unshifted FFT layout** expected by ``torch.fft.fft2(x, norm="ortho")`` and
``lda_opt.operators.MRI``: the DC coefficient is at ``[0, 0]`` and low frequencies sit in
the four corners. Apply ``torch.fft.fftshift`` to display a mask centred. Masks are built
on the centred grid (DC at ``(H // 2, W // 2)``) and moved by ``ifftshift``.

Sampling ratio: ``K = round(ratio * H * W)`` (half up) samples exactly for
:func:`radial` and :func:`variable_density`, so the achieved ratio is within
``0.5 / (H W)`` of the request; :func:`cartesian` samples ``round(ratio * H)`` whole lines
and raises ``ValueError`` when that cannot meet the request within 0.01 (small H).

Randomness comes from ``numpy.random.default_rng(seed)`` only.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from lda_opt.data._common import check_fraction, check_seed, check_size, round_half_up

__all__ = ["MASKS", "cartesian", "radial", "sampling_ratio", "variable_density"]

_GOLDEN_ANGLE = math.pi * (3.0 - math.sqrt(5.0))  # 111.246... degrees, as radians mod pi


def _check_common(shape, ratio, seed, dtype):
    h, w = check_size(shape, "shape", minimum=2)
    ratio = check_fraction(ratio, "ratio")
    check_seed(seed)
    if dtype not in (torch.bool, torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.bool, torch.float32 or torch.float64, got {dtype!r}")
    return h, w, ratio


def _finish(centred: np.ndarray, dtype: torch.dtype) -> torch.Tensor:
    m = np.fft.ifftshift(centred.astype(bool))
    return torch.from_numpy(np.ascontiguousarray(m)).to(dtype)


def _centred_radius(h: int, w: int) -> np.ndarray:
    """Normalized distance from DC on the centred grid: 1 at the edge midpoints."""
    ky = (np.arange(h) - h // 2) / max(h / 2, 1)
    kx = (np.arange(w) - w // 2) / max(w / 2, 1)
    return np.sqrt(ky[:, None] ** 2 + kx[None, :] ** 2)


def sampling_ratio(mask: torch.Tensor) -> float:
    """Fraction of sampled k-space locations, ``mask.sum() / mask.numel()``."""
    return float(mask.to(torch.float64).mean())


def radial(
    shape, ratio: float, seed: int = 0, *, dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Radial (spoke) mask: lines through DC at golden-angle increments.

    Spoke ``j`` has angle ``theta_0 + j * golden_angle`` (``theta_0`` uniform from the seed),
    is rasterized with half-pixel steps and nearest-pixel rounding. Pixels are taken in
    order of the first spoke that hits them (ties: closer to DC first) until exactly
    ``K = round(ratio H W)`` are sampled, so the last spoke is truncated to its central
    part. Every mask samples DC. Returns (H, W), DC at [0, 0].
    """
    h, w, ratio = _check_common(shape, ratio, seed, dtype)
    n = h * w
    k = min(n, max(1, round_half_up(ratio * n)))
    rng = np.random.default_rng(seed)
    theta0 = rng.uniform(0.0, math.pi)
    n_spokes = math.ceil(math.pi * max(h, w)) + 1
    radius = 0.5 * math.hypot(h, w)
    t = np.arange(-radius, radius + 0.25, 0.5)
    theta = theta0 + _GOLDEN_ANGLE * np.arange(n_spokes)
    cy, cx = h // 2, w // 2
    py = np.rint(cy + np.outer(np.sin(theta), t)).astype(np.int64)
    px = np.rint(cx + np.outer(np.cos(theta), t)).astype(np.int64)
    inside = (py >= 0) & (py < h) & (px >= 0) & (px < w)
    spoke = np.broadcast_to(np.arange(n_spokes)[:, None], py.shape)[inside]
    pix = (py * w + px)[inside]  # spoke-major order
    first = np.full(n, n_spokes, dtype=np.int64)  # never hit -> after all spokes
    uniq, idx = np.unique(pix, return_index=True)
    first[uniq] = spoke[idx]
    dist = _centred_radius(h, w).ravel()
    order = np.lexsort((np.arange(n), dist, first))
    centred = np.zeros(n, dtype=bool)
    centred[order[:k]] = True
    return _finish(centred.reshape(h, w), dtype)


def _weighted_without_replacement(rng, weights: np.ndarray, k: int) -> np.ndarray:
    """Indices of k distinct items drawn with probabilities ~ weights (Efraimidis-Spirakis)."""
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    keys = rng.exponential(size=weights.shape[0]) / weights
    return np.argpartition(keys, k - 1)[:k]


def cartesian(
    shape,
    ratio: float,
    seed: int = 0,
    *,
    center_fraction: float = 0.05,
    sigma: float = 0.3,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Random Cartesian mask: whole k-space rows (fixed ``k_y``, all ``k_x``).

    ``L = round(ratio H)`` rows are sampled: the ``round(center_fraction H)`` rows closest
    to DC (at least 1, at most ``L``; U-LDA Sec. 5.2 keeps the lowest 5%) and the rest
    drawn without replacement with Gaussian weights ``exp(-k_y^2 / (2 (sigma H/2)^2))``
    (``k_y`` in rows from DC), so low frequencies are more likely. The achieved ratio is
    ``L / H``; a ``ValueError`` is raised if it differs from ``ratio`` by more than 0.01.
    Returns (H, W), DC at [0, 0].
    """
    h, w, ratio = _check_common(shape, ratio, seed, dtype)
    center_fraction = check_fraction(center_fraction, "center_fraction", lo_open=False)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite float, got {sigma!r}")
    n_lines = min(h, max(1, round_half_up(ratio * h)))
    if abs(n_lines / h - ratio) > 0.01:
        raise ValueError(
            f"ratio={ratio} cannot be met within 0.01 with whole lines for H={h}: "
            f"nearest achievable ratios are {(n_lines - 1) / h:.4f}, {n_lines / h:.4f}, "
            f"{(n_lines + 1) / h:.4f}"
        )
    rng = np.random.default_rng(seed)
    ky = np.arange(h) - h // 2
    n_center = min(n_lines, max(1, round_half_up(center_fraction * h)))
    by_distance = np.lexsort((ky, np.abs(ky)))  # DC first, then +-1, ...
    rows = np.zeros(h, dtype=bool)
    rows[by_distance[:n_center]] = True
    rest = np.flatnonzero(~rows)
    weights = np.exp(-0.5 * (ky[rest] / (sigma * h / 2)) ** 2) + 1e-12
    rows[rest[_weighted_without_replacement(rng, weights, n_lines - n_center)]] = True
    centred = np.broadcast_to(rows[:, None], (h, w))
    return _finish(centred, dtype)


def variable_density(
    shape,
    ratio: float,
    seed: int = 0,
    *,
    center_fraction: float = 0.02,
    sigma: float = 0.35,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Variable-density random 2-D mask (Lustig-style), exactly ``K = round(ratio H W)`` points.

    The ``round(center_fraction H W)`` pixels nearest to DC (capped at K) are always
    sampled; the rest are drawn without replacement with Gaussian density
    ``exp(-r^2 / (2 sigma^2))``, ``r`` the normalized distance from DC (1 at the edge
    midpoints). Returns (H, W), DC at [0, 0].
    """
    h, w, ratio = _check_common(shape, ratio, seed, dtype)
    center_fraction = check_fraction(center_fraction, "center_fraction", lo_open=False)
    if not (isinstance(sigma, (int, float)) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite float, got {sigma!r}")
    n = h * w
    k = min(n, max(1, round_half_up(ratio * n)))
    rng = np.random.default_rng(seed)
    r = _centred_radius(h, w).ravel()
    n_center = min(k, max(1, round_half_up(center_fraction * n)))
    by_distance = np.lexsort((np.arange(n), r))
    centred = np.zeros(n, dtype=bool)
    centred[by_distance[:n_center]] = True
    rest = np.flatnonzero(~centred)
    weights = np.exp(-0.5 * (r[rest] / sigma) ** 2) + 1e-12
    centred[rest[_weighted_without_replacement(rng, weights, k - n_center)]] = True
    return _finish(centred.reshape(h, w), dtype)


#: name -> mask function, for CLIs and configs.
MASKS = {"radial": radial, "cartesian": cartesian, "variable_density": variable_density}
