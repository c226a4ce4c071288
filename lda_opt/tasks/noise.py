r"""The noise models of the imaging tasks, as named choices.

Every model adds zero-mean Gaussian noise of level ``sigma`` to clean data ``y`` and draws
it from ``torch.Generator().manual_seed(seed)`` on the CPU (then moves it to ``y``'s
device), so a seed gives the same noise on every machine.  The models differ in where the
noise lives and in how it is drawn; two models of the same distribution give different
draws from the same seed, which is why each caller names the one it uses.

=================  ===========================================================================
name               ``y + ...``
=================  ===========================================================================
``gaussian``       ``sigma * n``, ``n`` real standard Gaussian of ``y``'s shape, drawn in
                   float64 (real data: denoising, block CS measurements ``b``)
``kspace``         ``P sigma n``, ``n`` standard complex Gaussian (``E|n_i|^2 = 1``, torch's
                   complex ``randn``) of ``y``'s shape, drawn in complex128; ``P`` the mask
                   of the MRI operator: noise on the sampled k-space only
``kspace-pairs``   ``P complex(w)``, ``w`` real Gaussian (real and imaginary part) of
                   standard deviation ``sigma / sqrt(2)`` each, drawn as ``(..., 2)``
                   float64 pairs: the distribution of ``kspace``, another draw
``image``          ``sigma A(n)``, ``n`` standard complex Gaussian of the *image*'s shape
                   and dtype: image-domain noise pushed through the forward operator
=================  ===========================================================================
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from .._validate import choice

__all__ = ["NOISE_MODELS", "add_noise"]


def _draw(shape, seed: int, dtype: torch.dtype) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _gaussian(y, sigma, seed, operator, image):
    if y.is_complex():
        raise ValueError("the 'gaussian' noise model is for real data; complex (MRI) data take "
                         "'kspace', 'kspace-pairs' or 'image'")
    n = _draw(y.shape, seed, torch.float64)
    return y + (sigma * n).to(device=y.device, dtype=y.dtype)


def _mask(operator, y):
    mask = getattr(operator, "mask", None)
    if mask is None:
        raise ValueError("the k-space noise models need the MRI operator (its mask P)")
    return mask.to(y.real.dtype)


def _kspace(y, sigma, seed, operator, image):
    n = _draw(y.shape, seed, torch.complex128).to(device=y.device, dtype=y.dtype)
    return y + _mask(operator, y) * sigma * n


def _kspace_pairs(y, sigma, seed, operator, image):
    w = _draw((*y.shape, 2), seed, torch.float64) * (sigma / math.sqrt(2))
    return y + (_mask(operator, y) * torch.view_as_complex(w.to(y.device))).to(y.dtype)


def _image(y, sigma, seed, operator, image):
    if operator is None or image is None:
        raise ValueError("the 'image' noise model needs the operator and the image")
    n = _draw(image.shape, seed, image.dtype).to(image.device)
    return y + sigma * operator(n)


_MODELS: dict[str, Callable] = {"gaussian": _gaussian, "kspace": _kspace, "kspace-pairs": _kspace_pairs,
                                "image": _image}
#: the names of the noise models (module docstring)
NOISE_MODELS = tuple(_MODELS)


def add_noise(model: str, y: torch.Tensor, sigma: float, seed: int, *, operator=None,
              image: torch.Tensor | None = None) -> torch.Tensor:
    """``y`` plus the noise of ``model`` (one of :data:`NOISE_MODELS`) at level ``sigma``,
    seeded by ``seed``; ``operator`` is the forward model (its mask for the k-space models,
    itself for ``image``) and ``image`` the clean image (``image`` only)."""
    choice("noise_model", model, NOISE_MODELS)
    return _MODELS[model](y, sigma, seed, operator, image)
