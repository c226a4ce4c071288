"""Learned feature maps: the LDA feature CNN, U-LDA adapters and their composition."""

from __future__ import annotations

import math

import torch
from torch import nn

from lda_opt.nets.activation import SmoothReLU, _check_delta
from lda_opt.nets.conv import ComplexConv2d, _check_int, _check_kernel_size

__all__ = ["Adapter", "Composed", "FeatureCNN", "count_parameters", "xavier_init_"]


def count_parameters(module: nn.Module, trainable_only: bool = False) -> int:
    """Number of scalar (real) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


def xavier_init_(
    module: nn.Module, gain: float = 1.0, generator: torch.Generator | None = None
) -> nn.Module:
    """Xavier (Glorot) uniform initialization of every convolution weight in ``module``.

    Real ``nn.Conv2d`` weights get ``U(-b, b)`` with ``b = gain * sqrt(6 / (fan_in + fan_out))``
    (LDA Sec. 4.1 and meta-LDA Sec. 5.2 use Xavier). The two real kernels of a
    :class:`ComplexConv2d` are each drawn with ``gain / sqrt(2)``, so the complex weight
    ``W_r + i W_i`` has the Glorot variance ``2 / (fan_in + fan_out)`` (Trabelsi et al.,
    Deep Complex Networks, 2018). Biases, if any, are set to zero. Returns ``module``.
    Pass a seeded ``generator`` for a reproducible draw.
    """
    if not (isinstance(gain, (int, float)) and math.isfinite(gain) and gain > 0):
        raise ValueError(f"gain must be a positive finite float, got {gain!r}")
    complex_parts = set()
    for m in module.modules():
        if isinstance(m, ComplexConv2d):
            complex_parts.add(id(m.real))
            complex_parts.add(id(m.imag))
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, nn.Conv2d):
                g = gain / math.sqrt(2.0) if id(m) in complex_parts else gain
                nn.init.xavier_uniform_(m.weight, gain=g, generator=generator)
                if m.bias is not None:
                    m.bias.zero_()
    return module


def _check_bool(name: str, value: bool) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def _make_conv(cin: int, cout: int, k: int, is_complex: bool) -> nn.Module:
    if is_complex:
        return ComplexConv2d(cin, cout, k)
    return nn.Conv2d(cin, cout, k, stride=1, padding=k // 2, bias=False)


def _check_input(x: torch.Tensor, in_channels: int, is_complex: bool, who: str) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who}: x must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() != 4:
        raise ValueError(f"{who}: x must have shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[1] != in_channels:
        raise ValueError(f"{who}: x must have C = in_channels = {in_channels}, got {x.shape[1]}")
    if is_complex and not x.is_complex():
        raise TypeError(f"{who} with complex=True needs complex input, got {x.dtype}")
    if not is_complex and not x.is_floating_point():
        raise TypeError(
            f"{who} with complex=False needs real floating input, got {x.dtype} "
            f"(build it with complex=True for complex images)"
        )


class FeatureCNN(nn.Module):
    r"""The feature map g of LDA Sec. 4.1 (and meta-LDA / U-LDA with ``complex=True``).

    .. math::

        g(x) = h_{L}, \qquad h_0 = x, \qquad h_l = a(W_{l-1} h_{l-1}),\ l = 1, \dots, L,

    with ``L = depth`` convolutions ``W_l`` (``kernel_size`` x ``kernel_size``, no bias,
    stride 1, zero padding preserving the size), ``width`` output channels each, and the
    smoothed ReLU ``a`` of LDA eq. (33) after **every** layer. Maps (B, in_channels, H, W)
    to (B, width, H, W), so the groups q_i are the ``width``-vectors at the H*W pixels.
    With ``complex=True`` the convolutions are :class:`ComplexConv2d` (meta-LDA Sec. 5.2),
    input must be complex and the output is complex.

    Parameter count: ``k^2 (in_channels * width + (depth - 1) width^2)`` real weights,
    doubled when complex; ``FeatureCNN(width=32, depth=4)`` has 27,936 (LDA Sec. 4.1).

    Assumption (A2) (LDA Sec. 3; smooth g with Lipschitz Jacobian): g is a composition of
    fixed, finite-dimensional linear maps W_l and the componentwise activation a. Since
    a is C^1 with a' in [0, 1] (``SmoothReLU.derivative_bound = 1``) and a' is Lipschitz
    with constant 1/(2 delta) (``SmoothReLU.derivative_lipschitz``), each layer
    h -> a(W h) is C^1 with Jacobian diag(a'(W h)) W bounded by ||W|| and Lipschitz with
    constant ||W||^2 / (2 delta); by the chain rule g is C^1, its Jacobian is bounded by
    prod ||W_l|| and is globally Lipschitz. The explicit constants are evaluated in
    ``lda_opt/bounds/``.

    Args:
        in_channels: image channels C, >= 1.
        width: feature dimension d (channels of every layer), >= 1. Paper: 32.
        depth: number of convolution layers, >= 1. Paper: 4.
        kernel_size: odd spatial kernel size, >= 1. Paper: 3.
        complex: complex convolutions for complex images (MRI).
        delta: smoothing width of the activation, > 0. Paper: 0.01.

    Attributes:
        convs: ``nn.ModuleList`` of the convolutions in order (``nn.Conv2d`` or
            :class:`ComplexConv2d`).
        act: the :class:`SmoothReLU`.

    The weights are Xavier-initialized at construction (global RNG; call
    :func:`xavier_init_` with a generator for a seeded draw).
    """

    def __init__(
        self,
        in_channels: int = 1,
        width: int = 32,
        depth: int = 4,
        kernel_size: int = 3,
        complex: bool = False,
        delta: float = 0.01,
    ) -> None:
        super().__init__()
        self.in_channels = _check_int("in_channels", in_channels)
        self.width = _check_int("width", width)
        self.depth = _check_int("depth", depth)
        self.kernel_size = _check_kernel_size(kernel_size)
        self.complex = _check_bool("complex", complex)
        self.delta = _check_delta(delta)
        chans = [in_channels] + [width] * depth
        self.convs = nn.ModuleList(
            _make_conv(chans[i], chans[i + 1], kernel_size, complex) for i in range(depth)
        )
        self.act = SmoothReLU(self.delta)
        xavier_init_(self)

    @property
    def out_channels(self) -> int:
        return self.width

    def config(self) -> dict:
        """Constructor keyword arguments (used by :func:`lda_opt.nets.save_checkpoint`)."""
        return {
            "in_channels": self.in_channels,
            "width": self.width,
            "depth": self.depth,
            "kernel_size": self.kernel_size,
            "complex": self.complex,
            "delta": self.delta,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.complex, "FeatureCNN")
        h = x
        for conv in self.convs:
            h = self.act(conv(h))
        return h


class Adapter(nn.Module):
    r"""U-LDA adapter h (U-LDA Sec. 5.1): one convolution followed by the smoothed ReLU,

    .. math:: h(z) = a(W z),

    ``W`` a ``kernel_size`` x ``kernel_size`` convolution (no bias, stride 1, zero padding),
    complex when ``complex=True``. Composed with a feature extractor g it gives the
    regularizer's feature map q = h o g (:class:`Composed`); it satisfies (A2) for the
    same reason as :class:`FeatureCNN`. Paper: 16 -> 16 channels, 3x3, complex.

    Attributes:
        conv: the convolution; act: the :class:`SmoothReLU`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        complex: bool = False,
        delta: float = 0.01,
    ) -> None:
        super().__init__()
        self.in_channels = _check_int("in_channels", in_channels)
        self.out_channels = _check_int("out_channels", out_channels)
        self.kernel_size = _check_kernel_size(kernel_size)
        self.complex = _check_bool("complex", complex)
        self.delta = _check_delta(delta)
        self.conv = _make_conv(in_channels, out_channels, kernel_size, complex)
        self.act = SmoothReLU(self.delta)
        xavier_init_(self)

    def config(self) -> dict:
        """Constructor keyword arguments (used by :func:`lda_opt.nets.save_checkpoint`)."""
        return {
            "in_channels": self.in_channels,
            "out_channels": self.out_channels,
            "kernel_size": self.kernel_size,
            "complex": self.complex,
            "delta": self.delta,
        }

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_input(x, self.in_channels, self.complex, "Adapter")
        return self.act(self.conv(x))


