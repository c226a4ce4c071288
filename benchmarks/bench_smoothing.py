"""Micro-benchmarks (pytest-benchmark): the smoothing kernels.

``Huber`` and ``Sqrt``: ``value`` (``r_eps`` per sample, LDA eq. 9 / meta-LDA eq. 5) and
``dual`` (``y*_eps``, the cotangent of the gradient's one backward pass, LDA eq. 8), and
the exact ``r = ||g||_{2,1}``, on features of the paper's CNN size (batch 4, d = 32,
64x64, float32) and of TV on a 256x256 image (batch 1, d = 2, float64); plus a complex
case (batch 4, d = 32, 32x32, complex64).  Each sample has its own ``eps``.
"""

from __future__ import annotations

import os

import pytest
import torch

from lda_opt.smoothing import Huber, Smoothing, Sqrt

torch.set_num_threads(int(os.environ.get("LDA_OPT_BENCH_THREADS", "1")))

SHAPES = {
    "cnn-4x32x64x64-f32": ((4, 32, 64, 64), torch.float32),
    "tv-1x2x256x256-f64": ((1, 2, 256, 256), torch.float64),
    "complex-4x32x32x32-c64": ((4, 32, 32, 32), torch.complex64),
}


def _features(key: str) -> tuple[torch.Tensor, torch.Tensor]:
    shape, dtype = SHAPES[key]
    gen = torch.Generator().manual_seed(0)
    g = torch.randn(shape, generator=gen, dtype=dtype) * 0.1
    eps = torch.logspace(-3, -1, shape[0], dtype=g.real.dtype)
    return g, eps


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("smoothing", [Huber(), Sqrt()], ids=lambda s: s.name)
def test_value(benchmark, smoothing, key):
    g, eps = _features(key)
    r = benchmark(smoothing.value, g, eps)
    assert r.shape == (g.shape[0],)
    # the sandwich r_eps <= r <= r_eps + gap (LDA eq. 6; meta-LDA eq. 5)
    exact = Smoothing.exact(g)
    m = g.shape[2] * g.shape[3]
    assert bool((r <= exact * (1 + 1e-5)).all())
    assert bool((exact <= (r + smoothing.gap(m, eps)) * (1 + 1e-5)).all())


@pytest.mark.parametrize("key", list(SHAPES))
@pytest.mark.parametrize("smoothing", [Huber(), Sqrt()], ids=lambda s: s.name)
def test_dual(benchmark, smoothing, key):
    g, eps = _features(key)
    y = benchmark(smoothing.dual, g, eps)
    assert y.shape == g.shape
    # every group of y* lies in the unit ball
    n2 = (y.abs().square() if y.is_complex() else y.square()).sum(dim=1)
    assert bool((n2 <= 1 + 1e-5).all())


@pytest.mark.parametrize("key", list(SHAPES))
def test_exact(benchmark, key):
    g, _ = _features(key)
    r = benchmark(Smoothing.exact, g)
    assert r.shape == (g.shape[0],) and bool((r > 0).all())