class Composed(nn.Module):
    """Composition q = h o g of a feature extractor ``g`` and an adapter ``h`` (U-LDA Sec. 3).

    ``q(x) = h(g(x))``. Both are kept as the attributes ``g`` and ``h``; U-LDA Step 2
    freezes ``g`` (``g.requires_grad_(False)``) and trains only ``h``.
    """

    def __init__(self, g: nn.Module, h: nn.Module) -> None:
        super().__init__()
        for name, m in (("g", g), ("h", h)):
            if not isinstance(m, nn.Module):
                raise TypeError(f"{name} must be a torch.nn.Module, got {type(m).__name__}")
        out_g = getattr(g, "out_channels", None)
        in_h = getattr(h, "in_channels", None)
        if out_g is not None and in_h is not None and out_g != in_h:
            raise ValueError(f"h.in_channels ({in_h}) must equal g's output channels ({out_g})")
        cg, ch = getattr(g, "complex", None), getattr(h, "complex", None)
        if cg is not None and ch is not None and cg != ch:
            raise ValueError("g and h must both be real or both complex (complex=...)")
        self.g = g
        self.h = h

    @property
    def in_channels(self):
        return getattr(self.g, "in_channels", None)

    @property
    def out_channels(self):
        return getattr(self.h, "out_channels", None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.h(self.g(x))
